//! `/v1/chat/completions` and `/v1/models`, shaped like OpenAI's responses
//! field for field, so whatever the gateway parses (usage, ids, SSE framing)
//! is exercised against the real format.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};

use super::chat_tools::{self, LoopAnswer};
use super::errors::ApiError;
use super::faults::Faults;
use super::sse::{data_event, stream_response};
use super::text::{completion_text, estimate_tokens, mock_id, text_chars, unix_secs, word_delta};
use super::{AppState, RecordId};

const SYSTEM_FINGERPRINT: &str = "fp_chokepoint_mock";

pub async fn chat_completions(
    State(state): State<AppState>,
    Extension(RecordId(record_id)): Extension<RecordId>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let faults = match admit(&state, &headers).await {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    complete(&state, record_id, &faults, &body, None)
}

/// The OpenAI preamble every `/v1/*` OpenAI handler runs: the injected delay,
/// then the key (checked before any injected status, as a real provider
/// would), then the injected status.
pub(super) async fn admit(state: &AppState, headers: &HeaderMap) -> Result<Faults, ApiError> {
    let faults = Faults::from_headers_for(headers, &state.config.name);
    faults.delay().await;
    check_auth(headers, &state.config.api_key)?;
    if let Some(status) = faults.status {
        return Err(ApiError::injected(status));
    }
    Ok(faults)
}

/// [`admit`], then the body parsed: the faults to apply and the request, or the answer
/// to send instead.
pub(super) async fn admit_parsed<T>(
    state: &AppState,
    headers: &HeaderMap,
    parse: impl FnOnce() -> Result<T, ApiError>,
) -> Result<(Faults, T), Response> {
    let faults = admit(state, headers)
        .await
        .map_err(IntoResponse::into_response)?;
    let request = parse().map_err(IntoResponse::into_response)?;
    Ok((faults, request))
}

/// Answers a chat completion request that has been admitted. Azure passes its
/// deployment, which then names the model and makes the body's `model`
/// optional, as Azure does.
pub(super) fn complete(
    state: &AppState,
    record_id: u64,
    faults: &Faults,
    body: &[u8],
    deployment: Option<&str>,
) -> Response {
    let req = match ChatRequest::parse(body, deployment.is_none()) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };

    let looped = LoopAnswer::plan(&chat_tools::turn(&req.body, faults), record_id);
    let meta = ChunkMeta {
        id: mock_id("chatcmpl-", record_id),
        created: unix_secs(),
        model: deployment.map_or(req.model, str::to_owned),
        include_usage: req.include_usage,
        prompt_tokens: req.prompt_tokens,
        cached_tokens: faults.cache_read.min(req.prompt_tokens),
        words: faults.words,
        looped,
    };
    if !req.stream {
        return Json(meta.completion()).into_response();
    }
    let frames = StreamEvents::new(meta).map(|e| data_event(&e));
    stream_response(state.stream(record_id, frames, faults), "text/event-stream")
}

pub async fn list_models(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(e) = admit(&state, &headers).await {
        return e.into_response();
    }
    let model = |id: &str, created: u64| json!({"id": id, "object": "model", "created": created, "owned_by": "system"});
    Json(json!({
        "object": "list",
        "data": [
            model("gpt-4o-mini", 1721172741),
            model("gpt-4o", 1715367049),
            model("gpt-4.1-nano", 1744321707),
        ],
    }))
    .into_response()
}

/// OpenAI's scheme: `Authorization: Bearer <key>`; any other header, such as
/// another provider's, counts as no key at all.
fn check_auth(headers: &HeaderMap, api_key: &str) -> Result<(), ApiError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .filter(|k| !k.is_empty());
    match presented {
        None => Err(ApiError::missing_key()),
        Some(k) if k == api_key => Ok(()),
        Some(k) => Err(ApiError::wrong_key(k)),
    }
}

struct ChatRequest {
    model: String,
    stream: bool,
    include_usage: bool,
    prompt_tokens: u64,
    body: Value,
}

impl ChatRequest {
    fn parse(body: &[u8], require_model: bool) -> Result<Self, ApiError> {
        let v: Value = serde_json::from_slice(body).map_err(|_| ApiError::bad_json())?;
        let obj = v.as_object().ok_or_else(ApiError::bad_json)?;
        let model = match obj.get("model") {
            Some(Value::String(m)) => m.clone(),
            _ if !require_model => String::new(),
            None | Some(Value::Null) => return Err(ApiError::missing_model()),
            Some(_) => return Err(ApiError::invalid_type("model", "a string")),
        };
        let messages = match obj.get("messages") {
            None | Some(Value::Null) => return Err(ApiError::missing_param("messages")),
            Some(Value::Array(m)) => m,
            Some(_) => return Err(ApiError::invalid_type("messages", "an array")),
        };
        if messages.is_empty() {
            return Err(ApiError::too_short("messages"));
        }
        let stream = match obj.get("stream") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(ApiError::invalid_type("stream", "a boolean")),
        };
        let include_usage = obj
            .get("stream_options")
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        // Every message's text, whether `content` is a string or parts.
        let chars: usize = messages.iter().map(text_chars).sum();
        Ok(Self {
            model,
            stream,
            include_usage,
            prompt_tokens: estimate_tokens(chars),
            body: v,
        })
    }
}

struct ChunkMeta {
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
    prompt_tokens: u64,
    /// Part of `prompt_tokens`, as OpenAI reports cache hits.
    cached_tokens: u64,
    words: usize,
    /// An agent loop's turn (chat_tools.rs) in place of the words.
    looped: Option<LoopAnswer>,
}

impl ChunkMeta {
    fn usage(&self) -> Value {
        let completion = self.looped.as_ref().map_or(self.words as u64, |l| l.tokens);
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        })
    }

    fn completion(&self) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{
                "index": 0,
                "message": self.looped.as_ref().map_or_else(
                    || json!({
                        "role": "assistant",
                        "content": completion_text(self.words),
                        "refusal": null,
                        "annotations": [],
                    }),
                    |l| l.message.clone(),
                ),
                "logprobs": null,
                "finish_reason": self.looped.as_ref().map_or("stop", |l| l.finish_reason),
            }],
            "usage": self.usage(),
            "service_tier": "default",
            "system_fingerprint": SYSTEM_FINGERPRINT,
        })
    }

    fn chunk(&self, choices: Value, usage: Option<Value>) -> String {
        let mut c = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "service_tier": "default",
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": choices,
        });
        // OpenAI only adds the field when usage was asked for, and then sends
        // it as null on every chunk but the last.
        if self.include_usage {
            c["usage"] = usage.unwrap_or(Value::Null);
        }
        c.to_string()
    }

    fn delta_chunk(&self, delta: Value, finish_reason: Option<&str>) -> String {
        self.chunk(
            json!([{
                "index": 0,
                "delta": delta,
                "logprobs": null,
                "finish_reason": finish_reason,
            }]),
            None,
        )
    }
}

/// Produces the stream's events lazily, one per `next()`: role chunk, one
/// chunk per word, finish chunk, optional usage chunk, `[DONE]`.
struct StreamEvents {
    meta: ChunkMeta,
    next: usize,
}

impl StreamEvents {
    fn new(meta: ChunkMeta) -> Self {
        Self { meta, next: 0 }
    }
}

impl Iterator for StreamEvents {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        let m = &self.meta;
        let i = self.next;
        self.next += 1;
        let looped = m.looped.as_ref();
        let finish = looped.map_or(m.words, |l| l.deltas.len()) + 1;
        let usage = finish + 1;
        let done = if m.include_usage { usage + 1 } else { usage };
        Some(match i {
            0 if looped.is_some_and(|l| l.finish_reason == "tool_calls") => {
                m.delta_chunk(json!({"role": "assistant", "content": null}), None)
            }
            0 => m.delta_chunk(json!({"role": "assistant", "content": ""}), None),
            i if i < finish => match looped {
                Some(l) => m.delta_chunk(l.deltas.get(i - 1).cloned().unwrap_or_default(), None),
                None => m.delta_chunk(json!({"content": word_delta(i - 1)}), None),
            },
            i if i == finish => {
                m.delta_chunk(json!({}), Some(looped.map_or("stop", |l| l.finish_reason)))
            }
            i if i == usage && m.include_usage => m.chunk(json!([]), Some(m.usage())),
            i if i == done => "[DONE]".to_string(),
            _ => return None,
        })
    }
}
