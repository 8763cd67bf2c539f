//! Guardrails on the answer: the detecting checks with `on: response` judge what the
//! provider sends back. A JSON answer is held whole (its headers held, Envoy buffering
//! the body to its end, bounded) and scanned; a block replaces it with the API's error,
//! a flag lets it pass unchanged. A stream is never held beyond one partial event: each
//! chunk's complete events are scanned as they pass (see `guardrails::stream`), and a
//! block ends the stream with the API's own error event. Every byte the provider sent
//! is still counted: the tokens are billed whatever the client gets. Service checks on
//! answers (`guard_answer_service`) judge the same held answer, or the stream's text.

use super::guard_answer_service::{self as services, Asking, StreamServices};
use super::{Flow, Next};
use crate::accounting::sse::DEFAULT_MAX_EVENT_BYTES;
use crate::flow::GUARDRAIL_BLOCKED;
use crate::guardrails::answer;
use crate::guardrails::judge::Blocked;
use crate::guardrails::respond::{self, Seen};
use crate::guardrails::stream::{Pass, StreamGuard};
use crate::host::{Counter, Host};
use crate::providers::reply::{self, Reply};

pub enum AnswerGuard {
    /// A JSON answer, held until its end or until it passes `limit` bytes: judged by the
    /// detecting `checks`, then the `services` (check indexes each).
    Whole {
        checks: Vec<usize>,
        services: Vec<usize>,
        limit: usize,
    },
    /// A whole answer, held while a service judges it.
    Asking(Box<Asking>),
    /// An SSE answer, scanned event by event as it passes.
    Stream {
        checks: Vec<usize>,
        guard: Box<StreamGuard>,
        seen: Seen,
        services: Option<Box<StreamServices>>,
    },
}

impl Flow {
    /// The answer's headers: whether and how the response checks see its body. `Pause`
    /// holds the headers until the whole answer is judged.
    /// `head`: the status and content type, when the caller read them already.
    pub(super) fn guard_answer_headers(
        &mut self,
        host: &mut dyn Host,
        head: Option<(Option<u32>, Option<String>)>,
    ) -> Next {
        let rt = std::rc::Rc::clone(&self.rt);
        let (Some(g), None) = (rt.config.guardrails.as_ref(), self.facts.mcp.as_ref()) else {
            return Next::Continue;
        };
        let Some(format) = self.facts.endpoint.and_then(|e| e.format) else {
            return Next::Continue;
        };
        let caller = self.facts.caller.as_ref();
        let (model, tenant, groups) = (
            self.facts.model.as_deref(),
            caller.and_then(|c| c.tenant.as_deref()),
            caller.map_or(&[][..], |c| c.groups.as_slice()),
        );
        let checks = respond::applying(g, model, tenant, groups);
        let services = services::applying(g, model, tenant, groups);
        if checks.is_empty() && services.is_empty() {
            return Next::Continue;
        }
        let (status, content_type) = head.unwrap_or_else(|| host.response_status_and_type());
        // An error answer carries no model text: nothing to judge.
        if !status.is_some_and(|s| (200..300).contains(&s)) {
            return Next::Continue;
        }
        let content_type = content_type.unwrap_or_default().to_ascii_lowercase();
        let encoded = host
            .response_header("content-encoding")
            .is_some_and(|e| !e.eq_ignore_ascii_case("identity"));
        if encoded {
            return self.answer_unchecked(&checks, &services);
        }
        if content_type.trim_start().starts_with("text/event-stream") {
            // The guard may shorten the stream (the error event ends it): Envoy frames it.
            if host.response_header("content-length").is_some()
                && host.remove_response_header("content-length").is_err()
            {
                host.count(Counter::HostFailure);
            }
            self.answer_guard = Some(AnswerGuard::Stream {
                checks,
                guard: Box::new(StreamGuard::new(format, DEFAULT_MAX_EVENT_BYTES)),
                seen: Seen::default(),
                services: (!services.is_empty()).then(|| Box::new(StreamServices::new(services))),
            });
            return Next::Continue;
        }
        // Headers that cannot be held (the mesh targets) would leave before the verdict:
        // the answer passes, and the record says it was not judged.
        if !content_type.trim_start().starts_with("application/json") || !rt.config.hold_headers {
            return self.answer_unchecked(&checks, &services);
        }
        // Envoy's buffer limit is twice the request body limit (as rendered): holding no
        // more than the request limit leaves room for the chunk that crosses it, so
        // Envoy never overflows (a 500) before the filter lets go.
        let limit = g
            .max_response_scan_bytes
            .min(rt.config.max_request_body_bytes);
        self.answer_guard = Some(AnswerGuard::Whole {
            checks,
            services,
            limit,
        });
        Next::Pause
    }

    /// A chunk of a guarded answer.
    pub(super) fn guard_answer_body(
        &mut self,
        host: &mut dyn Host,
        size: usize,
        end_of_stream: bool,
    ) -> Next {
        match self.answer_guard.take() {
            Some(AnswerGuard::Whole {
                checks,
                services,
                limit,
            }) => self.whole_answer(host, checks, services, limit, size, end_of_stream),
            Some(AnswerGuard::Stream {
                checks,
                mut guard,
                mut seen,
                mut services,
            }) => {
                let kept = self.stream_chunk(
                    host,
                    &checks,
                    &mut guard,
                    &mut seen,
                    services.as_deref_mut(),
                    size,
                    end_of_stream,
                );
                if let Some(sv) = services.as_deref_mut().filter(|_| !guard.terminated()) {
                    if end_of_stream {
                        sv.end();
                    }
                    self.pump(host, sv);
                    if end_of_stream && sv.outstanding() {
                        // Only the last chunk waits for the verdicts still to come.
                        sv.held_end = Some(kept);
                        self.answer_guard = Some(AnswerGuard::Stream {
                            checks,
                            guard,
                            seen,
                            services,
                        });
                        return Next::Pause;
                    }
                }
                // Kept after a block too: it swallows the provider's later chunks.
                if end_of_stream {
                    self.record_stream(&checks, &guard, seen);
                } else {
                    self.answer_guard = Some(AnswerGuard::Stream {
                        checks,
                        guard,
                        seen,
                        services,
                    });
                }
                Next::Continue
            }
            // The answer waits for a service (Envoy should not call meanwhile).
            Some(asking @ AnswerGuard::Asking(_)) => {
                self.answer_guard = Some(asking);
                Next::Pause
            }
            None => Next::Continue,
        }
    }

    /// The exchange ended before the stream did: its verdicts so far go in the record.
    pub(super) fn guard_answer_end(&mut self) {
        if let Some(AnswerGuard::Stream {
            checks,
            guard,
            seen,
            ..
        }) = self.answer_guard.take()
        {
            self.record_stream(&checks, &guard, seen);
        }
    }

    fn whole_answer(
        &mut self,
        host: &mut dyn Host,
        checks: Vec<usize>,
        services: Vec<usize>,
        limit: usize,
        size: usize,
        end_of_stream: bool,
    ) -> Next {
        if !end_of_stream && size <= limit {
            // Envoy buffers the answer until its end.
            self.answer_guard = Some(AnswerGuard::Whole {
                checks,
                services,
                limit,
            });
            return Next::Pause;
        }
        // Whole, or too large to hold: either way what Envoy holds now is read once for
        // the accounting (the provider billed every token of it).
        let body = match host.response_body(size) {
            Ok(body) => body,
            Err(_) => {
                host.count(Counter::HostFailure);
                Vec::new()
            }
        };
        let now = host.now_ms();
        if let Some(a) = self.accounting.as_mut() {
            a.on_chunk(&body, now, end_of_stream);
        }
        let rt = std::rc::Rc::clone(&self.rt);
        let (Some(g), Some(format)) = (
            rt.config.guardrails.as_ref(),
            self.facts.endpoint.and_then(|e| e.format),
        ) else {
            return Next::Continue;
        };
        if size > limit || body.len() != size {
            return self.answer_unchecked(&checks, &services);
        }
        let Ok(texts) = answer::texts(format, &body) else {
            return self.answer_unchecked(&checks, &services);
        };
        let mut seen = Seen::default();
        {
            let mut auth = self.auth.borrow_mut();
            let mut cache = auth.scans.as_mut();
            for t in &texts {
                seen.scan(g, &checks, &t.text, 0, cache.as_deref_mut());
            }
        }
        let blocked = seen.blocked.clone();
        self.record_answer(seen.verdicts(g));
        let Some(b) = blocked else {
            if services.is_empty() {
                return Next::Continue;
            }
            // The detectors let it go: the services judge it next, still held.
            return self.ask_answer(
                host,
                Box::new(Asking {
                    body,
                    held: size,
                    changed: false,
                    services,
                    at: 0,
                    call: None,
                }),
            );
        };
        host.count(Counter::GuardrailBlocked);
        self.refuse_answer(host, answer_blocked(&b), GUARDRAIL_BLOCKED);
        Next::Pause
    }

    /// One chunk of a guarded stream: the accounting reads it as the provider sent it,
    /// then the guard says what the client gets instead. Returns the bytes Envoy holds
    /// now for the client.
    #[allow(clippy::too_many_arguments)]
    fn stream_chunk(
        &mut self,
        host: &mut dyn Host,
        checks: &[usize],
        guard: &mut StreamGuard,
        seen: &mut Seen,
        services: Option<&mut StreamServices>,
        size: usize,
        end_of_stream: bool,
    ) -> usize {
        let chunk = if size == 0 {
            Vec::new()
        } else {
            match host.response_body(size) {
                Ok(chunk) => chunk,
                Err(_) => {
                    // Unreadable: it passes as it is (and is counted as a host failure).
                    host.count(Counter::HostFailure);
                    return size;
                }
            }
        };
        let now = host.now_ms();
        if let Some(a) = self.accounting.as_mut() {
            a.on_chunk(&chunk, now, end_of_stream);
        }
        let pass = guard.feed(&chunk, end_of_stream);
        if guard.terminated() {
            // Already ended: the provider's remaining chunks were counted above.
            return replace(host, size, &[]);
        }
        let mut services = services;
        let mut stop = None;
        if let Some(sv) = services.as_mut() {
            sv.add(services::fresh(guard));
            stop = sv.stop.take();
        }
        if guard.has_fresh_text() {
            if let Some(g) = self
                .rt
                .config
                .guardrails
                .as_ref()
                .filter(|_| !checks.is_empty())
            {
                seen.scan(g, checks, guard.window(), guard.fresh_from(), None);
            }
            guard.mark_scanned();
        }
        let stop = match &seen.blocked {
            // Only the first block ends the stream; `feed` swallows what follows.
            Some(b) => {
                host.count(Counter::GuardrailBlocked);
                Some((answer_blocked(b), GUARDRAIL_BLOCKED))
            }
            // A service's verdict on earlier text ends it at this chunk.
            None => stop,
        };
        if let Some((r, decision)) = stop {
            self.facts.answer_blocked = Some(decision);
            let event = guard.terminate(&r.in_shape_of(self.facts.shape));
            return replace(host, size, &event);
        }
        match (pass, services) {
            // The stream's last event waits for the next one: its end (`[DONE]`,
            // `message_stop`...) must not reach the client before the verdicts.
            (pass, Some(sv)) => {
                let bytes = match pass {
                    Pass::Bytes(bytes) => bytes,
                    Pass::Whole => chunk,
                };
                replace(host, size, &sv.hold_last_event(bytes, end_of_stream))
            }
            (Pass::Bytes(bytes), None) => replace(host, size, &bytes),
            (Pass::Whole, None) => size,
        }
    }

    pub(super) fn record_stream(&mut self, checks: &[usize], guard: &StreamGuard, seen: Seen) {
        let Some(g) = self.rt.config.guardrails.as_ref() else {
            return;
        };
        let mut verdicts = seen.verdicts(g);
        if guard.unchecked() {
            verdicts.extend(respond::unchecked(g, checks));
        }
        self.record_answer(verdicts);
    }

    /// The answer passes unjudged: recorded `unchecked`, never silently.
    fn answer_unchecked(&mut self, checks: &[usize], service_checks: &[usize]) -> Next {
        let verdicts = self
            .rt
            .config
            .guardrails
            .as_ref()
            .map(|g| {
                let mut v = respond::unchecked(g, checks);
                v.extend(services::unchecked(g, service_checks));
                v
            })
            .unwrap_or_default();
        self.record_answer(verdicts);
        Next::Continue
    }

    /// Adds verdicts to the record's, keeping at most its bound.
    pub(super) fn record_answer(&mut self, verdicts: Vec<chokepoint_contract::GuardVerdict>) {
        let room = chokepoint_contract::bounds::MAX_GUARD_VERDICTS
            .saturating_sub(self.facts.guardrails.len());
        self.facts
            .guardrails
            .extend(verdicts.into_iter().take(room));
    }
}

/// Puts `bytes` in place of the `size` bytes Envoy holds; returns what it holds now.
fn replace(host: &mut dyn Host, size: usize, bytes: &[u8]) -> usize {
    if host.replace_response_body(size, bytes).is_err() {
        host.count(Counter::HostFailure);
        return size;
    }
    bytes.len()
}

/// The error a client gets instead of an answer a check blocked: 400 like a blocked
/// request (an SDK retries a 5xx, which would buy the same answer again), naming the
/// check, the category and the rule, never the value.
pub fn answer_blocked(b: &Blocked) -> Reply {
    reply::bad_request(
        GUARDRAIL_BLOCKED,
        &format!(
            "The gateway's guardrail '{}' blocked the model's answer: it carries {} data \
             (rule {}). The answer is not delivered; the provider's usage is still counted.",
            b.check, b.category, b.rule
        ),
    )
}
