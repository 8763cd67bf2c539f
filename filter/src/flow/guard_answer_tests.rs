//! Guardrails on the answer, for every API, with the providers' real answers (a secret
//! planted in their text): a whole answer blocked (the client gets the API's error, the
//! record keeps the provider's usage), flagged (unchanged), too large or on a mesh
//! (unchecked, not held); a stream with the secret split across two events ended with
//! the API's error event (the events before it delivered, nothing after, every token
//! counted), and a clean stream passed byte for byte.

use std::cell::RefCell;
use std::rc::Rc;

use jwt_simple::prelude::*;
use serde_json::{json, Value};

use super::*;
use crate::testing::{self, FakeHost, Keys};

const ALLOW: &str = r#"{"allow":true,"limit":10,"remaining":9,"reset_after_ms":1000}"#;
const AWS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";

/// An API's exchange: the request, the provider's answer whole and streamed, and where
/// to plant the secret in each (a text of the answer; two consecutive text deltas).
struct Case {
    name: &'static str,
    path: &'static str,
    stream_path: &'static str,
    model: &'static str,
    answer: &'static str,
    /// A text in `answer`.
    text: &'static str,
    stream: &'static str,
    /// Two consecutive text deltas of `stream`, as they appear in its JSON.
    deltas: [&'static str; 2],
}

fn cases() -> [Case; 4] {
    [
        Case {
            name: "openai chat",
            path: "/v1/chat/completions",
            stream_path: "/v1/chat/completions",
            model: "gpt-4o-mini",
            answer: include_str!("../../fixtures/openai_chat.json"),
            text: "Hello! How can I assist you today?",
            stream: include_str!("../../fixtures/openai_chat_stream.sse"),
            deltas: [r#""content":" capital""#, r#""content":" of""#],
        },
        Case {
            name: "openai responses",
            path: "/v1/responses",
            stream_path: "/v1/responses",
            model: "gpt-4o-mini",
            answer: include_str!("../../fixtures/openai_response.json"),
            text: "Checking the weather in Paris.",
            stream: include_str!("../../fixtures/openai_responses_stream.sse"),
            deltas: [
                r#""delta":"Paris""#,
                r#""delta":" — the capital of France.""#,
            ],
        },
        Case {
            name: "anthropic",
            path: "/v1/messages",
            stream_path: "/v1/messages",
            model: "claude-sonnet-4-5",
            answer: include_str!("../../fixtures/anthropic_message.json"),
            text: "Paris is the capital of France.",
            stream: include_str!("../../fixtures/anthropic_stream.sse"),
            deltas: [
                r#""text":"Hello""#,
                r#""text":"! How can I help you today? 😊""#,
            ],
        },
        Case {
            name: "gemini",
            path: "/v1beta/models/gemini-2.5-flash:generateContent",
            stream_path: "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
            model: "gemini-2.5-flash",
            answer: include_str!("../../fixtures/gemini_response.json"),
            text: "AI learns patterns from data to make predictions.",
            stream: include_str!("../../fixtures/gemini_stream.sse"),
            deltas: [
                r#""text": "The capital of France is""#,
                r#""text": " **Paris** \u2014 la Ville Lumi\u00e8re.""#,
            ],
        },
    ]
}

impl Case {
    /// The whole answer with the secret in its text.
    fn secret_answer(&self) -> String {
        let planted = format!("Your key is {AWS_KEY}, keep it safe.");
        assert!(self.answer.contains(self.text), "{}", self.name);
        self.answer.replacen(self.text, &planted, 1)
    }

    /// The stream with the secret's two halves at the end of one delta and the start of
    /// the next; and the second delta as planted.
    fn secret_stream(&self) -> (String, String) {
        let (head, tail) = AWS_KEY.split_at(9);
        let [a, b] = self.deltas;
        assert!(
            self.stream.contains(a) && self.stream.contains(b),
            "{}",
            self.name
        );
        // `"text":"Hello"` -> `"text":"Hello AKIAIOSFO"`, the next `"text":"DNN7...!"`.
        let a2 = format!("{} {head}\"", &a[..a.len() - 1]);
        let b2 = plant_after_colon(tail, b);
        (self.stream.replacen(a, &a2, 1).replacen(b, &b2, 1), b2)
    }

    fn request(&self, stream: bool) -> String {
        let body = match self.name {
            "openai responses" => json!({"model": self.model, "input": "hi", "stream": stream}),
            "anthropic" => json!({"model": self.model, "max_tokens": 64, "stream": stream,
                                   "messages": [{"role": "user", "content": "hi"}]}),
            "gemini" => json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}),
            _ => json!({"model": self.model, "stream": stream,
                         "messages": [{"role": "user", "content": "hi"}]}),
        };
        body.to_string()
    }
}

/// `"name":"value"` -> `"name":"<add>value"` (the first quote after the colon).
fn plant_after_colon(add: &str, original: &str) -> String {
    let colon = original.find(':').unwrap();
    let quote = colon + original[colon..].find('"').unwrap() + 1;
    format!("{}{add}{}", &original[..quote], &original[quote..])
}

fn config(checks: Value) -> Value {
    let mut c = testing::guarded_config(Keys::new(), checks);
    c["providers"] = json!([
        {"name": "openai", "api": "openai", "cluster": "provider_openai", "key_env": "OPENAI_API_KEY"},
        {"name": "anthropic", "api": "anthropic", "cluster": "provider_anthropic", "key_env": "ANTHROPIC_API_KEY"},
        {"name": "gemini", "api": "gemini", "cluster": "provider_gemini", "key_env": "OPENAI_API_KEY"},
    ]);
    c["max_request_body_bytes"] = (1 << 20).into();
    c
}

fn checks(action: &str) -> Value {
    json!([{"name": "answers", "detect": ["secret"], "action": action, "on": ["response"]}])
}

/// What one exchange came to: the client's bytes (or the gateway's reply), the record,
/// and what the response headers callback said.
struct Exchange {
    headers: Next,
    delivered: Vec<u8>,
    host: FakeHost,
    record: Value,
}

/// A request allowed and sent; then the answer in `chunks`, passed as Envoy does: while
/// the filter pauses, Envoy buffers and calls again with all it holds; on `Continue` what
/// it holds (as the filter left it) goes to the client.
fn exchange(config: &Value, path: &str, request: &str, sse: bool, chunks: &[&[u8]]) -> Exchange {
    let rt = testing::runtime_from(config);
    let auth = Rc::new(RefCell::new(AuthState::new(&rt)));
    let jwt = Keys::new().es256.sign(testing::claims()).unwrap();
    let bearer = format!("Bearer {jwt}");
    let mut host = FakeHost::with_headers(&[
        (":path", path),
        ("content-type", "application/json"),
        ("authorization", &bearer),
    ]);
    host.body = request.as_bytes().to_vec();
    let mut flow = Flow::new(rt, auth);
    // Held for the body, or (on a mesh) gone ahead of it.
    flow.on_request_headers(&mut host, false);
    flow.on_request_body(&mut host, request.len(), true);
    assert!(host.replies.is_empty(), "{path}: {:?}", host.replies);
    flow.on_callout_response(&mut host, 101, Some(200), ALLOW.as_bytes());
    host.response_status = Some(200);
    let total: usize = chunks.iter().map(|c| c.len()).sum();
    host.response_type = Some(
        if sse {
            "text/event-stream"
        } else {
            "application/json"
        }
        .into(),
    );
    host.response_headers
        .push(("content-length".into(), total.to_string()));
    let headers = flow.on_response_headers(&mut host);
    let mut delivered = Vec::new();
    let mut buffered: Vec<u8> = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        buffered.extend_from_slice(chunk);
        host.response_chunk = buffered.clone();
        let eos = i + 1 == chunks.len();
        let next = flow.on_response_body(&mut host, buffered.len(), eos);
        if !host.replies.is_empty() {
            break;
        }
        if next == Next::Continue {
            delivered.append(&mut host.response_chunk);
            buffered.clear();
        }
    }
    flow.on_log(&mut host);
    let record = serde_json::from_slice(&host.filter_state[USAGE_FILTER_STATE]).unwrap();
    Exchange {
        headers,
        delivered,
        host,
        record,
    }
}

/// The body in pieces of `n` bytes, as a provider's answer arrives.
fn pieces(body: &[u8], n: usize) -> Vec<&[u8]> {
    body.chunks(n).collect()
}

/// The blank line ending a stream's events (Gemini's are CRLF).
fn blank_line(stream: &str) -> &'static str {
    if stream.contains("\r\n\r\n") {
        "\r\n\r\n"
    } else {
        "\n\n"
    }
}

/// Splits a stream after each event (each blank line), as a provider flushes them.
fn events(stream: &str) -> Vec<&[u8]> {
    let blank = blank_line(stream);
    let mut out = Vec::new();
    let mut rest = stream;
    while let Some(at) = rest.find(blank) {
        let (event, tail) = rest.split_at(at + blank.len());
        out.push(event.as_bytes());
        rest = tail;
    }
    if !rest.is_empty() {
        out.push(rest.as_bytes());
    }
    out
}

fn usage(record: &Value) -> (u64, u64) {
    (
        record["input_tokens"].as_u64().unwrap(),
        record["output_tokens"].as_u64().unwrap(),
    )
}

fn error_code(name: &str, v: &Value) -> Value {
    match name {
        "gemini" => v["error"]["details"][0]["reason"].clone(),
        _ => v["error"]["code"].clone(),
    }
}

#[test]
fn a_whole_answer_with_a_secret_is_blocked_and_its_usage_still_counted() {
    for case in cases() {
        let answer = case.secret_answer();
        let chunks = pieces(answer.as_bytes(), 100);
        let flagged = exchange(
            &config(checks("flag")),
            case.path,
            &case.request(false),
            false,
            &chunks,
        );
        let blocked = exchange(
            &config(checks("block")),
            case.path,
            &case.request(false),
            false,
            &chunks,
        );
        let name = case.name;
        assert_eq!(blocked.headers, Next::Pause, "{name}: headers held");
        assert_eq!(blocked.host.replies.len(), 1, "{name}");
        let reply = &blocked.host.replies[0];
        assert_eq!(reply.status, 400, "{name}");
        assert!(
            blocked.delivered.is_empty(),
            "{name}: nothing of the answer"
        );
        assert!(!reply.body.contains("AKIA"), "{name}: {}", reply.body);
        let v: Value = serde_json::from_str(&reply.body).unwrap();
        assert_eq!(error_code(name, &v), "guardrail_blocked", "{name}: {v}");
        assert!(reply.body.contains("'answers'"), "{name}: {}", reply.body);
        assert!(
            reply
                .headers
                .iter()
                .any(|(k, v)| *k == REQUEST_ID_HEADER && !v.is_empty()),
            "{name}: the request id again"
        );
        let r = &blocked.record;
        assert_eq!(r["status"], 400, "{name}");
        assert_eq!(r["decision"], "guardrail_blocked", "{name}");
        assert_eq!(
            r["guardrails"],
            json!([{"name": "answers", "category": "secret", "action": "block", "stage": "response", "count": 1}]),
            "{name}"
        );
        // The provider billed the answer: the same usage as when it passed.
        assert_eq!(usage(r), usage(&flagged.record), "{name}");
        assert!(usage(r).0 > 0 && usage(r).1 > 0, "{name}: {r}");
        assert_eq!(blocked.host.queued.len(), 1, "{name}: charged");
        let text = String::from_utf8_lossy(&blocked.host.filter_state[USAGE_FILTER_STATE]);
        assert!(!text.contains("AKIA"), "{name}");
    }
}

#[test]
fn a_flagged_answer_passes_unchanged_and_is_recorded() {
    for case in cases() {
        let answer = case.secret_answer();
        let x = exchange(
            &config(checks("flag")),
            case.path,
            &case.request(false),
            false,
            &pieces(answer.as_bytes(), 64),
        );
        let name = case.name;
        assert_eq!(x.headers, Next::Pause, "{name}");
        assert!(x.host.replies.is_empty(), "{name}");
        assert_eq!(x.delivered, answer.as_bytes(), "{name}: byte for byte");
        assert_eq!(x.record["decision"], "allowed", "{name}");
        assert_eq!(x.record["status"], 200, "{name}");
        assert_eq!(
            x.record["guardrails"],
            json!([{"name": "answers", "category": "secret", "action": "flag", "stage": "response", "count": 1}]),
            "{name}"
        );
    }
}

#[test]
fn an_answer_too_large_or_on_a_mesh_passes_unchecked() {
    let case = &cases()[0];
    let answer = case.secret_answer();
    let unchecked = json!([{"name": "answers", "category": "secret", "action": "unchecked", "stage": "response", "count": 0}]);
    // Too large: held until it passes the bound, then let go whole. The bound is the
    // request body limit here (what Envoy buffers is twice that), not the 4 MiB default.
    let mut small = config(checks("block"));
    small["max_request_body_bytes"] = 1024.into();
    let large = case
        .answer
        .replacen(case.text, &format!("{} {AWS_KEY}", "word ".repeat(300)), 1);
    let x = exchange(
        &small,
        case.path,
        &case.request(false),
        false,
        &pieces(large.as_bytes(), 200),
    );
    assert_eq!(x.headers, Next::Pause, "held at first");
    assert!(x.host.replies.is_empty());
    assert_eq!(x.delivered, large.as_bytes());
    assert_eq!(x.record["guardrails"], unchecked);
    assert!(usage(&x.record).1 > 0, "still counted: {}", x.record);
    // A mesh: the headers cannot be held, so the answer is not held either.
    let mut mesh = config(checks("block"));
    mesh["hold_headers"] = false.into();
    let x = exchange(
        &mesh,
        case.path,
        &case.request(false),
        false,
        &pieces(answer.as_bytes(), 100),
    );
    assert_eq!(x.headers, Next::Continue, "never held");
    assert!(x.host.replies.is_empty());
    assert_eq!(x.delivered, answer.as_bytes());
    assert_eq!(x.record["guardrails"], unchecked);
    assert!(usage(&x.record).1 > 0);
}

#[test]
fn a_stream_with_a_secret_split_across_events_is_ended_with_the_api_s_error_event() {
    for case in cases() {
        let (stream, second) = case.secret_stream();
        let name = case.name;
        let chunks = events(&stream);
        let flagged = exchange(
            &config(checks("flag")),
            case.stream_path,
            &case.request(true),
            true,
            &chunks,
        );
        let x = exchange(
            &config(checks("block")),
            case.stream_path,
            &case.request(true),
            true,
            &chunks,
        );
        assert_eq!(x.headers, Next::Continue, "{name}: a stream is never held");
        assert!(x.host.replies.is_empty(), "{name}");
        assert!(
            x.host
                .removed_response_headers
                .contains(&"content-length".to_string()),
            "{name}"
        );
        let delivered = String::from_utf8(x.delivered.clone()).unwrap();
        // The events before the second half went as they came; the one carrying it is
        // the API's error event, and nothing follows.
        let second = stream.find(&second).unwrap();
        let blank = blank_line(&stream);
        let before = &stream[..stream[..second].rfind(blank).unwrap() + blank.len()];
        assert!(delivered.starts_with(before), "{name}: {delivered}");
        let rest = &delivered[before.len()..];
        assert!(!rest.contains(&AWS_KEY[9..]), "{name}: {rest}");
        assert!(rest.contains("guardrail_blocked"), "{name}: {rest}");
        assert!(rest.ends_with("\n\n"), "{name}: one whole event");
        assert_eq!(
            rest.matches("\n\n").count(),
            1,
            "{name}: nothing after: {rest}"
        );
        match name {
            "anthropic" => assert!(rest.starts_with("event: error\ndata: "), "{rest}"),
            "openai responses" => assert!(rest.starts_with("event: error\ndata: "), "{rest}"),
            _ => assert!(rest.starts_with("data: {"), "{rest}"),
        }
        let r = &x.record;
        assert_eq!(r["decision"], "guardrail_blocked", "{name}");
        assert_eq!(
            r["guardrails"],
            json!([{"name": "answers", "category": "secret", "action": "block", "stage": "response", "count": 1}]),
            "{name}"
        );
        // Every token the provider streamed is counted, as when the stream passed.
        assert_eq!(usage(r), usage(&flagged.record), "{name}");
        assert!(usage(r).1 > 0, "{name}: {r}");
        assert_eq!(
            flagged.delivered,
            stream.as_bytes(),
            "{name}: flagged, untouched"
        );
        assert_eq!(flagged.record["guardrails"][0]["action"], "flag", "{name}");
    }
}

#[test]
fn a_clean_stream_passes_byte_for_byte_in_any_chunking() {
    for case in cases() {
        for size in [1, 7, 64, 4096] {
            let x = exchange(
                &config(checks("block")),
                case.stream_path,
                &case.request(true),
                true,
                &pieces(case.stream.as_bytes(), size),
            );
            assert_eq!(
                String::from_utf8_lossy(&x.delivered),
                case.stream,
                "{} in chunks of {size}",
                case.name
            );
            assert!(x.record.get("guardrails").is_none(), "{}", case.name);
            assert_eq!(x.record["decision"], "allowed");
        }
    }
}
