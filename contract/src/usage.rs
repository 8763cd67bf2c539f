//! `POST /v1/usage`: what proxied requests consumed, in batches, and what the ledger made
//! of them.

use serde::{Deserialize, Serialize};

use crate::defaults::or_default;
use crate::guard::GuardVerdict;
use crate::mcp::McpUsage;
use crate::Required;
#[cfg(test)]
use crate::{bounds::*, schema_tests::*};

/// The one record every request ends as: the access log's (filter state), the ledger's
/// and the audit trail's. Counts, ids and outcomes only; no prompt or completion text,
/// ever.
///
// `S` holds text and `L` the groups: `&str` and `&[String]` when the filter writes,
// `String` and `Vec<String>` when the ledger reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(deserialize = "S: Deserialize<'de>, L: Deserialize<'de> + Default"))]
#[cfg_attr(
    test,
    derive(schemars::JsonSchema),
    schemars(
        rename = "UsageRecord",
        bound = "S: schemars::JsonSchema, L: schemars::JsonSchema + Default"
    )
)]
pub struct UsageRecord<S = String, L = Vec<String>> {
    /// The gateway's own id for this request: unique, the ledger's idempotency key.
    #[cfg_attr(test, schemars(length(min = 1, max = MAX_REQUEST_ID_BYTES), pattern(ID)))]
    pub request_id: Required<S>,
    /// The lease slot the request was admitted on: the reservation its record releases
    /// (absent: the request's own).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, schemars(length(min = 1, max = MAX_REQUEST_ID_BYTES), pattern(ID)))]
    pub reservation_id: Option<S>,
    /// Envoy's `x-request-id`, to correlate with Envoy's logs and traces.
    #[cfg_attr(test, schemars(length(max = MAX_REQUEST_ID_BYTES)))]
    pub trace_id: Option<S>,
    /// The caller's pseudonymous id; null in the access log for a request refused before
    /// it was known, and never sent to the ledger then.
    #[cfg_attr(test, schemars(pattern(UUID)))]
    pub user: Option<S>,
    #[cfg_attr(test, schemars(length(max = MAX_NAME_BYTES)))]
    pub tenant: Option<S>,
    #[serde(default, deserialize_with = "or_default")]
    #[cfg_attr(test, schemars(length(max = MAX_GROUPS), inner(length(max = MAX_NAME_BYTES))))]
    pub groups: L,
    #[cfg_attr(test, schemars(length(max = MAX_NAME_BYTES)))]
    pub cost_center: Option<S>,
    /// The calling tool, `<name>/<version>` (`claude-code/2.1.332`, `codex/0.171.0`,
    /// `openai-python/3.57.0`), from its `user-agent` and its own headers. Attribution
    /// only: the client chooses it, so nothing is priced, routed or limited by it. Absent
    /// in records written before it existed, null when nothing could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, schemars(length(min = 1, max = MAX_CLIENT_BYTES), pattern(CLIENT)))]
    pub client: Option<S>,
    /// The agent's own session id where it sends one (Claude Code's
    /// `x-claude-code-session-id`, Codex's `session-id`): the turns of one session share
    /// it. Attribution only, like `client`; absent when the tool sent none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, schemars(length(min = 1, max = MAX_SESSION_BYTES), pattern(SESSION)))]
    pub session: Option<S>,
    /// The model the client asked for; the audit trail keeps it.
    #[cfg_attr(test, schemars(length(max = MAX_NAME_BYTES)))]
    pub model: Option<S>,
    /// What the ledger keys the model under: a name the configuration holds, or `other`.
    #[cfg_attr(test, schemars(length(min = 1, max = MAX_NAME_BYTES), pattern(NOT_BLANK)))]
    pub model_key: Option<S>,
    #[cfg_attr(test, schemars(length(max = MAX_NAME_BYTES)))]
    pub provider: Option<S>,
    /// The API format the request was in (`openai_chat`, `anthropic_messages`, ...).
    #[cfg_attr(test, schemars(length(max = MAX_NAME_BYTES)))]
    pub format: Option<S>,
    /// The provider's API family (`openai`, `anthropic`, `gemini`, `azure`); absent for
    /// a request that named none, and in records written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, schemars(length(min = 1, max = MAX_NAME_BYTES), pattern(NOT_BLANK)))]
    pub api: Option<S>,
    /// The GenAI operation of the endpoint, in OpenTelemetry's names (`chat`,
    /// `text_completion`, `embeddings`, `generate_content`); absent for an endpoint that
    /// is none (a model list, a token count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, schemars(length(min = 1, max = MAX_NAME_BYTES), pattern(NOT_BLANK)))]
    pub operation: Option<S>,
    #[serde(default, deserialize_with = "or_default")]
    pub stream: bool,
    #[serde(default, deserialize_with = "or_default")]
    #[cfg_attr(test, schemars(range(max = MAX_USAGE_COUNT)))]
    pub input_tokens: u64,
    #[serde(default, deserialize_with = "or_default")]
    #[cfg_attr(test, schemars(range(max = MAX_USAGE_COUNT)))]
    pub output_tokens: u64,
    #[serde(default, deserialize_with = "or_default")]
    #[cfg_attr(test, schemars(range(max = MAX_USAGE_COUNT)))]
    pub cached_input_tokens: u64,
    #[serde(default, deserialize_with = "or_default")]
    #[cfg_attr(test, schemars(range(max = MAX_USAGE_COUNT)))]
    pub reasoning_tokens: u64,
    #[serde(default, deserialize_with = "or_default")]
    #[cfg_attr(test, schemars(range(max = MAX_USAGE_COUNT)))]
    pub cache_creation_input_tokens: u64,
    #[serde(default, deserialize_with = "or_default")]
    #[cfg_attr(test, schemars(range(max = MAX_USAGE_COUNT)))]
    pub cost_micros: u64,
    /// The counts were estimated (the provider reported none, e.g. a cut-off stream).
    #[serde(default, deserialize_with = "or_default")]
    pub estimated: bool,
    /// The HTTP status the client got.
    pub status: Option<u32>,
    /// What the gateway decided: `allowed`, `denied`, `allowed_fail_open`, ...
    #[cfg_attr(test, schemars(length(max = MAX_NAME_BYTES)))]
    pub decision: Option<S>,
    pub latency_ms: Option<u64>,
    /// Time to the first response byte; null when none came.
    pub ttft_ms: Option<u64>,
    pub completed: Option<bool>,
    /// The provider's error label, if it answered with one.
    #[cfg_attr(test, schemars(length(max = MAX_NAME_BYTES)))]
    pub error: Option<S>,
    /// When the request started, by the filter's clock (ms since the epoch): picks the
    /// ledger's day.
    pub ts_ms: Option<u64>,
    /// The version of the policy the gateway applied: a digest of its configuration,
    /// as the renderer wrote it; absent when the configuration names none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, schemars(length(min = 1, max = MAX_VERSION_BYTES), pattern(VERSION)))]
    pub policy_version: Option<S>,
    /// The version of the price table `cost_micros` was computed with (a digest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, schemars(length(min = 1, max = MAX_VERSION_BYTES), pattern(VERSION)))]
    pub price_version: Option<S>,
    /// An MCP exchange's server, method, name and outcome; absent for model requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mcp: Option<McpUsage<S>>,
    /// What the guardrails found and did, one entry per (check, category, stage); absent
    /// when no check found anything (and in records written before they existed).
    #[serde(
        default,
        deserialize_with = "or_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[cfg_attr(test, schemars(length(max = MAX_GUARD_VERDICTS)))]
    pub guardrails: Vec<GuardVerdict<S>>,
}

/// A batch of usage records, and of lease slots the filter did not use, to release. A
/// record or slot id that is invalid on its own is dead-lettered, not the batch refused.
// `R` holds a record and `I` a slot's id. The filter splices the queued JSON of each into
// the body as it is, without this type; the ledger reads each raw, to judge it on its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(deserialize = "R: Deserialize<'de>, I: Deserialize<'de>"))]
#[cfg_attr(test, derive(schemars::JsonSchema), schemars(rename = "UsageBatch"))]
pub struct UsageBatch<R = UsageRecord, I = String> {
    #[cfg_attr(test, schemars(length(max = MAX_USAGE_RECORDS)))]
    pub records: Required<Vec<R>>,
    /// Lease slots (`<request_id>.<n>`) the filter did not use: their reservations go.
    #[serde(default, deserialize_with = "or_default")]
    #[cfg_attr(
        test,
        schemars(
            length(max = MAX_USAGE_RECORDS),
            inner(length(min = 1, max = MAX_REQUEST_ID_BYTES), pattern(ID))
        )
    )]
    pub releases: Vec<I>,
}

/// What the ledger made of a batch. Every record it accepted is booked (a duplicate was
/// booked before); those it could not book are kept in its dead-letter stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct UsageAnswer {
    /// Not read by the filter.
    #[serde(skip_deserializing)]
    pub accepted: u64,
    /// Not read by the filter.
    #[serde(skip_deserializing)]
    pub duplicates: u64,
    /// Invalid records (and release ids) kept, not booked.
    #[serde(default)]
    pub dead_lettered: u64,
    /// Slots released, sent when the batch named any; not read by the filter.
    #[serde(skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub released: Option<u64>,
}
