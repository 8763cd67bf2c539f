//! MCP through the gateway: each configured server at `/mcp/<name>`, spoken to in MCP's
//! Streamable HTTP transport. What the request path needs to know of the protocol lives
//! here: the JSON-RPC message a client sends, the headers that must agree with it, the
//! per-tool rules, the lists the gateway filters and the outcomes it records.

pub mod aggregate;
pub mod config;
pub mod error;
pub mod headers;
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
