//! `GET /v1/admin/audit[?after=<stream id>][&until=<stream id>][&limit=N]`: the audit
//! stream of booked usage records (`ck:usage:log`) page by page, oldest first, for the
//! lakehouse export (`chokepoint-policy export`) and any other reader that keeps its own
//! cursor. Each entry is the record as the filter sent it, the day it was booked on and
//! its stream id; with them the stream's length and the count of entries ever added, read
//! in the same atomic step, so a reader can count what a trim removed before it got there.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::error::ApiError;
use super::{admin_auth, AppState};
use crate::fields;
use crate::ledger::AUDIT_LOG_KEY;
use crate::stream_id::StreamId;

/// Entries one answer holds by default, and at most: a record is at most a few KiB, so
/// an answer stays within a few MiB.
const DEFAULT_LIMIT: usize = 500;
pub const MAX_LIMIT: usize = 1000;

/// All optional so that a missing parameter gets our message rather than serde's.
#[derive(Deserialize)]
pub struct AuditQuery {
    after: Option<String>,
    until: Option<String>,
    limit: Option<String>,
}

#[derive(Serialize)]
struct Answer {
    /// Entries the stream holds now.
    length: u64,
    /// Entries ever added to it, trimmed ones included.
    entries_added: u64,
    /// The newest id the stream gave out (`0-0` before the first).
    last_id: String,
    entries: Vec<Entry>,
}

#[derive(Serialize)]
struct Entry {
    id: String,
    /// The UTC day the ledger booked the record on (`YYYY-MM-DD`).
    day: Option<String>,
    /// The record as the filter sent it; null when the entry holds no JSON (an entry
    /// nobody but the service should write).
    record: Option<Box<RawValue>>,
}

pub async fn read_audit(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Response {
    if let Err(err) = admin_auth::check(state.admin_token.as_deref(), &headers) {
        return err.into_response();
    }
    let query = match query {
        Ok(Query(q)) => q,
        Err(rejection) => {
            return ApiError::invalid_request("invalid_query", format!("query string: {rejection}"))
                .into_response()
        }
    };
    let (start, end, limit) = match parse(&query) {
        Ok(parsed) => parsed,
        Err(err) => return err.into_response(),
    };
    if !state.ledger.retention.audit {
        return ApiError::audit_stream_off().into_response();
    }
    let page = match state
        .store
        .audit_page(AUDIT_LOG_KEY, &start, &end, limit)
        .await
    {
        Ok(page) => page,
        Err(_) => return ApiError::store_unavailable().into_response(),
    };
    Json(Answer {
        length: page.length,
        entries_added: page.entries_added,
        last_id: page.last_id,
        entries: page
            .entries
            .into_iter()
            .map(|entry| Entry {
                id: entry.id,
                day: entry.day,
                record: entry
                    .record
                    .and_then(|json| RawValue::from_string(json).ok()),
            })
            .collect(),
    })
    .into_response()
}

/// XRANGE's start (exclusive of `after`) and end (inclusive of `until`), and the limit.
fn parse(query: &AuditQuery) -> Result<(String, String, usize), ApiError> {
    let id = |name: &str, value: &Option<String>| {
        value
            .as_deref()
            .map(|text| {
                StreamId::parse(text)
                    .ok_or_else(|| fields::invalid(name, "must be a stream id, <ms>-<seq>"))
            })
            .transpose()
    };
    let start = match id("after", &query.after)? {
        Some(after) => format!("({after}"),
        None => "-".to_owned(),
    };
    let end = match id("until", &query.until)? {
        Some(until) => until.to_string(),
        None => "+".to_owned(),
    };
    let limit = match query.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| fields::invalid("limit", "must be 1 to 1000"))?,
    };
    Ok((start, end, limit))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(after: Option<&str>, until: Option<&str>, limit: Option<&str>) -> AuditQuery {
        AuditQuery {
            after: after.map(str::to_owned),
            until: until.map(str::to_owned),
            limit: limit.map(str::to_owned),
        }
    }

    #[test]
    fn reads_the_range_and_the_limit() {
        let cases = [
            (query(None, None, None), Ok(("-", "+", 500))),
            (
                query(Some("17-3"), Some("20-0"), Some("1000")),
                Ok(("(17-3", "20-0", 1000)),
            ),
            (query(Some("007-1"), None, Some("1")), Ok(("(7-1", "+", 1))),
            (
                query(Some("17"), None, None),
                Err("after must be a stream id, <ms>-<seq>"),
            ),
            (
                query(Some("(17-3"), None, None),
                Err("after must be a stream id, <ms>-<seq>"),
            ),
            (
                query(None, Some("+"), None),
                Err("until must be a stream id, <ms>-<seq>"),
            ),
            (query(None, None, Some("0")), Err("limit must be 1 to 1000")),
            (
                query(None, None, Some("1001")),
                Err("limit must be 1 to 1000"),
            ),
            (
                query(None, None, Some("-1")),
                Err("limit must be 1 to 1000"),
            ),
        ];
        for (query, expected) in cases {
            let got = parse(&query);
            match expected {
                Ok((start, end, limit)) => {
                    assert_eq!(got, Ok((start.to_owned(), end.to_owned(), limit)));
                }
                Err(message) => {
                    let err = got.expect_err(message);
                    assert_eq!((err.code, err.message.as_str()), ("invalid_field", message));
                }
            }
        }
    }
}
