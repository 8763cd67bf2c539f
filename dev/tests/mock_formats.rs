//! The mock provider's non-chat wire formats — OpenAI Responses and
//! embeddings, Anthropic Messages, Gemini and Azure OpenAI — against the
//! providers' documented shapes, auth schemes, error envelopes, streams and
//! the fault-injection contract, over real HTTP.

use std::time::{Duration, Instant};

use chokepoint_dev::mock::{self, MockConfig, RecordedRequest, RunningMock};
use reqwest::{Client, RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};

const KEY: &str = "sk-test-mock-key-1234";
/// "Hello there, mock!" is 18 chars: 18 / 4 = 4 prompt tokens everywhere.
const PROMPT: &str = "Hello there, mock!";
const PROMPT_TOKENS: u64 = 4;
const ANTHROPIC_VERSION: &str = "2023-06-01";
const AZURE_VERSION: &str = "2024-10-21";
/// Words per Gemini stream chunk.
const GEMINI_CHUNK_WORDS: usize = 3;

async fn start() -> RunningMock {
    mock::spawn(MockConfig {
        api_key: KEY.into(),
        name: "formats-mock".into(),
        guardrail_key: None,
    })
    .await
    .expect("mock starts")
}

fn client() -> Client {
    Client::builder().no_proxy().build().unwrap()
}

/// How a request presents its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Auth {
    None,
    Bearer,
    XApiKey,
    GoogHeader,
    GoogQuery,
    AzureKey,
}

const ALL_AUTH: [Auth; 6] = [
    Auth::None,
    Auth::Bearer,
    Auth::XApiKey,
    Auth::GoogHeader,
    Auth::GoogQuery,
    Auth::AzureKey,
];

/// Which provider answers, and so which error envelope to expect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Provider {
    OpenAi,
    Anthropic,
    Gemini,
    Azure,
}

/// One endpoint of one format, with a minimal valid body.
#[derive(Debug, Clone, Copy)]
enum Api {
    Responses,
    Embeddings,
    Messages,
    GeminiGenerate,
    GeminiStream,
    AzureChat,
    AzureEmbeddings,
}

const ALL_APIS: [Api; 7] = [
    Api::Responses,
    Api::Embeddings,
    Api::Messages,
    Api::GeminiGenerate,
    Api::GeminiStream,
    Api::AzureChat,
    Api::AzureEmbeddings,
];

impl Api {
    fn provider(self) -> Provider {
        match self {
            Api::Responses | Api::Embeddings => Provider::OpenAi,
            Api::Messages => Provider::Anthropic,
            Api::GeminiGenerate | Api::GeminiStream => Provider::Gemini,
            Api::AzureChat | Api::AzureEmbeddings => Provider::Azure,
        }
    }

    fn own_auth(self) -> Auth {
        match self.provider() {
            Provider::OpenAi => Auth::Bearer,
            Provider::Anthropic => Auth::XApiKey,
            Provider::Gemini => Auth::GoogHeader,
            Provider::Azure => Auth::AzureKey,
        }
    }

    fn path(self) -> String {
        match self {
            Api::Responses => "/v1/responses".into(),
            Api::Embeddings => "/v1/embeddings".into(),
            Api::Messages => "/v1/messages".into(),
            Api::GeminiGenerate => "/v1beta/models/gemini-2.0-flash:generateContent".into(),
            Api::GeminiStream => {
                "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse".into()
            }
            Api::AzureChat => {
                format!(
                    "/openai/deployments/gpt-4o-prod/chat/completions?api-version={AZURE_VERSION}"
                )
            }
            Api::AzureEmbeddings => {
                format!("/openai/deployments/embed-prod/embeddings?api-version={AZURE_VERSION}")
            }
        }
    }

    fn body(self, stream: bool) -> Value {
        match self {
            Api::Responses => json!({"model": "gpt-4.1-mini", "input": PROMPT, "stream": stream}),
            Api::Embeddings => json!({"model": "text-embedding-3-small", "input": PROMPT}),
            Api::Messages => json!({
                "model": "claude-sonnet-4-5",
                "max_tokens": 1024,
                "stream": stream,
                "messages": [{"role": "user", "content": PROMPT}],
            }),
            Api::GeminiGenerate | Api::GeminiStream => {
                json!({"contents": [{"role": "user", "parts": [{"text": PROMPT}]}]})
            }
            Api::AzureChat => json!({
                "messages": [{"role": "user", "content": PROMPT}],
                "stream": stream,
                "stream_options": {"include_usage": true},
            }),
            Api::AzureEmbeddings => json!({"input": PROMPT}),
        }
    }

    /// Whether `body(true)` streams.
    fn streams(self) -> bool {
        matches!(
            self,
            Api::Responses | Api::Messages | Api::GeminiStream | Api::AzureChat
        )
    }

    /// A request presenting `key` as `auth` says; Anthropic requests always
    /// carry `anthropic-version`.
    fn request(self, m: &RunningMock, auth: Auth, key: &str, stream: bool) -> RequestBuilder {
        let mut url = format!("{}{}", m.base_url(), self.path());
        if auth == Auth::GoogQuery {
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str(&format!("key={key}"));
        }
        let mut rb = client().post(url).json(&self.body(stream));
        rb = match auth {
            Auth::None | Auth::GoogQuery => rb,
            Auth::Bearer => rb.bearer_auth(key),
            Auth::XApiKey => rb.header("x-api-key", key),
            Auth::GoogHeader => rb.header("x-goog-api-key", key),
            Auth::AzureKey => rb.header("api-key", key),
        };
        if matches!(self, Api::Messages) {
            rb = rb.header("anthropic-version", ANTHROPIC_VERSION);
        }
        rb
    }

    fn ok(self, m: &RunningMock, stream: bool) -> RequestBuilder {
        self.request(m, self.own_auth(), KEY, stream)
    }
}

/// Checks the body is `provider`'s error envelope and returns
/// (type or status, message).
async fn provider_error(provider: Provider, resp: Response) -> (String, String) {
    let text = resp.text().await.unwrap();
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    let s = |v: &Value| {
        v.as_str()
            .unwrap_or_else(|| panic!("{v} in {text}"))
            .to_string()
    };
    match provider {
        Provider::OpenAi => {
            let e = &v["error"];
            for f in ["message", "type", "param", "code"] {
                assert!(e.get(f).is_some(), "OpenAI error lacks {f}: {text}");
            }
            (s(&e["type"]), s(&e["message"]))
        }
        Provider::Anthropic => {
            assert_eq!(v["type"], "error", "{text}");
            assert!(s(&v["request_id"]).starts_with("req_"), "{text}");
            (s(&v["error"]["type"]), s(&v["error"]["message"]))
        }
        Provider::Gemini => {
            let e = &v["error"];
            assert!(e["code"].is_u64(), "{text}");
            (s(&e["status"]), s(&e["message"]))
        }
        Provider::Azure => {
            let e = &v["error"];
            // Azure's front door: a string code and a message, nothing else.
            assert!(e["code"].is_string(), "{text}");
            assert_eq!(e.as_object().unwrap().len(), 2, "{text}");
            (s(&e["code"]), s(&e["message"]))
        }
    }
}

/// One parsed SSE event.
#[derive(Debug, Clone)]
struct Event {
    name: Option<String>,
    data: String,
}

impl Event {
    fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or_else(|_| panic!("not JSON: {}", self.data))
    }
}

/// Splits an SSE body whose lines end with `eol`, checking the framing.
fn parse_sse(body: &str, eol: &str) -> Vec<Event> {
    let blank = format!("{eol}{eol}");
    assert!(
        body.ends_with(&blank),
        "body must end with a blank line: {body:?}"
    );
    body.split_terminator(&blank)
        .map(|block| {
            let mut name = None;
            let mut data = None;
            for line in block.split(eol) {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = Some(n.to_string());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    assert!(data.is_none(), "one data line per event: {block:?}");
                    data = Some(d.to_string());
                } else {
                    panic!("unexpected line {line:?} in {block:?}");
                }
            }
            Event {
                name,
                data: data.unwrap_or_else(|| panic!("event without data: {block:?}")),
            }
        })
        .collect()
}

/// Checks each event's `event:` name matches its payload's `type`, and
/// returns the payloads.
fn typed_events(events: &[Event]) -> (Vec<String>, Vec<Value>) {
    let names: Vec<String> = events
        .iter()
        .map(|e| e.name.clone().expect("every event is named"))
        .collect();
    let data: Vec<Value> = events.iter().map(Event::json).collect();
    for (n, d) in names.iter().zip(&data) {
        assert_eq!(&d["type"], n.as_str(), "payload type matches event name");
    }
    (names, data)
}

/// Reads a body until the server aborts it; returns what arrived first.
async fn read_until_abort(mut resp: Response) -> String {
    let mut got = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => got.extend_from_slice(&c),
            Ok(None) => panic!("stream ended cleanly; expected an abort"),
            Err(e) => {
                assert!(e.is_body() || e.is_decode() || e.is_request(), "{e:?}");
                break;
            }
        }
    }
    String::from_utf8(got).unwrap()
}

async fn wait_for_last_event(m: &RunningMock) -> RecordedRequest {
    for _ in 0..100 {
        if let Some(r) = m.recorder.last().filter(|r| r.last_event_ms.is_some()) {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("stream end never recorded");
}

// ---------------------------------------------------------------- auth ----

#[tokio::test]
async fn each_format_takes_the_key_only_in_its_own_header() {
    let m = start().await;
    for api in ALL_APIS {
        for auth in ALL_AUTH {
            let own = auth == api.own_auth()
                || (api.provider() == Provider::Gemini && auth == Auth::GoogQuery);
            let resp = api.request(&m, auth, KEY, false).send().await.unwrap();
            assert_eq!(resp.headers()["x-mock-name"], "formats-mock");
            if own {
                assert_eq!(resp.status(), StatusCode::OK, "{api:?} with {auth:?}");
                continue;
            }
            // The right key in the wrong header is no key at all; a bearer
            // token is read as OAuth (Anthropic, Google) or Entra ID (Azure).
            let (want_status, want_kind, want_msg) = match (api.provider(), auth) {
                (Provider::OpenAi, _) => {
                    (401, "invalid_request_error", "didn't provide an API key")
                }
                (Provider::Anthropic, Auth::Bearer) => (
                    401,
                    "authentication_error",
                    "OAuth authentication is currently not supported.",
                ),
                (Provider::Anthropic, _) => {
                    (401, "authentication_error", "x-api-key header is required")
                }
                (Provider::Gemini, Auth::Bearer) => {
                    (401, "UNAUTHENTICATED", "Expected OAuth 2 access token")
                }
                (Provider::Gemini, _) => (
                    403,
                    "PERMISSION_DENIED",
                    "Method doesn't allow unregistered callers",
                ),
                (Provider::Azure, Auth::Bearer) => (401, "401", "Access token is missing"),
                (Provider::Azure, _) => {
                    (401, "401", "Access denied due to invalid subscription key")
                }
            };
            assert_eq!(resp.status().as_u16(), want_status, "{api:?} with {auth:?}");
            let (kind, msg) = provider_error(api.provider(), resp).await;
            assert_eq!(kind, want_kind, "{api:?} with {auth:?}");
            assert!(msg.contains(want_msg), "{api:?} with {auth:?}: {msg}");
        }
    }
}

#[tokio::test]
async fn wrong_key_in_the_right_header_is_rejected_in_provider_terms() {
    let m = start().await;
    for (api, status, kind, msg) in [
        (
            Api::Responses,
            401,
            "invalid_request_error",
            "Incorrect API key provided: ****************9876",
        ),
        (
            Api::Embeddings,
            401,
            "invalid_request_error",
            "Incorrect API key provided",
        ),
        (
            Api::Messages,
            401,
            "authentication_error",
            "invalid x-api-key",
        ),
        // Google answers a bad key with 400, not 401.
        (
            Api::GeminiGenerate,
            400,
            "INVALID_ARGUMENT",
            "API key not valid. Please pass a valid API key.",
        ),
        (
            Api::AzureChat,
            401,
            "401",
            "Access denied due to invalid subscription key",
        ),
    ] {
        let resp = api
            .request(&m, api.own_auth(), "sk-wrong-secret-9876", false)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), status, "{api:?}");
        let (k, text) = provider_error(api.provider(), resp).await;
        assert_eq!(k, kind, "{api:?}");
        assert!(text.contains(msg), "{api:?}: {text}");
        assert!(!text.contains("secret"), "key leaked: {text}");
    }

    // Google's bad-key error carries its machine-readable reason.
    let resp = Api::GeminiGenerate
        .request(&m, Auth::GoogQuery, "nope", false)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["content-type"],
        "application/json; charset=UTF-8"
    );
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], 400);
    assert_eq!(v["error"]["details"][0]["reason"], "API_KEY_INVALID");
    assert_eq!(
        v["error"]["details"][0]["@type"],
        "type.googleapis.com/google.rpc.ErrorInfo"
    );
}

#[tokio::test]
async fn anthropic_requires_version_header_after_the_key() {
    let m = start().await;
    let url = format!("{}/v1/messages", m.base_url());
    let body = Api::Messages.body(false);

    let resp = client()
        .post(&url)
        .header("x-api-key", KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.headers()["request-id"]
        .to_str()
        .unwrap()
        .starts_with("req_"));
    let (kind, msg) = provider_error(Provider::Anthropic, resp).await;
    assert_eq!(kind, "invalid_request_error");
    assert_eq!(msg, "anthropic-version: header is required");

    // No key and no version: the key is reported first.
    let resp = client().post(&url).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

// ------------------------------------------------------ request errors ----

#[tokio::test]
async fn malformed_requests_get_each_providers_400() {
    let m = start().await;
    let anthropic = |body: Value| {
        client()
            .post(format!("{}/v1/messages", m.base_url()))
            .header("x-api-key", KEY)
            .header("anthropic-version", ANTHROPIC_VERSION)
            .json(&body)
    };
    let msgs = json!([{"role": "user", "content": "hi"}]);
    for (body, want) in [
        (
            json!({"model": "c", "messages": msgs}),
            "max_tokens: Field required",
        ),
        (
            json!({"model": "c", "max_tokens": "ten", "messages": msgs}),
            "max_tokens: Input should be a valid integer",
        ),
        (
            json!({"max_tokens": 5, "messages": msgs}),
            "model: Field required",
        ),
        (
            json!({"model": "c", "max_tokens": 5}),
            "messages: Field required",
        ),
        (
            json!({"model": "c", "max_tokens": 5, "messages": []}),
            "messages: at least one message is required",
        ),
    ] {
        let resp = anthropic(body.clone()).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{body}");
        let (kind, msg) = provider_error(Provider::Anthropic, resp).await;
        assert_eq!(kind, "invalid_request_error");
        assert_eq!(msg, want);
    }

    let gemini = client()
        .post(format!("{}{}", m.base_url(), Api::GeminiGenerate.path()))
        .header("x-goog-api-key", KEY);
    for body in [json!({}), json!({"contents": []})] {
        let resp = gemini
            .try_clone()
            .unwrap()
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        let (status, msg) = provider_error(Provider::Gemini, resp).await;
        assert_eq!(status, "INVALID_ARGUMENT");
        assert!(msg.contains("contents is not specified"), "{msg}");
    }
    let resp = gemini.body("{nope").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(provider_error(Provider::Gemini, resp)
        .await
        .1
        .starts_with("Invalid JSON payload"));

    // Azure passes the model service's validation errors through: OpenAI's.
    let resp = client()
        .post(format!("{}{}", m.base_url(), Api::AzureChat.path()))
        .header("api-key", KEY)
        .json(&json!({"messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        provider_error(Provider::OpenAi, resp).await.0,
        "invalid_request_error"
    );

    let openai = |path: &str, body: Value| {
        client()
            .post(format!("{}{path}", m.base_url()))
            .bearer_auth(KEY)
            .json(&body)
    };
    for (path, body, param) in [
        ("/v1/responses", json!({"input": "hi"}), "model"),
        ("/v1/embeddings", json!({"model": "e"}), "input"),
        ("/v1/embeddings", json!({"model": "e", "input": ""}), ""),
        ("/v1/embeddings", json!({"model": "e", "input": []}), ""),
        (
            "/v1/embeddings",
            json!({"model": "e", "input": "x", "encoding_format": "hex"}),
            "encoding_format",
        ),
        (
            "/v1/embeddings",
            json!({"model": "e", "input": "x", "dimensions": 0}),
            "dimensions",
        ),
    ] {
        let resp = openai(path, body.clone()).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{path} {body}");
        let v: Value = resp.json().await.unwrap();
        let got = v["error"]["param"].as_str().unwrap_or("");
        assert_eq!(got, param, "{path} {body}: {v}");
    }
}

// ------------------------------------------------------------- shapes ----

#[tokio::test]
async fn responses_non_stream_is_a_completed_response_object() {
    let m = start().await;
    let resp = client()
        .post(format!("{}/v1/responses", m.base_url()))
        .bearer_auth(KEY)
        .header("x-mock-words", "5")
        .json(&json!({
            "model": "gpt-4.1-mini",
            "instructions": "Be brief.",
            "input": [{"role": "user", "content": [{"type": "input_text", "text": PROMPT}]}],
            "max_output_tokens": 64,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let v: Value = resp.json().await.unwrap();
    assert!(v["id"].as_str().unwrap().starts_with("resp_"));
    assert_eq!(v["object"], "response");
    assert_eq!(v["status"], "completed");
    assert_eq!(v["model"], "gpt-4.1-mini");
    assert!(v["created_at"].as_u64().unwrap() > 1_700_000_000);
    assert_eq!(v["error"], Value::Null);
    assert_eq!(
        v["instructions"], "Be brief.",
        "request parameters are echoed"
    );
    assert_eq!(v["max_output_tokens"], 64);
    let out = v["output"].as_array().unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0]["type"], "message");
    assert_eq!(out[0]["role"], "assistant");
    assert_eq!(out[0]["status"], "completed");
    assert!(out[0]["id"].as_str().unwrap().starts_with("msg_"));
    let part = &out[0]["content"][0];
    assert_eq!(part["type"], "output_text");
    assert_eq!(part["annotations"], json!([]));
    assert_eq!(part["text"], "The quick brown fox jumps");

    // "Be brief." (9) + PROMPT (18) = 27 chars: 6 tokens.
    assert_eq!(
        v["usage"],
        json!({
            "input_tokens": 6,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 5,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 11,
        })
    );
}

#[tokio::test]
async fn embeddings_follow_openai_shape_and_encodings() {
    let m = start().await;
    let post = |body: Value| {
        client()
            .post(format!("{}/v1/embeddings", m.base_url()))
            .bearer_auth(KEY)
            .json(&body)
    };
    let v: Value =
        post(json!({"model": "text-embedding-3-small", "input": [PROMPT, "abcdefgh", "x"]}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(v["object"], "list");
    assert_eq!(v["model"], "text-embedding-3-small");
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 3);
    for (i, d) in data.iter().enumerate() {
        assert_eq!(d["object"], "embedding");
        assert_eq!(d["index"], i);
        let e = d["embedding"].as_array().unwrap();
        assert_eq!(e.len(), 1536, "text-embedding-3-small's size");
        let norm: f64 = e
            .iter()
            .map(|x| x.as_f64().unwrap().powi(2))
            .sum::<f64>()
            .sqrt();
        assert!((norm - 1.0).abs() < 1e-3, "unit length: {norm}");
    }
    // 4 + 2 + 1 (never below 1 per input); embeddings have no completion.
    assert_eq!(v["usage"], json!({"prompt_tokens": 7, "total_tokens": 7}));

    // Same text, same vector; and base64 is the float32 little-endian bytes.
    let floats: Value = post(json!({"model": "m", "input": "abc", "dimensions": 8}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let b64: Value =
        post(json!({"model": "m", "input": "abc", "dimensions": 8, "encoding_format": "base64"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let decoded: Vec<f32> = bytes
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let listed: Vec<f32> = floats["data"][0]["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    assert_eq!(decoded, listed);
    assert_eq!(decoded.len(), 8);

    // Pre-tokenized input counts one token per id.
    let v: Value = post(json!({"model": "text-embedding-3-large", "input": [[1, 2, 3], [4]]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["usage"]["prompt_tokens"], 4);
    assert_eq!(v["data"][0]["embedding"].as_array().unwrap().len(), 3072);
}

#[tokio::test]
async fn anthropic_non_stream_message_shape() {
    let m = start().await;
    let resp = client()
        .post(format!("{}/v1/messages", m.base_url()))
        .header("x-api-key", KEY)
        .header("anthropic-version", ANTHROPIC_VERSION)
        .header("x-mock-words", "6")
        .json(&json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 100,
            "system": [{"type": "text", "text": "Be terse."}],
            "messages": [{"role": "user", "content": [{"type": "text", "text": PROMPT}]}],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["request-id"]
        .to_str()
        .unwrap()
        .starts_with("req_"));
    let v: Value = resp.json().await.unwrap();
    assert!(v["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(v["type"], "message");
    assert_eq!(v["role"], "assistant");
    assert_eq!(v["model"], "claude-sonnet-4-5");
    assert_eq!(
        v["content"],
        json!([{"type": "text", "text": "The quick brown fox jumps over"}])
    );
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["stop_sequence"], Value::Null);
    // "Be terse." (9) + PROMPT (18) = 27 chars: 6 tokens.
    let u = &v["usage"];
    assert_eq!(u["input_tokens"], 6);
    assert_eq!(u["output_tokens"], 6);
    assert_eq!(u["cache_creation_input_tokens"], 0);
    assert_eq!(u["cache_read_input_tokens"], 0);
}

#[tokio::test]
async fn gemini_generate_content_shape() {
    let m = start().await;
    let resp = client()
        .post(format!(
            "{}/v1beta/models/gemini-2.5-flash:generateContent",
            m.base_url()
        ))
        .header("x-goog-api-key", KEY)
        .json(&json!({
            "systemInstruction": {"parts": [{"text": "Be terse."}]},
            "contents": [{"role": "user", "parts": [{"text": PROMPT}]}],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["content-type"],
        "application/json; charset=UTF-8"
    );
    let v: Value = resp.json().await.unwrap();
    let c = &v["candidates"][0];
    assert_eq!(c["content"]["role"], "model");
    assert_eq!(
        c["content"]["parts"],
        json!([{"text": "The quick brown fox jumps over the lazy"}])
    );
    assert_eq!(c["finishReason"], "STOP");
    assert_eq!(c["index"], 0);
    assert_eq!(v["modelVersion"], "gemini-2.5-flash");
    assert!(v["responseId"].as_str().is_some_and(|s| !s.is_empty()));
    let u = &v["usageMetadata"];
    assert_eq!(u["promptTokenCount"], 6);
    assert_eq!(u["candidatesTokenCount"], mock::DEFAULT_WORDS);
    assert_eq!(u["totalTokenCount"], 6 + mock::DEFAULT_WORDS as u64);
    assert!(
        u.get("cachedContentTokenCount").is_none(),
        "absent when nothing is cached"
    );
}

/// google-genai 2.x and later call `/v1/` by default; `countTokens` counts what a
/// generation's prompt would (either request spelling).
#[tokio::test]
async fn gemini_v1_paths_and_count_tokens() {
    let m = start().await;
    let contents = json!([{"role": "user", "parts": [{"text": PROMPT}]}]);
    let cases = [
        (
            "/v1/models/gemini-2.5-flash:generateContent",
            json!({"contents": contents}),
        ),
        (
            "/v1beta/models/gemini-2.5-flash:countTokens",
            json!({"contents": contents}),
        ),
        (
            "/v1/models/gemini-2.5-flash:countTokens",
            json!({"generateContentRequest": {"model": "models/gemini-2.5-flash", "contents": contents}}),
        ),
    ];
    for (path, body) in cases {
        let resp = client()
            .post(format!("{}{path}", m.base_url()))
            .header("x-goog-api-key", KEY)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let v: Value = resp.json().await.unwrap();
        // PROMPT (18 chars): 4 tokens.
        if path.ends_with(":countTokens") {
            assert_eq!(v["totalTokens"], 4, "{path}");
            assert_eq!(v["promptTokensDetails"][0]["tokenCount"], 4, "{path}");
        } else {
            assert_eq!(v["usageMetadata"]["promptTokenCount"], 4, "{path}");
        }
    }
}

/// Embeddings carry no usage in Gemini's answers; unknown members (an output cap) are
/// refused as Google refuses them.
#[tokio::test]
async fn gemini_embeddings() {
    let m = start().await;
    let content = json!({"parts": [{"text": PROMPT}]});
    let post = |path: &str, body: Value| {
        client()
            .post(format!("{}{path}", m.base_url()))
            .header("x-goog-api-key", KEY)
            .json(&body)
            .send()
    };
    let resp = post(
        "/v1beta/models/text-embedding-004:embedContent",
        json!({"content": content}),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["embedding"]["values"].as_array().map(Vec::len), Some(768));
    assert!(v.get("usageMetadata").is_none());
    let resp = post(
        "/v1/models/gemini-embedding-001:batchEmbedContents",
        json!({"requests": [
            {"model": "models/gemini-embedding-001", "content": content},
            {"model": "models/gemini-embedding-001", "content": content, "outputDimensionality": 8},
        ]}),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        v["embeddings"][0]["values"].as_array().map(Vec::len),
        Some(3072)
    );
    assert_eq!(
        v["embeddings"][1]["values"].as_array().map(Vec::len),
        Some(8)
    );
    let resp = post(
        "/v1beta/models/text-embedding-004:embedContent",
        json!({"content": content, "generationConfig": {"maxOutputTokens": 5}}),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        provider_error(Provider::Gemini, resp).await.0,
        "INVALID_ARGUMENT"
    );
}

/// OpenAI's legacy completions: the body, the stream with its usage chunk, and the
/// strictness of OpenAI's older endpoints about members they do not know.
#[tokio::test]
async fn openai_legacy_completions_and_strict_embeddings() {
    let m = start().await;
    let post = |path: &str, body: Value| {
        client()
            .post(format!("{}{path}", m.base_url()))
            .bearer_auth(KEY)
            .json(&body)
            .send()
    };
    let resp = post(
        "/v1/completions",
        json!({"model": "gpt-3.5-turbo-instruct", "prompt": PROMPT, "max_tokens": 5}),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["choices"][0]["text"], "The quick brown fox jumps");
    assert_eq!(v["usage"]["prompt_tokens"], 4);
    assert_eq!(v["usage"]["completion_tokens"], 5);
    let text = post(
        "/v1/completions",
        json!({"model": "gpt-3.5-turbo-instruct", "prompt": PROMPT, "max_tokens": 3,
               "stream": true, "stream_options": {"include_usage": true}}),
    )
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    let events: Vec<&str> = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .collect();
    assert_eq!(events.last(), Some(&"[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let streamed: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["text"].as_str())
        .collect();
    assert_eq!(streamed, "The quick brown");
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["completion_tokens"], 3);
    for (path, body) in [
        (
            "/v1/completions",
            json!({"model": "m", "prompt": "p", "safety_identifier": "u"}),
        ),
        (
            "/v1/embeddings",
            json!({"model": "text-embedding-3-small", "input": "p", "safety_identifier": "u"}),
        ),
    ] {
        let resp = post(path, body).await.unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{path}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(
            v["error"]["message"],
            "Unrecognized request argument supplied: safety_identifier"
        );
    }
}

#[tokio::test]
async fn gemini_unknown_method_is_google_404() {
    let m = start().await;
    for path in [
        "/v1beta/models/gemini-2.0-flash:countTokenz",
        "/v1beta/models/gemini-2.0-flash",
        "/v1beta/tunedModels/x:generateContent",
    ] {
        let resp = client()
            .post(format!("{}{path}", m.base_url()))
            .header("x-goog-api-key", KEY)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(provider_error(Provider::Gemini, resp).await.0, "NOT_FOUND");
    }
    assert_eq!(m.recorder.len(), 3, "/v1beta requests are recorded");
}

#[tokio::test]
async fn azure_answers_like_openai_with_the_deployment_as_model() {
    let m = start().await;
    let v: Value = Api::AzureChat
        .ok(&m, false)
        .header("x-mock-words", "4")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "gpt-4o-prod");
    assert_eq!(v["choices"][0]["message"]["content"], "The quick brown fox");
    assert_eq!(v["usage"]["prompt_tokens"], PROMPT_TOKENS);
    assert_eq!(v["usage"]["completion_tokens"], 4);

    let resp = Api::AzureChat
        .ok(&m, true)
        .header("x-mock-words", "2")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let events = parse_sse(&resp.text().await.unwrap(), "\n");
    assert_eq!(events.last().unwrap().data, "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1].iter().map(Event::json).collect();
    // role + 2 words + finish + usage
    assert_eq!(chunks.len(), 5);
    assert!(chunks.iter().all(|c| c["model"] == "gpt-4o-prod"));
    assert_eq!(chunks[4]["usage"]["completion_tokens"], 2);

    let v: Value = Api::AzureEmbeddings
        .ok(&m, false)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["model"], "embed-prod");
    assert_eq!(v["data"][0]["object"], "embedding");
    assert_eq!(v["usage"]["prompt_tokens"], PROMPT_TOKENS);
}

#[tokio::test]
async fn azure_requires_a_known_api_version_shape() {
    let m = start().await;
    let chat = |query: &str| {
        client()
            .post(format!(
                "{}/openai/deployments/d1/chat/completions{query}",
                m.base_url()
            ))
            .header("api-key", KEY)
            .json(&Api::AzureChat.body(false))
    };
    for (query, status) in [
        ("", 404),
        ("?api-version=", 404),
        ("?api-version=preview", 404),
        ("?api-version=2024-13", 404),
        ("?apiversion=2024-10-21", 404),
        ("?api-version=2024-10-21", 200),
        ("?api-version=2025-04-01-preview", 200),
        ("?foo=1&api-version=2024-02-01", 200),
    ] {
        let resp = chat(query).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), status, "{query:?}");
        if status == 404 {
            // Azure's body, byte for byte.
            assert_eq!(
                resp.text().await.unwrap(),
                r#"{"error":{"code":"404","message": "Resource not found"}}"#
            );
        }
    }

    // The route (with its version) is resolved before the key is checked.
    let resp = client()
        .post(format!("{}/openai/deployments/d1/embeddings", m.base_url()))
        .header("api-key", "wrong")
        .json(&json!({"input": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);

    // Unknown Azure paths get the same 404.
    let resp = client()
        .post(format!(
            "{}/openai/deployments/d1/completionz?api-version={AZURE_VERSION}",
            m.base_url()
        ))
        .header("api-key", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        provider_error(Provider::Azure, resp).await.1,
        "Resource not found"
    );

    let recs = m.recorder.requests();
    assert_eq!(recs.len(), 10);
    assert_eq!(
        recs[5].path,
        "/openai/deployments/d1/chat/completions?api-version=2024-10-21"
    );
}

// ------------------------------------------------------------ streams ----

#[tokio::test]
async fn responses_stream_event_sequence() {
    let m = start().await;
    let resp = Api::Responses
        .ok(&m, true)
        .header("x-mock-words", "3")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let body = resp.text().await.unwrap();
    assert!(
        !body.contains("[DONE]"),
        "the Responses API sends no [DONE]"
    );
    let (names, data) = typed_events(&parse_sse(&body, "\n"));
    let mut want = vec![
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ];
    want.extend(["response.output_text.delta"; 3]);
    want.extend([
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]);
    assert_eq!(names, want);
    for (i, d) in data.iter().enumerate() {
        assert_eq!(d["sequence_number"], i, "sequence numbers count from 0");
    }

    let created = &data[0]["response"];
    assert_eq!(created["status"], "in_progress");
    assert_eq!(created["output"], json!([]));
    assert_eq!(created["usage"], Value::Null);
    let id = created["id"].as_str().unwrap();
    assert!(id.starts_with("resp_"));

    let item_id = data[2]["item"]["id"].as_str().unwrap();
    assert_eq!(data[2]["item"]["status"], "in_progress");
    assert_eq!(data[3]["part"]["text"], "");
    let deltas: String = data[4..7]
        .iter()
        .map(|d| {
            assert_eq!(d["item_id"], item_id);
            assert_eq!(d["output_index"], 0);
            assert_eq!(d["content_index"], 0);
            d["delta"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(deltas, "The quick brown");
    assert_eq!(data[7]["text"], deltas);
    assert_eq!(data[8]["part"]["text"], deltas);
    assert_eq!(data[9]["item"]["status"], "completed");
    assert_eq!(data[9]["item"]["content"][0]["text"], deltas);

    let done = &data[10]["response"];
    assert_eq!(done["id"], id);
    assert_eq!(done["status"], "completed");
    assert_eq!(done["output"][0]["content"][0]["text"], deltas);
    assert_eq!(done["usage"]["input_tokens"], PROMPT_TOKENS);
    assert_eq!(done["usage"]["output_tokens"], 3);
    assert_eq!(done["usage"]["total_tokens"], PROMPT_TOKENS + 3);
    assert_eq!(done["usage"]["input_tokens_details"]["cached_tokens"], 0);
    assert_eq!(
        done["usage"]["output_tokens_details"]["reasoning_tokens"],
        0
    );
}

/// A reasoning model's stream: the reasoning item (no content) before the message, which
/// moves to output index 1; its tokens counted in the usage.
#[tokio::test]
async fn responses_stream_with_hidden_reasoning() {
    let m = start().await;
    let resp = Api::Responses
        .ok(&m, true)
        .header("x-mock-words", "2")
        .header("x-mock-reasoning-tokens", "500")
        .send()
        .await
        .unwrap();
    let body = resp.text().await.unwrap();
    let (names, data) = typed_events(&parse_sse(&body, "\n"));
    assert_eq!(
        names[..6],
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.output_item.done",
            "response.output_item.added",
            "response.content_part.added",
        ]
    );
    assert_eq!(data[2]["item"]["type"], "reasoning");
    assert_eq!(data[3]["item"]["summary"], json!([]));
    assert_eq!(data[4]["item"]["type"], "message");
    assert_eq!(data[4]["output_index"], 1);
    assert_eq!(data[6]["output_index"], 1);
    let done = &data.last().unwrap()["response"];
    assert_eq!(done["output"][0]["type"], "reasoning");
    assert_eq!(done["output"][1]["content"][0]["text"], "The quick");
    assert_eq!(done["usage"]["output_tokens"], 502);
    assert_eq!(
        done["usage"]["output_tokens_details"]["reasoning_tokens"],
        500
    );
}

#[tokio::test]
async fn anthropic_stream_event_sequence() {
    let m = start().await;
    let resp = Api::Messages
        .ok(&m, true)
        .header("x-mock-words", "3")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let (names, data) = typed_events(&parse_sse(&resp.text().await.unwrap(), "\n"));
    let mut want = vec!["message_start", "content_block_start", "ping"];
    want.extend(["content_block_delta"; 3]);
    want.extend(["content_block_stop", "message_delta", "message_stop"]);
    assert_eq!(names, want);

    let start = &data[0]["message"];
    assert!(start["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(start["type"], "message");
    assert_eq!(start["role"], "assistant");
    assert_eq!(start["model"], "claude-sonnet-4-5");
    assert_eq!(start["content"], json!([]));
    assert_eq!(start["stop_reason"], Value::Null);
    assert_eq!(start["usage"]["input_tokens"], PROMPT_TOKENS);
    assert_eq!(start["usage"]["output_tokens"], 1);
    assert_eq!(start["usage"]["cache_creation_input_tokens"], 0);
    assert_eq!(start["usage"]["cache_read_input_tokens"], 0);

    assert_eq!(data[1]["index"], 0);
    assert_eq!(
        data[1]["content_block"],
        json!({"type": "text", "text": ""})
    );
    let text: String = data[3..6]
        .iter()
        .map(|d| {
            assert_eq!(d["index"], 0);
            assert_eq!(d["delta"]["type"], "text_delta");
            d["delta"]["text"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(text, "The quick brown");
    assert_eq!(data[6]["index"], 0);
    assert_eq!(
        data[7]["delta"],
        json!({"stop_reason": "end_turn", "stop_sequence": null})
    );
    // Cumulative, as Anthropic sends it: output is the final count, and the
    // input fields repeat message_start's rather than add to them.
    assert_eq!(data[7]["usage"]["output_tokens"], 3);
    assert_eq!(data[7]["usage"]["input_tokens"], PROMPT_TOKENS);
    assert_eq!(data[8], json!({"type": "message_stop"}));
}

#[tokio::test]
async fn gemini_sse_uses_crlf_and_cumulative_usage() {
    let m = start().await;
    let resp = Api::GeminiStream.ok(&m, true).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let body = resp.text().await.unwrap();
    // Every line ends in CRLF: no bare LF anywhere.
    assert_eq!(body.matches('\n').count(), body.matches("\r\n").count());
    assert!(body.starts_with("data: {"));
    let events = parse_sse(&body, "\r\n");
    assert!(
        events.iter().all(|e| e.name.is_none()),
        "Gemini names no events"
    );
    let chunks: Vec<Value> = events.iter().map(Event::json).collect();
    let words = mock::DEFAULT_WORDS;
    assert_eq!(chunks.len(), words.div_ceil(GEMINI_CHUNK_WORDS));

    let mut text = String::new();
    for (i, c) in chunks.iter().enumerate() {
        let last = i + 1 == chunks.len();
        let cand = &c["candidates"][0];
        assert_eq!(cand["content"]["role"], "model");
        text.push_str(cand["content"]["parts"][0]["text"].as_str().unwrap());
        if last {
            assert_eq!(cand["finishReason"], "STOP");
        } else {
            assert!(
                cand.get("finishReason").is_none(),
                "only the last chunk finishes: {c}"
            );
        }
        let so_far = ((i + 1) * GEMINI_CHUNK_WORDS).min(words) as u64;
        let u = &c["usageMetadata"];
        assert_eq!(u["promptTokenCount"], PROMPT_TOKENS);
        assert_eq!(u["candidatesTokenCount"], so_far, "cumulative: {c}");
        assert_eq!(u["totalTokenCount"], PROMPT_TOKENS + so_far);
        assert_eq!(c["modelVersion"], "gemini-2.0-flash");
        assert_eq!(c["responseId"], chunks[0]["responseId"]);
    }
    assert_eq!(text, "The quick brown fox jumps over the lazy");
}

#[tokio::test]
async fn gemini_stream_without_alt_is_a_json_array() {
    let m = start().await;
    let resp = client()
        .post(format!(
            "{}/v1beta/models/gemini-2.0-flash:streamGenerateContent?key={KEY}",
            m.base_url()
        ))
        // An empty header does not hide the query key.
        .header("x-goog-api-key", "")
        .header("x-mock-words", "4")
        .json(&Api::GeminiStream.body(true))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["content-type"],
        "application/json; charset=UTF-8"
    );
    let v: Value = resp.json().await.unwrap();
    let arr = v.as_array().unwrap();
    assert_eq!(arr.len(), 2);
    assert_eq!(
        arr[0]["candidates"][0]["content"]["parts"][0]["text"],
        "The quick brown"
    );
    assert_eq!(
        arr[1]["candidates"][0]["content"]["parts"][0]["text"],
        " fox"
    );
    assert_eq!(arr[1]["candidates"][0]["finishReason"], "STOP");
    assert_eq!(arr[1]["usageMetadata"]["candidatesTokenCount"], 4);
}

#[tokio::test]
async fn empty_completion_still_streams_a_well_formed_end() {
    let m = start().await;
    let resp = Api::GeminiStream
        .ok(&m, true)
        .header("x-mock-words", "0")
        .send()
        .await
        .unwrap();
    let events = parse_sse(&resp.text().await.unwrap(), "\r\n");
    assert_eq!(events.len(), 1);
    let c = events[0].json();
    assert_eq!(c["candidates"][0]["finishReason"], "STOP");
    assert_eq!(c["usageMetadata"]["candidatesTokenCount"], 0);

    let resp = Api::Messages
        .ok(&m, true)
        .header("x-mock-words", "0")
        .send()
        .await
        .unwrap();
    let (names, data) = typed_events(&parse_sse(&resp.text().await.unwrap(), "\n"));
    assert_eq!(names.len(), 6, "no deltas: {names:?}");
    assert_eq!(data[4]["usage"]["output_tokens"], 0);

    let resp = Api::Responses
        .ok(&m, true)
        .header("x-mock-words", "0")
        .send()
        .await
        .unwrap();
    let (names, data) = typed_events(&parse_sse(&resp.text().await.unwrap(), "\n"));
    assert_eq!(names.len(), 8);
    assert_eq!(data[7]["response"]["usage"]["output_tokens"], 0);
}

// ------------------------------------------------------------- faults ----

#[tokio::test]
async fn injected_statuses_use_each_providers_envelope() {
    let m = start().await;
    for (api, status, want_kind, retry_after) in [
        (Api::Messages, 529, "overloaded_error", false),
        (Api::Messages, 429, "rate_limit_error", true),
        (Api::Messages, 500, "api_error", false),
        (Api::Messages, 400, "invalid_request_error", false),
        (Api::GeminiGenerate, 429, "RESOURCE_EXHAUSTED", true),
        (Api::GeminiStream, 503, "UNAVAILABLE", false),
        (Api::GeminiGenerate, 500, "INTERNAL", false),
        (Api::GeminiGenerate, 400, "INVALID_ARGUMENT", false),
        (Api::GeminiGenerate, 401, "UNAUTHENTICATED", false),
        (Api::AzureChat, 429, "429", true),
        (Api::AzureEmbeddings, 401, "401", false),
        (Api::Responses, 429, "requests", true),
        (Api::Embeddings, 503, "server_error", false),
    ] {
        let resp = api
            .ok(&m, api.streams())
            .header("x-mock-status", status.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), status, "{api:?}");
        assert_eq!(resp.headers()["x-mock-name"], "formats-mock");
        assert_eq!(
            resp.headers().get("retry-after").is_some(),
            retry_after,
            "{api:?} {status}"
        );
        let (kind, _) = provider_error(api.provider(), resp).await;
        assert_eq!(kind, want_kind, "{api:?} {status}");
    }

    // Errors Azure's front door does not make itself are the model
    // service's, in OpenAI's envelope.
    let resp = Api::AzureChat
        .ok(&m, true)
        .header("x-mock-status", "500")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        provider_error(Provider::OpenAi, resp).await.0,
        "server_error"
    );

    // Gemini's 429 says when to retry in the body too.
    let v: Value = Api::GeminiGenerate
        .ok(&m, false)
        .header("x-mock-status", "429")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["error"]["details"][0]["retryDelay"], "1s");

    // The key is still checked first.
    for api in [Api::Messages, Api::GeminiGenerate, Api::AzureChat] {
        let resp = api
            .request(&m, api.own_auth(), "wrong", false)
            .header("x-mock-status", "500")
            .send()
            .await
            .unwrap();
        assert!(
            resp.status().is_client_error(),
            "{api:?}: {}",
            resp.status()
        );
    }
}

#[tokio::test]
async fn delay_holds_back_headers_on_every_format() {
    let m = start().await;
    for api in [
        Api::Messages,
        Api::GeminiStream,
        Api::AzureChat,
        Api::Responses,
    ] {
        let started = Instant::now();
        let resp = api
            .ok(&m, true)
            .header("x-mock-delay-ms", "200")
            .send()
            .await
            .unwrap();
        assert!(started.elapsed() >= Duration::from_millis(200), "{api:?}");
        assert_eq!(resp.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn event_delay_spaces_out_anthropic_events() {
    let m = start().await;
    let started = Instant::now();
    let resp = Api::Messages
        .ok(&m, true)
        .header("x-mock-words", "1")
        .header("x-mock-event-delay-ms", "60")
        .send()
        .await
        .unwrap();
    let events = parse_sse(&resp.text().await.unwrap(), "\n");
    // start, block start, ping, 1 delta, block stop, delta, stop: 6 gaps.
    assert_eq!(events.len(), 7);
    assert!(started.elapsed() >= Duration::from_millis(360));
}

#[tokio::test]
async fn pause_holds_the_responses_stream_after_its_first_event() {
    let m = start().await;
    let mut resp = Api::Responses
        .ok(&m, true)
        .header("x-mock-words", "2")
        .header("x-mock-pause-after", "1")
        .header("x-mock-pause-ms", "800")
        .send()
        .await
        .unwrap();
    let first = resp.chunk().await.unwrap().expect("a first chunk");
    let first_seen = mock::now_ms();
    assert!(String::from_utf8_lossy(&first).starts_with("event: response.created\n"));
    let mut rest = Vec::new();
    while let Some(c) = resp.chunk().await.unwrap() {
        rest.extend_from_slice(&c);
    }
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&first),
        String::from_utf8_lossy(&rest)
    );
    let (names, _) = typed_events(&parse_sse(&all, "\n"));
    assert_eq!(names.last().unwrap(), "response.completed");
    let rec = wait_for_last_event(&m).await;
    let last_sent = rec.last_event_ms.unwrap();
    assert!(
        last_sent >= first_seen + 400,
        "last event sent at {last_sent}, first seen at {first_seen}"
    );
}

#[tokio::test]
async fn cut_aborts_each_stream_after_whole_events() {
    let m = start().await;
    for (api, eol) in [
        (Api::Messages, "\n"),
        (Api::Responses, "\n"),
        (Api::GeminiStream, "\r\n"),
        (Api::AzureChat, "\n"),
    ] {
        let resp = api
            .ok(&m, true)
            .header("x-mock-cut-after", "2")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{api:?}");
        let got = read_until_abort(resp).await;
        let events = parse_sse(&got, eol);
        assert_eq!(
            events.len(),
            2,
            "{api:?}: exactly the events before the cut"
        );
        let ends = ["message_stop", "response.completed", "[DONE]", "STOP"];
        assert!(
            !ends.iter().any(|e| got.contains(e)),
            "{api:?} finished: {got}"
        );
    }
    // The server stays healthy.
    let resp = Api::Messages.ok(&m, false).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn streams_record_their_last_event_time() {
    let m = start().await;
    for api in [
        Api::Messages,
        Api::Responses,
        Api::GeminiStream,
        Api::AzureChat,
    ] {
        m.recorder.clear();
        let before = mock::now_ms();
        let resp = api.ok(&m, true).send().await.unwrap();
        resp.text().await.unwrap();
        let rec = wait_for_last_event(&m).await;
        let at = rec.last_event_ms.unwrap();
        assert!(
            at >= rec.received_ms && at >= before && at <= mock::now_ms(),
            "{api:?}"
        );
    }
    // Non-streamed answers have none.
    m.recorder.clear();
    Api::GeminiGenerate
        .ok(&m, false)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(m.recorder.last().unwrap().last_event_ms, None);
}

#[tokio::test]
async fn word_count_header_sets_completion_tokens_everywhere() {
    let m = start().await;
    for api in [
        Api::Responses,
        Api::Messages,
        Api::GeminiGenerate,
        Api::AzureChat,
    ] {
        let v: Value = api
            .ok(&m, false)
            .header("x-mock-words", "11")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let (completion, prompt) = match api.provider() {
            Provider::OpenAi => (&v["usage"]["output_tokens"], &v["usage"]["input_tokens"]),
            Provider::Anthropic => (&v["usage"]["output_tokens"], &v["usage"]["input_tokens"]),
            Provider::Gemini => (
                &v["usageMetadata"]["candidatesTokenCount"],
                &v["usageMetadata"]["promptTokenCount"],
            ),
            Provider::Azure => (
                &v["usage"]["completion_tokens"],
                &v["usage"]["prompt_tokens"],
            ),
        };
        assert_eq!(completion, 11, "{api:?}: {v}");
        assert_eq!(prompt, PROMPT_TOKENS, "{api:?}: {v}");
    }
}

#[tokio::test]
async fn cache_read_header_reports_cached_tokens_in_each_formats_terms() {
    let m = start().await;
    let get = |api: Api, n: &'static str| {
        let req = api.ok(&m, false).header("x-mock-cache-read", n);
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };

    // Anthropic: cache reads come on top of input_tokens.
    let v = get(Api::Messages, "1000").await;
    assert_eq!(v["usage"]["cache_read_input_tokens"], 1000);
    assert_eq!(v["usage"]["input_tokens"], PROMPT_TOKENS);

    // OpenAI and Gemini: the cached tokens are part of the prompt tokens,
    // so never more than them.
    let v = get(Api::Responses, "3").await;
    assert_eq!(v["usage"]["input_tokens_details"]["cached_tokens"], 3);
    assert_eq!(v["usage"]["input_tokens"], PROMPT_TOKENS);
    let v = get(Api::Responses, "1000").await;
    assert_eq!(
        v["usage"]["input_tokens_details"]["cached_tokens"],
        PROMPT_TOKENS
    );
    let v = get(Api::AzureChat, "2").await;
    assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 2);
    let v = get(Api::GeminiGenerate, "3").await;
    assert_eq!(v["usageMetadata"]["cachedContentTokenCount"], 3);
    assert_eq!(v["usageMetadata"]["promptTokenCount"], PROMPT_TOKENS);

    // Streamed Anthropic usage carries it in message_start and message_delta.
    let resp = Api::Messages
        .ok(&m, true)
        .header("x-mock-cache-read", "50")
        .send()
        .await
        .unwrap();
    let (_, data) = typed_events(&parse_sse(&resp.text().await.unwrap(), "\n"));
    assert_eq!(data[0]["message"]["usage"]["cache_read_input_tokens"], 50);
    let delta = data.iter().find(|d| d["type"] == "message_delta").unwrap();
    assert_eq!(delta["usage"]["cache_read_input_tokens"], 50);
}

// ------------------------------------------------------------ records ----

#[tokio::test]
async fn every_format_is_recorded_with_query_and_headers() {
    let m = start().await;
    for api in ALL_APIS {
        let auth = if matches!(api, Api::GeminiStream) {
            Auth::GoogQuery
        } else {
            api.own_auth()
        };
        let resp = api
            .request(&m, auth, KEY, false)
            .header("x-trace", format!("{api:?}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{api:?}");
        resp.text().await.unwrap();
    }
    let recs = m.recorder.requests();
    assert_eq!(recs.len(), ALL_APIS.len());
    for (api, r) in ALL_APIS.iter().zip(&recs) {
        assert_eq!(r.method, "POST");
        assert_eq!(r.header("x-trace"), Some(format!("{api:?}").as_str()));
        assert_eq!(r.json().unwrap(), api.body(false));
    }
    assert_eq!(recs[2].header("x-api-key"), Some(KEY));
    assert_eq!(recs[2].header("anthropic-version"), Some(ANTHROPIC_VERSION));
    assert_eq!(
        recs[4].path,
        format!("/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse&key={KEY}")
    );
    assert_eq!(recs[5].header("api-key"), Some(KEY));
    assert!(recs[5]
        .path
        .ends_with(&format!("?api-version={AZURE_VERSION}")));
}

#[test]
fn binary_help_lists_every_endpoint() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chokepoint-mock"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "/v1/chat/completions",
        "/v1/responses",
        "/v1/embeddings",
        "/v1/models",
        "/v1/messages",
        ":generateContent",
        ":streamGenerateContent?alt=sse",
        "/openai/deployments/DEPLOYMENT/chat/completions",
        "/openai/deployments/DEPLOYMENT/embeddings",
        "x-api-key",
        "x-goog-api-key",
        "api-key",
        "anthropic-version",
        "x-mock-cache-read",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}");
    }
}
