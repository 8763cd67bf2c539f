//! Spend by calling tool (`client`) and by agent session (`session`): the usage record's
//! attribution fields, summed from the audit stream rather than kept in ledger hashes.
//!
//! Why the stream: sessions are many (one per agent run), so a hash or ranking per
//! session, or a field per session in a daily hash, would grow Redis with every run
//! unless capped and expired, and a cap silently drops the newest sessions. The audit
//! stream already holds every booked record, client and session included, and is bounded
//! by `audit_max_len` and `audit_max_age`: summing it adds no write to booking and no
//! key at all. The price is that a sum covers only what the stream still holds, which
//! the answer says (`complete`), and that a query reads the period's entries (at most
//! the stream's length, in pages). Clients are few and would fit hashes, but one source
//! for both keeps the two sums consistent with each other and with the audit trail.
//! Neither field is trusted for anything: the client chooses both.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;

use crate::ledger::AUDIT_LOG_KEY;
use crate::store::{Store, StoreError};
use crate::utc_date::{Period, MS_PER_DAY};

/// What the sums are by: a record field of the attribution kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    Client,
    Session,
}

impl By {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "client" => Some(By::Client),
            "session" => Some(By::Session),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            By::Client => "client",
            By::Session => "session",
        }
    }
}

/// One client's or session's totals.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    pub id: String,
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_input_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cost_micros: u64,
    /// Session rows only: the tool the session's records named last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// Session rows only: the user the session's records belong to (the last one seen).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// The sums, largest cost first.
#[derive(Debug, Default, Serialize)]
pub struct Sums {
    pub rows: Vec<Row>,
    /// Records of the period read from the stream.
    pub records: u64,
    /// The stream still held the whole period: no trim had removed any of it.
    pub complete: bool,
}

/// Records without the field (older records, tools that name nothing) sum under this id.
pub const UNNAMED: &str = "(none)";

/// Entries read per round trip.
const PAGE: usize = 1000;

/// Sums the period's booked records by `by`, only `only` when given, at most `limit`
/// rows. A record belongs to the period its booking `day` is in. Its stream entry is
/// stamped when it was booked: up to a day before the record's own time (a filter clock
/// ahead) and any time after (a batch retried late), so the stream is read from a day
/// before the period to its end.
pub async fn sums(
    store: &Store,
    by: By,
    only: Option<&str>,
    period: Period,
    limit: usize,
) -> Result<Sums, StoreError> {
    let start_ms = period.start_ms();
    let prefix = period.to_string();
    let mut totals: HashMap<String, Row> = HashMap::new();
    let mut records = 0;
    let from_ms = start_ms.saturating_sub(MS_PER_DAY);
    let mut from = format!("{from_ms}-0");
    // Complete when no trim removed an entry stamped after the scan's start.
    let trimmed = store.stream_trimmed_up_to(AUDIT_LOG_KEY).await?;
    let complete = trimmed
        .and_then(|id| id.split('-').next()?.parse::<u64>().ok())
        .is_none_or(|ms| ms < from_ms);
    loop {
        let page = store.stream_page(AUDIT_LOG_KEY, &from, "+", PAGE).await?;
        let Some((last, _)) = page.last() else { break };
        from = format!("({last}");
        let full = page.len() == PAGE;
        for (_, fields) in page {
            let in_period = fields.get("day").is_some_and(|d| d.starts_with(&prefix));
            let Some(record) = fields.get("record").filter(|_| in_period) else {
                continue;
            };
            let Ok(record) = serde_json::from_str::<Value>(record) else {
                continue;
            };
            if add(&mut totals, by, only, &record) {
                records += 1;
            }
        }
        if !full {
            break;
        }
    }
    let mut rows: Vec<Row> = totals.into_values().collect();
    rows.sort_by(|a, b| b.cost_micros.cmp(&a.cost_micros).then(a.id.cmp(&b.id)));
    rows.truncate(limit);
    Ok(Sums {
        rows,
        records,
        complete,
    })
}

/// Adds one record to its row; whether it was counted (`only` filters).
fn add(totals: &mut HashMap<String, Row>, by: By, only: Option<&str>, record: &Value) -> bool {
    let id = record[by.as_str()].as_str();
    if by == By::Session && id.is_none() {
        return false;
    }
    let id = id.unwrap_or(UNNAMED);
    if only.is_some_and(|o| o != id) {
        return false;
    }
    let row = totals.entry(id.to_owned()).or_insert_with(|| Row {
        id: id.to_owned(),
        ..Row::default()
    });
    let n = |f: &str| record[f].as_u64().unwrap_or(0);
    row.requests += 1;
    row.input_tokens += n("input_tokens");
    row.output_tokens += n("output_tokens");
    row.cached_input_tokens += n("cached_input_tokens");
    row.cache_creation_input_tokens += n("cache_creation_input_tokens");
    row.cost_micros += n("cost_micros");
    if by == By::Session {
        row.client = record["client"]
            .as_str()
            .map(str::to_owned)
            .or(row.client.take());
        row.user = record["user"]
            .as_str()
            .map(str::to_owned)
            .or(row.user.take());
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn records_sum_by_client_and_by_session() {
        let records = [
            json!({"client": "claude-code/2.1.332", "session": "s1", "user": "u1",
                   "input_tokens": 10, "output_tokens": 2, "cost_micros": 30}),
            json!({"client": "claude-code/2.1.332", "session": "s1", "user": "u1",
                   "input_tokens": 20, "output_tokens": 3, "cached_input_tokens": 5,
                   "cost_micros": 50}),
            json!({"client": "codex/0.171.0", "session": "s2", "user": "u2",
                   "input_tokens": 7, "output_tokens": 1, "cost_micros": 100}),
            json!({"input_tokens": 1, "output_tokens": 1, "cost_micros": 1}),
        ];
        let mut by_client = HashMap::new();
        let mut by_session = HashMap::new();
        for r in &records {
            assert!(add(&mut by_client, By::Client, None, r));
            add(&mut by_session, By::Session, None, r);
        }
        let claude = &by_client["claude-code/2.1.332"];
        assert_eq!(
            (claude.requests, claude.input_tokens, claude.output_tokens),
            (2, 30, 5)
        );
        assert_eq!((claude.cached_input_tokens, claude.cost_micros), (5, 80));
        assert_eq!(by_client["codex/0.171.0"].cost_micros, 100);
        assert_eq!(
            by_client[UNNAMED].requests, 1,
            "older records sum as (none)"
        );
        assert_eq!(
            by_session.len(),
            2,
            "a record without a session is no session's"
        );
        let s1 = &by_session["s1"];
        assert_eq!((s1.requests, s1.cost_micros), (2, 80));
        assert_eq!(s1.client.as_deref(), Some("claude-code/2.1.332"));
        assert_eq!(s1.user.as_deref(), Some("u1"));

        let mut one = HashMap::new();
        for r in &records {
            add(&mut one, By::Session, Some("s2"), r);
        }
        assert_eq!(one.keys().collect::<Vec<_>>(), ["s2"]);
    }

    #[test]
    fn the_kinds_parse() {
        assert_eq!(By::parse("client"), Some(By::Client));
        assert_eq!(By::parse("session"), Some(By::Session));
        assert_eq!(By::parse("user"), None);
    }
}
