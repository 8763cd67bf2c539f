//! Only the gateway may call the policy service: Envoy's filter sends the gateway token
//! from its environment on every callout, the service refuses anyone without it, and the
//! admin API is not on the gateway's listener. On the build before this, a direct
//! `POST /v1/usage {"records":[]}` from anyone answered 200.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{self, ledger_settled, policy_metric};

/// A POST to the policy service's gateway listener, with `token` as the bearer if any.
async fn post(url: &str, token: Option<&str>, body: &Value) -> (StatusCode, Value) {
    let mut call = reqwest::Client::new().post(url).json(body);
    if let Some(token) = token {
        call = call.bearer_auth(token);
    }
    let resp = call.send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn chat(stack: &chokepoint_dev::stack::Stack, subject: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", stack.gateway_url))
        .bearer_auth(support::token(stack, subject))
        .json(&support::chat(false))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn only_the_gateway_reaches_the_policy_service() {
    let mut stack = support::start("policy-auth", |_| {}).await;

    // Through Envoy the token flows: decided, answered, booked.
    let resp = chat(&stack, "auth-user").await;
    assert_eq!(resp.status(), 200);
    let ledger = ledger_settled(&stack, &support::uuid_of(&stack, "auth-user"), 1).await;
    assert_eq!(ledger["requests"], 1, "{ledger}");

    // Directly, without the token (or with another), the gateway's endpoints refuse.
    let user = support::uuid_of(&stack, "victim");
    let authorize = json!({"request_id": "forged-1", "user": user, "tenant": "acme", "reserve_cost_micros": 1_000_000});
    let usage = json!({"records": []});
    let forged = json!({"records": [{"request_id": "forged-2", "user": user, "input_tokens": 0, "output_tokens": 0}]});
    let wrong = "0".repeat(64);
    let cases = [
        ("/v1/usage", &usage, None, "missing_gateway_token"),
        (
            "/v1/usage",
            &forged,
            Some(wrong.as_str()),
            "invalid_gateway_token",
        ),
        ("/v1/authorize", &authorize, None, "missing_gateway_token"),
        (
            "/v1/authorize",
            &authorize,
            Some(stack.opts.admin_token.as_str()),
            "invalid_gateway_token",
        ),
    ];
    for (path, body, token, code) in cases {
        let (status, answer) = post(&format!("{}{path}", stack.policy_url), token, body).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{path} {token:?}: {answer}"
        );
        assert_eq!(answer["error"]["code"], code, "{path}: {answer}");
    }
    // The admin API and metrics are not on the gateway's listener, with any token.
    for path in ["/v1/admin/limits", "/metrics"] {
        let resp = reqwest::Client::new()
            .get(format!("{}{path}", stack.policy_url))
            .bearer_auth(&stack.opts.admin_token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404, "{path} on the gateway listener");
    }
    assert_eq!(
        policy_metric(&stack, "chokepoint_policy_gateway_refusals_total").await,
        4
    );

    // The token is in neither Envoy's configuration nor any log or record, only the name
    // of its variable.
    let dump = reqwest::get(format!("{}/config_dump", stack.admin_url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        dump.contains("CHOKEPOINT_POLICY_TOKEN"),
        "host_env_keys names it"
    );
    for (what, text) in [
        ("config_dump", dump),
        (
            "envoy.log",
            std::fs::read_to_string(stack.opts.run_dir.join("envoy.log")).unwrap(),
        ),
        (
            "policy.log",
            std::fs::read_to_string(stack.opts.run_dir.join("policy.log")).unwrap(),
        ),
        (
            "usage log",
            std::fs::read_to_string(stack.usage_log()).unwrap(),
        ),
    ] {
        assert!(
            !text.contains(&stack.opts.policy_token),
            "the token is in {what}"
        );
    }

    // A token rotated on one side only fails loudly: the gateway's calls are refused and
    // the request fails closed.
    stack.kill_policy();
    stack.opts.policy_token = "1".repeat(64);
    stack.start_policy().unwrap();
    let resp = chat(&stack, "after-rotation").await;
    assert_eq!(support::error_code(resp, 503).await, "policy_unavailable");
    assert!(
        policy_metric(
            &stack,
            "chokepoint_policy_gateway_refusals_total{code=\"invalid_gateway_token\"}"
        )
        .await
            >= 1
    );
    support::assert_no_wasm_panic(&stack);
}

/// Without the token in Envoy's environment (or with a short one) the filter refuses to
/// load, naming its field and the variable, and the stack never becomes ready.
#[tokio::test]
async fn envoy_refuses_the_filter_without_the_policy_token() {
    for (name, token) in [("no-token", None), ("short-token", Some("s".repeat(31)))] {
        let err = support::try_start(name, move |o| o.envoy_policy_token = token)
            .await
            .err()
            .unwrap_or_else(|| panic!("{name}: the stack started"));
        let refusal = err.lines().next().unwrap_or_default();
        assert!(
            refusal.contains("the filter refused its configuration")
                && refusal.contains("invalid plugin configuration: policy.token_env")
                && refusal.contains("CHOKEPOINT_POLICY_TOKEN"),
            "{name}: {err}"
        );
    }
}
