//! Redis failover under load: the stack with a primary, a replica and three sentinels
//! (down after 500 ms), the policy service following the primary through them, traffic
//! through Envoy; the primary is SIGKILLed mid-load. Run with WAIT off and with
//! `--redis-wait-replicas 1`. Holds, for each: no request hangs, every answer is a 200
//! or the failure mode's `503 policy_unavailable` (closed), nothing is charged twice
//! (the ledger never exceeds the access log), and with WAIT on nothing is lost. Prints
//! the time until requests are admitted again, the answers meanwhile, and what the
//! ledger lost.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chokepoint_dev::devtoken::{TokenSpec, DEFAULT_ISSUER};
use chokepoint_dev::stack::{RedisMode, Stack, READINESS_SUBJECT};
use chokepoint_perf::soak::{
    expected_ledger, ledger_totals, read_access_log, LedgerKey, Totals, LEDGER_FIELDS,
};

use crate::support::{self, reconcile};

const WORKERS: usize = 4;
const PACE: Duration = Duration::from_millis(20);
/// Longer than any answer can take while the policy service's round trips are bounded;
/// a request past it hangs.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(15);

/// One request's outcome: when it was sent (since the load began), and its status
/// (`None`: no answer within [`CLIENT_TIMEOUT`]).
type Outcome = (Duration, Option<u16>);

async fn start(wait_replicas: u32) -> Stack {
    support::start("sentinel", |opts| {
        opts.redis = RedisMode::Sentinel {
            down_after_ms: 500,
            wait_replicas,
        };
        opts.requests_per_window = 1_000_000;
    })
    .await
}

/// Sends chat requests from [`WORKERS`] clients until `stop`, each with its own user.
fn load(
    stack: &Stack,
    stop: Arc<AtomicBool>,
    began: Instant,
) -> Vec<tokio::task::JoinHandle<Vec<Outcome>>> {
    (0..WORKERS)
        .map(|worker| {
            let token = stack.token(
                &TokenSpec::new(format!("ha-user-{worker}"))
                    .with_tenant("acme")
                    .with_groups(["ml"]),
            );
            let url = format!("{}/v1/chat/completions", stack.gateway_url);
            let stop = stop.clone();
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut outcomes = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let sent = began.elapsed();
                    let answer = client
                        .post(&url)
                        .bearer_auth(&token)
                        .json(&serde_json::json!({
                            "model": "gpt-4o-mini",
                            "messages": [{"role": "user", "content": "Say hello"}],
                        }))
                        .timeout(CLIENT_TIMEOUT)
                        .send()
                        .await;
                    let status = match answer {
                        Ok(response) => {
                            let status = response.status().as_u16();
                            let body = response.bytes().await.unwrap_or_default();
                            // A 503 of the failure mode names its class; any other
                            // 503 is counted apart (as 0) and fails the check.
                            let failure_mode =
                                String::from_utf8_lossy(&body).contains("\"policy_unavailable\"");
                            Some(if status == 503 && !failure_mode {
                                0
                            } else {
                                status
                            })
                        }
                        Err(_) => None,
                    };
                    outcomes.push((sent, status));
                    // About 50 requests a second per client: load, not a flood the
                    // shared test machine cannot log.
                    tokio::time::sleep(PACE).await;
                }
                outcomes
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_primary_under_load() {
    // (WAIT's replicas: 0 is off)
    for wait_replicas in [0, 1] {
        let mut stack = start(wait_replicas).await;
        let began = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let workers = load(&stack, stop.clone(), began);
        tokio::time::sleep(Duration::from_millis(1500)).await;

        let group = stack.sentinel_group().expect("sentinel mode");
        let killed_at = began.elapsed();
        let old = group.kill_primary().expect("kill the primary");
        let promoted = Instant::now();
        while group.primary_port().is_none_or(|port| port == old) {
            assert!(
                promoted.elapsed() < Duration::from_secs(30),
                "no failover within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let promoted_after = promoted.elapsed();
        // Load on the new primary, then the killed node back as its replica (without
        // one, WAIT 1 cannot be met), then more load.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        group
            .restart_as_replica(old)
            .expect("restart the old primary");
        tokio::time::sleep(Duration::from_millis(1000)).await;
        stop.store(true, Ordering::Relaxed);
        let mut outcomes: Vec<Outcome> = Vec::new();
        for worker in workers {
            outcomes.extend(worker.await.expect("worker"));
        }
        outcomes.sort_by_key(|(sent, _)| *sent);

        // No request hangs, and the failure mode (closed) holds: a 200 or a 503.
        let mut statuses: BTreeMap<Option<u16>, u32> = BTreeMap::new();
        for (_, status) in &outcomes {
            *statuses.entry(*status).or_default() += 1;
        }
        assert_eq!(statuses.get(&None), None, "requests hung: {statuses:?}");
        assert!(
            statuses.keys().all(|s| matches!(s, Some(200 | 503))),
            "{statuses:?}\n{}",
            stack.logs()
        );
        // Admitted again: the first 200 sent after the last 503.
        let last_refused = outcomes
            .iter()
            .filter(|(_, status)| *status == Some(503))
            .map(|(sent, _)| *sent)
            .max();
        let admitted_after = last_refused
            .and_then(|last| {
                outcomes
                    .iter()
                    .find(|(sent, s)| *sent > last && *s == Some(200))
            })
            .map(|(sent, _)| sent.saturating_sub(killed_at));

        // What the ledger holds once the filter has delivered what it can.
        // Envoy writes its access log on a timer: wait for every request's record. The
        // stack's readiness probe is logged too, under its own user.
        let probe = chokepoint_filter::identity::pseudonym::user_uuid(
            stack.opts.salt.as_bytes(),
            DEFAULT_ISSUER,
            READINESS_SUBJECT,
        );
        let logged = Instant::now();
        let records = loop {
            let records = read_access_log(&stack.usage_log()).records;
            let ours = records
                .iter()
                .filter(|r| r["user"] != probe.as_str())
                .count();
            if ours >= outcomes.len() || logged.elapsed() > Duration::from_secs(10) {
                break records;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let probes = records
            .iter()
            .filter(|r| r["user"] == probe.as_str())
            .count();
        assert_eq!(
            records.len() - probes,
            outcomes.len(),
            "one access-log record per request"
        );
        let expected = expected_ledger(&records);
        let lost = missing_from_ledger(&stack, &expected).await;
        // What the failover dropped is in the access log: the reconciler books it, and
        // nothing booked before is booked again.
        let (out, took) = reconcile(&stack);
        let summary = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "reconcile failed: {summary}\n{}",
            stack.logs()
        );
        let after = missing_from_ledger(&stack, &expected).await;
        eprintln!(
            "WAIT {wait_replicas}: reconciled in {} ms: {}",
            took.as_millis(),
            summary.trim()
        );
        assert_eq!(
            after,
            [0; LEDGER_FIELDS.len()],
            "WAIT {wait_replicas}: the ledger still lacks records after the reconciler"
        );

        eprintln!(
            "WAIT {wait_replicas}: {} requests, {:?}; primary killed at {} ms, promoted {} ms later; \
             admitted again {} after the kill; ledger lost {} requests, {} input tokens, {} µ$ of {} charged records",
            outcomes.len(),
            statuses,
            killed_at.as_millis(),
            promoted_after.as_millis(),
            admitted_after.map_or("at once (no 503)".to_owned(), |d| format!("{} ms", d.as_millis())),
            lost[0],
            lost[1],
            lost[6],
            records.iter().filter(|r| chokepoint_perf::soak::charged(r)).count(),
        );
        if wait_replicas > 0 {
            // Before any reconciling: WAIT held back every batch a replica had not taken.
            assert_eq!(
                lost,
                [0; LEDGER_FIELDS.len()],
                "WAIT {wait_replicas} lost records"
            );
        }
        stack.stop();
    }
}

/// What the ledger lacks of the access log's `expected` totals, summed over users (each
/// record has one), once it has settled (or after 10 s); never more than logged (no
/// record charged twice), per field.
async fn missing_from_ledger(
    stack: &Stack,
    expected: &BTreeMap<LedgerKey, Totals>,
) -> [u64; LEDGER_FIELDS.len()] {
    let http = reqwest::Client::new();
    let settle = Instant::now();
    loop {
        let mut missing = [0u64; LEDGER_FIELDS.len()];
        for (key, want) in expected {
            let got = ledger_totals(&http, &stack.policy_admin_url, &stack.opts.admin_token, key)
                .await
                .expect("ledger");
            for (i, field) in LEDGER_FIELDS.iter().enumerate() {
                assert!(
                    got[i] <= want[i],
                    "{key:?} {field}: ledger {} > access log {}",
                    got[i],
                    want[i]
                );
                if key.0 == "user" {
                    missing[i] += want[i] - got[i];
                }
            }
        }
        if missing.iter().all(|n| *n == 0) || settle.elapsed() > Duration::from_secs(10) {
            return missing;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
