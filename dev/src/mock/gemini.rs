//! Google's Gemini API under `/v1beta/models/{model}:{method}` (and `/v1/`, which
//! google-genai 2.x and later call by default): `generateContent`,
//! `streamGenerateContent` as SSE (`?alt=sse`, with Google's CRLF line endings) or as
//! one streamed JSON array, and `countTokens`. Auth is the
//! `x-goog-api-key` header or a `?key=` query parameter; errors use Google's
//! `{"error":{"code","message","status","details"}}` envelope.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde_json::{json, Value};

use super::cache;
use super::faults::Faults;
use super::gemini_content;
use super::schema;
use super::sse::stream_response;
use super::text::{completion_text, estimate_tokens, mock_id, text_chars, words_delta};
use super::tool_call::Turn;
use super::{AppState, RecordId};

/// Words per streamed chunk: Gemini streams a few tokens per event.
const WORDS_PER_CHUNK: usize = 3;

const JSON_UTF8: &str = "application/json; charset=UTF-8";
const SERVICE: &str = "generativelanguage.googleapis.com";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Generate,
    Stream,
    Count,
    Embed,
    BatchEmbed,
}

const METHODS: [Method; 5] = [
    Method::Generate,
    Method::Stream,
    Method::Count,
    Method::Embed,
    Method::BatchEmbed,
];

impl Method {
    /// As in the path: `models/{model}:{path_name}`.
    fn path_name(self) -> &'static str {
        match self {
            Method::Generate => "generateContent",
            Method::Stream => "streamGenerateContent",
            Method::Count => "countTokens",
            Method::Embed => "embedContent",
            Method::BatchEmbed => "batchEmbedContents",
        }
    }

    fn rpc_name(self) -> &'static str {
        match self {
            Method::Generate => "GenerateContent",
            Method::Stream => "StreamGenerateContent",
            Method::Count => "CountTokens",
            Method::Embed => "EmbedContent",
            Method::BatchEmbed => "BatchEmbedContents",
        }
    }
}

/// `POST /v1beta/models/{model}:{method}`; axum cannot split a segment on
/// `:`, so the route captures the rest of the path and this does.
pub async fn model_method(
    State(state): State<AppState>,
    Extension(RecordId(record_id)): Extension<RecordId>,
    Path(rest): Path<String>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query = query.map(|Query(q)| q).unwrap_or_default();
    let faults = Faults::from_headers(&headers);
    faults.delay().await;
    let (model, method) = match rest.rsplit_once(':') {
        Some((model, name)) => match METHODS.into_iter().find(|m| m.path_name() == name) {
            Some(method) => (model, method),
            None => return GoogleError::method_not_found().into_response(),
        },
        None => return GoogleError::method_not_found().into_response(),
    };
    if let Err(e) = check_auth(&headers, &query, &state.config.api_key, method) {
        return e.into_response();
    }
    if let Some(status) = faults.status {
        return GoogleError::injected(status, model, method).into_response();
    }
    if matches!(method, Method::Embed | Method::BatchEmbed) {
        return match embed(method, model, &body) {
            Ok(v) => json_utf8(pretty(&v)),
            Err(e) => e.into_response(),
        };
    }
    let body = match method {
        Method::Count => counted_request(body),
        _ => body,
    };
    let prompt_tokens = match prompt_tokens(&body) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if method != Method::Count {
        if let Err(m) = gemini_content::check_signatures(&parsed, model, &state.signer) {
            return GoogleError::invalid_argument(&m).into_response();
        }
    }
    let turn = gemini_content::turn(&parsed, &faults);
    let json_answer = schema::gemini_json_answer(&body);
    let sse = query.get("alt").is_some_and(|a| a == "sse");
    // `x-mock-cache-read` decides when sent; otherwise implicit caching, which a token
    // count never touches.
    let cached_tokens = match method {
        _ if faults.cache_read > 0 => faults.cache_read,
        Method::Count => 0,
        _ => {
            let sent: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            state.with_cache(|c, now| cache::gemini(c, model, &sent, now))
        }
    };
    let meta = GenerationMeta {
        model_version: model.to_string(),
        response_id: mock_id("", record_id),
        prompt_tokens,
        cached_tokens: cached_tokens.min(prompt_tokens),
        words: faults.words,
    };
    match method {
        Method::Count => json_utf8(pretty(&json!({
            "totalTokens": prompt_tokens,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens}],
        }))),
        // Answered above, before any generation is set up.
        Method::Embed | Method::BatchEmbed => GoogleError::method_not_found().into_response(),
        // An agent loop's turn: one chunk, the call or the quote.
        Method::Generate | Method::Stream if turn != Turn::Text => {
            let (parts, tokens) = gemini_content::parts(&turn, &state.signer);
            let chunk = meta.chunk_parts(parts, tokens, true);
            match (method, sse) {
                (Method::Generate, _) => json_utf8(pretty(&chunk)),
                (_, true) => stream_response(
                    state.stream(record_id, [format!("data: {chunk}\r\n\r\n")], &faults),
                    "text/event-stream",
                ),
                (_, false) => stream_response(
                    state.stream(record_id, [format!("[{}\n]", pretty(&chunk))], &faults),
                    JSON_UTF8,
                ),
            }
        }
        // Structured output: the schema's instance as the whole answer.
        Method::Generate if json_answer.is_some() => {
            let text = json_answer.unwrap_or_default();
            let tokens = estimate_tokens(text.len()) as usize;
            json_utf8(pretty(&meta.chunk(&text, tokens, true)))
        }
        Method::Stream if json_answer.is_some() && sse => {
            let text = json_answer.unwrap_or_default();
            let tokens = estimate_tokens(text.len()) as usize;
            let frame = format!("data: {}\r\n\r\n", meta.chunk(&text, tokens, true));
            stream_response(
                state.stream(record_id, std::iter::once(frame), &faults),
                "text/event-stream",
            )
        }
        Method::Generate => json_utf8(pretty(&meta.chunk(
            &completion_text(meta.words),
            meta.words,
            true,
        ))),
        Method::Stream if sse => {
            // Google ends SSE lines with CRLF.
            let frames = meta.chunks().map(|(c, _)| format!("data: {}\r\n\r\n", c));
            stream_response(
                state.stream(record_id, frames, &faults),
                "text/event-stream",
            )
        }
        Method::Stream => {
            // Without alt=sse the chunks form one JSON array, still written
            // element by element.
            let frames = meta.chunks().enumerate().map(|(i, (c, last))| {
                let sep = if i == 0 { "[" } else { ",\r\n" };
                let end = if last { "\n]" } else { "" };
                format!("{sep}{}{end}", pretty(&c))
            });
            stream_response(state.stream(record_id, frames, &faults), JSON_UTF8)
        }
    }
}

/// Google's key schemes: the `x-goog-api-key` header or the `key` query
/// parameter. A bearer token is taken for an OAuth access token.
fn check_auth(
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    api_key: &str,
    method: Method,
) -> Result<(), GoogleError> {
    let nonempty = |k: &str| Some(k.trim()).filter(|k| !k.is_empty()).map(str::to_owned);
    let presented = headers
        .get("x-goog-api-key")
        .and_then(|v| v.to_str().ok())
        .and_then(nonempty)
        .or_else(|| query.get("key").and_then(|k| nonempty(k)));
    match presented {
        Some(k) if k == api_key => Ok(()),
        Some(_) => Err(GoogleError::api_key_invalid()),
        None if headers.contains_key(header::AUTHORIZATION) => Err(GoogleError::unauthenticated(
            "ACCESS_TOKEN_TYPE_UNSUPPORTED",
        )),
        None => Err(GoogleError::credentials_missing(method)),
    }
}

/// `embedContent` (`{"embedding": {"values"}}`) and `batchEmbedContents`
/// (`{"embeddings": [...]}`), with no usage, as Google answers; members it does not know
/// (a `generationConfig`, say) are refused as Google's JSON parser refuses them.
fn embed(method: Method, model: &str, body: &[u8]) -> Result<Value, GoogleError> {
    const KNOWN: &[&str] = &[
        "model",
        "content",
        "taskType",
        "task_type",
        "title",
        "outputDimensionality",
        "output_dimensionality",
    ];
    let bad_json =
        || GoogleError::invalid_argument("Invalid JSON payload received. Unexpected token.");
    let v: Value = serde_json::from_slice(body).map_err(|_| bad_json())?;
    let check = |obj: &serde_json::Map<String, Value>, known: &[&str]| match obj
        .keys()
        .find(|k| !known.contains(&k.as_str()))
    {
        Some(k) => Err(GoogleError::invalid_argument(&format!(
            "Invalid JSON payload received. Unknown name \"{k}\": Cannot find field."
        ))),
        None => Ok(()),
    };
    let one = |req: &Value| -> Result<Value, GoogleError> {
        let obj = req.as_object().ok_or_else(bad_json)?;
        check(obj, KNOWN)?;
        let content = obj
            .get("content")
            .ok_or_else(|| GoogleError::invalid_argument("* content: content is not specified"))?;
        let dimensions = obj
            .get("outputDimensionality")
            .or(obj.get("output_dimensionality"))
            .and_then(Value::as_u64)
            .map_or(
                if model.contains("gemini-embedding") {
                    3072
                } else {
                    768
                },
                |d| d.clamp(1, 3072) as usize,
            );
        let values = super::embeddings::vector(content.to_string().as_bytes(), dimensions);
        Ok(json!({"values": values}))
    };
    match method {
        Method::Embed => Ok(json!({"embedding": one(&v)?})),
        _ => {
            let obj = v.as_object().ok_or_else(bad_json)?;
            check(obj, &["requests"])?;
            let requests = obj
                .get("requests")
                .and_then(Value::as_array)
                .ok_or_else(|| {
                    GoogleError::invalid_argument("* requests: requests is not specified")
                })?;
            let embeddings = requests.iter().map(one).collect::<Result<Vec<_>, _>>()?;
            Ok(json!({"embeddings": embeddings}))
        }
    }
}

/// What `countTokens` counts: its `contents`, or a whole `generateContentRequest`.
fn counted_request(body: Bytes) -> Bytes {
    serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("generateContentRequest").cloned())
        .and_then(|r| serde_json::to_vec(&r).ok())
        .map_or(body, Bytes::from)
}

/// Prompt tokens of a GenerateContentRequest: the text of `contents` and of
/// the system instruction (either JSON spelling).
fn prompt_tokens(body: &[u8]) -> Result<u64, GoogleError> {
    let bad_json =
        || GoogleError::invalid_argument("Invalid JSON payload received. Unexpected token.");
    let v: Value = serde_json::from_slice(body).map_err(|_| bad_json())?;
    let obj = v.as_object().ok_or_else(bad_json)?;
    let contents = match obj.get("contents") {
        None | Some(Value::Null) => None,
        Some(Value::Array(c)) if c.is_empty() => None,
        Some(c @ Value::Array(_)) => Some(c),
        Some(_) => {
            return Err(GoogleError::invalid_argument(
                "Invalid value at 'contents' (type.googleapis.com/google.ai.generativelanguage.v1beta.Content)",
            ))
        }
    };
    let Some(contents) = contents else {
        return Err(GoogleError::invalid_argument(
            "* GenerateContentRequest.contents: contents is not specified\n",
        ));
    };
    let system = obj
        .get("systemInstruction")
        .or(obj.get("system_instruction"))
        .unwrap_or(&Value::Null);
    Ok(estimate_tokens(text_chars(contents) + text_chars(system)))
}

struct GenerationMeta {
    model_version: String,
    response_id: String,
    prompt_tokens: u64,
    /// Part of `prompt_tokens`, as Gemini reports cached content.
    cached_tokens: u64,
    words: usize,
}

impl GenerationMeta {
    /// Usage so far: Gemini repeats it on every chunk, cumulatively.
    fn usage(&self, candidates: u64) -> Value {
        let mut u = json!({
            "promptTokenCount": self.prompt_tokens,
            "candidatesTokenCount": candidates,
            "totalTokenCount": self.prompt_tokens + candidates,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": self.prompt_tokens}],
        });
        // Google leaves the field out when nothing came from the cache.
        if self.cached_tokens > 0 {
            u["cachedContentTokenCount"] = json!(self.cached_tokens);
            u["cacheTokensDetails"] =
                json!([{"modality": "TEXT", "tokenCount": self.cached_tokens}]);
        }
        u
    }

    /// One GenerateContentResponse; `words_so_far` is the cumulative count.
    fn chunk(&self, text: &str, words_so_far: usize, finished: bool) -> Value {
        self.chunk_parts(json!([{"text": text}]), words_so_far as u64, finished)
    }

    /// One GenerateContentResponse of these parts; `candidates` is the cumulative count.
    fn chunk_parts(&self, parts: Value, candidates: u64, finished: bool) -> Value {
        let mut candidate = json!({
            "content": {"parts": parts, "role": "model"},
            "index": 0,
        });
        if finished {
            candidate["finishReason"] = json!("STOP");
        }
        json!({
            "candidates": [candidate],
            "usageMetadata": self.usage(candidates),
            "modelVersion": self.model_version,
            "responseId": self.response_id,
        })
    }

    /// The streamed chunks, lazily, each with whether it is the last: a few
    /// words apiece, the last one carrying `finishReason`. At least one
    /// chunk even for an empty completion.
    fn chunks(self) -> impl Iterator<Item = (Value, bool)> + Send + 'static {
        let count = self.words.div_ceil(WORDS_PER_CHUNK).max(1);
        (0..count).map(move |j| {
            let start = j * WORDS_PER_CHUNK;
            let end = (start + WORDS_PER_CHUNK).min(self.words);
            let last = j + 1 == count;
            (self.chunk(&words_delta(start..end), end, last), last)
        })
    }
}

fn json_utf8(body: String) -> Response {
    let mut resp = body.into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_UTF8));
    resp
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

/// `{"error":{"code","message","status","details"}}`, pretty-printed as
/// Google sends it.
#[derive(Debug, Clone)]
pub struct GoogleError {
    pub code: StatusCode,
    pub status: &'static str,
    pub message: String,
    pub details: Vec<Value>,
}

fn error_info(reason: &str, metadata: Value) -> Value {
    json!({
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": reason,
        "domain": "googleapis.com",
        "metadata": metadata,
    })
}

impl GoogleError {
    fn new(code: StatusCode, status: &'static str, message: &str) -> Self {
        Self {
            code,
            status,
            message: message.into(),
            details: Vec::new(),
        }
    }

    fn invalid_argument(message: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", message)
    }

    /// A wrong key is a 400, not a 401, at Google.
    fn api_key_invalid() -> Self {
        let message = "API key not valid. Please pass a valid API key.";
        Self {
            details: vec![
                error_info("API_KEY_INVALID", json!({"service": SERVICE})),
                json!({
                    "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                    "locale": "en-US",
                    "message": message,
                }),
            ],
            ..Self::invalid_argument(message)
        }
    }

    fn credentials_missing(method: Method) -> Self {
        Self {
            details: vec![error_info(
                "CREDENTIALS_MISSING",
                json!({
                    "service": SERVICE,
                    "method": format!("google.ai.generativelanguage.v1beta.GenerativeService.{}", method.rpc_name()),
                }),
            )],
            ..Self::new(
                StatusCode::FORBIDDEN,
                "PERMISSION_DENIED",
                "Method doesn't allow unregistered callers (callers without established \
                 identity). Please use API Key or other form of API consumer identity to call \
                 this API.",
            )
        }
    }

    fn unauthenticated(reason: &str) -> Self {
        Self {
            details: vec![error_info(reason, json!({"service": SERVICE}))],
            ..Self::new(
                StatusCode::UNAUTHORIZED,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials. Expected OAuth 2 access \
                 token, login cookie or other valid authentication credential. See \
                 https://developers.google.com/identity/sign-in/web/devconsole-project.",
            )
        }
    }

    pub fn method_not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", "Method not found.")
    }

    /// The error Google sends for a given injected status.
    fn injected(code: StatusCode, model: &str, method: Method) -> Self {
        let (status, message): (&'static str, String) = match code.as_u16() {
            400 => (
                "INVALID_ARGUMENT",
                "Request contains an invalid argument.".into(),
            ),
            401 => return Self::unauthenticated("ACCESS_TOKEN_EXPIRED"),
            403 => (
                "PERMISSION_DENIED",
                "The caller does not have permission".into(),
            ),
            404 => (
                "NOT_FOUND",
                format!(
                    "models/{model} is not found for API version v1beta, or is not supported \
                     for {}. Call ListModels to see the list of available models and their \
                     supported methods.",
                    method.path_name()
                ),
            ),
            429 => {
                return Self {
                    details: vec![json!({
                        "@type": "type.googleapis.com/google.rpc.RetryInfo",
                        "retryDelay": "1s",
                    })],
                    ..Self::new(
                        code,
                        "RESOURCE_EXHAUSTED",
                        "You exceeded your current quota, please check your plan and billing \
                         details. For more information on this error, head to: \
                         https://ai.google.dev/gemini-api/docs/rate-limits.",
                    )
                }
            }
            503 => (
                "UNAVAILABLE",
                "The model is overloaded. Please try again later.".into(),
            ),
            504 => (
                "DEADLINE_EXCEEDED",
                "Deadline expired before operation could complete.".into(),
            ),
            s if s >= 500 => (
                "INTERNAL",
                "An internal error has occurred. Please retry or report in \
                 https://developers.generativeai.google/guide/troubleshooting"
                    .into(),
            ),
            _ => ("INVALID_ARGUMENT", "Injected error.".into()),
        };
        Self::new(code, status, &message)
    }
}

impl IntoResponse for GoogleError {
    fn into_response(self) -> Response {
        let mut error = json!({
            "code": self.code.as_u16(),
            "message": self.message,
            "status": self.status,
        });
        if !self.details.is_empty() {
            error["details"] = Value::Array(self.details);
        }
        let mut resp = (self.code, pretty(&json!({"error": error}))).into_response();
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_UTF8));
        if self.code == StatusCode::TOO_MANY_REQUESTS {
            resp.headers_mut()
                .insert("retry-after", HeaderValue::from_static("1"));
        }
        resp
    }
}
