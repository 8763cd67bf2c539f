//! Guardrails on answers through real Envoy: the mock model quotes a tool's result that
//! holds a key (`x-mock-tool-call`), so its answer carries the secret. A whole answer is
//! held and replaced by the API's `guardrail_blocked` error (OpenAI chat, Anthropic); a
//! streamed one is ended with the API's own error event where the key appears, the
//! events before it delivered and nothing after. The records keep the provider's usage.

use chokepoint_dev::devtoken::TokenSpec;
use chokepoint_dev::stack::{Stack, StackOptions};
use chokepoint_render::overrides::Override;
use serde_json::{json, Value};

use crate::support::{self, access_record, error_shape};

const AWS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";

/// One check, on answers only: the request carrying the key goes to the provider.
fn guarded(o: &mut StackOptions) {
    o.requests_per_window = 60;
    o.overrides.push(Override::new(
        "guardrails",
        json!({"checks": [{"name": "answers", "detect": ["secret"], "action": "block",
                           "on": ["response"]}]}),
    ));
}

/// A turn whose last message is a tool's result holding the key: the mock's answer
/// quotes it. (name, path, headers, body)
fn turn(api: &str, stream: bool) -> (&'static str, Vec<(&'static str, &'static str)>, Value) {
    let output = format!("deploy.sh sets AWS_ACCESS_KEY_ID={AWS_KEY} for the upload step");
    match api {
        "anthropic" => (
            "/v1/messages",
            vec![
                ("anthropic-version", "2023-06-01"),
                ("x-mock-tool-call", r#"Bash {"command":"cat deploy.sh"}"#),
            ],
            json!({"model": "claude-sonnet-4-5", "max_tokens": 256, "stream": stream, "messages": [
                {"role": "user", "content": "What does deploy.sh set?"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "cat deploy.sh"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": output}]},
            ]}),
        ),
        _ => (
            "/v1/chat/completions",
            vec![("x-mock-tool-call", r#"read_file {"path":"deploy.sh"}"#)],
            json!({"model": "gpt-4o-mini", "stream": stream,
                   "stream_options": if stream { json!({"include_usage": true}) } else { Value::Null },
                   "messages": [
                {"role": "user", "content": "What does deploy.sh set?"},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                    "function": {"name": "read_file", "arguments": "{\"path\":\"deploy.sh\"}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": output},
            ]}),
        ),
    }
}

async fn send(stack: &Stack, token: &str, api: &str, stream: bool) -> reqwest::Response {
    let (path, headers, mut body) = turn(api, stream);
    if let Some(o) = body.as_object_mut() {
        o.retain(|_, v| !v.is_null());
    }
    let mut req = reqwest::Client::new()
        .post(format!("{}{path}", stack.gateway_url))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .json(&body);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    if stream {
        // Events apart, as a model streams them: the ones before the key reach the
        // client in chunks of their own (a chunk holding the key is replaced whole).
        req = req.header("x-mock-event-delay-ms", "30");
    }
    req.send().await.unwrap()
}

fn request_id(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("x-chokepoint-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

fn logs(stack: &Stack) -> String {
    std::fs::read_to_string(stack.opts.run_dir.join("envoy.log")).unwrap_or_default()
}

#[tokio::test]
async fn answers_with_a_secret_are_blocked_whole_or_ended_mid_stream() {
    let stack = support::start("guardrail-answers", guarded).await;
    let token = stack.token(&TokenSpec::new("answers").with_tenant("acme"));
    for api in ["openai", "anthropic"] {
        // Whole: held, and the API's error in its place.
        let resp = send(&stack, &token, api, false).await;
        let id = request_id(&resp);
        assert!(
            !id.is_empty(),
            "{api}: the request id on the gateway's reply"
        );
        let (_, code) = error_shape(resp, 400).await;
        assert_eq!(code, "guardrail_blocked", "{api}\n{}", logs(&stack));
        let record = access_record(&stack, &id).await;
        assert_eq!(record["status"], 400, "{api}: {record}");
        assert_eq!(record["decision"], "guardrail_blocked", "{api}");
        assert_eq!(
            record["guardrails"],
            json!([{"name": "answers", "category": "secret", "action": "block", "stage": "response", "count": 1}]),
            "{api}"
        );
        assert!(
            record["input_tokens"].as_u64().unwrap() > 0
                && record["output_tokens"].as_u64().unwrap() > 0,
            "{api}: the provider's usage is charged: {record}"
        );

        // Streamed: the events before the key, then the API's error event, then nothing.
        let resp = send(&stack, &token, api, true).await;
        assert_eq!(resp.status(), 200, "{api}");
        let id = request_id(&resp);
        let text = resp.text().await.unwrap();
        assert!(!text.contains(AWS_KEY), "{api}: {text}");
        assert!(
            text.contains("The tool returned"),
            "{api}: the start came: {text}"
        );
        let at = text
            .find("guardrail_blocked")
            .unwrap_or_else(|| panic!("{api}: no error event: {text}\n{}", logs(&stack)));
        let tail = &text[at..];
        assert_eq!(
            tail.matches("\n\n").count(),
            1,
            "{api}: nothing after: {tail}"
        );
        let event_start = text[..at].rfind("\n\n").map_or(0, |i| i + 2);
        let event = &text[event_start..];
        match api {
            "anthropic" => assert!(event.starts_with("event: error\ndata: "), "{event}"),
            _ => assert!(event.starts_with("data: {\"error\""), "{event}"),
        }
        assert!(
            !text.contains("[DONE]") && !text.contains("message_stop"),
            "{text}"
        );
        let record = access_record(&stack, &id).await;
        assert_eq!(record["status"], 200, "{api}: the stream had begun");
        assert_eq!(record["decision"], "guardrail_blocked", "{api}");
        assert_eq!(record["guardrails"][0]["stage"], "response", "{api}");
        assert_eq!(record["guardrails"][0]["action"], "block", "{api}");
        assert!(
            record["output_tokens"].as_u64().unwrap() > 0,
            "{api}: every streamed token counted: {record}"
        );
        assert_eq!(
            record["completed"], true,
            "{api}: the provider's stream was read to its end: {record}"
        );
    }
    support::assert_no_wasm_panic(&stack);
}
