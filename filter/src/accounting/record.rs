//! The one usage record every request ends as: for the access log (filter state), the
//! ledger (policy service) and the audit trail. Counts, ids and outcomes only; no prompt
//! or completion text, ever.

use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct UsageRecord<'a> {
    /// The gateway's own id for this request: unique, the ledger's idempotency key.
    pub request_id: &'a str,
    /// The lease slot the request was admitted on: the reservation its record releases.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reservation_id: Option<&'a str>,
    /// Envoy's `x-request-id`, to correlate with Envoy's logs and traces.
    pub trace_id: &'a str,
    pub user: Option<&'a str>,
    pub tenant: Option<&'a str>,
    pub groups: &'a [String],
    pub cost_center: Option<&'a str>,
    pub model: Option<&'a str>,
    /// What the ledger keys the model under: a name the configuration holds, or `other`.
    pub model_key: Option<&'a str>,
    pub provider: Option<&'a str>,
    pub format: Option<&'a str>,
    pub stream: bool,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_input_tokens: u64,
    pub reasoning_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cost_micros: u64,
    pub estimated: bool,
    pub status: u32,
    pub decision: &'a str,
    pub latency_ms: u64,
    pub ttft_ms: Option<u64>,
    pub completed: bool,
    pub error: Option<&'a str>,
    pub ts_ms: u64,
}
