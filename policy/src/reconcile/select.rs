//! Which access-log lines the ledger must have: exactly the records the filter delivers.
//!
//! The access log line is the filter's record byte for byte (Envoy writes the filter
//! state the filter set from the same JSON it queues for the ledger), so a record is sent
//! as it was logged, after it parsed as the contract's usage record. The filter queues a
//! record only for a request that reached a provider for a known caller (see the filter's
//! `flow/record.rs`): a decision of `allowed` or `allowed_fail_open`, or an answer a
//! guardrail blocked on its way back (`guardrail_blocked` with a blocking verdict on the
//! response: the provider was called, so it is charged), and a user. Refusals are in the
//! log only.

use std::time::Duration;

use chokepoint_contract::{GuardAction, GuardStage, UsageRecord};
use serde_json::value::RawValue;

/// A margin against clock skew between the host that wrote the record and the one that
/// books it: a record is booked only while it is younger than the dedupe window less
/// this.
pub const SKEW_MARGIN: Duration = Duration::from_secs(600);

#[derive(Debug)]
pub enum Verdict {
    /// A record the filter delivers: its request id and its JSON as logged.
    Charged {
        request_id: String,
        raw: Box<RawValue>,
    },
    /// Logged only: a refusal, or `-` (Envoy's mark for a request the filter made no
    /// record of).
    NotCharged,
    /// Charged, but older than the dedupe window allows to book safely (or without a
    /// time): its marker may be gone, and booking it could charge it twice.
    TooOld { request_id: String },
    /// Not a usage record: why, naming a field at most (never the line's content).
    Invalid(String),
}

/// Judges one line (without its newline) at `now_ms`.
pub fn judge(line: &[u8], now_ms: u64, dedupe_window: Duration) -> Verdict {
    let Ok(text) = std::str::from_utf8(line) else {
        return Verdict::Invalid("not UTF-8".into());
    };
    let text = text.trim();
    if text == "-" || text.is_empty() {
        return Verdict::NotCharged;
    }
    // serde would take an array for a struct, field by field.
    if !text.starts_with('{') {
        return Verdict::Invalid("not a JSON object".into());
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let record: UsageRecord = match serde_path_to_error::deserialize(&mut de) {
        Ok(r) => r,
        Err(e) => {
            // serde's message may quote the value; the path says where without it.
            let path = e.path().to_string();
            return Verdict::Invalid(if e.inner().is_syntax() || e.inner().is_eof() {
                "not JSON".into()
            } else {
                format!("not a usage record (at {path})")
            });
        }
    };
    if de.end().is_err() {
        return Verdict::Invalid("not JSON (text after the record)".into());
    }
    let Some(request_id) = record.request_id.get().filter(|id| !id.is_empty()).cloned() else {
        return Verdict::Invalid("no request_id".into());
    };
    if !charged(&record) {
        return Verdict::NotCharged;
    }
    let window_ms = dedupe_window.saturating_sub(SKEW_MARGIN).as_millis() as u64;
    match record.ts_ms {
        Some(ts) if ts.saturating_add(window_ms) > now_ms => {}
        _ => return Verdict::TooOld { request_id },
    }
    match RawValue::from_string(text.to_owned()) {
        Ok(raw) => Verdict::Charged { request_id, raw },
        Err(_) => Verdict::Invalid("not JSON".into()),
    }
}

/// Whether the filter queued this record for the ledger.
fn charged(r: &UsageRecord) -> bool {
    if r.user.as_deref().is_none_or(str::is_empty) {
        return false;
    }
    match r.decision.as_deref() {
        Some("allowed" | "allowed_fail_open") => true,
        Some("guardrail_blocked") => r
            .guardrails
            .iter()
            .any(|g| g.action == GuardAction::Block && g.stage == GuardStage::Response),
        _ => false,
    }
}
