//! The published record in filter state (`otlp`): each field the record has, as text,
//! under `otlp.<name>`, equal to what the contract's mapping makes of the access-log
//! record; nothing at all when the configuration leaves it off.

use chokepoint_contract::published;
use jwt_simple::prelude::*;

use super::*;
use crate::testing::{self, FakeHost, Keys};

const ALLOW: &str = r#"{"allow":true,"limit":10,"remaining":9,"reset_after_ms":1000}"#;
const DENY: &str =
    r#"{"allow":false,"reason":"rate_limited","message":"slow down","retry_after_ms":1000}"#;
const CHAT_STREAM: &str = include_str!("../../fixtures/openai_chat_stream.sse");

fn flow(keys: &Keys, otlp: Option<bool>) -> Flow {
    let mut config = keys.config_json();
    if let Some(on) = otlp {
        config["otlp"] = on.into();
    }
    testing::flow_for(testing::runtime_from(&config))
}

fn headers(keys: &Keys, token: bool) -> FakeHost {
    let auth = format!(
        "Bearer {}",
        keys.es256
            .sign(testing::claims())
            .expect("a token for the test")
    );
    let mut h = vec![
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
        ("content-type", "application/json"),
        ("x-request-id", "req-otlp"),
        ("user-agent", "claude-cli/2.1.332 (external, sdk-cli)"),
    ];
    if token {
        h.push(("authorization", auth.as_str()));
    }
    FakeHost::with_headers(&h)
}

/// A streamed chat completion, forwarded and answered whole.
fn streamed(keys: &Keys, f: &mut Flow) -> FakeHost {
    let mut host = headers(keys, true);
    host.body = br#"{"model":"gpt-4o-mini","stream":true}"#.to_vec();
    f.on_request_headers(&mut host, false);
    let len = host.body.len();
    f.on_request_body(&mut host, len, true);
    f.on_callout_response(&mut host, 101, Some(200), ALLOW.as_bytes());
    host.response_status = Some(200);
    host.response_type = Some("text/event-stream".into());
    f.on_response_headers(&mut host);
    for chunk in CHAT_STREAM.as_bytes().chunks(64) {
        host.response_chunk = chunk.to_vec();
        f.on_response_body(&mut host, chunk.len(), false);
    }
    host.response_chunk.clear();
    f.on_response_body(&mut host, 0, true);
    host
}

/// Refused by the policy service: 429.
fn limited(keys: &Keys, f: &mut Flow) -> FakeHost {
    let mut host = headers(keys, true);
    host.body = br#"{"model":"gpt-4o-mini"}"#.to_vec();
    f.on_request_headers(&mut host, false);
    let len = host.body.len();
    f.on_request_body(&mut host, len, true);
    f.on_callout_response(&mut host, 101, Some(200), DENY.as_bytes());
    host
}

/// No token: 401, no caller.
fn unauthenticated(keys: &Keys, f: &mut Flow) -> FakeHost {
    let mut host = headers(keys, false);
    f.on_request_headers(&mut host, true);
    host
}

type Exchange = fn(&Keys, &mut Flow) -> FakeHost;

const EXCHANGES: &[(&str, Exchange, u64)] = &[
    ("streamed chat", streamed, 200),
    ("rate limited", limited, 429),
    ("no token", unauthenticated, 401),
];

fn published_state(host: &FakeHost) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = host
        .filter_state
        .iter()
        .filter_map(|(k, v)| {
            let name = k.strip_prefix(otlp::STATE_PREFIX)?;
            Some((
                name.to_string(),
                String::from_utf8(v.clone()).expect("utf-8"),
            ))
        })
        .collect();
    out.sort();
    out
}

#[test]
fn each_field_the_record_has_is_its_own_filter_state() {
    let keys = Keys::new();
    for (name, exchange, status) in EXCHANGES {
        let mut f = flow(keys, Some(true));
        let mut host = exchange(keys, &mut f);
        f.on_log(&mut host);
        let record: chokepoint_contract::UsageRecord<String, Vec<String>> =
            serde_json::from_slice(&host.filter_state[USAGE_FILTER_STATE]).expect("the record");
        let mut want: Vec<(String, String)> = published::attributes(&record)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.text()))
            .collect();
        want.sort();
        let got = published_state(&host);
        assert_eq!(got, want, "{name}");
        let get = |k: &str| got.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(
            get("http.response.status_code"),
            Some(status.to_string().as_str()),
            "{name}"
        );
        assert_eq!(
            get("chokepoint.request_id"),
            record.request_id.get().map(String::as_str),
            "{name}"
        );
        // Absent fields are not written (the logger prints them as `-`).
        assert!(got.len() < published::FIELDS.len(), "{name}: {got:?}");
    }
}

#[test]
fn the_stream_s_counts_and_flags_are_decimal_and_true_false() {
    let keys = Keys::new();
    let mut f = flow(keys, Some(true));
    let mut host = streamed(keys, &mut f);
    f.on_log(&mut host);
    let got = published_state(&host);
    let get = |k: &str| got.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(get("chokepoint.stream").as_deref(), Some("true"));
    assert_eq!(get("chokepoint.estimated").as_deref(), Some("false"));
    assert_eq!(get("gen_ai.request.model").as_deref(), Some("gpt-4o-mini"));
    assert_eq!(get("chokepoint.groups").as_deref(), Some(r#"["ml","eng"]"#));
    let output: u64 = get("gen_ai.usage.output_tokens")
        .and_then(|v| v.parse().ok())
        .expect("output tokens in decimal");
    assert!(output > 0);
}

#[test]
fn off_by_default_and_when_false_nothing_is_written() {
    let keys = Keys::new();
    for otlp in [None, Some(false)] {
        for (name, exchange, _) in EXCHANGES {
            let mut f = flow(keys, otlp);
            let mut host = exchange(keys, &mut f);
            f.on_log(&mut host);
            assert!(host.filter_state.contains_key(USAGE_FILTER_STATE), "{name}");
            assert_eq!(published_state(&host), vec![], "{name} with otlp {otlp:?}");
        }
    }
}
