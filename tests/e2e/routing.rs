//! Model routing through the real Envoy: aliases, globs, allow-lists, the model list, the
//! anonymous end-user id in the provider's own field, and no provider key anywhere a
//! client or an operator can see it.

use serde_json::{json, Value};

use crate::support::{self, error_code, header, upstream_saw};

#[tokio::test]
async fn models_route_by_name_alias_and_group() {
    let stack = support::start("routing", |_| {}).await;
    let client = reqwest::Client::new();
    let url = format!("{}/v1/chat/completions", stack.gateway_url);
    let token = support::token(&stack, "router");

    // An alias reaches the provider as its target, with the user id in its end-user field.
    let resp = client
        .post(&url)
        .bearer_auth(&token)
        .header("x-test-case", "alias")
        .header("accept-encoding", "gzip, br")
        .json(&json!({"model": "default", "user": "router@corp.example", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = upstream_saw(&stack, "alias").await;
    let sent: Value = serde_json::from_str(seen[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(sent["model"], "gpt-4.1-mini");
    let uuid = support::uuid_of(&stack, "router");
    assert_eq!(
        sent["user"],
        uuid.as_str(),
        "the client's own value is replaced"
    );
    assert_eq!(sent["safety_identifier"], uuid.as_str());
    assert_eq!(
        header(&seen[0], "accept-encoding").as_deref(),
        Some("identity")
    );

    // Anthropic's end-user field, through a glob route.
    let resp = client
        .post(format!("{}/v1/messages", stack.gateway_url))
        .bearer_auth(&token)
        .header("x-test-case", "glob")
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = upstream_saw(&stack, "glob").await;
    let sent: Value = serde_json::from_str(seen[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(sent["metadata"]["user_id"], uuid.as_str());
    assert_eq!(
        header(&seen[0], "x-api-key").as_deref(),
        Some(stack.opts.mock_key.as_str())
    );

    // Refusals in the OpenAI shape, and the provider never called.
    let cases = [
        (
            "/v1/chat/completions",
            json!({"model": "llama-3-70b", "messages": []}),
            404,
            "model_not_found",
        ),
        (
            "/v1/messages",
            json!({"model": "claude-opus-4", "max_tokens": 5, "messages": []}),
            403,
            "model_not_allowed",
        ),
        (
            "/v1/messages",
            json!({"model": "gpt-4o-mini", "max_tokens": 5, "messages": []}),
            400,
            "wrong_api",
        ),
    ];
    for (path, body, status, code) in cases {
        let resp = client
            .post(format!("{}{path}", stack.gateway_url))
            .bearer_auth(&token)
            .header("x-test-case", "refused")
            .header("anthropic-version", "2023-06-01")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(error_code(resp, status).await, code, "{body}");
    }
    assert!(upstream_saw(&stack, "refused").await.is_empty());
    // A member of the group may use the restricted model.
    let researcher = stack
        .token(&chokepoint_dev::devtoken::TokenSpec::new("researcher").with_groups(["research"]));
    let resp = client
        .post(format!("{}/v1/messages", stack.gateway_url))
        .bearer_auth(&researcher)
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "claude-opus-4", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // The model list is the caller's view of the route table.
    let list: Value = client
        .get(format!("{}/v1/models", stack.gateway_url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert!(
        ids.contains(&"gpt-4o-mini") && ids.contains(&"default"),
        "{list}"
    );
    // One model, as the OpenAI and Anthropic SDKs retrieve it (Anthropic's with x-api-key).
    let one = client
        .get(format!("{}/v1/models/claude-sonnet-4-5", stack.gateway_url))
        .header("x-api-key", &token)
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap();
    assert_eq!(one.status(), 200);
    let one: Value = one.json().await.unwrap();
    assert_eq!(one["id"], "claude-sonnet-4-5", "{one}");
    assert_eq!(one["type"], "model");
    let none = client
        .get(format!("{}/v1/models/no-such-model", stack.gateway_url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(none, 404).await, "model_not_found");

    // No provider key in anything a client or an operator sees.
    let key = stack.opts.mock_key.clone();
    let admin = |path: &str| format!("{}{path}", stack.admin_url);
    for url in [
        admin("/config_dump"),
        admin("/stats"),
        admin("/stats/prometheus"),
    ] {
        let text = client.get(&url).send().await.unwrap().text().await.unwrap();
        assert!(!text.contains(&key), "provider key in {url}");
    }
    assert!(!list.to_string().contains(&key));
    let logs = stack.logs();
    assert!(!logs.contains(&key), "provider key in a log");
    let usage_log = std::fs::read_to_string(stack.usage_log()).unwrap_or_default();
    assert!(
        !usage_log.is_empty() && !usage_log.contains(&key),
        "provider key in the access log"
    );
}
