//! The guard step's service checks: each one that applies to the request asks its
//! external guardrail service (LiteLLM's Generic Guardrail API, see
//! `guardrails::service`) about the texts it has not judged before, one check after
//! another, after the detectors. A service sees the body as the detectors' masks left it
//! (their placeholders, never the values), and its replacements are written into that
//! same body, which `edit` then edits. `BLOCKED` answers 400 `guardrail_blocked` naming
//! the check (never the service's reason); a service that cannot judge answers 503
//! `guardrail_unavailable` under `failure_mode: closed`, and lets the request go,
//! recorded `unchecked`, under `open`.

use chokepoint_contract::{GuardAction, GuardStage, GuardVerdict};

use super::guard::{record, seed, CACHE_MAX_BYTES, GUARDRAIL_BLOCKED};
use crate::flow::step::{Cx, Go};
use crate::guardrails::config::{CheckKind, Guardrails, Service};
use crate::guardrails::extract::{self, Shape};
use crate::guardrails::service::{
    self, BlockCause, FailureMode, Limits, Metadata, Piece, Prepared, ServiceError, Stage, Verdict,
};
use crate::guardrails::verdicts::VerdictCache;
use crate::host::Counter;
use crate::providers::reply::{self, Reply};
use crate::providers::request_body::{self, Body};

/// The error code of a request a guardrail service could not judge, failing closed.
pub const GUARDRAIL_UNAVAILABLE: &str = "guardrail_unavailable";

/// Asks the service checks from index `from` on, in order: each verdict known from the
/// cache is applied at once; the first that needs its service is called (`Go::Call`).
pub fn ask(cx: &mut Cx<'_>, g: &Guardrails, from: usize) -> Result<Go, Reply> {
    if cx.facts.mcp.is_some() {
        return Ok(Go::Next);
    }
    let Some(shape) = cx.facts.endpoint.and_then(Shape::of) else {
        return Ok(Go::Next);
    };
    for (i, s) in services(cx, g).filter(|(i, _)| *i >= from) {
        let name = check_name(g, i);
        let prepared = match prepare(cx, shape, name, g.cache_entries) {
            Some(p) => p,
            // No body: nothing to judge.
            None => return Ok(Go::Next),
        };
        let pending = match prepared {
            Ok(Prepared::Known(v)) => {
                conclude(cx, name, s, v)?;
                continue;
            }
            Ok(Prepared::Call(p)) => p,
            Err(e) => {
                conclude(cx, name, s, e.verdict(mode(s)))?;
                continue;
            }
        };
        let authorization = cx
            .rt
            .guard_service_authorizations
            .get(i)
            .and_then(Option::as_deref);
        let headers = service::call_headers(&s.path, &s.authority, authorization);
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        match cx
            .host
            .dispatch(&s.cluster, &headers, pending.body(), s.timeout)
        {
            Ok(call) => {
                cx.facts.guard_call = Some((i, pending));
                return Ok(Go::Call(call));
            }
            Err(e) => {
                log::warn!("cannot reach guardrail cluster {}: {}", s.cluster, e.0);
                conclude(cx, name, s, ServiceError::Unreachable.verdict(mode(s)))?;
            }
        }
    }
    Ok(Go::Next)
}

/// The service called answered (`status` `None`: it did not): its verdict applied, then
/// the next service check asked.
pub fn answered(
    cx: &mut Cx<'_>,
    g: &Guardrails,
    status: Option<u32>,
    body: &[u8],
) -> Result<Go, Reply> {
    let Some((i, pending)) = cx.facts.guard_call.take() else {
        return Ok(Go::Next);
    };
    let Some(s) = service_of(g, i) else {
        return Ok(Go::Next);
    };
    let verdict = {
        let mut auth = cx.auth.borrow_mut();
        let cache = verdict_cache(&mut auth.verdicts, cx.host, g.cache_entries);
        pending.answered(status, body, cache)
    };
    let verdict = verdict.unwrap_or_else(|e| e.verdict(mode(s)));
    conclude(cx, check_name(g, i), s, verdict)?;
    ask(cx, g, i + 1)
}

/// The service checks that judge this request, with their index.
fn services<'g>(cx: &Cx<'_>, g: &'g Guardrails) -> impl Iterator<Item = (usize, &'g Service)> {
    let applying = super::guard::applying(cx, g, |k| matches!(k, CheckKind::Service(_)));
    applying
        .into_iter()
        .filter_map(move |i| service_of(g, i).map(|s| (i, s)))
}

pub(in crate::flow) fn service_of(g: &Guardrails, i: usize) -> Option<&Service> {
    match &g.checks.get(i)?.kind {
        CheckKind::Service(s) => Some(s),
        CheckKind::Detect { .. } => None,
    }
}

pub(in crate::flow) fn check_name(g: &Guardrails, i: usize) -> &str {
    g.checks.get(i).map_or("", |c| c.name.as_str())
}

pub(in crate::flow) fn mode(s: &Service) -> FailureMode {
    if s.fail_open {
        FailureMode::Open
    } else {
        FailureMode::Closed
    }
}

/// What to ask the service about the body as it stands (the detectors' masks and the
/// earlier services' replacements in it): `None` without a body.
fn prepare(
    cx: &mut Cx<'_>,
    shape: Shape,
    check: &str,
    cache_entries: usize,
) -> Option<Result<Prepared, ServiceError>> {
    let sent = cx.body?;
    let rescanned = match &cx.facts.masked_body {
        // Masks change strings only: the body still scans. Were it ever not to, the
        // check could not be made, which its failure mode answers (never a silent pass).
        Some(m) => match request_body::scan(m) {
            Ok(b) => Some(b),
            Err(_) => return Some(Err(ServiceError::Malformed)),
        },
        None => None,
    };
    let body: &Body<'_> = rescanned.as_ref().unwrap_or(sent);
    let texts = extract::texts(shape, body);
    let values: Vec<_> = texts.iter().map(|t| t.value()).collect();
    let pieces: Vec<Piece<'_>> = texts
        .iter()
        .zip(&values)
        .map(|(t, v)| Piece {
            span: t.at..t.at + t.raw.len(),
            text: v,
        })
        .collect();
    let caller = cx.facts.caller.as_ref();
    let meta = Metadata {
        model: cx.facts.model.as_deref(),
        caller: caller.map(|c| c.user.as_str()),
        tenant: caller.and_then(|c| c.tenant.as_deref()),
        request_id: Some(cx.facts.request_id.as_str()),
    };
    let mut auth = cx.auth.borrow_mut();
    let cache = verdict_cache(&mut auth.verdicts, cx.host, cache_entries);
    Some(service::prepare(
        check,
        Stage::Request,
        &meta,
        &pieces,
        cache,
        Limits::default(),
    ))
}

/// The worker's verdict cache, made on first use (its hash key from the host's CSPRNG).
pub(in crate::flow) fn verdict_cache<'c>(
    slot: &'c mut Option<VerdictCache>,
    host: &dyn crate::host::Host,
    entries: usize,
) -> &'c mut VerdictCache {
    slot.get_or_insert_with(|| VerdictCache::new(seed(&host.random_id()), entries, CACHE_MAX_BYTES))
}

/// A check's verdict: recorded, then the request blocked, rewritten or let go.
fn conclude(cx: &mut Cx<'_>, name: &str, s: &Service, verdict: Verdict) -> Result<(), Reply> {
    let (action, count) = match &verdict {
        // Nothing to say: a clean verdict is not recorded (the record lists what
        // guardrails did, and `NONE` did nothing).
        Verdict::Allowed(edits) if edits.is_empty() => return Ok(()),
        Verdict::Allowed(edits) => (GuardAction::Mask, edits.len() as u64),
        Verdict::Blocked(_) => (GuardAction::Block, 0),
        Verdict::Unchecked(_) => (GuardAction::Unchecked, 0),
    };
    record(
        cx,
        vec![GuardVerdict {
            name: name.to_owned(),
            category: "service".to_owned(),
            action,
            stage: GuardStage::Request,
            count,
        }],
    );
    match verdict {
        Verdict::Allowed(edits) => {
            cx.host.count(Counter::GuardrailMasked);
            let current = match (cx.facts.masked_body.take(), cx.body) {
                (Some(m), _) => m,
                (None, Some(b)) => b.raw().to_vec(),
                // The executor reads the body again after the call: without it the
                // replacements cannot be made, and the texts must not go as they were.
                (None, None) => return Err(reply::internal("guardrail_service")),
            };
            cx.facts.masked_body = Some(service::apply(&current, &edits));
            Ok(())
        }
        Verdict::Blocked(BlockCause::Service) => {
            cx.host.count(Counter::GuardrailBlocked);
            Err(blocked(name))
        }
        Verdict::Blocked(BlockCause::Unavailable(e)) => {
            log::warn!(
                "guardrail {name}: service {} {}: blocked (failure_mode closed)",
                s.cluster,
                e.name()
            );
            cx.host.count(Counter::GuardrailUnavailable);
            Err(unavailable(name))
        }
        Verdict::Unchecked(e) => {
            log::warn!(
                "guardrail {name}: service {} {}: let through unchecked (failure_mode open)",
                s.cluster,
                e.name()
            );
            cx.host.count(Counter::GuardrailUnavailable);
            Ok(())
        }
    }
}

/// The error a client gets when a service said `BLOCKED`: the check, never the service's
/// reason (it may quote the data).
fn blocked(check: &str) -> Reply {
    reply::bad_request(
        GUARDRAIL_BLOCKED,
        &format!(
            "The gateway's guardrail '{check}' blocked this request: its guardrail service \
             (category service) refused the content. Change it and send the request again."
        ),
    )
}

/// The error a client gets when a service failing closed could not judge: retryable, as
/// the policy service's outage is.
fn unavailable(check: &str) -> Reply {
    reply::error(
        503,
        "service_unavailable",
        GUARDRAIL_UNAVAILABLE,
        &format!(
            "The gateway's guardrail '{check}' could not check this request (its guardrail \
             service is unavailable), so it was not sent. Try again shortly."
        ),
    )
}
