//! `/v1/completions`, OpenAI's legacy text completions, shaped like its responses: a
//! `text_completion` body, or a stream of `text_completion` chunks with the text in
//! `choices[].text`, a last chunk with `usage` when `stream_options.include_usage` asked
//! for it, then `[DONE]`. Like OpenAI's older endpoints it refuses members it does not
//! know, and its default output cap is 16 tokens.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};

use super::chat::admit_parsed;
use super::errors::ApiError;
use super::sse::{data_event, stream_response};
use super::text::{completion_text, estimate_tokens, mock_id, unix_secs, word_delta};
use super::{AppState, RecordId};

const KNOWN: &[&str] = &[
    "model",
    "prompt",
    "suffix",
    "max_tokens",
    "temperature",
    "top_p",
    "n",
    "stream",
    "stream_options",
    "logprobs",
    "echo",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "best_of",
    "logit_bias",
    "user",
    "seed",
];
const DEFAULT_MAX_TOKENS: usize = 16;

pub async fn completions(
    State(state): State<AppState>,
    Extension(RecordId(record_id)): Extension<RecordId>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (faults, req) = match admit_parsed(&state, &headers, || Request::parse(&body)).await {
        Ok(admitted) => admitted,
        Err(answer) => return answer,
    };
    let words = faults.words.min(req.max_tokens);
    let meta = Meta {
        id: mock_id("cmpl-", record_id),
        created: unix_secs(),
        model: req.model,
        prompt_tokens: req.prompt_tokens,
        words,
    };
    if !req.stream {
        return Json(meta.body()).into_response();
    }
    let include_usage = req.include_usage;
    let frames = (0..words + 3).filter_map(move |i| {
        let event = match i {
            i if i < words => meta.chunk(&word_delta(i), None, include_usage),
            i if i == words => meta.chunk("", Some(meta.finish_reason()), include_usage),
            i if i == words + 1 && include_usage => meta.usage_chunk(),
            i if i == words + 2 => "[DONE]".to_string(),
            _ => return None,
        };
        Some(data_event(&event))
    });
    stream_response(
        state.stream(record_id, frames, &faults),
        "text/event-stream",
    )
}

struct Request {
    model: String,
    stream: bool,
    include_usage: bool,
    max_tokens: usize,
    prompt_tokens: u64,
}

impl Request {
    fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let v: Value = serde_json::from_slice(body).map_err(|_| ApiError::bad_json())?;
        let obj = v.as_object().ok_or_else(ApiError::bad_json)?;
        if let Some(unknown) = obj.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(ApiError::unrecognized_argument(unknown));
        }
        let model = match obj.get("model") {
            Some(Value::String(m)) => m.clone(),
            None | Some(Value::Null) => return Err(ApiError::missing_model()),
            Some(_) => return Err(ApiError::invalid_type("model", "a string")),
        };
        // A string or an array of strings (token-id prompts count one token per id).
        let chars = match obj.get("prompt") {
            None | Some(Value::Null) => return Err(ApiError::missing_param("prompt")),
            Some(Value::String(s)) => s.chars().count(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| i.as_str().map_or(4, |s| s.chars().count()))
                .sum(),
            Some(_) => return Err(ApiError::invalid_type("prompt", "a string or an array")),
        };
        let max_tokens = match obj.get("max_tokens") {
            None | Some(Value::Null) => DEFAULT_MAX_TOKENS,
            Some(v) => v
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| ApiError::invalid_type("max_tokens", "an integer"))?,
        };
        Ok(Self {
            model,
            stream: obj.get("stream").and_then(Value::as_bool).unwrap_or(false),
            include_usage: obj
                .get("stream_options")
                .and_then(|o| o.get("include_usage"))
                .and_then(Value::as_bool)
                .unwrap_or(false),
            max_tokens,
            prompt_tokens: estimate_tokens(chars),
        })
    }
}

struct Meta {
    id: String,
    created: u64,
    model: String,
    prompt_tokens: u64,
    words: usize,
}

impl Meta {
    fn finish_reason(&self) -> &'static str {
        // The mock's completion is as long as the cap allows: cut at the cap.
        "length"
    }

    fn usage(&self) -> Value {
        let completion = self.words as u64;
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
        })
    }

    fn body(&self) -> Value {
        json!({
            "id": self.id,
            "object": "text_completion",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "fp_chokepoint_mock",
            "choices": [{
                "text": completion_text(self.words),
                "index": 0,
                "logprobs": null,
                "finish_reason": self.finish_reason(),
            }],
            "usage": self.usage(),
        })
    }

    fn chunk(&self, text: &str, finish: Option<&str>, include_usage: bool) -> String {
        let mut c = json!({
            "id": self.id,
            "object": "text_completion",
            "created": self.created,
            "choices": [{"text": text, "index": 0, "logprobs": null, "finish_reason": finish}],
            "model": self.model,
            "system_fingerprint": "fp_chokepoint_mock",
        });
        if include_usage {
            c["usage"] = Value::Null;
        }
        c.to_string()
    }

    fn usage_chunk(&self) -> String {
        json!({
            "id": self.id,
            "object": "text_completion",
            "created": self.created,
            "choices": [],
            "model": self.model,
            "system_fingerprint": "fp_chokepoint_mock",
            "usage": self.usage(),
        })
        .to_string()
    }
}
