//! Classify: what the caller asks for, from the path: an endpoint the gateway serves, with
//! the method it allows, and a provider configured for its API. The model list is answered
//! here from the route table; in identity-only mode the request goes straight on.

use crate::accounting::meter::Accounting;
use crate::accounting::sse::DEFAULT_MAX_EVENT_BYTES;
use crate::flow::step::{Cx, Go, Step};
use crate::providers::api;
use crate::providers::registry;
use crate::providers::reply::{self, Reply};

pub struct Classify;

impl Step for Classify {
    fn name(&self) -> &'static str {
        "classify"
    }

    fn run(&self, cx: &mut Cx<'_>) -> Result<Go, Reply> {
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

/// A client's method, echoed in an error: short and printable.
fn clip_method(m: &str) -> String {
    m.chars().filter(char::is_ascii_graphic).take(16).collect()
}
