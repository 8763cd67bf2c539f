//! Record: the exchange is over, however it ended; its one usage record goes to the
//! access log (filter state), the ledger (the outbox, for forwarded requests) and the
//! stats.

use std::rc::Rc;

use chokepoint_contract::Required;

use super::facts::Facts;
use super::{mcp_answer, Flow, State, USAGE_FILTER_STATE};
use crate::accounting::pricing;
use crate::accounting::record::UsageRecord;
use crate::accounting::telemetry;
use crate::host::{Counter, Host};
use crate::runtime::Runtime;
use chokepoint_contract::{GuardVerdict, McpUsage};

impl Flow {
    /// The exchange is over, however it ended: write the one usage record.
    pub fn on_log(&mut self, host: &mut dyn Host) {
        if std::mem::replace(&mut self.facts.logged, true) {
            return;
        }
        if self.state == State::Start {
            // Envoy answered before the request reached the filter (a WebSocket upgrade
            // on a route without upgrades, which Codex tries at every start): nothing was
            // asked of the gateway, and Envoy's own access log has the request.
            return;
        }
        self.guard_answer_end();
        let rt = Rc::clone(&self.rt);
        let now = host.now_ms();
        if let Some(a) = self.accounting.as_mut().filter(|a| a.end_unseen()) {
            // No end of stream came through (see `mark_ended`): Envoy's flags say
            // whether the exchange ended cleanly or by a reset, timeout or hang-up.
            if host.response_flags() == Some(0) {
                a.mark_ended();
            }
        }
        if let (Some(mcp_answer::McpAnswer::Watched(Some(w))), Some(m)) =
            (self.mcp_answer.as_mut(), self.facts.mcp.as_mut())
        {
            // An answer cut short still tells what it said before it was.
            if !m.outcome.answered {
                m.outcome = w.finish();
            }
        }
        let f = &self.facts;
        // Only a request that reached a provider used tokens; a refusal (even one whose
        // headers went ahead, unheld) has nothing to count or estimate, only its reply's
        // status and error.
        let forwarded = f.decision.forwarded();
        let settled = self.accounting.as_mut().map(|a| {
            let s = a.settle(f.body_bytes as u64, now, f.output_bound);
            (s, a.status, a.first_byte_ms)
        });
        let (settled, upstream_status, first_byte) = match settled {
            Some((s, st, fb)) => (Some(s), st, fb),
            None => (None, None, None),
        };
        let usage = clamp(
            settled
                .as_ref()
                .filter(|_| forwarded)
                .map(|s| s.accounted.usage)
                .unwrap_or_default(),
        );
        let provider = f.provider.and_then(|i| rt.config.providers.get(i));
        let cost_micros = f
            .price
            .as_ref()
            .map_or(0, |p| pricing::cost_micros(&usage, p))
            .min(MAX_EXACT);
        let mcp = f.mcp.as_ref().filter(|m| !m.metadata);
        let status = f
            .replied
            .or(upstream_status)
            .or(mcp.and_then(|m| m.status))
            .unwrap_or(0);
        // A blocked answer was still forwarded (and charged): the decision says what the
        // client got.
        let decision = f.answer_blocked.unwrap_or_else(|| f.decision.as_str());
        let ttft_ms = first_byte
            .or(mcp.and_then(|m| m.first_byte_ms))
            .map(|t| t.saturating_sub(f.start_ms));
        let caller = f.caller.as_ref();
        let record = UsageRecord {
            request_id: Required::new(&f.request_id),
            reservation_id: f.reservation_id.as_deref(),
            trace_id: Some(&f.trace_id),
            user: caller.map(|c| c.user.as_str()),
            tenant: caller.and_then(|c| c.tenant.as_deref()),
            groups: caller.map_or(&[], |c| c.groups.as_slice()),
            cost_center: caller.and_then(|c| c.cost_center.as_deref()),
            client: f.client.as_deref(),
            session: f.session.as_deref(),
            model: f.model.as_deref(),
            model_key: f.model_key.as_deref(),
            provider: provider.map(|p| p.name.as_str()),
            format: match &f.mcp {
                Some(m) if !m.metadata => Some("mcp"),
                _ => f
                    .endpoint
                    .and_then(|e| e.format)
                    .map(crate::accounting::usage::report::Format::name),
            },
            api: f.endpoint.map(|e| e.api.name()),
            operation: f.endpoint.and_then(|e| e.op.genai_name(e.api)),
            stream: f.stream,
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            cached_input_tokens: usage.cached_input_tokens,
            reasoning_tokens: usage.reasoning_tokens,
            cache_creation_input_tokens: usage.cache_creation_input_tokens,
            cost_micros,
            estimated: forwarded && settled.as_ref().is_some_and(|s| s.accounted.estimated),
            status: Some(status),
            decision: Some(decision),
            latency_ms: Some(now.saturating_sub(f.start_ms)),
            ttft_ms,
            completed: Some(match mcp {
                // An MCP answer is complete when its end came (a local reply is whole).
                Some(m) => m.ended || f.replied.is_some() || host.response_flags() == Some(0),
                None => settled.as_ref().is_some_and(|s| s.completed),
            }),
            error: settled.as_ref().and_then(|s| s.error.as_deref()),
            ts_ms: Some(f.start_ms),
            policy_version: rt.config.versions.policy.as_deref(),
            price_version: rt.config.versions.price.as_deref(),
            mcp: mcp_usage(&rt, f),
            guardrails: f
                .guardrails
                .iter()
                .map(|v| GuardVerdict {
                    name: v.name.as_str(),
                    category: v.category.as_str(),
                    action: v.action,
                    stage: v.stage,
                    count: v.count,
                })
                .collect(),
        };
        // Sized for a usual record at once (serde_json starts at 128 bytes and regrows).
        let mut json = Vec::with_capacity(1024);
        if serde_json::to_writer(&mut json, &record).is_err() {
            host.count(Counter::HostFailure);
            return;
        }
        host.set_filter_state(USAGE_FILTER_STATE, &json);
        if rt.config.otlp {
            super::otlp::write(host, &record);
        }
        // Only requests that reached a provider are charged; refusals live in the log.
        if forwarded && caller.is_some() && !host.enqueue_usage(&json) {
            host.count(Counter::UsageQueueFailure);
            log::error!(
                "usage record {} could not be queued for the ledger",
                f.request_id
            );
        }
        // A family's glob (`gpt-4o-mini*`) labels the family (`gpt_4o_mini`); MCP
        // requests are labelled by their server's cluster.
        let mcp_cluster = f
            .mcp
            .as_ref()
            .filter(|m| !m.metadata)
            .map(|m| m.server(&rt).map_or("mcp", |s| s.cluster.as_str()));
        let model_label = match mcp_cluster {
            Some(_) => "mcp",
            None => f
                .model_key
                .as_deref()
                .map_or(crate::config::OTHER_MODEL, |k| k.trim_end_matches('*')),
        };
        host.record_outcome(&telemetry::Outcome {
            model_label,
            provider: mcp_cluster.unwrap_or(provider.map_or("none", |p| p.name.as_str())),
            status,
            decision,
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            cached_input_tokens: usage.cached_input_tokens,
            reasoning_tokens: usage.reasoning_tokens,
            cost_micros,
            estimated: record.estimated,
            ttft_ms,
        });
    }
}

/// Largest integer a JSON number carries exactly everywhere (2^53 - 1). Counts come from
/// upstream responses: one absurd value must not make the ledger refuse a whole batch.
const MAX_EXACT: u64 = (1 << 53) - 1;

fn clamp(u: crate::accounting::usage::report::Usage) -> crate::accounting::usage::report::Usage {
    crate::accounting::usage::report::Usage {
        input_tokens: u.input_tokens.min(MAX_EXACT),
        output_tokens: u.output_tokens.min(MAX_EXACT),
        cached_input_tokens: u.cached_input_tokens.min(MAX_EXACT),
        reasoning_tokens: u.reasoning_tokens.min(MAX_EXACT),
        cache_creation_input_tokens: u.cache_creation_input_tokens.min(MAX_EXACT),
        cache_write_1h_input_tokens: u.cache_write_1h_input_tokens.min(MAX_EXACT),
    }
}

/// Longest tool, prompt or resource name a record keeps, in bytes (a resource URI can be
/// longer: it is cut, at a character boundary).
const MAX_RECORDED_NAME_BYTES: usize = 256;

/// What an MCP exchange's record says of it: never arguments, results or contents.
fn mcp_usage<'a>(rt: &'a Runtime, f: &'a Facts) -> Option<McpUsage<&'a str>> {
    let m = f.mcp.as_ref().filter(|m| !m.metadata)?;
    let name = m
        .message
        .as_ref()
        .and_then(|msg| msg.name.as_deref())
        .map(|n| {
            let mut end = n.len().min(MAX_RECORDED_NAME_BYTES);
            while !n.is_char_boundary(end) {
                end -= 1;
            }
            n.get(..end).unwrap_or_default()
        });
    Some(McpUsage {
        server: m.server_name(rt),
        method: m.method(&f.method),
        name,
        rpc_error: m.outcome.rpc_error,
        tool_error: m.outcome.tool_error,
        bytes_in: f.body_bytes as u64,
        bytes_out: m.bytes_out,
    })
}
