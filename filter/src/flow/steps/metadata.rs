//! Metadata: an MCP server's protected resource metadata (RFC 9728) is public: MCP
//! clients read it before they have a token, to learn where to get one. Answered here,
//! from configuration, before anything asks who is calling.

use crate::flow::step::{Cx, Go, Step};
use crate::mcp::metadata;
use crate::providers::reply::{self, Reply};

pub struct Metadata;

impl Step for Metadata {
    fn name(&self) -> &'static str {
        "metadata"
    }

    fn run(&self, cx: &mut Cx<'_>) -> Result<Go, Reply> {
        let Some(m) = cx.facts.mcp.as_ref().filter(|m| m.metadata) else {
            return Ok(Go::Next);
        };
        let cfg = &cx.rt.config;
        let (Some(mcp), method) = (&cfg.mcp, cx.facts.method.as_str()) else {
            return Err(reply::internal("no_mcp"));
        };
        if method != "GET" && method != "HEAD" {
            let mut r = reply::error(
                405,
                "invalid_request_error",
                "method_not_allowed",
                "The protected resource metadata is read with GET.",
            );
            r.headers.push(("allow", "GET".into()));
            return Err(r);
        }
        let name = m.server(cx.rt).map(|s| s.name.as_str());
        let issuers: Vec<&str> = cfg.issuers.iter().map(|i| i.issuer.as_str()).collect();
        Err(Reply {
            status: 200,
            headers: vec![
                ("content-type", "application/json".into()),
                // Public, and the same for everyone: caches may keep it a while.
                ("cache-control", "public, max-age=300".into()),
            ],
            body: metadata::document(mcp, name, &issuers),
            error: None,
        })
    }
}
