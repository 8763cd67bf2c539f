//! What MCP requests add to the wire: the server and tool an authorization is for
//! ([`McpScope`], in `AuthorizeRequest.mcp`), and what a usage record says about one
//! JSON-RPC exchange ([`McpUsage`], in `UsageRecord.mcp`). Names and outcomes only: never
//! a tool's arguments or results, a prompt or a resource's contents.

use serde::{Deserialize, Serialize};

use crate::defaults::or_default;
#[cfg(test)]
use crate::{bounds::*, schema_tests::*};

/// The MCP server (and tool) a request calls: the policy service checks the caller's
/// `mcp_server:` and `mcp_tool:` limits, and no model, user or budget scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(deserialize = "S: Deserialize<'de>"))]
#[cfg_attr(
    test,
    derive(schemars::JsonSchema),
    schemars(rename = "McpScope", bound = "S: schemars::JsonSchema")
)]
pub struct McpScope<S = String> {
    /// The server's name in the policy file (`mcp.servers[].name`).
    #[cfg_attr(test, schemars(length(min = 1, max = MAX_NAME_BYTES), pattern(NOT_BLANK)))]
    pub server: S,
    /// The tool a `tools/call` names; absent for every other request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, schemars(length(min = 1, max = MAX_NAME_BYTES), pattern(NOT_BLANK)))]
    pub tool: Option<S>,
}

/// One MCP exchange, as its usage record tells it (the record's `format` is `mcp`, its
/// tokens and cost zero).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(deserialize = "S: Deserialize<'de>"))]
#[cfg_attr(
    test,
    derive(schemars::JsonSchema),
    schemars(rename = "McpUsage", bound = "S: schemars::JsonSchema")
)]
pub struct McpUsage<S = String> {
    #[cfg_attr(test, schemars(length(min = 1, max = MAX_NAME_BYTES), pattern(NOT_BLANK)))]
    pub server: S,
    /// The JSON-RPC method (`tools/call`, `initialize`, `notifications/initialized`);
    /// `response` for the client's answer to a server's request; `GET` for the listening
    /// stream, `DELETE` for the end of a session.
    #[cfg_attr(test, schemars(length(min = 1, max = MAX_NAME_BYTES)))]
    pub method: S,
    /// The tool or prompt a call names, or the resource URI it reads (cut to 256 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, schemars(length(max = MAX_NAME_BYTES)))]
    pub name: Option<S>,
    /// The JSON-RPC error code the answer carried (the server's, or the gateway's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpc_error: Option<i64>,
    /// A `tools/call` the tool itself failed (`isError: true` in its result).
    #[serde(
        default,
        deserialize_with = "or_default",
        skip_serializing_if = "is_false"
    )]
    pub tool_error: bool,
    /// The request body's bytes, as the client sent them.
    #[serde(default, deserialize_with = "or_default")]
    pub bytes_in: u64,
    /// The response body's bytes, as the client got them.
    #[serde(default, deserialize_with = "or_default")]
    pub bytes_out: u64,
}

fn is_false(b: &bool) -> bool {
    !*b
}
