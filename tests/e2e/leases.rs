//! Leases through the real stack: a caller's requests are admitted from slots the policy
//! service reserved in one decision (far fewer callouts than requests), every request is
//! still charged exactly once, and the slots not used go back when the lease expires.

use std::time::{Duration, Instant};

use chokepoint_dev::stack::Stack;
use serde_json::json;

use crate::support::{self, ledger_settled};

async fn decisions(stack: &Stack) -> u64 {
    support::policy_metric(
        stack,
        "chokepoint_policy_authorize_total{decision=\"allow\"}",
    )
    .await
}

/// (authorize decisions since `before`, requests served from slots, renewals answered),
/// once two reads 250 ms apart agree.
async fn settled_counts(stack: &Stack, before: u64) -> (u64, u64, u64) {
    let read = || async {
        (
            decisions(stack).await - before,
            stack.envoy_stat("chokepoint.authorize.lease_served").await,
            stack.envoy_stat("chokepoint.authorize.lease_renewed").await,
        )
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = read().await;
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = read().await;
        if now == last {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "lease counters still moving after 10 s: {now:?}"
        );
        last = now;
    }
}

#[tokio::test]
async fn leases_admit_without_callouts_and_charge_exactly() {
    let stack = support::start("leases", |o| o.requests_per_window = 1000).await;
    let user = support::uuid_of(&stack, "leaser");
    reqwest::Client::new()
        .put(format!(
            "{}/v1/admin/limits/user/{user}",
            stack.policy_admin_url
        ))
        .bearer_auth(&stack.opts.admin_token)
        .json(&json!({"usd_micros": 100_000_000, "period": "month"}))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    let token = support::token(&stack, "leaser");
    let client = reqwest::Client::new();
    let before = decisions(&stack).await;
    const N: u64 = 40;
    for i in 0..N {
        let resp = client
            .post(format!("{}/v1/chat/completions", stack.gateway_url))
            .bearer_auth(&token)
            .json(&support::chat(i % 2 == 0))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "request {i}");
        let _ = resp.bytes().await.unwrap();
    }
    // A busy caller's lease is renewed in the background before it runs out: those
    // decisions come from the root, not from a request. The policy service counts a
    // renewal when it decides and Envoy when the answer arrives, so one still in flight
    // shows on one side only: read until both sides stop moving.
    let (callouts, served, renewed) = settled_counts(&stack, before).await;
    println!("{N} requests, {callouts} authorize decisions");
    assert!(
        callouts <= N / 4,
        "{callouts} decisions for {N} requests: leases are not used"
    );
    println!("{served} served from slots, {renewed} renewals");
    assert_eq!(
        served + callouts - renewed,
        N,
        "served {served}, renewed {renewed}"
    );

    // Every request charged once; after the leases expire (2 s) their unused slots are
    // released, so nothing stays reserved and the spend equals the ledger.
    let l = ledger_settled(&stack, &user, N).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let b = support::user_spend(&stack, &user).await["budgets"][0].clone();
        if b["reserved"] == 0 {
            assert_eq!(b["spent"], l["cost_micros"], "{b} vs {l}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "unused slots never released: {b}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
