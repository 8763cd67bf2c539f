//! The response side of an MCP request. An answer passes chunk by chunk as the server
//! sends it, while a copy is read for the record's outcome (the JSON-RPC error code, a
//! tool's own failure). A list the caller may not see all of is filtered: a JSON answer
//! is held by Envoy to its end (bounded) and replaced, filtered; an SSE answer goes on
//! event by event, the filter holding at most the one event not yet complete, so the
//! progress of a long call still arrives as it happens. A list that cannot be filtered
//! is not passed unfiltered: its place takes a JSON-RPC error.

use super::{Flow, Next};
use crate::host::{Counter, Host};
use crate::mcp::error::{RpcError, INTERNAL_ERROR};
use crate::mcp::lists::{self, ListKind};
use crate::mcp::outcome::{self, Outcome, Watch};
use crate::mcp::rules::{self, Subject};
use crate::mcp::session;
use crate::mcp::sse::Rewriter;

/// The largest list answer or event the gateway filters: past it the list is refused.
/// Below the listener's buffer limit (twice the request body limit as rendered), so
/// Envoy never overflows first.
pub const MAX_MCP_LIST_BYTES: usize = 1024 * 1024;

/// The most of an answer read for its outcome: an answer longer than this is passed on
/// all the same, its outcome unknown. Every request in flight may hold this much.
pub const MAX_MCP_WATCH_BYTES: usize = 256 * 1024;

pub enum McpAnswer {
    /// Passed on as it comes; a copy watched for the outcome of request `id`.
    Watched(Option<Watch>),
    /// A JSON list answer: Envoy buffers it to its end, then it is filtered. `refuse`:
    /// it cannot be filtered, and an error takes its place; `refused`: the error went.
    JsonList {
        kind: ListKind,
        refuse: bool,
        refused: bool,
    },
    /// Envoy's own error page (the server could not be reached): a JSON-RPC error in
    /// its place, which MCP clients show as such. `sent`: it went.
    Replaced { body: Vec<u8>, sent: bool },
    /// An SSE answer carrying a list: rewritten event by event.
    SseList { kind: ListKind, rewriter: Rewriter },
}

impl Flow {
    /// The server's answer begins: how its body will be handled.
    pub(super) fn mcp_response_headers(&mut self, host: &mut dyn Host) {
        // Not an MCP request: nothing to read (each header read is a hostcall).
        let Some(m) = self.facts.mcp.as_mut() else {
            return;
        };
        let (status, content_type) = host.response_status_and_type();
        m.status = status;
        let Some(m) = &self.facts.mcp else {
            return;
        };
        let content_type = content_type.unwrap_or_default().to_ascii_lowercase();
        let sse = content_type.starts_with("text/event-stream");
        let json = content_type.starts_with("application/json");
        let encoded = host
            .response_header("content-encoding")
            .is_some_and(|e| !e.eq_ignore_ascii_case("identity"));
        if m.aggregate {
            // The client's session is the gateway's own; the server's stays behind it,
            // and one the server no longer knows is opened again next time.
            if status == Some(404) {
                if let Some(i) = m.server {
                    self.auth.borrow_mut().mcp_sessions.remove(&i);
                }
            }
            if host.response_header("mcp-session-id").is_some()
                && host.remove_response_header("mcp-session-id").is_err()
            {
                host.count(Counter::HostFailure);
            }
        } else {
            seal_session(host, &self.rt, m, self.facts.caller.as_ref());
        }
        let id = m.message.as_ref().and_then(|msg| msg.id.clone());
        let list = m.filter_list.filter(|_| status == Some(200));
        if status.is_some_and(|s| s >= 500) && !sse && !json {
            let server = m.server_name(&self.rt).to_string();
            let body = RpcError::new(
                INTERNAL_ERROR,
                format!(
                    "MCP server {server} could not be reached through the gateway (HTTP {}).",
                    status.unwrap_or_default()
                ),
            )
            .with_id(m.rpc_id.as_deref())
            .body()
            .into_bytes();
            let fixed = host
                .set_response_header("content-type", "application/json")
                .is_ok()
                && host.remove_response_header("content-length").is_ok();
            if !fixed {
                host.count(Counter::HostFailure);
            }
            self.mcp_answer = Some(McpAnswer::Replaced { body, sent: false });
            if let Some(m) = self.facts.mcp.as_mut() {
                m.outcome.rpc_error = Some(INTERNAL_ERROR);
            }
            return;
        }
        self.mcp_answer = Some(match list {
            Some(kind) if (sse || json) && !encoded => {
                // The body changes length; without one, Envoy frames it itself.
                if host.remove_response_header("content-length").is_err() {
                    host.count(Counter::HostFailure);
                }
                if sse {
                    McpAnswer::SseList {
                        kind,
                        rewriter: Rewriter::new(MAX_MCP_LIST_BYTES),
                    }
                } else {
                    McpAnswer::JsonList {
                        kind,
                        refuse: false,
                        refused: false,
                    }
                }
            }
            // A list the gateway cannot read (compressed, or in no format it knows) is
            // replaced whole by an error, as a JSON list too large would be.
            Some(kind) => McpAnswer::JsonList {
                kind,
                refuse: true,
                refused: false,
            },
            None => McpAnswer::Watched(
                id.filter(|_| sse || json)
                    .map(|id| Watch::new(sse, id, MAX_MCP_WATCH_BYTES)),
            ),
        });
    }

    /// A chunk of the server's answer.
    pub(super) fn mcp_response_body(
        &mut self,
        host: &mut dyn Host,
        size: usize,
        end_of_stream: bool,
    ) -> Next {
        let rt = std::rc::Rc::clone(&self.rt);
        let caller = self.facts.caller.clone();
        let (Some(answer), Some(m)) = (self.mcp_answer.as_mut(), self.facts.mcp.as_mut()) else {
            return Next::Continue;
        };
        let server = m.server(&rt);
        let keep = keep_for(server, answer, caller.as_ref());
        if size > 0 && m.first_byte_ms.is_none() {
            m.first_byte_ms = Some(host.now_ms());
        }
        m.ended |= end_of_stream;
        match answer {
            McpAnswer::Watched(watch) => {
                if let Some(w) = watch.as_mut().filter(|_| size > 0) {
                    match host.response_body(size) {
                        Ok(chunk) => w.push(&chunk),
                        Err(_) => host.count(Counter::HostFailure),
                    }
                }
                if end_of_stream {
                    if let Some(w) = watch.as_mut() {
                        m.outcome = w.finish();
                    }
                }
                m.bytes_out += size as u64;
                Next::Continue
            }
            McpAnswer::JsonList {
                kind,
                refuse,
                refused,
            } => {
                if *refused {
                    // The error took the list's place: nothing more of it goes.
                    return replace(host, m, size, &[]);
                }
                if *refuse || size > MAX_MCP_LIST_BYTES {
                    *refused = true;
                    let out = unfilterable(m.rpc_id.as_deref());
                    return replace(host, m, size, &out);
                }
                if !end_of_stream {
                    // Envoy buffers the answer until its end.
                    return Next::Pause;
                }
                let body = match host.response_body(size) {
                    Ok(body) => body,
                    Err(_) => {
                        host.count(Counter::HostFailure);
                        Vec::new()
                    }
                };
                let id = m.rpc_id.clone().unwrap_or_default();
                if let Some(o) = outcome::of_message(&body, &id) {
                    m.outcome = o;
                }
                let out = match lists::filter(&body, *kind, &keep) {
                    Ok(Some(filtered)) => {
                        m.removed += filtered.removed;
                        filtered.body
                    }
                    Ok(None) => body,
                    Err(()) => {
                        *refused = true;
                        unfilterable(m.rpc_id.as_deref())
                    }
                };
                replace(host, m, size, &out)
            }
            McpAnswer::Replaced { body, sent } => {
                let out = if std::mem::replace(sent, true) {
                    Vec::new()
                } else {
                    std::mem::take(body)
                };
                replace(host, m, size, &out)
            }
            McpAnswer::SseList { kind, rewriter } => {
                let chunk = if size > 0 {
                    match host.response_body(size) {
                        Ok(chunk) => chunk,
                        Err(_) => {
                            host.count(Counter::HostFailure);
                            return Next::Continue;
                        }
                    }
                } else {
                    Vec::new()
                };
                let id = m.rpc_id.clone().unwrap_or_default();
                let (mut found, mut removed) = (None::<Outcome>, 0);
                let kind = *kind;
                let mut edit = |data: &[u8]| -> Option<Vec<u8>> {
                    if let Some(o) = outcome::of_message(data, &id) {
                        found = Some(o);
                    }
                    match lists::filter(data, kind, &keep) {
                        Ok(Some(filtered)) => {
                            removed += filtered.removed;
                            Some(filtered.body)
                        }
                        Ok(None) => None,
                        // A priming event carries no data; anything else unreadable
                        // might be the list.
                        Err(()) if data.iter().all(u8::is_ascii_whitespace) => None,
                        Err(()) => Some(unfilterable(Some(id.as_str()))),
                    }
                };
                let mut out = match rewriter.push(&chunk, &mut edit) {
                    Ok(out) => out,
                    Err(_overflow) => {
                        let mut event = b"event: message\ndata: ".to_vec();
                        event.extend(unfilterable(Some(id.as_str())));
                        event.extend(b"\n\n");
                        event
                    }
                };
                if end_of_stream {
                    out.extend(rewriter.finish());
                }
                if let Some(o) = found {
                    m.outcome = o;
                }
                m.removed += removed;
                replace(host, m, size, &out)
            }
        }
    }
}

/// The session a server opens reaches the client sealed to the caller (see
/// `mcp::session`); one that cannot be sealed does not reach it at all.
fn seal_session(
    host: &mut dyn Host,
    rt: &crate::runtime::Runtime,
    m: &super::facts::McpFacts,
    caller: Option<&crate::flow::Caller>,
) {
    let Some(own) = host.response_header("mcp-session-id") else {
        return;
    };
    let server = m.server(rt);
    let done = match (server, caller) {
        (Some(s), Some(c)) if session::valid(&own) => {
            let sealed = session::seal(&rt.salt, &c.user, &s.name, &own);
            host.set_response_header("mcp-session-id", &sealed)
        }
        _ => host.remove_response_header("mcp-session-id"),
    };
    if done.is_err() {
        host.count(Counter::HostFailure);
    }
}

/// Whether the caller may see a list entry, by its name (a resource: its URI).
fn keep_for<'a>(
    server: Option<&'a crate::mcp::config::McpServer>,
    answer: &McpAnswer,
    caller: Option<&'a crate::flow::Caller>,
) -> impl Fn(&str) -> bool + 'a {
    let subject = match answer {
        McpAnswer::JsonList { kind, .. } | McpAnswer::SseList { kind, .. } => match kind {
            ListKind::Tools => Subject::Tool,
            ListKind::Prompts => Subject::Prompt,
            ListKind::Resources => Subject::Resource,
        },
        McpAnswer::Watched(_) | McpAnswer::Replaced { .. } => Subject::Tool,
    };
    move |name: &str| match (server, caller) {
        (Some(s), Some(c)) => rules::refusing_rule(s, subject, name, c).is_none(),
        // Nobody known to filter for: nothing shown.
        _ => false,
    }
}

/// The error that takes the place of a list the gateway could not filter.
fn unfilterable(id: Option<&str>) -> Vec<u8> {
    RpcError::new(
        INTERNAL_ERROR,
        "The gateway could not filter this list for the caller (too large, compressed or unreadable), so it is withheld.",
    )
    .with_id(id)
    .body()
    .into_bytes()
}

/// Puts `out` in place of the `size` bytes Envoy holds, and lets it go.
fn replace(host: &mut dyn Host, m: &mut super::facts::McpFacts, size: usize, out: &[u8]) -> Next {
    if host.replace_response_body(size, out).is_err() {
        host.count(Counter::HostFailure);
    }
    m.bytes_out += out.len() as u64;
    Next::Continue
}
