//! LiteLLM as the benchmark's peer gateway (`perf/src/peers.rs`) in front of the mock
//! provider: one plain and one streamed chat completion through it. Bench only, so
//! ignored by default; run it with
//! `cargo test -p chokepoint-perf --test litellm_peer -- --ignored --nocapture`
//! after `scripts/lib.sh`'s `ensure_litellm` (or with CHOKEPOINT_LITELLM set).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chokepoint_dev::mock::{self, MockConfig};
use chokepoint_perf::peers::{self, LITELLM_MASTER_KEY, LITELLM_STOP_GRACE};
use serde_json::{json, Value};

const UPSTREAM_KEY: &str = "sk-litellm-peer-test-upstream";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("chokepoint-litellm-peer-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn body(stream: bool) -> Value {
    json!({
        "model": "gpt-4o-mini",
        "max_tokens": 64,
        "stream": stream,
        "messages": [{"role": "user", "content": "Benchmark me."}],
    })
}

/// True while any process of the group `pgid` (LiteLLM's supervisor and workers) lives.
fn group_alive(pgid: u32) -> bool {
    unsafe { libc::kill(-(pgid as i32), 0) == 0 }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "bench-only peer: needs LiteLLM from PyPI in .venv-bench (scripts/bench --peers)"]
async fn litellm_serves_plain_and_streamed_chat_through_the_mock() {
    let litellm = std::env::var_os("CHOKEPOINT_LITELLM")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".venv-bench/bin/litellm"));
    let dir = run_dir();
    // The mock in this process: the peer's upstream, as the benchmark's is.
    let mock = mock::spawn(MockConfig {
        api_key: UPSTREAM_KEY.into(),
        name: "openai-mock".into(),
        guardrail_key: None,
    })
    .await
    .expect("the mock starts");
    let mock_url = mock.base_url();

    let t = Instant::now();
    let (base, mut proc) =
        peers::start_litellm(&litellm, &dir, &format!("{mock_url}/v1"), UPSTREAM_KEY, 2)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    println!("litellm ready at {base} after {:?}", t.elapsed());
    let pgid = proc.pid().unwrap();

    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let chat = |stream: bool| {
        client
            .post(format!("{base}/v1/chat/completions"))
            .bearer_auth(LITELLM_MASTER_KEY)
            .json(&body(stream))
    };

    // Without the master key: refused.
    let r = client
        .post(format!("{base}/v1/chat/completions"))
        .json(&body(false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "{}", r.text().await.unwrap());

    // Plain.
    let mut plain_ms = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let r = chat(false).send().await.unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        plain_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["object"], "chat.completion", "{v}");
        let content = v["choices"][0]["message"]["content"].as_str().unwrap();
        assert_eq!(content.split_whitespace().count(), 8, "{v}");
        assert_eq!(v["usage"]["completion_tokens"], 8, "{v}");
    }
    println!("plain: {plain_ms:.1?} ms");

    // Streamed: 40 words (the x-mock-words header reaches the mock through LiteLLM).
    let mut first_ms = Vec::new();
    let mut total_ms = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let mut r = chat(true)
            .header("x-mock-words", "40")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ct.starts_with("text/event-stream"), "{ct}");
        let mut text = String::new();
        let mut first = None;
        while let Some(chunk) = r.chunk().await.unwrap() {
            text.push_str(std::str::from_utf8(&chunk).unwrap());
            if first.is_none() && text.contains("data: ") {
                first = Some(t.elapsed());
            }
        }
        first_ms.push(first.unwrap().as_secs_f64() * 1000.0);
        total_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        let events: Vec<&str> = text
            .split("\n\n")
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(|e| e.strip_prefix("data: ").unwrap_or_else(|| panic!("{e:?}")))
            .collect();
        assert_eq!(events.last(), Some(&"[DONE]"), "{text}");
        let chunks: Vec<Value> = events[..events.len() - 1]
            .iter()
            .map(|e| serde_json::from_str(e).unwrap())
            .collect();
        let content: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(content.split_whitespace().count(), 40, "{text}");
        assert!(chunks.len() >= 41, "{} chunks", chunks.len());
        assert!(chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk"));
    }
    println!("stream: first event {first_ms:.1?} ms, whole {total_ms:.1?} ms");

    // The mock saw LiteLLM's calls with the upstream key (not the client's).
    let log: Value = client
        .get(format!("{mock_url}/__mock/requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let chats: Vec<&Value> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["path"] == "/v1/chat/completions")
        .collect();
    assert!(chats.len() >= 11, "{} chat requests upstream", chats.len());
    for r in chats {
        let auth = r["headers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h[0] == "authorization")
            .unwrap();
        assert_eq!(auth[1], format!("Bearer {UPSTREAM_KEY}"));
    }

    // A clean stop leaves no process of LiteLLM's group behind.
    let t = Instant::now();
    proc.stop(LITELLM_STOP_GRACE);
    let deadline = Instant::now() + Duration::from_secs(5);
    while group_alive(pgid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("litellm stopped after {:?}", t.elapsed());
    assert!(!group_alive(pgid), "litellm's workers outlived it");
    let _ = std::fs::remove_dir_all(&dir);
}
