//! The real SSE fixtures the accounting tests read (filter/fixtures), whole, byte by byte,
//! in random chunkings and with CRLF line endings: what the stream carries as text and
//! that it passes unchanged; then the same streams with an AWS key planted across two
//! events, found by chokepoint-guard's own rule, which must end the stream in each API's
//! error event before the second part reaches the client.

use chokepoint_guard::{Rule, RuleSet};
use serde_json::{json, Value};

use super::*;
use crate::accounting::sse::{End, SseParser};
use crate::providers::api::Api;
use crate::providers::reply;

/// The built-in rule for AWS access key ids, as render puts it into the filter's
/// configuration.
fn detector() -> RuleSet {
    let rule: Rule = serde_json::from_value(json!({
        "id": "aws-access-key-id",
        "category": "secret",
        "regex": "(?-u:\\b)((?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z2-7]{16})(?-u:\\b)",
        "group": 1,
        "keywords": ["akia", "asia", "agpa", "aida", "aroa", "anpa", "anva", "aipa"]
    }))
    .expect("a rule");
    RuleSet::compile(vec![rule]).expect("compiles")
}

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!("../../fixtures/", $name))
    };
}

/// A deterministic xorshift: the same chunkings on every run.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn chunks<'a>(&mut self, input: &'a [u8]) -> Vec<&'a [u8]> {
        let max_piece = 1 + (self.next() % 96) as usize;
        let mut out = Vec::new();
        let mut rest = input;
        while !rest.is_empty() {
            let n = (1 + (self.next() as usize % max_piece)).min(rest.len());
            let (piece, tail) = rest.split_at(n);
            out.push(piece);
            rest = tail;
        }
        out
    }
}

/// Every way a stream is cut in these tests: whole, byte by byte, and 100 random ways.
fn chunkings(input: &[u8]) -> Vec<Vec<&[u8]>> {
    let mut all = vec![vec![input], input.chunks(1).collect()];
    let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
    all.extend((0..100).map(|_| rng.chunks(input)));
    all
}

struct Run {
    /// What the client received.
    client: Vec<u8>,
    /// Every text the checks saw, fresh parts only, in order.
    seen: String,
    /// Fresh findings of the secret.
    findings: usize,
}

fn api_of(format: Format) -> Api {
    match format {
        Format::Anthropic => Api::Anthropic,
        Format::Gemini => Api::Gemini,
        Format::OpenAiChat | Format::OpenAiResponses => Api::OpenAi,
    }
}

fn blocked_reply(format: Format) -> Reply {
    reply::error(
        400,
        "invalid_request_error",
        "guardrail_blocked",
        "The answer was stopped by the gateway's guardrail 'secrets' (category secret).",
    )
    .in_shape_of(api_of(format))
}

/// Drives the guard as the filter does: feed, scan the window with the detector, then
/// block (terminate) or pass.
fn run(set: &RuleSet, format: Format, chunks: &[&[u8]], block: bool) -> Run {
    let mut guard = StreamGuard::new(format, 64 * 1024);
    let mut out = Run {
        client: Vec::new(),
        seen: String::new(),
        findings: 0,
    };
    for (i, chunk) in chunks.iter().enumerate() {
        let pass = guard.feed(chunk, i + 1 == chunks.len());
        let mut found = false;
        if guard.has_fresh_text() {
            out.seen.push_str(&guard.window()[guard.fresh_from()..]);
            found = set
                .scan(guard.window())
                .iter()
                .any(|f| f.end > guard.fresh_from());
            out.findings += usize::from(found);
            guard.mark_scanned();
        }
        if found && block {
            out.client.extend(guard.terminate(&blocked_reply(format)));
            continue;
        }
        match pass {
            Pass::Whole => out.client.extend_from_slice(chunk),
            Pass::Bytes(b) => out.client.extend(b),
        }
    }
    out
}

fn events(bytes: &[u8]) -> (Vec<(String, String)>, End) {
    let mut parser = SseParser::new(1 << 20);
    let mut out = Vec::new();
    parser.feed(bytes, |e| {
        out.push((e.event.to_string(), e.data_text().into_owned()))
    });
    let end = parser.finish();
    (out, end)
}

fn crlf(s: &str) -> String {
    s.replace('\n', "\r\n")
}

/// (fixture, format, every text it carries)
fn streams() -> Vec<(&'static str, Format, &'static str, &'static str)> {
    use Format::*;
    vec![
        ("anthropic_stream.sse", Anthropic, fixture!("anthropic_stream.sse"), "Hello! How can I help you today? 😊"),
        (
            "anthropic_stream_cache.sse",
            Anthropic,
            fixture!("anthropic_stream_cache.sse"),
            // Never the thinking or its signature; the tool's input is its own text.
            "Let me check.\n{\"location\": \"Paris, FR\"}",
        ),
        (
            "anthropic_stream_error.sse",
            Anthropic,
            fixture!("anthropic_stream_error.sse"),
            "Here is a long answer that will be cut short by an overloaded upstream",
        ),
        (
            "openai_chat_stream.sse",
            OpenAiChat,
            fixture!("openai_chat_stream.sse"),
            "The capital of Françe is Paris — \"la Ville Lumière\".\n\n🗼",
        ),
        (
            "openai_chat_stream_no_usage.sse",
            OpenAiChat,
            fixture!("openai_chat_stream_no_usage.sse"),
            "{\"location\": \"Paris, FR\"}",
        ),
        ("openai_chat_stream_error.sse", OpenAiChat, fixture!("openai_chat_stream_error.sse"), "Once upon a time"),
        ("openai_completion_stream.sse", OpenAiChat, fixture!("openai_completion_stream.sse"), "This is a test"),
        (
            "openai_responses_stream.sse",
            OpenAiResponses,
            fixture!("openai_responses_stream.sse"),
            // Not the reasoning summary, and not the `.done` events' repeats.
            "Paris — the capital of France.",
        ),
        (
            "openai_responses_stream_failed.sse",
            OpenAiResponses,
            fixture!("openai_responses_stream_failed.sse"),
            "Working on it",
        ),
        (
            "gemini_stream.sse",
            Gemini,
            fixture!("gemini_stream.sse"),
            "**Locating the capital**\n\nThe user asks for France's capital.The capital of France is **Paris** — la Ville Lumière.",
        ),
        (
            "gemini_stream_cache.sse",
            Gemini,
            fixture!("gemini_stream_cache.sse"),
            "Summary of the document, with sources.",
        ),
        ("gemini_stream_error.sse", Gemini, fixture!("gemini_stream_error.sse"), "Partial answer"),
    ]
}

#[test]
fn texts_of_real_streams_which_pass_unchanged() {
    let set = detector();
    for (name, format, body, want) in streams() {
        for body in [body.to_string(), crlf(body)] {
            for chunks in chunkings(body.as_bytes()) {
                let got = run(&set, format, &chunks, true);
                assert_eq!(got.seen, want, "{name} in {} chunks", chunks.len());
                assert_eq!(
                    got.client,
                    body.as_bytes(),
                    "{name} in {} chunks",
                    chunks.len()
                );
                assert_eq!(got.findings, 0, "{name}");
            }
        }
    }
}

/// (fixture, format, two edits that split the secret across two text events)
fn planted() -> Vec<(&'static str, Format, String)> {
    use Format::*;
    let plant = |body: &str, edits: [(&str, &str); 2]| {
        let mut body = body.to_string();
        for (from, to) in edits {
            assert!(body.contains(from), "{from}");
            body = body.replacen(from, to, 1);
        }
        body
    };
    vec![
        (
            "anthropic text",
            Anthropic,
            plant(
                fixture!("anthropic_stream.sse"),
                [
                    (r#""text":"Hello""#, r#""text":"Hello AKIAIOSF""#),
                    (r#""text":"! How"#, r#""text":"ODNN7EXAMPLE! How"#),
                ],
            ),
        ),
        (
            "anthropic tool input",
            Anthropic,
            plant(
                fixture!("anthropic_stream_cache.sse"),
                [
                    (
                        r#""partial_json":"{\"location\": \"Par""#,
                        r#""partial_json":"{\"location\": \"AKIAIOSF""#,
                    ),
                    (
                        r#""partial_json":"is, FR\"}""#,
                        r#""partial_json":"ODNN7EXAMPLE\"}""#,
                    ),
                ],
            ),
        ),
        (
            "openai chat",
            OpenAiChat,
            plant(
                fixture!("openai_chat_stream.sse"),
                [
                    (r#""content":" capital""#, r#""content":" AKIAIOSF""#),
                    (r#""content":" of""#, r#""content":"ODNN7EXAMPLE of""#),
                ],
            ),
        ),
        (
            "openai chat tool arguments",
            OpenAiChat,
            plant(
                fixture!("openai_chat_stream_no_usage.sse"),
                [
                    (
                        r#""arguments":"{\"location\":""#,
                        r#""arguments":"{\"key\": \"AKIAIOSF""#,
                    ),
                    (
                        r#""arguments":" \"Paris, FR\"}""#,
                        r#""arguments":"ODNN7EXAMPLE\"}""#,
                    ),
                ],
            ),
        ),
        (
            "openai responses",
            OpenAiResponses,
            plant(
                fixture!("openai_responses_stream.sse"),
                [
                    (r#""delta":"Paris""#, r#""delta":"Paris AKIAIOSF""#),
                    (r#""delta":" — the"#, r#""delta":"ODNN7EXAMPLE — the"#),
                ],
            ),
        ),
        (
            "gemini",
            Gemini,
            plant(
                fixture!("gemini_stream.sse"),
                [
                    (
                        r#""text": "The capital of France is""#,
                        r#""text": "The capital of France is AKIAIOSF""#,
                    ),
                    (
                        r#""text": " **Paris**"#,
                        r#""text": "ODNN7EXAMPLE **Paris**"#,
                    ),
                ],
            ),
        ),
    ]
}

#[test]
fn a_secret_split_across_events_ends_the_stream_in_the_apis_error_event() {
    let set = detector();
    for (name, format, body) in planted() {
        let (original, _) = events(body.as_bytes());
        let second = original
            .iter()
            .position(|(_, data)| data.contains("ODNN7EXAMPLE"))
            .expect("planted");
        for body in [body.clone(), crlf(&body)] {
            for chunks in chunkings(body.as_bytes()) {
                let got = run(&set, format, &chunks, true);
                let context = format!("{name} in {} chunks", chunks.len());
                assert_eq!(got.findings, 1, "{context}");
                let client = String::from_utf8(got.client.clone()).expect("UTF-8");
                assert!(
                    !client.contains("ODNN7EXAMPLE"),
                    "{context}: the second part leaked"
                );
                // The client's parser sees whole events: some of those before the one
                // that completed the secret, exactly as sent, then the error; the
                // stream ends clean, nothing after it.
                let (seen, end) = events(&got.client);
                assert_eq!(end, End::Clean, "{context}");
                let (last, before) = seen.split_last().expect("an error event");
                assert!(before.len() <= second, "{context}");
                assert_eq!(before, &original[..before.len()], "{context}");
                let error: Value = serde_json::from_str(&last.1).expect("JSON");
                assert_sdk_raises(format, &last.0, &last.1, &error, &original, &context);
            }
        }
    }
}

/// What each API's SDK raises on, read from the SDKs (openai 3.57 `_streaming.py`:
/// any event whose data has an `error` mapping raises `APIError` with its `message`;
/// anthropic 2.14: `event: error` raises with the data as the body; google-genai 3.6:
/// a chunk whose JSON starts `{"error":` raises `ClientError` for a 4xx `code`).
fn assert_sdk_raises(
    format: Format,
    event: &str,
    data: &str,
    error: &Value,
    original: &[(String, String)],
    context: &str,
) {
    let message = "The answer was stopped by the gateway's guardrail 'secrets' (category secret).";
    match format {
        Format::Anthropic => {
            assert_eq!(event, "error", "{context}");
            assert_eq!(error["type"], "error", "{context}");
            assert_eq!(error["error"]["type"], "invalid_request_error", "{context}");
            assert_eq!(error["error"]["message"], message, "{context}");
            assert_eq!(error["error"]["code"], "guardrail_blocked", "{context}");
        }
        Format::OpenAiChat => {
            assert_eq!(event, "message", "{context}");
            assert_eq!(error["error"]["message"], message, "{context}");
            assert_eq!(error["error"]["code"], "guardrail_blocked", "{context}");
        }
        Format::OpenAiResponses => {
            assert_eq!(event, "error", "{context}");
            assert_eq!(error["type"], "error", "{context}");
            assert_eq!(error["code"], "guardrail_blocked", "{context}");
            assert_eq!(error["message"], message, "{context}");
            assert_eq!(error["error"]["message"], message, "{context}");
            // It follows the last event the provider numbered before the block.
            let numbers: Vec<u64> = original
                .iter()
                .filter_map(|(_, d)| {
                    serde_json::from_str::<Value>(d).ok()?["sequence_number"].as_u64()
                })
                .collect();
            let n = error["sequence_number"].as_u64().expect("numbered");
            assert!(n >= 1 && numbers.contains(&(n - 1)), "{context}: {n}");
        }
        Format::Gemini => {
            assert_eq!(event, "message", "{context}");
            assert!(data.starts_with(r#"{"error":"#), "{context}: {data}");
            assert_eq!(error["error"]["code"], 400, "{context}");
            assert_eq!(error["error"]["status"], "INVALID_ARGUMENT", "{context}");
            assert_eq!(error["error"]["message"], message, "{context}");
        }
    }
}

#[test]
fn flagging_finds_each_secret_once_though_the_window_keeps_it() {
    // Not blocked (a flag): the stream goes on, and the secret stays in the window's
    // overlap for the following scans without being found again.
    let set = detector();
    for (name, format, body) in planted() {
        for chunks in chunkings(body.as_bytes()) {
            let got = run(&set, format, &chunks, false);
            assert_eq!(got.findings, 1, "{name} in {} chunks", chunks.len());
            assert_eq!(got.client, body.as_bytes(), "{name}");
        }
    }
}

#[test]
fn the_window_keeps_the_last_overlap_bytes_on_a_char_boundary() {
    let mut guard = StreamGuard::new(Format::OpenAiChat, 1 << 20);
    let long = "é".repeat(300);
    let event = format!(
        "data: {}\n\n",
        serde_json::json!({"choices": [{"index": 0, "delta": {"content": long}}]})
    );
    assert_eq!(guard.feed(event.as_bytes(), false), Pass::Whole);
    assert_eq!(guard.window(), long);
    guard.mark_scanned();
    assert_eq!(
        guard.window(),
        "é".repeat(128),
        "256 bytes of 2-byte characters"
    );
    assert_eq!(guard.fresh_from(), 256);
    assert!(!guard.has_fresh_text());
    let next = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"}}]}\n\n";
    guard.feed(next.as_bytes(), false);
    assert_eq!(&guard.window()[guard.fresh_from()..], "x");
}

#[test]
fn an_event_larger_than_the_bound_goes_out_unscanned() {
    let mut guard = StreamGuard::new(Format::OpenAiChat, 64);
    let big = format!(
        "data: {{\"choices\":[{{\"delta\":{{\"content\":\"{}\"}}}}]}}\n\n",
        "y".repeat(100)
    );
    let (first, rest) = big.as_bytes().split_at(80);
    assert_eq!(guard.feed(first, false), Pass::Bytes(first.to_vec()));
    assert!(guard.unchecked());
    assert_eq!(guard.feed(rest, false), Pass::Whole);
    assert!(!guard.has_fresh_text());
}

#[test]
fn after_termination_every_chunk_is_swallowed() {
    let mut guard = StreamGuard::new(Format::Anthropic, 1 << 20);
    let bytes = guard.terminate(&blocked_reply(Format::Anthropic));
    assert!(bytes.starts_with(b"event: error\ndata: {"));
    assert!(guard.terminated());
    let chunk = b"event: ping\ndata: {\"type\": \"ping\"}\n\n";
    assert_eq!(guard.feed(chunk, false), Pass::Bytes(vec![]));
    assert_eq!(guard.feed(chunk, true), Pass::Bytes(vec![]));
}

#[test]
fn the_last_complete_event_starts_after_the_one_before_it() {
    let cases: &[(&str, usize)] = &[
        ("", 0),
        ("data: a\n\n", 0),
        ("data: a\n\ndata: b\n\n", 9),
        ("data: a\n\ndata: b\n\ndata: [DONE]\n\n", 18),
        ("data: a\r\n\r\ndata: b\r\n\r\n", 11),
        ("event: x\ndata: a\n\nevent: y\ndata: b\n\n", 18),
        // A partial event after the last complete one stays with it.
        ("data: a\n\ndata: b\n\ndata: par", 9),
    ];
    for (bytes, want) in cases {
        assert_eq!(last_event_start(bytes.as_bytes()), *want, "{bytes:?}");
    }
}
