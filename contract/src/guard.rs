//! What a usage record says about the request's guardrails ([`GuardVerdict`], in
//! `UsageRecord.guardrails`): which check found what kind of data, what it did, and how
//! often. Names and counts only: never the text a check matched.

use serde::{Deserialize, Serialize};

#[cfg(test)]
use crate::{bounds::*, schema_tests::*};

/// What a guardrail did. Ordered weakest to strongest: a request's strongest action is
/// the one it is published under (`chokepoint.guardrail.action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub enum GuardAction {
    /// An external guardrail service could not be asked (down, slow, unreadable) and its
    /// `failure_mode: open` let the request through unjudged.
    Unchecked,
    /// Allowed and recorded.
    Flag,
    /// The matched values were replaced by placeholders in what the provider received.
    Mask,
    /// Refused: the client got the API's error (`guardrail_blocked`), the provider
    /// nothing (or, for an answer, no more).
    Block,
}

impl GuardAction {
    pub fn as_str(self) -> &'static str {
        match self {
            GuardAction::Unchecked => "unchecked",
            GuardAction::Flag => "flag",
            GuardAction::Mask => "mask",
            GuardAction::Block => "block",
        }
    }
}

/// Where in the exchange a guardrail judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub enum GuardStage {
    /// The request, before it went to the provider.
    Request,
    /// The answer, as it came back.
    Response,
}

/// One guardrail's verdict on one stage of a request: one entry per (check, category,
/// stage), at most [`MAX_GUARD_VERDICTS`](crate::bounds::MAX_GUARD_VERDICTS) per record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(deserialize = "S: Deserialize<'de>"))]
#[cfg_attr(
    test,
    derive(schemars::JsonSchema),
    schemars(rename = "GuardVerdict", bound = "S: schemars::JsonSchema")
)]
pub struct GuardVerdict<S = String> {
    /// The check's name in the policy file (`guardrails.checks[].name`).
    #[cfg_attr(test, schemars(length(min = 1, max = MAX_GUARD_NAME_BYTES), pattern(GUARD_NAME)))]
    pub name: S,
    /// What kind of data it found: a rule category (`secret`, `personal`), or `service`
    /// for an external guardrail service's verdict.
    #[cfg_attr(test, schemars(length(min = 1, max = MAX_GUARD_NAME_BYTES), pattern(GUARD_NAME)))]
    pub category: S,
    pub action: GuardAction,
    pub stage: GuardStage,
    /// How many values it found (for a service's verdict, 1).
    #[cfg_attr(test, schemars(range(max = MAX_USAGE_COUNT)))]
    pub count: u64,
}
