//! `/v1/responses`, OpenAI's Responses API: a `response` object, or when
//! streamed the typed event sequence (`event: <type>` plus a `data:` payload
//! carrying the same `type` and a `sequence_number`), ending with
//! `response.completed` and no `[DONE]`. With `x-mock-reasoning-tokens`, a reasoning
//! model: a reasoning item (its content never shown) comes before the message, and the
//! usage counts its tokens.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Map, Value};

use super::cache;
use super::chat::admit_parsed;
use super::errors::ApiError;
use super::sse::{named_event, stream_response};
use super::text::{completion_text, estimate_tokens, mock_id, text_chars, unix_secs, word_delta};
use super::{AppState, RecordId};

pub async fn create_response(
    State(state): State<AppState>,
    Extension(RecordId(record_id)): Extension<RecordId>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (faults, req) =
        match admit_parsed(&state, &headers, || ResponsesRequest::parse(&body)).await {
            Ok(admitted) => admitted,
            Err(answer) => return answer,
        };
    // `x-mock-cache-read` decides when sent; otherwise the automatic prefix cache.
    let cached_tokens = if faults.cache_read > 0 {
        faults.cache_read
    } else {
        let sent: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        state.with_cache(|c, now| cache::openai_responses(c, &sent, now))
    };
    let meta = ResponseMeta {
        id: mock_id("resp_", record_id),
        item_id: mock_id("msg_", record_id),
        created_at: unix_secs(),
        model: req.model,
        echoed: req.echoed,
        input_tokens: req.input_tokens,
        cached_tokens: cached_tokens.min(req.input_tokens),
        words: faults.words,
        reasoning_tokens: faults.reasoning,
    };
    if !req.stream {
        return Json(meta.response(true)).into_response();
    }
    let events = ResponseEvents { meta, next: 0 };
    stream_response(
        state.stream(record_id, events, &faults),
        "text/event-stream; charset=utf-8",
    )
}

struct ResponsesRequest {
    model: String,
    stream: bool,
    input_tokens: u64,
    /// Request parameters the response object repeats back.
    echoed: Map<String, Value>,
}

/// Parameters a response object echoes, with the values it shows when the
/// request left them out.
fn echo_defaults() -> [(&'static str, Value); 13] {
    [
        ("instructions", Value::Null),
        ("max_output_tokens", Value::Null),
        ("metadata", json!({})),
        ("parallel_tool_calls", json!(true)),
        ("previous_response_id", Value::Null),
        ("reasoning", json!({"effort": null, "summary": null})),
        ("store", json!(true)),
        ("temperature", json!(1.0)),
        (
            "text",
            json!({"format": {"type": "text"}, "verbosity": "medium"}),
        ),
        ("tool_choice", json!("auto")),
        ("tools", json!([])),
        ("top_p", json!(1.0)),
        ("truncation", json!("disabled")),
    ]
}

impl ResponsesRequest {
    fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let v: Value = serde_json::from_slice(body).map_err(|_| ApiError::bad_json())?;
        let obj = v.as_object().ok_or_else(ApiError::bad_json)?;
        let model = match obj.get("model") {
            None | Some(Value::Null) => return Err(ApiError::missing_param("model")),
            Some(Value::String(m)) => m.clone(),
            Some(_) => return Err(ApiError::invalid_type("model", "a string")),
        };
        // Optional: a request may continue from `previous_response_id` alone.
        let input = match obj.get("input") {
            None | Some(Value::Null) => Value::Null,
            Some(i @ (Value::String(_) | Value::Array(_))) => i.clone(),
            Some(_) => {
                return Err(ApiError::invalid_type(
                    "input",
                    "one of a string or array of input items",
                ))
            }
        };
        let stream = match obj.get("stream") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(ApiError::invalid_type("stream", "a boolean")),
        };
        let instructions = obj.get("instructions").unwrap_or(&Value::Null);
        let chars = text_chars(&input) + text_chars(instructions);
        let echoed = echo_defaults()
            .into_iter()
            .map(|(k, default)| {
                let v = obj.get(k).filter(|v| !v.is_null()).cloned();
                (k.to_string(), v.unwrap_or(default))
            })
            .collect();
        Ok(Self {
            model,
            stream,
            input_tokens: estimate_tokens(chars),
            echoed,
        })
    }
}

struct ResponseMeta {
    id: String,
    /// The output message's id.
    item_id: String,
    created_at: u64,
    model: String,
    echoed: Map<String, Value>,
    input_tokens: u64,
    /// Part of `input_tokens`, as OpenAI reports cache hits.
    cached_tokens: u64,
    words: usize,
    /// Hidden reasoning: 0 for a model that does not reason.
    reasoning_tokens: u64,
}

impl ResponseMeta {
    fn part(&self, text: &str) -> Value {
        json!({"type": "output_text", "annotations": [], "logprobs": [], "text": text})
    }

    fn item(&self, done: bool) -> Value {
        let (status, content) = if done {
            (
                "completed",
                json!([self.part(&completion_text(self.words))]),
            )
        } else {
            ("in_progress", json!([]))
        };
        json!({
            "id": self.item_id,
            "type": "message",
            "status": status,
            "content": content,
            "role": "assistant",
        })
    }

    /// The reasoning item, as a stream shows it: its summary off, its content never.
    fn reasoning_item(&self) -> Value {
        json!({"id": self.item_id.replacen("msg_", "rs_", 1), "type": "reasoning", "summary": []})
    }

    /// Output items before the message: the reasoning item, when the model reasons.
    fn reasoning_items(&self) -> usize {
        usize::from(self.reasoning_tokens > 0)
    }

    fn usage(&self) -> Value {
        let output = self.words as u64 + self.reasoning_tokens;
        json!({
            "input_tokens": self.input_tokens,
            "input_tokens_details": {"cached_tokens": self.cached_tokens},
            "output_tokens": output,
            "output_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
            "total_tokens": self.input_tokens + output,
        })
    }

    /// The response object: in progress (no output, null usage) while
    /// streaming, or finished.
    fn response(&self, done: bool) -> Value {
        let mut r = json!({
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": if done { "completed" } else { "in_progress" },
            "background": false,
            "error": null,
            "incomplete_details": null,
            "model": self.model,
            "output": match (done, self.reasoning_items()) {
                (false, _) => json!([]),
                (true, 0) => json!([self.item(true)]),
                (true, _) => json!([self.reasoning_item(), self.item(true)]),
            },
            "service_tier": "default",
            "usage": if done { self.usage() } else { Value::Null },
            "user": null,
        });
        if let Value::Object(o) = &mut r {
            o.extend(self.echoed.clone());
        }
        r
    }
}

/// The stream, one event per `next()`: created, in_progress, (a reasoning item added and
/// done,) item added, part added, a text delta per word, text done, part done, item done,
/// completed.
struct ResponseEvents {
    meta: ResponseMeta,
    next: usize,
}

impl Iterator for ResponseEvents {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        let m = &self.meta;
        let seq = self.next;
        self.next += 1;
        // The reasoning item's two events come first; the message's follow at `shift`.
        let shift = 2 * m.reasoning_items();
        let index = m.reasoning_items();
        let deltas = 4 + shift..4 + shift + m.words;
        let after = deltas.end;
        let text = || completion_text(m.words);
        // Fields shared by the events about the message's text part.
        let at_part = || json!({"item_id": m.item_id, "output_index": index, "content_index": 0});
        let (kind, mut data) = match seq {
            0 => ("response.created", json!({"response": m.response(false)})),
            1 => (
                "response.in_progress",
                json!({"response": m.response(false)}),
            ),
            2 if shift > 0 => (
                "response.output_item.added",
                json!({"output_index": 0, "item": m.reasoning_item()}),
            ),
            3 if shift > 0 => (
                "response.output_item.done",
                json!({"output_index": 0, "item": m.reasoning_item()}),
            ),
            i if i == 2 + shift => (
                "response.output_item.added",
                json!({"output_index": index, "item": m.item(false)}),
            ),
            i if i == 3 + shift => {
                let mut d = at_part();
                d["part"] = m.part("");
                ("response.content_part.added", d)
            }
            i if deltas.contains(&i) => {
                let mut d = at_part();
                d["delta"] = json!(word_delta(i - deltas.start));
                d["logprobs"] = json!([]);
                ("response.output_text.delta", d)
            }
            i if i == after => {
                let mut d = at_part();
                d["text"] = json!(text());
                d["logprobs"] = json!([]);
                ("response.output_text.done", d)
            }
            i if i == after + 1 => {
                let mut d = at_part();
                d["part"] = m.part(&text());
                ("response.content_part.done", d)
            }
            i if i == after + 2 => (
                "response.output_item.done",
                json!({"output_index": index, "item": m.item(true)}),
            ),
            i if i == after + 3 => ("response.completed", json!({"response": m.response(true)})),
            _ => return None,
        };
        data["type"] = json!(kind);
        data["sequence_number"] = json!(seq);
        Some(named_event(kind, &data.to_string()))
    }
}
