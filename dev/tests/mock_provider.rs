//! The mock provider against OpenAI's documented wire format and its
//! fault-injection contract, over real HTTP.

use std::time::{Duration, Instant};

use chokepoint_dev::mock::{self, MockConfig, RecordedRequest, RunningMock};
use reqwest::{Client, RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};

const KEY: &str = "sk-test-mock-key-1234";

async fn start() -> RunningMock {
    mock::spawn(MockConfig {
        api_key: KEY.into(),
        name: "openai-mock".into(),
        guardrail_key: None,
    })
    .await
    .expect("mock starts")
}

fn client() -> Client {
    Client::builder().no_proxy().build().unwrap()
}

fn chat(m: &RunningMock, body: Value) -> RequestBuilder {
    client()
        .post(format!("{}/v1/chat/completions", m.base_url()))
        .bearer_auth(KEY)
        .json(&body)
}

fn simple_body() -> Value {
    json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello there, mock!"}]})
}

fn stream_body(include_usage: bool) -> Value {
    let mut b = simple_body();
    b["stream"] = json!(true);
    if include_usage {
        b["stream_options"] = json!({"include_usage": true});
    }
    b
}

async fn error_of(resp: Response) -> Value {
    let v: Value = resp.json().await.expect("error body is JSON");
    let e = v["error"].clone();
    for field in ["message", "type", "param", "code"] {
        assert!(e.get(field).is_some(), "error lacks {field}: {v}");
    }
    e
}

/// Splits an SSE body into its `data:` payloads, checking the framing.
fn sse_payloads(body: &str) -> Vec<String> {
    assert!(body.ends_with("\n\n"), "body must end with a blank line");
    body.split_terminator("\n\n")
        .map(|ev| {
            ev.strip_prefix("data: ")
                .unwrap_or_else(|| panic!("event without data prefix: {ev:?}"))
                .to_string()
        })
        .collect()
}

async fn read_events(resp: Response) -> Vec<String> {
    sse_payloads(&resp.text().await.unwrap())
}

fn parse_chunks(payloads: &[String]) -> Vec<Value> {
    assert_eq!(payloads.last().map(String::as_str), Some("[DONE]"));
    payloads[..payloads.len() - 1]
        .iter()
        .map(|p| serde_json::from_str(p).expect("chunk is JSON"))
        .collect()
}

#[tokio::test]
async fn missing_key_is_rejected_with_openai_error() {
    let m = start().await;
    let resp = client()
        .post(format!("{}/v1/chat/completions", m.base_url()))
        .json(&simple_body())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let e = error_of(resp).await;
    assert_eq!(e["type"], "invalid_request_error");
    assert!(e["message"]
        .as_str()
        .unwrap()
        .contains("didn't provide an API key"));
}

#[tokio::test]
async fn wrong_key_is_rejected_and_redacted() {
    let m = start().await;
    let resp = client()
        .post(format!("{}/v1/chat/completions", m.base_url()))
        .bearer_auth("sk-wrong-secret-9876")
        .json(&simple_body())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(resp.headers()["x-mock-name"], "openai-mock");
    let e = error_of(resp).await;
    assert_eq!(e["code"], "invalid_api_key");
    assert_eq!(e["type"], "invalid_request_error");
    assert_eq!(e["param"], Value::Null);
    let msg = e["message"].as_str().unwrap();
    assert!(msg.starts_with("Incorrect API key provided: "), "{msg}");
    assert!(msg.contains("****************9876"), "{msg}");
    assert!(!msg.contains("secret"), "key leaked: {msg}");
}

#[tokio::test]
async fn streaming_request_with_wrong_key_gets_json_error() {
    let m = start().await;
    let resp = client()
        .post(format!("{}/v1/chat/completions", m.base_url()))
        .bearer_auth("nope")
        .json(&stream_body(true))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    assert_eq!(error_of(resp).await["message"], "Incorrect API key provided: ****. You can find your API key at https://platform.openai.com/account/api-keys.");
}

#[tokio::test]
async fn malformed_requests_get_400() {
    let m = start().await;
    let url = format!("{}/v1/chat/completions", m.base_url());

    let resp = client()
        .post(&url)
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let e = error_of(resp).await;
    assert_eq!(e["type"], "invalid_request_error");
    assert!(e["message"]
        .as_str()
        .unwrap()
        .contains("could not parse the JSON body"));

    let resp = chat(&m, json!({"messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        error_of(resp).await["message"],
        "you must provide a model parameter"
    );

    let resp = chat(&m, json!({"model": "gpt-4o-mini"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let e = error_of(resp).await;
    assert_eq!(e["param"], "messages");
    assert_eq!(e["code"], "missing_required_parameter");

    let resp = chat(&m, json!({"model": "gpt-4o-mini", "messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn non_stream_completion_has_openai_shape() {
    let m = start().await;
    let resp = chat(&m, simple_body()).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["x-mock-name"], "openai-mock");
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let v: Value = resp.json().await.unwrap();
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(v["object"], "chat.completion");
    assert!(v["created"].as_u64().unwrap() > 1_700_000_000);
    assert_eq!(v["model"], "gpt-4o-mini");
    assert!(v["system_fingerprint"].is_string());
    let choice = &v["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["finish_reason"], "stop");
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["message"]["refusal"], Value::Null);
    let content = choice["message"]["content"].as_str().unwrap();
    assert_eq!(content.split(' ').count(), mock::DEFAULT_WORDS);

    // "Hello there, mock!" is 18 chars: 18 / 4 = 4 prompt tokens.
    let u = &v["usage"];
    assert_eq!(u["prompt_tokens"], 4);
    assert_eq!(u["completion_tokens"], mock::DEFAULT_WORDS);
    assert_eq!(u["total_tokens"], 4 + mock::DEFAULT_WORDS);
    assert_eq!(u["prompt_tokens_details"]["cached_tokens"], 0);
    assert_eq!(u["completion_tokens_details"]["reasoning_tokens"], 0);
}

#[tokio::test]
async fn word_count_header_and_deterministic_content() {
    let m = start().await;
    let get = |words: &'static str| {
        let req = chat(&m, simple_body()).header("x-mock-words", words);
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let a = get("20").await;
    let b = get("20").await;
    let content = a["choices"][0]["message"]["content"].as_str().unwrap();
    assert_eq!(content.split(' ').count(), 20);
    assert_eq!(a["usage"]["completion_tokens"], 20);
    assert_eq!(content, b["choices"][0]["message"]["content"]);
    assert_ne!(a["id"], b["id"], "completion ids must be unique");

    let tiny = chat(
        &m,
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}),
    )
    .send()
    .await
    .unwrap()
    .json::<Value>()
    .await
    .unwrap();
    assert_eq!(
        tiny["usage"]["prompt_tokens"], 1,
        "prompt tokens never drop below 1"
    );
}

#[tokio::test]
async fn stream_without_usage_matches_openai_framing() {
    let m = start().await;
    let full = chat(&m, simple_body())
        .header("x-mock-words", "5")
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();

    let resp = chat(&m, stream_body(false))
        .header("x-mock-words", "5")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    assert_eq!(resp.headers()["x-mock-name"], "openai-mock");
    let chunks = parse_chunks(&read_events(resp).await);
    // role + 5 words + finish
    assert_eq!(chunks.len(), 7);
    let id = chunks[0]["id"].clone();
    for c in &chunks {
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(c["id"], id, "all chunks share the completion id");
        assert_eq!(c["model"], "gpt-4o-mini");
        assert!(
            c.get("usage").is_none(),
            "no usage field without include_usage: {c}"
        );
        assert_eq!(c["choices"].as_array().unwrap().len(), 1);
    }
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    assert_eq!(chunks[0]["choices"][0]["finish_reason"], Value::Null);
    let text: String = chunks[1..6]
        .iter()
        .map(|c| {
            assert_eq!(c["choices"][0]["finish_reason"], Value::Null);
            c["choices"][0]["delta"]["content"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(text, full["choices"][0]["message"]["content"]);
    assert_eq!(chunks[6]["choices"][0]["delta"], json!({}));
    assert_eq!(chunks[6]["choices"][0]["finish_reason"], "stop");
}

#[tokio::test]
async fn stream_with_include_usage_ends_with_usage_chunk() {
    let m = start().await;
    let resp = chat(&m, stream_body(true))
        .header("x-mock-words", "3")
        .send()
        .await
        .unwrap();
    let chunks = parse_chunks(&read_events(resp).await);
    // role + 3 words + finish + usage
    assert_eq!(chunks.len(), 6);
    for c in &chunks[..5] {
        assert_eq!(
            c["usage"],
            Value::Null,
            "usage must be present and null: {c}"
        );
        assert!(c.get("usage").is_some());
    }
    assert_eq!(chunks[4]["choices"][0]["finish_reason"], "stop");
    let last = &chunks[5];
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["completion_tokens"], 3);
    assert_eq!(last["usage"]["prompt_tokens"], 4);
    assert_eq!(last["usage"]["total_tokens"], 7);
    assert_eq!(last["object"], "chat.completion.chunk");
}

#[tokio::test]
async fn injected_statuses_use_openai_errors() {
    let m = start().await;
    let resp = chat(&m, simple_body())
        .header("x-mock-status", "429")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["retry-after"], "1");
    assert_eq!(error_of(resp).await["code"], "rate_limit_exceeded");

    for (status, kind) in [
        (500, "server_error"),
        (503, "server_error"),
        (400, "invalid_request_error"),
    ] {
        let resp = chat(&m, stream_body(true))
            .header("x-mock-status", status.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), status);
        assert!(resp.headers().get("retry-after").is_none());
        assert_eq!(error_of(resp).await["type"], kind);
    }

    // The key is still checked first, as a real provider would.
    let resp = client()
        .post(format!("{}/v1/chat/completions", m.base_url()))
        .bearer_auth("wrong")
        .header("x-mock-status", "500")
        .json(&simple_body())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    // Non-error statuses and garbage are ignored rather than obeyed.
    for v in ["200", "abc"] {
        let resp = chat(&m, simple_body())
            .header("x-mock-status", v)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn delay_holds_back_response_headers() {
    let m = start().await;
    let started = Instant::now();
    let resp = chat(&m, stream_body(false))
        .header("x-mock-delay-ms", "300")
        .send()
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn event_delay_spaces_out_events() {
    let m = start().await;
    let started = Instant::now();
    let resp = chat(&m, stream_body(false))
        .header("x-mock-words", "2")
        .header("x-mock-event-delay-ms", "100")
        .send()
        .await
        .unwrap();
    let payloads = read_events(resp).await;
    // role + 2 words + finish + [DONE] = 5 events, 4 gaps
    assert_eq!(payloads.len(), 5);
    assert!(started.elapsed() >= Duration::from_millis(400));
}

#[tokio::test]
async fn pause_delays_last_event_after_first_reached_client() {
    let m = start().await;
    let mut resp = chat(&m, stream_body(true))
        .header("x-mock-words", "3")
        .header("x-mock-pause-after", "1")
        .header("x-mock-pause-ms", "1000")
        .send()
        .await
        .unwrap();
    let first = resp.chunk().await.unwrap().expect("a first chunk");
    let first_seen = mock::now_ms();
    assert!(String::from_utf8_lossy(&first).contains(r#""role":"assistant""#));
    let mut rest = Vec::new();
    while let Some(c) = resp.chunk().await.unwrap() {
        rest.extend_from_slice(&c);
    }
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&first),
        String::from_utf8_lossy(&rest)
    );
    assert_eq!(sse_payloads(&all).last().unwrap(), "[DONE]");

    let rec = wait_for_last_event(&m).await;
    let last_sent = rec.last_event_ms.unwrap();
    assert!(
        last_sent >= first_seen + 500,
        "last event sent at {last_sent}, first seen at {first_seen}"
    );
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

#[tokio::test]
async fn cut_aborts_stream_without_terminator() {
    let m = start().await;
    let mut resp = chat(&m, stream_body(false))
        .header("x-mock-words", "5")
        .header("x-mock-cut-after", "3")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut got = Vec::new();
    let err = loop {
        match resp.chunk().await {
            Ok(Some(c)) => got.extend_from_slice(&c),
            Ok(None) => panic!("stream ended cleanly; expected an abort"),
            Err(e) => break e,
        }
    };
    assert!(
        err.is_body() || err.is_decode() || err.is_request(),
        "{err:?}"
    );
    let payloads = sse_payloads(&String::from_utf8(got).unwrap());
    assert_eq!(payloads.len(), 3, "exactly the events before the cut");
    assert!(!payloads.iter().any(|p| p == "[DONE]"));

    // The server stays healthy for the next request.
    let resp = chat(&m, simple_body()).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn cut_after_zero_aborts_before_any_event() {
    let m = start().await;
    let resp = chat(&m, stream_body(false))
        .header("x-mock-cut-after", "0")
        .send()
        .await
        .unwrap();
    assert!(resp.text().await.is_err());
}

#[tokio::test]
async fn records_requests_for_http_and_in_process_readers() {
    let m = start().await;
    let resp = chat(&m, simple_body())
        .header("X-Custom-Thing", "Value-1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let _ = client()
        .get(format!("{}/v1/models?limit=5", m.base_url()))
        .send()
        .await
        .unwrap();

    let recs = m.recorder.requests();
    assert_eq!(recs.len(), 2);
    let r = &recs[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/v1/chat/completions");
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert!(r
        .headers
        .contains(&("x-custom-thing".into(), "Value-1".into())));
    assert!(r.headers.iter().all(|(n, _)| *n == n.to_lowercase()));
    assert_eq!(r.json().unwrap(), simple_body());
    assert!(r.received_ms > 1_700_000_000_000);
    assert_eq!(
        r.last_event_ms, None,
        "non-streamed responses have no last event"
    );
    assert_eq!(recs[1].method, "GET");
    assert_eq!(recs[1].path, "/v1/models?limit=5");
    assert!(recs[1].id > r.id);

    // Over HTTP, without a key; and the log endpoint itself is not logged.
    let url = format!("{}/__mock/requests", m.base_url());
    let listed: Value = client()
        .get(&url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["path"], "/v1/chat/completions");
    assert!(listed[0]["headers"]
        .as_array()
        .unwrap()
        .contains(&json!(["x-custom-thing", "Value-1"])));
    assert_eq!(listed[0]["body"], simple_body().to_string());
    assert!(listed[0]["received_ms"].is_u64());
    assert_eq!(listed[0]["last_event_ms"], Value::Null);
    let back: Vec<RecordedRequest> = serde_json::from_value(Value::Array(listed.clone())).unwrap();
    assert_eq!(back, recs);

    let resp = client().delete(&url).send().await.unwrap();
    assert!(resp.status().is_success());
    assert!(m.recorder.is_empty());
    let listed: Value = client()
        .get(&url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed, json!([]));

    chat(&m, simple_body()).send().await.unwrap();
    m.recorder.clear();
    assert!(m.recorder.requests().is_empty());
}

#[tokio::test]
async fn streamed_request_records_last_event_time() {
    let m = start().await;
    let before = mock::now_ms();
    let resp = chat(&m, stream_body(false)).send().await.unwrap();
    read_events(resp).await;
    let rec = wait_for_last_event(&m).await;
    let at = rec.last_event_ms.unwrap();
    assert!(at >= rec.received_ms && at >= before && at <= mock::now_ms());
}

#[tokio::test]
async fn record_log_is_bounded() {
    let m = start().await;
    let c = client();
    let url = format!("{}/v1/nope", m.base_url());
    for _ in 0..mock::RECORD_CAPACITY + 5 {
        c.get(&url).send().await.unwrap();
    }
    let recs = m.recorder.requests();
    assert_eq!(recs.len(), mock::RECORD_CAPACITY);
    assert_eq!(recs[0].id, 5, "oldest entries are evicted first");
}

#[tokio::test]
async fn models_list_requires_key() {
    let m = start().await;
    let url = format!("{}/v1/models", m.base_url());
    let resp = client().get(&url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    let resp = client().get(&url).bearer_auth(KEY).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["object"], "list");
    let data = v["data"].as_array().unwrap();
    assert!(data.len() >= 2);
    for model in data {
        assert_eq!(model["object"], "model");
        assert!(
            model["id"].is_string() && model["created"].is_u64() && model["owned_by"].is_string()
        );
    }
}

#[tokio::test]
async fn unknown_v1_path_is_openai_404() {
    let m = start().await;
    let resp = client()
        .post(format!("{}/v1/embeddingz", m.base_url()))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        error_of(resp).await["message"],
        "Invalid URL (POST /v1/embeddingz)"
    );
    assert_eq!(m.recorder.len(), 1);
}

#[tokio::test]
async fn invalid_name_is_rejected_at_start() {
    let err = mock::spawn(MockConfig {
        api_key: KEY.into(),
        name: "bad\nname".into(),
        guardrail_key: None,
    })
    .await
    .err()
    .expect("newline in name must be rejected");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

#[tokio::test]
async fn shutdown_stops_serving() {
    let m = start().await;
    let url = format!("{}/v1/models", m.base_url());
    m.shutdown().await.unwrap();
    assert!(client().get(&url).send().await.is_err());
}

#[test]
fn redaction_keeps_only_last_four() {
    assert_eq!(mock::redact("sk-abcdef1234"), "*********1234");
    assert_eq!(mock::redact("abcd"), "****");
    assert_eq!(mock::redact(""), "");
}

mod binary {
    use std::path::PathBuf;
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    fn unique_path(tag: &str) -> PathBuf {
        std::env::temp_dir().join(format!(
            "chokepoint-mock-test-{}-{tag}-{}",
            std::process::id(),
            chokepoint_dev::mock::now_ms()
        ))
    }

    fn spawn(args: &[&str]) -> Child {
        Command::new(env!("CARGO_BIN_EXE_chokepoint-mock"))
            .args(args)
            .env("CHOKEPOINT_MOCK_API_KEY", "sk-bin-key")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    fn wait_for_file(path: &PathBuf) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(s) = std::fs::read_to_string(path) {
                return s;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("addr file never appeared");
    }

    #[tokio::test]
    async fn binary_writes_addr_file_serves_and_exits_on_sigterm() {
        let addr_file = unique_path("addr");
        let child = spawn(&[
            "--listen",
            "127.0.0.1:0",
            "--name",
            "bin-mock",
            "--addr-file",
            addr_file.to_str().unwrap(),
        ]);
        let addr = wait_for_file(&addr_file);
        let _ = std::fs::remove_file(&addr_file);
        assert!(
            addr.starts_with("127.0.0.1:") && !addr.ends_with(":0"),
            "{addr}"
        );

        let resp = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(format!("http://{addr}/v1/models"))
            .bearer_auth("sk-bin-key")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["x-mock-name"], "bin-mock");

        let killed = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "exit after SIGTERM: {:?}", out.status);
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(log.contains("GET /v1/models 200"), "{log}");
        assert!(!log.contains("sk-bin-key"), "key leaked to log: {log}");
    }

    #[test]
    fn binary_reports_busy_address() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap().to_string();
        let out = spawn(&["--listen", &addr]).wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("cannot listen on {addr}: address already in use")),
            "{err}"
        );
    }

    #[test]
    fn binary_requires_api_key() {
        let out = Command::new(env!("CARGO_BIN_EXE_chokepoint-mock"))
            .env_remove("CHOKEPOINT_MOCK_API_KEY")
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("--api-key"));
    }
}
