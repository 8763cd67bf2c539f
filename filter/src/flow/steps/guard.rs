//! Guard: the policy's guardrail checks on what the request sends. Each check whose
//! scope covers the request (its model, the caller's tenant and groups) looks for its
//! rules' findings in every text of the body (see `guardrails::extract`), found once per
//! text block per worker (the scan cache: an agent resending its history pays for the
//! new turn only). The strongest action wins: `block` answers 400 `guardrail_blocked` in
//! the API's own error shape, naming the check and the category, never the value;
//! `mask` hands `edit` the body with each value replaced by its placeholder; `flag` lets
//! it go. Then the checks that ask an external service, one after another (see
//! `guard_service`). Every verdict goes into the record. Before `admit`, so a blocked
//! request reserves no budget.

use chokepoint_guard::ScanCache;

use super::guard_service;
use crate::flow::step::{Cx, Go, Step};
use crate::guardrails::config::{CheckKind, Guardrails};
use crate::guardrails::extract::{self, Shape};
use crate::guardrails::judge::{self, Blocked};
use crate::guardrails::splice;
use crate::host::Counter;
use crate::providers::reply::{self, Reply};

pub struct Guard;

impl Step for Guard {
    fn name(&self) -> &'static str {
        "guard"
    }

    fn reads_body(&self) -> bool {
        true
    }

    fn run(&self, cx: &mut Cx<'_>) -> Result<Go, Reply> {
        let rt = std::rc::Rc::clone(cx.rt);
        let Some(g) = rt.config.guardrails.as_ref() else {
            return Ok(Go::Next);
        };
        detect(cx, g)?;
        guard_service::ask(cx, g, 0)
    }

    /// A service check's service answered.
    fn answered(&self, cx: &mut Cx<'_>, status: Option<u32>, body: &[u8]) -> Result<Go, Reply> {
        let rt = std::rc::Rc::clone(cx.rt);
        let Some(g) = rt.config.guardrails.as_ref() else {
            return Ok(Go::Next);
        };
        guard_service::answered(cx, g, status, body)
    }
}

/// The detecting checks: judged, recorded, and blocked or masked.
fn detect(cx: &mut Cx<'_>, g: &Guardrails) -> Result<(), Reply> {
    let Some(body) = cx.body.filter(|_| cx.facts.mcp.is_none()) else {
        return Ok(());
    };
    let Some(shape) = cx.facts.endpoint.and_then(Shape::of) else {
        return Ok(());
    };
    let checks = applying(cx, g, |k| matches!(k, CheckKind::Detect { .. }));
    if checks.is_empty() {
        return Ok(());
    }
    let texts = extract::texts(shape, body);
    let judgement = {
        let mut auth = cx.auth.borrow_mut();
        let cache = match (&mut auth.scans, g.cache_entries) {
            (_, 0) => None,
            (Some(c), _) => Some(c),
            (scans @ None, entries) => Some(scans.insert(ScanCache::new(
                seed(&cx.host.random_id()),
                entries,
                CACHE_MAX_BYTES,
            ))),
        };
        judge::judge(g, &checks, &texts, cache, cx.rt.masker.as_ref())
    };
    record(cx, judgement.verdicts);
    if let Some(b) = judgement.blocked {
        cx.host.count(Counter::GuardrailBlocked);
        return Err(blocked(&b));
    }
    if !judgement.masks.is_empty() {
        cx.host.count(Counter::GuardrailMasked);
        cx.facts.masked_body = Some(splice::splice(body.raw(), &judgement.masks));
    }
    Ok(())
}

/// The checks of this kind that judge this request: on requests, and in its scope.
pub(super) fn applying(
    cx: &Cx<'_>,
    g: &Guardrails,
    kind: impl Fn(&CheckKind) -> bool,
) -> Vec<usize> {
    let caller = cx.facts.caller.as_ref();
    let model = cx.facts.model.as_deref();
    let tenant = caller.and_then(|c| c.tenant.as_deref());
    let groups = caller.map_or(&[][..], |c| c.groups.as_slice());
    g.checks
        .iter()
        .enumerate()
        .filter(|(_, c)| c.on_request && kind(&c.kind) && c.scope.covers(model, tenant, groups))
        .map(|(i, _)| i)
        .collect()
}

/// Adds verdicts to the record's, keeping at most its bound.
pub(super) fn record(cx: &mut Cx<'_>, verdicts: Vec<chokepoint_contract::GuardVerdict>) {
    let room =
        chokepoint_contract::bounds::MAX_GUARD_VERDICTS.saturating_sub(cx.facts.guardrails.len());
    cx.facts.guardrails.extend(verdicts.into_iter().take(room));
}

/// What the scan cache may hold besides its entries' count: findings are a few words
/// each, so this bounds a worker's cache to a few MB whatever the requests.
pub(super) const CACHE_MAX_BYTES: usize = 4 * 1024 * 1024;

/// The cache's hash key from the host's random id (128 bits, hex).
pub(super) fn seed(random_id: &str) -> [u8; 16] {
    let mut seed = [0u8; 16];
    let hex = random_id.as_bytes();
    for (i, b) in seed.iter_mut().enumerate() {
        let digit = |at: usize| {
            hex.get(at)
                .and_then(|c| (*c as char).to_digit(16))
                .unwrap_or(0) as u8
        };
        *b = digit(2 * i) << 4 | digit(2 * i + 1);
    }
    seed
}

/// The error a blocked client gets: the check, the category and the rule, never the
/// value found.
pub fn blocked(b: &Blocked) -> Reply {
    reply::bad_request(
        GUARDRAIL_BLOCKED,
        &format!(
            "The gateway's guardrail '{}' blocked this request: it carries {} data (rule {}). \
             Remove it and send the request again.",
            b.check, b.category, b.rule
        ),
    )
}

/// The error code of a request a guardrail blocked.
pub const GUARDRAIL_BLOCKED: &str = "guardrail_blocked";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_is_the_random_id_s_bits() {
        assert_eq!(
            seed("000102030405060708090a0b0c0d0eff"),
            [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 255]
        );
        assert_ne!(seed(&format!("{:032x}", 1)), seed(&format!("{:032x}", 2)));
    }
}
