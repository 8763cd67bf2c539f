//! The policy service's answer to an [`AuthorizeRequest`](crate::AuthorizeRequest).

use serde::{Deserialize, Deserializer, Serialize};

#[cfg(test)]
use crate::{bounds::MAX_LEASE_SLOTS, schema_tests::REASONS};
use crate::{Required, Tag};

/// Why a request was denied: the deny reasons the policy service gives. A reader takes
/// any text (a newer service may give more) and falls back to its own for none.
pub mod reason {
    /// An rpm or tpm limit.
    pub const RATE_LIMITED: &str = "rate_limited";
    /// A budget, in dollars or tokens.
    pub const BUDGET_EXCEEDED: &str = "budget_exceeded";
    /// The model has no price and a dollar budget applies: waiting does not help.
    pub const UNPRICED_MODEL: &str = "unpriced_model";
}

/// The policy service's answer to an authorize request: an allow or a denial, told
/// apart by `allow`.
// `S` holds text: `&str` when the service writes, `String` when the filter reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
#[cfg_attr(test, derive(schemars::JsonSchema), schemars(rename = "Decision"))]
pub enum Decision<S = String> {
    Allow(Allow<S>),
    Deny(Deny<S>),
}

/// The request may go ahead; its worst case is reserved against every budget.
///
/// The top-level `limit`, `remaining` and `reset_after_ms` describe the tightest limit
/// (least left, as a share of itself), absent when no limit applies: the filter turns
/// them into the `x-ratelimit-*` headers clients know from OpenAI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema), schemars(rename = "Allow"))]
pub struct Allow<S = String> {
    pub allow: Tag<true>,
    /// Every limit that applies, for clients and operators; the filter does not read it.
    pub limits: Vec<LimitState<S>>,
    /// Requests' worth granted as a lease (each slot reserved on its own), sent only for
    /// more than one: a per-request answer keeps its documented shape.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, schemars(range(min = 2, max = MAX_LEASE_SLOTS)))]
    pub slots: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remaining: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reset_after_ms: Option<u64>,
}

/// One limit's state, as an allow lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema), schemars(rename = "LimitState"))]
pub struct LimitState<S = String> {
    /// `<scope>:<metric>[:<period>]`: `user:rpm`, `tenant:usd_micros:month`.
    pub name: S,
    pub limit: u64,
    pub remaining: u64,
    pub reset_after_ms: u64,
}

/// The request may not go ahead; nothing was reserved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema), schemars(rename = "Deny"))]
pub struct Deny<S = String> {
    pub allow: Tag<false>,
    /// `rate_limited` (an rpm or tpm limit), `budget_exceeded` (a budget in dollars or
    /// tokens) or `unpriced_model` (the model has no price and a dollar budget applies).
    #[cfg_attr(test, schemars(extend("enum" = REASONS)))]
    pub reason: Required<S>,
    /// The tripped limit's name, as an allow's `limits` name it; not read by the filter.
    pub limit_name: S,
    /// Names the limit and its owner, for the client: `tenant acme's monthly budget of
    /// $500.00 is spent`.
    pub message: Required<S>,
    /// The tripped limit; not read by the filter.
    pub limit: u64,
    /// Always 0; not read by the filter.
    #[cfg_attr(test, schemars(range(max = 0)))]
    pub remaining: u64,
    /// When the tripped limit lets a request like this through again; absent for
    /// `unpriced_model`, which waiting does not cure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

/// Read as the filter always has: `allow` decides, any other field may be absent (a
/// denial without a reason is still a denial), and one of the wrong type makes the whole
/// answer unreadable. What the filter does not read is left empty.
impl<'de, S: Deserialize<'de> + Default> Deserialize<'de> for Decision<S> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(bound(deserialize = "S: Deserialize<'de>"))]
        struct Read<S> {
            allow: bool,
            #[serde(default)]
            slots: Option<u64>,
            #[serde(default)]
            limit: Option<u64>,
            #[serde(default)]
            remaining: Option<u64>,
            #[serde(default)]
            reset_after_ms: Option<u64>,
            reason: Required<S>,
            message: Required<S>,
            #[serde(default)]
            retry_after_ms: Option<u64>,
        }
        let read = Read::<S>::deserialize(deserializer)?;
        Ok(if read.allow {
            Decision::Allow(Allow {
                allow: Tag,
                limits: Vec::new(),
                slots: read.slots,
                limit: read.limit,
                remaining: read.remaining,
                reset_after_ms: read.reset_after_ms,
            })
        } else {
            Decision::Deny(Deny {
                allow: Tag,
                reason: read.reason,
                limit_name: S::default(),
                message: read.message,
                limit: 0,
                remaining: 0,
                retry_after_ms: read.retry_after_ms,
            })
        })
    }
}
