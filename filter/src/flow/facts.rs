//! What one request accumulates on its way through the steps: who called, what was asked,
//! where it goes, what was decided. The usage record is written from it.

use crate::accounting::pricing::Price;
use crate::admission::authorize::Quota;
use crate::providers::api::{Api, Endpoint};
use crate::providers::reply::Reply;

/// The verified caller, as the rest of the request needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user: String,
    pub tenant: Option<String>,
    pub groups: Vec<String>,
    pub cost_center: Option<String>,
    pub request_id: String,
}

/// What became of the request, for its record and stats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Decision {
    /// Nothing decided yet (a request that ends here ended in an error).
    #[default]
    Undecided,
    /// Admitted and sent to a provider.
    Allowed,
    /// Sent to a provider while the policy service was unreachable (`fail_open`).
    AllowedFailOpen,
    /// The gateway answered itself; the class of its answer.
    Answered(&'static str),
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Undecided => "error",
            Decision::Allowed => "allowed",
            Decision::AllowedFailOpen => "allowed_fail_open",
            Decision::Answered(class) => class,
        }
    }

    /// Whether the request reached a provider, and so is charged.
    pub fn forwarded(self) -> bool {
        matches!(self, Decision::Allowed | Decision::AllowedFailOpen)
    }

    /// The class of a local reply.
    pub fn of_reply(r: &Reply) -> Decision {
        Decision::Answered(match r.status {
            200 | 202 | 204 => "answered",
            401 => "unauthenticated",
            403 => "forbidden",
            429 => "denied",
            404 => "not_found",
            400 if r
                .error
                .as_ref()
                .is_some_and(|e| e.code == crate::flow::GUARDRAIL_BLOCKED) =>
            {
                "guardrail_blocked"
            }
            400 | 405 | 413 | 415 => "invalid",
            503 if r
                .error
                .as_ref()
                .is_some_and(|e| e.code == crate::flow::GUARDRAIL_UNAVAILABLE) =>
            {
                "guardrail_unavailable"
            }
            503 if r
                .error
                .as_ref()
                .is_some_and(|e| e.code == "jwks_unavailable") =>
            {
                "unauthenticated"
            }
            503 => "policy_unavailable",
            _ => "error",
        })
    }
}

/// What the request's headers said, kept until the steps that need it have run.
#[derive(Debug, Default)]
pub struct Asked {
    /// The token the client sent (or why none could be read); taken by `authenticate`.
    pub token: Option<Result<String, crate::identity::jwt::AuthError>>,
    /// A body follows the headers.
    pub has_body: bool,
    /// Its `content-type` is not JSON.
    pub not_json: bool,
    /// It is compressed (`content-encoding` other than identity).
    pub encoded: bool,
    /// The `alt` response format asked for cannot be read (see `api::clean_query`).
    pub unreadable_format: bool,
    /// The client's `x-request-id`, if it is one the record can keep.
    pub trace_id: String,
    /// The model the path names (Gemini, Azure).
    pub path_model: Option<String>,
}

/// What the usage record needs to know about the request, gathered on the way.
#[derive(Debug, Default)]
pub struct Facts {
    pub request_id: String,
    pub trace_id: String,
    /// The calling tool and its session, for the record only (see `attribution`).
    pub client: Option<String>,
    pub session: Option<String>,
    pub start_ms: u64,
    pub asked: Asked,
    pub endpoint: Option<Endpoint>,
    /// Whose error shape the gateway's own replies take.
    pub shape: Api,
    /// The request's `:method`.
    pub method: String,
    pub provider: Option<usize>,
    pub caller: Option<Caller>,
    pub model: Option<String>,
    /// The model to write into the body, when routing changed the one the client named.
    pub rewrite_model: Option<String>,
    /// What ledgers and limits key the model under (see `Config::model_key`).
    pub model_key: Option<String>,
    /// The model has a price (or its endpoint no usage).
    pub priced: bool,
    /// The model's price, when it has one.
    pub price: Option<Price>,
    /// The most output the request may produce: its cap times its outputs (the
    /// reservation's output part), bounding any estimate of an interrupted answer.
    pub output_bound: u64,
    /// The model named in the path (Gemini, Azure), when the API puts it there.
    pub path_model: Option<String>,
    /// The `:path` as it goes upstream (the client's, less what `strip` took out).
    pub upstream_path: String,
    /// The route's providers for this API, in fallback order (the first is `provider`).
    pub chain: Vec<usize>,
    /// The caller's quota from the policy service, returned as `x-ratelimit-*` headers.
    pub quota: Option<Quota>,
    /// The lease slot this request was admitted on (its reservation), if any.
    pub reservation_id: Option<String>,
    /// The worst case asked of the policy service: (tokens, cost), what a lease's slots
    /// then reserve each.
    pub reserve: (u64, u64),
    /// This request's decision asks for a lease (the caller's one ask out).
    pub asked_lease: bool,
    /// The lease slots its decision asked for (0 or 1: none), asked again on a retry.
    pub lease_ask: u64,
    /// Its decision was asked a second time after the first callout got no answer.
    pub policy_retried: bool,
    pub stream: bool,
    /// The headers went upstream before the body was read (`Config::hold_headers` off):
    /// nothing may change them, or the provider, any more.
    pub headers_gone: bool,
    pub body_bytes: usize,
    /// Status of the gateway's own reply, when it answered instead of the provider.
    pub replied: Option<u32>,
    pub decision: Decision,
    /// The record is written (or, in identity-only mode, never will be).
    pub logged: bool,
    /// An MCP request's own facts; `None` for a model request.
    pub mcp: Option<McpFacts>,
    /// What the guardrails found and did (see `guard`), for the record: at most
    /// `MAX_GUARD_VERDICTS`.
    pub guardrails: Vec<chokepoint_contract::GuardVerdict>,
    /// The body with the guardrails' masks in it, for `edit` to edit and send instead.
    pub masked_body: Option<Vec<u8>>,
    /// A response guardrail refused the answer (see `guard_answer`): the record's decision
    /// (`guardrail_blocked`, or `guardrail_unavailable` when a service failing closed
    /// could not judge it). The client got the error, while the provider's usage is
    /// still charged.
    pub answer_blocked: Option<&'static str>,
    /// The guardrail service call out now: the check's index and what was sent.
    pub guard_call: Option<(usize, crate::guardrails::service::Pending)>,
}

/// What an MCP request adds: the server, the JSON-RPC message, and what its answer needs.
#[derive(Debug, Default)]
pub struct McpFacts {
    /// The server's index in `mcp.servers`; `None` at the aggregate endpoint `/mcp` until
    /// a call names its server.
    pub server: Option<usize>,
    /// The request is for the aggregate endpoint `/mcp`, which serves every server.
    pub aggregate: bool,
    /// The request is for the server's protected resource metadata, not the server.
    pub metadata: bool,
    /// The `Mcp-Session-Id` the client sent: sealed to its user (see `mcp::session`).
    pub session: Option<String>,
    /// The client resumes a stream (`Last-Event-ID`).
    pub resumes: bool,
    /// The `Origin` a browser sent, if any.
    pub origin: Option<String>,
    /// The headers that mirror the body (MCP 2026-07-28), as sent.
    pub mirrored: crate::mcp::headers::Mirrored,
    /// The POST body as read, parsed (or why it could not be), until `mcp_policy` takes it.
    pub parsed: Option<Result<crate::mcp::message::Message, crate::mcp::error::RpcError>>,
    /// The POST body's message, once checked.
    pub message: Option<crate::mcp::message::Message>,
    /// The request's JSON-RPC id (its JSON text), for the gateway's own errors.
    pub rpc_id: Option<String>,
    /// The rule that refused the message's tool, prompt or resource.
    pub denied_by: Option<String>,
    /// The request body as sent, at the aggregate endpoint (a call's tool is renamed).
    pub raw: Option<Vec<u8>>,
    /// The aggregate endpoint's calls to the servers under way.
    pub fanout: Option<Fanout>,
    /// The answer's list is filtered for the caller.
    pub filter_list: Option<crate::mcp::lists::ListKind>,
    /// What the answer said, for the record.
    pub outcome: crate::mcp::outcome::Outcome,
    /// Entries the gateway took out of the answer's list.
    pub removed: usize,
    /// Response body bytes the client got.
    pub bytes_out: u64,
    /// The server's status (or Envoy's, when it could not reach it).
    pub status: Option<u32>,
    /// When the answer's first body bytes came, and that its end came.
    pub first_byte_ms: Option<u64>,
    pub ended: bool,
}

impl McpFacts {
    /// The server the request goes to, once known.
    pub fn server<'a>(
        &self,
        rt: &'a crate::runtime::Runtime,
    ) -> Option<&'a crate::mcp::config::McpServer> {
        rt.config.mcp.as_ref()?.servers.get(self.server?)
    }

    /// The server's name for records and limits: `*` for the aggregate endpoint's own
    /// answers.
    pub fn server_name<'a>(&self, rt: &'a crate::runtime::Runtime) -> &'a str {
        self.server(rt)
            .map_or(crate::mcp::path::AGGREGATE_NAME, |s| s.name.as_str())
    }

    /// The record's method: the JSON-RPC method, `response` for the client's answer to a
    /// server's request, or the HTTP method of a bodiless request (`GET`, `DELETE`).
    pub fn method<'a>(&'a self, http_method: &'a str) -> &'a str {
        match &self.message {
            Some(m) => m.method.as_deref().unwrap_or("response"),
            None => http_method,
        }
    }
}

/// The aggregate endpoint asking its servers, one call at a time: for a list, every
/// server in turn; for a call, the session with the one server it goes to.
#[derive(Debug)]
pub struct Fanout {
    /// The server asked now (its index).
    pub at: usize,
    pub phase: Phase,
    /// A `tools/list` (else a `tools/call` waiting for its session).
    pub listing: bool,
    /// Each server's tools so far.
    pub lists: Vec<(String, Vec<serde_json::Value>)>,
    /// The server forgot the session once already in this request.
    pub reopened: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    Initialize,
    Initialized,
    List { page: usize },
}
