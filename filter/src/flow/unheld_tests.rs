//! The request path where Envoy cannot hold the headers while the body is read
//! (`hold_headers: false`: Istio's WasmPlugin and TrafficExtension, Envoy Gateway). The
//! fake host marks the headers gone when a callback lets them go, as Envoy would send them
//! upstream then: every header the provider must see is written before, and nothing after.

use jwt_simple::prelude::*;

use super::*;
use crate::testing::{self, FakeHost, Keys, PROVIDER_KEY};

const ALLOW: &str = r#"{"allow":true,"limit":10,"remaining":9,"reset_after_ms":1000}"#;
const DENY: &str =
    r#"{"allow":false,"reason":"rate_limited","message":"limit reached","retry_after_ms":30500}"#;

/// The test configuration without held headers, with a second OpenAI-API provider that a
/// route sends `llama-*` to, and Gemini.
fn unheld(keys: &Keys, hold: bool) -> Flow {
    let mut c = keys.config_json();
    c["hold_headers"] = hold.into();
    c["attribution"] = true.into();
    c["enforce_output_cap"] = true.into();
    if let Some(ps) = c["providers"].as_array_mut() {
        ps.push(serde_json::json!({"name": "vllm", "api": "openai", "cluster": "provider_vllm", "key_env": "OPENAI_API_KEY"}));
        ps.push(serde_json::json!({"name": "gemini", "api": "gemini", "cluster": "provider_gemini", "key_env": "OPENAI_API_KEY"}));
    }
    c["models"] = serde_json::json!({"routes": [
        {"model": "gpt-4o-mini", "providers": ["openai", "vllm"]},
        {"model": "llama-*", "providers": ["vllm"]},
        {"model": "gemini-2.5-flash", "providers": ["gemini"]},
    ]});
    c["prices"]["models"]["llama-*"] =
        serde_json::json!({"input_per_mtok_usd": "0.1", "output_per_mtok_usd": "0.1"});
    c["prices"]["models"]["gemini-2.5-flash"] =
        serde_json::json!({"input_per_mtok_usd": "0.1", "output_per_mtok_usd": "0.1"});
    testing::flow_for(testing::runtime_from(&c))
}

fn host(keys: &Keys, path: &str, body: &str) -> FakeHost {
    let auth = format!("Bearer {}", keys.es256.sign(testing::claims()).unwrap());
    let mut host = FakeHost::with_headers(&[
        (":method", "POST"),
        (":path", path),
        ("content-type", "application/json"),
        ("content-length", &body.len().to_string()),
        ("authorization", &auth),
    ]);
    host.body = body.as_bytes().to_vec();
    host
}

/// Headers, then the body in two pieces, as Envoy delivers them; the headers go when a
/// callback says so.
fn send(flow: &mut Flow, host: &mut FakeHost) -> (Next, Next) {
    let at_headers = flow.on_request_headers(host, false);
    if at_headers == Next::Continue {
        host.headers_gone = true;
    }
    let n = host.body.len();
    assert_eq!(flow.on_request_body(host, n / 2, false), Next::Pause);
    let at_end = flow.on_request_body(host, n, true);
    (at_headers, at_end)
}

#[test]
fn headers_leave_first_with_the_key_and_cluster_and_the_body_waits_for_the_decision() {
    let keys = Keys::new();
    let mut flow = unheld(keys, false);
    let mut host = host(
        keys,
        "/v1/chat/completions",
        r#"{"model":"gpt-4o-mini","stream":true,"messages":[]}"#,
    );
    let (at_headers, at_end) = send(&mut flow, &mut host);
    assert_eq!(at_headers, Next::Continue, "the headers are not held");
    assert_eq!(at_end, Next::Pause, "the body waits for the decision");
    assert_eq!(
        host.header("authorization"),
        Some(format!("Bearer {PROVIDER_KEY}").as_str())
    );
    assert_eq!(host.header(CLUSTER_HEADER), Some("provider_openai"));
    assert_eq!(host.header("accept-encoding"), Some("identity"));
    assert_eq!(host.header("content-length"), None, "the body is edited");
    assert_eq!(host.dispatched.len(), 1, "one authorize callout");
    flow.on_callout_response(&mut host, 101, Some(200), ALLOW.as_bytes());
    assert_eq!(host.resumed, 1);
    assert!(host.replies.is_empty(), "{:?}", host.replies);
    assert!(
        host.late_header_writes.is_empty(),
        "{:?}",
        host.late_header_writes
    );
    // The body the provider gets: usage asked for, the caller's id, the default cap.
    let sent: serde_json::Value = serde_json::from_slice(&host.body).unwrap();
    assert_eq!(sent["stream_options"]["include_usage"], true);
    assert!(sent["safety_identifier"].is_string(), "{sent}");
    assert_eq!(sent["max_completion_tokens"], 4096);
    assert_eq!(host.count_of(Counter::Allowed), 1);
}

#[test]
fn a_denial_after_the_headers_left_is_a_local_reply() {
    let keys = Keys::new();
    let mut flow = unheld(keys, false);
    let mut host = host(keys, "/v1/chat/completions", r#"{"model":"gpt-4o-mini"}"#);
    send(&mut flow, &mut host);
    flow.on_callout_response(&mut host, 101, Some(200), DENY.as_bytes());
    assert_eq!(host.replies.len(), 1);
    assert_eq!(host.replies[0].status, 429);
    assert_eq!(host.resumed, 0, "the body never goes");
    assert!(
        host.late_header_writes.is_empty(),
        "{:?}",
        host.late_header_writes
    );
}

/// Where each request goes, held and not: a model named in the body reaches another
/// provider of its API only when the headers can wait for it; a model in the path is
/// routed, or refused, before the headers leave.
#[test]
fn routing_with_and_without_held_headers() {
    let keys = Keys::new();
    // (held, path, body, the cluster it goes to or the refusal's code)
    let table = [
        (
            true,
            "/v1/chat/completions",
            r#"{"model":"llama-3"}"#,
            "provider_vllm",
        ),
        (
            false,
            "/v1/chat/completions",
            r#"{"model":"llama-3"}"#,
            "model_not_routable",
        ),
        (
            true,
            "/v1/chat/completions",
            r#"{"model":"gpt-4o-mini"}"#,
            "chain_openai__vllm",
        ),
        (
            false,
            "/v1/chat/completions",
            r#"{"model":"gpt-4o-mini"}"#,
            "provider_openai",
        ),
        (
            false,
            "/v1/chat/completions",
            r#"{"model":"gpt-5"}"#,
            "model_not_found",
        ),
        (
            false,
            "/v1beta/models/gemini-2.5-flash:generateContent",
            r#"{"contents":[]}"#,
            "provider_gemini",
        ),
        (
            false,
            "/v1beta/models/gemini-1.0:generateContent",
            r#"{"contents":[]}"#,
            "model_not_found",
        ),
    ];
    for (hold, path, body, want) in table {
        let case = format!("held {hold}, {path} {body}");
        let mut flow = unheld(keys, hold);
        let mut host = host(keys, path, body);
        let at_headers = flow.on_request_headers(&mut host, false);
        let refused_at_headers = !host.replies.is_empty();
        if at_headers == Next::Continue {
            host.headers_gone = true;
        }
        if !refused_at_headers {
            let n = host.body.len();
            flow.on_request_body(&mut host, n, true);
        }
        if let Some(reply) = host.replies.first() {
            let code = reply.error.as_ref().map(|e| e.code.as_str());
            assert_eq!(code, Some(want), "{case}");
            // A path's model is refused before anything leaves.
            assert_eq!(refused_at_headers, path.contains(":generate"), "{case}");
            assert!(host.dispatched.is_empty(), "{case}: no decision asked");
        } else {
            flow.on_callout_response(&mut host, 101, Some(200), ALLOW.as_bytes());
            assert!(host.replies.is_empty(), "{case}: {:?}", host.replies);
            assert_eq!(host.header(CLUSTER_HEADER), Some(want), "{case}");
            let asked: serde_json::Value = serde_json::from_str(&host.dispatched[0].body).unwrap();
            assert!(asked["model"].is_string(), "{case}");
        }
        assert!(
            host.late_header_writes.is_empty(),
            "{case}: {:?}",
            host.late_header_writes
        );
    }
}

#[test]
fn a_body_too_large_after_the_headers_left_is_refused() {
    let keys = Keys::new();
    let mut flow = unheld(keys, false);
    let big = format!(r#"{{"model":"gpt-4o-mini","pad":"{}"}}"#, "x".repeat(2000));
    let mut host = host(keys, "/v1/chat/completions", &big);
    assert_eq!(flow.on_request_headers(&mut host, false), Next::Continue);
    host.headers_gone = true;
    flow.on_request_body(&mut host, big.len(), true);
    assert_eq!(host.replies[0].status, 413);
    assert!(host.dispatched.is_empty());
}

#[test]
fn requests_without_a_body_are_decided_before_their_headers_go() {
    let keys = Keys::new();
    let mut c = keys.config_json();
    c["hold_headers"] = false.into();
    let mut flow = testing::flow_for(testing::runtime_from(&c));
    let auth = format!("Bearer {}", keys.es256.sign(testing::claims()).unwrap());
    let mut host = FakeHost::with_headers(&[
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
        ("authorization", &auth),
    ]);
    // No body at all: authorized with the headers held, as in any mesh.
    assert_eq!(flow.on_request_headers(&mut host, true), Next::Pause);
    assert_eq!(host.dispatched.len(), 1, "{:?}", host.replies);
    flow.on_callout_response(&mut host, 101, Some(200), ALLOW.as_bytes());
    assert_eq!(host.resumed, 1);
    assert_eq!(host.header(CLUSTER_HEADER), Some("provider_openai"));
}

/// A token signed by a key the gateway has not fetched yet: the headers wait for the
/// refetch (Envoy holds them, and the body behind them, for a callout), then leave; the
/// body follows and is decided on.
#[test]
fn a_key_refetch_holds_the_headers_then_they_leave_before_the_body() {
    use super::tests::{jwks_of, remote_flow_knowing_with, remote_token};
    let keys = Keys::new();
    let a = ES256KeyPair::generate().with_key_id("a");
    let b = ES256KeyPair::generate().with_key_id("b");
    let mut config = testing::remote_config(keys);
    config["hold_headers"] = false.into();
    let mut flow = remote_flow_knowing_with(config, &a);
    let auth = format!("Bearer {}", remote_token(&b));
    let mut host = FakeHost::with_headers(&[
        ("authorization", &auth),
        ("content-type", "application/json"),
    ]);
    host.body = br#"{"model":"gpt-4o-mini"}"#.to_vec();
    assert_eq!(flow.on_request_headers(&mut host, false), Next::Pause);
    assert_eq!(host.dispatched[0].cluster, "idp");
    // The keys arrive: the steps go on to await_body, the headers leave.
    flow.on_callout_response(&mut host, 101, Some(200), jwks_of(&b).as_bytes());
    assert!(host.replies.is_empty(), "{:?}", host.replies);
    assert_eq!(host.resumed, 1, "the headers go on");
    assert_eq!(host.header(CLUSTER_HEADER), Some("provider_openai"));
    host.headers_gone = true;
    let n = host.body.len();
    assert_eq!(flow.on_request_body(&mut host, n, true), Next::Pause);
    assert_eq!(host.dispatched.len(), 2, "authorize once the body is there");
    flow.on_callout_response(&mut host, 102, Some(200), ALLOW.as_bytes());
    assert_eq!(host.resumed, 2, "the body goes on");
    assert!(
        host.late_header_writes.is_empty(),
        "{:?}",
        host.late_header_writes
    );
}
