//! Guardrail service checks through the request path: the call (texts, key, timeout),
//! `BLOCKED` (the API's error, nothing sent, recorded), `GUARDRAIL_INTERVENED` (the
//! provider gets the replacements, and `edit` still edits the body after the callout),
//! a service that cannot judge under each failure mode, a second turn sending only its
//! new texts, two services in a row, and a detector's mask composed with a rewrite.

use std::cell::RefCell;
use std::rc::Rc;

use jwt_simple::prelude::*;
use serde_json::{json, Value};

use super::*;
use crate::host::Counter;
use crate::testing::{self, FakeHost, Keys};

const ALLOW: &str = r#"{"allow":true,"limit":10,"remaining":9,"reset_after_ms":1000}"#;
const KEY: &str = "dlp-test-key";

fn service(name: &str, failure_mode: &str) -> Value {
    json!({"name": name, "service": {
        "cluster": format!("guardrail_{name}"), "authority": "dlp.test",
        "path": "/beta/litellm_basic_guardrail_api", "timeout_ms": 300,
        "failure_mode": failure_mode, "api_key_env": "DLP_KEY"}})
}

struct Worker {
    rt: Rc<crate::runtime::Runtime>,
    auth: Rc<RefCell<AuthState>>,
}

impl Worker {
    fn new(checks: Value) -> Worker {
        let keys = Keys::new();
        let mut c = testing::guarded_config(keys, checks);
        c["providers"] = json!([
            {"name": "openai", "api": "openai", "cluster": "provider_openai", "key_env": "OPENAI_API_KEY"},
            {"name": "anthropic", "api": "anthropic", "cluster": "provider_anthropic", "key_env": "ANTHROPIC_API_KEY"},
            {"name": "gemini", "api": "gemini", "cluster": "provider_gemini", "key_env": "OPENAI_API_KEY"},
        ]);
        c["max_request_body_bytes"] = (1 << 20).into();
        c["attribution"] = true.into();
        let config = crate::config::Config::parse(c.to_string().as_bytes()).unwrap();
        let env = |name: &str| match name {
            "DLP_KEY" => Some(KEY.to_string()),
            other => testing::env(other),
        };
        let rt = Rc::new(crate::runtime::Runtime::new(config, env).unwrap());
        let auth = Rc::new(RefCell::new(AuthState::new(&rt)));
        Worker { rt, auth }
    }

    /// Headers and body in: the flow paused at its first callout, or answered.
    fn send(&self, path: &str, body: &str) -> (Flow, FakeHost) {
        let jwt = Keys::new().es256.sign(testing::claims()).unwrap();
        let bearer = format!("Bearer {jwt}");
        let mut host = FakeHost::with_headers(&[
            (":path", path),
            ("content-type", "application/json"),
            ("content-length", &body.len().to_string()),
            ("authorization", &bearer),
            ("anthropic-version", "2023-06-01"),
        ]);
        host.body = body.as_bytes().to_vec();
        let mut flow = Flow::new(Rc::clone(&self.rt), Rc::clone(&self.auth));
        assert_eq!(flow.on_request_headers(&mut host, false), Next::Pause);
        flow.on_request_body(&mut host, body.len(), true);
        (flow, host)
    }
}

/// The guardrail call the host was asked for last: its texts.
fn texts_sent(host: &FakeHost) -> Vec<String> {
    let call = host.dispatched.last().expect("a call");
    assert!(call.cluster.starts_with("guardrail_"), "{}", call.cluster);
    let v: Value = serde_json::from_str(&call.body).unwrap();
    v["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect()
}

/// Answers the call out now with `status` and `body`.
fn answer(flow: &mut Flow, host: &mut FakeHost, status: Option<u32>, body: &str) {
    let token = 100 + host.dispatched.len() as u32;
    flow.on_callout_response(host, token, status, body.as_bytes());
}

/// The service's `GUARDRAIL_INTERVENED`, each text sent with `from` replaced by `to`.
fn intervene(host: &FakeHost, from: &str, to: &str) -> String {
    let texts: Vec<String> = texts_sent(host)
        .iter()
        .map(|t| t.replace(from, to))
        .collect();
    json!({"action": "GUARDRAIL_INTERVENED", "texts": texts}).to_string()
}

/// Allowed by the policy service; the record.
fn allow(flow: &mut Flow, host: &mut FakeHost) -> Value {
    let last = host.dispatched.last().expect("the decision asked");
    assert_eq!(last.cluster, "policy", "{:?}", host.replies);
    answer(flow, host, Some(200), ALLOW);
    assert_eq!(host.resumed, 1);
    log(flow, host)
}

fn log(flow: &mut Flow, host: &mut FakeHost) -> Value {
    flow.on_log(host);
    serde_json::from_slice(&host.filter_state[USAGE_FILTER_STATE]).unwrap()
}

fn chat(messages: &[&str]) -> String {
    let messages: Vec<Value> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| json!({"role": if i % 2 == 0 {"user"} else {"assistant"}, "content": m}))
        .collect();
    json!({"model": "gpt-4o-mini", "stream": true, "messages": messages}).to_string()
}

const CHAT: &str = "/v1/chat/completions";

#[test]
fn the_call_carries_the_texts_the_key_and_the_timeout_and_blocked_is_the_api_s_error() {
    let worker = Worker::new(json!([service("dlp", "closed")]));
    let cases = [
        (CHAT, chat(&["Deploy the build for Alice."])),
        (
            "/v1/messages",
            json!({"model": "claude-sonnet-4-5", "max_tokens": 64,
                   "messages": [{"role": "user", "content": "Deploy the build for Alice."}]})
            .to_string(),
        ),
        (
            "/v1beta/models/gemini-2.5-flash:generateContent",
            json!({"contents": [{"role": "user", "parts": [{"text": "Deploy the build for Alice."}]}]})
                .to_string(),
        ),
    ];
    for (path, body) in cases {
        let (mut flow, mut host) = worker.send(path, &body);
        assert_eq!(host.dispatched.len(), 1, "{path}: the service asked first");
        let call = &host.dispatched[0];
        assert_eq!(call.cluster, "guardrail_dlp");
        assert_eq!(call.timeout, std::time::Duration::from_millis(300));
        let header = |n: &str| {
            call.headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(header("authorization"), Some("Bearer dlp-test-key"));
        assert_eq!(header(":path"), Some("/beta/litellm_basic_guardrail_api"));
        assert_eq!(header(":authority"), Some("dlp.test"));
        let sent: Value = serde_json::from_str(&call.body).unwrap();
        assert_eq!(
            sent["texts"],
            json!(["Deploy the build for Alice."]),
            "{path}"
        );
        assert_eq!(sent["input_type"], "request");
        assert!(sent["request_data"]["user_api_key_user_id"].is_string());
        assert_eq!(sent["request_data"]["user_api_key_org_id"], "acme");

        let verdict = r#"{"action":"BLOCKED","blocked_reason":"names Alice, a REASON-TEXT"}"#;
        answer(&mut flow, &mut host, Some(200), verdict);
        assert_eq!(host.replies.len(), 1, "{path}");
        let reply = &host.replies[0];
        assert_eq!(reply.status, 400);
        assert_eq!(host.dispatched.len(), 1, "{path}: no decision asked");
        assert_eq!(host.resumed, 0, "{path}: nothing went upstream");
        assert!(!reply.body.contains("REASON-TEXT") && !reply.body.contains("Alice"));
        let v: Value = serde_json::from_str(&reply.body).unwrap();
        let (code, message) = if path.starts_with("/v1beta") {
            assert_eq!(v["error"]["status"], "INVALID_ARGUMENT");
            (&v["error"]["details"][0]["reason"], &v["error"]["message"])
        } else {
            if path == "/v1/messages" {
                assert_eq!(v["type"], "error");
            }
            assert_eq!(v["error"]["type"], "invalid_request_error");
            (&v["error"]["code"], &v["error"]["message"])
        };
        assert_eq!(code, "guardrail_blocked", "{path}: {v}");
        let message = message.as_str().unwrap();
        assert!(
            message.contains("'dlp'") && message.contains("service"),
            "{message}"
        );
        let record = log(&mut flow, &mut host);
        assert_eq!(record["decision"], "guardrail_blocked");
        assert_eq!(
            record["guardrails"],
            json!([{"name": "dlp", "category": "service", "action": "block", "stage": "request", "count": 0}])
        );
        let text = String::from_utf8_lossy(&host.filter_state[USAGE_FILTER_STATE]).into_owned();
        assert!(!text.contains("REASON-TEXT") && !text.contains("Alice"));
    }
}

/// The replacements reach the provider, and `edit` still edits the body the callout
/// left: the caller's attribution and a stream's usage option (without the executor
/// reading the body again after the call, neither would be there).
#[test]
fn intervened_texts_reach_the_provider_with_the_edits() {
    let worker = Worker::new(json!([service("dlp", "closed")]));
    let body = chat(&["Mail Alice the report.", "Done.", "Thanks, Alice!"]);
    let (mut flow, mut host) = worker.send(CHAT, &body);
    let verdict = intervene(&host, "Alice", "[NAME]");
    answer(&mut flow, &mut host, Some(200), &verdict);
    assert!(host.replies.is_empty(), "{:?}", host.replies);
    let record = allow(&mut flow, &mut host);
    let sent = String::from_utf8(host.body.clone()).unwrap();
    assert!(!sent.contains("Alice"), "{sent}");
    let v: Value = serde_json::from_str(&sent).unwrap();
    assert_eq!(v["messages"][0]["content"], "Mail [NAME] the report.");
    assert_eq!(v["messages"][1]["content"], "Done.");
    assert_eq!(v["messages"][2]["content"], "Thanks, [NAME]!");
    assert!(v["safety_identifier"].is_string(), "attribution: {sent}");
    assert_eq!(v["stream_options"]["include_usage"], true, "{sent}");
    assert_eq!(v["model"], "gpt-4o-mini");
    assert_eq!(
        host.header("content-length"),
        Some(sent.len().to_string().as_str())
    );
    assert_eq!(
        record["guardrails"],
        json!([{"name": "dlp", "category": "service", "action": "mask", "stage": "request", "count": 2}])
    );
    assert_eq!(record["decision"], "allowed");
    assert_eq!(host.count_of(Counter::GuardrailMasked), 1);
}

/// Down, an error status, no verdict: closed answers 503 `guardrail_unavailable` and
/// sends nothing; open sends the request as it came, recorded `unchecked`.
#[test]
fn a_service_that_cannot_judge_fails_as_its_check_says() {
    let failures: [(&str, Option<u32>, &str); 5] = [
        ("timeout or reset", None, ""),
        ("500", Some(500), r#"{"action":"NONE"}"#),
        ("garbage", Some(200), "<html>oops</html>"),
        ("an array", Some(200), r#"[{"action":"NONE"}]"#),
        (
            "texts mismatch",
            Some(200),
            r#"{"action":"GUARDRAIL_INTERVENED","texts":["a","b"]}"#,
        ),
    ];
    for mode in ["closed", "open"] {
        let worker = Worker::new(json!([service("dlp", mode)]));
        for (name, status, verdict) in failures {
            let body = chat(&["Deploy the build.", "Which one?", "The last."]);
            let (mut flow, mut host) = worker.send(CHAT, &body);
            answer(&mut flow, &mut host, status, verdict);
            assert_eq!(
                host.count_of(Counter::GuardrailUnavailable),
                1,
                "{mode} {name}"
            );
            if mode == "closed" {
                assert_eq!(host.replies.len(), 1, "{name}");
                let reply = &host.replies[0];
                assert_eq!(reply.status, 503, "{name}");
                let v: Value = serde_json::from_str(&reply.body).unwrap();
                assert_eq!(v["error"]["code"], "guardrail_unavailable");
                assert!(v["error"]["message"].as_str().unwrap().contains("'dlp'"));
                assert_eq!(host.dispatched.len(), 1, "{name}: no decision asked");
                assert_eq!(host.resumed, 0);
                let record = log(&mut flow, &mut host);
                assert_eq!(record["decision"], "guardrail_unavailable", "{name}");
                assert_eq!(record["guardrails"][0]["action"], "block");
            } else {
                let record = allow(&mut flow, &mut host);
                assert_eq!(record["decision"], "allowed", "{name}");
                assert_eq!(
                    record["guardrails"],
                    json!([{"name": "dlp", "category": "service", "action": "unchecked", "stage": "request", "count": 0}]),
                    "{name}"
                );
                let sent: Value = serde_json::from_slice(&host.body).unwrap();
                assert_eq!(sent["messages"][2]["content"], "The last.");
            }
        }
    }
}

/// An agent resends its history every turn: the service is asked about each text once.
#[test]
fn a_second_turn_sends_only_its_new_texts() {
    let worker = Worker::new(json!([service("dlp", "closed")]));
    let first = ["Fix the build.", "Which file?"];
    let (mut flow, mut host) = worker.send(CHAT, &chat(&first));
    assert_eq!(texts_sent(&host), first);
    answer(&mut flow, &mut host, Some(200), r#"{"action":"NONE"}"#);
    let record = allow(&mut flow, &mut host);
    assert!(record.get("guardrails").is_none(), "NONE is not recorded");

    let second = ["Fix the build.", "Which file?", "main.rs, for Alice."];
    let (mut flow, mut host) = worker.send(CHAT, &chat(&second));
    assert_eq!(texts_sent(&host), ["main.rs, for Alice."]);
    let verdict = intervene(&host, "Alice", "[NAME]");
    answer(&mut flow, &mut host, Some(200), &verdict);
    allow(&mut flow, &mut host);

    // The same turn again: every verdict known, the replacement too, and no call.
    let (mut flow, mut host) = worker.send(CHAT, &chat(&second));
    assert_eq!(host.dispatched.len(), 1);
    let record = allow(&mut flow, &mut host);
    let sent: Value = serde_json::from_slice(&host.body).unwrap();
    assert_eq!(sent["messages"][2]["content"], "main.rs, for [NAME].");
    assert_eq!(record["guardrails"][0]["action"], "mask");
}

/// Two service checks: the second sees the first's replacements, and both apply.
#[test]
fn two_services_judge_one_after_another() {
    let worker = Worker::new(json!([
        service("names", "closed"),
        service("places", "open")
    ]));
    let (mut flow, mut host) = worker.send(CHAT, &chat(&["Alice lives in Paris."]));
    assert_eq!(host.dispatched[0].cluster, "guardrail_names");
    let verdict = intervene(&host, "Alice", "[NAME]");
    answer(&mut flow, &mut host, Some(200), &verdict);
    assert_eq!(host.dispatched.len(), 2);
    assert_eq!(host.dispatched[1].cluster, "guardrail_places");
    assert_eq!(texts_sent(&host), ["[NAME] lives in Paris."]);
    let verdict = intervene(&host, "Paris", "[CITY]");
    answer(&mut flow, &mut host, Some(200), &verdict);
    let record = allow(&mut flow, &mut host);
    let sent: Value = serde_json::from_slice(&host.body).unwrap();
    assert_eq!(sent["messages"][0]["content"], "[NAME] lives in [CITY].");
    assert_eq!(record["guardrails"][0]["name"], "names");
    assert_eq!(record["guardrails"][1]["name"], "places");

    // The second blocking stops the request after the first rewrote it.
    let (mut flow, mut host) = worker.send(CHAT, &chat(&["Bob lives in Rome."]));
    let verdict = intervene(&host, "Bob", "[NAME]");
    answer(&mut flow, &mut host, Some(200), &verdict);
    answer(&mut flow, &mut host, Some(200), r#"{"action":"BLOCKED"}"#);
    assert_eq!(host.replies[0].status, 400);
    assert_eq!(host.dispatched.len(), 2, "no decision asked");
    let record = log(&mut flow, &mut host);
    let actions: Vec<&Value> = record["guardrails"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| &v["action"])
        .collect();
    assert_eq!(actions, [&json!("mask"), &json!("block")]);
}

/// A detector's mask and a service's rewrite compose: the service never sees the
/// secret, only its placeholder, and the provider gets both changes.
#[test]
fn a_detector_s_mask_and_a_service_s_rewrite_compose() {
    let worker = Worker::new(json!([
        {"name": "secrets", "detect": ["secret"], "action": "mask"},
        service("dlp", "closed"),
    ]));
    let body = chat(&["Alice's key is AKIAIOSFODNN7EXAMPLE, deploy."]);
    let (mut flow, mut host) = worker.send(CHAT, &body);
    let texts = texts_sent(&host);
    assert_eq!(texts.len(), 1);
    assert!(!texts[0].contains("AKIA") && texts[0].contains("[aws-access-key-id:"));
    let verdict = intervene(&host, "Alice", "[NAME]");
    answer(&mut flow, &mut host, Some(200), &verdict);
    let record = allow(&mut flow, &mut host);
    let sent: Value = serde_json::from_slice(&host.body).unwrap();
    let content = sent["messages"][0]["content"].as_str().unwrap();
    assert!(
        content.starts_with("[NAME]'s key is [aws-access-key-id:"),
        "{content}"
    );
    assert!(!content.contains("AKIA"));
    assert!(sent["safety_identifier"].is_string());
    let names: Vec<&Value> = record["guardrails"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| &v["name"])
        .collect();
    assert_eq!(names, [&json!("secrets"), &json!("dlp")]);
}
