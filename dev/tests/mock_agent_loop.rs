//! The mock provider in an agent loop (`x-mock-tool-call`): in each format, the first
//! turn calls the tool the request offers, with the model's signed hidden state (an
//! Anthropic thinking block, a Responses reasoning item's encrypted content, a Gemini
//! thought signature); the next turn, carrying the tool's result and that state back as
//! Claude Code 2.1.332, Codex 0.171.0 and Gemini CLI 0.61.0 send them (shapes copied
//! from their requests), is answered with text quoting the result; and a request
//! carrying the state altered or, for Gemini 3, without its signature, gets the
//! provider's 400.

use chokepoint_dev::mock::{self, MockConfig, RunningMock};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

const KEY: &str = "sk-test-loop-key";
const BASH: &str = r#"Bash {"command": "cat nonce.txt", "description": "Show the nonce file"}"#;
const EXEC: &str =
    r#"exec const r = await tools.exec_command({cmd: "cat nonce.txt"}); text(r.output);"#;
const READ: &str = r#"read_file {"file_path":"/work/nonce.txt"}"#;
const NONCE: &str = "nonce-97e2e4bd06eb4d97";

async fn start() -> RunningMock {
    mock::spawn(MockConfig {
        api_key: KEY.into(),
        name: "loop-mock".into(),
        guardrail_key: None,
    })
    .await
    .expect("mock starts")
}

/// Posts `body` to `path` with the format's key, `x-mock-tool-call: call` when given;
/// the status and the body as text.
async fn post(
    m: &RunningMock,
    path: &str,
    call: Option<&str>,
    body: &Value,
) -> (StatusCode, String) {
    let client = Client::builder().no_proxy().build().unwrap();
    let mut req = client
        .post(format!("{}{path}", m.base_url()))
        .header("authorization", format!("Bearer {KEY}"))
        .header("x-api-key", KEY)
        .header("x-goog-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .json(body);
    if let Some(c) = call {
        req = req.header("x-mock-tool-call", c);
    }
    let resp = req.send().await.unwrap();
    (resp.status(), resp.text().await.unwrap())
}

/// The `data:` payloads of an SSE body, with the `event:` name when there is one.
fn events(body: &str) -> Vec<(String, Value)> {
    body.replace("\r\n", "\n")
        .split_terminator("\n\n")
        .map(|block| {
            let mut name = String::new();
            let mut data = Value::Null;
            for line in block.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = n.into();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    // `[DONE]`, the one payload that is not JSON, reads as null.
                    data = serde_json::from_str(d).unwrap_or(Value::Null);
                }
            }
            (name, data)
        })
        .collect()
}

fn flip_one_char(s: &str) -> String {
    let mut c: Vec<char> = s.chars().collect();
    let i = c.len() / 2;
    c[i] = if c[i] == 'A' { 'B' } else { 'A' };
    c.into_iter().collect()
}

// ---- Anthropic Messages ------------------------------------------------------------------

fn claude_turn1(stream: bool, display: Option<&str>) -> Value {
    let mut thinking = json!({"type": "adaptive"});
    if let Some(d) = display {
        thinking["display"] = json!(d);
    }
    json!({
        "model": "claude-opus-5-5",
        "max_tokens": 32000,
        "stream": stream,
        "thinking": thinking,
        "tools": [
            {"name": "Bash", "description": "Executes a bash command", "input_schema": {"type": "object"}},
            {"name": "Read", "description": "Reads a file", "input_schema": {"type": "object"}},
        ],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Read nonce.txt."}]}],
    })
}

/// Claude Code's second request: its first plus the assistant turn as it came back and
/// the tool's result.
fn claude_turn2(turn1: &Value, assistant: Value, tool_use_id: &str) -> Value {
    let mut body = turn1.clone();
    let messages = body["messages"].as_array_mut().unwrap();
    messages.push(json!({"role": "assistant", "content": assistant}));
    messages.push(json!({"role": "user", "content": [{
        "tool_use_id": tool_use_id, "type": "tool_result", "content": format!("{NONCE}\n"),
        "is_error": false, "cache_control": {"type": "ephemeral"},
    }]}));
    body
}

#[tokio::test]
async fn anthropic_stream_calls_the_tool_after_signed_thinking() {
    let m = start().await;
    let turn1 = claude_turn1(true, Some("omitted"));
    let (status, body) = post(&m, "/v1/messages", Some(BASH), &turn1).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ev = events(&body);
    let starts: Vec<&Value> = ev
        .iter()
        .filter(|(n, _)| n == "content_block_start")
        .map(|(_, d)| &d["content_block"])
        .collect();
    assert_eq!(starts[0]["type"], "thinking");
    assert_eq!(starts[1]["type"], "tool_use");
    assert_eq!(starts[1]["name"], "Bash");
    assert_eq!(starts[1]["input"], json!({}));
    let deltas = |kind: &str, field: &str| -> String {
        ev.iter()
            .filter(|(_, d)| d["delta"]["type"] == kind)
            .map(|(_, d)| d["delta"][field].as_str().unwrap().to_string())
            .collect()
    };
    // display "omitted": no thinking text, only the signature.
    assert_eq!(deltas("thinking_delta", "thinking"), "");
    let signature = deltas("signature_delta", "signature");
    assert!(signature.len() > 40, "{signature}");
    let input: Value = serde_json::from_str(&deltas("input_json_delta", "partial_json")).unwrap();
    assert_eq!(
        input,
        json!({"command": "cat nonce.txt", "description": "Show the nonce file"})
    );
    let (_, end) = ev.iter().find(|(n, _)| n == "message_delta").unwrap();
    assert_eq!(end["delta"]["stop_reason"], "tool_use");
    let output = end["usage"]["output_tokens"].as_u64().unwrap();
    assert!(output > 1);

    let id = starts[1]["id"].as_str().unwrap();
    let assistant = json!([
        {"type": "thinking", "thinking": "", "signature": signature},
        {"type": "tool_use", "id": id, "name": "Bash", "input": input},
    ]);
    let turn2 = claude_turn2(&turn1, assistant.clone(), id);
    let (status, body) = post(&m, "/v1/messages", Some(BASH), &turn2).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ev = events(&body);
    let text: String = ev
        .iter()
        .filter(|(_, d)| d["delta"]["type"] == "text_delta")
        .map(|(_, d)| d["delta"]["text"].as_str().unwrap())
        .collect();
    assert!(text.contains(NONCE), "{text}");
    let (_, end) = ev.iter().find(|(n, _)| n == "message_delta").unwrap();
    assert_eq!(end["delta"]["stop_reason"], "end_turn");

    // One character of the signature changed: Anthropic's 400, whatever the headers.
    let mut altered = assistant.clone();
    altered[0]["signature"] = json!(flip_one_char(&signature));
    let (status, body) = post(&m, "/v1/messages", None, &claude_turn2(&turn1, altered, id)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let err: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(err["error"]["type"], "invalid_request_error");
    assert_eq!(
        err["error"]["message"],
        "messages.1.content.0: Invalid `signature` in `thinking` block"
    );
    // Without its signature.
    let mut unsigned = assistant;
    unsigned[0].as_object_mut().unwrap().remove("signature");
    let (status, body) = post(
        &m,
        "/v1/messages",
        None,
        &claude_turn2(&turn1, unsigned, id),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.contains("messages.1.content.0.thinking.signature: Field required"),
        "{body}"
    );
}

#[tokio::test]
async fn anthropic_shown_thinking_must_match_its_signature() {
    let m = start().await;
    let turn1 = claude_turn1(false, None);
    let (status, body) = post(&m, "/v1/messages", Some(BASH), &turn1).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let msg: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(msg["stop_reason"], "tool_use");
    let content = msg["content"].clone();
    assert_eq!(content[0]["type"], "thinking");
    let shown = content[0]["thinking"].as_str().unwrap().to_string();
    assert!(!shown.is_empty() && !shown.contains("nonce"), "{shown}");
    assert_eq!(content[1]["type"], "tool_use");
    let id = content[1]["id"].as_str().unwrap().to_string();
    let (status, _) = post(
        &m,
        "/v1/messages",
        None,
        &claude_turn2(&turn1, content.clone(), &id),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let mut edited = content;
    edited[0]["thinking"] = json!(format!("{shown} And more."));
    let (status, body) = post(&m, "/v1/messages", None, &claude_turn2(&turn1, edited, &id)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn anthropic_without_the_tool_or_thinking_answers_as_before() {
    let m = start().await;
    // The named tool is not offered: plain text.
    let (_, body) = post(
        &m,
        "/v1/messages",
        Some("Grep {}"),
        &claude_turn1(false, None),
    )
    .await;
    let msg: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(msg["stop_reason"], "end_turn");
    assert_eq!(
        msg["content"].as_array().unwrap().len(),
        2,
        "thinking, then text"
    );
    // No thinking asked for: the call alone.
    let mut body = claude_turn1(false, None);
    body.as_object_mut().unwrap().remove("thinking");
    let (_, out) = post(&m, "/v1/messages", Some(BASH), &body).await;
    let msg: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(msg["content"].as_array().unwrap().len(), 1);
    assert_eq!(msg["content"][0]["type"], "tool_use");
    // No header: the usual completion, no thinking.
    let (_, out) = post(&m, "/v1/messages", None, &claude_turn1(false, None)).await;
    let msg: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        msg["content"],
        json!([{"type": "text", "text": "The quick brown fox jumps over the lazy"}])
    );
}

// ---- OpenAI Responses --------------------------------------------------------------------

/// Codex 0.171.0's first request: its tools in an `additional_tools` input item, `exec` a
/// custom tool in the `functions` namespace; stateless, so it asks for the reasoning's
/// encrypted content.
fn codex_turn1() -> Value {
    json!({
        "model": "gpt-6.2-sol",
        "stream": true,
        "store": false,
        "include": ["reasoning.encrypted_content"],
        "reasoning": {"effort": "low", "context": "all_turns"},
        "tool_choice": "auto",
        "parallel_tool_calls": false,
        "input": [
            {"type": "additional_tools", "id": "at_1", "role": "developer", "tools": [
                {"type": "namespace", "name": "functions", "description": "", "tools": [
                    {"type": "custom", "name": "exec", "description": "Run JavaScript",
                     "format": {"type": "grammar", "syntax": "lark", "definition": "start: /[\\s\\S]+/"}},
                    {"type": "function", "name": "wait", "strict": false,
                     "parameters": {"type": "object", "properties": {}}},
                ]},
            ]},
            {"type": "message", "id": "msg_1", "role": "user",
             "content": [{"type": "input_text", "text": "Read nonce.txt."}]},
        ],
    })
}

#[tokio::test]
async fn responses_calls_a_custom_tool_after_encrypted_reasoning() {
    let m = start().await;
    let turn1 = codex_turn1();
    let (status, body) = post(&m, "/v1/responses", Some(EXEC), &turn1).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ev = events(&body);
    let names: Vec<&str> = ev.iter().map(|(n, _)| n.as_str()).collect();
    let tail = &names[names.len() - 3..];
    assert_eq!(
        tail,
        [
            "response.custom_tool_call_input.done",
            "response.output_item.done",
            "response.completed"
        ]
    );
    assert!(names.contains(&"response.custom_tool_call_input.delta"));
    for (i, (_, d)) in ev.iter().enumerate() {
        assert_eq!(d["sequence_number"], i);
    }
    let input: String = ev
        .iter()
        .filter(|(n, _)| n == "response.custom_tool_call_input.delta")
        .map(|(_, d)| d["delta"].as_str().unwrap())
        .collect();
    let (_, exec) = EXEC.split_once(' ').unwrap();
    assert_eq!(input, exec);
    let done = &ev.last().unwrap().1["response"];
    let output = done["output"].as_array().unwrap();
    assert_eq!(output[0]["type"], "reasoning");
    let encrypted = output[0]["encrypted_content"].as_str().unwrap().to_string();
    assert_eq!(output[1]["type"], "custom_tool_call");
    assert_eq!(output[1]["name"], "exec");
    assert_eq!(output[1]["input"], exec);
    let usage = &done["usage"];
    let reasoning = usage["output_tokens_details"]["reasoning_tokens"]
        .as_u64()
        .unwrap();
    assert!(reasoning > 0 && usage["output_tokens"].as_u64().unwrap() > reasoning);

    // Codex's second request: the reasoning item (content null), the call, its output.
    let call_id = output[1]["call_id"].as_str().unwrap();
    let mut reasoning_item = output[0].clone();
    reasoning_item["content"] = Value::Null;
    let mut turn2 = turn1.clone();
    turn2["input"].as_array_mut().unwrap().extend([
        reasoning_item.clone(),
        output[1].clone(),
        json!({"type": "custom_tool_call_output", "id": "ctco_1", "call_id": call_id, "output": [
            {"type": "input_text", "text": "Script completed\nWall time 0.2 seconds\nOutput:\n"},
            {"type": "input_text", "text": format!("{NONCE}\n")},
        ]}),
    ]);
    let (status, body) = post(&m, "/v1/responses", Some(EXEC), &turn2).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ev2 = events(&body);
    let done = &ev2.last().unwrap().1["response"];
    let message = done["output"].as_array().unwrap().last().unwrap();
    assert_eq!(message["type"], "message");
    assert!(message["content"][0]["text"]
        .as_str()
        .unwrap()
        .contains(NONCE));

    // The encrypted content altered: OpenAI's 400.
    let mut altered = turn2.clone();
    let n = altered["input"].as_array().unwrap().len();
    altered["input"][n - 3]["encrypted_content"] = json!(flip_one_char(&encrypted));
    let (status, body) = post(&m, "/v1/responses", None, &altered).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let err: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(err["error"]["code"], "invalid_encrypted_content");
    assert_eq!(err["error"]["type"], "invalid_request_error");
    assert!(err["error"]["message"]
        .as_str()
        .unwrap()
        .ends_with("could not be verified."));
}

#[tokio::test]
async fn responses_calls_a_function_tool_with_json_arguments() {
    let m = start().await;
    let body = json!({
        "model": "gpt-6.2-sol",
        "stream": true,
        "tools": [{"type": "function", "name": "read_file", "parameters": {"type": "object"}}],
        "input": "Read nonce.txt.",
    });
    let (status, out) = post(&m, "/v1/responses", Some(READ), &body).await;
    assert_eq!(status, StatusCode::OK, "{out}");
    let ev = events(&out);
    let args: String = ev
        .iter()
        .filter(|(n, _)| n == "response.function_call_arguments.delta")
        .map(|(_, d)| d["delta"].as_str().unwrap())
        .collect();
    assert_eq!(args, r#"{"file_path":"/work/nonce.txt"}"#);
    let (_, added) = ev
        .iter()
        .find(|(n, _)| n == "response.output_item.added")
        .unwrap();
    // Not asked for encrypted content: the reasoning item carries none.
    assert_eq!(added["item"]["type"], "reasoning");
    let done = &ev.last().unwrap().1["response"];
    assert!(done["output"][0].get("encrypted_content").is_none());
    let call = &done["output"][1];
    assert_eq!(call["type"], "function_call");
    assert_eq!(call["arguments"], args);
    assert_eq!(call["status"], "completed");
    // The function's output comes back as a plain string.
    let turn2 = json!({
        "model": "gpt-6.2-sol",
        "input": [
            {"role": "user", "content": "Read nonce.txt."},
            call,
            {"type": "function_call_output", "call_id": call["call_id"], "output": NONCE},
        ],
    });
    let (status, out) = post(&m, "/v1/responses", Some(READ), &turn2).await;
    assert_eq!(status, StatusCode::OK);
    let resp: Value = serde_json::from_str(&out).unwrap();
    let text = resp["output"][1]["content"][0]["text"].as_str().unwrap();
    assert_eq!(text, format!("The tool returned: {NONCE}"));
}

// ---- Gemini ------------------------------------------------------------------------------

fn gemini_turn1() -> Value {
    json!({
        "contents": [{"role": "user", "parts": [{"text": "Read nonce.txt."}]}],
        "tools": [{"functionDeclarations": [
            {"name": "list_directory", "parametersJsonSchema": {"type": "object"}},
            {"name": "read_file", "parametersJsonSchema": {"type": "object"}},
        ]}],
        "generationConfig": {"thinkingConfig": {"includeThoughts": true, "thinkingLevel": "HIGH"}},
    })
}

/// Gemini CLI's second request: the model's part as it came (plus the id the CLI adds),
/// then the function's response.
fn gemini_turn2(part: Value) -> Value {
    let mut body = gemini_turn1();
    body["contents"].as_array_mut().unwrap().extend([
        json!({"role": "model", "parts": [part]}),
        json!({"role": "user", "parts": [{"functionResponse": {
            "name": "read_file", "response": {"output": format!("{NONCE}\n")}, "id": "read_file_1_0",
        }}]}),
    ]);
    body
}

const GEMINI_STREAM: &str = "/v1beta/models/gemini-3.8-flash:streamGenerateContent?alt=sse";

#[tokio::test]
async fn gemini_calls_the_function_with_a_thought_signature() {
    let m = start().await;
    let (status, body) = post(&m, GEMINI_STREAM, Some(READ), &gemini_turn1()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.ends_with("\r\n\r\n"), "Google's CRLF framing");
    let ev = events(&body);
    assert_eq!(ev.len(), 1);
    let chunk = &ev[0].1;
    let part = chunk["candidates"][0]["content"]["parts"][0].clone();
    assert_eq!(
        part["functionCall"],
        json!({"name": "read_file", "args": {"file_path": "/work/nonce.txt"}})
    );
    let signature = part["thoughtSignature"].as_str().unwrap().to_string();
    assert_eq!(chunk["candidates"][0]["finishReason"], "STOP");
    assert!(
        chunk["usageMetadata"]["candidatesTokenCount"]
            .as_u64()
            .unwrap()
            > 0
    );

    let mut sent_back = part.clone();
    sent_back["functionCall"]["id"] = json!("read_file_1_0");
    let (status, body) = post(
        &m,
        GEMINI_STREAM,
        Some(READ),
        &gemini_turn2(sent_back.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let text = events(&body)[0].1["candidates"][0]["content"]["parts"][0]["text"].clone();
    assert!(text.as_str().unwrap().contains(NONCE), "{text}");

    let mut corrupted = sent_back.clone();
    corrupted["thoughtSignature"] = json!(flip_one_char(&signature));
    let (status, body) = post(&m, GEMINI_STREAM, None, &gemini_turn2(corrupted)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let err: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(err["error"]["status"], "INVALID_ARGUMENT");
    assert_eq!(err["error"]["message"], "Corrupted thought signature.");

    let mut missing = sent_back;
    missing.as_object_mut().unwrap().remove("thoughtSignature");
    let (status, body) = post(&m, GEMINI_STREAM, None, &gemini_turn2(missing.clone())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.contains("Function call is missing a thought_signature in functionCall parts")
            && body.contains("`default_api:read_file`"),
        "{body}"
    );
    // Before Gemini 3 a call without a signature is fine.
    let path = "/v1beta/models/gemini-2.5-flash:generateContent";
    let (status, body) = post(&m, path, None, &gemini_turn2(missing.clone())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Only the current turn is validated: once a new user prompt follows, an earlier
    // call's signature, missing or not, is not checked.
    let mut later = gemini_turn2(missing);
    later["contents"].as_array_mut().unwrap().extend([
        json!({"role": "model", "parts": [{"text": "It says the nonce."}]}),
        json!({"role": "user", "parts": [{"text": "Thanks."}]}),
    ]);
    let (status, body) = post(&m, GEMINI_STREAM, None, &later).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn quotes_are_bounded() {
    let m = start().await;
    let mut body = gemini_turn2(json!({"functionCall": {"name": "read_file", "args": {}}}));
    let long = format!("{NONCE} {}", "x".repeat(5000));
    body["contents"][2]["parts"][0]["functionResponse"]["response"]["output"] = json!(long);
    let path = "/v1beta/models/gemini-2.5-flash:generateContent";
    let (status, out) = post(&m, path, Some(READ), &body).await;
    assert_eq!(status, StatusCode::OK, "{out}");
    let resp: Value = serde_json::from_str(&out).unwrap();
    let text = resp["candidates"][0]["content"]["parts"][0]["text"]
        .as_str()
        .unwrap();
    assert!(text.starts_with(&format!("The tool returned: {NONCE} xxx")));
    assert_eq!(text.len(), "The tool returned: ".len() + 200);
    // Without the header, the usual completion whatever the conversation holds.
    let (_, out) = post(&m, path, None, &body).await;
    let resp: Value = serde_json::from_str(&out).unwrap();
    let text = &resp["candidates"][0]["content"]["parts"][0]["text"];
    assert_eq!(text, "The quick brown fox jumps over the lazy");
}

// ---- Chat Completions --------------------------------------------------------------------

#[tokio::test]
async fn chat_completions_calls_the_function_then_quotes_the_tool_message() {
    let m = start().await;
    let turn1 = json!({
        "model": "gpt-4o-mini",
        "stream": true,
        "stream_options": {"include_usage": true},
        "tools": [{"type": "function", "function": {"name": "read_file", "parameters": {"type": "object"}}}],
        "messages": [{"role": "user", "content": "Read nonce.txt."}],
    });
    let (status, body) = post(&m, "/v1/chat/completions", Some(READ), &turn1).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let chunks: Vec<Value> = events(&body)
        .into_iter()
        .filter(|(_, d)| !d.is_null())
        .map(|(_, d)| d)
        .collect();
    assert!(body.ends_with("data: [DONE]\n\n"));
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": null})
    );
    let first = &chunks[1]["choices"][0]["delta"]["tool_calls"][0];
    assert_eq!(first["type"], "function");
    assert_eq!(first["function"]["name"], "read_file");
    let id = first["id"].as_str().unwrap();
    let args: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert_eq!(args, r#"{"file_path":"/work/nonce.txt"}"#);
    let finish = chunks
        .iter()
        .find_map(|c| c["choices"][0]["finish_reason"].as_str());
    assert_eq!(finish, Some("tool_calls"));
    let usage = &chunks.last().unwrap()["usage"];
    assert!(usage["completion_tokens"].as_u64().unwrap() > 0);

    let mut turn2 = turn1.clone();
    turn2["stream"] = json!(false);
    turn2["messages"].as_array_mut().unwrap().extend([
        json!({"role": "assistant", "content": null, "tool_calls": [
            {"id": id, "type": "function", "function": {"name": "read_file", "arguments": args}},
        ]}),
        json!({"role": "tool", "tool_call_id": id, "content": NONCE}),
    ]);
    let (status, body) = post(&m, "/v1/chat/completions", Some(READ), &turn2).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let resp: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(resp["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        resp["choices"][0]["message"]["content"],
        format!("The tool returned: {NONCE}")
    );
    // Not streamed, a call is a message with tool_calls and no content.
    let mut unary = turn1;
    unary["stream"] = json!(false);
    let (_, body) = post(&m, "/v1/chat/completions", Some(READ), &unary).await;
    let resp: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(resp["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(resp["choices"][0]["message"]["content"], Value::Null);
    assert_eq!(
        resp["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
        args
    );
}
