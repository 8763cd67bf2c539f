//! Which MCP path a request is for: a server's endpoint (`/mcp/<name>`) or its protected
//! resource metadata (`/.well-known/oauth-protected-resource/mcp/<name>`, RFC 9728
//! section 3.1: the well-known prefix inserted before the resource's path).

use super::config::McpConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct McpPath {
    /// The server (its index in the configuration); `None`: the aggregate endpoint `/mcp`.
    pub server: Option<usize>,
    /// The path is the metadata document's, not the endpoint's.
    pub metadata: bool,
}

pub const AGGREGATE_PATH: &str = "/mcp";
pub const ENDPOINT_PREFIX: &str = "/mcp/";
pub const METADATA_PATH: &str = "/.well-known/oauth-protected-resource/mcp";
/// What the records and limits call the aggregate endpoint's own answers.
pub const AGGREGATE_NAME: &str = "*";

/// The path's MCP meaning, if any. The query is not part of the match (and is never sent
/// upstream: a server's path is its configured one).
pub fn classify(path: &str, mcp: &McpConfig) -> Option<McpPath> {
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    let (rest, metadata) = match path.strip_prefix(METADATA_PATH) {
        Some(rest) => (rest, true),
        None => (path.strip_prefix(AGGREGATE_PATH)?, false),
    };
    let server = match rest {
        "" => None,
        _ => Some(mcp.server(rest.strip_prefix('/')?)?.0),
    };
    Some(McpPath { server, metadata })
}

/// A server's resource identifier: the URL its clients use (`None`: the aggregate
/// endpoint).
pub fn resource(mcp: &McpConfig, server: Option<&str>) -> String {
    match server {
        Some(name) => format!("{}{ENDPOINT_PREFIX}{name}", mcp.public_url),
        None => format!("{}{AGGREGATE_PATH}", mcp.public_url),
    }
}

/// Where the server's metadata document is.
pub fn metadata_url(mcp: &McpConfig, server: Option<&str>) -> String {
    match server {
        Some(name) => format!("{}{METADATA_PATH}/{name}", mcp.public_url),
        None => format!("{}{METADATA_PATH}", mcp.public_url),
    }
}
