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
