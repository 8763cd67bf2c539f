//! Aggregate: the endpoint `/mcp` serves every configured MCP server as one, their tools
//! named `<server>__<tool>` (`mcp::aggregate`). The gateway answers the handshake, `ping`
//! and notifications itself; lists the tools of every server it reaches, asking each in
//! turn on its own session (a server down or slower than its timeout is left out, not
//! the list failed); and sends a call on to its server under the tool's own name, on the
//! gateway's session with that server. Other requests at `/mcp/<server>` go straight on.

use std::time::Duration;

use crate::flow::facts::{Fanout, Phase};
use crate::flow::step::{Cx, Go, Step};
use crate::host::Counter;
use crate::mcp::aggregate::{self, UPSTREAM_VERSION};
use crate::mcp::error::{RpcError, INVALID_PARAMS, METHOD_NOT_FOUND};
use crate::mcp::message::Kind;
use crate::mcp::reply::TOOL_DENIED;
use crate::mcp::rules::{self, Subject};
use crate::mcp::upstream::{self, UpstreamSession, CALL_TIMEOUT_MS};
use crate::mcp::{path, session};
use crate::providers::reply::{self, Reply};

pub struct Aggregate;

/// The JSON-RPC id of the gateway's `initialize` to a server; its list pages follow.
const INITIALIZE_ID: u64 = 1;

impl Step for Aggregate {
    fn name(&self) -> &'static str {
        "aggregate"
    }

    fn run(&self, cx: &mut Cx<'_>) -> Result<Go, Reply> {
        if !cx.facts.mcp.as_ref().is_some_and(|m| m.aggregate) {
            return Ok(Go::Next);
        }
        match cx.facts.method.as_str() {
            "DELETE" => return Err(answer(204, String::new())),
            "GET" => {
                // No one server to listen to: MCP lets a server refuse the stream.
                let mut r = reply::error(
                    405,
                    "invalid_request_error",
                    "method_not_allowed",
                    "The aggregate endpoint has no listening stream; use POST.",
                );
                r.headers.push(("allow", "POST, DELETE".into()));
                return Err(r);
            }
            _ => {}
        }
        let Some(message) = cx.facts.mcp.as_ref().and_then(|m| m.message.clone()) else {
            return Err(reply::internal("no_mcp_message"));
        };
        let id = message.id.clone().unwrap_or_else(|| "null".into());
        if message.kind != Kind::Request {
            // A notification, or an answer to a request no server of the aggregate
            // made through it: accepted, as MCP answers them.
            return Err(answer(202, String::new()));
        }
        let version = env!("CARGO_PKG_VERSION");
        match message.method.as_deref().unwrap_or_default() {
            "initialize" => {
                let asked = cx
                    .facts
                    .mcp
                    .as_ref()
                    .and_then(|m| m.mirrored.protocol_version.clone());
                let mut r = answer(
                    200,
                    aggregate::initialize_result(&id, asked.as_deref(), version),
                );
                let user = cx.facts.caller.as_ref().map_or("", |c| c.user.as_str());
                let own = cx.host.random_id();
                r.headers.push((
                    "mcp-session-id",
                    session::seal(&cx.rt.salt, user, path::AGGREGATE_NAME, &own),
                ));
                Err(r)
            }
            "ping" => Err(answer(
                200,
                aggregate::response(&id, &serde_json::json!({})),
            )),
            "tools/list" => {
                let Some(first) = (0..servers(cx)).next() else {
                    return Err(answer(200, aggregate::merged(&id, &[], &|_, _| true)));
                };
                start(cx, first, true)
            }
            "tools/call" => route_call(cx, &id, message.name.as_deref().unwrap_or_default()),
            "prompts/list" => Err(answer(
                200,
                aggregate::response(&id, &serde_json::json!({"prompts": []})),
            )),
            "resources/list" => Err(answer(
                200,
                aggregate::response(&id, &serde_json::json!({"resources": []})),
            )),
            "resources/templates/list" => Err(answer(
                200,
                aggregate::response(&id, &serde_json::json!({"resourceTemplates": []})),
            )),
            other => {
                let e = RpcError::new(
                    METHOD_NOT_FOUND,
                    format!("Method not found: {}", clip(other)),
                )
                .with_id(Some(&id));
                Err(answer(200, e.body()))
            }
        }
    }

    /// A server answered one of the aggregate's calls (`status` `None`: it could not be
    /// reached, or not in time).
    fn answered(&self, cx: &mut Cx<'_>, status: Option<u32>, body: &[u8]) -> Result<Go, Reply> {
        let Some(mut fanout) = cx.facts.mcp.as_mut().and_then(|m| m.fanout.take()) else {
            return Err(reply::internal("no_fanout"));
        };
        let ok = status.is_some_and(|s| (200..300).contains(&s));
        let at = fanout.at;
        let next = match (&fanout.phase, ok) {
            (Phase::Initialize, true) => {
                let version = aggregate::response_in(body, INITIALIZE_ID).and_then(|v| {
                    v.get("result")?
                        .get("protocolVersion")?
                        .as_str()
                        .map(str::to_owned)
                });
                match version {
                    Some(version) => {
                        let id = cx.host.callout_header("mcp-session-id");
                        cx.auth
                            .borrow_mut()
                            .mcp_sessions
                            .insert(at, UpstreamSession { id, version });
                        Some(Phase::Initialized)
                    }
                    None => None,
                }
            }
            (Phase::Initialized, true) if fanout.listing => Some(Phase::List { page: 0 }),
            (Phase::Initialized, true) => return call_on_session(cx, at),
            (Phase::List { page }, true) => {
                let page_no = *page;
                let id = INITIALIZE_ID + 1 + page_no as u64;
                match aggregate::response_in(body, id)
                    .as_ref()
                    .and_then(aggregate::tools_page)
                {
                    Some((tools, cursor)) => {
                        let name = server_name(cx, at);
                        match fanout.lists.iter_mut().find(|(s, _)| *s == name) {
                            Some((_, list)) => list.extend(tools),
                            None => fanout.lists.push((name, tools)),
                        }
                        match cursor {
                            Some(c) if page_no + 1 < aggregate::MAX_PAGES => {
                                fanout.phase = Phase::List { page: page_no + 1 };
                                return dispatch(cx, fanout, Some(&c));
                            }
                            _ => None,
                        }
                    }
                    None => None,
                }
            }
            // The server forgot the session: open a new one, once.
            (Phase::List { .. }, false) if status == Some(404) && !fanout.reopened => {
                cx.auth.borrow_mut().mcp_sessions.remove(&at);
                fanout.reopened = true;
                Some(Phase::Initialize)
            }
            (_, _) => {
                log::warn!(
                    "MCP server {} did not answer the aggregate endpoint (status {status:?})",
                    server_name(cx, at)
                );
                cx.host.count(Counter::McpUpstreamFailed);
                cx.auth.borrow_mut().mcp_sessions.remove(&at);
                if !fanout.listing {
                    return Err(reply::error(
                        502,
                        "api_error",
                        "mcp_server_unavailable",
                        &format!("MCP server {} is not reachable.", server_name(cx, at)),
                    ));
                }
                None
            }
        };
        match next {
            Some(phase) => {
                fanout.phase = phase;
                dispatch(cx, fanout, None)
            }
            // This server is done (listed, or left out): the next one, or the answer.
            None if at + 1 < servers(cx) => {
                put(cx, fanout);
                start(cx, at + 1, true)
            }
            None => {
                let id = cx
                    .facts
                    .mcp
                    .as_ref()
                    .and_then(|m| m.rpc_id.clone())
                    .unwrap_or_else(|| "null".into());
                let rt = cx.rt;
                let caller = cx.facts.caller.as_ref();
                let keep = |server: &str, tool: &str| {
                    let s = rt.config.mcp.as_ref().and_then(|c| c.server(server));
                    match (s, caller) {
                        (Some((_, s)), Some(c)) => {
                            rules::refusing_rule(s, Subject::Tool, tool, c).is_none()
                        }
                        _ => false,
                    }
                };
                Err(answer(200, aggregate::merged(&id, &fanout.lists, &keep)))
            }
        }
    }
}

fn servers(cx: &Cx<'_>) -> usize {
    cx.rt.config.mcp.as_ref().map_or(0, |c| c.servers.len())
}

fn server_name(cx: &Cx<'_>, at: usize) -> String {
    cx.rt
        .config
        .mcp
        .as_ref()
        .and_then(|c| c.servers.get(at))
        .map_or_else(String::new, |s| s.name.clone())
}

/// Starts on server `at`: straight to its list (or the call) on a session this worker
/// holds, else a new session first.
fn start(cx: &mut Cx<'_>, at: usize, listing: bool) -> Result<Go, Reply> {
    let held = cx.auth.borrow().mcp_sessions.contains_key(&at);
    let kept = cx.facts.mcp.as_mut().and_then(|m| m.fanout.take());
    let lists = kept.map(|f| f.lists).unwrap_or_default();
    let fanout = Fanout {
        at,
        phase: if held {
            Phase::List { page: 0 }
        } else {
            Phase::Initialize
        },
        listing,
        lists,
        reopened: false,
    };
    if held && !listing {
        return call_on_session(cx, at);
    }
    dispatch(cx, fanout, None)
}

fn put(cx: &mut Cx<'_>, fanout: Fanout) {
    if let Some(m) = cx.facts.mcp.as_mut() {
        m.fanout = Some(fanout);
    }
}

/// Sends the fanout's next call to its server.
fn dispatch(cx: &mut Cx<'_>, fanout: Fanout, cursor: Option<&str>) -> Result<Go, Reply> {
    let rt = cx.rt;
    let Some(server) = rt
        .config
        .mcp
        .as_ref()
        .and_then(|c| c.servers.get(fanout.at))
    else {
        return Err(reply::internal("no_mcp_server"));
    };
    let version = env!("CARGO_PKG_VERSION");
    let body = match fanout.phase {
        Phase::Initialize => aggregate::initialize_request(INITIALIZE_ID, version),
        Phase::Initialized => aggregate::initialized_notification(),
        Phase::List { page } => aggregate::list_request(INITIALIZE_ID + 1 + page as u64, cursor),
    };
    let session = cx.auth.borrow().mcp_sessions.get(&fanout.at).cloned();
    let session = session.filter(|_| fanout.phase != Phase::Initialize);
    let credential = rt.mcp_credentials.get(fanout.at).and_then(Option::as_deref);
    let headers = upstream::headers(server, credential, session.as_ref());
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let timeout = Duration::from_millis(CALL_TIMEOUT_MS);
    match cx.host.dispatch(&server.cluster, &pairs, &body, timeout) {
        Ok(call) => {
            put(cx, fanout);
            Ok(Go::Call(call))
        }
        Err(e) => {
            log::warn!("cannot reach MCP cluster {}: {}", server.cluster, e.0);
            cx.host.count(Counter::McpUpstreamFailed);
            // As if it had not answered.
            put(cx, fanout);
            Aggregate.answered(cx, None, &[])
        }
    }
}

/// A `tools/call` at the aggregate: to the server its name names, as the tool's own name.
fn route_call(cx: &mut Cx<'_>, id: &str, exposed: &str) -> Result<Go, Reply> {
    let rt = cx.rt;
    let found = aggregate::split(exposed)
        .and_then(|(server, tool)| Some((rt.config.mcp.as_ref()?.server(server)?, tool)));
    let Some(((index, server), tool)) = found else {
        let e = RpcError::new(INVALID_PARAMS, format!("Unknown tool: {}", clip(exposed)))
            .with_id(Some(id));
        return Err(answer(200, e.body()));
    };
    let (Some(m), Some(caller)) = (cx.facts.mcp.as_mut(), cx.facts.caller.as_ref()) else {
        return Err(reply::internal("no_caller"));
    };
    m.server = Some(index);
    if let Some(msg) = m.message.as_mut() {
        msg.name = Some(tool.to_string());
    }
    if let Some(rule) = rules::refusing_rule(server, Subject::Tool, tool, caller) {
        let text = format!("Tool '{}' is not allowed by policy {rule}", clip(exposed));
        m.denied_by = Some(rule);
        return Err(reply::error(403, "permission_error", TOOL_DENIED, &text));
    }
    let renamed = m.raw.take().and_then(|raw| aggregate::renamed(&raw, tool));
    let Some(body) = renamed else {
        return Err(reply::bad_request(
            crate::mcp::reply::INVALID_MESSAGE,
            "tools/call needs params.name, a string.",
        ));
    };
    cx.host
        .set_request_body(&body)
        .map_err(|e| cx.host_failed(e))?;
    let length = body.len().to_string();
    // The client's mirrored headers named the aggregate's tool; the server reads the body.
    for (name, value) in [
        ("content-length", Some(length.as_str())),
        ("mcp-name", None),
        ("mcp-method", None),
    ] {
        cx.host
            .set_request_header(name, value)
            .map_err(|e| cx.host_failed(e))?;
    }
    start(cx, index, false)
}

/// The call goes on to its server, on the gateway's session with it.
fn call_on_session(cx: &mut Cx<'_>, at: usize) -> Result<Go, Reply> {
    let session = cx.auth.borrow().mcp_sessions.get(&at).cloned();
    let version = session
        .as_ref()
        .map_or(UPSTREAM_VERSION.to_string(), |s| s.version.clone());
    let id = session.and_then(|s| s.id);
    for (name, value) in [
        ("mcp-session-id", id.as_deref()),
        ("mcp-protocol-version", Some(version.as_str())),
    ] {
        cx.host
            .set_request_header(name, value)
            .map_err(|e| cx.host_failed(e))?;
    }
    Ok(Go::Next)
}

/// The aggregate's own answer: a JSON-RPC body (none for 202 and 204).
fn answer(status: u32, body: String) -> Reply {
    let headers = if body.is_empty() {
        Vec::new()
    } else {
        vec![("content-type", "application/json".to_string())]
    };
    Reply {
        status,
        headers,
        body,
        error: None,
    }
}

fn clip(name: &str) -> String {
    name.chars().filter(|c| !c.is_control()).take(128).collect()
}
