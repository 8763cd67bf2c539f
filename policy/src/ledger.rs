//! The usage ledger: tokens, cost and request counts per user, tenant, model and cost
//! centre, per UTC day and month, with every request counted exactly once; and MCP
//! exchanges, which have no tokens or cost, counted per UTC day by user, server and tool
//! (see `mcp_counts`).
//!
//! Exactly once comes from the request id: `scripts/record_usage.lua` books a record
//! only if its `ck:usage:seen:{<request_id>}` marker is absent, and sets the marker in
//! the same atomic step. Retries within the dedupe window are therefore free of
//! side effects, whatever mix of old and new records a batch holds.
//!
//! Booking a record is also its commit against budgets: the same script call releases
//! the request's reservation, corrects its rate window's token count, and adds its
//! spend to rolling budget windows and the top-spender rankings. Day and month budgets
//! read the ledger hashes themselves, so a budget's spend is the ledger by construction.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chokepoint_contract::bounds::MAX_USAGE_COUNT;

use crate::client_tools;
use crate::keys::{self, Ranking};
use crate::mcp_counts::{mcp_count_field, mcp_counts_key, McpCount};
use crate::scope::Scope;
use crate::store::{ScopeWrite, Store, StoreError, UsageTally, UsageWrite};
use crate::utc_date::{Day, Period, MS_PER_DAY};
use crate::validated::UsageRecord;

/// The fields of every ledger hash, in the order [`Ledger::totals`] returns them.
pub const FIELDS: [&str; 8] = [
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "reasoning_tokens",
    "cache_creation_input_tokens",
    "cost_micros",
    "requests",
    "estimated_requests",
];

/// The audit stream of booked records (fields `record`, the record as the filter sent
/// it, and `day`, its booking day), kept within [`Retention`].
pub const AUDIT_LOG_KEY: &str = "ck:usage:log";

/// How much of the audit and dead-letter streams Redis keeps: about the newest
/// `max_len` entries (`XADD MAXLEN ~`) of at most about `max_age` (`XTRIM MINID ~`, by
/// Redis's clock). Both are approximate because Redis trims whole macro nodes, which is
/// far cheaper than an exact cap; either bound alone keeps the streams from growing
/// for good, together they bound them by volume and by time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub max_len: u64,
    pub max_age: Duration,
    /// Whether booked records are logged in the audit stream at all
    /// (`--usage-audit-stream`). Off, booking writes no entry per record (the gateway's
    /// access log is then the audit trail); the dead-letter stream is kept either way.
    pub audit: bool,
}

impl Retention {
    pub fn max_age_ms(&self) -> u64 {
        u64::try_from(self.max_age.as_millis()).unwrap_or(u64::MAX)
    }
}

/// `ck:ledger:<scope>:{<id>}:<YYYY-MM-DD|YYYY-MM>`.
///
/// The id sits in a hash tag so a scope's day and month keys share a Redis Cluster
/// slot. The period is fixed-format and comes last, so no two (id, period) pairs give
/// the same key whatever characters an id holds.
pub fn ledger_key(scope: Scope, id: &str, period: Period) -> String {
    format!("ck:ledger:{}:{{{id}}}:{period}", scope.as_str())
}

/// `ck:usage:seen:{<request_id>}`: present while a booked request id is remembered.
pub fn seen_key(request_id: &str) -> String {
    crate::keys::joined(&["ck:usage:seen:{", request_id, "}"])
}

/// `ck:usage:seen:{<tag>}:<request_id>`: in the cluster layout a record is booked by one
/// script call per hash tag it touches, each remembering it in its own slot.
pub fn slot_seen_key(tag: &str, request_id: &str) -> String {
    format!("ck:usage:seen:{{{tag}}}:{request_id}")
}

/// The UTC day a record is booked on: its own timestamp, so a batch retried across
/// midnight still lands on the day the requests happened, unless the timestamp is
/// missing or more than a day ahead of this server's clock (a broken filter clock must
/// not book usage into a future period nobody looks at yet).
pub fn booking_day(ts_ms: Option<u64>, now_ms: u64) -> Day {
    let ms = match ts_ms {
        Some(ts) if ts <= now_ms.saturating_add(MS_PER_DAY) => ts,
        _ => now_ms,
    };
    Day::from_unix_ms(ms)
}

#[derive(Debug, Clone, Copy)]
pub struct Ledger {
    /// How long a booked request id is remembered. A retry arriving later than this is
    /// booked again, so it must outlast the filter's longest retry.
    pub dedupe_window: Duration,
    /// What the audit and dead-letter streams keep.
    pub retention: Retention,
}

impl Ledger {
    /// Books `records` in order (a request id repeated within the batch counts once).
    /// Never fails as a whole: the tally says how many were booked, were duplicates, or
    /// could not be processed, and carries the store error if any could not.
    pub async fn book(&self, store: &Store, records: &[UsageRecord], now_ms: u64) -> UsageTally {
        if records.is_empty() {
            return UsageTally::default();
        }
        // A batch is mostly one caller's: its scopes' nine keys are built once per batch
        // and day, not once per record (the records share them).
        let mut scopes = ScopeCache::default();
        let writes: Vec<UsageWrite> = records
            .iter()
            .map(|record| write_with(record, now_ms, &mut scopes))
            .collect();
        // Config validation guarantees at least one second.
        let dedupe_secs = self.dedupe_window.as_secs().max(1);
        store
            .book_usage(&writes, dedupe_secs, AUDIT_LOG_KEY, self.retention)
            .await
    }

    /// The totals booked for `id` in `scope` over `period`, in [`FIELDS`] order; zeros
    /// when nothing was booked.
    pub async fn totals(
        &self,
        store: &Store,
        scope: Scope,
        id: &str,
        period: Period,
    ) -> Result<[i64; FIELDS.len()], StoreError> {
        let values = store
            .hash_integers(&ledger_key(scope, id, period), &FIELDS)
            .await?;
        let mut totals = [0; FIELDS.len()];
        for (total, value) in totals.iter_mut().zip(values) {
            *total = value.unwrap_or(0);
        }
        Ok(totals)
    }
}

/// The [`ScopeWrite`]s built so far in one batch, by scope and booking day, then id.
#[derive(Default)]
struct ScopeCache(HashMap<(Scope, Day), HashMap<String, Arc<ScopeWrite>>>);

impl ScopeCache {
    fn get(&mut self, scope: Scope, id: &str, day: Day) -> Arc<ScopeWrite> {
        let by_id = self.0.entry((scope, day)).or_default();
        if let Some(write) = by_id.get(id) {
            return Arc::clone(write);
        }
        let (on_day, in_month) = (Period::Day(day), Period::Month(day.month()));
        let write = Arc::new(ScopeWrite {
            keys: [
                ledger_key(scope, id, on_day),
                ledger_key(scope, id, in_month),
                keys::limits_key(scope, id),
                keys::limits_key(scope, keys::DEFAULT_ID),
                keys::rolling_key(scope, id),
                keys::top_key(scope, Ranking::CostMicros, on_day),
                keys::top_key(scope, Ranking::CostMicros, in_month),
                keys::top_key(scope, Ranking::Tokens, on_day),
                keys::top_key(scope, Ranking::Tokens, in_month),
            ],
            id: id.to_owned(),
        });
        by_id.insert(id.to_owned(), Arc::clone(&write));
        write
    }
}

#[cfg(test)]
fn write_for(record: &UsageRecord, now_ms: u64) -> UsageWrite {
    write_with(record, now_ms, &mut ScopeCache::default())
}

fn write_with(record: &UsageRecord, now_ms: u64, cache: &mut ScopeCache) -> UsageWrite {
    let day = booking_day(record.ts_ms, now_ms);
    // An empty or blank id names no tenant (or model, or cost centre): the read API
    // cannot ask for it, so booking under it would only hide the usage.
    fn named(id: &Option<String>) -> Option<&str> {
        id.as_deref().filter(|id| !id.trim().is_empty())
    }
    // The model key when the filter sent one: ledger keys and rankings exist only for
    // the models of the policy (and `other`), whatever names clients make up.
    let model = named(&record.model_key).or_else(|| named(&record.model));
    let mut mcp_counts = Vec::new();
    if let Some(mcp) = &record.mcp {
        let mut counted = vec![(Scope::McpServer, mcp.server.clone())];
        // A tool the server does not know (-32602, "Unknown tool") is counted for the
        // server only: tool names are the client's, and each would be a field of its own
        // in the day's hash.
        if let Some(tool) = mcp.tool().filter(|_| mcp.rpc_error != Some(-32602)) {
            counted.push((Scope::McpTool, format!("{}/{tool}", mcp.server)));
        }
        for user in [Some(record.user.as_str()), None] {
            let key = mcp_counts_key(user, day);
            for (scope, id) in &counted {
                mcp_counts.push((key.clone(), mcp_count_field(McpCount::Requests, *scope, id)));
                if mcp.failed() {
                    mcp_counts.push((key.clone(), mcp_count_field(McpCount::Errors, *scope, id)));
                }
            }
        }
    }
    let scopes = [
        (Scope::User, Some(record.user.as_str())),
        (Scope::Tenant, named(&record.tenant)),
        (Scope::Model, model),
        (Scope::CostCenter, named(&record.cost_center)),
    ];
    // An MCP exchange is counted above and booked under no scope: its user's requests
    // are model requests only.
    let scopes = scopes
        .into_iter()
        .filter(|_| record.mcp.is_none())
        .filter_map(|(scope, id)| id.map(|id| cache.get(scope, id, day)))
        .collect();
    let increments = FIELDS
        .iter()
        .copied()
        .zip([
            record.input_tokens,
            record.output_tokens,
            record.cached_input_tokens,
            record.reasoning_tokens,
            record.cache_creation_input_tokens,
            record.cost_micros,
            1,
            u64::from(record.estimated),
        ])
        .collect();
    let reservation_id = record
        .reservation_id
        .as_deref()
        .unwrap_or(&record.request_id);
    UsageWrite {
        seen_key: seen_key(&record.request_id),
        reservation_key: keys::reservation_key(reservation_id),
        request_id: record.request_id.clone(),
        reservation_id: reservation_id.to_owned(),
        scopes,
        now_ms,
        // What budgets and tpm count: the whole input and output, as the filter reserves.
        tokens: record
            .input_tokens
            .saturating_add(record.output_tokens)
            .min(MAX_USAGE_COUNT),
        cost_micros: record.cost_micros,
        // The record as the filter sent it: an audit trail shows what was reported, not
        // our reading of it.
        record_json: record.raw.clone(),
        // Stored next to the record because the record alone does not tell it when its
        // timestamp was missing or implausible.
        day: day.to_string(),
        increments,
        mcp_counts,
        // Spend by tool is spend: an MCP exchange has none.
        client_tool: record
            .client_tool
            .clone()
            .filter(|_| record.mcp.is_none())
            .map(|tool| (client_tools::tools_key(day), tool)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::user_id::UserId;

    const USER: &str = "0190a6f2-7c1e-8b3a-9f00-1234567890ab";
    // 2026-11-25T21:20:42Z
    const NOW_MS: u64 = 1_795_640_042_000;

    fn record() -> UsageRecord {
        UsageRecord {
            request_id: "req-1".into(),
            reservation_id: None,
            user: UserId::parse(USER).expect("uuid"),
            tenant: Some("acme".into()),
            groups: vec!["eng".into()],
            cost_center: Some("cc-42".into()),
            model: Some("gpt-4o".into()),
            model_key: None,
            provider: Some("openai".into()),
            format: None,
            stream: false,
            input_tokens: 10,
            output_tokens: 20,
            cached_input_tokens: 3,
            reasoning_tokens: 4,
            cache_creation_input_tokens: 5,
            cost_micros: 600,
            estimated: true,
            status: Some(200),
            decision: Some("allow".into()),
            latency_ms: Some(12),
            ttft_ms: None,
            completed: Some(true),
            ts_ms: Some(1_735_689_599_999),
            mcp: None,
            client_tool: Some("codex".into()),
            raw: r#"{"request_id":"req-1","trace_id":"t-9"}"#.to_owned(),
        }
    }

    fn ledger_keys(write: &UsageWrite) -> Vec<String> {
        write
            .scopes
            .iter()
            .flat_map(|scope| scope.keys[..2].to_vec())
            .collect()
    }

    #[test]
    fn records_of_a_batch_share_their_scopes_keys() {
        let records = [
            record(),
            record(),
            UsageRecord {
                ts_ms: Some(1_735_689_599_999 - MS_PER_DAY),
                ..record()
            },
            UsageRecord {
                tenant: Some("globex".into()),
                ..record()
            },
        ];
        let mut cache = ScopeCache::default();
        let writes: Vec<UsageWrite> = records
            .iter()
            .map(|r| write_with(r, NOW_MS, &mut cache))
            .collect();
        // Shared or not, each record's keys are the ones built for it alone.
        for (write, record) in writes.iter().zip(&records) {
            assert_eq!(ledger_keys(write), ledger_keys(&write_for(record, NOW_MS)));
        }
        // (other record, which of user, tenant, model, cost centre it shares with the first)
        for (other, shared, what) in [
            (1, [true, true, true, true], "the same scopes"),
            (2, [false, false, false, false], "another booking day"),
            (3, [true, false, true, true], "another tenant"),
        ] {
            let same: Vec<bool> = writes[0]
                .scopes
                .iter()
                .zip(&writes[other].scopes)
                .map(|(p, q)| Arc::ptr_eq(p, q))
                .collect();
            assert_eq!(same, shared, "{what}");
        }
    }

    #[test]
    fn counts_tokens_for_budgets_up_to_two_to_the_53() {
        let huge = UsageRecord {
            input_tokens: MAX_USAGE_COUNT,
            output_tokens: MAX_USAGE_COUNT,
            ..record()
        };
        assert_eq!(write_for(&huge, NOW_MS).tokens, MAX_USAGE_COUNT);
    }

    #[test]
    fn keys_follow_the_documented_layout() {
        let day = Day::from_unix_ms(NOW_MS);
        let cases = [
            (
                ledger_key(Scope::User, USER, Period::Day(day)),
                "ck:ledger:user:{0190a6f2-7c1e-8b3a-9f00-1234567890ab}:2026-11-25",
            ),
            (
                ledger_key(Scope::Tenant, "acme", Period::Month(day.month())),
                "ck:ledger:tenant:{acme}:2026-11",
            ),
            (
                ledger_key(Scope::CostCenter, "cc 42", Period::Day(day)),
                "ck:ledger:cost_center:{cc 42}:2026-11-25",
            ),
            (seen_key("req-1"), "ck:usage:seen:{req-1}"),
        ];
        for (got, expected) in cases {
            assert_eq!(got, expected);
        }
    }

    #[test]
    fn books_on_the_records_day_unless_it_is_missing_or_in_the_future() {
        let cases = [
            (Some(1_735_689_599_999), "2024-12-31"),
            (Some(1_735_689_600_000), "2025-01-01"),
            (Some(0), "1970-01-01"),
            (Some(NOW_MS), "2026-11-25"),
            // Up to a day ahead is clock skew and is trusted; beyond is not.
            (Some(NOW_MS + MS_PER_DAY), "2026-11-26"),
            (Some(NOW_MS + MS_PER_DAY + 1), "2026-11-25"),
            (Some(u64::MAX), "2026-11-25"),
            (None, "2026-11-25"),
        ];
        for (ts_ms, expected) in cases {
            assert_eq!(
                booking_day(ts_ms, NOW_MS).to_string(),
                expected,
                "ts_ms {ts_ms:?}"
            );
        }
    }

    #[test]
    fn a_write_names_every_scope_the_record_has() {
        let write = write_for(&record(), NOW_MS);
        assert_eq!(write.seen_key, "ck:usage:seen:{req-1}");
        assert_eq!(write.reservation_key, "ck:resv:req:{req-1}");
        assert_eq!(
            ledger_keys(&write),
            [
                format!("ck:ledger:user:{{{USER}}}:2024-12-31"),
                format!("ck:ledger:user:{{{USER}}}:2024-12"),
                "ck:ledger:tenant:{acme}:2024-12-31".into(),
                "ck:ledger:tenant:{acme}:2024-12".into(),
                "ck:ledger:model:{gpt-4o}:2024-12-31".into(),
                "ck:ledger:model:{gpt-4o}:2024-12".into(),
                "ck:ledger:cost_center:{cc-42}:2024-12-31".into(),
                "ck:ledger:cost_center:{cc-42}:2024-12".into(),
            ]
        );
        let ids: Vec<&str> = write.scopes.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, [USER, "acme", "gpt-4o", "cc-42"]);
        assert_eq!(
            write.scopes[1].keys[2..],
            [
                "ck:limits:tenant:{acme}",
                "ck:limits:tenant:{*}",
                "ck:roll:tenant:{acme}",
                "ck:top:tenant:cost_micros:2024-12-31",
                "ck:top:tenant:cost_micros:2024-12",
                "ck:top:tenant:tokens:2024-12-31",
                "ck:top:tenant:tokens:2024-12",
            ]
        );
        assert_eq!(
            (write.now_ms, write.tokens, write.cost_micros),
            (NOW_MS, 30, 600)
        );
        assert_eq!(
            write.increments,
            [
                ("input_tokens", 10),
                ("output_tokens", 20),
                ("cached_input_tokens", 3),
                ("reasoning_tokens", 4),
                ("cache_creation_input_tokens", 5),
                ("cost_micros", 600),
                ("requests", 1),
                ("estimated_requests", 1),
            ]
        );
        assert_eq!(
            write.record_json,
            r#"{"request_id":"req-1","trace_id":"t-9"}"#
        );
        assert_eq!(write.day, "2024-12-31");
    }

    #[test]
    fn missing_and_blank_scopes_are_skipped() {
        let record = UsageRecord {
            tenant: None,
            model: Some(" ".into()),
            cost_center: Some(String::new()),
            estimated: false,
            ..record()
        };
        let write = write_for(&record, NOW_MS);
        assert_eq!(
            ledger_keys(&write),
            [
                format!("ck:ledger:user:{{{USER}}}:2024-12-31"),
                format!("ck:ledger:user:{{{USER}}}:2024-12"),
            ]
        );
        assert_eq!(write.increments[7], ("estimated_requests", 0));
    }

    #[test]
    fn the_model_scope_is_the_model_key_when_the_record_has_one() {
        // (model, model_key, the model scope's id)
        let cases = [
            (Some("gpt-4o-2024-08-06"), Some("gpt-4o*"), Some("gpt-4o*")),
            (Some("made-up-name-1"), Some("other"), Some("other")),
            (Some("gpt-4o"), None, Some("gpt-4o")),
            (None, Some("other"), Some("other")),
            (Some(""), None, None),
        ];
        for (model, model_key, expected) in cases {
            let record = UsageRecord {
                model: model.map(str::to_owned),
                model_key: model_key.map(str::to_owned),
                ..record()
            };
            let write = write_for(&record, NOW_MS);
            let ids: Vec<&str> = write.scopes.iter().map(|s| s.id.as_str()).collect();
            let mut want = vec![USER, "acme"];
            want.extend(expected);
            want.push("cc-42");
            assert_eq!(ids, want, "{model:?} {model_key:?}");
            // The audit trail keeps the record as sent, model and all.
            assert_eq!(write.record_json, record.raw);
        }
    }
}
