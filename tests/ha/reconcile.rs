//! Nothing lost when Envoy dies. With the policy service down (failing open), every
//! answered request's record waits in Envoy's memory for delivery; `kill -9` of Envoy
//! loses them, while the access log on disk has them. After Envoy's restart and the
//! service's return the ledger is short of the access log by those records;
//! `chokepoint-policy reconcile` books them, after which the ledger equals the access log
//! exactly (the soak's check), and a second run books nothing.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chokepoint_dev::devtoken::TokenSpec;
use chokepoint_dev::stack::Stack;
use chokepoint_perf::soak::{expected_ledger, ledger_totals, read_access_log, LedgerKey, Totals};

use crate::support::{self, reconcile};

/// Concurrent clients.
const CLIENTS: usize = 8;
/// Requests answered while the policy service is up, then while it is down.
const BEFORE_OUTAGE: u64 = 100;
const DURING_OUTAGE: u64 = 400;

async fn start() -> Stack {
    support::start("reconcile", |opts| {
        // Answered while the service is away, so their records wait in Envoy for it.
        opts.fail_open = true;
        opts.policy_timeout_ms = 300;
        opts.requests_per_window = 1_000_000;
    })
    .await
}

/// Requests from `CLIENTS` clients until `stop`; counts the 200s.
fn load(
    stack: &Stack,
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let url = format!("{}/v1/chat/completions", stack.gateway_url);
    (0..CLIENTS)
        .map(|i| {
            let jwt = stack.token(
                &TokenSpec::new(format!("ha-user-{}", i % 3))
                    .with_tenant(["acme", "globex"][i % 2])
                    .with_groups(["ml"]),
            );
            let (url, stop, ok) = (url.clone(), stop.clone(), ok.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .expect("client");
                let body = serde_json::json!({
                    "model": "gpt-4o-mini",
                    "messages": [{"role": "user", "content": "Say hello"}],
                });
                while !stop.load(Ordering::Relaxed) {
                    let answered = client.post(&url).bearer_auth(&jwt).json(&body).send().await;
                    match answered {
                        Ok(r) if r.status() == 200 => {
                            let _ = r.bytes().await;
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(r) => {
                            let _ = r.bytes().await;
                        }
                        // Envoy killed under this request.
                        Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                }
            })
        })
        .collect()
}

async fn wait_for(count: &AtomicU64, n: u64, stack: &Stack) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while count.load(Ordering::Relaxed) < n {
        assert!(
            Instant::now() < deadline,
            "{} of {n} requests answered in 120 s\n{}",
            count.load(Ordering::Relaxed),
            stack.logs()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The ledger keys whose totals differ from what the access log says, and how many
/// records the users' keys lack.
async fn compare(
    stack: &Stack,
    expected: &std::collections::BTreeMap<LedgerKey, Totals>,
) -> (Vec<String>, u64) {
    let client = reqwest::Client::new();
    let mut differ = Vec::new();
    let mut missing = 0;
    for (key, want) in expected {
        let got = ledger_totals(
            &client,
            &stack.policy_admin_url,
            &stack.opts.admin_token,
            key,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", stack.logs()));
        if got != *want {
            differ.push(format!("{key:?}: ledger {got:?}, access log {want:?}"));
        }
        if key.0 == "user" {
            missing += want[0].saturating_sub(got[0]);
        }
    }
    (differ, missing)
}

/// The `N <what>` count of the reconciler's summary line.
fn figure(summary: &str, what: &str) -> u64 {
    let at = summary
        .find(what)
        .unwrap_or_else(|| panic!("no {what:?} in {summary}"));
    summary[..at]
        .trim_end()
        .rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count before {what:?} in {summary}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_a_killed_envoy_held_are_booked_by_the_reconciler() {
    let mut stack = start().await;
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let clients = load(&stack, stop.clone(), ok.clone());
    wait_for(&ok, BEFORE_OUTAGE, &stack).await;

    // Deliveries fail from here on; the records of what is answered wait in Envoy.
    stack.kill_policy();
    let at_outage = ok.load(Ordering::Relaxed);
    wait_for(&ok, at_outage + DURING_OUTAGE, &stack).await;
    let pid = stack.envoy_pid().expect("envoy runs");
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let answered_at_kill = ok.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.expect("client");
    }
    let answered = ok.load(Ordering::Relaxed);

    stack.restart_envoy().await.expect("envoy restarts");
    stack.start_policy().expect("policy service restarts");
    // The new Envoy has nothing of the old one's to deliver; give anything in flight
    // time to land before reading the ledger.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let log = read_access_log(&stack.usage_log());
    let records = log.records.len() as u64;
    let expected = expected_ledger(&log.records);
    let (differ, missing) = compare(&stack, &expected).await;
    println!(
        "{answered} requests answered ({answered_at_kill} when Envoy was killed), {records} \
         records in the access log ({} answered without a logged record: Envoy's unflushed \
         log buffer); the ledger lacks {missing} of them",
        answered.saturating_sub(records),
    );
    assert!(
        missing > 0,
        "the kill lost nothing, so this test shows nothing: {differ:?}\n{}",
        stack.logs()
    );

    let (first, took) = reconcile(&stack);
    let summary = String::from_utf8_lossy(&first.stderr).into_owned();
    assert_eq!(first.status.code(), Some(0), "{summary}\n{}", stack.logs());
    let booked = figure(&summary, "booked now");
    println!(
        "reconcile: {booked} records booked of {records} lines in {took:?} ({:.0} lines/s): {}",
        records as f64 / took.as_secs_f64(),
        summary.lines().last().unwrap_or_default()
    );
    assert_eq!(booked, missing, "{summary}");
    let (differ, missing) = compare(&stack, &expected).await;
    assert!(
        differ.is_empty() && missing == 0,
        "ledger != access log after reconcile:\n{}\n{summary}",
        differ.join("\n")
    );

    let (second, _) = reconcile(&stack);
    let again = String::from_utf8_lossy(&second.stderr).into_owned();
    assert_eq!(second.status.code(), Some(0), "{again}");
    assert_eq!(figure(&again, "booked now"), 0, "{again}");
    println!("second run: {}", again.lines().last().unwrap_or_default());
    let (differ, _) = compare(&stack, &expected).await;
    assert!(differ.is_empty(), "{differ:?}");
    stack.stop();
}
