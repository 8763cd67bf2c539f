//! Chat Completions in an agent loop (tool_call.rs): an assistant message with
//! `tool_calls` (streamed as `delta.tool_calls` chunks carrying the arguments in pieces,
//! ending with `finish_reason: "tool_calls"`), or text quoting the `tool` message a
//! request brings back.

use serde_json::{json, Value};

use super::faults::Faults;
use super::text::{estimate_tokens, mock_id};
use super::tool_call::{pieces, quote, result_text, Turn};

/// Bytes per streamed arguments or quoted-text delta.
const DELTA_BYTES: usize = 24;

/// Quotes the result when the last message is a tool's; else calls the function
/// `x-mock-tool-call` names when `tools` offers it.
pub fn turn(body: &Value, faults: &Faults) -> Turn {
    let Some(call) = &faults.tool_call else {
        return Turn::Text;
    };
    let last = body
        .get("messages")
        .and_then(Value::as_array)
        .and_then(|m| m.last());
    if let Some(result) = last.filter(|m| m.get("role").and_then(Value::as_str) == Some("tool")) {
        return Turn::Quote(quote(&result_text(
            result.get("content").unwrap_or(&Value::Null),
        )));
    }
    let offered = body
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|t| t.pointer("/function/name").and_then(Value::as_str) == Some(call.name.as_str()));
    if offered && call.object().is_some() {
        Turn::Call(call.clone())
    } else {
        Turn::Text
    }
}

/// A loop turn's answer: the assistant message, the finish reason, the completion tokens
/// and the stream's deltas after the role chunk.
pub struct LoopAnswer {
    pub message: Value,
    pub finish_reason: &'static str,
    pub tokens: u64,
    pub deltas: Vec<Value>,
}

impl LoopAnswer {
    /// `None` for an ordinary turn.
    pub fn plan(turn: &Turn, record_id: u64) -> Option<Self> {
        match turn {
            Turn::Text => None,
            Turn::Quote(text) => Some(Self {
                message: json!({"role": "assistant", "content": text, "refusal": null, "annotations": []}),
                finish_reason: "stop",
                tokens: estimate_tokens(text.len()),
                deltas: pieces(text, DELTA_BYTES)
                    .into_iter()
                    .map(|t| json!({"content": t}))
                    .collect(),
            }),
            Turn::Call(call) => {
                let id = mock_id("call_", record_id);
                let arguments = call.object().unwrap_or_default().to_string();
                let mut deltas = vec![json!({"tool_calls": [{
                    "index": 0, "id": id, "type": "function",
                    "function": {"name": call.name, "arguments": ""},
                }]})];
                deltas.extend(
                    pieces(&arguments, DELTA_BYTES).into_iter().map(
                        |p| json!({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}),
                    ),
                );
                Some(Self {
                    message: json!({
                        "role": "assistant",
                        "content": null,
                        "tool_calls": [{
                            "id": id, "type": "function",
                            "function": {"name": call.name, "arguments": arguments},
                        }],
                        "refusal": null,
                        "annotations": [],
                    }),
                    finish_reason: "tool_calls",
                    tokens: estimate_tokens(arguments.len()),
                    deltas,
                })
            }
        }
    }
}
