//! Two gateway replicas behind a balancer and two policy service instances: a budget
//! holds exactly across replicas, a replica killed while holding lease slots costs
//! those slots until their reservations expire, and a policy instance lost under load
//! costs only the callouts it had and got before Envoy took it out.

use std::time::{Duration, Instant};

use chokepoint_dev::stack::Stack;
use chokepoint_render::overrides::Override;
use serde_json::json;

use crate::support::{self, chat, ledger_equals_access_logs, user_spend};

/// The filter's worst case for the tests' chat body: ~4 bytes a token, plus its cap.
fn reserve_tokens(case: &str) -> u64 {
    let body = json!({"model": "gpt-4o-mini", "max_tokens": 50, "messages": [{"role": "user", "content": case}]});
    (serde_json::to_vec(&body).unwrap().len() as u64).div_ceil(4) + 50
}

#[tokio::test]
async fn a_budget_holds_exactly_across_two_replicas() {
    // A budget of N requests' worth is below the size that earns a lease (two requests'
    // worth in a quarter of it), so each request is decided on its own; the slow flush
    // keeps every reservation in place for the whole race (a record booked mid-race
    // would put its real spend, less than its reservation, in its place and let a
    // seventh request in: 3 s was once too short on a loaded machine).
    const N: u64 = 6;
    let stack = support::start("budget-race", |o| {
        o.gateway_replicas = 2;
        o.usage_flush_ms = 10_000;
    })
    .await;
    let user = support::uuid_of(&stack, "racer");
    let reserve = reserve_tokens("race");
    support::set_user_limits(
        &stack,
        &user,
        json!({"tokens": N * reserve, "period": "day"}),
    )
    .await;
    let token = support::token(&stack, "racer");
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..10 * N {
        let (gateway, token) = (stack.gateway_url.clone(), token.clone());
        set.spawn(async move { chat(&reqwest::Client::new(), &gateway, &token, "race").await });
    }
    let (mut served, mut denied) = (0, 0);
    while let Some(r) = set.join_next().await {
        match r.unwrap() {
            (200, _) => served += 1,
            (429, code) if code == "budget_exceeded" => denied += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    println!("race over 2 replicas: {served} served, {denied} denied");
    assert_eq!(served, N, "exactly the affordable requests are served");
    assert_eq!(denied, 9 * N);
    let records = ledger_equals_access_logs(&stack, 10 * N as usize).await;
    let spend = user_spend(&stack, &user).await;
    let usage = &spend["usage"];
    let tokens = usage["input_tokens"].as_u64().unwrap() + usage["output_tokens"].as_u64().unwrap();
    println!(
        "ledger = access logs of both replicas ({records} records); {tokens} of {} tokens spent",
        N * reserve
    );
    assert_eq!(usage["requests"], N, "{spend}");
    assert!(tokens <= N * reserve, "{spend}");
    // Both replicas served some of the race (round robin), against the one budget.
    let per_replica: Vec<usize> = stack
        .usage_logs()
        .iter()
        .map(|log| {
            chokepoint_perf::soak::read_access_log(log)
                .records
                .iter()
                .filter(|r| r["user"] == user.as_str())
                .count()
        })
        .collect();
    println!("records of the race per replica: {per_replica:?}");
    assert!(
        per_replica.iter().all(|n| *n > 0),
        "a replica holds none of the race: the balancer did not split it ({per_replica:?})"
    );
}

#[tokio::test]
async fn a_replica_killed_holding_lease_slots_holds_them_until_they_expire() {
    const TTL_SECS: u64 = 6;
    const SLOTS: u64 = 16;
    let stack = support::start("dead-replica", |o| {
        o.gateway_replicas = 2;
        o.usage_flush_ms = 100;
        o.reservation_ttl_secs = Some(TTL_SECS);
        o.overrides.extend([
            Override::new("policy_service.lease_slots", SLOTS),
            // Long enough that the replica is killed before it gives the slots back.
            Override::new("policy_service.lease_ttl_ms", 5000),
        ]);
    })
    .await;
    let user = support::uuid_of(&stack, "leaser");
    // Room for a whole lease: a caller's first ask is 4 slots, up to SLOTS later.
    let reserve = reserve_tokens("lease");
    support::set_user_limits(
        &stack,
        &user,
        json!({"tokens": 4 * SLOTS * reserve, "period": "day"}),
    )
    .await;
    let token = support::token(&stack, "leaser");
    let client = reqwest::Client::new();
    let replica = stack.replica_url(1).unwrap();
    let granted = Instant::now();
    assert_eq!(chat(&client, &replica, &token, "lease").await.0, 200);
    // The request's own usage is booked (so its slot is no longer reserved) ...
    let deadline = Instant::now() + Duration::from_secs(10);
    let budget = loop {
        let spend = user_spend(&stack, &user).await;
        if spend["usage"]["requests"] == 1 {
            break spend["budgets"][0].clone();
        }
        assert!(Instant::now() < deadline, "usage never booked: {spend}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Envoy writes its access log every 200 ms (`--file-flush-interval-msec`): a kill
    // loses what it has not written, which is the reconciler's matter, not this test's.
    let log = stack.usage_logs()[1].clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !chokepoint_perf::soak::read_access_log(&log)
        .records
        .iter()
        .any(|r| r["user"] == user.as_str())
    {
        assert!(Instant::now() < deadline, "no record in {}", log.display());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // ... and the lease's spare slots stay reserved for replica 1 alone.
    let held = budget["reserved"].as_u64().unwrap();
    let limit = budget["limit"].as_u64().unwrap();
    assert!(
        held > 0 && held % reserve == 0,
        "the lease's spare slots, {reserve} tokens each: {budget}"
    );
    let spare = held / reserve;
    let mut stack = stack;
    stack.kill_replica(1);
    let killed = Instant::now();
    let after_kill = user_spend(&stack, &user).await["budgets"][0].clone();
    assert_eq!(
        after_kill["reserved"].as_u64().unwrap(),
        held,
        "the dead replica's slots are still reserved: {after_kill}"
    );
    // The slots come back when their reservations expire; until then the budget has
    // that much less for the caller on every replica.
    let deadline = Instant::now() + Duration::from_secs(TTL_SECS + 20);
    loop {
        let b = user_spend(&stack, &user).await["budgets"][0].clone();
        if b["reserved"] == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the dead replica's slots never came back: {b}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let back = killed.elapsed();
    println!(
        "replica killed holding {spare} spare slots ({held} of {limit} tokens reserved, {:.1}% of the budget); \
         back {:.1} s after the kill, {:.1} s after the grant (reservation TTL {TTL_SECS} s)",
        100.0 * held as f64 / limit as f64,
        back.as_secs_f64(),
        granted.elapsed().as_secs_f64()
    );
    // The one request served is booked once, and nothing else: ledger = access logs.
    ledger_equals_access_logs(&stack, 1).await;
}

/// Envoy's stats of the filter's policy cluster (the instances).
async fn policy_cluster_stats(stack: &Stack) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for name in [
        "upstream_cx_connect_fail",
        "upstream_rq_rx_reset",
        "upstream_cx_destroy_remote_with_active_rq",
        "outlier_detection.ejections_enforced_total",
        "health_check.failure",
    ] {
        let stat = format!("cluster.chokepoint_policy.{name}$");
        out.push((name.to_string(), stack.envoy_stat(&stat).await));
    }
    out
}

/// Each policy instance's health flags as Envoy's `/clusters` lists them.
async fn instance_health(stack: &Stack) -> Vec<String> {
    let text = reqwest::get(format!("{}/clusters", stack.admin_url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with("chokepoint_policy::") && l.contains("::health_flags::"))
        .map(|l| l.rsplit("::").next().unwrap_or_default().to_string())
        .collect()
}

/// Waits until Envoy's view of the instances satisfies `want`.
async fn instances_until(stack: &Stack, what: &str, want: impl Fn(&[String]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let flags = instance_health(stack).await;
        if want(&flags) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {flags:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How many answers were not 200, and whether each was the failure mode's own
/// (`503 policy_unavailable`).
fn failures(outcomes: &support::Outcomes) -> (u64, bool) {
    let failed = outcomes
        .iter()
        .filter(|((status, _), _)| *status != 200)
        .map(|(_, n)| n)
        .sum();
    let all_policy = outcomes
        .keys()
        .all(|(status, code)| *status == 200 || (*status == 503 && code == "policy_unavailable"));
    (failed, all_policy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_instance_lost_under_load_is_taken_out() {
    // Without leases every request calls authorize: the most callouts to lose.
    let mut stack = support::start("policy-instance", |o| {
        o.policy_instances = 2;
        o.usage_flush_ms = 100;
        o.overrides
            .push(Override::new("policy_service.lease_slots", 0));
    })
    .await;
    let gateway = stack.gateway_url.clone();
    let tokens: Vec<String> = (0..8)
        .map(|i| support::token(&stack, &format!("load-{i}")))
        .collect();
    let mut served_so_far = 0;
    // (how the instance goes, a crash or an orchestrator's stop)
    let cases = [("kill -9", true), ("SIGTERM", false)];
    for (how, crash) in cases {
        instances_until(&stack, "both instances in", |f| {
            f.len() == 2 && f.iter().all(|f| f == "healthy")
        })
        .await;
        let before = policy_cluster_stats(&stack).await;
        let instance_goes = async {
            // SIGTERM waits for the instance to drain: off the runtime's threads.
            tokio::task::block_in_place(|| {
                if crash {
                    stack.kill_policy_instance(1);
                } else {
                    stack.stop_policy_instance(1);
                }
            })
        };
        let (during, failing_for) = load(&gateway, &tokens, instance_goes).await;
        // Once Envoy has the instance out, nothing fails any more.
        instances_until(&stack, "the lost instance out", |f| {
            f.iter().filter(|f| *f == "healthy").count() == 1
        })
        .await;
        let (after, _) = load(&gateway, &tokens, async {}).await;
        let stats = policy_cluster_stats(&stack).await;
        let deltas: Vec<(String, u64)> = stats
            .iter()
            .zip(&before)
            .map(|((k, a), (_, b))| (k.clone(), a - b))
            .collect();
        let (failed, all_policy) = failures(&during);
        let total: u64 = during.values().sum();
        println!(
            "policy instance 1 lost by {how} under load (8 callers): {failed} of {total} requests failed \
             ({during:?}), the last {failing_for:?} after it went; once it was out, {after:?}; Envoy {deltas:?}"
        );
        assert!(
            all_policy,
            "{how}: a failure other than the failure mode's: {during:?}"
        );
        // What is lost is the callouts it had in flight (one per caller at most) and the
        // two failed connections that eject it: nothing after.
        let bound = tokens.len() as u64 + 2;
        assert!(
            failed <= bound,
            "{how}: {failed} failed, more than {bound}: {during:?}"
        );
        assert_eq!(
            failures(&after).0,
            0,
            "{how}: failures after the instance was out: {after:?}"
        );
        let sent: u64 = during.values().chain(after.values()).sum();
        served_so_far += sent as usize;
        let records = ledger_equals_access_logs(&stack, served_so_far).await;
        println!("{how}: ledger = access log ({records} records)");
        stack.start_policy_instance(1).unwrap();
    }
}

/// One caller per token sending chat requests one after another through `gateway`, for
/// a second before `fault` and two after it: the answers, and how long after the fault
/// the last failure came.
async fn load(
    gateway: &str,
    tokens: &[String],
    fault: impl std::future::Future<Output = ()>,
) -> (support::Outcomes, Option<Duration>) {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut set = tokio::task::JoinSet::new();
    for token in tokens {
        let (gateway, token, stop) = (gateway.to_string(), token.clone(), stop.clone());
        set.spawn(async move {
            let client = reqwest::Client::new();
            let mut out = support::Outcomes::new();
            let mut last_failure = None;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let o = chat(&client, &gateway, &token, "load").await;
                if o.0 != 200 {
                    last_failure = Some(Instant::now());
                }
                *out.entry(o).or_default() += 1;
            }
            (out, last_failure)
        });
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let at = Instant::now();
    fault.await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut all = support::Outcomes::new();
    let mut last: Option<Instant> = None;
    while let Some(r) = set.join_next().await {
        let (out, last_failure) = r.unwrap();
        for (k, n) in out {
            *all.entry(k).or_default() += n;
        }
        last = last.max(last_failure);
    }
    (all, last.map(|t| t.saturating_duration_since(at)))
}
