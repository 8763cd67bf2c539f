//! The detecting checks' verdict on a request's texts: what each check found (per
//! category), whether one blocks it, and the strings to rewrite where checks mask. The
//! strongest action wins: a block sends nothing (no masks); masks apply to the values
//! masking checks found; flags are recorded only.

use chokepoint_contract::{GuardStage, GuardVerdict};
use chokepoint_guard::{Finding, Masker, ScanCache};

use super::config::{Action, CheckKind, Guardrails};
use super::extract::Text;
use super::splice::Replace;

/// The check that blocked a request, for its error: names only, never the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    pub check: String,
    pub category: &'static str,
    pub rule: String,
}

#[derive(Debug, Default)]
pub struct Judgement {
    /// One per (check, category) that found something, in check order.
    pub verdicts: Vec<GuardVerdict>,
    /// The first blocking check that found something.
    pub blocked: Option<Blocked>,
    /// The texts to rewrite, masked, in body order; none when the request is blocked.
    pub masks: Vec<Replace>,
}

/// Judges `texts` by the detecting checks `checks` (indexes into `g.checks`, those that
/// apply to the request). Findings come from `cache` when it has the block; `masker` is
/// there when a check masks.
pub fn judge(
    g: &Guardrails,
    checks: &[usize],
    texts: &[Text<'_>],
    mut cache: Option<&mut ScanCache>,
    masker: Option<&Masker>,
) -> Judgement {
    let detecting: Vec<(usize, &[usize], Action)> = checks
        .iter()
        .filter_map(|&i| match &g.checks.get(i)?.kind {
            CheckKind::Detect { rules, action } => Some((i, rules.as_slice(), *action)),
            CheckKind::Service(_) => None,
        })
        .collect();
    let mut judgement = Judgement::default();
    if detecting.is_empty() {
        return judgement;
    }
    let set = &g.rules;
    // (check, category) -> count, in the order found; then sorted into check order.
    let mut counts: Vec<(usize, &'static str, u64)> = Vec::new();
    for text in texts {
        // Keyed by the string as it arrived: a block seen before is neither decoded nor
        // scanned again (on a 64 KB agent turn, decoding was half the work).
        let findings = match cache.as_deref_mut() {
            Some(c) => c.scan_keyed(set, text.raw, || text.value()),
            None => set.scan(&text.value()),
        };
        let mut masked: Vec<Finding> = Vec::new();
        for f in &findings {
            let category = set.category(f.rule).as_str();
            for &(check, rules, action) in &detecting {
                if rules.binary_search(&f.rule).is_err() {
                    continue;
                }
                match counts
                    .iter_mut()
                    .find(|(c, cat, _)| *c == check && *cat == category)
                {
                    Some((_, _, n)) => *n += 1,
                    None => counts.push((check, category, 1)),
                }
                match action {
                    Action::Block if judgement.blocked.is_none() => {
                        judgement.blocked = Some(Blocked {
                            check: g
                                .checks
                                .get(check)
                                .map(|c| c.name.clone())
                                .unwrap_or_default(),
                            category,
                            rule: set.id(f.rule).to_owned(),
                        });
                    }
                    Action::Mask if masked.last() != Some(f) => masked.push(*f),
                    _ => {}
                }
            }
        }
        if let (false, Some(masker)) = (masked.is_empty(), masker) {
            judgement.masks.push(Replace {
                at: text.at,
                len: text.raw.len(),
                value: chokepoint_guard::mask(&text.value(), &masked, set, masker),
            });
        }
    }
    if judgement.blocked.is_some() {
        judgement.masks.clear();
    }
    counts.sort_by_key(|(check, _, _)| *check);
    judgement.verdicts = counts
        .into_iter()
        .filter_map(|(check, category, count)| {
            let c = g.checks.get(check)?;
            let action = match c.kind {
                CheckKind::Detect { action, .. } => action.verdict(),
                CheckKind::Service(_) => return None,
            };
            Some(GuardVerdict {
                name: c.name.clone(),
                category: category.to_owned(),
                action,
                stage: GuardStage::Request,
                count,
            })
        })
        .collect();
    judgement
}
