//! The request path against a fake host: what is stripped, asked, injected and answered.

use jwt_simple::prelude::*;

use super::*;
use crate::testing::{self, FakeHost, Keys, PROVIDER_KEY, SALT};

fn bearer(keys: &Keys) -> String {
    format!("Bearer {}", keys.es256.sign(testing::claims()).unwrap())
}

fn alice() -> String {
    identity::user_uuid(SALT.as_bytes(), testing::ISSUER, "alice")
}

const ALLOW: &str = r#"{"allow":true,"limit":10,"remaining":9,"reset_after_ms":1000}"#;

/// Runs a POST with `body` through headers and body; returns the flow paused at authorize.
fn post(keys: &Keys, extra: &[(&str, &str)], body: &str) -> (Flow, FakeHost) {
    let auth = bearer(keys);
    let mut headers = vec![
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
        ("content-type", "application/json"),
        ("x-request-id", "req-1"),
        ("authorization", auth.as_str()),
    ];
    headers.extend_from_slice(extra);
    let mut host = FakeHost::with_headers(&headers);
    host.body = body.as_bytes().to_vec();
    let mut flow = Flow::new(keys.runtime());
    assert_eq!(flow.on_request_headers(&mut host, false), Next::Pause);
    (flow, host)
}

#[test]
fn allowed_request_is_stripped_authorized_and_injected() {
    let keys = Keys::new();
    let forged = [
        ("x-api-key", "sk-client-own"),
        ("api-key", "azure-own"),
        ("x-goog-api-key", "goog-own"),
        ("cookie", "session=1"),
        ("x-chokepoint-user", "00000000-0000-8000-8000-000000000000"),
        ("x-chokepoint-tenant", "other"),
    ];
    let body = r#"{"model":"gpt-4o-mini","stream":true,"messages":[]}"#;
    let (mut flow, mut host) = post(keys, &forged, body);
    for (name, _) in forged {
        assert_eq!(
            host.header(name),
            None,
            "{name} must be stripped at headers time"
        );
    }
    assert_eq!(host.header("authorization"), None);

    let len = host.body.len();
    assert_eq!(flow.on_request_body(&mut host, len, true), Next::Pause);
    assert_eq!(host.dispatched.len(), 1);
    let call = &host.dispatched[0];
    assert_eq!(call.cluster, "policy");
    assert!(call
        .headers
        .contains(&(":path".into(), "/v1/authorize".into())));
    let asked: serde_json::Value = serde_json::from_str(&call.body).unwrap();
    assert_eq!(
        asked,
        serde_json::json!({"request_id":"req-1","user":alice(),"tenant":"acme","groups":["ml","eng"],
                           "model":"gpt-4o-mini","provider":"openai","stream":true})
    );
    assert!(host.replies.is_empty());

    flow.on_authorize_response(&mut host, 101, Some(200), ALLOW.as_bytes());
    assert_eq!(host.resumed, 1);
    assert_eq!(
        host.header("authorization"),
        Some(format!("Bearer {PROVIDER_KEY}").as_str())
    );
    assert_eq!(host.header(USER_HEADER), Some(alice().as_str()));
    assert_eq!(host.header(TENANT_HEADER), Some("acme"));
    assert_eq!(host.header("x-api-key"), None);
    assert_eq!(host.count_of(Counter::Allowed), 1);
    // Later body callbacks pass through untouched.
    assert_eq!(flow.on_request_body(&mut host, 10, true), Next::Continue);
}

#[test]
fn bodyless_request_authorizes_at_headers() {
    let keys = Keys::new();
    let auth = bearer(keys);
    let mut host = FakeHost::with_headers(&[
        (":method", "GET"),
        (":path", "/v1/models"),
        ("authorization", &auth),
    ]);
    let mut flow = Flow::new(keys.runtime());
    assert_eq!(flow.on_request_headers(&mut host, true), Next::Pause);
    assert_eq!(host.dispatched.len(), 1);
    flow.on_authorize_response(&mut host, 101, Some(200), ALLOW.as_bytes());
    assert_eq!(host.resumed, 1);
}

#[test]
fn authentication_failures_reply_401_without_callout() {
    let keys = Keys::new();
    let good = bearer(keys);
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str);
    let table: Vec<Case> = vec![
        ("no token", vec![], "missing"),
        (
            "not bearer",
            vec![("authorization", "Basic dXNlcjpwYXNz")],
            "malformed",
        ),
        (
            "garbage",
            vec![("authorization", "Bearer not.a.jwt")],
            "malformed",
        ),
        (
            "two authorization headers",
            vec![("authorization", &good), ("authorization", &good)],
            "malformed",
        ),
    ];
    for (name, headers, code) in table {
        let mut host = FakeHost::with_headers(&headers);
        let mut flow = Flow::new(keys.runtime());
        assert_eq!(
            flow.on_request_headers(&mut host, false),
            Next::Pause,
            "{name}"
        );
        assert!(host.dispatched.is_empty(), "{name}");
        assert_eq!(host.replies.len(), 1, "{name}");
        let r = &host.replies[0];
        assert_eq!(r.status, 401, "{name}");
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["error"]["code"], code, "{name}");
        assert!(
            r.headers.iter().any(|(k, _)| *k == "www-authenticate"),
            "{name}"
        );
        assert_eq!(
            host.header("authorization"),
            None,
            "{name}: token stripped even on failure"
        );
        // A refused request never continues.
        assert_eq!(
            flow.on_request_body(&mut host, 0, true),
            Next::Continue,
            "{name}"
        );
        assert!(host.dispatched.is_empty(), "{name}");
    }
}

#[test]
fn policy_answers_map_to_replies() {
    let keys = Keys::new();
    let deny = r#"{"allow":false,"reason":"rate_limited","message":"user request limit of 2 per 60s reached","retry_after_ms":30500}"#;
    let table: Vec<(&str, Option<u32>, &str, u32)> = vec![
        ("deny", Some(200), deny, 429),
        ("timeout", None, "", 503),
        ("5xx", Some(503), "", 503),
        ("garbage", Some(200), "<html>oops</html>", 503),
    ];
    for (name, status, body, want) in table {
        let (mut flow, mut host) = post(keys, &[], "{}");
        flow.on_request_body(&mut host, 2, true);
        flow.on_authorize_response(&mut host, 101, status, body.as_bytes());
        assert_eq!(host.resumed, 0, "{name}");
        assert_eq!(host.replies.len(), 1, "{name}");
        assert_eq!(host.replies[0].status, want, "{name}");
        assert_ne!(
            host.header("authorization"),
            Some(format!("Bearer {PROVIDER_KEY}").as_str()),
            "{name}"
        );
        if want == 429 {
            assert!(
                host.replies[0]
                    .headers
                    .contains(&("retry-after", "31".into())),
                "{name}"
            );
        }
    }
}

#[test]
fn unreachable_policy_cluster_fails_closed() {
    let keys = Keys::new();
    let (mut flow, mut host) = post(keys, &[], "{}");
    host.fail_dispatch = true;
    assert_eq!(flow.on_request_body(&mut host, 2, true), Next::Pause);
    assert_eq!(host.replies[0].status, 503);
    assert_eq!(host.count_of(Counter::PolicyUnavailable), 1);
}

#[test]
fn a_stale_callout_token_is_ignored() {
    let keys = Keys::new();
    let (mut flow, mut host) = post(keys, &[], "{}");
    flow.on_request_body(&mut host, 2, true);
    flow.on_authorize_response(&mut host, 999, Some(200), ALLOW.as_bytes());
    assert_eq!(host.resumed, 0);
    flow.on_authorize_response(&mut host, 101, Some(200), ALLOW.as_bytes());
    assert_eq!(host.resumed, 1);
}

#[test]
fn bad_bodies_are_refused_in_openai_shape() {
    let keys = Keys::new();
    let table: Vec<(&str, &str, u32)> = vec![
        ("not json", "{oops", 400),
        ("wrong type", r#"{"model": 7}"#, 400),
        ("too large", "x", 413),
    ];
    for (name, body, want) in table {
        let (mut flow, mut host) = post(keys, &[], body);
        let size = if want == 413 { 4096 } else { body.len() };
        flow.on_request_body(&mut host, size, true);
        assert!(host.dispatched.is_empty(), "{name}");
        assert_eq!(host.replies.len(), 1, "{name}");
        assert_eq!(host.replies[0].status, want, "{name}");
        let v: serde_json::Value = serde_json::from_str(&host.replies[0].body).unwrap();
        assert_eq!(v["error"]["type"], "invalid_request_error", "{name}");
    }
}

#[test]
fn a_large_body_is_refused_before_it_is_complete() {
    let keys = Keys::new();
    let (mut flow, mut host) = post(keys, &[], "{}");
    assert_eq!(flow.on_request_body(&mut host, 512, false), Next::Pause);
    assert!(host.replies.is_empty());
    flow.on_request_body(&mut host, 2048, false);
    assert_eq!(host.replies[0].status, 413);
}

#[test]
fn non_json_content_type_is_415() {
    let keys = Keys::new();
    let auth = bearer(keys);
    let mut host =
        FakeHost::with_headers(&[("authorization", &auth), ("content-type", "text/plain")]);
    let mut flow = Flow::new(keys.runtime());
    flow.on_request_headers(&mut host, false);
    assert_eq!(host.replies[0].status, 415);
    assert!(host.dispatched.is_empty());
}
