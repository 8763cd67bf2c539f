//! A mock AI provider speaking the four wire formats the gateway fronts:
//! OpenAI (chat completions, Responses, embeddings), Anthropic Messages,
//! Google Gemini and Azure OpenAI. Each has its real paths, auth header,
//! request/response and streaming shapes and error envelope, plus
//! header-driven fault injection and a request log, so the gateway can be
//! tested end to end without a real provider.

mod anthropic;
mod anthropic_content;
mod azure;
mod cache;
mod chat;
mod chat_tools;
mod completions;
mod embeddings;
mod errors;
mod faults;
mod gemini;
mod gemini_content;
mod guardrail;
mod record;
mod responses;
mod responses_output;
mod schema;
mod signature;
mod sse;
mod text;
mod tool_call;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::{to_bytes, Body};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::{Json, Router};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use errors::redact;
pub use faults::{DEFAULT_WORDS, MAX_WORDS};
pub use guardrail::{GUARDRAIL_PATH, SLOW_MS as GUARDRAIL_SLOW_MS};
pub use record::{now_ms, RecordedRequest, Recorder, RECORD_CAPACITY};

/// Larger bodies get a 413; far above anything a chat test sends.
const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct MockConfig {
    /// The key clients must present, each in its provider's own header:
    /// `Authorization: Bearer` (OpenAI), `x-api-key` (Anthropic),
    /// `x-goog-api-key` or `?key=` (Gemini), `api-key` (Azure).
    pub api_key: String,
    /// Echoed in the `x-mock-name` response header so a test can tell which
    /// upstream the gateway routed to.
    pub name: String,
    /// The bearer key the mock guardrail service ([`GUARDRAIL_PATH`]) requires, if any.
    pub guardrail_key: Option<String>,
}

#[derive(Clone)]
struct AppState {
    config: Arc<MockConfig>,
    recorder: Recorder,
    name_header: HeaderValue,
    /// Signs and checks the model's hidden state (thinking, reasoning, thoughts).
    signer: signature::Signer,
    /// Prompt prefixes earlier requests left cached (see cache.rs).
    prompt_cache: Arc<Mutex<cache::PromptCache>>,
}

/// Which recorded entry a request is, for handlers that update it later.
#[derive(Debug, Clone, Copy)]
struct RecordId(u64);

impl AppState {
    /// Runs `f` on the prompt cache at the current time.
    fn with_cache<T>(&self, f: impl FnOnce(&mut cache::PromptCache, u64) -> T) -> T {
        let mut cache = self
            .prompt_cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut cache, now_ms())
    }

    /// Streams `frames` (each one complete, framed event) under the request's
    /// faults, and records when the last one went out.
    fn stream<I>(&self, record_id: u64, frames: I, faults: &faults::Faults) -> Body
    where
        I: IntoIterator<Item = String> + Send + 'static,
        I::IntoIter: Send,
    {
        let recorder = self.recorder.clone();
        sse::stream_frames(frames, faults.timing(), move |last| {
            if let Some(at) = last {
                recorder.set_last_event(record_id, at);
            }
        })
    }
}

/// Serves until `shutdown` resolves, with a fresh request log that only the
/// HTTP endpoints can read. Use [`serve_with_recorder`] to read it in-process.
pub async fn serve(
    listener: TcpListener,
    config: MockConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    serve_with_recorder(listener, config, Recorder::new(), shutdown).await
}

/// Like [`serve`], recording into `recorder`.
pub async fn serve_with_recorder(
    listener: TcpListener,
    config: MockConfig,
    recorder: Recorder,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    serve_router(listener, router(config, recorder)?, shutdown).await
}

async fn serve_router(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    // Small SSE frames must not wait on Nagle; timing tests depend on it.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// A mock running on its own task, for in-process tests.
pub struct RunningMock {
    pub addr: SocketAddr,
    pub recorder: Recorder,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<io::Result<()>>>,
}

impl RunningMock {
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, waits for in-flight responses to finish.
    pub async fn shutdown(mut self) -> io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.task.take() {
            Some(task) => task.await.map_err(io::Error::other)?,
            None => Ok(()),
        }
    }
}

impl Drop for RunningMock {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Binds `127.0.0.1:0` and serves on a spawned task.
pub async fn spawn(config: MockConfig) -> io::Result<RunningMock> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let recorder = Recorder::new();
    let (tx, rx) = oneshot::channel::<()>();
    // Built here so a bad config fails the caller, not the spawned task.
    let app = router(config, recorder.clone())?;
    let task = tokio::spawn(serve_router(listener, app, async move {
        let _ = rx.await;
    }));
    Ok(RunningMock {
        addr,
        recorder,
        shutdown: Some(tx),
        task: Some(task),
    })
}

fn router(config: MockConfig, recorder: Recorder) -> io::Result<Router> {
    let name_header = HeaderValue::from_str(&config.name).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("mock name {:?} is not a valid header value", config.name),
        )
    })?;
    let state = AppState {
        signer: signature::Signer::new(&config.api_key),
        config: Arc::new(config),
        recorder,
        name_header,
        prompt_cache: Arc::default(),
    };
    Ok(Router::new()
        // OpenAI
        .route("/v1/chat/completions", post(chat::chat_completions))
        .route("/v1/models", get(chat::list_models))
        .route("/v1/embeddings", post(embeddings::embeddings))
        .route("/v1/completions", post(completions::completions))
        .route("/v1/responses", post(responses::create_response))
        // Anthropic
        .route("/v1/messages", post(anthropic::messages))
        .route("/v1/messages/count_tokens", post(anthropic::count_tokens))
        // Gemini: `{model}:{method}` is one path segment, split by the handler.
        .route("/v1beta/models/{*rest}", post(gemini::model_method))
        .route("/v1/models/{*rest}", post(gemini::model_method))
        // A guardrail service (LiteLLM's Generic Guardrail API)
        .route(GUARDRAIL_PATH, post(guardrail::judge))
        // Azure OpenAI
        .route(
            "/openai/deployments/{deployment}/chat/completions",
            post(azure::chat_completions),
        )
        .route(
            "/openai/deployments/{deployment}/embeddings",
            post(azure::embeddings),
        )
        .route(
            "/__mock/requests",
            get(list_recorded).delete(clear_recorded),
        )
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            record_and_log,
        ))
        // The middleware already bounded the body; a second, smaller limit on
        // the handler's extractor would only reject valid large prompts.
        .layer(DefaultBodyLimit::disable())
        .with_state(state))
}

/// Which provider a path belongs to, by prefix; `None` for the mock's own
/// endpoints and anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ApiFamily {
    /// `/v1/*`: OpenAI, and Anthropic's `/v1/messages`.
    V1,
    /// `/v1beta/*`: Gemini.
    Gemini,
    /// `/openai/*`: Azure OpenAI.
    Azure,
    /// `/guardrail/*`: the mock guardrail service.
    Guardrail,
}

fn api_family(path: &str) -> Option<ApiFamily> {
    let under = |prefix: &str| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    if under("/v1") {
        Some(ApiFamily::V1)
    } else if under("/v1beta") {
        Some(ApiFamily::Gemini)
    } else if under("/openai") {
        Some(ApiFamily::Azure)
    } else if under("/guardrail") {
        Some(ApiFamily::Guardrail)
    } else {
        None
    }
}

/// Records provider API and guardrail requests (`/v1/*`, `/v1beta/*`, `/openai/*`,
/// `/guardrail/*`) before any handler can reject them, so tests see exactly what
/// arrived even when the answer is an error.
async fn record_and_log(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let mut req = req;
    if api_family(&path).is_some() {
        let (mut parts, body) = req.into_parts();
        let bytes = match to_bytes(body, MAX_BODY_BYTES).await {
            Ok(b) => b,
            Err(_) => {
                return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response()
            }
        };
        let headers = parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let full_path = parts
            .uri
            .path_and_query()
            .map_or_else(|| path.clone(), |pq| pq.as_str().to_owned());
        let id = state.recorder.record(
            method.to_string(),
            full_path,
            headers,
            String::from_utf8_lossy(&bytes).into_owned(),
        );
        parts.extensions.insert(RecordId(id));
        req = Request::from_parts(parts, Body::from(bytes));
    }
    let content_type = req.headers().get("x-mock-content-type").cloned();
    let gzip = req
        .headers()
        .get("x-mock-content-encoding")
        .is_some_and(|v| v == "gzip");
    let mut resp = next.run(req).await;
    if gzip {
        resp = gzipped(resp).await;
    }
    resp.headers_mut()
        .insert("x-mock-name", state.name_header.clone());
    if let Some(ct) = content_type {
        // Byte for byte, so a test can send a value that is not UTF-8.
        resp.headers_mut()
            .insert(axum::http::header::CONTENT_TYPE, ct);
    }
    // Path only: query strings and bodies may carry secrets.
    log::info!(
        "{method} {path} {} {}ms",
        resp.status().as_u16(),
        started.elapsed().as_millis()
    );
    resp
}

/// `x-mock-content-encoding: gzip`: the answer gzip-compressed whatever the client's
/// `accept-encoding` said, as an upstream that ignores it would send it (whole bodies:
/// the answer is read to its end first).
async fn gzipped(resp: Response) -> Response {
    use std::io::Write as _;
    let (mut parts, body) = resp.into_parts();
    let Ok(plain) = to_bytes(body, MAX_BODY_BYTES).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let zipped = gz.write_all(&plain).and_then(|()| gz.finish());
    let Ok(zipped) = zipped else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    parts.headers.insert(
        axum::http::header::CONTENT_ENCODING,
        HeaderValue::from_static("gzip"),
    );
    Response::from_parts(parts, Body::from(zipped))
}

async fn list_recorded(State(state): State<AppState>) -> Json<Vec<RecordedRequest>> {
    Json(state.recorder.requests())
}

async fn clear_recorded(State(state): State<AppState>) -> StatusCode {
    state.recorder.clear();
    StatusCode::NO_CONTENT
}

/// Unknown paths get the 404 their provider would send.
async fn not_found(req: Request) -> Response {
    let path = req.uri().path();
    match api_family(path) {
        Some(ApiFamily::V1) => {
            errors::ApiError::invalid_url(req.method().as_str(), path).into_response()
        }
        Some(ApiFamily::Gemini) => gemini::GoogleError::method_not_found().into_response(),
        Some(ApiFamily::Azure) => azure::AzureError::resource_not_found().into_response(),
        Some(ApiFamily::Guardrail) | None => StatusCode::NOT_FOUND.into_response(),
    }
}
