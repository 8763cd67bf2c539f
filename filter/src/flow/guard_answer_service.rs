//! Guardrail services on the answer (`on: [response]`): LiteLLM's Generic Guardrail API
//! called with `input_type: "response"` and the same `request_data` as on the request.
//!
//! A whole JSON answer, held to its end (see `guard_answer`), is sent to each service
//! that applies, one after another, with the response paused in its body callback until
//! the verdict: `BLOCKED` answers the API's 400 `guardrail_blocked` instead, a
//! `GUARDRAIL_INTERVENED` splices the replacements into the answer (its `content-length`
//! set to match), and a service that cannot judge answers 503 `guardrail_unavailable`
//! (`closed`) or lets the answer go recorded `unchecked` (`open`).
//!
//! A stream is never held beyond its last event (which waits for the next one, so the
//! stream's own end never precedes a verdict): the new text goes to the services every
//! [`SEGMENT_BYTES`], one call out at a time, and the rest once at the end, when only
//! the last chunk waits for every verdict. A `BLOCKED` (or a closed failure) ends the stream at the next chunk
//! with the API's error event; what went before has been delivered. A stream cannot be
//! rewritten, so an intervention is recorded `flag`.

use std::rc::Rc;

use chokepoint_contract::{GuardAction, GuardStage, GuardVerdict};

use super::guard_answer::AnswerGuard;
use super::steps::{check_name, mode, service_of, verdict_cache};
use super::{Flow, Next, GUARDRAIL_BLOCKED, GUARDRAIL_UNAVAILABLE};
use crate::guardrails::answer;
use crate::guardrails::config::{CheckKind, Guardrails, Service};
use crate::guardrails::service::{
    self, BlockCause, Limits, Metadata, Pending, Piece, Prepared, ServiceError, Stage, Verdict,
};
use crate::guardrails::stream::StreamGuard;
use crate::guardrails::verdicts::VerdictCache;
use crate::host::{Counter, Host};
use crate::providers::reply::{self, Reply};

/// New stream text sent to a service once this much has gathered (about 500 tokens,
/// several seconds of generation): a block lands a few seconds of text after the text it
/// judges, while a long answer costs a call per 2 KiB, not per event. An answer shorter
/// than this is judged once, at its end.
pub const SEGMENT_BYTES: usize = 2048;

/// The response-side service checks whose scope covers the request.
pub fn applying(
    g: &Guardrails,
    model: Option<&str>,
    tenant: Option<&str>,
    groups: &[String],
) -> Vec<usize> {
    g.checks
        .iter()
        .enumerate()
        .filter(|(_, c)| {
            c.on_response
                && matches!(c.kind, CheckKind::Service(_))
                && c.scope.covers(model, tenant, groups)
        })
        .map(|(i, _)| i)
        .collect()
}

/// `unchecked` for each service check: the answer went to the client unjudged.
pub fn unchecked(g: &Guardrails, services: &[usize]) -> Vec<GuardVerdict> {
    services
        .iter()
        .map(|&i| verdict(check_name(g, i), GuardAction::Unchecked, 0))
        .collect()
}

fn verdict(name: &str, action: GuardAction, count: u64) -> GuardVerdict {
    GuardVerdict {
        name: name.to_owned(),
        category: "service".to_owned(),
        action,
        stage: GuardStage::Response,
        count,
    }
}

/// A whole answer on its way through the services.
pub struct Asking {
    /// The answer as it stands: the earlier services' replacements in it.
    pub body: Vec<u8>,
    /// The bytes Envoy holds (the answer as the provider sent it).
    pub held: usize,
    pub changed: bool,
    pub services: Vec<usize>,
    /// The next service to ask (an index into `services`).
    pub at: usize,
    /// The call out: its token and what was sent.
    pub call: Option<(u32, Pending)>,
}

/// A stream's services.
pub struct StreamServices {
    services: Vec<usize>,
    /// Per service, the text not sent to it yet.
    unsent: Vec<String>,
    /// The call out: the service's place in `services`, the token, what was sent.
    call: Option<(usize, u32, Pending)>,
    /// The stream ended: what is unsent goes, however short.
    ending: bool,
    /// A verdict that ends the stream at the next chunk, with the record's decision.
    pub stop: Option<(Reply, &'static str)>,
    /// The last chunk, held (these bytes of it) until every verdict is in.
    pub held_end: Option<usize>,
    /// The stream's last complete event (and any partial one after it), not sent yet.
    tail: Vec<u8>,
}

impl StreamServices {
    pub fn new(services: Vec<usize>) -> StreamServices {
        StreamServices {
            unsent: vec![String::new(); services.len()],
            services,
            call: None,
            ending: false,
            stop: None,
            held_end: None,
            tail: Vec::new(),
        }
    }

    /// What the client gets of `bytes` (what the guard passed): all but the last event,
    /// which waits for the next chunk; at the end of the stream, everything, which the
    /// flow then holds until the verdicts are in. Providers end the stream with an event
    /// of its own (`[DONE]`, `message_stop`, `response.completed`) and Envoy often ends
    /// it with an empty chunk after it: without this, that event would reach the
    /// client, and the SDK stop reading, before a verdict could end the stream.
    pub fn hold_last_event(&mut self, bytes: Vec<u8>, end_of_stream: bool) -> Vec<u8> {
        let mut all = std::mem::take(&mut self.tail);
        all.extend_from_slice(&bytes);
        if !end_of_stream {
            let cut = crate::guardrails::stream::last_event_start(&all);
            self.tail = all.split_off(cut);
        }
        all
    }

    /// New text of the stream, for every service.
    pub fn add(&mut self, text: &str) {
        if self.stop.is_none() {
            self.unsent.iter_mut().for_each(|u| u.push_str(text));
        }
    }

    /// The stream ended: whatever is unsent is due.
    pub fn end(&mut self) {
        self.ending = true;
    }

    /// A verdict is still to come.
    pub fn outstanding(&self) -> bool {
        self.call.is_some() || (self.stop.is_none() && self.unsent.iter().any(|u| !u.is_empty()))
    }

    /// The next service with text due, and its text.
    fn due(&mut self) -> Option<(usize, String)> {
        if self.call.is_some() || self.stop.is_some() {
            return None;
        }
        let ending = self.ending;
        let j = self
            .unsent
            .iter()
            .position(|u| u.len() >= SEGMENT_BYTES || (ending && !u.is_empty()))?;
        Some((j, std::mem::take(self.unsent.get_mut(j)?)))
    }
}

/// A stream's segments are judged once: nothing to remember them by.
fn no_cache() -> VerdictCache {
    VerdictCache::new([0; 16], 0, 0)
}

impl Flow {
    /// The request's metadata, as the request's own service calls carry it.
    fn answer_meta(&self) -> Metadata<'_> {
        let caller = self.facts.caller.as_ref();
        Metadata {
            model: self.facts.model.as_deref(),
            caller: caller.map(|c| c.user.as_str()),
            tenant: caller.and_then(|c| c.tenant.as_deref()),
            request_id: Some(self.facts.request_id.as_str()),
        }
    }

    /// Sends a call to service check `i`; `None` when it cannot be started.
    fn dispatch_answer(
        &self,
        host: &mut dyn Host,
        i: usize,
        s: &Service,
        body: &[u8],
    ) -> Option<u32> {
        let authorization = self
            .rt
            .guard_service_authorizations
            .get(i)
            .and_then(Option::as_deref);
        let headers = service::call_headers(&s.path, &s.authority, authorization);
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        match host.dispatch(&s.cluster, &headers, body, s.timeout) {
            Ok(call) => Some(call),
            Err(e) => {
                log::warn!("cannot reach guardrail cluster {}: {}", s.cluster, e.0);
                None
            }
        }
    }

    /// Asks the services from `ask.at` on. `Pause`: a call is out, or the answer was
    /// refused; `Continue`: every service let it go (with its replacements in it).
    pub(super) fn ask_answer(&mut self, host: &mut dyn Host, mut ask: Box<Asking>) -> Next {
        let rt = Rc::clone(&self.rt);
        let (Some(g), Some(format)) = (
            rt.config.guardrails.as_ref(),
            self.facts.endpoint.and_then(|e| e.format),
        ) else {
            return Next::Continue;
        };
        while let Some(&i) = ask.services.get(ask.at) {
            let Some(s) = service_of(g, i) else {
                ask.at += 1;
                continue;
            };
            let name = check_name(g, i);
            let prepared = match answer::texts(format, &ask.body) {
                Ok(found) => {
                    let pieces: Vec<Piece<'_>> = found.iter().map(|f| f.piece()).collect();
                    let meta = self.answer_meta();
                    let mut auth = self.auth.borrow_mut();
                    let cache = verdict_cache(&mut auth.verdicts, host, g.cache_entries);
                    service::prepare(
                        name,
                        Stage::Response,
                        &meta,
                        &pieces,
                        cache,
                        Limits::default(),
                    )
                }
                Err(_) => Err(ServiceError::Malformed),
            };
            let v = match prepared {
                Ok(Prepared::Known(v)) => v,
                Err(e) => e.verdict(mode(s)),
                Ok(Prepared::Call(p)) => match self.dispatch_answer(host, i, s, p.body()) {
                    Some(token) => {
                        ask.call = Some((token, p));
                        self.answer_guard = Some(AnswerGuard::Asking(ask));
                        return Next::Pause;
                    }
                    None => ServiceError::Unreachable.verdict(mode(s)),
                },
            };
            if !self.whole_verdict(host, name, s, v, &mut ask) {
                return Next::Pause;
            }
            ask.at += 1;
        }
        if ask.changed {
            if host.replace_response_body(ask.held, &ask.body).is_err() {
                host.count(Counter::HostFailure);
            }
            if host.response_header("content-length").is_some()
                && host
                    .set_response_header("content-length", &ask.body.len().to_string())
                    .is_err()
            {
                host.count(Counter::HostFailure);
            }
        }
        Next::Continue
    }

    /// A service's verdict on a whole answer: recorded, then applied. False when the
    /// answer was refused.
    fn whole_verdict(
        &mut self,
        host: &mut dyn Host,
        name: &str,
        s: &Service,
        v: Verdict,
        ask: &mut Asking,
    ) -> bool {
        let (action, count) = match &v {
            Verdict::Allowed(edits) if edits.is_empty() => return true,
            Verdict::Allowed(edits) => (GuardAction::Mask, edits.len() as u64),
            Verdict::Blocked(_) => (GuardAction::Block, 0),
            Verdict::Unchecked(_) => (GuardAction::Unchecked, 0),
        };
        self.record_answer(vec![verdict(name, action, count)]);
        match v {
            Verdict::Allowed(edits) => {
                host.count(Counter::GuardrailMasked);
                ask.body = service::apply(&ask.body, &edits);
                ask.changed = true;
                true
            }
            Verdict::Unchecked(e) => {
                unavailable_log(name, s, e, "let through unchecked (failure_mode open)");
                host.count(Counter::GuardrailUnavailable);
                true
            }
            Verdict::Blocked(cause) => {
                let (r, decision) = self.stopped(host, name, s, cause);
                self.refuse_answer(host, r, decision);
                false
            }
        }
    }

    /// The error for a block by a service (or a closed failure), counted and logged.
    fn stopped(
        &mut self,
        host: &mut dyn Host,
        name: &str,
        s: &Service,
        cause: BlockCause,
    ) -> (Reply, &'static str) {
        match cause {
            BlockCause::Service => {
                host.count(Counter::GuardrailBlocked);
                (blocked(name), GUARDRAIL_BLOCKED)
            }
            BlockCause::Unavailable(e) => {
                unavailable_log(name, s, e, "answer refused (failure_mode closed)");
                host.count(Counter::GuardrailUnavailable);
                (unavailable(name), GUARDRAIL_UNAVAILABLE)
            }
        }
    }

    /// A callout answered with no request step waiting: a response guardrail's.
    pub(super) fn answer_callout(
        &mut self,
        host: &mut dyn Host,
        call: u32,
        status: Option<u32>,
        body: &[u8],
    ) {
        let rt = Rc::clone(&self.rt);
        let Some(g) = rt.config.guardrails.as_ref() else {
            return;
        };
        match self.answer_guard.take() {
            Some(AnswerGuard::Asking(mut ask))
                if ask.call.as_ref().is_some_and(|(t, _)| *t == call) =>
            {
                let Some((_, pending)) = ask.call.take() else {
                    return;
                };
                let Some(&i) = ask.services.get(ask.at) else {
                    return;
                };
                let Some(s) = service_of(g, i) else {
                    return;
                };
                let v = {
                    let mut auth = self.auth.borrow_mut();
                    let cache = verdict_cache(&mut auth.verdicts, host, g.cache_entries);
                    pending.answered(status, body, cache)
                };
                let v = v.unwrap_or_else(|e| e.verdict(mode(s)));
                if !self.whole_verdict(host, check_name(g, i), s, v, &mut ask) {
                    return;
                }
                ask.at += 1;
                if self.ask_answer(host, ask) == Next::Continue {
                    resume(host);
                }
            }
            Some(AnswerGuard::Stream {
                checks,
                mut guard,
                seen,
                services: Some(mut sv),
            }) if sv.call.as_ref().is_some_and(|(_, t, _)| *t == call) => {
                if let Some((j, _, pending)) = sv.call.take() {
                    let v = pending.answered(status, body, &mut no_cache());
                    self.stream_verdict(host, g, &mut sv, j, v);
                }
                if let Some(held) = sv.held_end {
                    // The last chunk waits for this: end the stream now, or let it go
                    // once no verdict is still to come.
                    if let Some((r, decision)) = sv.stop.take() {
                        self.facts.answer_blocked = Some(decision);
                        let event = guard.terminate(&r.in_shape_of(self.facts.shape));
                        if host.replace_response_body(held, &event).is_err() {
                            host.count(Counter::HostFailure);
                        }
                    } else {
                        self.pump(host, &mut sv);
                        if sv.outstanding() {
                            self.answer_guard = Some(AnswerGuard::Stream {
                                checks,
                                guard,
                                seen,
                                services: Some(sv),
                            });
                            return;
                        }
                    }
                    self.record_stream(&checks, &guard, seen);
                    resume(host);
                    return;
                }
                if !guard.terminated() {
                    self.pump(host, &mut sv);
                }
                self.answer_guard = Some(AnswerGuard::Stream {
                    checks,
                    guard,
                    seen,
                    services: Some(sv),
                });
            }
            other => self.answer_guard = other,
        }
    }

    /// Sends the next text due, if no call is out; a call that cannot be started is
    /// judged as its failure mode says, and the next one tried.
    pub(super) fn pump(&mut self, host: &mut dyn Host, sv: &mut StreamServices) {
        let rt = Rc::clone(&self.rt);
        let Some(g) = rt.config.guardrails.as_ref() else {
            return;
        };
        while let Some((j, text)) = sv.due() {
            let Some(s) = sv.services.get(j).and_then(|&i| service_of(g, i)) else {
                continue;
            };
            let i = sv.services.get(j).copied().unwrap_or_default();
            let piece = [Piece {
                span: 0..0,
                text: &text,
            }];
            let prepared = service::prepare(
                check_name(g, i),
                Stage::Response,
                &self.answer_meta(),
                &piece,
                &no_cache(),
                Limits::default(),
            );
            let v = match prepared {
                Ok(Prepared::Call(p)) => match self.dispatch_answer(host, i, s, p.body()) {
                    Some(token) => {
                        sv.call = Some((j, token, p));
                        return;
                    }
                    None => Err(ServiceError::Unreachable),
                },
                Ok(Prepared::Known(v)) => Ok(v),
                Err(e) => Err(e),
            };
            self.stream_verdict(host, g, sv, j, v);
        }
    }

    /// A service's verdict on stream text: recorded; a block (or a closed failure) ends
    /// the stream at the next chunk; a rewrite cannot be made and is recorded `flag`.
    fn stream_verdict(
        &mut self,
        host: &mut dyn Host,
        g: &Guardrails,
        sv: &mut StreamServices,
        j: usize,
        v: Result<Verdict, ServiceError>,
    ) {
        let Some((i, s)) = sv
            .services
            .get(j)
            .and_then(|&i| service_of(g, i).map(|s| (i, s)))
        else {
            return;
        };
        let name = check_name(g, i);
        let v = v.unwrap_or_else(|e| e.verdict(mode(s)));
        match v {
            Verdict::Allowed(edits) if edits.is_empty() => {}
            Verdict::Allowed(edits) => {
                self.add_answer_verdict(verdict(name, GuardAction::Flag, edits.len() as u64));
            }
            Verdict::Unchecked(e) => {
                unavailable_log(name, s, e, "let through unchecked (failure_mode open)");
                host.count(Counter::GuardrailUnavailable);
                self.add_answer_verdict(verdict(name, GuardAction::Unchecked, 0));
            }
            Verdict::Blocked(cause) => {
                if sv.stop.is_none() {
                    self.add_answer_verdict(verdict(name, GuardAction::Block, 0));
                    sv.stop = Some(self.stopped(host, name, s, cause));
                }
            }
        }
    }

    /// Adds a verdict, or its count to the same check's same action.
    fn add_answer_verdict(&mut self, v: GuardVerdict) {
        match self.facts.guardrails.iter_mut().find(|o| {
            o.name == v.name
                && o.action == v.action
                && o.stage == v.stage
                && o.category == v.category
        }) {
            Some(o) => o.count += v.count,
            None => self.record_answer(vec![v]),
        }
    }

    /// The answer is refused: the client gets `r` (from the response path, so the
    /// request id goes again), the record the decision.
    pub(super) fn refuse_answer(&mut self, host: &mut dyn Host, r: Reply, decision: &'static str) {
        self.facts.answer_blocked = Some(decision);
        let mut r = r.in_shape_of(self.facts.shape);
        self.facts.replied = Some(r.status);
        // A reply sent from the response path skips the header edits made before it.
        if !self.facts.request_id.is_empty() {
            r.headers
                .push((super::REQUEST_ID_HEADER, self.facts.request_id.clone()));
        }
        if host.send_reply(&r).is_err() {
            host.count(Counter::HostFailure);
        }
    }
}

/// The stream's text the guard has not scanned yet, for the services.
pub fn fresh(guard: &StreamGuard) -> &str {
    guard.window().get(guard.fresh_from()..).unwrap_or_default()
}

fn resume(host: &mut dyn Host) {
    if host.resume_response().is_err() {
        host.count(Counter::HostFailure);
    }
}

fn unavailable_log(name: &str, s: &Service, e: ServiceError, what: &str) {
    log::warn!(
        "guardrail {name}: service {} {} on the answer: {what}",
        s.cluster,
        e.name()
    );
}

/// The error when a service said `BLOCKED` to the answer: the check, never the service's
/// reason (it may quote the data).
fn blocked(check: &str) -> Reply {
    reply::bad_request(
        GUARDRAIL_BLOCKED,
        &format!(
            "The gateway's guardrail '{check}' blocked the model's answer: its guardrail \
             service (category service) refused the content. The answer is not delivered; \
             the provider's usage is still counted."
        ),
    )
}

/// The error when a service failing closed could not judge the answer.
fn unavailable(check: &str) -> Reply {
    reply::error(
        503,
        "service_unavailable",
        GUARDRAIL_UNAVAILABLE,
        &format!(
            "The gateway's guardrail '{check}' could not check the model's answer (its \
             guardrail service is unavailable), so it was not delivered; the provider's \
             usage is still counted. Try again shortly."
        ),
    )
}
