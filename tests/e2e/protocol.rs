//! Protocol edges through the real Envoy: HTTP/2 cleartext clients, compressed request
//! bodies (refused in the API's error shape), and
//! clients that send slowly or stop sending, cut by Envoy's timeouts without ever holding
//! a budget reservation.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use chokepoint_render::overrides::Override;
use serde_json::{json, Value};

use crate::support::{self, error_code, upstream_saw};

#[tokio::test]
async fn h2c_gzip_and_stalled_clients() {
    let stack = support::start("protocol", |o| {
        o.overrides
            .push(Override::new("gateway.request_timeout_ms", 1500));
    })
    .await;
    let url = format!("{}/v1/chat/completions", stack.gateway_url);
    let token = support::token(&stack, "protocol-user");

    // HTTP/2 with prior knowledge (h2c), plain and streamed.
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let resp = h2
        .post(&url)
        .bearer_auth(&token)
        .json(&support::chat(false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    let resp = h2
        .post(&url)
        .bearer_auth(&token)
        .json(&support::chat(true))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(text.contains("data: [DONE]"), "{text}");

    // Compressed bodies are refused in the API's shape (no SDK compresses requests);
    // the provider never sees them.
    let json = serde_json::to_vec(
        &json!({"model": "default", "messages": [{"role": "user", "content": "zipped"}]}),
    )
    .unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&json).unwrap();
    let zipped = gz.finish().unwrap();
    for (encoding, body) in [("gzip", zipped), ("br", vec![0x1b, 0x03, 0x00])] {
        let resp = reqwest::Client::new()
            .post(&url)
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .header("content-encoding", encoding)
            .header("x-test-case", "encoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            error_code(resp, 415).await,
            "unsupported_content_encoding",
            "{encoding}"
        );
    }
    assert!(upstream_saw(&stack, "encoded").await.is_empty());

    // A client that stops mid-body: Envoy answers 408 once request_timeout_ms (1.5 s here)
    // passes, and the policy service was never asked (no reservation to leak).
    let before = support::policy_metric(&stack, "chokepoint_policy_authorize_total{").await;
    let addr = stack.gateway_url.trim_start_matches("http://").to_string();
    let t = token.clone();
    let (status, took) = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let head = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer {t}\r\n\
             content-type: application/json\r\ncontent-length: 200\r\n\r\n{{\"model\":\"gpt-4o-mini\","
        );
        let start = Instant::now();
        s.write_all(head.as_bytes()).unwrap();
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).unwrap_or(0);
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        (text.split(' ').nth(1).unwrap_or("").to_string(), start.elapsed())
    })
    .await
    .unwrap();
    assert_eq!(status, "408", "a stalled upload is cut");
    assert!(
        took >= Duration::from_millis(1400) && took < Duration::from_secs(8),
        "cut after {took:?}"
    );

    // A client that never finishes its headers is cut too (the connection closes).
    let addr = stack.gateway_url.trim_start_matches("http://").to_string();
    let closed = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\n")
            .unwrap();
        let start = Instant::now();
        let mut buf = [0u8; 512];
        let _ = s.read(&mut buf);
        start.elapsed()
    })
    .await
    .unwrap();
    assert!(
        closed < Duration::from_secs(8),
        "headers never finished, still open after {closed:?}"
    );
    assert_eq!(
        support::policy_metric(&stack, "chokepoint_policy_authorize_total{").await,
        before,
        "stalled clients never reached the policy service"
    );
    support::assert_no_wasm_panic(&stack);
}
