//! Count: the response side of a request. Its headers (the provider that really served
//! it, the caller's quota, the gateway's request id), and a copy of each body chunk read
//! for usage while the chunk itself goes on at once: a stream is never held. Response
//! guardrails (`guard_answer`) take over the body when a check judges the answer.

use super::{Flow, Next, REQUEST_ID_HEADER};
use crate::host::{Counter, Host};

impl Flow {
    /// Response headers from the provider (or from Envoy, when it could not reach one).
    pub fn on_response_headers(&mut self, host: &mut dyn Host) -> Next {
        if self.facts.replied.is_none() {
            // After a fallback, the provider that answered is not the first of the chain:
            // the key injector names it, and the record and price follow it. Trusted
            // only when the injector runs: otherwise it could come from a provider. Not
            // read when no record will be written (identity-only mode).
            let injector = !self.rt.config.inject_keys_downstream && !self.facts.logged;
            let served = injector
                .then(|| host.response_header(crate::providers::key_injection::PROVIDER_HEADER))
                .flatten();
            if let Some(served) = served {
                let providers = &self.rt.config.providers;
                if let Some(i) = providers.iter().position(|p| p.name == served) {
                    self.facts.provider = Some(i);
                }
            }
            self.mcp_response_headers(host);
            // Read once for the meter and the response guardrails (each read a hostcall).
            let mut head = None;
            if let Some(a) = &mut self.accounting {
                let (status, content_type) = host.response_status_and_type();
                a.on_headers(status, content_type.as_deref(), host.now_ms());
                head = Some((status, content_type));
            }
            if let Some(q) = &self.facts.quota {
                for (name, value) in crate::admission::authorize::quota_headers(q) {
                    let _ = host.set_response_header(name, &value);
                }
            }
            if !self.facts.request_id.is_empty() {
                // Best effort: the id only helps support find the record.
                let _ = host.set_response_header(REQUEST_ID_HEADER, &self.facts.request_id);
            }
            return self.guard_answer_headers(host, head);
        }
        Next::Continue
    }

    /// A response body chunk: a copy is read for accounting and the chunk goes on at once.
    pub fn on_response_body(
        &mut self,
        host: &mut dyn Host,
        body_size: usize,
        end_of_stream: bool,
    ) -> Next {
        if self.mcp_answer.is_some() {
            return self.mcp_response_body(host, body_size, end_of_stream);
        }
        if self.answer_guard.is_some() {
            return self.guard_answer_body(host, body_size, end_of_stream);
        }
        if self.facts.answer_blocked.is_some() {
            // The gateway's own error took a whole answer's place: the answer was
            // counted already, the error is not the provider's.
            return Next::Continue;
        }
        let Some(a) = &mut self.accounting else {
            return Next::Continue;
        };
        let now = host.now_ms();
        if !a.wants_body() || body_size == 0 {
            a.on_chunk(&[], now, end_of_stream);
            return Next::Continue;
        }
        match host.response_body(body_size) {
            Ok(chunk) => a.on_chunk(&chunk, now, end_of_stream),
            Err(_) => host.count(Counter::HostFailure),
        }
        Next::Continue
    }
}
