//! The detecting checks' verdict on an answer (stage `response`): which checks apply to
//! the answer of a request, what they find in its texts (a whole answer's, or a stream's
//! window), and whether one blocks. `mask` does not exist here: the renderer refuses it
//! on responses, and a `mask` check is taken as `flag` should one arrive all the same.

use chokepoint_contract::{GuardAction, GuardStage, GuardVerdict};
use chokepoint_guard::ScanCache;

use super::config::{Action, CheckKind, Guardrails};
use super::judge::Blocked;

/// The detecting checks on responses whose scope covers the request.
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
                && matches!(c.kind, CheckKind::Detect { .. })
                && c.scope.covers(model, tenant, groups)
        })
        .map(|(i, _)| i)
        .collect()
}

/// What the checks found in an answer so far.
#[derive(Debug, Default)]
pub struct Seen {
    /// (check, category, count), in the order found.
    counts: Vec<(usize, &'static str, u64)>,
    /// The first blocking check that found something.
    pub blocked: Option<Blocked>,
}

impl Seen {
    /// Scans `text` with the checks `checks`, counting the findings that end after
    /// `fresh_from` (those before were counted by an earlier scan of a stream's window).
    /// The cache serves whole texts; a stream's window is new every time, so none.
    pub fn scan(
        &mut self,
        g: &Guardrails,
        checks: &[usize],
        text: &str,
        fresh_from: usize,
        cache: Option<&mut ScanCache>,
    ) {
        let findings = match cache {
            Some(c) => c.scan(&g.rules, text),
            None => g.rules.scan(text),
        };
        for f in findings.iter().filter(|f| f.end > fresh_from) {
            let category = g.rules.category(f.rule).as_str();
            for &i in checks {
                let Some(CheckKind::Detect { rules, action }) = g.checks.get(i).map(|c| &c.kind)
                else {
                    continue;
                };
                if rules.binary_search(&f.rule).is_err() {
                    continue;
                }
                match self
                    .counts
                    .iter_mut()
                    .find(|(c, cat, _)| *c == i && *cat == category)
                {
                    Some((_, _, n)) => *n += 1,
                    None => self.counts.push((i, category, 1)),
                }
                if *action == Action::Block && self.blocked.is_none() {
                    self.blocked = Some(Blocked {
                        check: g.checks.get(i).map(|c| c.name.clone()).unwrap_or_default(),
                        category,
                        rule: g.rules.id(f.rule).to_owned(),
                    });
                }
            }
        }
    }

    /// The verdicts, in check order.
    pub fn verdicts(mut self, g: &Guardrails) -> Vec<GuardVerdict> {
        self.counts.sort_by_key(|(check, _, _)| *check);
        self.counts
            .into_iter()
            .filter_map(|(check, category, count)| {
                let c = g.checks.get(check)?;
                let action = match c.kind {
                    CheckKind::Detect {
                        action: Action::Block,
                        ..
                    } => GuardAction::Block,
                    CheckKind::Detect { .. } => GuardAction::Flag,
                    CheckKind::Service(_) => return None,
                };
                Some(verdict(&c.name, category, action, count))
            })
            .collect()
    }
}

/// `unchecked` for each category the checks look for: the answer went to the client
/// unjudged (too large, compressed, or its headers could not be held).
pub fn unchecked(g: &Guardrails, checks: &[usize]) -> Vec<GuardVerdict> {
    let mut out: Vec<GuardVerdict> = Vec::new();
    for &i in checks {
        let Some(c) = g.checks.get(i) else { continue };
        let CheckKind::Detect { rules, .. } = &c.kind else {
            continue;
        };
        let mut categories: Vec<&'static str> = rules
            .iter()
            .map(|&r| g.rules.category(r).as_str())
            .collect();
        categories.sort_unstable();
        categories.dedup();
        out.extend(
            categories
                .into_iter()
                .map(|cat| verdict(&c.name, cat, GuardAction::Unchecked, 0)),
        );
    }
    out
}

fn verdict(name: &str, category: &str, action: GuardAction, count: u64) -> GuardVerdict {
    GuardVerdict {
        name: name.to_owned(),
        category: category.to_owned(),
        action,
        stage: GuardStage::Response,
        count,
    }
}
