//! Guardrails through the request path, for every API, with the coding agents' own
//! request bodies: blocked (the API's error, nothing sent, recorded), masked (the
//! provider gets placeholders, the same on every turn, reasoning untouched), flagged
//! (sent as it came, recorded), and the scan cache sparing a conversation's history.

use std::cell::RefCell;
use std::rc::Rc;

use jwt_simple::prelude::*;
use serde_json::{json, Value};

use super::*;
use crate::testing::{self, FakeHost, Keys};

const ALLOW: &str = r#"{"allow":true,"limit":10,"remaining":9,"reset_after_ms":1000}"#;
const AWS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";

/// An API's request as its agent sends it: (name, path, body).
struct Case {
    name: &'static str,
    path: &'static str,
    body: &'static str,
    /// How many values of the secret rules the scanned texts hold.
    secrets: u64,
}

fn cases() -> [Case; 5] {
    let chat = include_str!("../../fixtures/requests/openai_chat_tools.json");
    [
        Case {
            name: "openai chat",
            path: "/v1/chat/completions",
            body: chat,
            secrets: 1,
        },
        Case {
            name: "openai responses",
            path: "/v1/responses",
            body: include_str!("../../fixtures/requests/codex_responses.json"),
            // The token the user pasted, the key in the tool's output and in the patch.
            secrets: 3,
        },
        Case {
            name: "anthropic",
            path: "/v1/messages",
            body: include_str!("../../fixtures/requests/claude_code_messages.json"),
            secrets: 1,
        },
        Case {
            name: "gemini",
            path: "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse",
            body: include_str!("../../fixtures/requests/gemini_cli_generate.json"),
            secrets: 1,
        },
        Case {
            name: "azure",
            path: "/openai/deployments/prod-4o/chat/completions?api-version=2024-10-21",
            body: chat,
            secrets: 1,
        },
    ]
}

fn config(keys: &Keys, checks: Value) -> Value {
    let mut c = testing::guarded_config(keys, checks);
    c["providers"] = json!([
        {"name": "openai", "api": "openai", "cluster": "provider_openai", "key_env": "OPENAI_API_KEY"},
        {"name": "anthropic", "api": "anthropic", "cluster": "provider_anthropic", "key_env": "ANTHROPIC_API_KEY"},
        {"name": "gemini", "api": "gemini", "cluster": "provider_gemini", "key_env": "OPENAI_API_KEY"},
        {"name": "azure", "api": "azure", "cluster": "provider_azure", "key_env": "OPENAI_API_KEY",
         "deployments": {"prod-4o": "gpt-4o"}},
    ]);
    c["max_request_body_bytes"] = (1 << 20).into();
    c
}

/// One worker: its runtime and per-VM state, shared by the requests it serves.
struct Worker {
    rt: Rc<crate::runtime::Runtime>,
    auth: Rc<RefCell<AuthState>>,
}

impl Worker {
    fn new(config: &Value) -> Worker {
        let rt = testing::runtime_from(config);
        let auth = Rc::new(RefCell::new(AuthState::new(&rt)));
        Worker { rt, auth }
    }

    /// Headers and body in; the flow paused at its decision, or answered.
    fn send(&self, path: &str, body: &str) -> (Flow, FakeHost) {
        let jwt = Keys::new().es256.sign(testing::claims()).unwrap();
        let bearer = format!("Bearer {jwt}");
        let mut host = FakeHost::with_headers(&[
            (":path", path),
            ("content-type", "application/json"),
            ("content-length", &body.len().to_string()),
            ("authorization", &bearer),
        ]);
        host.body = body.as_bytes().to_vec();
        let mut flow = Flow::new(Rc::clone(&self.rt), Rc::clone(&self.auth));
        assert_eq!(flow.on_request_headers(&mut host, false), Next::Pause);
        flow.on_request_body(&mut host, body.len(), true);
        (flow, host)
    }

    /// Sent and allowed: what went upstream, and the record.
    fn forward(&self, path: &str, body: &str) -> (FakeHost, Value) {
        let (mut flow, mut host) = self.send(path, body);
        assert!(host.replies.is_empty(), "{path}: {:?}", host.replies);
        assert_eq!(host.dispatched.len(), 1, "{path}: the decision asked");
        flow.on_callout_response(&mut host, 101, Some(200), ALLOW.as_bytes());
        assert_eq!(host.resumed, 1);
        let record = log(&mut flow, &mut host);
        (host, record)
    }

    fn scans(&self) -> (u64, u64) {
        let auth = self.auth.borrow();
        let c = auth.scans.as_ref().expect("a scan cache");
        (c.hits(), c.misses())
    }
}

fn log(flow: &mut Flow, host: &mut FakeHost) -> Value {
    flow.on_log(host);
    serde_json::from_slice(&host.filter_state[USAGE_FILTER_STATE]).unwrap()
}

fn placeholders(text: &str, rule: &str) -> Vec<String> {
    let open = format!("[{rule}:");
    text.match_indices(&open)
        .map(|(at, _)| text[at..at + open.len() + 9].to_string())
        .collect()
}

#[test]
fn a_blocked_request_gets_its_api_s_error_and_nothing_is_sent() {
    let keys = Keys::new();
    let worker = Worker::new(&config(
        keys,
        json!([
            {"name": "secrets", "detect": ["secret"], "action": "block"},
            {"name": "personal-data", "detect": ["personal"], "action": "flag"},
        ]),
    ));
    for case in cases() {
        let (mut flow, mut host) = worker.send(case.path, case.body);
        assert_eq!(host.replies.len(), 1, "{}", case.name);
        let reply = &host.replies[0];
        assert_eq!(reply.status, 400, "{}", case.name);
        assert!(
            host.dispatched.is_empty(),
            "{}: no decision asked",
            case.name
        );
        assert_eq!(host.resumed, 0, "{}: nothing went upstream", case.name);
        let v: Value = serde_json::from_str(&reply.body).unwrap();
        let (code, message) = match case.name {
            "anthropic" => {
                assert_eq!(v["type"], "error");
                assert_eq!(v["error"]["type"], "invalid_request_error");
                (v["error"]["code"].clone(), v["error"]["message"].clone())
            }
            "gemini" => {
                assert_eq!(v["error"]["status"], "INVALID_ARGUMENT");
                assert_eq!(v["error"]["code"], 400);
                (
                    v["error"]["details"][0]["reason"].clone(),
                    v["error"]["message"].clone(),
                )
            }
            _ => {
                assert_eq!(v["error"]["type"], "invalid_request_error");
                (v["error"]["code"].clone(), v["error"]["message"].clone())
            }
        };
        assert_eq!(code, "guardrail_blocked", "{}: {v}", case.name);
        let message = message.as_str().unwrap();
        assert!(
            message.contains("'secrets'") && message.contains("secret data"),
            "{}: {message}",
            case.name
        );
        assert!(!reply.body.contains("AKIA") && !reply.body.contains("ghp_"));
        assert_eq!(host.count_of(crate::host::Counter::GuardrailBlocked), 1);
        let record = log(&mut flow, &mut host);
        assert_eq!(record["decision"], "guardrail_blocked", "{}", case.name);
        assert_eq!(record["status"], 400);
        assert_eq!(
            record["guardrails"][0],
            json!({"name": "secrets", "category": "secret", "action": "block", "stage": "request", "count": case.secrets}),
            "{}",
            case.name
        );
        let text = String::from_utf8_lossy(&host.filter_state[USAGE_FILTER_STATE]).into_owned();
        assert!(!text.contains("AKIA") && !text.contains("payments.example"));
    }
}

#[test]
fn masked_values_reach_the_provider_as_placeholders_and_the_rest_as_sent() {
    let keys = Keys::new();
    let mut c = config(
        keys,
        json!([
            {"name": "secrets", "detect": ["secret"], "action": "mask"},
            {"name": "personal-data", "detect": ["personal"], "action": "flag"},
        ]),
    );
    // The edit step's own edits compose with the masks.
    c["attribution"] = true.into();
    let worker = Worker::new(&c);
    for case in cases() {
        let (host, record) = worker.forward(case.path, case.body);
        let sent = String::from_utf8(host.body.clone()).unwrap();
        let v: Value = serde_json::from_str(&sent).unwrap();
        assert_eq!(
            host.header("content-length"),
            Some(sent.len().to_string().as_str()),
            "{}",
            case.name
        );
        let masks: Vec<String> = placeholders(&sent, "aws-access-key-id");
        assert!(!masks.is_empty(), "{}: {sent}", case.name);
        assert!(
            masks.windows(2).all(|w| w[0] == w[1]),
            "{}: one value, one mask",
            case.name
        );
        assert_eq!(record["guardrails"][0]["action"], "mask", "{}", case.name);
        assert_eq!(
            record["guardrails"][0]["count"], case.secrets,
            "{}",
            case.name
        );
        assert_eq!(record["decision"], "allowed");
        match case.name {
            "anthropic" => {
                // The thinking block and its signature go as they came, the key in them too.
                let original: Value = serde_json::from_str(case.body).unwrap();
                for i in 0..2 {
                    assert_eq!(
                        v["messages"][1]["content"][i], original["messages"][1]["content"][i],
                        "block {i}"
                    );
                }
                assert_eq!(
                    sent.matches(AWS_KEY).count(),
                    3,
                    "thinking, signature, redacted"
                );
                assert!(
                    v["metadata"]["user_id"].is_string(),
                    "attribution edited too"
                );
                assert!(v["messages"][2]["content"][0]["content"]
                    .as_str()
                    .unwrap()
                    .contains(&masks[0]));
            }
            "openai responses" => {
                // The reasoning item keeps the token; the user's message has its mask.
                assert_eq!(
                    sent.matches("ghp_0123456789abcdefABCDEF0123456789abcd")
                        .count(),
                    2
                );
                let tokens = placeholders(&sent, "github-token");
                assert_eq!(tokens.len(), 1);
                assert!(v["input"][2]["content"][0]["text"]
                    .as_str()
                    .unwrap()
                    .ends_with(&tokens[0]));
                assert_eq!(sent.matches(AWS_KEY).count(), 0);
                assert!(v["input"][4]["arguments"].is_string());
            }
            "gemini" => {
                assert_eq!(
                    sent.matches(AWS_KEY).count(),
                    2,
                    "the thought and its signature"
                );
                assert_eq!(
                    v["contents"][3]["parts"][0]["functionResponse"]["response"]["nested"][0]
                        ["line"],
                    masks[0]
                );
            }
            _ => {
                assert_eq!(
                    sent.matches(AWS_KEY).count(),
                    1,
                    "the image's data is not text"
                );
                assert_eq!(
                    v["messages"][3]["content"],
                    format!("export AWS_ACCESS_KEY_ID={}", masks[0])
                );
                assert!(v["safety_identifier"].is_string(), "attribution edited too");
                // The personal data is only flagged, in a name that is not text at all.
                assert_eq!(v["messages"][1]["name"], "dev.lead@payments.example");
            }
        }
    }
}

/// Every byte but the masked strings' is the client's, and the masks are the same on
/// every turn: a provider's prompt cache still matches the history.
#[test]
fn masks_are_the_same_every_turn_and_nothing_else_changes() {
    let keys = Keys::new();
    let worker = Worker::new(&config(
        keys,
        json!([{"name": "secrets", "detect": ["secret"], "action": "mask"}]),
    ));
    let turn1 = include_str!("../../fixtures/requests/claude_code_messages.json");
    let (host1, _) = worker.forward("/v1/messages", turn1);
    let sent1 = String::from_utf8(host1.body).unwrap();
    let mask = placeholders(&sent1, "aws-access-key-id")[0].clone();
    assert_eq!(
        sent1,
        turn1.replacen(
            "export AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE",
            &format!("export AWS_ACCESS_KEY_ID={mask}"),
            1,
        ),
        "the only change is the key in the tool result"
    );
    // The next turn resends the history and adds the key again.
    let mut v: Value = serde_json::from_str(turn1).unwrap();
    v["messages"].as_array_mut().unwrap().extend([
        json!({"role": "assistant", "content": [{"type": "text", "text": "That key is live."}]}),
        json!({"role": "user", "content": format!("rotate {AWS_KEY} now")}),
    ]);
    let turn2 = serde_json::to_string(&v).unwrap();
    let (host2, record) = worker.forward("/v1/messages", &turn2);
    let sent2 = String::from_utf8(host2.body).unwrap();
    let masks = placeholders(&sent2, "aws-access-key-id");
    assert_eq!(masks, vec![mask.clone(), mask.clone()]);
    assert_eq!(record["guardrails"][0]["count"], 2);
}

#[test]
fn flagged_requests_go_as_they_came_and_are_recorded() {
    let keys = Keys::new();
    let worker = Worker::new(&config(
        keys,
        json!([
            {"name": "secrets", "detect": ["secret"], "action": "flag"},
            {"name": "personal-data", "detect": ["personal"], "action": "flag"},
        ]),
    ));
    for case in cases() {
        let (host, record) = worker.forward(case.path, case.body);
        assert_eq!(
            host.body,
            case.body.as_bytes(),
            "{}: sent unchanged",
            case.name
        );
        assert_eq!(record["guardrails"][0]["name"], "secrets", "{}", case.name);
        assert_eq!(record["guardrails"][0]["action"], "flag");
        assert_eq!(
            record["guardrails"][0]["count"], case.secrets,
            "{}",
            case.name
        );
        let personal = record["guardrails"].get(1).cloned().unwrap_or_default();
        match case.name {
            // The address is in a name (not text) and nowhere else.
            "openai chat" | "azure" | "openai responses" => {
                assert!(personal.is_null(), "{}: {personal}", case.name)
            }
            _ => assert_eq!(
                personal,
                json!({"name": "personal-data", "category": "personal", "action": "flag", "stage": "request", "count": 1 + u64::from(case.name == "gemini")}),
                "{}",
                case.name
            ),
        }
    }
}

/// A check applies to the callers and models its scope names: alice is in tenant acme
/// and groups ml and eng.
#[test]
fn checks_apply_within_their_scope() {
    let keys = Keys::new();
    let case = &cases()[2];
    // (scope, blocked)
    let scopes = [
        (json!({"tenants": ["globex"]}), false),
        (json!({"tenants": ["acme"]}), true),
        (json!({"groups": ["finance"]}), false),
        (json!({"groups": ["eng"], "models": ["claude-*"]}), true),
        (json!({"models": ["gpt-*"]}), false),
    ];
    for (scope, blocked) in scopes {
        let worker = Worker::new(&config(
            keys,
            json!([{"name": "secrets", "detect": ["secret"], "action": "block", "scope": scope}]),
        ));
        let (mut flow, mut host) = worker.send(case.path, case.body);
        assert_eq!(!host.replies.is_empty(), blocked, "{scope}");
        let record = log(&mut flow, &mut host);
        assert_eq!(
            record.get("guardrails").is_some(),
            blocked,
            "{scope}: {record}"
        );
    }
}

/// An agent resends its whole history every turn: each block of it is scanned once per
/// worker, so the second turn scans only what it adds.
#[test]
fn the_next_turn_scans_only_its_new_block() {
    let keys = Keys::new();
    let worker = Worker::new(&config(
        keys,
        json!([{"name": "secrets", "detect": ["secret"], "action": "flag"}]),
    ));
    let big = |n: usize| format!("{n}: {}", "lorem ipsum dolor sit amet ".repeat(12));
    let mut messages = vec![json!({"role": "user", "content": big(1)})];
    let body =
        |m: &Vec<Value>| json!({"model": "claude-x", "max_tokens": 10, "messages": m}).to_string();
    worker.forward("/v1/messages", &body(&messages));
    assert_eq!(worker.scans(), (0, 1));
    for turn in 2..=5u64 {
        messages.push(json!({"role": "assistant", "content": [{"type": "text", "text": "ok"}]}));
        messages.push(json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t", "content": big(turn as usize)}
        ]}));
        worker.forward("/v1/messages", &body(&messages));
        // Every earlier block a hit; only the new one scanned. (Short texts, like "ok",
        // are scanned each time: that costs what hashing them would.)
        let earlier: u64 = (1..turn).sum();
        assert_eq!(worker.scans(), (earlier, turn), "turn {turn}");
    }
}

/// Without a guardrails section, nothing is read and nothing recorded.
#[test]
fn no_section_no_guardrails() {
    let keys = Keys::new();
    let mut c = config(keys, json!([]));
    c.as_object_mut().unwrap().remove("guardrails");
    let worker = Worker::new(&c);
    let case = &cases()[2];
    let (host, record) = worker.forward(case.path, case.body);
    assert_eq!(host.body, case.body.as_bytes());
    assert!(record.get("guardrails").is_none());
    assert!(worker.auth.borrow().scans.is_none());
}
