//! Budgets and rate limits through the real Envoy: a budget that affords exactly N
//! requests stays exact under a 10N-request race, and RPM/TPM windows deny and recover.

use std::time::Duration;

use chokepoint_dev::stack::Stack;
use serde_json::{json, Value};

use crate::support::{self, error_code, upstream_saw};

async fn set_limits(stack: &Stack, user: &str, limits: Value) {
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

fn body(case: &str) -> Value {
    json!({"model": "gpt-4o-mini", "max_tokens": 50, "messages": [{"role": "user", "content": case}]})
}

/// The filter's worst case for `body`: ~4 bytes a token of the body, plus its cap.
fn reserve_tokens(body: &Value) -> u64 {
    (serde_json::to_vec(body).unwrap().len() as u64).div_ceil(4) + 50
}

async fn send(stack: &Stack, token: &str, case: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", stack.gateway_url))
        .bearer_auth(token)
        .header("x-test-case", case)
        .json(&body(case))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_budget_holds_exactly_under_a_race() {
    const N: u64 = 4;
    // A slow flush: no usage is committed (and no reservation released) during the race.
    let stack = support::start("budget-race", |o| {
        o.requests_per_window = 10_000;
        o.usage_flush_ms = 3000;
    })
    .await;
    let user = support::uuid_of(&stack, "racer");
    let reserve = reserve_tokens(&body("race"));
    set_limits(
        &stack,
        &user,
        json!({"tokens": N * reserve, "period": "day"}),
    )
    .await;

    let token = support::token(&stack, "racer");
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..10 * N {
        let (gateway, token) = (stack.gateway_url.clone(), token.clone());
        set.spawn(async move {
            let resp = reqwest::Client::new()
                .post(format!("{gateway}/v1/chat/completions"))
                .bearer_auth(&token)
                .header("x-test-case", "race")
                .json(&body("race"))
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let v: Value = resp.json().await.unwrap_or_default();
            (status, v)
        });
    }
    let (mut served, mut denied, mut used) = (0, 0, 0);
    while let Some(r) = set.join_next().await {
        let (status, v) = r.unwrap();
        match status {
            200 => {
                served += 1;
                used += v["usage"]["total_tokens"].as_u64().unwrap();
            }
            429 => {
                denied += 1;
                assert_eq!(v["error"]["code"], "budget_exceeded", "{v}");
            }
            other => panic!("unexpected {other}: {v}"),
        }
    }
    assert_eq!(served, N, "exactly the affordable requests are served");
    assert_eq!(denied, 9 * N);
    assert_eq!(
        upstream_saw(&stack, "race").await.len() as u64,
        N,
        "the provider saw only those"
    );

    // The ledger settles on the actual usage of the served requests, within the budget.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let spend = support::user_spend(&stack, &user).await;
        let usage = &spend["usage"];
        if usage["requests"] == N {
            let tokens =
                usage["input_tokens"].as_u64().unwrap() + usage["output_tokens"].as_u64().unwrap();
            assert_eq!(tokens, used, "{spend}");
            assert!(tokens <= N * reserve);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "ledger never settled: {spend}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn rate_windows_deny_then_recover() {
    let stack = support::start("rate-windows", |o| {
        o.requests_per_window = 10_000;
        o.window_secs = 2;
    })
    .await;
    // Requests per window.
    let user = support::uuid_of(&stack, "rpm-user");
    set_limits(&stack, &user, json!({"rpm": 2})).await;
    let token = support::token(&stack, "rpm-user");
    for _ in 0..2 {
        let resp = send(&stack, &token, "rpm").await;
        assert_eq!(resp.status(), 200);
        assert!(resp
            .headers()
            .contains_key("x-ratelimit-remaining-requests"));
    }
    let resp = send(&stack, &token, "rpm").await;
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "retry-after {retry}");
    assert_eq!(error_code(resp, 429).await, "rate_limited");
    tokio::time::sleep(Duration::from_millis(retry * 1000 + 200)).await;
    assert_eq!(
        send(&stack, &token, "rpm").await.status(),
        200,
        "the window reset"
    );

    // Tokens per window: one request's worst case fits, a second does not.
    let user = support::uuid_of(&stack, "tpm-user");
    set_limits(
        &stack,
        &user,
        json!({"tpm": reserve_tokens(&body("tpm")) + 5}),
    )
    .await;
    let token = support::token(&stack, "tpm-user");
    assert_eq!(send(&stack, &token, "tpm").await.status(), 200);
    let resp = send(&stack, &token, "tpm").await;
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(error_code(resp, 429).await, "rate_limited");
    tokio::time::sleep(Duration::from_millis(retry * 1000 + 200)).await;
    assert_eq!(
        send(&stack, &token, "tpm").await.status(),
        200,
        "the window reset"
    );
}
