//! Starting an HA stack for a test, sending load through it, and the ledger check.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use chokepoint_dev::devtoken::{DevKey, TokenSpec, DEFAULT_ISSUER};
use chokepoint_dev::stack::{Stack, StackOptions};
use chokepoint_perf::soak::{expected_ledger, ledger_totals, read_access_log};
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A stack of its own for one test: fresh run folder, fresh dev key, any free port.
pub async fn start(name: &str, tweak: impl FnOnce(&mut StackOptions)) -> Stack {
    static N: AtomicU32 = AtomicU32::new(0);
    let run_dir = std::env::temp_dir().join(format!(
        "chokepoint-ha-{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&run_dir);
    let mut opts = StackOptions::defaults(&root(), &run_dir, DevKey::generate_with_derived_kid());
    opts.requests_per_window = 100_000;
    tweak(&mut opts);
    match Stack::start(opts).await {
        Ok(s) => s,
        Err(e) => panic!("stack did not start: {e}"),
    }
}

/// The UUID the gateway derives for `subject` from the dev issuer.
pub fn uuid_of(stack: &Stack, subject: &str) -> String {
    chokepoint_filter::identity::pseudonym::user_uuid(
        stack.opts.salt.as_bytes(),
        DEFAULT_ISSUER,
        subject,
    )
}

pub fn token(stack: &Stack, subject: &str) -> String {
    stack.token(&TokenSpec::new(subject).with_tenant("acme"))
}

/// Sets `user`'s own limit set through the admin API.
pub async fn set_user_limits(stack: &Stack, user: &str, limits: Value) {
    let resp = reqwest::Client::new()
        .put(format!(
            "{}/v1/admin/limits/user/{user}",
            stack.policy_admin_url
        ))
        .bearer_auth(&stack.opts.admin_token)
        .json(&limits)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        200,
        "{}",
        resp.text().await.unwrap_or_default()
    );
}

/// A user's spend as the policy service reports it (budgets, usage).
pub async fn user_spend(stack: &Stack, user: &str) -> Value {
    reqwest::Client::new()
        .get(format!(
            "{}/v1/admin/spend?scope_kind=user&id={user}",
            stack.policy_admin_url
        ))
        .bearer_auth(&stack.opts.admin_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// One chat request to `gateway`: its status and the gateway's error code, if any.
pub async fn chat(
    client: &reqwest::Client,
    gateway: &str,
    token: &str,
    case: &str,
) -> (u16, String) {
    let body = serde_json::json!({"model": "gpt-4o-mini", "max_tokens": 50, "messages": [{"role": "user", "content": case}]});
    let resp = client
        .post(format!("{gateway}/v1/chat/completions"))
        .bearer_auth(token)
        .header("x-test-case", case)
        .json(&body)
        .send()
        .await;
    match resp {
        Ok(r) => {
            let status = r.status().as_u16();
            let v: Value = r.json().await.unwrap_or_default();
            let code = v["error"]["code"].as_str().unwrap_or_default().to_string();
            (status, code)
        }
        Err(e) => (0, format!("transport: {e}")),
    }
}

/// How many answers of each `(status, code)`.
pub type Outcomes = BTreeMap<(u16, String), u64>;

/// Waits until every replica's access logs together hold at least `at_least` records
/// and the ledger equals their sum (the soak's check: per user, tenant and cost centre,
/// every counted field); returns how many records the logs hold. Logs are read again on
/// every try (Envoy flushes them every 200 ms).
pub async fn ledger_equals_access_logs(stack: &Stack, at_least: usize) -> usize {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut records = Vec::new();
        for log in stack.usage_logs() {
            let l = read_access_log(&log);
            assert!(
                l.malformed.is_empty(),
                "{}: lines that are no record: {:?}",
                log.display(),
                l.malformed
            );
            records.extend(l.records);
        }
        let expected = expected_ledger(&records);
        let mut diffs = Vec::new();
        for (key, want) in &expected {
            let got = ledger_totals(
                &client,
                &stack.policy_admin_url,
                &stack.opts.admin_token,
                key,
            )
            .await;
            match got {
                Ok(got) if got == *want => {}
                Ok(got) => diffs.push(format!("{key:?}: ledger {got:?}, access logs {want:?}")),
                Err(e) => diffs.push(format!("{key:?}: {e}")),
            }
        }
        if records.len() < at_least {
            diffs.push(format!(
                "{} records in the access logs, {at_least} expected",
                records.len()
            ));
        }
        if diffs.is_empty() {
            return records.len();
        }
        assert!(
            Instant::now() < deadline,
            "the ledger differs from the access logs ({} records):\n{}",
            records.len(),
            diffs.join("\n")
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Runs `chokepoint-policy reconcile` over the stack's access log, as an operator would
/// (the gateway token in its environment, nothing else of the caller's); its output and
/// how long it took.
pub fn reconcile(stack: &Stack) -> (std::process::Output, Duration) {
    let started = Instant::now();
    let out = std::process::Command::new(stack.opts.bin_dir.join("chokepoint-policy"))
        .arg("reconcile")
        .arg("--access-log")
        .arg(stack.usage_log())
        .arg("--policy-url")
        .arg(&stack.policy_url)
        .env_clear()
        .env("CHOKEPOINT_POLICY_TOKEN", &stack.opts.policy_token)
        .output()
        .expect("run chokepoint-policy reconcile");
    (out, started.elapsed())
}
