//! One request's path through the gateway: the steps of [`steps::PIPELINE`] (strip,
//! screen, authenticate, classify, await body, route, out of sight, guard, edit, admit,
//! forward), each one job in one file, run in order by one small executor, [`Flow`], which owns the state
//! between Envoy's callbacks: waiting for the body, or for a step's callout (a key
//! refetch, the policy service's decision). Any step may answer the request itself
//! instead, in the error shape of the API called. The response side counts what comes
//! back ([`count`]) and writes the one usage record ([`record`]).

mod count;
mod facts;
#[cfg(test)]
mod guard_service_tests;
#[cfg(test)]
mod guard_tests;
// Response guardrails (guard-answers branch).
mod guard_answer;
mod guard_answer_service;
#[cfg(test)]
mod guard_answer_service_tests;
#[cfg(test)]
mod guard_answer_tests;
mod mcp_answer;
#[cfg(test)]
mod mcp_tests;
pub mod otlp;
#[cfg(test)]
mod otlp_tests;
mod record;
mod step;
mod steps;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod unheld_tests;

use std::cell::RefCell;
use std::ops::ControlFlow;
use std::rc::Rc;

use crate::accounting::meter::Accounting;
use crate::auth_state::AuthState;
use crate::host::{Counter, Host};
use crate::providers::reply::{self, Reply};
use crate::providers::request_body::{self, Body};
use crate::runtime::Runtime;
use facts::Facts;
pub use facts::{Caller, Decision};
use step::{Cx, Go};
use steps::PIPELINE;
pub use steps::{GUARDRAIL_BLOCKED, GUARDRAIL_UNAVAILABLE};

/// Header carrying the anonymous user id to an internal provider (see `Provider::internal`).
pub const USER_HEADER: &str = "x-chokepoint-user";
/// Headers carrying the caller's tenant, groups and cost centre to an internal provider,
/// when the token names them.
pub const TENANT_HEADER: &str = "x-chokepoint-tenant";
pub const GROUPS_HEADER: &str = "x-chokepoint-groups";
pub const COST_CENTER_HEADER: &str = "x-chokepoint-cost-center";
/// Header naming the Envoy cluster of the chosen provider (a `cluster_header` route).
pub const CLUSTER_HEADER: &str = "x-chokepoint-cluster";
/// Response header with the gateway's id for the request, for support and audit.
pub const REQUEST_ID_HEADER: &str = "x-chokepoint-request-id";
/// Filter state holding the usage record (`%FILTER_STATE(wasm.chokepoint_usage:PLAIN)%`).
pub const USAGE_FILTER_STATE: &str = "chokepoint_usage";

/// What the host should do with the stream after a callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Continue,
    Pause,
}

/// Where the request stands between Envoy's callbacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// No headers yet.
    Start,
    /// Waiting for the whole body; then the steps go on from step `at`.
    Body { at: usize },
    /// Waiting for callout `call`, which step `at` started.
    Call { at: usize, call: u32 },
    /// Every step ran: the request is on its way upstream.
    Forwarded,
    /// A local reply was sent; nothing more happens to this request.
    Replied,
}

pub struct Flow {
    rt: Rc<Runtime>,
    auth: Rc<RefCell<AuthState>>,
    state: State,
    facts: Facts,
    accounting: Option<Accounting>,
    /// The body's full size, when it all arrived while a callout was out.
    body_done: Option<usize>,
    /// The body was read (and scanned) by the steps.
    body_read: bool,
    /// How an MCP answer's body is handled.
    mcp_answer: Option<mcp_answer::McpAnswer>,
    /// How the response guardrails judge the answer, while they do.
    answer_guard: Option<guard_answer::AnswerGuard>,
}

impl Flow {
    pub fn new(rt: Rc<Runtime>, auth: Rc<RefCell<AuthState>>) -> Flow {
        Flow {
            rt,
            auth,
            state: State::Start,
            facts: Facts::default(),
            accounting: None,
            body_done: None,
            body_read: false,
            mcp_answer: None,
            answer_guard: None,
        }
    }

    pub fn on_request_headers(&mut self, host: &mut dyn Host, end_of_stream: bool) -> Next {
        if self.state != State::Start {
            return Next::Continue;
        }
        self.facts.start_ms = host.now_ms();
        self.facts.request_id = host.random_id();
        self.facts.asked.has_body = !end_of_stream;
        self.run(host, 0, None)
    }

    pub fn on_request_body(
        &mut self,
        host: &mut dyn Host,
        body_size: usize,
        end_of_stream: bool,
    ) -> Next {
        let waiting = match self.state {
            State::Body { .. } => true,
            State::Call { .. } => !self.body_read,
            _ => false,
        };
        if !waiting {
            return Next::Continue;
        }
        let max = self.rt.config.max_request_body_bytes;
        if body_size > max {
            host.count(Counter::BadRequest);
            self.reply(host, &reply::payload_too_large(max));
            return Next::Pause;
        }
        if !end_of_stream {
            // Envoy keeps buffering until the whole body is there.
            return Next::Pause;
        }
        match self.state {
            State::Body { at } => self.read_body(host, at, body_size),
            _ => {
                // The callout out goes first; the steps read the body after it.
                self.body_done = Some(body_size);
                Next::Pause
            }
        }
    }

    /// A callout answered (or failed: `status` is `None`).
    pub fn on_callout_response(
        &mut self,
        host: &mut dyn Host,
        call: u32,
        status: Option<u32>,
        body: &[u8],
    ) {
        let State::Call { at, call: expected } = self.state else {
            // No step waits: a response guardrail's call, if any.
            return self.answer_callout(host, call, status, body);
        };
        if expected != call {
            return;
        }
        let Some(step) = PIPELINE.get(at) else {
            return;
        };
        let bytes = match self.body_again(host, at) {
            Ok(bytes) => bytes,
            Err(r) => return self.reply(host, &r),
        };
        let scanned = match bytes.as_deref().map(request_body::scan).transpose() {
            Ok(scanned) => scanned,
            Err(e) => {
                host.count(Counter::BadRequest);
                return self.reply(host, &reply::bad_request("invalid_body", &e.message()));
            }
        };
        let seen = scanned.as_ref();
        let result = step.answered(&mut self.cx(host, seen), status, body);
        let next = match self.after(host, at, result, seen) {
            ControlFlow::Continue(at) => self.run(host, at, seen),
            ControlFlow::Break(next) => next,
        };
        // The headers were held for the callout: let them go if the steps are done.
        if next == Next::Continue && host.resume_request().is_err() {
            host.count(Counter::HostFailure);
        }
    }

    /// The body again, after a callout step `at` started, when a later step reads it: the
    /// steps see a scanned body only in the callback that read it, and Envoy still holds
    /// it while the request is paused. (A model request's only: an MCP message was kept
    /// as read.) `None` when no later step reads it, as for the policy service's call.
    fn body_again(&mut self, host: &mut dyn Host, at: usize) -> Result<Option<Vec<u8>>, Reply> {
        let later = PIPELINE.get(at + 1..).unwrap_or_default();
        if !self.body_read || self.facts.mcp.is_some() || !later.iter().any(|s| s.reads_body()) {
            return Ok(None);
        }
        match host.request_body(self.facts.body_bytes) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) => Err(self.cx(host, None).host_failed(e)),
        }
    }

    /// Runs the steps from `at` until one waits or answers, or all have run.
    fn run(&mut self, host: &mut dyn Host, mut at: usize, body: Option<&Body<'_>>) -> Next {
        loop {
            let Some(step) = PIPELINE.get(at) else {
                self.state = State::Forwarded;
                return Next::Continue;
            };
            let result = step.run(&mut self.cx(host, body));
            match self.after(host, at, result, body) {
                ControlFlow::Continue(next) => at = next,
                ControlFlow::Break(next) => return next,
            }
        }
    }

    /// Where the request goes after step `at`: the index of the next step to run, or what
    /// to tell the host now.
    fn after(
        &mut self,
        host: &mut dyn Host,
        at: usize,
        result: Result<Go, Reply>,
        body: Option<&Body<'_>>,
    ) -> ControlFlow<Next, usize> {
        match result {
            Ok(Go::Next) => ControlFlow::Continue(at + 1),
            Ok(Go::Forward) => ControlFlow::Continue(PIPELINE.len() - 1),
            Ok(Go::Body) if body.is_some() || !self.facts.asked.has_body => {
                ControlFlow::Continue(at + 1)
            }
            Ok(Go::Body) => match self.body_done {
                Some(size) => ControlFlow::Break(self.read_body(host, at + 1, size)),
                None => {
                    // Envoy buffers the body meanwhile, behind the headers if they are
                    // held, or as it arrives if they already left.
                    self.state = State::Body { at: at + 1 };
                    ControlFlow::Break(if self.facts.headers_gone {
                        Next::Continue
                    } else {
                        Next::Pause
                    })
                }
            },
            Ok(Go::Call(call)) => {
                self.state = State::Call { at, call };
                ControlFlow::Break(Next::Pause)
            }
            Err(r) => {
                self.reply(host, &r);
                ControlFlow::Break(Next::Pause)
            }
        }
    }

    /// The whole body is there: read and scanned once, then the steps from `at` see it.
    fn read_body(&mut self, host: &mut dyn Host, at: usize, size: usize) -> Next {
        self.body_read = true;
        let max = self.rt.config.max_request_body_bytes;
        if size > max {
            host.count(Counter::BadRequest);
            self.reply(host, &reply::payload_too_large(max));
            return Next::Pause;
        }
        let bytes = match host.request_body(size) {
            Ok(bytes) => bytes,
            Err(e) => {
                let r = self.cx(host, None).host_failed(e);
                self.reply(host, &r);
                return Next::Pause;
            }
        };
        if let Some(m) = self.facts.mcp.as_mut() {
            // An MCP message is read as JSON-RPC (see `mcp_policy`), never as a model
            // request: the steps see no provider fields.
            m.parsed = Some(crate::mcp::message::parse(&bytes));
            if m.aggregate {
                m.raw = Some(bytes.clone());
            }
        }
        let scanned = match request_body::scan(if self.facts.mcp.is_some() {
            &[]
        } else {
            &bytes
        }) {
            Ok(scanned) => scanned,
            Err(e) => {
                host.count(Counter::BadRequest);
                self.reply(host, &reply::bad_request("invalid_body", &e.message()));
                return Next::Pause;
            }
        };
        self.facts.body_bytes = size;
        self.facts.stream |= scanned.fields.stream;
        self.run(host, at, Some(&scanned))
    }

    fn cx<'a>(&'a mut self, host: &'a mut dyn Host, body: Option<&'a Body<'a>>) -> Cx<'a> {
        Cx {
            host,
            rt: &self.rt,
            auth: &self.auth,
            facts: &mut self.facts,
            accounting: &mut self.accounting,
            body,
        }
    }

    fn reply(&mut self, host: &mut dyn Host, r: &Reply) {
        self.state = State::Replied;
        self.facts.decision = Decision::of_reply(r);
        let mut r = match self.facts.mcp.as_mut().filter(|m| !m.metadata) {
            Some(m) => {
                let (shaped, code) = mcp_shape(&self.rt, m, r);
                m.outcome.rpc_error = code;
                m.bytes_out = shaped.body.len() as u64;
                shaped
            }
            None => r.clone().in_shape_of(self.facts.shape),
        };
        self.facts.replied = Some(r.status);
        if !self.facts.request_id.is_empty() {
            r.headers
                .push((REQUEST_ID_HEADER, self.facts.request_id.clone()));
        }
        if host.send_reply(&r).is_err() {
            host.count(Counter::HostFailure);
        }
    }
}

/// A refusal of an MCP request, as MCP clients read it (see `mcp::reply`).
fn mcp_shape(rt: &Runtime, m: &facts::McpFacts, r: &Reply) -> (Reply, Option<i64>) {
    let metadata_url = rt.config.mcp.as_ref().map_or_else(String::new, |c| {
        crate::mcp::path::metadata_url(c, m.server(rt).map(|s| s.name.as_str()))
    });
    let data = m.denied_by.as_ref().map(|rule| {
        serde_json::json!({"policy": rule, "reason": crate::mcp::reply::TOOL_DENIED}).to_string()
    });
    crate::mcp::reply::shape(r, m.rpc_id.as_deref(), &metadata_url, data)
}

/// The request path's steps by name, in order (logged when a configuration loads).
pub fn pipeline() -> Vec<&'static str> {
    PIPELINE.iter().map(|s| s.name()).collect()
}

/// Queues unused lease slots for release, with the usage records (a JSON string each).
pub fn release_slots(host: &mut dyn Host, slots: &[String]) {
    for slot in slots {
        let Ok(json) = serde_json::to_vec(slot) else {
            continue;
        };
        if !host.enqueue_usage(&json) {
            host.count(Counter::UsageQueueFailure);
        }
    }
}

/// The aggregate cluster of a fallback chain, by convention (the bootstrap defines it).
pub fn chain_cluster(providers: &[&str]) -> String {
    format!("chain_{}", providers.join("__"))
}
