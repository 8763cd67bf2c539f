//! Classify: what the caller asks for, from the path: an endpoint the gateway serves, with
//! the method it allows, and a provider configured for its API. The model list is answered
//! here from the route table; in identity-only mode the request goes straight on.

use crate::accounting::meter::Accounting;
use crate::accounting::sse::DEFAULT_MAX_EVENT_BYTES;
use crate::flow::step::{Cx, Go, Step};
use crate::mcp::reply::SESSION_NOT_FOUND;
use crate::mcp::rules::{self, Subject};
use crate::mcp::session;
use crate::providers::api;
use crate::providers::registry;
use crate::providers::reply::{self, Reply};

pub struct Classify;

impl Step for Classify {
    fn name(&self) -> &'static str {
        "classify"
    }

    fn run(&self, cx: &mut Cx<'_>) -> Result<Go, Reply> {
        if cx.facts.mcp.is_some() {
            return mcp_endpoint(cx);
        }
        let Some(endpoint) = cx.facts.endpoint else {
            return Err(reply::error(
                404,
                "invalid_request_error",
                "unknown_url",
                "This path is not an AI provider API the gateway serves.",
            ));
        };
        let allowed = api::allowed_method(endpoint);
        if cx.facts.method != allowed {
            // `GET /v1/chat/completions` lists an organisation's stored chats; only what
            // the gateway understands is forwarded.
            let mut r = reply::error(
                405,
                "invalid_request_error",
                "method_not_allowed",
                &format!(
                    "{} is not allowed on this path; use {allowed}.",
                    clip_method(&cx.facts.method)
                ),
            );
            r.headers.push(("allow", allowed.to_string()));
            return Err(r);
        }
        let rt = cx.rt;
        // The route table answers the model list whichever providers serve its API.
        if !rt.config.identity_only {
            if let Some(reply) = super::models::reply(cx) {
                return Err(reply);
            }
        }
        let Some((index, _)) = registry::for_api(&rt.config.providers, endpoint.api) else {
            return Err(reply::error(
                404,
                "invalid_request_error",
                "no_provider",
                &format!(
                    "No provider is configured for the {} API.",
                    endpoint.api.name()
                ),
            ));
        };
        cx.facts.provider = Some(index);
        if rt.config.identity_only {
            // Who called, attributed and sent on with the provider's key: no body read,
            // no decision, no usage record.
            return Ok(Go::Forward);
        }
        cx.facts.stream = endpoint.streams_by_path;
        *cx.accounting = Some(Accounting::new(endpoint.format, DEFAULT_MAX_EVENT_BYTES));
        Ok(Go::Next)
    }
}

/// An MCP server's endpoint: POST carries the client's messages; GET (the listening
/// stream) and DELETE (the end of a session) are forwarded for the revisions that have
/// them, and a server that has not answers 405 itself.
fn mcp_endpoint(cx: &mut Cx<'_>) -> Result<Go, Reply> {
    const ALLOWED: [&str; 3] = ["POST", "GET", "DELETE"];
    if !ALLOWED.contains(&cx.facts.method.as_str()) {
        let mut r = reply::error(
            405,
            "invalid_request_error",
            "method_not_allowed",
            &format!(
                "{} is not allowed on an MCP endpoint; use POST, GET or DELETE.",
                clip_method(&cx.facts.method)
            ),
        );
        r.headers.push(("allow", ALLOWED.join(", ")));
        return Err(r);
    }
    // A page in a browser may send a user's cookies (a cookie token source) to the
    // gateway from any site; MCP servers must refuse a foreign Origin (MCP transports,
    // "Security Warning"), and the gateway is the server its clients see.
    let public = cx.rt.config.mcp.as_ref().map(|m| m.public_url.as_str());
    let foreign = cx
        .facts
        .mcp
        .as_ref()
        .and_then(|m| m.origin.as_deref())
        .is_some_and(|o| Some(o.trim_end_matches('/')) != public);
    if foreign {
        return Err(reply::error(
            403,
            "permission_error",
            "origin_not_allowed",
            "Requests from this Origin may not reach MCP servers through the gateway.",
        ));
    }
    let aggregate = cx.facts.mcp.as_ref().is_some_and(|m| m.aggregate);
    if aggregate && (!cx.rt.config.hold_headers || cx.rt.config.identity_only) {
        // Which server a call goes to is in its body, and here the headers would have
        // to leave before it is read.
        return Err(reply::error(
            404,
            "invalid_request_error",
            "aggregate_unavailable",
            "The aggregate MCP endpoint /mcp needs the gateway's own Envoy delivery; use /mcp/<server>.",
        ));
    }
    unseal_session(cx)?;
    no_replay_of_unfiltered_lists(cx)?;
    if cx.rt.config.identity_only {
        return Ok(Go::Forward);
    }
    Ok(Go::Next)
}

/// The server's own session id in place of the sealed one the client holds; a session
/// sealed for another user (or server, or none the gateway sealed) is one that does not
/// exist for this caller.
fn unseal_session(cx: &mut Cx<'_>) -> Result<(), Reply> {
    let rt = cx.rt;
    let Some(m) = cx.facts.mcp.as_ref() else {
        return Ok(());
    };
    let Some(sealed) = m.session.as_deref() else {
        return Ok(());
    };
    let server = m.server_name(rt);
    let user = cx.facts.caller.as_ref().map_or("", |c| c.user.as_str());
    match session::open(&rt.salt, user, server, sealed) {
        Some(own) => {
            let own = own.to_string();
            cx.host
                .set_request_header("mcp-session-id", Some(&own))
                .map_err(|e| cx.host_failed(e))
        }
        None => Err(reply::error(
            404,
            "invalid_request_error",
            SESSION_NOT_FOUND,
            "Session not found: start a new one (initialize).",
        )),
    }
}

/// A client resuming a stream (`Last-Event-ID`) could have a server with an event store
/// replay an answer the gateway filtered (a list the caller may see only part of): for a
/// caller whose lists on this server are filtered, the stream starts afresh instead.
fn no_replay_of_unfiltered_lists(cx: &mut Cx<'_>) -> Result<(), Reply> {
    let rt = cx.rt;
    let (Some(m), Some(caller)) = (cx.facts.mcp.as_ref(), cx.facts.caller.as_ref()) else {
        return Ok(());
    };
    let filtered = m.server(rt).is_some_and(|server| {
        [Subject::Tool, Subject::Prompt, Subject::Resource]
            .into_iter()
            .any(|subject| rules::filters(server, subject, caller))
    });
    if filtered && m.resumes {
        cx.host
            .set_request_header("last-event-id", None)
            .map_err(|e| cx.host_failed(e))?;
    }
    Ok(())
}

/// A client's method, echoed in an error: short and printable.
fn clip_method(m: &str) -> String {
    m.chars().filter(char::is_ascii_graphic).take(16).collect()
}
