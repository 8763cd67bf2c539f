//! `chokepoint-policy reconcile`, as built, against a service running in this test: it
//! books exactly the charged records of an access log the ledger lacks, once however often
//! it runs, leaves out what it must (too old, not records), resumes from its checkpoint,
//! and explains its errors without showing the token or a record's content.

use std::path::Path;
use std::process::Output;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::support::{
    new_tenant, new_user, usage_config, RedisServer, Service, TempDir, GATEWAY_TOKEN,
};

const BIN: &str = env!("CARGO_BIN_EXE_chokepoint-policy");

async fn reconcile(token: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.arg("reconcile").args(args).env_clear();
    if let Some(token) = token {
        cmd.env("CHOKEPOINT_POLICY_TOKEN", token);
    }
    cmd.output().await.expect("run chokepoint-policy reconcile")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64
}

/// A record as the filter logs it.
fn record(id: &str, user: Option<&str>, tenant: &str, decision: &str, ts_ms: u64) -> Value {
    json!({
        "request_id": id, "trace_id": id, "user": user, "tenant": tenant, "groups": [],
        "cost_center": null, "model": "gpt-4o-mini", "model_key": "gpt-4o-mini",
        "provider": "openai", "format": "openai_chat", "stream": false,
        "input_tokens": 10, "output_tokens": 5, "cached_input_tokens": 0,
        "reasoning_tokens": 0, "cache_creation_input_tokens": 0, "cost_micros": 7,
        "estimated": false, "status": 200, "decision": decision, "latency_ms": 3,
        "ttft_ms": null, "completed": true, "error": null, "ts_ms": ts_ms,
    })
}

fn write_log(path: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(path, text).expect("write the access log");
}

async fn tenant_totals(service: &Service, tenant: &str, ts_ms: u64) -> (u64, u64) {
    let month = chokepoint_policy::utc_date::Day::from_unix_ms(ts_ms)
        .month()
        .to_string();
    let v = service.ledger("tenant", tenant, &month).await;
    (
        v["requests"].as_u64().unwrap_or(0),
        v["cost_micros"].as_u64().unwrap_or(0),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_books_what_the_ledger_lacks_once_and_resumes() {
    let redis = RedisServer::start();
    let service = Service::start(usage_config(&redis)).await;
    let dir = TempDir::new();
    let log = dir.path().join("usage.log");
    let state = dir.path().join("reconcile.json");
    let (user, tenant) = (new_user(), new_tenant());
    let ts = now_ms() - 1000;
    let week_ago = ts - 8 * 24 * 3600 * 1000;
    let charged: Vec<Value> = (1..=5)
        .map(|i| {
            record(
                &format!("rc-{tenant}-{i}"),
                Some(&user),
                &tenant,
                "allowed",
                ts,
            )
        })
        .collect();
    let mut lines: Vec<String> = charged.iter().map(Value::to_string).collect();
    lines.push(
        record(
            &format!("rc-{tenant}-denied"),
            Some(&user),
            &tenant,
            "denied",
            ts,
        )
        .to_string(),
    );
    lines.push("-".into());
    // Line 8: not a record; its content must not reach the log.
    lines.push(r#"{"request_id":"x","input_tokens":"canary-text"}"#.into());
    lines.push(
        record(
            &format!("rc-{tenant}-old"),
            Some(&user),
            &tenant,
            "allowed",
            week_ago,
        )
        .to_string(),
    );
    write_log(&log, &lines);
    // The filter delivered two before it died.
    let (status, _) = service.post_usage(&charged[..2]).await;
    assert_eq!(status, 200);
    assert_eq!(tenant_totals(&service, &tenant, ts).await, (2, 14));

    let args = [
        "--access-log",
        log.to_str().unwrap(),
        "--policy-url",
        &service.base,
        "--state",
        state.to_str().unwrap(),
    ];
    let first = reconcile(Some(GATEWAY_TOKEN), &args).await;
    let text = stderr(&first);
    assert_eq!(
        first.status.code(),
        Some(3),
        "left out: too old, invalid\n{text}"
    );
    assert!(
        text.contains(
            "reconcile: 9 lines, 6 charged records: 2 already booked, 3 booked now, 0 refused \
             by the ledger, 1 too old to book; 2 not charged, 1 invalid (line 8)"
        ),
        "{text}"
    );
    assert!(
        text.contains(&format!("record rc-{tenant}-old is older")),
        "{text}"
    );
    for secret in ["canary", GATEWAY_TOKEN, "gpt-4o-mini"] {
        assert!(!text.contains(secret), "{secret} in the log:\n{text}");
    }
    assert_eq!(tenant_totals(&service, &tenant, ts).await, (5, 35));

    // From its checkpoint: nothing new.
    let again = reconcile(Some(GATEWAY_TOKEN), &args).await;
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("reconcile: 0 lines"),
        "{}",
        stderr(&again)
    );
    // Without it, the whole file again: every charged record already booked.
    let whole = reconcile(Some(GATEWAY_TOKEN), &args[..4]).await;
    assert!(
        stderr(&whole).contains("6 charged records: 5 already booked, 0 booked now"),
        "{}",
        stderr(&whole)
    );
    assert_eq!(tenant_totals(&service, &tenant, ts).await, (5, 35));

    // Envoy appends a record and half of the next: the whole one is booked, the half
    // waits for its newline.
    let more = record(
        &format!("rc-{tenant}-6"),
        Some(&user),
        &tenant,
        "allowed",
        ts,
    )
    .to_string();
    let half = record(
        &format!("rc-{tenant}-7"),
        Some(&user),
        &tenant,
        "allowed",
        ts,
    )
    .to_string();
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    std::io::Write::write_all(&mut f, format!("{more}\n{}", &half[..40]).as_bytes()).unwrap();
    let tail = reconcile(Some(GATEWAY_TOKEN), &args).await;
    let text = stderr(&tail);
    assert_eq!(tail.status.code(), Some(0), "{text}");
    assert!(
        text.contains("reconcile: 1 lines, 1 charged records: 0 already booked, 1 booked now"),
        "{text}"
    );
    assert!(
        text.contains("a last line without its newline (40 bytes)"),
        "{text}"
    );
    assert_eq!(tenant_totals(&service, &tenant, ts).await, (6, 42));
}

/// A case's name, token, extra arguments, exit status and what its log says.
type Case<'a> = (&'a str, Option<&'a str>, Vec<&'a str>, i32, &'a str);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_explains_its_errors() {
    let redis = RedisServer::start();
    let service = Service::start(usage_config(&redis)).await;
    let dir = TempDir::new();
    let log = dir.path().join("usage.log");
    std::fs::write(&log, "").unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{GATEWAY_TOKEN}\n")).unwrap();
    let log = log.to_str().unwrap();
    let missing = dir.path().join("missing.log");
    let cases: Vec<Case> = vec![
        ("no token", None, vec![], 2, "no gateway token"),
        (
            "the token never on the command line",
            None,
            vec!["--gateway-token", GATEWAY_TOKEN],
            2,
            "unexpected argument",
        ),
        (
            "a wrong token",
            Some("another-token-of-at-least-32-bytes-xx"),
            vec![],
            1,
            "refused the gateway token (401",
        ),
        (
            "a window the service does not keep",
            Some(GATEWAY_TOKEN),
            vec!["--dedupe-window-secs", "700000"],
            1,
            "longer than the policy service's dedupe window (604800 s",
        ),
        (
            "no such access log",
            Some(GATEWAY_TOKEN),
            vec!["--access-log", missing.to_str().unwrap()],
            1,
            "cannot read the access log",
        ),
        (
            "the token from a file",
            None,
            vec!["--token-file", token_file.to_str().unwrap()],
            0,
            "reconcile: 0 lines",
        ),
    ];
    for (name, token, extra, code, says) in cases {
        let mut args = vec!["--policy-url", &service.base];
        if !extra.contains(&"--access-log") {
            args.extend(["--access-log", log]);
        }
        args.extend(extra);
        let out = reconcile(token, &args).await;
        let text = stderr(&out);
        assert_eq!(out.status.code(), Some(code), "{name}:\n{text}");
        assert!(text.contains(says), "{name}:\n{text}");
        assert!(
            !text.contains(GATEWAY_TOKEN),
            "{name}: the token in\n{text}"
        );
    }

    // A service that is not there: a bounded number of attempts, then status 1.
    let gone = format!("http://127.0.0.1:{}", free_port());
    let out = reconcile(
        Some(GATEWAY_TOKEN),
        &[
            "--access-log",
            log,
            "--policy-url",
            &gone,
            "--attempts",
            "2",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("cannot reach"), "{}", stderr(&out));
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `--follow` as the sidecar runs it: appended lines, a rotation (rename, new file) and a
/// truncation are each booked as they come; SIGTERM ends it with its summary, and a
/// restart resumes from the checkpoint without rereading.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_follows_the_log_through_rotation_and_truncation() {
    let redis = RedisServer::start();
    let service = Service::start(usage_config(&redis)).await;
    let dir = TempDir::new();
    let log = dir.path().join("usage.log");
    let state = dir.path().join("reconcile.json");
    let (user, tenant) = (new_user(), new_tenant());
    let ts = now_ms() - 1000;
    let line = |i: u32| {
        let mut l = record(
            &format!("fo-{tenant}-{i}"),
            Some(&user),
            &tenant,
            "allowed",
            ts,
        )
        .to_string();
        l.push('\n');
        l
    };
    let append = |path: &Path, text: &str| {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
    };
    append(&log, &(line(1) + &line(2)));
    let follow = || {
        tokio::process::Command::new(BIN)
            .args(["reconcile", "--follow", "--poll-ms", "20", "--access-log"])
            .arg(&log)
            .args(["--policy-url", &service.base, "--state"])
            .arg(&state)
            .env_clear()
            .env("CHOKEPOINT_POLICY_TOKEN", GATEWAY_TOKEN)
            .stderr(std::process::Stdio::piped())
            // A failed assertion must not leave it running (holding the test's output).
            .kill_on_drop(true)
            .spawn()
            .expect("start reconcile --follow")
    };
    let booked = |n: u64| {
        let service = &service;
        let tenant = tenant.clone();
        async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            loop {
                let (requests, _) = tenant_totals(service, &tenant, ts).await;
                if requests == n {
                    return;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "{requests} of {n} booked after 20 s"
                );
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    };
    let stop = |child: tokio::process::Child| async move {
        let pid = child.id().expect("running").to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(sent.success());
        child.wait_with_output().await.expect("reconcile exits")
    };

    let child = follow();
    booked(2).await;
    append(&log, &line(3));
    booked(3).await;
    // logrotate's `create`: renamed, then a new file.
    std::fs::rename(&log, dir.path().join("usage.log.1")).unwrap();
    append(&log, &(line(4) + &line(5)));
    booked(5).await;
    // logrotate's `copytruncate`: emptied in place, written on.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&log, &line(6));
    booked(6).await;
    let out = stop(child).await;
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("was rotated"), "{text}");
    assert!(
        text.contains("the ledger did not have (6 so far)"),
        "{text}"
    );
    assert!(text.contains("was truncated"), "{text}");
    assert!(
        text.contains("6 charged records: 0 already booked, 6 booked now"),
        "{text}"
    );

    // Restarted: from the checkpoint, not from the start of the file.
    append(&log, &line(7));
    let child = follow();
    booked(7).await;
    let out = stop(child).await;
    let text = stderr(&out);
    assert!(text.contains("resuming"), "{text}");
    assert!(
        text.contains("reconcile: 1 lines, 1 charged records: 0 already booked, 1 booked now"),
        "{text}"
    );
}
