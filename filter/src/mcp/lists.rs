//! Filtering a `tools/list`, `prompts/list` or `resources/list` answer per caller: the
//! entries the caller may not use are spliced out of the server's bytes and everything
//! else is left as the server wrote it (whitespace, member order, escapes, `nextCursor`),
//! so a client sees the server's answer minus what policy hides.
//!
//! In MCP 2026-07-28 list results carry `cacheScope`; a filtered list is one caller's
//! view, so it becomes `"private"` (as agentgateway's `merge_tools` does):
//! https://modelcontextprotocol.io/specification/2026-07-28/changelog, minor change 5.

use std::ops::Range;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::json::{first_byte, object, offset, present, string};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    Tools,
    Prompts,
    Resources,
}

impl ListKind {
    /// tools/list, prompts/list, resources/list
    pub fn of_method(method: &str) -> Option<ListKind> {
        match method {
            "tools/list" => Some(ListKind::Tools),
            "prompts/list" => Some(ListKind::Prompts),
            "resources/list" => Some(ListKind::Resources),
            _ => None,
        }
    }

    /// The member of an entry that policy matches.
    fn key(self) -> &'static str {
        match self {
            ListKind::Tools | ListKind::Prompts => "name",
            ListKind::Resources => "uri",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filtered {
    pub body: Vec<u8>,
    pub removed: usize,
}

#[derive(Deserialize)]
struct Top<'a> {
    #[serde(default, borrow, deserialize_with = "present")]
    result: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ListResult<'a> {
    #[serde(default, borrow, deserialize_with = "present")]
    tools: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    prompts: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    resources: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present", rename = "cacheScope")]
    cache_scope: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Entry<'a> {
    #[serde(default, borrow, deserialize_with = "present")]
    name: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    uri: Option<&'a RawValue>,
}

/// `message` is one JSON-RPC message (a JSON answer's body, or one SSE event's data).
/// If it is a response with result.tools / result.prompts / result.resources (per kind), returns it with every entry whose key (`name`; for resources `uri`) `keep` refuses spliced out, every other byte as the server sent it (whitespace, member order, escapes kept; commas fixed); when `result.cacheScope` is present its value becomes "private" (the filtered list is per caller; MCP 2026-07-28). Ok(None): not such a response (an error, a notification, progress) -> to be passed as is. Err(()): the message does not parse (the caller fails closed). Entry keys with JSON escapes are compared unescaped.
///
/// An entry whose key cannot be read (not an object, no key, a key that is not a string,
/// a key given twice) is removed too: policy cannot allow what it cannot name. Empty
/// data (an SSE priming event) is no message and passes as is; a list member that is
/// not an array fails closed.
// `()`: the one failure is "cannot be read", and the caller answers it the same way.
#[allow(clippy::result_unit_err)]
pub fn filter(
    message: &[u8],
    kind: ListKind,
    keep: &dyn Fn(&str) -> bool,
) -> Result<Option<Filtered>, ()> {
    let Some(first) = first_byte(message) else {
        return Ok(None);
    };
    if first != b'{' {
        return Err(());
    }
    let top: Top = serde_json::from_slice(message).map_err(|_| ())?;
    let Some(result) = top.result.filter(|r| r.get() != "null") else {
        return Ok(None);
    };
    let result: ListResult = object(result.get().as_bytes()).ok_or(())?;
    let list = match kind {
        ListKind::Tools => result.tools,
        ListKind::Prompts => result.prompts,
        ListKind::Resources => result.resources,
    };
    let Some(list) = list else {
        return Ok(None);
    };
    if first_byte(list.get().as_bytes()) != Some(b'[') {
        return Err(());
    }
    let entries: Vec<&RawValue> = serde_json::from_str(list.get()).map_err(|_| ())?;
    let mut spans = Vec::with_capacity(entries.len());
    for entry in &entries {
        let start = offset(message, entry.get()).ok_or(())?;
        spans.push((start..start + entry.get().len(), kept(entry, kind, keep)));
    }
    let removed = spans.iter().filter(|(_, k)| !k).count();
    let mut edits = deletions(&spans);
    if let Some(scope) = result.cache_scope {
        let start = offset(message, scope.get()).ok_or(())?;
        edits.push((start..start + scope.get().len(), &br#""private""#[..]));
        edits.sort_by_key(|(r, _)| r.start);
    }
    Ok(Some(Filtered {
        body: splice(message, &edits).ok_or(())?,
        removed,
    }))
}

fn kept(entry: &RawValue, kind: ListKind, keep: &dyn Fn(&str) -> bool) -> bool {
    let Some(fields) = object::<Entry>(entry.get().as_bytes()) else {
        return false;
    };
    let key = match kind.key() {
        "name" => fields.name,
        _ => fields.uri,
    };
    key.and_then(string).is_some_and(|k| keep(&k))
}

/// The byte ranges that remove the refused entries with one separator each: a refused
/// entry goes with the comma before it when a kept entry precedes it, else with the
/// comma after it (the last one alone when none is kept). What stays is the array's
/// opening whitespace, the kept entries with the separators the server put before them,
/// and its closing whitespace.
fn deletions(spans: &[(Range<usize>, bool)]) -> Vec<(Range<usize>, &'static [u8])> {
    let mut out = Vec::new();
    let mut any_kept = false;
    for (i, (span, keep)) in spans.iter().enumerate() {
        if *keep {
            any_kept = true;
            continue;
        }
        let range = if any_kept {
            let previous_end = i
                .checked_sub(1)
                .and_then(|p| spans.get(p))
                .map_or(span.start, |(r, _)| r.end);
            previous_end..span.end
        } else {
            let next_start = spans.get(i + 1).map_or(span.end, |(r, _)| r.start);
            span.start..next_start
        };
        out.push((range, &b""[..]));
    }
    out
}

/// `text` with each range replaced; the ranges are sorted and do not overlap.
fn splice(text: &[u8], edits: &[(Range<usize>, &[u8])]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    let mut at = 0;
    for (range, replacement) in edits {
        out.extend_from_slice(text.get(at..range.start)?);
        out.extend_from_slice(replacement);
        at = range.end;
    }
    out.extend_from_slice(text.get(at..)?);
    Some(out)
}

#[cfg(test)]
#[path = "lists_tests.rs"]
mod tests;
