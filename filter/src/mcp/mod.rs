//! MCP through the gateway: each configured server at `/mcp/<name>`, and all of them at
//! `/mcp`, spoken to in MCP's Streamable HTTP transport. What the request path needs to
//! know of the protocol lives here: the JSON-RPC message a client sends, the headers that
//! must agree with it, the per-tool rules, the lists the gateway filters, the outcomes it
//! records, the sessions it seals and the aggregate endpoint's own answers.

pub mod aggregate;
pub mod config;
pub mod error;
pub mod headers;
mod json;
pub mod lists;
pub mod message;
pub mod metadata;
pub mod outcome;
pub mod path;
pub mod reply;
pub mod rules;
pub mod session;
pub mod sse;
pub mod upstream;

#[cfg(test)]
mod fixtures;
