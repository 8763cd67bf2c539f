//! What an MCP answer says about the request, for its usage record, read without
//! changing a byte: whether the response came, its JSON-RPC error code, and whether a
//! tool reported failure (`isError: true`, which MCP keeps apart from protocol errors:
//! https://modelcontextprotocol.io/specification/2025-11-25/server/tools#error-handling).

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::error::INTERNAL_ERROR;
use super::json::{object, present};
use crate::accounting::sse::SseParser;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Outcome {
    /// the response to this id was seen
    pub answered: bool,
    pub rpc_error: Option<i64>,
    /// result.isError == true
    pub tool_error: bool,
}

#[derive(Deserialize)]
struct Answer<'a> {
    #[serde(default, borrow, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    method: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    result: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    error: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ErrorCode<'a> {
    #[serde(default, borrow, deserialize_with = "present")]
    code: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ToolResult<'a> {
    #[serde(default, borrow, deserialize_with = "present", rename = "isError")]
    is_error: Option<&'a RawValue>,
}

/// From one JSON-RPC message (a JSON body or one SSE event's data): if it is the response whose id's JSON text equals `id` (compare as JSON values: `1` vs `1`, `"a"` vs `"a"`), its outcome.
///
/// An error with `"id": null` is a server's answer to a request it could not read (the
/// 400s of recorded servers): it answers whatever was asked. An error whose code is not
/// an integer still is an error, recorded as -32603.
pub fn of_message(message: &[u8], id: &str) -> Option<Outcome> {
    let answer: Answer = object(message)?;
    if answer.method.is_some() {
        return None;
    }
    let answer_id = answer.id?.get();
    let error = answer.error.filter(|e| e.get() != "null");
    let unread_id = answer_id == "null" && error.is_some();
    if !unread_id && !same_id(answer_id, id) {
        return None;
    }
    if let Some(error) = error {
        return Some(Outcome {
            answered: true,
            rpc_error: Some(code(error).unwrap_or(INTERNAL_ERROR)),
            tool_error: false,
        });
    }
    let result = answer.result?;
    let tool_error = object::<ToolResult>(result.get().as_bytes())
        .and_then(|r| r.is_error)
        .is_some_and(|flag| flag.get() == "true");
    Some(Outcome {
        answered: true,
        rpc_error: None,
        tool_error,
    })
}

fn code(error: &RawValue) -> Option<i64> {
    let code = object::<ErrorCode>(error.get().as_bytes())?.code?;
    match serde_json::from_str::<Value>(code.get()).ok()? {
        Value::Number(n) => n.as_i64().or_else(|| {
            let f = n.as_f64()?;
            // An integral float (`-32601.0`) is the integer; i64's range keeps the cast exact.
            (f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i64)
        }),
        _ => None,
    }
}

/// Two ids' JSON texts name the same id: equal strings once unescaped, or equal numbers.
fn same_id(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    match (
        serde_json::from_str::<Value>(a),
        serde_json::from_str::<Value>(b),
    ) {
        (Ok(Value::String(x)), Ok(Value::String(y))) => x == y,
        (Ok(Value::Number(x)), Ok(Value::Number(y))) if x.is_f64() || y.is_f64() => {
            x.as_f64().is_some() && x.as_f64() == y.as_f64()
        }
        (Ok(Value::Number(x)), Ok(Value::Number(y))) => x == y,
        _ => false,
    }
}

enum Reading {
    /// A JSON answer, kept whole up to the bound; `None` once it outgrew it.
    Json(Option<Vec<u8>>),
    Sse(SseParser),
}

/// Watches a whole answer chunk by chunk (never changing it), JSON or SSE, with bounded memory (JSON: keeps at most `max_bytes` then gives up; SSE: one event at most `max_bytes`, larger ones skipped, not an error), and finds the response to `id`.
pub struct Watch {
    id: String,
    max_bytes: usize,
    reading: Reading,
    found: Option<Outcome>,
}

impl Watch {
    pub fn new(sse: bool, id: String, max_bytes: usize) -> Watch {
        Watch {
            id,
            max_bytes,
            reading: if sse {
                Reading::Sse(SseParser::new(max_bytes))
            } else {
                Reading::Json(Some(Vec::new()))
            },
            found: None,
        }
    }

    pub fn push(&mut self, chunk: &[u8]) {
        if self.found.is_some() {
            return;
        }
        match &mut self.reading {
            Reading::Json(body) => {
                let fits = body
                    .as_ref()
                    .is_some_and(|b| b.len() + chunk.len() <= self.max_bytes);
                if fits {
                    if let Some(b) = body {
                        b.extend_from_slice(chunk);
                    }
                } else {
                    *body = None;
                }
            }
            Reading::Sse(parser) => {
                let (id, found) = (&self.id, &mut self.found);
                parser.feed(chunk, |event| {
                    if found.is_none() {
                        *found = of_message(event.data, id);
                    }
                });
            }
        }
    }

    /// The outcome; not answered when no response to the id came (or a JSON answer was
    /// too large to read).
    pub fn finish(&mut self) -> Outcome {
        if let Some(found) = self.found {
            return found;
        }
        match &mut self.reading {
            Reading::Json(body) => body
                .take()
                .and_then(|b| of_message(&b, &self.id))
                .unwrap_or_default(),
            Reading::Sse(parser) => {
                parser.finish();
                Outcome::default()
            }
        }
    }
}

#[cfg(test)]
#[path = "outcome_tests.rs"]
mod tests;
