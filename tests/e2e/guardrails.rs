//! Guardrails through real Envoy, for every API: a secret in a request is blocked (the
//! API's own error, nothing reaches the provider), masked (the provider gets the
//! placeholder, the client the provider's answer untouched) or flagged (sent as it
//! came), each recorded in the access log; and an agent's turn with a secret in a tool
//! result is masked while its signed thinking goes back to the provider intact.

use chokepoint_dev::devtoken::TokenSpec;
use chokepoint_dev::stack::{Stack, StackOptions};
use chokepoint_render::overrides::Override;
use serde_json::{json, Value};

use crate::support::{self, access_record, error_shape, upstream_saw};

const AWS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";

/// Three checks on the secret rules, one per group, so one stack shows every action.
fn guarded(o: &mut StackOptions) {
    // Each user sends one request per API: within its window's limit.
    o.requests_per_window = 60;
    let check = |action: &str, group: &str| {
        json!({"name": format!("secrets-{action}"), "detect": ["secret"], "action": action,
               "scope": {"groups": [group]}})
    };
    o.overrides.push(Override::new(
        "guardrails",
        json!({"checks": [
            check("block", "blockers"),
            check("mask", "maskers"),
            check("flag", "flaggers"),
        ]}),
    ));
}

/// One request per API, a secret in a tool's result: (name, path, headers, body).
type Case = (
    &'static str,
    &'static str,
    Vec<(&'static str, &'static str)>,
    Value,
);

fn cases() -> Vec<Case> {
    let tool_output = format!("export AWS_ACCESS_KEY_ID={AWS_KEY}\n");
    let chat = json!({"model": "gpt-4o-mini", "messages": [
        {"role": "user", "content": "What does deploy.sh set?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
            "function": {"name": "read_file", "arguments": "{\"path\":\"deploy.sh\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": tool_output},
    ]});
    vec![
        ("openai-chat", "/v1/chat/completions", vec![], chat.clone()),
        (
            "openai-responses",
            "/v1/responses",
            vec![],
            json!({"model": "gpt-4.1-mini", "input": [
                {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "What does deploy.sh set?"}]},
                {"type": "function_call", "name": "shell", "arguments": "{\"command\":\"cat deploy.sh\"}", "call_id": "call_1"},
                {"type": "function_call_output", "call_id": "call_1", "output": tool_output},
            ]}),
        ),
        (
            "anthropic",
            "/v1/messages",
            vec![("anthropic-version", "2023-06-01")],
            json!({"model": "claude-sonnet-4-5", "max_tokens": 256, "messages": [
                {"role": "user", "content": "What does deploy.sh set?"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "cat deploy.sh"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": tool_output}]},
            ]}),
        ),
        (
            "gemini",
            "/v1beta/models/gemini-2.5-flash:generateContent",
            vec![],
            json!({"contents": [
                {"role": "user", "parts": [{"text": "What does deploy.sh set?"}]},
                {"role": "model", "parts": [{"functionCall": {"name": "run_shell_command", "args": {"command": "cat deploy.sh"}}}]},
                {"role": "user", "parts": [{"functionResponse": {"name": "run_shell_command", "response": {"output": tool_output}}}]},
            ]}),
        ),
        (
            "azure",
            "/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-10-21",
            vec![],
            chat,
        ),
    ]
}

fn token(stack: &Stack, group: &str) -> String {
    stack.token(
        &TokenSpec::new(format!("guard-{group}"))
            .with_tenant("acme")
            .with_groups([group]),
    )
}

async fn send(
    stack: &Stack,
    token: &str,
    case: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(format!("{}{path}", stack.gateway_url))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .header("x-test-case", case)
        .body(body.to_vec());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

fn request_id(resp: &reqwest::Response) -> String {
    resp.headers()["x-chokepoint-request-id"]
        .to_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn each_api_s_secrets_are_blocked_masked_or_flagged() {
    let stack = support::start("guardrails", guarded).await;
    let (blocker, masker, flagger) = (
        token(&stack, "blockers"),
        token(&stack, "maskers"),
        token(&stack, "flaggers"),
    );
    for (name, path, headers, body) in cases() {
        let bytes = serde_json::to_vec_pretty(&body).unwrap();

        // Blocked: the API's own 400, nothing upstream, the verdict recorded.
        let case = format!("{name}-block");
        let resp = send(&stack, &blocker, &case, path, &headers, &bytes).await;
        let id = request_id(&resp);
        let (_, code) = error_shape(resp, 400).await;
        assert_eq!(code, "guardrail_blocked", "{name}");
        assert!(upstream_saw(&stack, &case).await.is_empty(), "{name}: sent");
        let record = access_record(&stack, &id).await;
        assert_eq!(record["decision"], "guardrail_blocked", "{name}");
        assert_eq!(
            record["guardrails"],
            json!([{"name": "secrets-block", "category": "secret", "action": "block", "stage": "request", "count": 1}]),
            "{name}"
        );

        // Masked: the provider gets the placeholder, the client its answer.
        let case = format!("{name}-mask");
        let resp = send(&stack, &masker, &case, path, &headers, &bytes).await;
        assert_eq!(resp.status(), 200, "{name}");
        let id = request_id(&resp);
        let answer: Value = resp.json().await.unwrap();
        assert!(
            !answer.to_string().contains("guardrail"),
            "{name}: {answer}"
        );
        let seen = upstream_saw(&stack, &case).await;
        assert_eq!(seen.len(), 1, "{name}");
        let sent = seen[0]["body"].as_str().unwrap();
        assert!(!sent.contains(AWS_KEY), "{name}: {sent}");
        assert!(sent.contains("[aws-access-key-id:"), "{name}: {sent}");
        let record = access_record(&stack, &id).await;
        assert_eq!(record["guardrails"][0]["action"], "mask", "{name}");
        assert_eq!(record["decision"], "allowed");

        // Flagged: the secret goes as the client sent it (the gateway's own edits, its
        // end-user id and output cap, are the policy's).
        let case = format!("{name}-flag");
        let resp = send(&stack, &flagger, &case, path, &headers, &bytes).await;
        assert_eq!(resp.status(), 200, "{name}");
        let id = request_id(&resp);
        let seen = upstream_saw(&stack, &case).await;
        let sent = seen[0]["body"].as_str().unwrap();
        assert!(
            sent.contains(&format!("export AWS_ACCESS_KEY_ID={AWS_KEY}\\n")),
            "{name}: {sent}"
        );
        assert!(!sent.contains("[aws-access-key-id:"), "{name}");
        let record = access_record(&stack, &id).await;
        assert_eq!(record["guardrails"][0]["action"], "flag", "{name}");
    }
    support::assert_no_wasm_panic(&stack);
}

/// Claude Code's loop: the model thinks (signed) and calls a tool; the tool's result
/// holds a key. The next turn goes with the key masked and the thinking block exactly as
/// the provider signed it (the mock refuses an altered one), and the model's answer,
/// which quotes the result, comes back to the client untouched: the placeholder.
#[tokio::test]
async fn an_agent_turn_with_a_secret_in_a_tool_result_is_masked() {
    let stack = support::start("guardrails-agent", guarded).await;
    let masker = token(&stack, "maskers");
    let headers = [
        ("anthropic-version", "2023-06-01"),
        ("x-mock-tool-call", r#"Bash {"command":"cat deploy.sh"}"#),
    ];
    let tools = json!([{"name": "Bash", "description": "Run a command",
                        "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}}]);
    let mut messages = vec![json!({"role": "user", "content": "What does deploy.sh set?"})];
    let body = |messages: &Vec<Value>| {
        serde_json::to_vec(&json!({"model": "claude-sonnet-4-5", "max_tokens": 1024,
            "thinking": {"type": "enabled", "budget_tokens": 512},
            "tools": tools, "messages": messages}))
        .unwrap()
    };
    let resp = send(
        &stack,
        &masker,
        "agent-1",
        "/v1/messages",
        &headers,
        &body(&messages),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let first: Value = resp.json().await.unwrap();
    let content = first["content"].as_array().unwrap().clone();
    assert!(content.iter().any(|b| b["type"] == "thinking"), "{first}");
    let tool_use = content.iter().find(|b| b["type"] == "tool_use").unwrap();
    messages.push(json!({"role": "assistant", "content": content}));
    messages.push(json!({"role": "user", "content": [{"type": "tool_result",
        "tool_use_id": tool_use["id"], "content": format!("export AWS_ACCESS_KEY_ID={AWS_KEY}")}]}));
    let resp = send(
        &stack,
        &masker,
        "agent-2",
        "/v1/messages",
        &headers,
        &body(&messages),
    )
    .await;
    let id = request_id(&resp);
    let status = resp.status();
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(
        status, 200,
        "the signed thinking went back intact: {answer}"
    );
    let said = answer["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b["text"].as_str())
        .collect::<String>();
    assert!(said.contains("[aws-access-key-id:"), "{answer}");
    assert!(!said.contains(AWS_KEY));
    let seen = upstream_saw(&stack, "agent-2").await;
    let sent: Value = serde_json::from_str(seen[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        sent["messages"][1]["content"],
        json!(messages[1]["content"])
    );
    let record = access_record(&stack, &id).await;
    assert_eq!(
        record["guardrails"],
        json!([{"name": "secrets-mask", "category": "secret", "action": "mask", "stage": "request", "count": 1}])
    );
    support::assert_no_wasm_panic(&stack);
}
