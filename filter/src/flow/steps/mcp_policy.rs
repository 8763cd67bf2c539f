//! MCP policy: an MCP client's JSON-RPC message, read once. A batch or a malformed message
//! is refused as MCP servers refuse it; the headers that mirror the message (`Mcp-Method`,
//! `Mcp-Name`, `MCP-Protocol-Version`) must agree with it, since every decision here is
//! taken on the body and a header that says otherwise is steering something downstream;
//! the tool, prompt or resource it names must be one the caller may use (the upstream
//! never sees a refused call); and a list it asks for is marked to be filtered for the
//! caller.

use crate::flow::step::{Cx, Go, Step};
use crate::host::Counter;
use crate::mcp::error::{RpcError, PARSE_ERROR};
use crate::mcp::lists::ListKind;
use crate::mcp::reply::{HEADER_MISMATCH_CODE, INVALID_MESSAGE, TOOL_DENIED, UNPARSABLE_MESSAGE};
use crate::mcp::rules::{self, Subject};
use crate::mcp::{headers, message::Kind};
use crate::providers::reply::{self, Reply};

pub struct McpPolicy;

impl Step for McpPolicy {
    fn name(&self) -> &'static str {
        "mcp_policy"
    }

    fn run(&self, cx: &mut Cx<'_>) -> Result<Go, Reply> {
        let Some(m) = cx.facts.mcp.as_mut() else {
            return Ok(Go::Next);
        };
        let parsed = match m.parsed.take() {
            Some(parsed) => parsed,
            None if cx.facts.method == "POST" => {
                cx.host.count(Counter::BadRequest);
                return Err(reply::bad_request(
                    INVALID_MESSAGE,
                    "A POST to an MCP endpoint carries one JSON-RPC message.",
                ));
            }
            // GET and DELETE carry none.
            None => return Ok(Go::Next),
        };
        let message = match parsed {
            Ok(message) => message,
            Err(e) => {
                m.rpc_id = e.id.clone();
                cx.host.count(Counter::BadRequest);
                return Err(refusal(&e));
            }
        };
        m.rpc_id = message.id.clone();
        if let Err(e) = headers::check(&m.mirrored, &message) {
            cx.host.count(Counter::BadRequest);
            return Err(reply::bad_request(HEADER_MISMATCH_CODE, &e.message));
        }
        if m.aggregate {
            // Which server, and so which rules, the aggregate step finds out.
            m.message = Some(message);
            return Ok(Go::Next);
        }
        let rt = cx.rt;
        let (Some(server), Some(caller)) = (m.server(rt), cx.facts.caller.as_ref()) else {
            return Err(reply::internal("no_mcp_server"));
        };
        if message.kind == Kind::Request {
            let method = message.method.as_deref().unwrap_or_default();
            if let (Some(subject), Some(name)) = (Subject::of_method(method), &message.name) {
                if let Some(rule) = rules::refusing_rule(server, subject, name, caller) {
                    let text = format!(
                        "{} '{}' is not allowed by policy {rule}",
                        subject.word(),
                        clip(name)
                    );
                    m.denied_by = Some(rule);
                    m.message = Some(message);
                    return Err(reply::error(403, "permission_error", TOOL_DENIED, &text));
                }
            }
            m.filter_list = ListKind::of_method(method)
                .filter(|kind| rules::filters(server, subject_of(*kind), caller));
        }
        if cx.facts.client.is_none() {
            cx.facts.client.clone_from(&message.client);
        }
        m.message = Some(message);
        Ok(Go::Next)
    }
}

fn subject_of(kind: ListKind) -> Subject {
    match kind {
        ListKind::Tools => Subject::Tool,
        ListKind::Prompts => Subject::Prompt,
        ListKind::Resources => Subject::Resource,
    }
}

/// A message that cannot be taken: refused with the class its JSON-RPC error maps back
/// to (see `mcp::reply::shape`).
fn refusal(e: &RpcError) -> Reply {
    let class = if e.code == PARSE_ERROR {
        UNPARSABLE_MESSAGE
    } else {
        INVALID_MESSAGE
    };
    reply::bad_request(class, &e.message)
}

/// A client's name, echoed in an error: printable and short.
fn clip(name: &str) -> String {
    name.chars().filter(|c| !c.is_control()).take(128).collect()
}
