//! The policy service going away: fail closed with a clear 503, Envoy keeps serving, and
//! service resumes when the policy service is back.

use std::time::Duration;

use crate::support::{self, chat, error_code};

#[tokio::test]
async fn policy_outage_fails_closed_and_recovers() {
    let mut stack = support::start("policy-outage", |o| o.policy_timeout_ms = 500).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let url = format!("{}/v1/chat/completions", stack.gateway_url);
    let jwt = support::token(&stack, "bob");

    let resp = client
        .post(&url)
        .bearer_auth(&jwt)
        .json(&chat(false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    stack.kill_policy();
    for _ in 0..3 {
        let resp = client
            .post(&url)
            .bearer_auth(&jwt)
            .json(&chat(false))
            .send()
            .await
            .unwrap();
        assert_eq!(error_code(resp, 503).await, "policy_unavailable");
    }
    let ready = client
        .get(format!("{}/ready", stack.admin_url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        ready.status(),
        200,
        "Envoy stays up while the policy service is down"
    );
    let resp = client.post(&url).json(&chat(false)).send().await.unwrap();
    assert_eq!(
        error_code(resp, 401).await,
        "missing",
        "authentication still works"
    );

    stack.start_policy().expect("policy service restarts");
    let mut last = 0;
    for _ in 0..50 {
        let resp = client
            .post(&url)
            .bearer_auth(&jwt)
            .json(&chat(false))
            .send()
            .await
            .unwrap();
        last = resp.status().as_u16();
        if last == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        last, 200,
        "requests succeed again once the policy service is back"
    );
}

#[tokio::test]
async fn failing_open_serves_through_an_outage_and_still_charges() {
    let mut stack = support::start("fail-open", |o| {
        o.fail_open = true;
        o.policy_timeout_ms = 300;
    })
    .await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let url = format!("{}/v1/chat/completions", stack.gateway_url);
    let jwt = support::token(&stack, "carol");
    stack.kill_policy();
    for _ in 0..2 {
        let resp = client
            .post(&url)
            .bearer_auth(&jwt)
            .json(&chat(false))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "failing open");
    }
    // Authentication is not part of the failure mode.
    let resp = client.post(&url).json(&chat(false)).send().await.unwrap();
    assert_eq!(error_code(resp, 401).await, "missing");
    let stats = client
        .get(format!("{}/stats?filter=failed_open", stack.admin_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        stats.contains("chokepoint.authorize.failed_open: 2"),
        "{stats}"
    );
    // The usage of what went through reaches the ledger once the service is back.
    stack.start_policy().expect("policy service restarts");
    let user = support::uuid_of(&stack, "carol");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let l = support::ledger(&stack, "user", &user).await;
        if l["requests"] == 2 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "ledger: {l}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
