//! Edit: the body as the provider gets it: the routed model name, a stream's usage asked
//! for where the API reports it only when asked, the pseudonymous end user, and the
//! gateway's default output cap where the request sets none. Only the members it changes
//! are rewritten, in the body as the guardrails masked it when they did.

use crate::admission::output_bound;
use crate::flow::step::{Cx, Go, Step};
use crate::providers::api::Endpoint;
use crate::providers::reply::{self, Reply};
use crate::providers::request_body::{self, Edits};

pub struct Edit;

impl Step for Edit {
    fn name(&self) -> &'static str {
        "edit"
    }

    fn reads_body(&self) -> bool {
        true
    }

    fn run(&self, cx: &mut Cx<'_>) -> Result<Go, Reply> {
        let Some(sent) = cx.body.filter(|_| cx.facts.mcp.is_none()) else {
            // An MCP message goes as the client sent it.
            return Ok(Go::Next);
        };
        let masked = cx.facts.masked_body.take();
        let rescanned = match &masked {
            // Masks change strings only: what was read of the body stays.
            Some(m) => Some(request_body::scan(m).map_err(|_| reply::internal("guardrail_mask"))?),
            None => None,
        };
        let body = rescanned.as_ref().unwrap_or(sent);
        let cfg = &cx.rt.config;
        let fields = &body.fields;
        let endpoint = cx.facts.endpoint;
        let user = cx.facts.caller.as_ref().map(|c| c.user.as_str());
        let edits = Edits {
            model: cx.facts.rewrite_model.as_deref(),
            include_usage: endpoint.is_some_and(|e| e.api.spec().stream_usage_is_optional(e.op))
                && fields.stream,
            user: if cfg.attribution {
                endpoint.and_then(Endpoint::user_field).zip(user)
            } else {
                None
            },
            output_cap: match endpoint {
                Some(e) if cfg.enforce_output_cap && output_bound::cap(e, fields).is_none() => {
                    e.cap_field().map(|f| (f, cfg.default_max_output_tokens))
                }
                _ => None,
            },
        };
        let edited = body.edit(edits);
        drop(rescanned);
        if let Some(new_body) = edited.or(masked) {
            cx.host
                .set_request_body(&new_body)
                .map_err(|e| cx.host_failed(e))?;
            if !cx.facts.headers_gone {
                // Headers are still held, so the length can be fixed before they go (else
                // they left without one).
                let length = new_body.len().to_string();
                cx.host
                    .set_request_header("content-length", Some(&length))
                    .map_err(|e| cx.host_failed(e))?;
            }
        }
        Ok(Go::Next)
    }
}
