//! Guardrails on answers through real Envoy: the mock model quotes a tool's result that
//! holds a key (`x-mock-tool-call`), so its answer carries the secret. A whole answer is
//! held and replaced by the API's `guardrail_blocked` error; a streamed one is ended
//! with the API's own error event where the key appears, the events before it delivered
//! and nothing after (OpenAI chat and Responses, Anthropic, Gemini). The records keep
//! the provider's usage. A guardrail service on answers (the mock's, its verdict picked
//! by a marker the answer quotes): a whole answer blocked, rewritten, and refused when
//! the service is too slow, and a stream ended by its verdict at the last chunk, held
//! for it.

use chokepoint_dev::devtoken::TokenSpec;
use chokepoint_dev::stack::{Stack, StackOptions};
use chokepoint_render::overrides::Override;
use serde_json::{json, Value};

use crate::support::{self, access_record, error_shape, header};

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

/// A turn whose last message is a tool's result holding `output`: the mock's answer
/// quotes it. (path, headers, body)
fn turn_with(
    api: &str,
    stream: bool,
    output: &str,
) -> (&'static str, Vec<(&'static str, &'static str)>, Value) {
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
        "responses" => (
            "/v1/responses",
            vec![("x-mock-tool-call", r#"shell {"command":"cat deploy.sh"}"#)],
            json!({"model": "gpt-4.1-mini", "stream": stream, "input": [
                {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "What does deploy.sh set?"}]},
                {"type": "function_call", "name": "shell", "arguments": "{\"command\":\"cat deploy.sh\"}", "call_id": "call_1"},
                {"type": "function_call_output", "call_id": "call_1", "output": output},
            ]}),
        ),
        "gemini" => (
            if stream {
                "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
            } else {
                "/v1beta/models/gemini-2.5-flash:generateContent"
            },
            vec![(
                "x-mock-tool-call",
                r#"run_shell_command {"command":"cat deploy.sh"}"#,
            )],
            json!({"contents": [
                {"role": "user", "parts": [{"text": "What does deploy.sh set?"}]},
                {"role": "model", "parts": [{"functionCall": {"name": "run_shell_command", "args": {"command": "cat deploy.sh"}}}]},
                {"role": "user", "parts": [{"functionResponse": {"name": "run_shell_command", "response": {"output": output}}}]},
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
    let output = format!("deploy.sh sets AWS_ACCESS_KEY_ID={AWS_KEY} for the upload step");
    send_with(stack, token, api, stream, &output).await
}

async fn send_with(
    stack: &Stack,
    token: &str,
    api: &str,
    stream: bool,
    output: &str,
) -> reqwest::Response {
    let (path, headers, mut body) = turn_with(api, stream, output);
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
    for api in ["openai", "responses", "anthropic", "gemini"] {
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
        // The mock streams Gemini's quote as one chunk: the block replaces all of it.
        assert!(
            api == "gemini" || text.contains("The tool returned"),
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
        let event = last_event(&text[..at], &text[at..]);
        match api {
            "anthropic" | "responses" => {
                assert!(event.starts_with("event: error\ndata: "), "{api}: {event}")
            }
            _ => assert!(event.starts_with("data: {\"error\""), "{api}: {event}"),
        }
        assert_ended(api, &text);
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

/// The event that starts in `before` (after its last blank line) and ends in `rest`.
fn last_event(before: &str, rest: &str) -> String {
    let start = [
        before.rfind("\n\n"),
        before.rfind("\r\n\r\n").map(|i| i + 2),
    ]
    .into_iter()
    .flatten()
    .max()
    .map_or(0, |i| i + 2);
    format!("{}{rest}", &before[start..])
}

/// None of the API's own end of stream reached the client.
fn assert_ended(api: &str, text: &str) {
    for end in [
        "[DONE]",
        "message_stop",
        "response.completed",
        "\"finishReason\"",
    ] {
        assert!(!text.contains(end), "{api}: {end} came: {text}");
    }
}

const GUARD_KEY: &str = "guard-answers-e2e-key";

/// A service check on answers only, failing closed, on the mock's guardrail service.
fn service_on_answers(o: &mut StackOptions) {
    let port = std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    o.ports.mock = port;
    o.guardrail_key = Some(GUARD_KEY.into());
    o.requests_per_window = 60;
    let url = format!(
        "http://127.0.0.1:{port}{}",
        chokepoint_dev::mock::GUARDRAIL_PATH
    );
    o.overrides.push(Override::new(
        "guardrails",
        json!({"checks": [{"name": "dlp-answers", "on": ["response"],
               "service": {"url": url, "timeout_ms": 500, "failure_mode": "closed",
                           "api_key_env": chokepoint_dev::stack::MOCK_GUARDRAIL_KEY_ENV}}]}),
    ));
}

/// The guardrail service's calls whose texts mention `case`: each call's body.
async fn service_saw(stack: &Stack, case: &str) -> Vec<(Value, Value)> {
    let url = format!("{}/__mock/requests", stack.mock_url.as_deref().unwrap());
    let all: Vec<Value> = reqwest::get(url).await.unwrap().json().await.unwrap();
    all.into_iter()
        .filter(|r| r["path"] == chokepoint_dev::mock::GUARDRAIL_PATH)
        .filter_map(|r| {
            let body: Value = serde_json::from_str(r["body"].as_str()?).ok()?;
            body["texts"]
                .as_array()?
                .iter()
                .any(|t| t.as_str().is_some_and(|t| t.contains(case)))
                .then_some((r, body))
        })
        .collect()
}

fn service_verdict(action: &str, count: u64) -> Value {
    json!([{"name": "dlp-answers", "category": "service", "action": action, "stage": "response", "count": count}])
}

#[tokio::test]
async fn a_guardrail_service_judges_answers_whole_and_streamed() {
    let stack = support::start("guardrail-answer-service", service_on_answers).await;
    let token = stack.token(&TokenSpec::new("answers-svc").with_tenant("acme"));

    // BLOCKED on a whole answer: the API's 400, the reason never, the usage charged.
    let case = "ans-block";
    let resp = send_with(
        &stack,
        &token,
        "openai",
        false,
        &format!("{case} GUARD-BLOCK"),
    )
    .await;
    let id = request_id(&resp);
    let (_, code) = error_shape(resp, 400).await;
    assert_eq!(code, "guardrail_blocked", "{}", logs(&stack));
    let calls = service_saw(&stack, case).await;
    // The request's texts are not judged (on: response): one call, the answer's.
    assert_eq!(calls.len(), 1, "{calls:?}");
    let (call, body) = &calls[0];
    assert_eq!(body["input_type"], "response");
    assert_eq!(
        header(call, "authorization").as_deref(),
        Some(format!("Bearer {GUARD_KEY}").as_str())
    );
    let record = access_record(&stack, &id).await;
    assert_eq!(record["status"], 400, "{record}");
    assert_eq!(record["decision"], "guardrail_blocked");
    assert_eq!(record["guardrails"], service_verdict("block", 0));
    assert!(record["output_tokens"].as_u64().unwrap() > 0, "{record}");
    assert_eq!(body["request_data"]["user_api_key_user_id"], record["user"]);

    // GUARDRAIL_INTERVENED: the client's answer carries the replacement.
    let case = "ans-mask";
    let output = format!("{case} password hunter2 GUARD-MASK:hunter2");
    let resp = send_with(&stack, &token, "anthropic", false, &output).await;
    assert_eq!(resp.status(), 200, "{}", logs(&stack));
    let id = request_id(&resp);
    let length: usize = resp.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let text = resp.text().await.unwrap();
    assert_eq!(length, text.len(), "content-length follows the rewrite");
    let answer: Value = serde_json::from_str(&text).unwrap();
    let said = answer["content"][0]["text"].as_str().unwrap();
    assert!(
        said.contains("password [MASKED] GUARD-MASK:[MASKED]"),
        "{said}"
    );
    assert!(!text.contains("hunter2"), "{text}");
    let record = access_record(&stack, &id).await;
    assert_eq!(record["decision"], "allowed");
    assert_eq!(record["guardrails"], service_verdict("mask", 1));

    // A service slow past its timeout while the answer is held: closed, the API's 503
    // in its place, the usage still charged.
    let case = "ans-slow";
    let resp = send_with(
        &stack,
        &token,
        "openai",
        false,
        &format!("{case} GUARD-SLOW"),
    )
    .await;
    let id = request_id(&resp);
    let (_, code) = error_shape(resp, 503).await;
    assert_eq!(code, "guardrail_unavailable", "{}", logs(&stack));
    let record = access_record(&stack, &id).await;
    assert_eq!(record["decision"], "guardrail_unavailable");
    assert_eq!(record["guardrails"], service_verdict("block", 0));
    assert!(record["output_tokens"].as_u64().unwrap() > 0, "{record}");

    // A stream: judged at its end (its text is under 2 KiB), the last chunk held for
    // the verdict and replaced by the API's error event.
    let case = "ans-stream";
    let resp = send_with(
        &stack,
        &token,
        "openai",
        true,
        &format!("{case} GUARD-BLOCK"),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let id = request_id(&resp);
    let text = resp.text().await.unwrap();
    let at = text
        .find("guardrail_blocked")
        .unwrap_or_else(|| panic!("no error event: {text}\n{}", logs(&stack)));
    assert!(
        last_event(&text[..at], &text[at..]).starts_with("data: {\"error\""),
        "{text}"
    );
    assert!(
        text.contains("The tool returned"),
        "delivered before the verdict: {text}"
    );
    assert_ended("openai", &text);
    let record = access_record(&stack, &id).await;
    assert_eq!(record["status"], 200);
    assert_eq!(record["decision"], "guardrail_blocked");
    assert_eq!(record["guardrails"], service_verdict("block", 0));
    assert_eq!(record["completed"], true, "{record}");
    support::assert_no_wasm_panic(&stack);
}
