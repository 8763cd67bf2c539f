//! The filter's MCP protocol code (`filter/src/mcp/`) under arbitrary bytes: a client's
//! JSON-RPC body, the SEP-2243 headers checked against it, the list answers it filters,
//! the SSE answers it rewrites event by event, the outcome it records, the aggregate
//! endpoint's renaming and answer reading, and the sealed session ids.
//!
//! Layout: one selector byte, then a [`crate::chunks`] chunking of the stream. The stream
//! is read as each of: a request body, a list answer (JSON), an answer stream (SSE) and a
//! session id. The selector picks the list kind (`% 3`), which entry keys policy keeps
//! (`>> 6`: all, none, an even or an odd byte sum), the event bound (as the `sse` target
//! does), JSON or SSE for the outcome watch (`0x08`) and the byte of a seal to mutate.
//!
//! Invariants:
//! - a parsed message has a method, name and id within their documented bounds, and an
//!   id whose JSON text re-parses as a string or an integer;
//! - `headers::check` refuses an `Mcp-Method` header that differs from the body's method
//!   and accepts headers that mirror the body exactly (the name sent base64-encoded);
//!   `decode` gives a plain value back as it is and an encoded one as it was encoded;
//! - a filtered list is JSON when its input was, keeps exactly the entries `keep`
//!   accepts, in order, reports the others as removed and changes nothing else but
//!   `cacheScope`; keeping everything changes no byte but `cacheScope`;
//! - the SSE rewriter's output is the same fed whole, in the fuzzer's chunks and byte
//!   by byte, with or without the list filter as its edit; without an edit and without
//!   an overflow it is the input byte for byte; it never holds more than
//!   `max_event_bytes` between pushes;
//! - the outcome watch finds the same outcome however the answer is cut, and a JSON
//!   answer's is `of_message`'s;
//! - `aggregate::renamed` on a body `message::parse` accepted as tools/call is the same
//!   JSON value with `params.name` the new name; `response_in` finds only the asked id;
//! - `session::open(seal(x)) == x`, and a seal with any one byte changed opens to nothing.

use chokepoint_filter::mcp::headers::{self, Mirrored};
use chokepoint_filter::mcp::lists::{self, ListKind};
use chokepoint_filter::mcp::message::{self, Kind, Message, MAX_METHOD_BYTES};
use chokepoint_filter::mcp::outcome::{self, Outcome, Watch};
use chokepoint_filter::mcp::sse::Rewriter;
use chokepoint_filter::mcp::{aggregate, session};
use serde_json::Value;

use crate::chunks;

const KINDS: [ListKind; 3] = [ListKind::Tools, ListKind::Prompts, ListKind::Resources];
const SALT: &[u8] = b"0123456789abcdef-fuzz-salt";
/// Longest stream fed byte by byte (each byte is a push).
const BYTEWISE_MAX: usize = 4096;

pub fn run(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let cut = chunks::split(rest);
    let kind = KINDS[usize::from(selector % 3)];
    let keep = keeper(selector >> 6);
    let parsed = message::parse(cut.stream);
    if let Ok(m) = &parsed {
        check_message(m);
        check_headers(m);
        check_renamed(cut.stream, m);
    }
    check_list(cut.stream, kind, &keep);
    check_rewriter(&cut, crate::sse::max_event_bytes(selector), kind, &keep);
    let id = parsed
        .ok()
        .and_then(|m| m.id)
        .unwrap_or_else(|| "1".to_owned());
    check_outcome(&cut, &id, selector & 0x08 != 0);
    check_response_in(cut.stream, u64::from(selector));
    let text = crate::text(cut.stream);
    check_session(&text, selector);
    check_decode(&text);
}

/// Which entry keys policy keeps.
fn keeper(rule: u8) -> impl Fn(&str) -> bool {
    move |key: &str| {
        let odd = key.bytes().fold(0u8, |a, b| a ^ b) & 1 == 1;
        match rule {
            0 => true,
            1 => false,
            2 => !odd,
            _ => odd,
        }
    }
}

fn check_message(m: &Message) {
    match m.kind {
        Kind::Response => assert!(m.method.is_none() && m.id.is_some(), "{m:?}"),
        Kind::Request => assert!(m.method.is_some() && m.id.is_some(), "{m:?}"),
        Kind::Notification => assert!(m.method.is_some() && m.id.is_none(), "{m:?}"),
    }
    if let Some(method) = &m.method {
        assert!(
            !method.is_empty()
                && method.len() <= MAX_METHOD_BYTES
                && method.bytes().all(|b| b.is_ascii_graphic()),
            "method {method:?} out of bounds"
        );
    }
    if let Some(name) = &m.name {
        let bound = match m.method.as_deref() {
            Some("tools/call" | "prompts/get") => message::MAX_NAME_BYTES,
            Some("resources/read" | "resources/subscribe" | "resources/unsubscribe") => {
                message::MAX_URI_BYTES
            }
            other => panic!("a name {name:?} for {other:?}, which names nothing"),
        };
        assert!(
            name.len() <= bound && !name.trim().is_empty(),
            "name of {} bytes",
            name.len()
        );
    }
    if let Some(id) = &m.id {
        let value: Value =
            serde_json::from_str(id).unwrap_or_else(|e| panic!("id {id:?} does not re-parse: {e}"));
        assert!(
            value.is_string() || value.is_i64() || value.is_u64(),
            "id {id} is not a string or an integer"
        );
    }
    if let Some(client) = &m.client {
        assert!(
            client.len() <= 64 && client.contains('/'),
            "client {client:?}"
        );
    }
}

fn check_headers(m: &Message) {
    let Some(method) = m.method.as_deref() else {
        // A response has no method: any Mcp-Method header differs from it.
        let sent = Mirrored {
            method: Some("ping".into()),
            ..Mirrored::default()
        };
        assert!(
            headers::check(&sent, m).is_err(),
            "Mcp-Method passed on a response"
        );
        assert!(headers::check(&Mirrored::default(), m).is_ok());
        return;
    };
    // Headers that mirror the body exactly: the name encoded, so any text can travel.
    let mirrored = Mirrored {
        protocol_version: m.meta_protocol_version.clone(),
        method: Some(method.to_owned()),
        name: m.name.as_deref().map(encode),
    };
    if let Err(e) = headers::check(&mirrored, m) {
        panic!("headers mirroring the body were refused: {e:?} ({m:?})");
    }
    // A present Mcp-Method that differs from the body's is refused, whatever else is sent.
    for lie in [format!("{method}x"), "tools/call".into(), String::new()] {
        if lie == method {
            continue;
        }
        for sent in [
            Mirrored {
                method: Some(lie.clone()),
                ..mirrored.clone()
            },
            Mirrored {
                method: Some(lie.clone()),
                ..Mirrored::default()
            },
        ] {
            assert!(
                headers::check(&sent, m).is_err(),
                "Mcp-Method {lie:?} passed for body method {method:?}"
            );
        }
    }
}

fn encode(value: &str) -> String {
    use base64::Engine as _;
    format!(
        "=?base64?{}?=",
        base64::engine::general_purpose::STANDARD.encode(value)
    )
}

fn check_decode(text: &str) {
    if let Some(decoded) = headers::decode(text) {
        if !text.starts_with("=?base64?") {
            assert_eq!(decoded, text, "a plain value changed");
        }
    }
    assert_eq!(
        headers::decode(&encode(text)).as_deref(),
        Some(text),
        "an encoded value"
    );
}

fn check_renamed(body: &[u8], m: &Message) {
    if m.method.as_deref() != Some("tools/call") {
        return;
    }
    const NEW: &str = "echo \"\u{e9}\\";
    let out = aggregate::renamed(body, NEW)
        .unwrap_or_else(|| panic!("a parsed tools/call could not be renamed"));
    let Ok(mut before) = serde_json::from_slice::<Value>(body) else {
        return; // Not a JSON value serde_json builds (a lone surrogate): nothing to compare.
    };
    let after: Value =
        serde_json::from_slice(&out).unwrap_or_else(|e| panic!("a renamed body is not JSON: {e}"));
    assert_eq!(after["params"]["name"], NEW, "the new name reads back");
    before["params"]["name"] = Value::String(NEW.to_owned());
    assert_eq!(before, after, "renaming changed more than params.name");
}

/// The list member of a list answer, when it has one.
fn list_of(value: &Value, kind: ListKind) -> Option<&Vec<Value>> {
    let member = match kind {
        ListKind::Tools => "tools",
        ListKind::Prompts => "prompts",
        ListKind::Resources => "resources",
    };
    value.get("result")?.get(member)?.as_array()
}

fn key_of(entry: &Value, kind: ListKind) -> Option<&str> {
    let member = match kind {
        ListKind::Resources => "uri",
        _ => "name",
    };
    entry.get(member)?.as_str()
}

fn check_list(body: &[u8], kind: ListKind, keep: &dyn Fn(&str) -> bool) {
    let Ok(Some(filtered)) = lists::filter(body, kind, keep) else {
        return;
    };
    let Ok(before) = serde_json::from_slice::<Value>(body) else {
        return; // Not a JSON value serde_json builds (a lone surrogate): nothing to compare.
    };
    let after: Value = serde_json::from_slice(&filtered.body)
        .unwrap_or_else(|e| panic!("a filtered list is not JSON: {e}"));
    let (Some(old), Some(new)) = (list_of(&before, kind), list_of(&after, kind)) else {
        panic!("a filtered list lost its list: {after}");
    };
    for entry in new {
        let key = key_of(entry, kind);
        assert!(
            key.is_some_and(keep),
            "an entry policy refuses stayed: {entry}"
        );
    }
    // What stays is a subsequence of what came, in order.
    let mut rest = old.iter();
    for entry in new {
        assert!(
            rest.any(|e| e == entry),
            "{entry} is not one of the server's entries, in order"
        );
    }
    assert_eq!(
        old.len() - new.len(),
        filtered.removed,
        "removed counts the entries taken out"
    );
    let refused = old
        .iter()
        .filter(|e| !key_of(e, kind).is_some_and(keep))
        .count();
    // An entry with its key twice reads as kept here and is refused by the filter.
    assert!(filtered.removed >= refused, "a refused entry stayed");
    let strip = |mut v: Value| {
        if let Some(result) = v.get_mut("result").and_then(Value::as_object_mut) {
            result.remove("cacheScope");
            result.remove(match kind {
                ListKind::Tools => "tools",
                ListKind::Prompts => "prompts",
                ListKind::Resources => "resources",
            });
        }
        v
    };
    let scope = after.get("result").and_then(|r| r.get("cacheScope"));
    assert!(scope.is_none() || scope == Some(&Value::from("private")));
    let scoped = scope.is_some();
    assert_eq!(
        strip(before),
        strip(after),
        "filtering changed more than the list"
    );
    if filtered.removed == 0 && !scoped {
        assert_eq!(filtered.body, body, "keeping everything changed bytes");
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Rewritten {
    out: Vec<u8>,
    overflowed: bool,
}

fn rewrite<'a>(
    max: usize,
    chunks: impl IntoIterator<Item = &'a [u8]>,
    edit: &mut dyn FnMut(&[u8]) -> Option<Vec<u8>>,
) -> Rewritten {
    let mut rewriter = Rewriter::new(max);
    let mut out = Vec::new();
    let mut overflowed = false;
    for chunk in chunks {
        match rewriter.push(chunk, edit) {
            Ok(bytes) => out.extend(bytes),
            Err(_) => {
                overflowed = true;
                // As the filter does: what the push completed besides comes right away.
                match rewriter.push(&[], edit) {
                    Ok(bytes) => out.extend(bytes),
                    Err(_) => panic!("an empty push overflowed"),
                }
            }
        }
        assert!(
            rewriter.held() <= max,
            "held {} bytes, past the bound of {max}",
            rewriter.held()
        );
    }
    out.extend(rewriter.finish());
    assert_eq!(rewriter.held(), 0, "finish() left bytes behind");
    Rewritten { out, overflowed }
}

fn check_rewriter(
    cut: &chunks::Chunked<'_>,
    max: usize,
    kind: ListKind,
    keep: &dyn Fn(&str) -> bool,
) {
    let mut unchanged = |_: &[u8]| None;
    let whole = rewrite(max, [cut.stream], &mut unchanged);
    if !whole.overflowed {
        assert!(
            whole.out == cut.stream,
            "an unedited stream changed without an overflow"
        );
    }
    let chunked = rewrite(max, cut.chunks.iter().copied(), &mut unchanged);
    assert_eq!(whole, chunked, "chunking changed the unedited stream");
    if cut.stream.len() <= BYTEWISE_MAX {
        let bytewise = rewrite(max, cut.stream.chunks(1), &mut unchanged);
        assert_eq!(whole, bytewise, "byte-by-byte feeding changed the stream");
    }
    // The edit the filter makes: each event's data a list answer, filtered.
    let mut filter = |data: &[u8]| {
        lists::filter(data, kind, keep)
            .ok()
            .flatten()
            .map(|f| f.body)
    };
    let whole = rewrite(max, [cut.stream], &mut filter);
    let chunked = rewrite(max, cut.chunks.iter().copied(), &mut filter);
    assert_eq!(whole, chunked, "chunking changed the filtered stream");
}

fn watch<'a>(sse: bool, id: &str, chunks: impl IntoIterator<Item = &'a [u8]>) -> Outcome {
    let mut watch = Watch::new(sse, id.to_owned(), 4096);
    for chunk in chunks {
        watch.push(chunk);
    }
    watch.finish()
}

fn check_outcome(cut: &chunks::Chunked<'_>, id: &str, sse: bool) {
    if let Some(found) = outcome::of_message(cut.stream, id) {
        assert!(found.answered, "an outcome found is an answer");
        assert!(
            !(found.tool_error && found.rpc_error.is_some()),
            "both a tool error and an RPC error: {found:?}"
        );
    }
    let whole = watch(sse, id, [cut.stream]);
    let chunked = watch(sse, id, cut.chunks.iter().copied());
    assert_eq!(whole, chunked, "chunking changed the outcome");
    if !sse && cut.stream.len() <= 4096 {
        let direct = outcome::of_message(cut.stream, id).unwrap_or_default();
        assert_eq!(whole, direct, "a JSON answer's outcome is of_message's");
    }
}

fn check_response_in(body: &[u8], id: u64) {
    if let Some(found) = aggregate::response_in(body, id) {
        assert_eq!(found.get("id").and_then(Value::as_u64), Some(id));
    }
}

fn check_session(text: &str, selector: u8) {
    let _ = session::open(SALT, "alice", "everything", text);
    let _ = session::valid(text);
    let sealed = session::seal(SALT, "alice", "everything", text);
    assert_eq!(
        session::open(SALT, "alice", "everything", &sealed),
        Some(text),
        "a seal does not open"
    );
    assert_eq!(session::open(SALT, "bob", "everything", &sealed), None);
    let mut bytes = sealed.clone().into_bytes();
    let at = usize::from(selector) % bytes.len();
    if let Some(b) = bytes.get_mut(at) {
        *b ^= 1 | (selector & 0x7e);
    }
    if let Ok(mutated) = String::from_utf8(bytes) {
        assert_eq!(
            session::open(SALT, "alice", "everything", &mutated),
            None,
            "a seal with byte {at} changed still opens"
        );
    }
}
