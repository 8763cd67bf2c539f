//! MCP exchanges counted per UTC day, by user, server and tool: how many, and how many
//! failed. They have no tokens or cost, so they take no ledger hash of the user's (whose
//! `requests` stay model requests); `record_usage.lua` adds to these hashes as it books
//! an MCP record, exactly once per request id like every record.
//!
//! Keys and fields are bounded: a canonical user id, a day, a server name (at most 64
//! bytes) and a tool name (at most 256). Tool names are the client's choice (a call of a
//! tool the server does not have is still counted, as the upstream's error), so a day's
//! hash grows with the names called that day; the server limits bound how fast.

use std::collections::HashMap;

use serde::Serialize;

use crate::keys;
use crate::scope::Scope;
use crate::store::{Store, StoreError};
use crate::utc_date::Day;

/// `ck:mcp:{<user>}:<YYYY-MM-DD>`, one user's MCP exchanges of a UTC day, or with
/// `user` `None` `ck:mcp:{*}:<YYYY-MM-DD>`, everyone's: a hash of counts, fields
/// [`mcp_count_field`]. Per day, like the ledger's day hashes, so a day is one read; a
/// month is its days'.
pub fn mcp_counts_key(user: Option<&str>, day: Day) -> String {
    format!("ck:mcp:{{{}}}:{day}", user.unwrap_or(keys::DEFAULT_ID))
}

/// What an MCP count hash counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum McpCount {
    /// Exchanges (requests, notifications, responses, streams opened).
    Requests,
    /// Those that failed: a JSON-RPC error or a tool's `isError`.
    Errors,
}

impl McpCount {
    pub const ALL: [McpCount; 2] = [McpCount::Requests, McpCount::Errors];

    pub fn as_str(self) -> &'static str {
        match self {
            McpCount::Requests => "requests",
            McpCount::Errors => "errors",
        }
    }
}

/// `<count>:<kind>:<id>`: `requests:mcp_server:everything`,
/// `errors:mcp_tool:everything/echo`. Count and kind hold no `:`, so the second one ends
/// the kind; the id is the rest.
pub fn mcp_count_field(count: McpCount, scope: Scope, id: &str) -> String {
    format!("{}:{}:{id}", count.as_str(), scope.as_str())
}

/// Reads a field back: (count, kind, id); `None` for one the service does not write.
pub fn parse_mcp_count_field(field: &str) -> Option<(McpCount, Scope, &str)> {
    let (count, rest) = field.split_once(':')?;
    let (kind, id) = rest.split_once(':')?;
    let count = McpCount::ALL.into_iter().find(|c| c.as_str() == count)?;
    let scope = Scope::parse(kind).filter(|scope| scope.per_user())?;
    Some((count, scope, id))
}

/// One server's or tool's counts of a day.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    /// The server, or `<server>/<tool>`.
    pub id: String,
    pub requests: u64,
    pub errors: u64,
}

/// The rows of one count hash for `scope`'s kind (`mcp_server` or `mcp_tool`), most
/// requests first (then by id); only `only` when given. Fields the service does not
/// write are skipped.
pub fn rows(hash: &HashMap<String, String>, scope: Scope, only: Option<&str>) -> Vec<Row> {
    let mut rows: HashMap<&str, Row> = HashMap::new();
    for (field, value) in hash {
        let Some((count, kind, id)) = parse_mcp_count_field(field) else {
            continue;
        };
        if kind != scope || only.is_some_and(|only| only != id) {
            continue;
        }
        let Ok(n) = value.parse::<u64>() else {
            continue;
        };
        let row = rows.entry(id).or_insert_with(|| Row {
            id: id.to_owned(),
            ..Row::default()
        });
        match count {
            McpCount::Requests => row.requests = n,
            McpCount::Errors => row.errors = n,
        }
    }
    let mut rows: Vec<Row> = rows.into_values().collect();
    rows.sort_by(|a, b| b.requests.cmp(&a.requests).then_with(|| a.id.cmp(&b.id)));
    rows
}

/// A day's counts for `scope`'s kind: one user's, or everyone's.
pub async fn read(
    store: &Store,
    scope: Scope,
    user: Option<&str>,
    day: Day,
    only: Option<&str>,
) -> Result<Vec<Row>, StoreError> {
    let hash = store.hash(&mcp_counts_key(user, day)).await?;
    Ok(rows(&hash, scope, only))
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER: &str = "0190a6f2-7c1e-8b3a-9f00-1234567890ab";

    #[test]
    fn keys_and_fields_follow_the_documented_layout() {
        let day = Day::from_unix_ms(1_795_640_042_000);
        assert_eq!(
            mcp_counts_key(Some(USER), day),
            format!("ck:mcp:{{{USER}}}:2026-11-25")
        );
        assert_eq!(mcp_counts_key(None, day), "ck:mcp:{*}:2026-11-25");
        let fields = [
            (
                McpCount::Requests,
                Scope::McpServer,
                "everything",
                "requests:mcp_server:everything",
            ),
            (
                McpCount::Errors,
                Scope::McpTool,
                "everything/a:b",
                "errors:mcp_tool:everything/a:b",
            ),
        ];
        for (count, scope, id, expected) in fields {
            let field = mcp_count_field(count, scope, id);
            assert_eq!(field, expected);
            assert_eq!(parse_mcp_count_field(&field), Some((count, scope, id)));
        }
        for foreign in [
            "requests:model:x",
            "hits:mcp_server:x",
            "requests",
            "requests:mcp_tool",
        ] {
            assert_eq!(parse_mcp_count_field(foreign), None, "{foreign}");
        }
    }

    #[test]
    fn rows_are_per_kind_most_requests_first() {
        let hash: HashMap<String, String> = [
            ("requests:mcp_server:everything", "7"),
            ("errors:mcp_server:everything", "2"),
            ("requests:mcp_server:github", "9"),
            ("requests:mcp_tool:everything/echo", "4"),
            ("errors:mcp_tool:everything/echo", "1"),
            ("requests:mcp_tool:everything/add", "4"),
            ("requests:mcp_tool:github/x", "not a count"),
            ("stray", "1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let row = |id: &str, requests, errors| Row {
            id: id.to_owned(),
            requests,
            errors,
        };
        // (kind, only, rows)
        let cases = [
            (
                Scope::McpServer,
                None,
                vec![row("github", 9, 0), row("everything", 7, 2)],
            ),
            (
                Scope::McpTool,
                None,
                vec![row("everything/add", 4, 0), row("everything/echo", 4, 1)],
            ),
            (
                Scope::McpServer,
                Some("everything"),
                vec![row("everything", 7, 2)],
            ),
            (Scope::McpTool, Some("nothing/x"), vec![]),
        ];
        for (scope, only, expected) in cases {
            assert_eq!(rows(&hash, scope, only), expected, "{scope:?} {only:?}");
        }
    }
}
