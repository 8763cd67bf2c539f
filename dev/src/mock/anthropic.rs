//! `/v1/messages`, Anthropic's Messages API: `x-api-key` auth, a required
//! `anthropic-version` header, Anthropic's error envelope, and the
//! `message_start` … `message_stop` event stream. Every response carries a
//! `request-id` header, as Anthropic's do.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};

use super::anthropic_content::{check_signatures, Content};
use super::cache::{self, AnthropicCaching};
use super::faults::Faults;
use super::sse::{named_event, stream_response};
use super::text::{estimate_tokens, mock_id, text_chars};
use super::{AppState, RecordId};

pub async fn messages(
    State(state): State<AppState>,
    Extension(RecordId(record_id)): Extension<RecordId>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request_id = mock_id("req_", record_id);
    let mut resp = match answer(&state, record_id, &headers, &body).await {
        Ok(r) => r,
        Err(e) => e.respond(&request_id),
    };
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("request-id", v);
    }
    resp
}

async fn answer(
    state: &AppState,
    record_id: u64,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, AnthropicError> {
    let faults = Faults::from_headers(headers);
    faults.delay().await;
    check_auth(headers, &state.config.api_key)?;
    let has_version = headers
        .get("anthropic-version")
        .is_some_and(|v| !v.as_bytes().trim_ascii().is_empty());
    if !has_version {
        return Err(AnthropicError::invalid_request(
            "anthropic-version: header is required",
        ));
    }
    if let Some(status) = faults.status {
        return Err(AnthropicError::injected(status));
    }
    let req = MessagesRequest::parse(body)?;
    check_signatures(&req.body, &state.signer).map_err(|m| AnthropicError::invalid_request(&m))?;
    // `x-mock-cache-read` reports a read in addition to the prompt, whatever was sent;
    // without it the cache_control breakpoints decide.
    let (input_tokens, cache) = if faults.cache_read > 0 {
        let read = AnthropicCaching {
            read: faults.cache_read,
            ..Default::default()
        };
        (req.input_tokens, read)
    } else {
        let cache = state.with_cache(|c, now| cache::anthropic(c, &req.body, now));
        let rest = req
            .input_tokens
            .saturating_sub(cache.read + cache.written());
        (rest, cache)
    };
    let meta = MessageMeta {
        id: mock_id("msg_", record_id),
        model: req.model,
        input_tokens,
        cache,
        content: Content::plan(&req.body, &faults, &state.signer, record_id),
    };
    if !req.stream {
        return Ok(Json(meta.message()).into_response());
    }
    let events = meta.events();
    Ok(stream_response(
        state.stream(record_id, events, &faults),
        "text/event-stream; charset=utf-8",
    ))
}

/// `POST /v1/messages/count_tokens`: the prompt's tokens, `{"input_tokens": n}`.
pub async fn count_tokens(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // The same request shape as `/v1/messages`, less `max_tokens` (nothing is generated).
    let mut shaped: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if let Some(obj) = shaped.as_object_mut() {
        obj.entry("max_tokens").or_insert(json!(1));
    }
    let shaped = serde_json::to_vec(&shaped).unwrap_or_default();
    let counted =
        check_auth(&headers, &state.config.api_key).and_then(|()| MessagesRequest::parse(&shaped));
    match counted {
        Ok(req) => Json(serde_json::json!({"input_tokens": req.input_tokens})).into_response(),
        Err(e) => e.respond("req_count"),
    }
}

/// Anthropic's scheme: `x-api-key: <key>`. A bearer token is taken for an
/// OAuth token, which API keys are not.
fn check_auth(headers: &HeaderMap, api_key: &str) -> Result<(), AnthropicError> {
    let presented = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty());
    match presented {
        Some(k) if k == api_key => Ok(()),
        Some(_) => Err(AnthropicError::authentication("invalid x-api-key")),
        None if headers.contains_key(header::AUTHORIZATION) => Err(AnthropicError::authentication(
            "OAuth authentication is currently not supported.",
        )),
        None => Err(AnthropicError::authentication(
            "x-api-key header is required",
        )),
    }
}

/// `{"type":"error","error":{"type","message"},"request_id"}`.
#[derive(Debug, Clone)]
pub struct AnthropicError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
}

impl AnthropicError {
    fn new(status: StatusCode, kind: &'static str, message: &str) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
        }
    }

    fn authentication(message: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "authentication_error", message)
    }

    fn invalid_request(message: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    /// The error Anthropic sends for a given injected status; 529 is its
    /// own "overloaded" status.
    fn injected(status: StatusCode) -> Self {
        let (kind, message) = match status.as_u16() {
            400 => ("invalid_request_error", "Injected bad request."),
            401 => ("authentication_error", "invalid x-api-key"),
            402 => (
                "billing_error",
                "Your credit balance is too low to access the Anthropic API. Please go to \
                 Plans & Billing to upgrade or purchase credits.",
            ),
            403 => (
                "permission_error",
                "Your API key does not have permission to use the specified resource.",
            ),
            404 => (
                "not_found_error",
                "The requested resource could not be found.",
            ),
            413 => (
                "request_too_large",
                "Request exceeds the maximum allowed number of bytes.",
            ),
            429 => (
                "rate_limit_error",
                "This request would exceed the rate limit for your organization of 50 \
                 requests per minute. For details, refer to: \
                 https://docs.claude.com/en/api/rate-limits. You can see the response headers \
                 for current usage. Please reduce the prompt length or the maximum tokens \
                 requested, or try again later.",
            ),
            504 => ("timeout_error", "Request timed out."),
            529 => ("overloaded_error", "Overloaded"),
            s if s >= 500 => ("api_error", "Internal server error"),
            _ => ("invalid_request_error", "Injected error."),
        };
        Self::new(status, kind, message)
    }

    fn respond(self, request_id: &str) -> Response {
        let body = json!({
            "type": "error",
            "error": {"type": self.kind, "message": self.message},
            "request_id": request_id,
        });
        let mut resp = (self.status, Json(body)).into_response();
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            resp.headers_mut()
                .insert("retry-after", HeaderValue::from_static("1"));
        }
        resp
    }
}

struct MessagesRequest {
    model: String,
    stream: bool,
    input_tokens: u64,
    body: Value,
}

impl MessagesRequest {
    fn parse(body: &[u8]) -> Result<Self, AnthropicError> {
        let bad_json = || {
            AnthropicError::invalid_request("There was an error parsing the body of your request.")
        };
        let v: Value = serde_json::from_slice(body).map_err(|_| bad_json())?;
        let obj = v.as_object().ok_or_else(bad_json)?;
        let invalid = |m: &str| Err(AnthropicError::invalid_request(m));
        let model = match obj.get("model") {
            None => return invalid("model: Field required"),
            Some(Value::String(m)) => m.clone(),
            Some(_) => return invalid("model: Input should be a valid string"),
        };
        match obj.get("max_tokens") {
            None => return invalid("max_tokens: Field required"),
            Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n >= 1) => {}
            Some(Value::Number(n)) if n.as_i64().is_some() => {
                return invalid("max_tokens: Input should be greater than or equal to 1")
            }
            Some(_) => return invalid("max_tokens: Input should be a valid integer"),
        }
        let messages = match obj.get("messages") {
            None => return invalid("messages: Field required"),
            Some(Value::Array(m)) if m.is_empty() => {
                return invalid("messages: at least one message is required")
            }
            Some(m @ Value::Array(_)) => m,
            Some(_) => return invalid("messages: Input should be a valid list"),
        };
        let stream = match obj.get("stream") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return invalid("stream: Input should be a valid boolean"),
        };
        // `system` is a string or text blocks; both count as prompt.
        let system = obj.get("system").unwrap_or(&Value::Null);
        let chars = text_chars(messages) + text_chars(system);
        Ok(Self {
            model,
            stream,
            input_tokens: estimate_tokens(chars),
            body: v,
        })
    }
}

struct MessageMeta {
    id: String,
    model: String,
    /// The part of the prompt after the last cache breakpoint, as Anthropic counts
    /// `input_tokens`.
    input_tokens: u64,
    /// Read from and written to the prompt cache: in addition to `input_tokens`.
    cache: AnthropicCaching,
    content: Content,
}

impl MessageMeta {
    fn usage(&self, output_tokens: u64) -> Value {
        json!({
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": self.cache.written(),
            "cache_read_input_tokens": self.cache.read,
            "cache_creation": {
                "ephemeral_5m_input_tokens": self.cache.write_5m,
                "ephemeral_1h_input_tokens": self.cache.write_1h,
            },
            "output_tokens": output_tokens,
            "service_tier": "standard",
        })
    }

    fn message(&self) -> Value {
        json!({
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": self.content.json(),
            "stop_reason": self.content.stop_reason(),
            "stop_sequence": null,
            "usage": self.usage(self.content.output_tokens()),
        })
    }

    /// The stream: message_start, the content's block events (anthropic_content.rs),
    /// message_delta, message_stop.
    fn events(&self) -> Vec<String> {
        let mut message = self.message();
        message["content"] = json!([]);
        message["stop_reason"] = Value::Null;
        // Anthropic counts the first token as already produced.
        message["usage"] = self.usage(1);
        let mut events = vec![("message_start", json!({"message": message}))];
        events.extend(self.content.events());
        // Usage here is cumulative for the whole message, input included, as Anthropic
        // sends it: a gateway must not add it to message_start's.
        events.push((
            "message_delta",
            json!({
                "delta": {"stop_reason": self.content.stop_reason(), "stop_sequence": null},
                "usage": {
                    "input_tokens": self.input_tokens,
                    "cache_creation_input_tokens": self.cache.written(),
                    "cache_read_input_tokens": self.cache.read,
                    "output_tokens": self.content.output_tokens(),
                },
            }),
        ));
        events.push(("message_stop", json!({})));
        events
            .into_iter()
            .map(|(kind, mut data)| {
                data["type"] = json!(kind);
                named_event(kind, &data.to_string())
            })
            .collect()
    }
}
