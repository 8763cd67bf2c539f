//! The request path against a fake host: what is stripped, asked, injected and answered.

use jwt_simple::prelude::*;

use super::*;
use crate::host::Clock;
use crate::identity::jwks_sync;
use crate::identity::pseudonym;
use crate::testing::{
    self, remote_config, FakeHost, Keys, POLICY_TOKEN, PROVIDER_KEY, REMOTE, SALT,
};

fn bearer(keys: &Keys) -> String {
    format!("Bearer {}", keys.es256.sign(testing::claims()).unwrap())
}

fn alice() -> String {
    pseudonym::user_uuid(SALT.as_bytes(), testing::ISSUER, "alice")
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
    let mut flow = keys.flow();
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
        serde_json::json!({"request_id":host.random_id(),"user":alice(),"tenant":"acme","groups":["ml","eng"],
                           "model":"gpt-4o-mini","model_key":"gpt-4o-mini","provider":"openai",
                           "stream":true,"cost_center":null,
                           // 52 body bytes ~ 13 input tokens, plus the default output cap of 4096,
                           // priced at $0.15 / $0.60 per million: 2459.55 micro-dollars, rounded up.
                           "reserve_tokens":4109,"reserve_cost_micros":2460})
    );
    assert!(host.replies.is_empty());

    flow.on_callout_response(&mut host, 101, Some(200), ALLOW.as_bytes());
    assert_eq!(host.resumed, 1);
    assert_eq!(
        host.header("authorization"),
        Some(format!("Bearer {PROVIDER_KEY}").as_str())
    );
    // An outside provider learns nothing of the organisation's view of the caller.
    for name in [
        USER_HEADER,
        TENANT_HEADER,
        GROUPS_HEADER,
        COST_CENTER_HEADER,
    ] {
        assert_eq!(host.header(name), None, "{name}");
    }
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
    let mut flow = keys.flow();
    assert_eq!(flow.on_request_headers(&mut host, true), Next::Pause);
    assert_eq!(host.dispatched.len(), 1);
    flow.on_callout_response(&mut host, 101, Some(200), ALLOW.as_bytes());
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
        let mut flow = keys.flow();
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
    let unpriced = r#"{"allow":false,"reason":"unpriced_model","message":"The model has no price.","retry_after_ms":1000}"#;
    let redis_down = r#"{"error":{"code":"redis_unavailable","message":"Redis is down"}}"#;
    // (name, status, body, reply, asked again: no instance answered, so the same answer
    // comes back to the second ask)
    let table: Vec<(&str, Option<u32>, &str, u32, bool)> = vec![
        ("deny", Some(200), deny, 429, false),
        (
            "unpriced under a dollar budget",
            Some(200),
            unpriced,
            403,
            false,
        ),
        ("no answer", None, "", 503, true),
        ("Envoy's 503", Some(503), "", 503, true),
        ("the service's 503", Some(503), redis_down, 503, false),
        ("timeout", Some(504), "upstream request timeout", 503, false),
        ("garbage", Some(200), "<html>oops</html>", 503, false),
    ];
    for (name, status, body, want, again) in table {
        let (mut flow, mut host) = post(keys, &[], "{}");
        flow.on_request_body(&mut host, 2, true);
        flow.on_callout_response(&mut host, 101, status, body.as_bytes());
        if again {
            flow.on_callout_response(&mut host, 102, status, body.as_bytes());
        }
        assert_eq!(host.dispatched.len(), 1 + usize::from(again), "{name}");
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
        if want == 403 {
            let code = host.replies[0].error.as_ref().map(|e| e.code.as_str());
            assert_eq!(code, Some("model_not_priced"), "{name}");
            assert!(
                !host.replies[0]
                    .headers
                    .iter()
                    .any(|(n, _)| *n == "retry-after"),
                "{name}: retrying would not help"
            );
        }
    }
}

/// A refused request never reached a provider: its record has its decision and status but
/// no tokens, no cost and no estimate, whatever the body would have cost, and the ledger
/// gets nothing. (The access log and the usage stats read this record.)
#[test]
fn refusals_are_recorded_without_tokens_or_cost() {
    let keys = Keys::new();
    let deny = r#"{"allow":false,"reason":"budget_exceeded","message":"tenant acme's daily budget of $5.00 is spent","retry_after_ms":70000000}"#;
    let body = format!(
        r#"{{"model":"gpt-4o-mini","messages":[{{"role":"user","content":"{}"}}]}}"#,
        "x".repeat(600)
    );
    let (mut flow, mut host) = post(keys, &[], &body);
    flow.on_request_body(&mut host, body.len(), true);
    flow.on_callout_response(&mut host, 101, Some(200), deny.as_bytes());
    assert_eq!(host.replies.len(), 1);
    assert_eq!(host.replies[0].status, 429);
    flow.on_log(&mut host);
    assert!(host.queued.is_empty(), "nothing for the ledger");
    let rec: serde_json::Value =
        serde_json::from_slice(&host.filter_state[USAGE_FILTER_STATE]).unwrap();
    assert_eq!(rec["decision"], "denied", "{rec}");
    assert_eq!(rec["status"], 429, "{rec}");
    assert_eq!(rec["model"], "gpt-4o-mini", "{rec}");
    for field in ["input_tokens", "output_tokens", "cost_micros"] {
        assert_eq!(rec[field], 0, "{field}: {rec}");
    }
    assert_eq!(rec["estimated"], false, "{rec}");
}

/// A model without a price asks with `priced: false` (the policy service refuses it under
/// a dollar budget); every other model with `priced` left out. Both name what the ledger
/// keys the model under, a name the configuration holds or `other`.
#[test]
fn unpriced_models_say_so_and_are_keyed_by_the_configuration() {
    let keys = Keys::new();
    let mut config = keys.config_json();
    config["prices"]["models"]["claude-haiku-4-5*"] =
        serde_json::json!({"input_per_mtok_usd": "1", "output_per_mtok_usd": "5"});
    let rt = testing::runtime_from(&config);
    let cases = [
        ("gpt-4o-mini", None, "gpt-4o-mini"),
        ("claude-haiku-4-5-20251001", None, "claude-haiku-4-5*"),
        ("local-llama-3", Some(false), "other"),
    ];
    for (model, priced, key) in cases {
        let auth = bearer(keys);
        let mut host = FakeHost::with_headers(&[
            (":method", "POST"),
            (":path", "/v1/chat/completions"),
            ("content-type", "application/json"),
            ("authorization", auth.as_str()),
        ]);
        host.body = format!(r#"{{"model":"{model}","messages":[]}}"#).into_bytes();
        let mut flow = testing::flow_for(Rc::clone(&rt));
        flow.on_request_headers(&mut host, false);
        let len = host.body.len();
        flow.on_request_body(&mut host, len, true);
        let asked: serde_json::Value =
            serde_json::from_str(&host.dispatched[0].body).unwrap_or_default();
        assert_eq!(asked["priced"].as_bool(), priced, "{model}");
        assert_eq!(asked["model_key"], key, "{model}");
        assert_eq!(asked["model"], model, "{model}");
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

/// A decision's callout that no policy service instance answered (one dying under load)
/// is asked once more, the same decision under the same request id; the service's own
/// 503 (Redis down, JSON) and a timeout (504) are not, nor a second failure.
#[test]
fn a_decision_no_instance_answered_is_asked_once_more() {
    let keys = Keys::new();
    const RESET: &str = "upstream connect error or disconnect/reset before headers";
    const REDIS_DOWN: &str = r#"{"error":{"code":"redis_unavailable","message":"x"}}"#;
    // (first answer, a second answer when asked again, final status: 0 allowed)
    type Answer = (Option<u32>, &'static str);
    let cases: [(Option<u32>, &str, Option<Answer>, u32); 6] = [
        (None, "", Some((Some(200), ALLOW)), 0),
        (Some(503), RESET, Some((Some(200), ALLOW)), 0),
        (None, "", Some((None, "")), 503),
        (Some(503), RESET, Some((Some(503), RESET)), 503),
        (Some(503), REDIS_DOWN, None, 503),
        (Some(504), "upstream request timeout", None, 503),
    ];
    for (i, (first, first_body, again, want)) in cases.into_iter().enumerate() {
        let (mut flow, mut host) = post(keys, &[], "{}");
        flow.on_request_body(&mut host, 2, true);
        assert_eq!(host.dispatched.len(), 1, "case {i}");
        // The fake host's call tokens are 100 + the calls made.
        flow.on_callout_response(&mut host, 101, first, first_body.as_bytes());
        if let Some((status, body)) = again {
            assert_eq!(host.dispatched.len(), 2, "case {i}: asked again");
            assert_eq!(host.dispatched[0].body, host.dispatched[1].body, "case {i}");
            assert_eq!(host.count_of(Counter::PolicyRetried), 1, "case {i}");
            flow.on_callout_response(&mut host, 102, status, body.as_bytes());
        }
        assert_eq!(
            host.dispatched.len(),
            1 + usize::from(again.is_some()),
            "case {i}"
        );
        if want == 0 {
            assert!(host.replies.is_empty(), "case {i}: {:?}", host.replies);
            assert_eq!(host.resumed, 1, "case {i}");
        } else {
            assert_eq!(host.replies[0].status, want, "case {i}");
            assert_eq!(host.count_of(Counter::PolicyUnavailable), 1, "case {i}");
        }
    }
}

#[test]
fn a_stale_callout_token_is_ignored() {
    let keys = Keys::new();
    let (mut flow, mut host) = post(keys, &[], "{}");
    flow.on_request_body(&mut host, 2, true);
    flow.on_callout_response(&mut host, 999, Some(200), ALLOW.as_bytes());
    assert_eq!(host.resumed, 0);
    flow.on_callout_response(&mut host, 101, Some(200), ALLOW.as_bytes());
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
fn an_encoding_envoy_did_not_inflate_is_415() {
    let keys = Keys::new();
    let auth = bearer(keys);
    let mut host = FakeHost::with_headers(&[
        ("authorization", &auth),
        ("content-type", "application/json"),
        ("content-encoding", "br"),
    ]);
    let mut flow = keys.flow();
    flow.on_request_headers(&mut host, false);
    assert_eq!(host.replies[0].status, 415);
    assert!(host.replies[0]
        .body
        .contains("unsupported_content_encoding"));
    assert!(host.dispatched.is_empty());
}

#[test]
fn non_json_content_type_is_415() {
    let keys = Keys::new();
    let auth = bearer(keys);
    let mut host =
        FakeHost::with_headers(&[("authorization", &auth), ("content-type", "text/plain")]);
    let mut flow = keys.flow();
    flow.on_request_headers(&mut host, false);
    assert_eq!(host.replies[0].status, 415);
    assert!(host.dispatched.is_empty());
}

pub(super) fn remote_token(key: &ES256KeyPair) -> String {
    key.sign(testing::claims().with_issuer(REMOTE)).unwrap()
}

pub(super) fn jwks_of(key: &ES256KeyPair) -> String {
    format!("{{\"keys\":[{}]}}", key.public_key().to_jwk())
}

/// A bodyless chat request (the body is not what these tests are about).
fn get_with(token: &str) -> FakeHost {
    let auth = format!("Bearer {token}");
    FakeHost::with_headers(&[
        (":method", "POST"),
        ("authorization", &auth),
        ("x-request-id", "r"),
    ])
}

#[test]
fn remote_issuer_without_keys_yet_is_503() {
    let keys = Keys::new();
    let mut flow = testing::flow_for(testing::runtime_from(&remote_config(keys)));
    let mut host = get_with(&remote_token(&keys.es256));
    // The store is empty, but a kid lookup fails first only when keys exist: with none
    // at all the answer is "not yet", not "unknown".
    flow.on_request_headers(&mut host, true);
    assert_eq!(host.replies[0].status, 503);
    let v: serde_json::Value = serde_json::from_str(&host.replies[0].body).unwrap();
    assert_eq!(v["error"]["code"], "jwks_unavailable");
}

/// A flow whose remote issuer already knows key A.
fn remote_flow_knowing(keys: &Keys, a: &ES256KeyPair) -> Flow {
    remote_flow_knowing_with(remote_config(keys), a)
}

/// The same with this configuration (which must have the remote issuer).
pub(super) fn remote_flow_knowing_with(config: serde_json::Value, a: &ES256KeyPair) -> Flow {
    let rt = testing::runtime_from(&config);
    let auth = Rc::new(std::cell::RefCell::new(crate::auth_state::AuthState::new(
        &rt,
    )));
    let (set, _) = crate::identity::jwks::KeySet::from_fetched(jwks_of(a).as_bytes()).unwrap();
    // Version 0: never a shared-data version, as if loaded before any sharing.
    auth.borrow_mut().keys.replace(REMOTE, set, 0);
    Flow::new(rt, auth)
}

#[test]
fn rotated_key_is_fetched_and_the_request_continues() {
    let keys = Keys::new();
    let a = ES256KeyPair::generate().with_key_id("a");
    let b = ES256KeyPair::generate().with_key_id("b");
    let mut flow = remote_flow_knowing(keys, &a);

    // A POST whose body arrives while the keys are being fetched.
    let auth = format!("Bearer {}", remote_token(&b));
    let mut host = FakeHost::with_headers(&[
        ("authorization", &auth),
        ("content-type", "application/json"),
    ]);
    host.body = br#"{"model":"m"}"#.to_vec();
    assert_eq!(flow.on_request_headers(&mut host, false), Next::Pause);
    assert_eq!(host.dispatched.len(), 1);
    assert_eq!(host.dispatched[0].cluster, "idp");
    assert!(host.dispatched[0]
        .headers
        .contains(&(":path".into(), "/jwks.json".into())));
    assert_eq!(flow.on_request_body(&mut host, 13, true), Next::Pause);
    assert_eq!(host.dispatched.len(), 1, "no authorize before the keys");

    flow.on_callout_response(&mut host, 101, Some(200), jwks_of(&b).as_bytes());
    assert!(host.replies.is_empty(), "{:?}", host.replies);
    assert_eq!(host.dispatched.len(), 2, "authorize after the refetch");
    let asked: serde_json::Value = serde_json::from_str(&host.dispatched[1].body).unwrap();
    assert_eq!(asked["model"], "m");
    assert_eq!(
        asked["user"],
        pseudonym::user_uuid(SALT.as_bytes(), REMOTE, "alice")
    );
    // Shared with the other workers.
    assert!(host
        .shared
        .keys()
        .any(|k| k == "chokepoint.jwks.https://remote.test"));
    flow.on_callout_response(&mut host, 102, Some(200), ALLOW.as_bytes());
    assert_eq!(host.resumed, 1);
}

#[test]
fn refetches_are_rate_limited_and_failures_are_401() {
    let keys = Keys::new();
    let a = ES256KeyPair::generate().with_key_id("a");
    let c = ES256KeyPair::generate().with_key_id("c");
    let mut flow = remote_flow_knowing(keys, &a);
    let mut host = get_with(&remote_token(&c));
    flow.on_request_headers(&mut host, true);
    assert_eq!(host.dispatched.len(), 1);
    // The IdP does not have the key either.
    flow.on_callout_response(&mut host, 101, Some(200), jwks_of(&a).as_bytes());
    assert_eq!(host.replies[0].status, 401);

    // Within the minute, another unknown kid does not refetch (shared gate).
    let mut again = get_with(&remote_token(&c));
    again.shared = host.shared.clone();
    let mut flow = remote_flow_knowing(keys, &a);
    flow.on_request_headers(&mut again, true);
    assert!(again.dispatched.is_empty());
    let v: serde_json::Value = serde_json::from_str(&again.replies[0].body).unwrap();
    assert_eq!(v["error"]["code"], "unknown_key");
    // A minute later it may.
    let mut later = get_with(&remote_token(&c));
    later.shared = host.shared.clone();
    later.now += 60;
    let mut flow = remote_flow_knowing(keys, &a);
    flow.on_request_headers(&mut later, true);
    assert_eq!(later.dispatched.len(), 1);
    // A failed fetch keeps the old keys and refuses the token.
    flow.on_callout_response(&mut later, 101, Some(503), b"");
    assert_eq!(later.replies[0].status, 401);
}

#[test]
fn a_returning_token_hits_the_cache() {
    let keys = Keys::new();
    let rt = keys.runtime();
    let auth = Rc::new(std::cell::RefCell::new(crate::auth_state::AuthState::new(
        &rt,
    )));
    let token = keys.rs256.sign(testing::claims()).unwrap();
    for round in 0..3 {
        let mut host = get_with(&token);
        let mut flow = Flow::new(Rc::clone(&rt), Rc::clone(&auth));
        flow.on_request_headers(&mut host, true);
        assert_eq!(host.dispatched.len(), 1, "round {round}");
        let hits = host.count_of(Counter::TokenCacheHit);
        assert_eq!(hits, u64::from(round > 0), "round {round}");
    }
    // An expired token is not served from the cache.
    let mut host = get_with(&token);
    host.now = testing::NOW + 3600 + 61;
    Flow::new(Rc::clone(&rt), Rc::clone(&auth)).on_request_headers(&mut host, true);
    assert_eq!(host.replies[0].status, 401);
}

#[test]
fn hmac_only_for_an_issuer_with_a_secret() {
    let keys = Keys::new();
    let secret = "s".repeat(40);
    let mut c = keys.config_json();
    c["issuers"][0]["hmac_secret_env"] = "ISSUER_SECRET".into();
    let config = crate::config::Config::parse(c.to_string().as_bytes()).unwrap();
    let rt = Rc::new(
        crate::runtime::Runtime::new(config, |k| match k {
            "ISSUER_SECRET" => Some(secret.clone()),
            other => testing::env(other),
        })
        .unwrap(),
    );
    let hs = HS256Key::from_bytes(secret.as_bytes())
        .authenticate(testing::claims())
        .unwrap();
    let mut host = get_with(&hs);
    testing::flow_for(Rc::clone(&rt)).on_request_headers(&mut host, true);
    assert!(host.replies.is_empty(), "{:?}", host.replies);
    // Without the secret configured, the same token is refused.
    let mut host = get_with(&hs);
    keys.flow().on_request_headers(&mut host, true);
    assert_eq!(host.replies[0].status, 401);
}

/// Each provider's SDK sends its API key in its own header: with the JWT as that key, every
/// SDK works unchanged against its API, and the header never reaches the provider.
#[test]
fn each_providers_sdk_key_header_carries_the_jwt_by_default() {
    let keys = Keys::new();
    let jwt = keys.es256.sign(testing::claims()).unwrap();
    let bearer = format!("Bearer {jwt}");
    type Headers<'a> = Vec<(&'a str, &'a str)>;
    let cases: Vec<(&str, &str, Headers)> = vec![
        (
            "openai",
            "/v1/chat/completions",
            vec![("authorization", bearer.as_str())],
        ),
        (
            "anthropic",
            "/v1/messages",
            vec![
                ("x-api-key", jwt.as_str()),
                ("anthropic-version", "2023-06-01"),
            ],
        ),
        (
            "gemini",
            "/v1beta/models/gemini-2.5-flash:generateContent",
            vec![("x-goog-api-key", jwt.as_str())],
        ),
        (
            "azure",
            "/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-10-21",
            vec![("api-key", jwt.as_str())],
        ),
        // A real provider key where the JWT should be: refused, and never forwarded.
        (
            "anthropic, own key",
            "/v1/messages",
            vec![("x-api-key", "sk-ant-api03-own")],
        ),
    ];
    for (case, path, creds) in cases {
        let mut headers = vec![
            (":method", "POST"),
            (":path", path),
            ("content-type", "application/json"),
        ];
        headers.extend(creds.iter().copied());
        let mut host = FakeHost::with_headers(&headers);
        let mut flow = keys.flow();
        flow.on_request_headers(&mut host, true);
        for (name, _) in &creds {
            if *name != "anthropic-version" {
                assert_eq!(host.header(name), None, "{case}: {name} stripped");
            }
        }
        if case.ends_with("own key") {
            assert_eq!(host.replies.len(), 1, "{case}");
            assert_eq!(host.replies[0].status, 401, "{case}");
            continue;
        }
        // Gemini and Azure have no provider in this configuration: authenticated, then 404.
        let want = if matches!(case, "gemini" | "azure") {
            404
        } else {
            0
        };
        let got = host.replies.first().map_or(0, |r| r.status);
        assert_eq!(got, want, "{case}: {:?}", host.replies);
        if want == 0 {
            assert_eq!(host.dispatched.len(), 1, "{case}: authorized");
        }
    }
}

/// Token counting is forwarded as the client sent it: no end-user field, no output cap
/// (Anthropic's count_tokens refuses fields it does not know).
#[test]
fn token_counting_bodies_go_unedited() {
    let keys = Keys::new();
    let jwt = keys.es256.sign(testing::claims()).unwrap();
    let body = r#"{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"hi"}]}"#;
    let mut host = FakeHost::with_headers(&[
        (":method", "POST"),
        (":path", "/v1/messages/count_tokens"),
        ("content-type", "application/json"),
        ("x-api-key", jwt.as_str()),
    ]);
    host.body = body.as_bytes().to_vec();
    let mut config = keys.config_json();
    config["attribution"] = true.into();
    config["enforce_output_cap"] = true.into();
    let mut flow = testing::flow_for(testing::runtime_from(&config));
    assert_eq!(flow.on_request_headers(&mut host, false), Next::Pause);
    let len = host.body.len();
    assert_eq!(flow.on_request_body(&mut host, len, true), Next::Pause);
    assert!(host.replies.is_empty(), "{:?}", host.replies);
    assert_eq!(host.body, body.as_bytes(), "forwarded as sent");
    assert_eq!(host.dispatched.len(), 1, "authorized like any call");
}

#[test]
fn other_token_sources_and_identity_headers() {
    let keys = Keys::new();
    let mut c = keys.config_json();
    c["token_sources"] =
        serde_json::json!([{"header": "cf-access-jwt-assertion"}, {"cookie": "CF_Authorization"}]);
    c["issuers"][0]["required_claims"] = serde_json::json!(["tenant"]);
    // The organisation's own model server: the one kind that gets the identity headers.
    c["providers"][0]["internal"] = true.into();
    let rt = testing::runtime_from(&c);
    let token = keys
        .ed
        .sign(testing::claims().with_subject("carol"))
        .unwrap();
    let cookie = format!("theme=dark; CF_Authorization={token}");
    let table: Vec<(&str, Vec<(&str, &str)>)> = vec![
        (
            "assertion header",
            vec![("cf-access-jwt-assertion", token.as_str())],
        ),
        ("cookie", vec![("cookie", cookie.as_str())]),
    ];
    for (name, headers) in table {
        let mut host = FakeHost::with_headers(&headers);
        let mut flow = testing::flow_for(Rc::clone(&rt));
        flow.on_request_headers(&mut host, true);
        assert!(host.replies.is_empty(), "{name}: {:?}", host.replies);
        assert_eq!(host.header("cookie"), None, "{name}");
        assert_eq!(host.header("cf-access-jwt-assertion"), None, "{name}");
        flow.on_callout_response(&mut host, 101, Some(200), ALLOW.as_bytes());
        assert_eq!(host.header(GROUPS_HEADER), Some("ml,eng"), "{name}");
        assert_eq!(
            host.header(USER_HEADER).map(str::to_owned),
            Some(pseudonym::user_uuid(
                SALT.as_bytes(),
                testing::ISSUER,
                "carol"
            ))
        );
    }
    // Bearer is not a configured source here.
    let mut host = get_with(&token);
    testing::flow_for(Rc::clone(&rt)).on_request_headers(&mut host, true);
    assert_eq!(host.replies[0].status, 401);
    // A required claim missing: refused.
    let mut claims = testing::claims();
    claims.custom.remove("tenant");
    let no_tenant = keys.ed.sign(claims).unwrap();
    let mut host = FakeHost::with_headers(&[("cf-access-jwt-assertion", &no_tenant)]);
    testing::flow_for(rt).on_request_headers(&mut host, true);
    assert_eq!(host.replies[0].status, 401);
}

#[test]
fn keys_another_worker_fetched_are_used_without_a_refetch() {
    let keys = Keys::new();
    let a = ES256KeyPair::generate().with_key_id("a");
    let b = ES256KeyPair::generate().with_key_id("b");
    let mut host = get_with(&remote_token(&b));
    // Worker 1 fetched B and shared it; this worker still only knows A.
    jwks_sync::publish(&mut host, REMOTE, testing::NOW, jwks_of(&b).as_bytes());
    let mut flow = remote_flow_knowing(keys, &a);
    flow.on_request_headers(&mut host, true);
    assert!(host.replies.is_empty(), "{:?}", host.replies);
    assert_eq!(host.dispatched.len(), 1);
    assert_eq!(
        host.dispatched[0].cluster, "policy",
        "straight to authorize, no IdP call"
    );
}

#[test]
fn a_worker_without_keys_adopts_the_shared_ones() {
    let keys = Keys::new();
    let b = ES256KeyPair::generate().with_key_id("b");
    let mut host = get_with(&remote_token(&b));
    jwks_sync::publish(&mut host, REMOTE, testing::NOW, jwks_of(&b).as_bytes());
    let mut flow = testing::flow_for(testing::runtime_from(&remote_config(keys)));
    flow.on_request_headers(&mut host, true);
    assert!(host.replies.is_empty(), "{:?}", host.replies);
    assert_eq!(host.dispatched[0].cluster, "policy");
}

const CHAT_STREAM: &str = include_str!("../../fixtures/openai_chat_stream.sse");

/// A streamed chat completion, allowed and forwarded, its response headers just in.
fn streaming(keys: &Keys) -> (Flow, FakeHost) {
    let (mut flow, mut host) = post(keys, &[], r#"{"model":"gpt-4o-mini","stream":true}"#);
    flow.on_request_body(&mut host, 37, true);
    flow.on_callout_response(&mut host, 101, Some(200), ALLOW.as_bytes());
    host.response_status = Some(200);
    host.response_type = Some("text/event-stream".into());
    flow.on_response_headers(&mut host);
    (flow, host)
}

#[test]
fn every_request_ends_as_one_usage_record() {
    let keys = Keys::new();
    // Forwarded and streamed: counted from the stream, queued for the ledger.
    let (mut flow, mut host) = streaming(keys);
    assert!(host
        .response_headers
        .iter()
        .any(|(k, _)| k == REQUEST_ID_HEADER));
    for chunk in CHAT_STREAM.as_bytes().chunks(64) {
        host.response_chunk = chunk.to_vec();
        assert_eq!(
            flow.on_response_body(&mut host, chunk.len(), false),
            Next::Continue,
            "never held"
        );
    }
    host.response_chunk.clear();
    flow.on_response_body(&mut host, 0, true);
    flow.on_log(&mut host);
    flow.on_log(&mut host);
    assert_eq!(host.queued.len(), 1, "exactly one record");
    let rec: serde_json::Value = serde_json::from_slice(&host.queued[0]).unwrap();
    assert_eq!(rec["user"], alice());
    assert_eq!(rec["model"], "gpt-4o-mini");
    assert_eq!(rec["provider"], "openai");
    assert_eq!(rec["format"], "openai_chat");
    assert_eq!(rec["api"], "openai");
    assert_eq!(rec["operation"], "chat");
    assert_eq!(rec["policy_version"], "sha256:00112233aabbccdd");
    assert_eq!(rec["price_version"], "sha256:ffeeddccbbaa9988");
    assert_eq!(rec["decision"], "allowed");
    assert_eq!(rec["status"], 200);
    assert_eq!(rec["estimated"], false);
    assert_eq!(rec["completed"], true);
    assert!(rec["output_tokens"].as_u64().unwrap() > 0);
    assert!(rec["cost_micros"].as_u64().unwrap() > 0, "priced: {rec}");
    assert_eq!(host.filter_state[USAGE_FILTER_STATE], host.queued[0]);
    assert!(
        !String::from_utf8_lossy(&host.queued[0]).contains("Hello"),
        "no completion text"
    );

    // Refused: logged with its decision, not charged.
    let mut host = FakeHost::with_headers(&[]);
    let mut flow = keys.flow();
    flow.on_request_headers(&mut host, true);
    flow.on_log(&mut host);
    assert!(host.queued.is_empty());
    let rec: serde_json::Value =
        serde_json::from_slice(&host.filter_state[USAGE_FILTER_STATE]).unwrap();
    assert_eq!(rec["decision"], "unauthenticated");
    assert_eq!(rec["status"], 401);
    assert!(rec["user"].is_null());
}

/// The record names the calling tool and its session from the tool's own headers, which
/// still go upstream as they came; a request without them has neither field.
#[test]
fn the_record_names_the_tool_and_its_session() {
    let keys = Keys::new();
    let session = "1e6872d4-cb3a-4791-9ae1-32aa40e69098";
    let (mut flow, mut host) = post(
        keys,
        &[
            ("user-agent", "claude-cli/2.1.332 (external, sdk-cli)"),
            ("x-app", "cli"),
            ("x-claude-code-session-id", session),
        ],
        r#"{"model":"gpt-4o-mini"}"#,
    );
    flow.on_request_body(&mut host, 23, true);
    flow.on_callout_response(&mut host, 101, Some(200), ALLOW.as_bytes());
    host.response_status = Some(200);
    flow.on_log(&mut host);
    let rec: serde_json::Value = serde_json::from_slice(&host.queued[0]).unwrap();
    assert_eq!(rec["client"], "claude-code/2.1.332", "{rec}");
    assert_eq!(rec["session"], session, "{rec}");
    assert_eq!(
        host.header("x-claude-code-session-id"),
        Some(session),
        "passed upstream untouched"
    );

    let (mut flow, mut host) = post(
        keys,
        &[("user-agent", "bad\u{1}/1"), ("session-id", "has space")],
        r#"{"model":"gpt-4o-mini"}"#,
    );
    flow.on_request_body(&mut host, 23, true);
    flow.on_callout_response(&mut host, 101, Some(200), ALLOW.as_bytes());
    flow.on_log(&mut host);
    let rec: serde_json::Value = serde_json::from_slice(&host.queued[0]).unwrap();
    assert!(rec.get("client").is_none(), "{rec}");
    assert!(rec.get("session").is_none(), "{rec}");
}

/// The policy service answers only the gateway: its token rides on the authorize
/// callout (and only there), never upstream, in a reply or in the record.
#[test]
fn the_authorize_callout_carries_the_gateway_token_and_nothing_else_does() {
    let keys = Keys::new();
    let (mut flow, mut host) = streaming(keys);
    assert_eq!(host.dispatched.len(), 1);
    let call = host.dispatched[0].clone();
    let authorizations: Vec<&str> = call
        .headers
        .iter()
        .filter(|(k, _)| k == "authorization")
        .map(|(_, v)| v.as_str())
        .collect();
    let bearer = format!("Bearer {POLICY_TOKEN}");
    assert_eq!(
        authorizations,
        [bearer.as_str()],
        "the client's JWT stays out"
    );
    host.response_chunk = CHAT_STREAM.as_bytes().to_vec();
    flow.on_response_body(&mut host, CHAT_STREAM.len(), true);
    flow.on_log(&mut host);
    assert_eq!(host.queued.len(), 1);

    let upstream = format!("{:?}", host.headers);
    let record = String::from_utf8_lossy(&host.queued[0]);
    let state = format!("{:?}", host.filter_state);
    let answered = format!("{:?} {:?}", host.response_headers, host.replies);
    for (what, text) in [
        ("upstream headers", &upstream),
        ("usage record", &record.to_string()),
        ("filter state", &state),
        ("response", &answered),
        ("callout body", &call.body),
    ] {
        assert!(!text.contains(POLICY_TOKEN), "{what}: {text}");
    }
}

#[test]
fn requests_are_routed_by_api_with_that_providers_key() {
    let keys = Keys::new();
    let auth = bearer(keys);
    let mut host = FakeHost::with_headers(&[
        (":path", "/v1/messages"),
        ("authorization", &auth),
        ("x-api-key", "client-own"),
        ("content-type", "application/json"),
    ]);
    host.body = br#"{"model":"claude-x","max_tokens":10}"#.to_vec();
    let mut flow = keys.flow();
    flow.on_request_headers(&mut host, false);
    let n = host.body.len();
    flow.on_request_body(&mut host, n, true);
    flow.on_callout_response(&mut host, 101, Some(200), ALLOW.as_bytes());
    assert_eq!(host.header("x-api-key"), Some(testing::ANTHROPIC_KEY));
    assert_eq!(host.header("authorization"), None);
    assert_eq!(host.header(CLUSTER_HEADER), Some("provider_anthropic"));

    // An API with no provider configured, and a path that is no API at all: each
    // answered in the error shape of the API the client called.
    for (path, code) in [
        ("/v1beta/models/g:generateContent", "no_provider"),
        ("/admin", "unknown_url"),
    ] {
        let mut host = FakeHost::with_headers(&[(":path", path), ("authorization", &auth)]);
        keys.flow().on_request_headers(&mut host, true);
        assert_eq!(host.replies[0].status, 404, "{path}");
        let v: serde_json::Value = serde_json::from_str(&host.replies[0].body).unwrap();
        let said = v["error"]["details"][0]["reason"]
            .as_str()
            .or(v["error"]["code"].as_str());
        assert_eq!(said, Some(code), "{path}");
    }
}

/// The gateway's own errors in each API's shape, from the API's path or, where SDKs
/// share a path, the header its SDK sends.
#[test]
fn errors_are_answered_in_the_shape_of_the_api_called() {
    let keys = Keys::new();
    type Check = fn(&serde_json::Value);
    type Header = Option<(&'static str, &'static str)>;
    let cases: &[(&str, Header, Check)] = &[
        ("/v1/chat/completions", None, |v| {
            assert_eq!(v["error"]["type"], "authentication_error");
            assert_eq!(v["error"]["code"], "missing");
        }),
        ("/v1/messages", None, |v| {
            assert_eq!(v["type"], "error");
            assert_eq!(v["error"]["type"], "authentication_error");
        }),
        (
            "/v1/models",
            Some(("anthropic-version", "2023-06-01")),
            |v| {
                assert_eq!(v["type"], "error");
            },
        ),
        (
            "/v1/models",
            Some(("x-goog-api-client", "google-genai-sdk/3")),
            |v| {
                assert_eq!(v["error"]["status"], "UNAUTHENTICATED");
            },
        ),
        (
            "/v1beta/models/g:streamGenerateContent?alt=sse",
            None,
            |v| {
                assert_eq!(v["error"]["code"], 401);
                assert_eq!(v["error"]["status"], "UNAUTHENTICATED");
                assert_eq!(v["error"]["details"][0]["reason"], "missing");
            },
        ),
        ("/openai/deployments/d/chat/completions", None, |v| {
            assert_eq!(v["error"]["code"], "missing");
        }),
    ];
    for (path, header, check) in cases {
        let mut headers = vec![(":path", *path)];
        headers.extend(header.iter().copied());
        let mut host = FakeHost::with_headers(&headers);
        keys.flow().on_request_headers(&mut host, true);
        assert_eq!(host.replies[0].status, 401, "{path}");
        let v: serde_json::Value = serde_json::from_str(&host.replies[0].body).unwrap();
        check(&v);
    }
}

fn routed_config(keys: &Keys) -> serde_json::Value {
    let mut c = keys.config_json();
    c["attribution"] = true.into();
    c["models"] = serde_json::json!({
        "aliases": {"default": "gpt-4o-mini"},
        "routes": [
            {"model": "gpt-4o-mini", "providers": ["openai"]},
            {"model": "claude-*", "providers": ["anthropic"], "allow_groups": ["research"]},
        ]
    });
    c
}

fn routed_post(keys: &Keys, path: &str, body: &str) -> FakeHost {
    let auth = bearer(keys);
    let mut host = FakeHost::with_headers(&[
        (":path", path),
        ("authorization", &auth),
        ("content-type", "application/json"),
    ]);
    host.body = body.as_bytes().to_vec();
    let mut flow = testing::flow_for(testing::runtime_from(&routed_config(keys)));
    flow.on_request_headers(&mut host, false);
    let n = host.body.len();
    flow.on_request_body(&mut host, n, true);
    host
}

#[test]
fn models_are_routed_through_the_table() {
    let keys = Keys::new();
    // An alias is resolved and written into the body; the user id replaces the client's.
    let host = routed_post(
        keys,
        "/v1/chat/completions",
        r#"{"model":"default","user":"alice@corp.example"}"#,
    );
    assert!(host.replies.is_empty(), "{:?}", host.replies);
    let sent: serde_json::Value = serde_json::from_slice(&host.body).unwrap();
    assert_eq!(sent["model"], "gpt-4o-mini");
    assert_eq!(sent["user"], alice());
    assert_eq!(sent["safety_identifier"], alice());
    assert_eq!(
        host.header("content-length"),
        Some(host.body.len().to_string().as_str())
    );
    let asked: serde_json::Value = serde_json::from_str(&host.dispatched[0].body).unwrap();
    assert_eq!(asked["model"], "gpt-4o-mini");

    let table: Vec<(&str, &str, u32, &str)> = vec![
        (
            "/v1/chat/completions",
            r#"{"model":"gpt-5"}"#,
            404,
            "model_not_found",
        ),
        (
            "/v1/messages",
            r#"{"model":"claude-opus","max_tokens":5}"#,
            403,
            "model_not_allowed",
        ),
        (
            "/v1/messages",
            r#"{"model":"gpt-4o-mini","max_tokens":5}"#,
            400,
            "wrong_api",
        ),
    ];
    for (path, body, status, code) in table {
        let host = routed_post(keys, path, body);
        assert!(host.dispatched.is_empty(), "{body}");
        assert_eq!(host.replies[0].status, status, "{body}");
        let v: serde_json::Value = serde_json::from_str(&host.replies[0].body).unwrap();
        assert_eq!(v["error"]["code"], code, "{body}");
    }
}

#[test]
fn the_model_list_comes_from_the_table() {
    let keys = Keys::new();
    let auth = bearer(keys);
    let mut host = FakeHost::with_headers(&[
        (":method", "GET"),
        (":path", "/v1/models"),
        ("authorization", &auth),
    ]);
    testing::flow_for(testing::runtime_from(&routed_config(keys)))
        .on_request_headers(&mut host, true);
    assert!(host.dispatched.is_empty(), "answered by the gateway");
    assert_eq!(host.replies[0].status, 200);
    let v: serde_json::Value = serde_json::from_str(&host.replies[0].body).unwrap();
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["gpt-4o-mini", "default"],
        "claude-* is a glob and not for this caller"
    );
    assert_eq!(v["object"], "list");
    // Anthropic's SDK reads the same path: its pagination fields and entry type are there.
    assert_eq!(v["has_more"], false);
    assert_eq!(
        (v["first_id"].as_str(), v["last_id"].as_str()),
        (Some("gpt-4o-mini"), Some("default"))
    );
    assert_eq!(v["data"][0]["type"], "model");
    // And Gemini's (google-genai reads `/v1/models` from 2.x on).
    assert_eq!(v["models"][0]["name"], "models/gpt-4o-mini");
    assert_eq!(v["models"][1]["displayName"], "default");

    // One model: the table decides, globs included; not visible is not found. Gemini's
    // own `v1beta` path answers the same.
    let rt = testing::runtime_from(&routed_config(keys));
    for (prefix, id, want) in [
        ("/v1/models", "gpt-4o-mini", 200),
        ("/v1/models", "default", 200),
        ("/v1/models", "no-such-model", 404),
        ("/v1beta/models", "gpt-4o-mini", 200),
        ("/v1beta/models", "no-such-model", 404),
    ] {
        let path = format!("{prefix}/{id}");
        let mut host = FakeHost::with_headers(&[
            (":method", "GET"),
            (":path", path.as_str()),
            ("authorization", &auth),
        ]);
        testing::flow_for(Rc::clone(&rt)).on_request_headers(&mut host, true);
        assert!(host.dispatched.is_empty(), "{id}: answered by the gateway");
        assert_eq!(host.replies[0].status, want, "{id}");
        let v: serde_json::Value = serde_json::from_str(&host.replies[0].body).unwrap();
        if want == 200 {
            assert_eq!(
                (v["id"].as_str(), v["object"].as_str()),
                (Some(id), Some("model"))
            );
            assert_eq!(v["name"], format!("models/{id}"));
        } else if prefix == "/v1beta/models" {
            assert_eq!(v["error"]["status"], "NOT_FOUND");
        } else {
            assert_eq!(v["error"]["code"], "model_not_found");
        }
    }
}

#[test]
fn failing_open_lets_the_request_through_and_still_records_it() {
    let keys = Keys::new();
    let mut c = keys.config_json();
    c["policy"]["failure_mode"] = "open".into();
    let rt = testing::runtime_from(&c);
    // (status, body, asked again: no instance answered the first time either)
    for (status, body, again) in [
        (None, "", true),
        (Some(500), "", false),
        (Some(200), "garbage", false),
    ] {
        let auth = bearer(keys);
        let mut host = FakeHost::with_headers(&[("authorization", &auth)]);
        let mut flow = testing::flow_for(Rc::clone(&rt));
        flow.on_request_headers(&mut host, true);
        flow.on_callout_response(&mut host, 101, status, body.as_bytes());
        if again {
            flow.on_callout_response(&mut host, 102, status, body.as_bytes());
        }
        assert_eq!(host.resumed, 1, "{status:?}");
        assert!(host.replies.is_empty());
        assert_eq!(host.count_of(Counter::FailedOpen), 1);
        flow.on_log(&mut host);
        let rec: serde_json::Value = serde_json::from_slice(&host.queued[0]).unwrap();
        assert_eq!(rec["decision"], "allowed_fail_open");
    }
    // An unknown mode is refused at load.
    c["policy"]["failure_mode"] = "ajar".into();
    let e = crate::config::Config::parse(c.to_string().as_bytes()).unwrap_err();
    assert_eq!(e.field, "policy.failure_mode");
}

#[test]
fn allowed_responses_carry_the_callers_quota() {
    let keys = Keys::new();
    let (mut flow, mut host) = post(keys, &[], "{}");
    flow.on_request_body(&mut host, 2, true);
    flow.on_callout_response(&mut host, 101, Some(200), ALLOW.as_bytes());
    host.response_status = Some(200);
    flow.on_response_headers(&mut host);
    let got = |name: &str| {
        host.response_headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(got("x-ratelimit-limit-requests").as_deref(), Some("10"));
    assert_eq!(got("x-ratelimit-remaining-requests").as_deref(), Some("9"));
    assert_eq!(got("x-ratelimit-reset-requests").as_deref(), Some("1s"));
}

#[test]
fn an_enforced_cap_is_written_and_reserved() {
    let keys = Keys::new();
    let mut c = keys.config_json();
    c["enforce_output_cap"] = true.into();
    c["default_max_output_tokens"] = 100.into();
    let auth = bearer(keys);
    let run = |body: &str| {
        let mut host = FakeHost::with_headers(&[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ]);
        host.body = body.as_bytes().to_vec();
        let mut flow = testing::flow_for(testing::runtime_from(&c));
        flow.on_request_headers(&mut host, false);
        let n = host.body.len();
        flow.on_request_body(&mut host, n, true);
        host
    };
    let host = run(r#"{"model":"gpt-4o-mini","messages":[]}"#);
    let sent: serde_json::Value = serde_json::from_slice(&host.body).unwrap();
    assert_eq!(sent["max_completion_tokens"], 100);
    let asked: serde_json::Value = serde_json::from_str(&host.dispatched[0].body).unwrap();
    assert_eq!(
        asked["reserve_tokens"],
        10 + 100,
        "38 body bytes ~ 10 tokens, plus the cap"
    );
    // The client's own cap stands.
    let host = run(r#"{"model":"gpt-4o-mini","max_tokens":5}"#);
    let sent: serde_json::Value = serde_json::from_slice(&host.body).unwrap();
    assert!(sent.get("max_completion_tokens").is_none());
}

/// A runtime with leases of up to `slots`, and the per-worker state its requests share.
fn with_leases(keys: &Keys, slots: u64) -> (Rc<Runtime>, Rc<RefCell<AuthState>>) {
    let mut config = keys.config_json();
    config["policy"]["lease_slots"] = serde_json::json!(slots);
    let rt = testing::runtime_from(&config);
    let auth_state = Rc::new(RefCell::new(AuthState::new(&rt)));
    (rt, auth_state)
}

/// A chat completion POST with this `authorization` and body, at the test clock.
fn chat_post(auth: &str, body: &str) -> FakeHost {
    let mut host = FakeHost::with_headers(&[
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
        ("content-type", "application/json"),
        ("authorization", auth),
    ]);
    host.now = testing::NOW;
    host.body = body.as_bytes().to_vec();
    host
}

/// With leases on: the first request asks for slots, the next ones of the same caller
/// and model go without a callout, each naming its slot in its record; a bigger worst
/// case or another model asks again; a new lease releases what the old one had left.
#[test]
fn lease_slots_admit_later_requests_without_a_callout() {
    let keys = Keys::new();
    let (rt, auth_state) = with_leases(keys, 8);
    let auth = bearer(keys);
    let body = r#"{"model":"gpt-4o-mini","messages":[]}"#;
    let run = |body: &str, answer: Option<&str>| {
        let mut host = chat_post(&auth, body);
        let mut flow = Flow::new(Rc::clone(&rt), Rc::clone(&auth_state));
        assert_eq!(flow.on_request_headers(&mut host, false), Next::Pause);
        let len = host.body.len();
        let next = flow.on_request_body(&mut host, len, true);
        if let Some(answer) = answer {
            assert_eq!(next, Next::Pause);
            flow.on_callout_response(&mut host, 101, Some(200), answer.as_bytes());
            assert_eq!(host.resumed, 1);
        }
        host.response_status = Some(200);
        flow.on_log(&mut host);
        (next, host)
    };
    let lease = r#"{"allow":true,"slots":3}"#;
    let (_, first) = run(body, Some(lease));
    let asked: serde_json::Value = serde_json::from_str(&first.dispatched[0].body).unwrap();
    assert_eq!(asked["lease_slots"], 4, "a new caller starts small");
    let ttl = u64::try_from(rt.config.policy.lease_ttl.as_millis()).unwrap();
    assert!(
        asked["lease_return_ms"].as_u64().is_some_and(|ms| ms > ttl),
        "when unused slots are back: after their lifetime and a delivery: {asked}"
    );

    let id = first.random_id();
    for slot in [2, 3] {
        let (next, host) = run(body, None);
        assert_eq!(next, Next::Continue, "slot {slot}: no callout");
        assert!(host.dispatched.is_empty());
        assert_eq!(host.header(CLUSTER_HEADER), Some("provider_openai"));
        assert_eq!(host.count_of(Counter::LeaseServed), 1);
        let record: serde_json::Value = serde_json::from_slice(&host.queued[0]).unwrap();
        assert_eq!(record["reservation_id"], format!("{id}.{slot}"));
    }
    // Spent: the next one asks again, for twice as many; this answer is a lease of 2.
    let (_, again) = run(body, Some(r#"{"allow":true,"slots":2}"#));
    assert_eq!(again.dispatched.len(), 1);
    let asked: serde_json::Value = serde_json::from_str(&again.dispatched[0].body).unwrap();
    assert_eq!(asked["lease_slots"], 8, "used up: the window grows");
    // A bigger worst case does not fit the slot left: it asks; both leases are kept.
    let big = r#"{"model":"gpt-4o-mini","max_tokens":100000,"messages":[]}"#;
    let (_, bigger) = run(big, Some(lease));
    assert_eq!(bigger.dispatched.len(), 1);
    assert!(
        bigger.queued.iter().all(|q| q.first() == Some(&b'{')),
        "nothing released"
    );
    let (next, small) = run(body, None);
    assert_eq!(next, Next::Continue, "a kept slot still serves");
    assert!(small.dispatched.is_empty());
    // Another model is another scope.
    let (_, other) = run(r#"{"model":"claude-x","messages":[]}"#, Some(ALLOW));
    assert_eq!(other.dispatched.len(), 1);
}

#[test]
fn identity_mode_authenticates_attributes_and_forwards_only() {
    let keys = Keys::new();
    let mut config = keys.config_json();
    config["mode"] = "identity".into();
    config["providers"][0]["internal"] = true.into();
    let mut flow = testing::flow_for(testing::runtime_from(&config));
    let auth = bearer(keys);
    let mut host = FakeHost::with_headers(&[
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
        ("content-type", "application/json"),
        ("authorization", &auth),
        ("x-api-key", "sk-client-own"),
        ("x-chokepoint-user", "forged"),
    ]);
    host.body = br#"{"model":"gpt-4o-mini"}"#.to_vec();
    assert_eq!(flow.on_request_headers(&mut host, false), Next::Continue);
    assert_eq!(host.header("x-api-key"), None);
    assert_eq!(host.header("x-chokepoint-user"), Some(alice().as_str()));
    assert_eq!(host.header(CLUSTER_HEADER), Some("provider_openai"));
    let n = host.body.len();
    assert_eq!(flow.on_request_body(&mut host, n, true), Next::Continue);
    assert_eq!(
        host.body, br#"{"model":"gpt-4o-mini"}"#,
        "the body is not read"
    );
    flow.on_response_headers(&mut host);
    flow.on_log(&mut host);
    assert!(host.dispatched.is_empty(), "no decision asked");
    assert!(host.queued.is_empty(), "no usage record");
    assert!(host.replies.is_empty(), "{:?}", host.replies);

    config["mode"] = "audit".into();
    let e = crate::config::Config::parse(config.to_string().as_bytes()).unwrap_err();
    assert_eq!(e.field, "mode");
}

/// Profiling aid, not a check: one caller's full request path (served from lease slots,
/// a JSON reply with usage, the record written) many times over, for callgrind:
/// `cargo test --release -p chokepoint-filter --lib profile_ -- --ignored` under
/// `valgrind --tool=callgrind`.
#[test]
#[ignore]
fn profile_full_path_from_lease_slots() {
    let keys = Keys::new();
    let (rt, auth_state) = with_leases(keys, 64);
    let auth = bearer(keys);
    let body = r#"{"model":"gpt-4o-mini","max_tokens":64,"messages":[{"role":"user","content":"Benchmark me."}]}"#;
    let reply = include_bytes!("../../fixtures/openai_chat.json");
    let mut served = 0;
    for i in 0..20_000 {
        let mut host = chat_post(&auth, body);
        let mut flow = Flow::new(Rc::clone(&rt), Rc::clone(&auth_state));
        flow.on_request_headers(&mut host, false);
        let len = host.body.len();
        if flow.on_request_body(&mut host, len, true) == Next::Pause {
            flow.on_callout_response(&mut host, 101, Some(200), br#"{"allow":true,"slots":64}"#);
        } else {
            served += 1;
        }
        host.response_status = Some(200);
        host.response_type = Some("application/json".into());
        flow.on_response_headers(&mut host);
        host.response_chunk = reply.to_vec();
        flow.on_response_body(&mut host, reply.len(), true);
        flow.on_log(&mut host);
        assert!(host.replies.is_empty(), "request {i}: {:?}", host.replies);
    }
    assert!(served > 19_000, "{served} served from slots");
}

/// Profiling aid, not a check: identity-only mode (authenticate from the token cache,
/// strip, attribute, route) many times over; see `profile_full_path_from_lease_slots`.
#[test]
#[ignore]
fn profile_identity_mode() {
    let keys = Keys::new();
    let mut config = keys.config_json();
    config["mode"] = "identity".into();
    let rt = testing::runtime_from(&config);
    let auth_state = Rc::new(RefCell::new(AuthState::new(&rt)));
    let auth = bearer(keys);
    for _ in 0..20_000 {
        let mut host = FakeHost::with_headers(&[
            (":method", "POST"),
            (":path", "/v1/chat/completions"),
            (":authority", "127.0.0.1:10000"),
            (":scheme", "http"),
            ("content-type", "application/json"),
            ("content-length", "96"),
            ("user-agent", "bench/1.0"),
            ("accept", "*/*"),
            ("authorization", &auth),
            ("x-forwarded-proto", "http"),
            ("x-request-id", "4c1b7e6a-1f0e-4b8e-9f53-0d3c1c0b9a77"),
        ]);
        host.now = testing::NOW;
        let mut flow = Flow::new(Rc::clone(&rt), Rc::clone(&auth_state));
        assert_eq!(flow.on_request_headers(&mut host, false), Next::Continue);
        host.response_status = Some(200);
        flow.on_response_headers(&mut host);
        flow.on_log(&mut host);
    }
}

/// Each endpoint gets only the body edits its API accepts: legacy completions and
/// embeddings take the end user as `user` (they refuse `safety_identifier`), legacy
/// completions their cap as `max_tokens`, embeddings no cap at all.
#[test]
fn edits_follow_what_each_endpoint_accepts() {
    let keys = Keys::new();
    let mut config = keys.config_json();
    config["attribution"] = true.into();
    config["enforce_output_cap"] = true.into();
    let rt = testing::runtime_from(&config);
    type Check = fn(&serde_json::Value);
    let cases: &[(&str, &str, Check)] = &[
        (
            "/v1/completions",
            r#"{"model":"gpt-3.5-turbo-instruct","prompt":"hi","stream":true}"#,
            |v| {
                assert_eq!(v["user"], alice());
                assert!(v.get("safety_identifier").is_none());
                // Legacy completions default `max_tokens` to 16 themselves: a cap is
                // there already, and the reservation counts it.
                assert!(v.get("max_tokens").is_none(), "{v}");
                assert!(v.get("max_completion_tokens").is_none());
                assert_eq!(v["stream_options"]["include_usage"], true);
            },
        ),
        (
            "/v1/embeddings",
            r#"{"model":"text-embedding-3-small","input":"hi"}"#,
            |v| {
                assert_eq!(v["user"], alice());
                assert!(v.get("safety_identifier").is_none());
                assert!(v.get("max_tokens").is_none() && v.get("max_completion_tokens").is_none());
            },
        ),
        (
            "/v1/chat/completions",
            r#"{"model":"gpt-4o-mini","messages":[]}"#,
            |v| {
                assert_eq!(v["safety_identifier"], alice());
                assert!(v["max_completion_tokens"].as_u64().is_some());
            },
        ),
    ];
    for (path, body, check) in cases {
        let auth = bearer(keys);
        let mut host = FakeHost::with_headers(&[
            (":method", "POST"),
            (":path", path),
            ("content-type", "application/json"),
            ("authorization", auth.as_str()),
        ]);
        host.body = body.as_bytes().to_vec();
        let mut flow = testing::flow_for(Rc::clone(&rt));
        assert_eq!(flow.on_request_headers(&mut host, false), Next::Pause);
        let len = host.body.len();
        flow.on_request_body(&mut host, len, true);
        assert!(host.replies.is_empty(), "{path}: {:?}", host.replies);
        let v: serde_json::Value = serde_json::from_slice(&host.body).unwrap();
        check(&v);
    }
}

/// Gemini's embeddings: no output cap written (the API refuses `generationConfig`
/// there), and, with no usage in the answer, the input estimated from the request.
#[test]
fn gemini_embeddings_are_estimated_from_the_request() {
    let keys = Keys::new();
    let mut config = keys.config_json();
    config["providers"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"name": "gemini", "api": "gemini", "cluster": "provider_gemini", "key_env": "OPENAI_API_KEY"}));
    config["enforce_output_cap"] = true.into();
    let body = r#"{"requests":[{"model":"models/gemini-embedding-001","content":{"parts":[{"text":"What is the meaning of life? Forty-two, said the computer."}]}}]}"#;
    let jwt = keys.es256.sign(testing::claims()).unwrap();
    let mut host = FakeHost::with_headers(&[
        (":method", "POST"),
        (
            ":path",
            "/v1beta/models/gemini-embedding-001:batchEmbedContents",
        ),
        ("content-type", "application/json"),
        ("x-goog-api-key", jwt.as_str()),
    ]);
    host.body = body.as_bytes().to_vec();
    let mut flow = testing::flow_for(testing::runtime_from(&config));
    assert_eq!(flow.on_request_headers(&mut host, false), Next::Pause);
    flow.on_request_body(&mut host, body.len(), true);
    flow.on_callout_response(&mut host, 101, Some(200), ALLOW.as_bytes());
    assert!(host.replies.is_empty(), "{:?}", host.replies);
    assert_eq!(host.body, body.as_bytes(), "forwarded as sent");
    host.response_status = Some(200);
    host.response_type = Some("application/json; charset=UTF-8".into());
    flow.on_response_headers(&mut host);
    host.response_chunk = include_bytes!("../../fixtures/gemini_embeddings.json").to_vec();
    let n = host.response_chunk.len();
    flow.on_response_body(&mut host, n, true);
    flow.on_log(&mut host);
    let rec: serde_json::Value = serde_json::from_slice(&host.queued[0]).unwrap();
    assert_eq!(rec["provider"], "gemini");
    assert_eq!(rec["model"], "gemini-embedding-001");
    assert_eq!(rec["estimated"], true);
    assert_eq!(rec["completed"], true);
    assert_eq!(rec["output_tokens"], 0);
    let input = rec["input_tokens"].as_u64().unwrap();
    assert!(
        input >= 15 && input <= body.len() as u64,
        "about a token per 4 bytes of the request: {rec}"
    );
}

/// Behind Envoy's decompressor no body callback says the response ended
/// (envoyproxy/envoy#18380): Envoy's response flags at the log say whether it ended
/// cleanly (0) or by a reset or hang-up.
#[test]
fn a_response_without_its_end_of_stream_is_judged_by_envoys_flags() {
    let keys = Keys::new();
    // (flags Envoy reports, completed)
    for (flags, completed) in [(Some(0), true), (Some(0x4), false), (None, false)] {
        let (mut flow, mut host) = streaming(keys);
        host.response_chunk = CHAT_STREAM.as_bytes().to_vec();
        let n = host.response_chunk.len();
        flow.on_response_body(&mut host, n, false);
        host.response_flags = flags;
        flow.on_log(&mut host);
        let rec: serde_json::Value = serde_json::from_slice(&host.queued[0]).unwrap();
        assert_eq!(rec["completed"], completed, "{flags:?}: {rec}");
        assert_eq!(rec["estimated"], false, "{flags:?}: the usage chunk came");
    }
}

/// Requests refused before any decision (no callout), each in the shape of its API:
/// methods the gateway does not forward, answers whose usage it could not read, model
/// names no provider has (which would otherwise swell the callout and the record).
#[test]
fn refusals_before_any_decision() {
    let keys = Keys::new();
    let mut config = keys.config_json();
    config["providers"] = serde_json::json!([
        {"name": "openai", "api": "openai", "cluster": "provider_openai", "key_env": "OPENAI_API_KEY"},
        {"name": "anthropic", "api": "anthropic", "cluster": "provider_anthropic", "key_env": "ANTHROPIC_API_KEY"},
        {"name": "gemini", "api": "gemini", "cluster": "provider_gemini", "key_env": "OPENAI_API_KEY"},
        {"name": "azure", "api": "azure", "cluster": "provider_azure", "key_env": "OPENAI_API_KEY",
         "deployments": {"prod-4o": "gpt-4o"}},
    ]);
    config["max_request_body_bytes"] = (1 << 20).into();
    let rt = testing::runtime_from(&config);
    let long = "m".repeat(257);
    let long_body = format!(r#"{{"model":"{long}","messages":[]}}"#);
    let long_path = format!("/v1beta/models/{long}:generateContent");
    /// (method, path, body, status, code, allow)
    type Case<'a> = (&'a str, &'a str, &'a str, u32, &'a str, Option<&'a str>);
    let cases: Vec<Case> = vec![
        (
            "GET",
            "/v1/chat/completions",
            "",
            405,
            "method_not_allowed",
            Some("POST"),
        ),
        (
            "DELETE",
            "/v1/responses",
            "",
            405,
            "method_not_allowed",
            Some("POST"),
        ),
        (
            "PUT",
            "/v1/messages",
            "{}",
            405,
            "method_not_allowed",
            Some("POST"),
        ),
        (
            "POST",
            "/v1/models",
            "{}",
            405,
            "method_not_allowed",
            Some("GET"),
        ),
        (
            "HEAD",
            "/v1/models/gpt-4o",
            "",
            405,
            "method_not_allowed",
            Some("GET"),
        ),
        (
            "POST",
            "/v1beta/models/g:generateContent?alt=proto",
            "{}",
            400,
            "unsupported_response_format",
            None,
        ),
        (
            "POST",
            "/v1/responses",
            r#"{"model":"gpt-4o-mini","input":"x","background":true}"#,
            400,
            "background_not_supported",
            None,
        ),
        (
            "POST",
            "/v1/chat/completions",
            &long_body,
            400,
            "model_too_long",
            None,
        ),
        ("POST", &long_path, "{}", 400, "model_too_long", None),
        (
            "POST",
            "/openai/deployments/other/chat/completions",
            "{}",
            404,
            "deployment_not_found",
            None,
        ),
        (
            "POST",
            "/v1/chat/completions",
            r#"{"model":"m","n":1000}"#,
            400,
            "invalid_body",
            None,
        ),
    ];
    for (method, path, body, status, code, allow) in cases {
        let auth = bearer(keys);
        let mut host = FakeHost::with_headers(&[
            (":method", method),
            (":path", path),
            ("content-type", "application/json"),
            ("authorization", auth.as_str()),
        ]);
        host.body = body.as_bytes().to_vec();
        let mut flow = testing::flow_for(Rc::clone(&rt));
        let bodyless = body.is_empty();
        if flow.on_request_headers(&mut host, bodyless) == Next::Pause && !bodyless {
            let len = host.body.len();
            flow.on_request_body(&mut host, len, true);
        }
        let name = format!("{method} {}", path.get(..60).unwrap_or(path));
        assert!(host.dispatched.is_empty(), "{name}: no decision is asked");
        assert_eq!(host.replies.len(), 1, "{name}");
        let r = &host.replies[0];
        assert_eq!(r.status, status, "{name}");
        assert_eq!(
            r.error.as_ref().map(|e| e.code.as_str()),
            Some(code),
            "{name}"
        );
        let allowed = r
            .headers
            .iter()
            .find(|(n, _)| *n == "allow")
            .map(|(_, v)| v.as_str());
        assert_eq!(allowed, allow, "{name}");
    }
}

/// Gemini bills the model in its path and Azure the deployment's model, whatever the
/// body names; field masks never reach Google.
#[test]
fn the_path_decides_the_model_and_field_masks_are_stripped() {
    let keys = Keys::new();
    let mut config = keys.config_json();
    config["providers"] = serde_json::json!([
        {"name": "gemini", "api": "gemini", "cluster": "provider_gemini", "key_env": "OPENAI_API_KEY"},
        {"name": "azure", "api": "azure", "cluster": "provider_azure", "key_env": "OPENAI_API_KEY",
         "deployments": {"prod-4o": "gpt-4o", "cheap": "gpt-4o-mini"}},
    ]);
    let rt = testing::runtime_from(&config);
    // (path, body, model asked about)
    let cases = [
        (
            "/v1beta/models/gemini-2.5-pro:generateContent?fields=candidates&alt=json",
            r#"{"model":"gemini-2.5-flash","contents":[]}"#,
            "gemini-2.5-pro",
        ),
        (
            "/openai/deployments/prod-4o/chat/completions?api-version=2024-10-21",
            r#"{"model":"gpt-4o-mini","messages":[]}"#,
            "gpt-4o",
        ),
    ];
    for (path, body, model) in cases {
        let auth = bearer(keys);
        let mut host = FakeHost::with_headers(&[
            (":path", path),
            ("content-type", "application/json"),
            ("authorization", auth.as_str()),
            ("x-goog-fieldmask", "candidates"),
        ]);
        host.body = body.as_bytes().to_vec();
        let mut flow = testing::flow_for(Rc::clone(&rt));
        flow.on_request_headers(&mut host, false);
        let len = host.body.len();
        flow.on_request_body(&mut host, len, true);
        assert!(host.replies.is_empty(), "{path}: {:?}", host.replies);
        let asked: serde_json::Value =
            serde_json::from_str(&host.dispatched[0].body).unwrap_or_default();
        assert_eq!(asked["model"], model, "{path}");
        assert_eq!(host.header("x-goog-fieldmask"), None, "{path}");
        assert!(
            !host.header(":path").unwrap_or_default().contains("fields="),
            "{path}"
        );
    }
}

/// A policy alias naming a Gemini model in the path goes upstream as the model it stands
/// for, the one routed and priced; the query stays; a model named as such is left alone.
#[test]
fn a_gemini_alias_in_the_path_goes_upstream_as_its_model() {
    let keys = Keys::new();
    let mut config = keys.config_json();
    config["providers"] = serde_json::json!([
        {"name": "gemini", "api": "gemini", "cluster": "provider_gemini", "key_env": "OPENAI_API_KEY"},
    ]);
    config["models"] = serde_json::json!({
        "aliases": {"gemini-main": "gemini-2.5-flash"},
        "routes": [{"model": "gemini-*", "providers": ["gemini"]}],
    });
    let rt = testing::runtime_from(&config);
    // (client's path, path upstream, model asked about)
    let cases = [
        (
            "/v1beta/models/gemini-main:streamGenerateContent?alt=sse",
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
            "gemini-2.5-flash",
        ),
        (
            "/v1beta/models/gemini-2.5-pro:generateContent",
            "/v1beta/models/gemini-2.5-pro:generateContent",
            "gemini-2.5-pro",
        ),
    ];
    for (path, upstream, model) in cases {
        let auth = bearer(keys);
        let mut host = FakeHost::with_headers(&[
            (":path", path),
            ("content-type", "application/json"),
            ("authorization", auth.as_str()),
        ]);
        host.body = br#"{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}"#.to_vec();
        let mut flow = testing::flow_for(Rc::clone(&rt));
        flow.on_request_headers(&mut host, false);
        let len = host.body.len();
        flow.on_request_body(&mut host, len, true);
        assert!(host.replies.is_empty(), "{path}: {:?}", host.replies);
        assert_eq!(host.header(":path"), Some(upstream), "{path}");
        let asked: serde_json::Value =
            serde_json::from_str(&host.dispatched[0].body).unwrap_or_default();
        assert_eq!(asked["model"], model, "{path}");
    }
}

/// An issuer asserts only the tenants and cost centres it is trusted with (a valid token
/// claiming another's is 403), and groups it is not trusted with are dropped.
#[test]
fn an_issuer_asserts_only_what_it_is_trusted_with() {
    let keys = Keys::new();
    let mut config = keys.config_json();
    config["issuers"][0]["trust"] = serde_json::json!({"tenants": ["acme", "acme-*"], "groups": ["ml"], "cost_centers": ["cc-*"]});
    let rt = testing::runtime_from(&config);
    let sign = |tenant: &str, cost_center: Option<&str>| {
        let mut c = testing::claims();
        c.custom.insert("tenant".into(), tenant.into());
        if let Some(cc) = cost_center {
            c.custom.insert("cost_center".into(), cc.into());
        }
        keys.es256.sign(c).unwrap_or_default()
    };
    // (token, status, code, groups asked about)
    let cases = [
        (sign("acme", None), None, serde_json::json!(["ml"])),
        (
            sign("acme-eu", Some("cc-7")),
            None,
            serde_json::json!(["ml"]),
        ),
        (
            sign("globex", None),
            Some("tenant_not_allowed"),
            serde_json::Value::Null,
        ),
        (
            sign("acme", Some("finance")),
            Some("cost_center_not_allowed"),
            serde_json::Value::Null,
        ),
    ];
    for (token, refused, groups) in cases {
        let auth = format!("Bearer {token}");
        let mut host = FakeHost::with_headers(&[("authorization", auth.as_str())]);
        let mut flow = testing::flow_for(Rc::clone(&rt));
        flow.on_request_headers(&mut host, true);
        match refused {
            Some(code) => {
                assert_eq!(host.replies.len(), 1, "{code}");
                assert_eq!(host.replies[0].status, 403, "{code}");
                let got = host.replies[0].error.as_ref().map(|e| e.code.as_str());
                assert_eq!(got, Some(code));
                assert!(host.dispatched.is_empty());
            }
            None => {
                let asked: serde_json::Value =
                    serde_json::from_str(&host.dispatched[0].body).unwrap_or_default();
                // "eng" is in the token but not the issuer's to grant.
                assert_eq!(asked["groups"], groups);
            }
        }
    }
}

/// A request Envoy refused before the filter saw its headers (a WebSocket upgrade on a
/// route without upgrades) leaves no record: there is nothing in it but zeros.
#[test]
fn a_request_the_filter_never_saw_leaves_no_record() {
    let keys = Keys::new();
    let mut flow = keys.flow();
    let mut host = FakeHost::with_headers(&[]);
    flow.on_log(&mut host);
    assert!(host.queued.is_empty());
    assert!(host.filter_state.is_empty());
}
