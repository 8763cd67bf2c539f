//! Strip: before anything reads or forwards what the client sent, its credentials for
//! any provider or for the gateway, the headers that pick accounts or reshape answers, and
//! the query parameters that carry keys or field masks are taken off. What the headers
//! say is kept for the steps after.

use crate::accounting::attribution;
use crate::flow::facts::McpFacts;
use crate::flow::step::{Cx, Go, Step};
use crate::identity::credentials;
use crate::identity::token_source;
use crate::mcp;
use crate::mcp::headers::Mirrored;
use crate::providers::api;
use crate::providers::apis;
use crate::providers::reply::Reply;
use crate::providers::request_body;

pub struct Strip;

/// Longest `x-request-id` kept for the record and the callouts. Envoy replaces a client's
/// own unless told to keep it (`preserve_external_request_id`); then it is the client's
/// string, and goes into every record and batch.
const MAX_TRACE_ID_BYTES: usize = 128;

impl Step for Strip {
    fn name(&self) -> &'static str {
        "strip"
    }

    fn run(&self, cx: &mut Cx<'_>) -> Result<Go, Reply> {
        let headers = cx.host.request_headers().map_err(|e| cx.host_failed(e))?;
        let cfg = &cx.rt.config;
        let mut path = "";
        let mut to_strip: Vec<&str> = Vec::new();
        let (mut anthropic_client, mut google_client) = (false, false);
        let token_headers: Vec<&str> = token_source::header_names(&cfg.token_sources).collect();
        let facts = &mut *cx.facts;
        let mut seen = attribution::Seen::default();
        let mut mirrored = Mirrored::default();
        let mut origin = None;
        let mut session = None;
        let mut resumes = false;
        for (name, value) in headers.iter() {
            seen.header(name, value);
            match name {
                "x-request-id" => facts.asked.trace_id = trace_id(value),
                "content-type" => facts.asked.not_json = !request_body::is_json_content_type(value),
                "content-encoding" => {
                    facts.asked.encoded |= !request_body::is_identity_encoding(value)
                }
                ":path" => path = value,
                ":method" => facts.method = value.to_owned(),
                "anthropic-version" => anthropic_client = true,
                "x-goog-api-client" => google_client = true,
                "mcp-protocol-version" => mirrored.protocol_version = Some(value.to_owned()),
                "mcp-method" => mirrored.method = Some(value.to_owned()),
                "mcp-name" => mirrored.name = Some(value.to_owned()),
                "origin" => origin = Some(value.to_owned()),
                "mcp-session-id" => session = Some(value.to_owned()),
                "last-event-id" => resumes = true,
                _ => {}
            }
            if (credentials::must_strip(name) || token_headers.contains(&name))
                && !to_strip.contains(&name)
            {
                to_strip.push(name);
            }
        }
        facts.client = seen.client();
        facts.session = seen.session();
        facts.asked.token =
            Some(token_source::find(&cfg.token_sources, &headers).map(str::to_owned));
        for name in &to_strip {
            cx.host
                .set_request_header(name, None)
                .map_err(|e| cx.host_failed(e))?;
        }
        let cleaned = api::clean_query(path);
        if let Ok(Some(stripped)) = &cleaned {
            cx.host
                .set_request_header(":path", Some(stripped))
                .map_err(|e| cx.host_failed(e))?;
        }
        let facts = &mut *cx.facts;
        facts.upstream_path = match &cleaned {
            Ok(Some(stripped)) => stripped.clone(),
            _ => path.to_owned(),
        };
        facts.asked.unreadable_format = cleaned.is_err();
        facts.endpoint = apis::classify(path);
        facts.mcp = cfg
            .mcp
            .as_ref()
            .and_then(|m| mcp::path::classify(path, m))
            .map(|p| McpFacts {
                server: p.server,
                aggregate: p.server.is_none(),
                metadata: p.metadata,
                mirrored,
                origin,
                session,
                resumes,
                ..McpFacts::default()
            });
        if facts.mcp.is_some() {
            facts.endpoint = None;
        }
        facts.shape = api::error_shape(facts.endpoint, path, anthropic_client, google_client);
        facts.asked.path_model = apis::model_in_path(path).map(str::to_owned);
        Ok(Go::Next)
    }
}

/// The `x-request-id` as the record keeps it: printable ASCII, at most
/// [`MAX_TRACE_ID_BYTES`]; anything else is not kept at all.
fn trace_id(value: &str) -> String {
    if value.len() <= MAX_TRACE_ID_BYTES && value.bytes().all(|b| b.is_ascii_graphic()) {
        value.to_string()
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_s_request_id_is_kept_only_when_short_and_printable() {
        let long = "a".repeat(129);
        let cases = [
            (
                "0b2f1c8e-37f4-4a57-9f0e-9d1b6c1a2b3c",
                "0b2f1c8e-37f4-4a57-9f0e-9d1b6c1a2b3c",
            ),
            (long.as_str(), ""),
            ("has space", ""),
            ("caf\u{e9}", ""),
            ("", ""),
        ];
        for (sent, kept) in cases {
            assert_eq!(trace_id(sent), kept, "{sent}");
        }
    }
}
