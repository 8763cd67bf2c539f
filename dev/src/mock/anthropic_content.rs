//! The content of an Anthropic message: the completion text, or in an agent loop
//! (tool_call.rs) a `tool_use` block or text quoting the tool's result, after a signed
//! `thinking` block when the request enables thinking. Also the check Anthropic makes
//! on thinking blocks a request carries back: each signature must be one it issued,
//! for that thinking.

use serde_json::{json, Value};

use super::faults::Faults;
use super::signature::Signer;
use super::text::{completion_text, estimate_tokens, mock_id, word_delta};
use super::tool_call::{pieces, quote, result_text, Turn};

/// Bytes per streamed `input_json_delta` or quoted-text delta.
const DELTA_BYTES: usize = 24;

#[derive(Debug, Clone)]
enum Block {
    /// `shown` is the thinking as the client sees it: empty with `display: "omitted"`.
    Thinking {
        shown: String,
        signature: String,
        tokens: u64,
    },
    /// The completion text, `words` words (one token each).
    Words(usize),
    /// Text quoting a tool's result.
    Quote(String),
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
}

impl Block {
    fn tokens(&self) -> u64 {
        match self {
            Block::Thinking { tokens, .. } => *tokens,
            Block::Words(n) => *n as u64,
            Block::Quote(t) => estimate_tokens(t.len()),
            Block::ToolUse { input, .. } => estimate_tokens(input.to_string().len()),
        }
    }

    fn json(&self) -> Value {
        match self {
            Block::Thinking {
                shown, signature, ..
            } => json!({"type": "thinking", "thinking": shown, "signature": signature}),
            Block::Words(n) => json!({"type": "text", "text": completion_text(*n)}),
            Block::Quote(t) => json!({"type": "text", "text": t}),
            Block::ToolUse { id, name, input } => {
                json!({"type": "tool_use", "id": id, "name": name, "input": input})
            }
        }
    }

    /// As content_block_start shows it, before any delta.
    fn started(&self) -> Value {
        match self {
            Block::Thinking { .. } => json!({"type": "thinking", "thinking": "", "signature": ""}),
            Block::Words(_) | Block::Quote(_) => json!({"type": "text", "text": ""}),
            Block::ToolUse { id, name, .. } => {
                json!({"type": "tool_use", "id": id, "name": name, "input": {}})
            }
        }
    }

    fn deltas(&self) -> Vec<Value> {
        match self {
            Block::Thinking {
                shown, signature, ..
            } => {
                let mut d: Vec<Value> = pieces(shown, DELTA_BYTES)
                    .into_iter()
                    .map(|t| json!({"type": "thinking_delta", "thinking": t}))
                    .collect();
                d.push(json!({"type": "signature_delta", "signature": signature}));
                d
            }
            Block::Words(n) => (0..*n)
                .map(|i| json!({"type": "text_delta", "text": word_delta(i)}))
                .collect(),
            Block::Quote(t) => pieces(t, DELTA_BYTES)
                .into_iter()
                .map(|t| json!({"type": "text_delta", "text": t}))
                .collect(),
            Block::ToolUse { input, .. } => pieces(&input.to_string(), DELTA_BYTES)
                .into_iter()
                .map(|p| json!({"type": "input_json_delta", "partial_json": p}))
                .collect(),
        }
    }
}

/// What one message says.
#[derive(Debug, Clone)]
pub struct Content {
    blocks: Vec<Block>,
}

impl Content {
    /// This turn's content for a parsed Messages request.
    pub fn plan(body: &Value, faults: &Faults, signer: &Signer, record_id: u64) -> Self {
        let turn = turn(body, faults);
        let mut blocks = Vec::new();
        let thinking = body.pointer("/thinking/type").and_then(Value::as_str);
        if faults.tool_call.is_some() && matches!(thinking, Some("enabled" | "adaptive")) {
            let thought = turn.thought();
            let omitted =
                body.pointer("/thinking/display").and_then(Value::as_str) == Some("omitted");
            blocks.push(Block::Thinking {
                shown: if omitted {
                    String::new()
                } else {
                    thought.clone()
                },
                signature: signer.seal(&thought),
                // Billed in full whether shown or not.
                tokens: estimate_tokens(thought.len()),
            });
        }
        blocks.push(match turn {
            Turn::Text => Block::Words(faults.words),
            Turn::Quote(t) => Block::Quote(t),
            Turn::Call(c) => Block::ToolUse {
                id: mock_id("toolu_", record_id),
                name: c.name.clone(),
                input: c.object().unwrap_or_default(),
            },
        });
        Self { blocks }
    }

    pub fn output_tokens(&self) -> u64 {
        self.blocks.iter().map(Block::tokens).sum()
    }

    pub fn stop_reason(&self) -> &'static str {
        if self
            .blocks
            .iter()
            .any(|b| matches!(b, Block::ToolUse { .. }))
        {
            "tool_use"
        } else {
            "end_turn"
        }
    }

    pub fn json(&self) -> Value {
        Value::Array(self.blocks.iter().map(Block::json).collect())
    }

    /// The content's stream events, `(type, data)`: each block's content_block_start,
    /// its deltas and content_block_stop, with Anthropic's `ping` after the first start.
    pub fn events(&self) -> Vec<(&'static str, Value)> {
        let mut out = Vec::new();
        for (index, block) in self.blocks.iter().enumerate() {
            out.push((
                "content_block_start",
                json!({"index": index, "content_block": block.started()}),
            ));
            if index == 0 {
                out.push(("ping", json!({})));
            }
            for delta in block.deltas() {
                out.push((
                    "content_block_delta",
                    json!({"index": index, "delta": delta}),
                ));
            }
            out.push(("content_block_stop", json!({"index": index})));
        }
        out
    }
}

/// Calls the tool `x-mock-tool-call` names when the request offers it, or quotes the
/// result when the last message brings one.
fn turn(body: &Value, faults: &Faults) -> Turn {
    let Some(call) = &faults.tool_call else {
        return Turn::Text;
    };
    let last = body
        .get("messages")
        .and_then(Value::as_array)
        .and_then(|m| m.last());
    let result = last
        .filter(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .and_then(|m| m.get("content"))
        .and_then(Value::as_array)
        .and_then(|blocks| {
            blocks
                .iter()
                .find(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
        });
    if let Some(result) = result {
        return Turn::Quote(quote(&result_text(
            result.get("content").unwrap_or(&Value::Null),
        )));
    }
    let offered = body
        .get("tools")
        .and_then(Value::as_array)
        .is_some_and(|tools| {
            tools
                .iter()
                .any(|t| t.get("name").and_then(Value::as_str) == Some(call.name.as_str()))
        });
    if offered && call.object().is_some() {
        Turn::Call(call.clone())
    } else {
        Turn::Text
    }
}

/// Anthropic's check on the thinking blocks of earlier assistant turns: each must carry
/// the signature issued with it. The error message is Anthropic's.
pub fn check_signatures(body: &Value, signer: &Signer) -> Result<(), String> {
    let messages = body.get("messages").and_then(Value::as_array);
    for (i, message) in messages.into_iter().flatten().enumerate() {
        if message.get("role").and_then(Value::as_str) != Some("assistant") {
            continue;
        }
        let blocks = message.get("content").and_then(Value::as_array);
        for (j, block) in blocks.into_iter().flatten().enumerate() {
            if block.get("type").and_then(Value::as_str) != Some("thinking") {
                continue;
            }
            let Some(signature) = block.get("signature").and_then(Value::as_str) else {
                return Err(format!(
                    "messages.{i}.content.{j}.thinking.signature: Field required"
                ));
            };
            let shown = block.get("thinking").and_then(Value::as_str).unwrap_or("");
            match signer.open(signature) {
                Some(thought) if shown.is_empty() || shown == thought => {}
                _ => {
                    return Err(format!(
                        "messages.{i}.content.{j}: Invalid `signature` in `thinking` block"
                    ))
                }
            }
        }
    }
    Ok(())
}
