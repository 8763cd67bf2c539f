//! A server's OAuth 2.0 Protected Resource Metadata (RFC 9728 section 2), which MCP
//! clients read to find where to get a token for it (MCP authorization, "Authorization
//! Server Discovery"): the resource is the server's URL on the gateway, the
//! authorization servers the company's issuers, tokens sent in the header only.

use serde::Serialize;

use super::config::McpConfig;
use super::path;

#[derive(Serialize)]
struct Document<'a> {
    resource: String,
    authorization_servers: Vec<&'a str>,
    bearer_methods_supported: [&'static str; 1],
    resource_name: String,
}

pub fn document(mcp: &McpConfig, server: Option<&str>, issuers: &[&str]) -> String {
    serde_json::to_string(&Document {
        resource: path::resource(mcp, server),
        authorization_servers: issuers.to_vec(),
        bearer_methods_supported: ["header"],
        resource_name: match server {
            Some(name) => format!("{name} (MCP through chokepoint)"),
            None => "every MCP server through chokepoint".to_string(),
        },
    })
    .unwrap_or_default()
}
