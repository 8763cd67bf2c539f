//! Guardrail services on answers, through the flow with a fake host playing Envoy: a
//! whole answer blocked, rewritten (its content-length fixed), and each way a service
//! fails under each failure mode, or passed unchecked on a mesh; a stream ended
//! mid-stream by a `BLOCKED` in any chunking, ended at its last chunk, and a failing
//! service under each mode. The service is played by `judge`, which reads the same
//! markers as the mock guardrail service (dev/src/mock/guardrail.rs).

use std::cell::RefCell;
use std::rc::Rc;

use jwt_simple::prelude::*;
use serde_json::{json, Value};

use super::*;
use crate::host::Counter;
use crate::testing::{self, FakeHost, Keys};

const ALLOW: &str = r#"{"allow":true,"limit":10,"remaining":9,"reset_after_ms":1000}"#;
const KEY: &str = "dlp-test-key";
const CHAT: &str = "/v1/chat/completions";
const REASON: &str = "the reason quotes GUARD-BLOCK";

fn runtime(failure_mode: &str, hold_headers: bool) -> Rc<crate::runtime::Runtime> {
    let checks = json!([{"name": "dlp", "on": ["response"], "service": {
        "cluster": "guardrail_dlp", "authority": "dlp.test",
        "path": "/beta/litellm_basic_guardrail_api", "timeout_ms": 300,
        "failure_mode": failure_mode, "api_key_env": "DLP_KEY"}}]);
    let mut c = testing::guarded_config(Keys::new(), checks);
    c["max_request_body_bytes"] = (1 << 20).into();
    c["hold_headers"] = hold_headers.into();
    let config = crate::config::Config::parse(c.to_string().as_bytes()).unwrap();
    let env = |name: &str| match name {
        "DLP_KEY" => Some(KEY.to_string()),
        other => testing::env(other),
    };
    Rc::new(crate::runtime::Runtime::new(config, env).unwrap())
}

/// The service: its answer to the texts sent, by the mock's markers (`None`: no answer).
fn judge(texts: &[String]) -> (Option<u32>, String) {
    let all = texts.concat();
    if all.contains("GUARD-SLOW") {
        return (None, String::new());
    }
    if all.contains("GUARD-500") {
        return (Some(500), "oops".into());
    }
    if all.contains("GUARD-GARBAGE") {
        return (Some(200), "<html>not a verdict".into());
    }
    if all.contains("GUARD-BLOCK") {
        let v = json!({"action": "BLOCKED", "blocked_reason": REASON});
        return (Some(200), v.to_string());
    }
    if let Some(at) = all.find("GUARD-MASK:") {
        let word: String = all[at + 11..]
            .chars()
            .take_while(char::is_ascii_alphanumeric)
            .collect();
        let texts: Vec<String> = texts.iter().map(|t| t.replace(&word, "[MASKED]")).collect();
        let v = json!({"action": "GUARDRAIL_INTERVENED", "texts": texts});
        return (Some(200), v.to_string());
    }
    (Some(200), r#"{"action":"NONE"}"#.into())
}

/// What one exchange came to.
struct Exchange {
    headers: Next,
    delivered: Vec<u8>,
    host: FakeHost,
    record: Value,
    /// The guardrail calls, each one's body.
    calls: Vec<Value>,
}

impl Exchange {
    fn verdicts(&self) -> &Value {
        &self.record["guardrails"]
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.delivered).into_owned()
    }
}

/// A chat request allowed and sent; the answer in `chunks`, as Envoy passes it: paused,
/// it buffers and calls again with all it holds; on `Continue`, or when the filter
/// resumes the response, what it holds goes to the client. Each guardrail call out is
/// answered by `judge` after the callback that made it, before the next chunk.
fn exchange(rt: Rc<crate::runtime::Runtime>, sse: bool, chunks: &[&[u8]]) -> Exchange {
    exchange_with(rt, sse, chunks, false)
}

fn exchange_with(
    rt: Rc<crate::runtime::Runtime>,
    sse: bool,
    chunks: &[&[u8]],
    fail_dispatch: bool,
) -> Exchange {
    let auth = Rc::new(RefCell::new(AuthState::new(&rt)));
    let jwt = Keys::new().es256.sign(testing::claims()).unwrap();
    let bearer = format!("Bearer {jwt}");
    let mut host = FakeHost::with_headers(&[
        (":path", CHAT),
        ("content-type", "application/json"),
        ("authorization", &bearer),
    ]);
    let request = json!({"model": "gpt-4o-mini", "stream": sse,
                         "messages": [{"role": "user", "content": "hi"}]})
    .to_string();
    host.body = request.as_bytes().to_vec();
    let mut flow = Flow::new(rt, auth);
    flow.on_request_headers(&mut host, false);
    flow.on_request_body(&mut host, request.len(), true);
    flow.on_callout_response(&mut host, 101, Some(200), ALLOW.as_bytes());
    assert!(host.replies.is_empty(), "{:?}", host.replies);
    host.fail_dispatch = fail_dispatch;
    host.response_status = Some(200);
    host.response_type = Some(
        if sse {
            "text/event-stream"
        } else {
            "application/json"
        }
        .into(),
    );
    let total: usize = chunks.iter().map(|c| c.len()).sum();
    host.response_headers
        .push(("content-length".into(), total.to_string()));
    let headers = flow.on_response_headers(&mut host);
    let mut delivered = Vec::new();
    let mut buffered: Vec<u8> = Vec::new();
    let mut answered = 1; // the policy service's call
    for (i, chunk) in chunks.iter().enumerate() {
        buffered.extend_from_slice(chunk);
        host.response_chunk = buffered.clone();
        let eos = i + 1 == chunks.len();
        let next = flow.on_response_body(&mut host, buffered.len(), eos);
        if next == Next::Continue {
            delivered.append(&mut host.response_chunk);
            buffered.clear();
        }
        // The verdicts come in, each call answered as it goes out.
        while answered < host.dispatched.len() {
            answered += 1;
            let call: Value = serde_json::from_str(&host.dispatched[answered - 1].body).unwrap();
            let texts: Vec<String> = serde_json::from_value(call["texts"].clone()).unwrap();
            let (status, body) = judge(&texts);
            let resumed = host.resumed_response;
            flow.on_callout_response(&mut host, 100 + answered as u32, status, body.as_bytes());
            if host.resumed_response > resumed {
                delivered.append(&mut host.response_chunk);
                buffered.clear();
            }
        }
        if !host.replies.is_empty() {
            break;
        }
    }
    flow.on_log(&mut host);
    let record = serde_json::from_slice(&host.filter_state[USAGE_FILTER_STATE]).unwrap();
    let calls = host
        .dispatched
        .iter()
        .filter(|d| d.cluster == "guardrail_dlp")
        .map(|d| serde_json::from_str(&d.body).unwrap())
        .collect();
    Exchange {
        headers,
        delivered,
        host,
        record,
        calls,
    }
}

/// The chat fixture with `text` as its answer.
fn whole(text: &str) -> String {
    let fixture = include_str!("../../fixtures/openai_chat.json");
    let answer = fixture.replacen("Hello! How can I assist you today?", text, 1);
    assert_ne!(answer, fixture);
    answer
}

fn service_verdict(action: &str, count: u64) -> Value {
    json!([{"name": "dlp", "category": "service", "action": action, "stage": "response", "count": count}])
}

fn error_code(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap();
    v["error"]["code"].as_str().unwrap_or_default().to_string()
}

#[test]
fn a_whole_answer_is_sent_to_the_service_and_blocked_as_a_detector_blocks_it() {
    let answer = whole("Here it is: GUARD-BLOCK");
    let x = exchange(
        runtime("closed", true),
        false,
        &answer.as_bytes().chunks(100).collect::<Vec<_>>(),
    );
    assert_eq!(x.headers, Next::Pause, "headers held");
    // The call: the answer's text, as a response, the request's metadata, the key.
    assert_eq!(x.calls.len(), 1);
    let call = &x.calls[0];
    assert_eq!(call["texts"], json!(["Here it is: GUARD-BLOCK"]));
    assert_eq!(call["input_type"], "response");
    assert_eq!(call["model"], "gpt-4o-mini");
    assert_eq!(
        call["request_data"]["user_api_key_user_id"],
        x.record["user"]
    );
    assert_eq!(call["litellm_call_id"], x.record["request_id"]);
    let sent = x.host.dispatched.last().unwrap();
    let auth = sent.headers.iter().find(|(k, _)| k == "authorization");
    assert_eq!(
        auth.map(|(_, v)| v.as_str()),
        Some("Bearer dlp-test-key"),
        "never the JWT"
    );
    // The client: the API's 400, nothing of the answer, the reason never.
    assert_eq!(x.host.replies.len(), 1);
    let reply = &x.host.replies[0];
    assert_eq!(reply.status, 400);
    assert_eq!(error_code(&reply.body), "guardrail_blocked");
    assert!(reply.body.contains("'dlp'"), "{}", reply.body);
    assert!(!reply.body.contains(REASON), "{}", reply.body);
    assert!(reply.headers.iter().any(|(k, _)| *k == REQUEST_ID_HEADER));
    assert!(x.delivered.is_empty());
    assert_eq!(x.host.resumed_response, 0);
    // The record: the decision, the verdict, the provider's usage charged.
    let r = &x.record;
    assert_eq!(r["status"], 400);
    assert_eq!(r["decision"], "guardrail_blocked");
    assert_eq!(x.verdicts(), &service_verdict("block", 0));
    assert_eq!(
        (r["input_tokens"].as_u64(), r["output_tokens"].as_u64()),
        (Some(2006), Some(10))
    );
    assert!(!String::from_utf8_lossy(&x.host.filter_state[USAGE_FILTER_STATE]).contains(REASON));
    assert_eq!(x.host.count_of(Counter::GuardrailBlocked), 1);
}

#[test]
fn an_intervened_answer_carries_the_replacements_and_its_new_length() {
    let answer = whole("The code word is swordfish. GUARD-MASK:swordfish");
    let x = exchange(
        runtime("closed", true),
        false,
        &answer.as_bytes().chunks(64).collect::<Vec<_>>(),
    );
    assert!(x.host.replies.is_empty(), "{:?}", x.host.replies);
    assert_eq!(x.host.resumed_response, 1, "let go once judged");
    let got: Value = serde_json::from_slice(&x.delivered).unwrap();
    assert_eq!(
        got["choices"][0]["message"]["content"],
        "The code word is [MASKED]. GUARD-MASK:[MASKED]"
    );
    // Every other byte as the provider sent it.
    let expected = answer.replace("swordfish", "[MASKED]");
    assert_eq!(x.text(), expected);
    assert_eq!(
        x.host.response_header("content-length"),
        Some(expected.len().to_string())
    );
    assert_eq!(x.record["decision"], "allowed");
    assert_eq!(x.verdicts(), &service_verdict("mask", 1));
    assert_eq!(x.host.count_of(Counter::GuardrailMasked), 1);
}

#[test]
fn a_clean_answer_passes_byte_for_byte_after_the_verdict() {
    let answer = whole("Nothing to see here.");
    let x = exchange(runtime("closed", true), false, &[answer.as_bytes()]);
    assert_eq!(x.calls.len(), 1);
    assert_eq!(x.text(), answer);
    assert_eq!(x.host.resumed_response, 1);
    assert_eq!(x.verdicts(), &Value::Null, "NONE is not recorded");
}

#[test]
fn a_service_that_cannot_judge_an_answer_fails_as_its_check_says() {
    // (marker, the service fails to dispatch)
    let failures = [
        ("GUARD-SLOW", false),
        ("GUARD-500", false),
        ("GUARD-GARBAGE", false),
        ("fine text", true),
    ];
    for (marker, no_cluster) in failures {
        let answer = whole(&format!("About {marker} here."));
        let chunks = [answer.as_bytes()];
        let what = format!("{marker} (dispatch fails: {no_cluster})");

        let closed = exchange_with(runtime("closed", true), false, &chunks, no_cluster);
        assert_eq!(closed.host.replies.len(), 1, "{what}");
        let reply = &closed.host.replies[0];
        assert_eq!(reply.status, 503, "{what}");
        assert_eq!(error_code(&reply.body), "guardrail_unavailable", "{what}");
        assert!(closed.delivered.is_empty(), "{what}");
        assert_eq!(closed.record["decision"], "guardrail_unavailable", "{what}");
        assert_eq!(closed.record["status"], 503, "{what}");
        assert_eq!(closed.verdicts(), &service_verdict("block", 0), "{what}");
        assert_eq!(closed.record["output_tokens"], 10, "{what}: charged");
        assert_eq!(
            closed.host.count_of(Counter::GuardrailUnavailable),
            1,
            "{what}"
        );

        let open = exchange_with(runtime("open", true), false, &chunks, no_cluster);
        assert!(open.host.replies.is_empty(), "{what}");
        assert_eq!(open.text(), answer, "{what}");
        assert_eq!(open.record["decision"], "allowed", "{what}");
        assert_eq!(open.verdicts(), &service_verdict("unchecked", 0), "{what}");
    }
}

#[test]
fn on_a_mesh_a_whole_answer_passes_unheld_and_unchecked() {
    let answer = whole("Here it is: GUARD-BLOCK");
    let x = exchange(runtime("closed", false), false, &[answer.as_bytes()]);
    assert_eq!(x.headers, Next::Continue);
    assert!(x.calls.is_empty());
    assert_eq!(x.text(), answer);
    assert_eq!(x.verdicts(), &service_verdict("unchecked", 0));
}

/// An OpenAI chat stream of `n` deltas of 100 bytes of text each, `marker` in delta
/// `at`, then the usage and `[DONE]`.
fn stream(n: usize, at: usize, marker: &str) -> String {
    let mut out = String::new();
    for i in 0..n {
        let mut text = format!("word{i:03} ").repeat(12);
        if i == at {
            text.replace_range(..marker.len(), marker);
        }
        text.truncate(100);
        let event = json!({"id": "c", "object": "chat.completion.chunk", "model": "gpt-4o-mini",
                           "choices": [{"index": 0, "delta": {"content": text}}]});
        out.push_str(&format!("data: {event}\n\n"));
    }
    let usage = json!({"id": "c", "object": "chat.completion.chunk", "model": "gpt-4o-mini",
                       "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": n * 25,
                       "total_tokens": 7 + n * 25}});
    out.push_str(&format!("data: {usage}\n\ndata: [DONE]\n\n"));
    out
}

/// The error event the client got last, and what came before it.
fn ended_by<'a>(x: &'a Exchange, code: &str) -> &'a str {
    let text = std::str::from_utf8(&x.delivered).unwrap();
    let last = text.trim_end().rsplit("\n\n").next().unwrap();
    let data = last.strip_prefix("data: ").unwrap_or(last);
    assert_eq!(error_code(data), code, "{last}");
    assert!(!text.contains("[DONE]"));
    text
}

#[test]
fn a_stream_is_ended_at_the_chunk_after_a_blocked_verdict_in_any_chunking() {
    // 40 deltas, 4,000 bytes of text: the first call goes once 2 KiB gathered, with the
    // marker in it; the stream ends before its middle.
    let s = stream(40, 5, "GUARD-BLOCK");
    for size in [1, 7, 64, 4096] {
        let chunks: Vec<&[u8]> = s.as_bytes().chunks(size).collect();
        let x = exchange(runtime("closed", true), true, &chunks);
        assert_eq!(x.headers, Next::Continue, "{size}: never held");
        let text = ended_by(&x, "guardrail_blocked");
        assert!(
            x.host.replies.is_empty(),
            "{size}: a stream's end, not a reply"
        );
        if size < 4096 {
            assert!(text.contains("word004"), "{size}: the text before went out");
            assert!(!text.contains("word039"), "{size}: ended mid-stream");
            assert_eq!(
                x.calls.len(),
                1,
                "{size}: one call, no more after the block"
            );
            let sent = x.calls[0]["texts"][0].as_str().unwrap();
            assert!(
                (2048..2048 + 100 + size).contains(&sent.len()),
                "{size}: {}",
                sent.len()
            );
        }
        assert_eq!(x.calls[0]["input_type"], "response");
        let r = &x.record;
        assert_eq!(r["status"], 200, "{size}");
        assert_eq!(r["decision"], "guardrail_blocked", "{size}");
        assert_eq!(x.verdicts(), &service_verdict("block", 0), "{size}");
        assert_eq!(
            r["output_tokens"], 1000,
            "{size}: the provider's stream read to its end"
        );
    }
}

#[test]
fn a_stream_is_held_only_at_its_end_and_ended_there_by_a_late_verdict() {
    // 10 deltas, 1,000 bytes: judged once, at the end, the last chunk waiting for it.
    // Envoy often ends a stream with an empty chunk after the provider's last event:
    // that event (`[DONE]`) waits with it, so the error still ends the stream.
    let s = stream(10, 8, "GUARD-BLOCK");
    for empty_end in [false, true] {
        let mut chunks: Vec<&[u8]> = s.as_bytes().chunks(300).collect();
        if empty_end {
            chunks.push(b"");
        }
        let x = exchange(runtime("closed", true), true, &chunks);
        assert_eq!(x.calls.len(), 1);
        assert_eq!(
            x.host.resumed_response, 1,
            "the last chunk let go after the verdict"
        );
        let text = ended_by(&x, "guardrail_blocked");
        assert!(
            text.contains("word000"),
            "the chunks before went out as they came"
        );
        assert_eq!(x.record["decision"], "guardrail_blocked");
        assert_eq!(x.record["output_tokens"], 250);
    }

    // A clean stream: byte for byte, its end held for the verdict.
    let clean = stream(10, 99, "");
    let x = exchange(
        runtime("closed", true),
        true,
        &clean.as_bytes().chunks(300).collect::<Vec<_>>(),
    );
    assert_eq!(x.text(), clean);
    assert_eq!(x.host.resumed_response, 1);
    assert_eq!(x.verdicts(), &Value::Null, "NONE is not recorded");
    // A rewrite cannot be made on a stream: recorded flag, delivered as it came.
    let masked = stream(30, 2, "GUARD-MASK:word029");
    let x = exchange(
        runtime("closed", true),
        true,
        &masked.as_bytes().chunks(500).collect::<Vec<_>>(),
    );
    assert_eq!(x.text(), masked);
    assert_eq!(x.record["decision"], "allowed");
    assert_eq!(x.verdicts(), &service_verdict("flag", 1));
}

#[test]
fn a_stream_s_failing_service_ends_it_closed_and_is_recorded_unchecked_open() {
    for marker in ["GUARD-SLOW", "GUARD-500", "GUARD-GARBAGE"] {
        let s = stream(40, 3, marker);
        let chunks: Vec<&[u8]> = s.as_bytes().chunks(64).collect();
        let closed = exchange(runtime("closed", true), true, &chunks);
        ended_by(&closed, "guardrail_unavailable");
        assert_eq!(
            closed.record["decision"], "guardrail_unavailable",
            "{marker}"
        );
        assert_eq!(closed.verdicts(), &service_verdict("block", 0), "{marker}");
        assert_eq!(closed.record["output_tokens"], 1000, "{marker}");

        let open = exchange(runtime("open", true), true, &chunks);
        assert_eq!(open.text(), s, "{marker}: delivered whole");
        assert_eq!(open.record["decision"], "allowed", "{marker}");
        assert_eq!(
            open.verdicts(),
            &service_verdict("unchecked", 0),
            "{marker}"
        );
        assert_eq!(
            open.calls.len(),
            2,
            "{marker}: 2 KiB, then the rest at the end"
        );
    }
}
