//! Spend by calling tool (the record's `client`, without its version), per UTC day:
//! `record_usage.lua` adds each booked record's request, tokens and cost to the tools'
//! hash of its booking day, so the spend page reads a day in one round trip and a month
//! in its days' (never the audit stream).
//!
//! The client chooses its name, so the name is normalised here (lowercase, the client
//! grammar's characters, at most [`MAX_TOOL_BYTES`]) and the script takes at most 64
//! tools per day, counting any further one as [`OTHER`] (see the script's "Client
//! tools").

use std::collections::HashMap;

use serde::Serialize;

use crate::store::{Store, StoreError};
use crate::utc_date::Day;

/// Longest tool name kept; longer ones are cut (names are ASCII).
pub const MAX_TOOL_BYTES: usize = 32;

/// What the tools beyond a day's cap, and names outside the grammar, count as.
pub const OTHER: &str = "other";

/// `ck:clients:<YYYY-MM-DD>`: a hash with `requests:<tool>`, `tokens:<tool>` and
/// `cost_micros:<tool>` for each tool of the day.
pub fn tools_key(day: Day) -> String {
    format!("ck:clients:{day}")
}

/// The tool of a record's `client` (`claude-code/2.1.332` -> `claude-code`): the name
/// before the version, lowercased; [`OTHER`] for one outside the grammar (ASCII letters
/// and digits, then those and `.`, `_`, `-`, `+`), `None` without a client.
pub fn tool_name(client: Option<&str>) -> Option<String> {
    let client = client?;
    let name = client.split('/').next().unwrap_or_default();
    let ok = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+'));
    if !ok {
        return Some(OTHER.to_owned());
    }
    let mut name = name.to_ascii_lowercase();
    name.truncate(MAX_TOOL_BYTES);
    Some(name)
}

/// One tool's totals over a period.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct ToolTotals {
    pub requests: u64,
    pub tokens: u64,
    pub cost_micros: u64,
}

/// Each day's tools, in `days` order.
pub async fn read_days(
    store: &Store,
    days: &[Day],
) -> Result<Vec<HashMap<String, ToolTotals>>, StoreError> {
    let keys: Vec<String> = days.iter().map(|day| tools_key(*day)).collect();
    let hashes = store.hashes(&keys).await?;
    Ok(hashes.iter().map(tools_of).collect())
}

/// A day's hash read back; fields the service does not write are skipped.
pub fn tools_of(hash: &HashMap<String, String>) -> HashMap<String, ToolTotals> {
    let mut tools: HashMap<String, ToolTotals> = HashMap::new();
    for (field, value) in hash {
        let Some((what, tool)) = field.split_once(':') else {
            continue;
        };
        let Ok(value) = value.parse::<u64>() else {
            continue;
        };
        let totals = tools.entry(tool.to_owned()).or_default();
        match what {
            "requests" => totals.requests = value,
            "tokens" => totals.tokens = value,
            "cost_micros" => totals.cost_micros = value,
            _ => {}
        }
    }
    tools
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_a_tool_without_its_version_bounded() {
        let long = "a".repeat(40);
        let cases = [
            (Some("claude-code/2.1.332"), Some("claude-code")),
            (Some("Codex"), Some("codex")),
            (Some("openai-python/3.57.0"), Some("openai-python")),
            (Some("GeminiCLI-tui/0.61.0/gemini-3"), Some("geminicli-tui")),
            (Some(long.as_str()), Some(&long[..MAX_TOOL_BYTES])),
            (Some("<script>/1"), Some(OTHER)),
            (Some(""), Some(OTHER)),
            (Some("/1.0"), Some(OTHER)),
            (Some("bad name/1"), Some(OTHER)),
            (None, None),
        ];
        for (client, expected) in cases {
            assert_eq!(tool_name(client).as_deref(), expected, "{client:?}");
        }
    }

    #[test]
    fn reads_a_days_hash() {
        let hash: HashMap<String, String> = [
            ("requests:codex", "2"),
            ("tokens:codex", "30"),
            ("cost_micros:codex", "700"),
            ("requests:other", "1"),
            ("junk", "1"),
            ("requests:x", "NaN"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let tools = tools_of(&hash);
        assert_eq!(
            tools["codex"],
            ToolTotals {
                requests: 2,
                tokens: 30,
                cost_micros: 700
            }
        );
        assert_eq!(tools["other"].requests, 1);
        assert_eq!(tools.len(), 2);
    }
}
