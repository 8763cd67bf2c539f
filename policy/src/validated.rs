//! What the core takes from the API: the contract's authorize request and usage record
//! once the API has checked them (see `api::authorize` and `api::usage`), in the
//! service's own terms (a canonical user id, counts within their bounds).

use crate::user_id::UserId;

/// A validated authorize request.
///
/// The user, tenant, cost centre and model key (else model) name the scopes whose
/// limits apply; groups, provider and stream are part of the contract with the filter
/// and are type-checked so a filter bug shows up as a 400. Scope names are taken as
/// they come (blank names no scope) but bounded (see `fields`): the filter refuses an
/// over-long model name itself, before any decision, so a client cannot make this call
/// fail and hand the request to the filter's failure mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizeRequest {
    pub request_id: String,
    pub user: UserId,
    pub tenant: Option<String>,
    pub groups: Vec<String>,
    pub cost_center: Option<String>,
    /// The model the client asked for, for messages.
    pub model: Option<String>,
    /// What the model scope keys on when present (contract C3): a model of the policy,
    /// a price pattern or `other`, so client-chosen names make no keys of their own.
    pub model_key: Option<String>,
    /// False: the filter has no price for the model, so its cost reads 0. Such a request
    /// is refused under any dollar budget that applies (see authorize.lua).
    pub priced: bool,
    pub provider: Option<String>,
    pub stream: bool,
    /// The request's worst-case tokens (input estimate plus its output cap), capped at
    /// 2^53: a larger reservation than any budget can hold is denied all the same.
    pub reserve_tokens: u64,
    /// The same, priced by the filter, in micro-dollars (0 when unpriced).
    pub reserve_cost_micros: u64,
    /// Lease slots wanted (0 or 1: none), capped at
    /// [`MAX_LEASE_SLOTS`](chokepoint_contract::bounds::MAX_LEASE_SLOTS).
    pub lease_slots: u64,
    /// With a lease: within how many ms the filter gives its unused slots back at the
    /// latest (0: unknown), capped at
    /// [`MAX_LEASE_RETURN_MS`](chokepoint_contract::bounds::MAX_LEASE_RETURN_MS). Only
    /// advisory: a denial that the caller's unused slots alone cause says to retry then.
    pub lease_return_ms: u64,
    /// An MCP request: only its server's (and tool's) limits apply, for this user.
    pub mcp: Option<McpScope>,
}

/// The MCP server and tool an authorize request is for, checked: the server a name of
/// `mcp.servers[]` (`[a-z0-9-]`, at most 64 bytes), the tool a name within its bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpScope {
    pub server: String,
    pub tool: Option<String>,
}

/// One proxied request's usage, validated.
///
/// Token counts and cost absent or null are zero. The other optional fields are not
/// booked; they are type-checked and bounded so a filter bug shows up as a dead letter,
/// and otherwise live in `raw`, the record as received, which is what the audit log
/// keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRecord {
    pub request_id: String,
    /// The lease slot the request was admitted on (see authorize.lua, "Leases"), whose
    /// reservation this record releases; `None`: the request's own.
    pub reservation_id: Option<String>,
    pub user: UserId,
    pub tenant: Option<String>,
    pub groups: Vec<String>,
    pub cost_center: Option<String>,
    /// The model the client asked for; the audit trail keeps it (in `raw`).
    pub model: Option<String>,
    /// What the ledger books the model as when present (contract C3): a model of the
    /// policy, a price pattern or `other`.
    pub model_key: Option<String>,
    pub provider: Option<String>,
    pub format: Option<String>,
    pub stream: bool,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_input_tokens: u64,
    pub reasoning_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cost_micros: u64,
    /// The counts were estimated (the provider reported none, e.g. a cut-off stream).
    pub estimated: bool,
    pub status: Option<u32>,
    pub decision: Option<String>,
    pub latency_ms: Option<u64>,
    pub ttft_ms: Option<u64>,
    pub completed: Option<bool>,
    /// When the request happened, by the filter's clock: picks the ledger day.
    pub ts_ms: Option<u64>,
    /// An MCP exchange (no tokens, no cost, no model): counted per user, server and
    /// tool instead of booked against any scope (see `ledger`).
    pub mcp: Option<McpUsage>,
    /// The calling tool, from the record's `client` (see `client_tools::tool_name`).
    pub client_tool: Option<String>,
    /// The record exactly as the filter sent it (its JSON text), unknown fields included.
    pub raw: String,
}

/// What an MCP record says about its exchange, checked: the server as for
/// [`McpScope`], the method and name within their bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpUsage {
    pub server: String,
    /// The JSON-RPC method, `response`, `GET` or `DELETE`.
    pub method: String,
    /// The tool or prompt called, or the resource read.
    pub name: Option<String>,
    pub rpc_error: Option<i64>,
    pub tool_error: bool,
}

impl McpUsage {
    /// The tool a `tools/call` named: what the per-tool counts key on.
    pub fn tool(&self) -> Option<&str> {
        self.name
            .as_deref()
            .filter(|name| self.method == "tools/call" && !name.trim().is_empty())
    }

    /// The exchange failed: a JSON-RPC error, or a tool that reported one.
    pub fn failed(&self) -> bool {
        self.rpc_error.is_some() || self.tool_error
    }
}
