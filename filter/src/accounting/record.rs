//! The one usage record every request ends as: for the access log (filter state), the
//! ledger (policy service) and the audit trail. Counts, ids and outcomes only; no prompt
//! or completion text, ever.

/// The record, holding the request's own strings (see the contract crate).
pub type UsageRecord<'a> = chokepoint_contract::UsageRecord<&'a str, &'a [String]>;
