//! The output items of a Responses API answer: the message with the completion text,
//! or in an agent loop (tool_call.rs) a `function_call` or `custom_tool_call` item, or
//! a message quoting the tool's result; a `reasoning` item first when the model
//! reasons (`x-mock-reasoning-tokens`, or any loop turn), carrying `encrypted_content`
//! when the request asks for it (`include: ["reasoning.encrypted_content"]`, as a
//! stateless client like Codex does). Also OpenAI's check on the reasoning items a
//! request carries back: their encrypted content must be what was issued.

use serde_json::{json, Value};

use super::errors::ApiError;
use super::faults::Faults;
use super::signature::Signer;
use super::text::{completion_text, estimate_tokens, mock_id, word_delta};
use super::tool_call::{pieces, quote, result_text, ToolCall, Turn};

/// Bytes per streamed argument or quoted-text delta.
const DELTA_BYTES: usize = 24;

#[derive(Debug, Clone)]
pub enum Output {
    Reasoning {
        id: String,
        encrypted: Option<String>,
        tokens: u64,
    },
    /// The completion text, `words` words (one token, one delta each).
    Words { id: String, words: usize },
    /// A message quoting a tool's result.
    Quote { id: String, text: String },
    FunctionCall {
        id: String,
        call_id: String,
        name: String,
        arguments: String,
    },
    /// A call to a custom (freeform) tool: its input is raw text, not JSON.
    CustomCall {
        id: String,
        call_id: String,
        name: String,
        input: String,
    },
}

/// The kind of tool the request offers under a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ToolKind {
    Function,
    Custom,
}

impl Output {
    /// This turn's output items for a parsed Responses request.
    pub fn plan(body: &Value, faults: &Faults, signer: &Signer, record_id: u64) -> Vec<Output> {
        let turn = turn(body, faults);
        let message_id = mock_id("msg_", record_id);
        let mut reasoning = faults.reasoning;
        if faults.tool_call.is_some() {
            reasoning = reasoning.max(estimate_tokens(turn.thought().len()));
        }
        let mut out = Vec::new();
        if reasoning > 0 {
            let wants = body
                .get("include")
                .and_then(Value::as_array)
                .is_some_and(|i| i.iter().any(|v| v == "reasoning.encrypted_content"));
            out.push(Output::Reasoning {
                id: message_id.replacen("msg_", "rs_", 1),
                encrypted: wants.then(|| signer.seal(&turn.thought())),
                tokens: reasoning,
            });
        }
        out.push(match turn {
            Turn::Text => Output::Words {
                id: message_id,
                words: faults.words,
            },
            Turn::Quote(text) => Output::Quote {
                id: message_id,
                text,
            },
            Turn::Call(ToolCall { name, arguments }) => {
                let call_id = mock_id("call_", record_id);
                match offered(body, &name) {
                    Some(ToolKind::Custom) => Output::CustomCall {
                        id: mock_id("ctc_", record_id),
                        call_id,
                        name,
                        input: arguments,
                    },
                    _ => Output::FunctionCall {
                        id: mock_id("fc_", record_id),
                        call_id,
                        name,
                        arguments: if arguments.is_empty() {
                            "{}".into()
                        } else {
                            arguments
                        },
                    },
                }
            }
        });
        out
    }

    /// Output tokens and the reasoning part of them.
    pub fn tokens(&self) -> (u64, u64) {
        match self {
            Output::Reasoning { tokens, .. } => (*tokens, *tokens),
            Output::Words { words, .. } => (*words as u64, 0),
            Output::Quote { text, .. } => (estimate_tokens(text.len()), 0),
            Output::FunctionCall { arguments: a, .. } | Output::CustomCall { input: a, .. } => {
                (estimate_tokens(a.len()), 0)
            }
        }
    }

    fn text(&self) -> String {
        match self {
            Output::Words { words, .. } => completion_text(*words),
            Output::Quote { text, .. } => text.clone(),
            _ => String::new(),
        }
    }

    fn part(text: &str) -> Value {
        json!({"type": "output_text", "annotations": [], "logprobs": [], "text": text})
    }

    /// The item as a finished response shows it, or (`done` false) as
    /// `response.output_item.added` first announces it.
    pub fn item(&self, done: bool) -> Value {
        let status = if done { "completed" } else { "in_progress" };
        match self {
            Output::Reasoning { id, encrypted, .. } => {
                let mut item = json!({"id": id, "type": "reasoning", "summary": []});
                if let (true, Some(e)) = (done, encrypted) {
                    item["encrypted_content"] = json!(e);
                }
                item
            }
            Output::Words { id, .. } | Output::Quote { id, .. } => json!({
                "id": id,
                "type": "message",
                "status": status,
                "content": if done { json!([Self::part(&self.text())]) } else { json!([]) },
                "role": "assistant",
            }),
            Output::FunctionCall {
                id,
                call_id,
                name,
                arguments,
            } => json!({
                "id": id,
                "type": "function_call",
                "status": status,
                "arguments": if done { arguments.as_str() } else { "" },
                "call_id": call_id,
                "name": name,
            }),
            Output::CustomCall {
                id,
                call_id,
                name,
                input,
            } => json!({
                "id": id,
                "type": "custom_tool_call",
                "status": status,
                "call_id": call_id,
                "input": if done { input.as_str() } else { "" },
                "name": name,
            }),
        }
    }

    /// The item's stream events `(type, data)` at `index` in the output.
    pub fn events(&self, index: usize) -> Vec<(&'static str, Value)> {
        let mut out = vec![(
            "response.output_item.added",
            json!({"output_index": index, "item": self.item(false)}),
        )];
        match self {
            Output::Reasoning { .. } => {}
            Output::Words { id, .. } | Output::Quote { id, .. } => {
                let at = || json!({"item_id": id, "output_index": index, "content_index": 0});
                let mut d = at();
                d["part"] = Self::part("");
                out.push(("response.content_part.added", d));
                let deltas = match self {
                    Output::Words { words, .. } => (0..*words).map(word_delta).collect(),
                    _ => pieces(&self.text(), DELTA_BYTES),
                };
                for delta in deltas {
                    let mut d = at();
                    d["delta"] = json!(delta);
                    d["logprobs"] = json!([]);
                    out.push(("response.output_text.delta", d));
                }
                let mut d = at();
                d["text"] = json!(self.text());
                d["logprobs"] = json!([]);
                out.push(("response.output_text.done", d));
                let mut d = at();
                d["part"] = Self::part(&self.text());
                out.push(("response.content_part.done", d));
            }
            Output::FunctionCall { id, arguments, .. } => out.extend(argument_events(
                (
                    "response.function_call_arguments.delta",
                    "response.function_call_arguments.done",
                ),
                "arguments",
                id,
                arguments,
                index,
            )),
            Output::CustomCall { id, input, .. } => out.extend(argument_events(
                (
                    "response.custom_tool_call_input.delta",
                    "response.custom_tool_call_input.done",
                ),
                "input",
                id,
                input,
                index,
            )),
        }
        out.push((
            "response.output_item.done",
            json!({"output_index": index, "item": self.item(true)}),
        ));
        out
    }
}

/// A tool call's arguments streamed as delta pieces, then the done event with the whole
/// under `field`: function calls' JSON and custom tools' freeform input alike.
fn argument_events(
    (delta_event, done_event): (&'static str, &'static str),
    field: &str,
    id: &str,
    whole: &str,
    index: usize,
) -> Vec<(&'static str, Value)> {
    let mut out: Vec<(&'static str, Value)> = pieces(whole, DELTA_BYTES)
        .into_iter()
        .map(|delta| {
            (
                delta_event,
                json!({"item_id": id, "output_index": index, "delta": delta}),
            )
        })
        .collect();
    let mut done = json!({"item_id": id, "output_index": index});
    done[field] = json!(whole);
    out.push((done_event, done));
    out
}

/// Quotes the result when the conversation's latest input (past the last user message)
/// is a tool's output; else calls the tool `x-mock-tool-call` names when offered.
fn turn(body: &Value, faults: &Faults) -> Turn {
    let Some(call) = &faults.tool_call else {
        return Turn::Text;
    };
    let input = body.get("input").and_then(Value::as_array);
    let latest = input.into_iter().flatten().rev().find(|item| {
        let kind = item
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("message");
        let role = item.get("role").and_then(Value::as_str);
        kind.ends_with("_call_output") || (kind == "message" && role == Some("user"))
    });
    if let Some(output) = latest.filter(|i| {
        i.get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| t.ends_with("_call_output"))
    }) {
        return Turn::Quote(quote(&result_text(
            output.get("output").unwrap_or(&Value::Null),
        )));
    }
    match offered(body, &call.name) {
        Some(ToolKind::Custom) => Turn::Call(call.clone()),
        Some(ToolKind::Function) if call.object().is_some() => Turn::Call(call.clone()),
        _ => Turn::Text,
    }
}

/// The kind of the tool the request offers under `name`: in `tools`, or in the
/// `additional_tools` input items Codex sends them in, namespaces included.
fn offered(body: &Value, name: &str) -> Option<ToolKind> {
    fn find(tools: &Value, name: &str) -> Option<ToolKind> {
        tools.as_array()?.iter().find_map(|t| {
            match (t.get("type").and_then(Value::as_str), t.get("name")) {
                (Some("namespace"), _) => find(t.get("tools")?, name),
                (Some("function"), Some(n)) if n == name => Some(ToolKind::Function),
                (Some("custom"), Some(n)) if n == name => Some(ToolKind::Custom),
                _ => None,
            }
        })
    }
    let extra = body.get("input").and_then(Value::as_array);
    body.get("tools").and_then(|t| find(t, name)).or_else(|| {
        extra
            .into_iter()
            .flatten()
            .filter(|i| i.get("type").and_then(Value::as_str) == Some("additional_tools"))
            .find_map(|i| find(i.get("tools")?, name))
    })
}

/// OpenAI's check on the reasoning items a request carries back, with its error.
pub fn check_encrypted(body: &Value, signer: &Signer) -> Result<(), ApiError> {
    let input = body.get("input").and_then(Value::as_array);
    for item in input.into_iter().flatten() {
        if item.get("type").and_then(Value::as_str) != Some("reasoning") {
            continue;
        }
        let Some(content) = item.get("encrypted_content").and_then(Value::as_str) else {
            continue;
        };
        if signer.open(content).is_none() {
            let shown = |s: &str| s.chars().collect::<Vec<_>>();
            let c = shown(content);
            let head: String = c.iter().take(4).collect();
            let tail: String = c[c.len().saturating_sub(4)..].iter().collect();
            return Err(ApiError {
                status: axum::http::StatusCode::BAD_REQUEST,
                message: format!("The encrypted content {head}...{tail} could not be verified."),
                kind: "invalid_request_error",
                param: None,
                code: Some("invalid_encrypted_content"),
            });
        }
    }
    Ok(())
}
