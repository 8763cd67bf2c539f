//! `/v1/responses`, OpenAI's Responses API: a `response` object, or when
//! streamed the typed event sequence (`event: <type>` plus a `data:` payload
//! carrying the same `type` and a `sequence_number`), ending with
//! `response.completed` and no `[DONE]`. What the output holds (the message, a reasoning
//! item, a tool call) is responses_output.rs's.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Map, Value};

use super::cache;
use super::chat::admit_parsed;
use super::errors::ApiError;
use super::responses_output::{check_encrypted, Output};
use super::sse::{named_event, stream_response};
use super::text::{estimate_tokens, mock_id, text_chars, unix_secs};
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
    if let Err(e) = check_encrypted(&req.body, &state.signer) {
        return e.into_response();
    }
    // `x-mock-cache-read` decides when sent; otherwise the automatic prefix cache.
    let cached_tokens = if faults.cache_read > 0 {
        faults.cache_read
    } else {
        state.with_cache(|c, now| cache::openai_responses(c, &req.body, now))
    };
    let meta = ResponseMeta {
        id: mock_id("resp_", record_id),
        created_at: unix_secs(),
        model: req.model,
        echoed: req.echoed,
        input_tokens: req.input_tokens,
        cached_tokens: cached_tokens.min(req.input_tokens),
        output: Output::plan(&req.body, &faults, &state.signer, record_id),
    };
    if !req.stream {
        return Json(meta.response(true)).into_response();
    }
    let events = meta.events();
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
    body: Value,
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
            body: v,
        })
    }
}

struct ResponseMeta {
    id: String,
    created_at: u64,
    model: String,
    echoed: Map<String, Value>,
    input_tokens: u64,
    /// Part of `input_tokens`, as OpenAI reports cache hits.
    cached_tokens: u64,
    output: Vec<Output>,
}

impl ResponseMeta {
    fn usage(&self) -> Value {
        let (output, reasoning) = self
            .output
            .iter()
            .map(Output::tokens)
            .fold((0, 0), |(o, r), (a, b)| (o + a, r + b));
        json!({
            "input_tokens": self.input_tokens,
            "input_tokens_details": {"cached_tokens": self.cached_tokens},
            "output_tokens": output,
            "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": self.input_tokens + output,
        })
    }

    /// The response object: in progress (no output, null usage) while
    /// streaming, or finished.
    fn response(&self, done: bool) -> Value {
        let output = if done {
            self.output.iter().map(|o| o.item(true)).collect()
        } else {
            Vec::new()
        };
        let mut r = json!({
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": if done { "completed" } else { "in_progress" },
            "background": false,
            "error": null,
            "incomplete_details": null,
            "model": self.model,
            "output": output,
            "service_tier": "default",
            "usage": if done { self.usage() } else { Value::Null },
            "user": null,
        });
        if let Value::Object(o) = &mut r {
            o.extend(self.echoed.clone());
        }
        r
    }

    /// The stream: created, in_progress, each output item's events (responses_output.rs),
    /// completed; each event's `sequence_number` its place in the stream.
    fn events(&self) -> Vec<String> {
        let mut events = vec![
            (
                "response.created",
                json!({"response": self.response(false)}),
            ),
            (
                "response.in_progress",
                json!({"response": self.response(false)}),
            ),
        ];
        for (index, item) in self.output.iter().enumerate() {
            events.extend(item.events(index));
        }
        events.push((
            "response.completed",
            json!({"response": self.response(true)}),
        ));
        events
            .into_iter()
            .enumerate()
            .map(|(seq, (kind, mut data))| {
                data["type"] = json!(kind);
                data["sequence_number"] = json!(seq);
                named_event(kind, &data.to_string())
            })
            .collect()
    }
}
