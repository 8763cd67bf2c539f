//! MCP through the request path against a fake host, with the traffic recorded from real
//! clients and servers (`fixtures/mcp/`): what reaches the server, what the caller sees,
//! what is recorded.

use jwt_simple::prelude::*;

use super::*;
use crate::testing::{self, FakeHost, Keys};

const MCP_TOKEN: &str = "mcp-upstream-secret";
const ALLOW: &str = r#"{"allow":true,"limit":10,"remaining":9,"reset_after_ms":1000}"#;

fn runtime(keys: &Keys, downstream: bool) -> Rc<Runtime> {
    runtime_with(keys, downstream, true)
}

/// `hold`: Envoy holds the headers while the body is read (else they leave first, as in
/// Istio's WasmPlugin and Envoy Gateway).
fn runtime_with(keys: &Keys, downstream: bool, hold: bool) -> Rc<Runtime> {
    build(keys, downstream, hold, None)
}

/// With these tool rules in place of the usual ones.
fn runtime_with_rules(keys: &Keys, tools: serde_json::Value) -> Rc<Runtime> {
    build(keys, true, true, Some(tools))
}

fn build(
    keys: &Keys,
    downstream: bool,
    hold: bool,
    tools: Option<serde_json::Value>,
) -> Rc<Runtime> {
    let mut c = keys.config_json();
    c["hold_headers"] = hold.into();
    if !downstream {
        c["key_injection"] = "upstream".into();
    }
    c["mcp"] = serde_json::json!({
        "public_url": "https://gw.example",
        "servers": [{
            "name": "everything", "cluster": "mcp_everything", "path": "/mcp",
            "credential": {"header": "authorization", "prefix": "Bearer ", "env": "MCP_EVERYTHING_TOKEN"},
            "tools": [
                {"match": "get-env", "deny": true},
                {"match": "trigger-*", "allow_groups": ["research"]},
            ],
            "resources": [{"match": "demo://resource/static/document/architecture.md", "allow_tenants": ["other"]}],
        }],
    });
    if let Some(list) = c["mcp"]["servers"].as_array_mut() {
        // A second server, for the aggregate endpoint.
        list.push(serde_json::json!({"name": "modern", "cluster": "mcp_modern", "path": "/mcp", "authority": "127.0.0.1:3002"}));
    }
    if let Some(tools) = tools {
        c["mcp"]["servers"][0]["tools"] = tools;
        c["mcp"]["servers"][0]["resources"] = serde_json::json!([]);
    }
    let config = crate::config::Config::parse(c.to_string().as_bytes()).unwrap();
    let env = |name: &str| match name {
        "MCP_EVERYTHING_TOKEN" => Some(MCP_TOKEN.to_string()),
        other => testing::env(other),
    };
    Rc::new(Runtime::new(config, env).unwrap())
}

fn token(keys: &Keys, groups: &[&str]) -> String {
    let mut c = testing::claims();
    c.custom.insert("groups".into(), serde_json::json!(groups));
    format!("Bearer {}", keys.es256.sign(c).unwrap())
}

/// One exchange of a recorded session: the request body and the answer's chunks.
fn recorded(session: &str, seq: usize) -> (String, String, Vec<String>) {
    let text = match session {
        "python_sdk_everything" => include_str!("../../fixtures/mcp/python_sdk_everything.json"),
        "python_sdk_modern" => include_str!("../../fixtures/mcp/python_sdk_modern.json"),
        _ => unreachable!(),
    };
    let v: serde_json::Value = serde_json::from_str(text).unwrap();
    let e = &v["exchanges"][seq];
    let body = e["request"]["body"]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let content_type = e["response"]["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h[0].as_str().unwrap().eq_ignore_ascii_case("content-type"))
        .map_or(String::new(), |h| h[1].as_str().unwrap().to_string());
    let chunks = e["response"]["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["text"].as_str().unwrap().to_string())
        .collect();
    (body, content_type, chunks)
}

struct Call {
    flow: Flow,
    host: FakeHost,
}

/// A POST of `body` to `path`, with no callout answered.
fn post_to(rt: &Rc<Runtime>, path: &str, auth: &str, body: &str) -> Call {
    let mut host = FakeHost::with_headers(&[
        (":method", "POST"),
        (":path", path),
        ("content-type", "application/json"),
        ("authorization", auth),
    ]);
    host.body = body.as_bytes().to_vec();
    let mut flow = testing::flow_for(Rc::clone(rt));
    flow.on_request_headers(&mut host, false);
    flow.on_request_body(&mut host, body.len(), true);
    Call { flow, host }
}

/// A POST of `body` to `/mcp/everything` up to where the filter lets it go (or answers).
fn post(rt: &Rc<Runtime>, auth: &str, body: &str, extra: &[(&str, &str)]) -> Call {
    let mut headers = vec![
        (":method", "POST"),
        (":path", "/mcp/everything"),
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
    ];
    // No token at all when `auth` is empty.
    if !auth.is_empty() {
        headers.push(("authorization", auth));
    }
    headers.extend_from_slice(extra);
    let mut host = FakeHost::with_headers(&headers);
    host.body = body.as_bytes().to_vec();
    let mut flow = testing::flow_for(Rc::clone(rt));
    flow.on_request_headers(&mut host, false);
    let len = host.body.len();
    flow.on_request_body(&mut host, len, true);
    if !host.dispatched.is_empty() && host.replies.is_empty() {
        flow.on_callout_response(&mut host, 101, Some(200), ALLOW.as_bytes());
    }
    Call { flow, host }
}

impl Call {
    /// The server answers with these chunks; what the client gets.
    fn answer(&mut self, content_type: &str, chunks: &[String]) -> String {
        let host = &mut self.host;
        host.response_status = Some(200);
        host.response_type = Some(content_type.to_string());
        host.response_headers
            .push(("content-length".into(), "999".into()));
        self.flow.on_response_headers(host);
        let mut out = String::new();
        let mut buffered: Vec<u8> = Vec::new();
        let n = chunks.len();
        for (i, chunk) in chunks.iter().chain([String::new()].iter()).enumerate() {
            // Envoy hands a paused body back whole with the next chunk.
            buffered.extend_from_slice(chunk.as_bytes());
            host.response_chunk = buffered.clone();
            let next = self.flow.on_response_body(host, buffered.len(), i == n);
            if next == Next::Continue {
                out.push_str(&String::from_utf8_lossy(&host.response_chunk));
                buffered.clear();
            }
        }
        out
    }

    fn record(&mut self) -> serde_json::Value {
        self.host.response_flags = Some(0);
        self.flow.on_log(&mut self.host);
        let state = &self.host.filter_state[USAGE_FILTER_STATE];
        serde_json::from_slice(state).unwrap()
    }

    /// The gateway's refusal: its status and JSON-RPC error code.
    fn refused_with(&self) -> (u32, Option<i64>) {
        let (status, reply) = self.reply_json();
        (status, reply["error"]["code"].as_i64())
    }

    fn reply_json(&self) -> (u32, serde_json::Value) {
        let r = self.host.replies.last().expect("a local reply");
        (r.status, serde_json::from_str(&r.body).unwrap_or_default())
    }

    fn asked(&self) -> serde_json::Value {
        serde_json::from_str(&self.host.dispatched[0].body).unwrap()
    }
}

#[test]
fn a_tool_call_reaches_the_server_with_its_credential_and_never_the_callers_token() {
    let keys = Keys::new();
    for (downstream, hold) in [(true, true), (false, true), (true, false)] {
        let rt = runtime_with(keys, downstream, hold);
        let auth = token(keys, &["ml"]);
        let (body, content_type, chunks) = recorded("python_sdk_everything", 5);
        let mut call = post(&rt, &auth, &body, &[("cookie", "s=1")]);
        let h = &call.host;
        assert!(h.replies.is_empty(), "{:?}", h.replies);
        assert_eq!(h.header(":path"), Some("/mcp"));
        assert_eq!(h.header(CLUSTER_HEADER), Some("mcp_everything"));
        assert_eq!(h.header("cookie"), None);
        assert_eq!(h.header(USER_HEADER), None);
        let injected = h.header("authorization");
        if downstream {
            assert_eq!(injected, Some(format!("Bearer {MCP_TOKEN}").as_str()));
        } else {
            // Envoy sets it on the cluster; the client's never leaves.
            assert_eq!(injected, None);
        }
        let asked = call.asked();
        assert_eq!(
            asked["mcp"],
            serde_json::json!({"server": "everything", "tool": "echo"})
        );
        assert!(asked["model"].is_null() && asked["provider"].is_null());
        assert_eq!(asked["reserve_tokens"], 0);
        let out = call.answer(&content_type, &chunks);
        assert_eq!(
            out,
            chunks.concat(),
            "an unfiltered answer passes as it came"
        );
        let record = call.record();
        assert_eq!(record["format"], "mcp");
        assert_eq!(record["decision"], "allowed");
        assert_eq!(record["input_tokens"], 0);
        assert_eq!(
            record["mcp"],
            serde_json::json!({"server": "everything", "method": "tools/call", "name": "echo",
                               "bytes_in": body.len(), "bytes_out": chunks.concat().len()})
        );
        assert!(!record.to_string().contains("hello"), "never the arguments");
    }
}

#[test]
fn a_denied_tool_is_refused_in_json_rpc_and_never_reaches_the_server() {
    let keys = Keys::new();
    for hold in [true, false] {
        denied_tools(keys, &runtime_with(keys, true, hold));
    }
}

fn denied_tools(keys: &Keys, rt: &Rc<Runtime>) {
    let rt = Rc::clone(rt);
    let cases = [
        // (body, groups, rule)
        (
            r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"get-env","arguments":{}}}"#,
            vec!["research"],
            "mcp.servers[everything].tools[0]",
            "7",
        ),
        (
            r#"{"method":"tools/call","params":{"name":"trigger-long-running-operation"},"id":"x","jsonrpc":"2.0"}"#,
            vec!["ml"],
            "mcp.servers[everything].tools[1]",
            "\"x\"",
        ),
        (
            r#"{"jsonrpc":"2.0","id":0,"method":"resources/read","params":{"uri":"demo://resource/static/document/architecture.md"}}"#,
            vec!["ml"],
            "mcp.servers[everything].resources[0]",
            "0",
        ),
    ];
    for (body, groups, rule, id) in cases {
        let mut call = post(&rt, &token(keys, &groups), body, &[]);
        assert!(
            call.host.dispatched.is_empty(),
            "no callout for a refused call"
        );
        let (status, reply) = call.reply_json();
        assert_eq!(status, 200, "{body}");
        assert_eq!(reply["error"]["code"], -32602);
        assert_eq!(
            reply["id"],
            serde_json::from_str::<serde_json::Value>(id).unwrap()
        );
        assert_eq!(reply["error"]["data"]["policy"], rule);
        assert!(reply["error"]["message"].as_str().unwrap().contains(rule));
        let record = call.record();
        assert_eq!(record["decision"], "forbidden");
        assert_eq!(record["mcp"]["rpc_error"], -32602);
    }
    // The research group may trigger.
    let allowed = post(
        &rt,
        &token(keys, &["research"]),
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"trigger-long-running-operation"}}"#,
        &[],
    );
    assert!(allowed.host.replies.is_empty());
}

#[test]
fn lists_show_only_what_the_caller_may_use_however_they_are_chunked() {
    let keys = Keys::new();
    let rt = runtime(keys, true);
    let (body, content_type, chunks) = recorded("python_sdk_everything", 4);
    assert!(chunks.concat().contains("\"get-env\""));
    let names = |out: &str| -> Vec<String> {
        out.lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
            .filter_map(|v| v["result"]["tools"].as_array().cloned())
            .flatten()
            .map(|t| t["name"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let all = names(&chunks.concat());
    // The event split at every byte boundary the server might have chosen.
    let joined = chunks.concat();
    let splits = [
        vec![joined.clone()],
        chunks.clone(),
        joined
            .as_bytes()
            .chunks(997)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect(),
    ];
    for groups in [vec!["ml"], vec!["research"]] {
        for split in &splits {
            let mut call = post(&rt, &token(keys, &groups), &body, &[]);
            let out = call.answer(&content_type, split);
            let shown = names(&out);
            let mut want: Vec<String> = all
                .iter()
                .filter(|n| {
                    *n != "get-env" && (groups == ["research"] || !n.starts_with("trigger-"))
                })
                .cloned()
                .collect();
            want.sort();
            let mut got = shown.clone();
            got.sort();
            assert_eq!(got, want, "groups {groups:?}");
            assert!(call
                .host
                .removed_response_headers
                .contains(&"content-length".to_string()));
            let record = call.record();
            assert_eq!(record["mcp"]["bytes_out"], out.len());
        }
    }
}

#[test]
fn a_json_list_is_filtered_whole() {
    let keys = Keys::new();
    let rt = runtime(keys, true);
    let body = r#"{"jsonrpc":"2.0","id":3,"method":"tools/list"}"#;
    let answer = r#"{"jsonrpc":"2.0","id":3,"result":{"tools":[{"name":"echo","inputSchema":{}},{"name":"get-env","inputSchema":{}}]}}"#;
    let mut call = post(&rt, &token(keys, &["ml"]), body, &[]);
    let out = call.answer(
        "application/json",
        &[answer[..40].to_string(), answer[40..].to_string()],
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["result"]["tools"].as_array().unwrap().len(), 1);
    assert_eq!(v["result"]["tools"][0]["name"], "echo");
}

#[test]
fn refusals_speak_json_rpc_and_point_at_the_metadata() {
    let keys = Keys::new();
    let rt = runtime(keys, true);
    let good = token(keys, &["ml"]);
    let call = r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"echo"}}"#;
    // (what, token, body, extra headers, status, JSON-RPC code)
    type Case<'a> = (&'a str, String, &'a str, Vec<(&'a str, &'a str)>, u32, i64);
    let cases: Vec<Case> = vec![
        ("missing token", String::new(), call, vec![], 401, -32600),
        (
            "bad token",
            "Bearer not.a.jwt".into(),
            call,
            vec![],
            401,
            -32600,
        ),
        (
            "batch",
            good.clone(),
            "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]",
            vec![],
            400,
            -32600,
        ),
        ("not json", good.clone(), "{", vec![], 400, -32700),
        (
            "a foreign origin",
            good.clone(),
            call,
            vec![("origin", "https://evil.example")],
            403,
            -32600,
        ),
        (
            "Mcp-Name lies",
            good.clone(),
            call,
            vec![
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/call"),
                ("mcp-name", "get-env"),
            ],
            400,
            -32020,
        ),
    ];
    for (what, auth, body, extra, status, code) in cases {
        let c = post(&rt, &auth, body, &extra);
        assert_eq!(c.refused_with(), (status, Some(code)), "{what}");
        if status == 401 {
            let www = c.host.replies[0]
                .headers
                .iter()
                .find(|(k, _)| *k == "www-authenticate")
                .map(|(_, v)| v.clone());
            assert!(www.unwrap_or_default().starts_with(
                "Bearer resource_metadata=\"https://gw.example/.well-known/oauth-protected-resource/mcp/everything\""
            ), "{what}");
        }
        assert!(c.host.dispatched.is_empty(), "{what}");
    }
}

#[test]
fn the_metadata_is_public() {
    let keys = Keys::new();
    let rt = runtime(keys, true);
    let mut host = FakeHost::with_headers(&[
        (":method", "GET"),
        (
            ":path",
            "/.well-known/oauth-protected-resource/mcp/everything",
        ),
    ]);
    let mut flow = testing::flow_for(rt);
    assert_eq!(flow.on_request_headers(&mut host, true), Next::Pause);
    let r = &host.replies[0];
    assert_eq!(r.status, 200);
    let doc: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(doc["resource"], "https://gw.example/mcp/everything");
    assert_eq!(
        doc["authorization_servers"],
        serde_json::json!([testing::ISSUER])
    );
    assert_eq!(
        doc["bearer_methods_supported"],
        serde_json::json!(["header"])
    );
}

#[test]
fn notifications_and_streams_are_recorded_but_not_limited() {
    let keys = Keys::new();
    let rt = runtime(keys, true);
    let auth = token(keys, &["ml"]);
    let mut call = post(
        &rt,
        &auth,
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        &[],
    );
    assert!(call.host.dispatched.is_empty());
    assert!(call.host.replies.is_empty());
    assert_eq!(call.host.header(CLUSTER_HEADER), Some("mcp_everything"));
    assert_eq!(call.record()["mcp"]["method"], "notifications/initialized");
    for method in ["GET", "DELETE"] {
        let mut host = FakeHost::with_headers(&[
            (":method", method),
            (":path", "/mcp/everything"),
            ("authorization", &auth),
        ]);
        let mut flow = testing::flow_for(Rc::clone(&rt));
        assert_eq!(
            flow.on_request_headers(&mut host, true),
            Next::Continue,
            "{method}"
        );
        assert!(host.dispatched.is_empty());
        flow.on_log(&mut host);
        let record: serde_json::Value =
            serde_json::from_slice(&host.filter_state[USAGE_FILTER_STATE]).unwrap();
        assert_eq!(record["mcp"]["method"], method);
    }
    let mut host = FakeHost::with_headers(&[
        (":method", "PUT"),
        (":path", "/mcp/everything"),
        ("authorization", &auth),
    ]);
    let mut flow = testing::flow_for(Rc::clone(&rt));
    flow.on_request_headers(&mut host, true);
    assert_eq!(host.replies[0].status, 405);
}

/// Every request the real clients sent passes the gateway as it was (none refused, each
/// answer unchanged, one record each), and every crafted bad request the Python server
/// refused, the gateway refuses first, with the same JSON-RPC code.
#[test]
fn recorded_sessions_replay_through_the_gateway() {
    let keys = Keys::new();
    // Rules that refuse nothing these sessions use: answers must pass byte for byte.
    let rt = runtime_with_rules(keys, serde_json::json!([]));
    let auth = token(keys, &["ml"]);
    let sessions = [
        include_str!("../../fixtures/mcp/python_sdk_everything.json"),
        include_str!("../../fixtures/mcp/python_sdk_modern.json"),
        include_str!("../../fixtures/mcp/claude_code_mcp_list.json"),
        include_str!("../../fixtures/mcp/inspector_cli_tools_call.json"),
        include_str!("../../fixtures/mcp/inspector_cli_tools_list.json"),
        include_str!("../../fixtures/mcp/crafted_modern_errors.json"),
        include_str!("../../fixtures/mcp/crafted_legacy_errors.json"),
    ];
    let mut replayed = 0;
    // The server's session ids, sealed as the client got them.
    let mut sealed: std::collections::HashMap<String, String> = Default::default();
    for text in sessions {
        let session: serde_json::Value = serde_json::from_str(text).unwrap();
        let client = session["client"].as_str().unwrap_or_default().to_string();
        for e in session["exchanges"].as_array().unwrap() {
            let req = &e["request"];
            let method = req["method"].as_str().unwrap();
            let body = req["body"]["text"].as_str().unwrap_or_default();
            let mut headers: Vec<(String, String)> = req["headers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| {
                    (
                        h[0].as_str().unwrap().to_ascii_lowercase(),
                        h[1].as_str().unwrap().to_string(),
                    )
                })
                .filter(|(k, _)| !matches!(k.as_str(), "host" | "content-length" | "authorization"))
                .map(|(k, v)| match sealed.get(&v) {
                    Some(s) if k == "mcp-session-id" => (k, s.clone()),
                    _ => (k, v),
                })
                .collect();
            let own_session = req["headers"]
                .as_array()
                .unwrap()
                .iter()
                .find(|h| {
                    h[0].as_str()
                        .unwrap()
                        .eq_ignore_ascii_case("mcp-session-id")
                })
                .map(|h| h[1].as_str().unwrap().to_string());
            headers.push((":method".into(), method.into()));
            headers.push((":path".into(), "/mcp/everything".into()));
            headers.push(("authorization".into(), auth.clone()));
            let pairs: Vec<(&str, &str)> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let mut host = FakeHost::with_headers(&pairs);
            host.body = body.as_bytes().to_vec();
            let mut flow = testing::flow_for(Rc::clone(&rt));
            flow.on_request_headers(&mut host, body.is_empty());
            if !body.is_empty() {
                flow.on_request_body(&mut host, body.len(), true);
            }
            if !host.dispatched.is_empty() && host.replies.is_empty() {
                flow.on_callout_response(&mut host, 101, Some(200), ALLOW.as_bytes());
            }
            let resp = &e["response"];
            let status = resp["status"].as_u64().unwrap() as u32;
            let upstream: String = resp["chunks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["text"].as_str().unwrap())
                .collect();
            let code = serde_json::from_str::<serde_json::Value>(&upstream)
                .ok()
                .and_then(|v| v["error"]["code"].as_i64());
            let crafted_refusal = client.contains("crafted")
                && status == 400
                && matches!(code, Some(-32020 | -32600));
            let what = format!(
                "{client} #{} {method} {}",
                e["seq"],
                &body[..body.len().min(80)]
            );
            if crafted_refusal && method == "POST" {
                let r = host
                    .replies
                    .last()
                    .unwrap_or_else(|| panic!("{what}: the gateway must refuse it first"));
                let want: serde_json::Value = serde_json::from_str(&upstream).unwrap();
                let got: serde_json::Value = serde_json::from_str(&r.body).unwrap();
                assert_eq!(r.status, 400, "{what}");
                assert_eq!(
                    got["error"]["code"], want["error"]["code"],
                    "{what}: {}",
                    r.body
                );
                assert_eq!(got["id"], want["id"], "{what}");
                continue;
            }
            if host.replies.first().is_some_and(|r| r.status == 400) && body.starts_with('[') {
                // A batch the TypeScript server still takes: the gateway refuses them all.
                continue;
            }
            assert!(host.replies.is_empty(), "{what}: {:?}", host.replies);
            assert_eq!(host.header(":path"), Some("/mcp"));
            assert_eq!(
                host.header("mcp-session-id"),
                own_session.as_deref(),
                "{what}"
            );
            host.response_status = Some(status);
            host.response_headers = resp["headers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| {
                    (
                        h[0].as_str().unwrap().to_ascii_lowercase(),
                        h[1].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            host.response_type = resp["headers"]
                .as_array()
                .unwrap()
                .iter()
                .find(|h| h[0].as_str().unwrap().eq_ignore_ascii_case("content-type"))
                .map(|h| h[1].as_str().unwrap().to_string());
            let opened = host.response_header("mcp-session-id");
            flow.on_response_headers(&mut host);
            if let Some(own) = opened {
                let given = host.response_header("mcp-session-id").unwrap();
                assert_ne!(given, own, "{what}: the client gets the id sealed");
                sealed.insert(own, given);
            }
            let mut out = String::new();
            let chunks = resp["chunks"].as_array().unwrap();
            for (i, c) in chunks.iter().enumerate() {
                host.response_chunk = c["text"].as_str().unwrap().as_bytes().to_vec();
                let n = host.response_chunk.len();
                assert_eq!(
                    flow.on_response_body(&mut host, n, i + 1 == chunks.len()),
                    Next::Continue
                );
                out.push_str(&String::from_utf8_lossy(&host.response_chunk));
            }
            assert_eq!(out, upstream, "{what}");
            host.response_flags = Some(0);
            flow.on_log(&mut host);
            let record: serde_json::Value =
                serde_json::from_slice(&host.filter_state[USAGE_FILTER_STATE]).unwrap();
            assert_eq!(record["format"], "mcp", "{what}");
            assert_eq!(record["mcp"]["bytes_out"], upstream.len(), "{what}");
            replayed += 1;
        }
    }
    assert!(replayed >= 35, "{replayed} exchanges replayed");
}

#[test]
fn a_session_belongs_to_the_user_who_opened_it() {
    let keys = Keys::new();
    let rt = runtime(keys, true);
    let alice = token(keys, &["ml"]);
    let (body, content_type, chunks) = recorded("python_sdk_everything", 1);
    let mut init = post(&rt, &alice, &body, &[]);
    let own = "2a5e8c1b-7d3f-4e6a-9b0c-1d2e3f4a5b6c";
    init.host
        .response_headers
        .push(("mcp-session-id".into(), own.into()));
    init.answer(&content_type, &chunks);
    let sealed = init
        .host
        .response_headers
        .iter()
        .find(|(k, _)| k == "mcp-session-id")
        .map(|(_, v)| v.clone())
        .unwrap();
    assert!(
        sealed.starts_with(own) && sealed.len() > own.len(),
        "{sealed}"
    );
    let list = r#"{"jsonrpc":"2.0","id":3,"method":"tools/list"}"#;
    let next = post(&rt, &alice, list, &[("mcp-session-id", &sealed)]);
    assert!(next.host.replies.is_empty());
    assert_eq!(
        next.host.header("mcp-session-id"),
        Some(own),
        "the server gets its own id back"
    );
    // Bob holds a valid token and Alice's session id: not a session of his.
    let mut c = testing::claims();
    c.subject = Some("bob".into());
    let bob = format!("Bearer {}", keys.es256.sign(c).unwrap());
    for presented in [sealed.as_str(), own] {
        let stolen = post(&rt, &bob, list, &[("mcp-session-id", presented)]);
        assert_eq!(stolen.refused_with(), (404, Some(-32600)), "{presented}");
        assert!(stolen.host.dispatched.is_empty());
    }
}

#[test]
fn the_aggregate_lists_every_reachable_server_and_routes_calls() {
    let keys = Keys::new();
    let rt = runtime(keys, true);
    let auth = token(keys, &["ml"]);
    // The handshake is the gateway's.
    let init = post_to(
        &rt,
        "/mcp",
        &auth,
        r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#,
    );
    let (status, reply) = init.reply_json();
    assert_eq!(status, 200);
    assert_eq!(reply["result"]["protocolVersion"], "2025-11-25");
    assert!(init.host.replies[0]
        .headers
        .iter()
        .any(|(k, _)| *k == "mcp-session-id"));
    assert!(init.host.dispatched.is_empty());

    // tools/list: everything's session opened, its list read; modern is down.
    let mut list = post_to(
        &rt,
        "/mcp",
        &auth,
        r#"{"jsonrpc":"2.0","id":5,"method":"tools/list"}"#,
    );
    let (_, _, init_chunks) = recorded("python_sdk_everything", 1);
    let (_, _, list_chunks) = recorded("python_sdk_everything", 4);
    let init_body = init_chunks.concat().replace("\"id\":2", "\"id\":1");
    let list_body = list_chunks.concat().replace("\"id\":3", "\"id\":2");
    let h = &mut list.host;
    assert_eq!(h.dispatched.len(), 1);
    assert_eq!(h.dispatched[0].cluster, "mcp_everything");
    assert!(h.dispatched[0].body.contains("\"initialize\""));
    assert!(h.dispatched[0]
        .headers
        .contains(&("authorization".into(), format!("Bearer {MCP_TOKEN}"))));
    h.callout_headers = vec![("mcp-session-id".into(), "up-1".into())];
    list.flow
        .on_callout_response(h, 101, Some(200), init_body.as_bytes());
    assert!(h.dispatched[1].body.contains("notifications/initialized"));
    assert!(h.dispatched[1]
        .headers
        .contains(&("mcp-session-id".into(), "up-1".into())));
    list.flow.on_callout_response(h, 102, Some(202), b"");
    assert!(h.dispatched[2].body.contains("tools/list"));
    list.flow
        .on_callout_response(h, 103, Some(200), list_body.as_bytes());
    assert_eq!(h.dispatched[3].cluster, "mcp_modern");
    assert_eq!(
        h.dispatched[3]
            .headers
            .iter()
            .find(|(k, _)| k == ":authority")
            .map(|(_, v)| v.as_str()),
        Some("127.0.0.1:3002")
    );
    list.flow.on_callout_response(h, 104, None, b"");
    let (status, reply) = list.reply_json();
    assert_eq!(status, 200);
    assert_eq!(reply["id"], 5);
    let names: Vec<&str> = reply["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"everything__echo"), "{names:?}");
    assert!(
        !names
            .iter()
            .any(|n| n.contains("get-env") || n.contains("trigger-")),
        "the caller's rules: {names:?}"
    );
    assert!(
        names.iter().all(|n| n.starts_with("everything__")),
        "modern was down: {names:?}"
    );
    assert_eq!(list.host.count_of(Counter::McpUpstreamFailed), 1);

    // A call goes to its server, under its own name, on the session this worker holds.
    let body = r#"{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"everything__echo","arguments":{"message":"hi"}}}"#;
    let mut host = FakeHost::with_headers(&[
        (":method", "POST"),
        (":path", "/mcp"),
        ("content-type", "application/json"),
        ("authorization", &auth),
    ]);
    host.body = body.as_bytes().to_vec();
    // The worker's state (its sessions) is the list's flow's: same runtime, same worker.
    let mut flow = Flow::new(Rc::clone(&rt), Rc::clone(&list.flow.auth));
    flow.on_request_headers(&mut host, false);
    flow.on_request_body(&mut host, body.len(), true);
    assert!(host.replies.is_empty(), "{:?}", host.replies);
    assert_eq!(
        String::from_utf8_lossy(&host.body),
        body.replace("everything__echo", "echo")
    );
    assert_eq!(host.header("mcp-session-id"), Some("up-1"));
    let asked: serde_json::Value = serde_json::from_str(&host.dispatched[0].body).unwrap();
    assert_eq!(
        asked["mcp"],
        serde_json::json!({"server": "everything", "tool": "echo"})
    );
    flow.on_callout_response(&mut host, 101, Some(200), ALLOW.as_bytes());
    assert_eq!(host.header(CLUSTER_HEADER), Some("mcp_everything"));
    assert_eq!(host.header(":path"), Some("/mcp"));
    // Denied as at the server's own endpoint, and unknown servers are unknown tools.
    for (name, code) in [
        ("everything__get-env", -32602),
        ("nowhere__echo", -32602),
        ("echo", -32602),
    ] {
        let b = format!(
            r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{{"name":"{name}"}}}}"#
        );
        let c = post_to(&rt, "/mcp", &auth, &b);
        assert_eq!(c.refused_with(), (200, Some(code)), "{name}");
        assert!(c.host.dispatched.is_empty());
    }
}

#[test]
fn an_unreachable_server_is_a_json_rpc_error() {
    let keys = Keys::new();
    let rt = runtime(keys, true);
    let mut call = post(
        &rt,
        &token(keys, &["ml"]),
        r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"echo"}}"#,
        &[],
    );
    call.host.response_status = Some(503);
    call.host.response_type = Some("text/plain".into());
    call.flow.on_response_headers(&mut call.host);
    call.host.response_chunk =
        b"upstream connect error or disconnect/reset before headers".to_vec();
    let n = call.host.response_chunk.len();
    call.flow.on_response_body(&mut call.host, n, true);
    let v: serde_json::Value = serde_json::from_slice(&call.host.response_chunk).unwrap();
    assert_eq!(
        (v["id"].as_i64(), v["error"]["code"].as_i64()),
        (Some(9), Some(-32603))
    );
    assert_eq!(
        call.host.response_header("content-type").as_deref(),
        Some("application/json")
    );
    let record = call.record();
    assert_eq!(
        (
            record["status"].as_u64(),
            record["mcp"]["rpc_error"].as_i64()
        ),
        (Some(503), Some(-32603))
    );
}

#[test]
fn a_stream_is_not_resumed_for_a_caller_whose_lists_are_filtered() {
    let keys = Keys::new();
    let rt = runtime(keys, true);
    for (groups, kept) in [(vec!["ml"], false), (vec!["research"], false)] {
        let auth = token(keys, &groups);
        let mut host = FakeHost::with_headers(&[
            (":method", "GET"),
            (":path", "/mcp/everything"),
            ("authorization", &auth),
            ("last-event-id", "ev-42"),
        ]);
        let mut flow = testing::flow_for(Rc::clone(&rt));
        flow.on_request_headers(&mut host, true);
        assert_eq!(host.header("last-event-id").is_some(), kept, "{groups:?}");
    }
    // Nothing filtered for anyone: resumption works.
    let open = runtime_with_rules(keys, serde_json::json!([]));
    let auth = token(keys, &["ml"]);
    let mut host = FakeHost::with_headers(&[
        (":method", "GET"),
        (":path", "/mcp/everything"),
        ("authorization", &auth),
        ("last-event-id", "ev-42"),
    ]);
    let mut flow = testing::flow_for(open);
    flow.on_request_headers(&mut host, true);
    assert_eq!(host.header("last-event-id"), Some("ev-42"));
}
