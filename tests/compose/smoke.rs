//! Smoke test of chokepoint on real containers (envoy/docker-compose.yml): the stack that
//! `scripts/test-compose` builds, starts and describes in the environment:
//!
//! - `CHOKEPOINT_COMPOSE_GATEWAY`      the gateway's URL (Envoy's published port)
//! - `CHOKEPOINT_COMPOSE_POLICY`       the policy service's admin listener (admin API)
//! - `CHOKEPOINT_COMPOSE_ADMIN_TOKEN`  the policy service's admin token
//! - `CHOKEPOINT_COMPOSE_KEY_FILE`     the dev key whose JWKS the idp service serves
//! - `CHOKEPOINT_COMPOSE_UUID_SALT`    the salt Envoy derives user ids with
//! - `CHOKEPOINT_COMPOSE_RATE_LIMIT`   the policy service's --requests-per-window
//!
//! Every test is `#[ignore]`d, so a plain `cargo test` skips them; the script runs them
//! with `--ignored`. Without the environment they fail, naming the missing variable.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chokepoint_dev::devtoken::{DevKey, TokenSpec, DEFAULT_ISSUER};
use serde_json::{json, Value};

struct Env {
    gateway: String,
    policy: String,
    admin_token: String,
    key: DevKey,
    salt: String,
    rate_limit: u64,
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run these tests through scripts/test-compose")
    })
}

fn env() -> Env {
    let key_file = var("CHOKEPOINT_COMPOSE_KEY_FILE");
    Env {
        gateway: var("CHOKEPOINT_COMPOSE_GATEWAY"),
        policy: var("CHOKEPOINT_COMPOSE_POLICY"),
        admin_token: var("CHOKEPOINT_COMPOSE_ADMIN_TOKEN"),
        key: DevKey::load(&key_file).unwrap_or_else(|e| panic!("{e}")),
        salt: var("CHOKEPOINT_COMPOSE_UUID_SALT"),
        rate_limit: var("CHOKEPOINT_COMPOSE_RATE_LIMIT")
            .parse()
            .expect("CHOKEPOINT_COMPOSE_RATE_LIMIT is a number"),
    }
}

/// A subject no other test (nor an earlier run against the same Redis) has used, so each
/// test has its own rate limit and ledger.
fn subject(name: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("compose-{name}-{}-{nanos}", std::process::id())
}

fn token(env: &Env, subject: &str) -> String {
    env.key.mint(
        &TokenSpec::new(subject)
            .with_tenant("acme")
            .with_groups(["ml"]),
    )
}

fn chat(stream: bool) -> Value {
    json!({
        "model": "gpt-4o-mini",
        "stream": stream,
        "messages": [{"role": "user", "content": "Say hello from the containers"}],
    })
}

async fn post_chat(env: &Env, token: Option<&str>, body: &Value) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", env.gateway))
        .json(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.expect("the gateway answers")
}

/// Asserts an OpenAI-shaped error with `status` and returns its `code`.
async fn error_code(resp: reqwest::Response, status: u16) -> String {
    assert_eq!(resp.status().as_u16(), status, "status");
    let ct = resp.headers().get("content-type").cloned();
    assert_eq!(
        ct.as_ref().and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    let v: Value = resp.json().await.expect("JSON error body");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{v}"
    );
    assert!(v["error"]["type"].is_string(), "{v}");
    v["error"]["code"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
#[ignore = "needs the compose stack: scripts/test-compose"]
async fn chat_completion_through_the_containers() {
    let env = env();
    let t = token(&env, &subject("chat"));
    let resp = post_chat(&env, Some(&t), &chat(false)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()
            .get("x-chokepoint-provider")
            .and_then(|v| v.to_str().ok()),
        Some("openai"),
        "the provider that served"
    );
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion", "{v}");
    assert!(v["choices"][0]["message"]["content"].is_string(), "{v}");
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap_or(0) > 0, "{v}");
    assert!(
        v["usage"]["completion_tokens"].as_u64().unwrap_or(0) > 0,
        "{v}"
    );
}

#[tokio::test]
#[ignore = "needs the compose stack: scripts/test-compose"]
async fn streamed_completion_through_the_containers() {
    let env = env();
    let t = token(&env, &subject("stream"));
    let resp = post_chat(&env, Some(&t), &chat(true)).await;
    assert_eq!(resp.status(), 200);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/event-stream"), "{ct}");
    let text = resp.text().await.unwrap();
    let data: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert!(data.len() >= 3, "a few events: {text}");
    assert_eq!(data.last(), Some(&"[DONE]"), "{text}");
    let events: Vec<Value> = data
        .iter()
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect();
    assert!(
        events
            .iter()
            .all(|e| e["object"] == "chat.completion.chunk"),
        "{text}"
    );
    // The gateway asked for the final usage chunk (stream_options.include_usage).
    let usage = events
        .iter()
        .rev()
        .find(|e| e["usage"].is_object())
        .unwrap_or_else(|| panic!("no usage chunk: {text}"));
    assert!(
        usage["usage"]["completion_tokens"].as_u64().unwrap_or(0) > 0,
        "{usage}"
    );
}

#[tokio::test]
#[ignore = "needs the compose stack: scripts/test-compose"]
async fn request_without_token_is_refused() {
    let env = env();
    let resp = post_chat(&env, None, &chat(false)).await;
    assert!(
        resp.headers().contains_key("www-authenticate"),
        "{:?}",
        resp.headers()
    );
    assert_eq!(error_code(resp, 401).await, "missing");
}

#[tokio::test]
#[ignore = "needs the compose stack: scripts/test-compose"]
async fn over_the_rate_limit_is_429() {
    let env = env();
    let t = token(&env, &subject("limit"));
    for i in 0..env.rate_limit {
        let resp = post_chat(&env, Some(&t), &chat(false)).await;
        assert_eq!(
            resp.status(),
            200,
            "request {} of {}",
            i + 1,
            env.rate_limit
        );
    }
    let resp = post_chat(&env, Some(&t), &chat(false)).await;
    let retry: u64 = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=3600).contains(&retry), "retry-after {retry}");
    assert_eq!(error_code(resp, 429).await, "rate_limited");
}

#[tokio::test]
#[ignore = "needs the compose stack: scripts/test-compose"]
async fn usage_reaches_the_ledger() {
    let env = env();
    let sub = subject("ledger");
    let t = token(&env, &sub);
    let (mut input, mut output) = (0, 0);
    for stream in [false, true] {
        let resp = post_chat(&env, Some(&t), &chat(stream)).await;
        assert_eq!(resp.status(), 200);
        let text = resp.text().await.unwrap();
        let usage = if stream {
            text.lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .filter_map(|d| serde_json::from_str::<Value>(d).ok())
                .find(|e| e["usage"].is_object())
                .map(|e| e["usage"].clone())
        } else {
            serde_json::from_str::<Value>(&text)
                .ok()
                .map(|v| v["usage"].clone())
        }
        .unwrap_or_else(|| panic!("no usage in {text}"));
        input += usage["prompt_tokens"].as_u64().unwrap();
        output += usage["completion_tokens"].as_u64().unwrap();
    }

    // The filter delivers usage records in batches (flush_ms 200); wait for both.
    let user = chokepoint_filter::identity::pseudonym::user_uuid(
        env.salt.as_bytes(),
        DEFAULT_ISSUER,
        &sub,
    );
    let url = format!(
        "{}/v1/admin/usage?scope=user&id={user}&period={}",
        env.policy,
        chokepoint_dev::utc::today()
    );
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    let ledger = loop {
        let resp = client
            .get(&url)
            .bearer_auth(&env.admin_token)
            .send()
            .await
            .expect("the policy service answers");
        assert_eq!(resp.status(), 200, "admin usage read");
        let l: Value = resp.json().await.unwrap();
        if l["requests"] == 2 {
            break l;
        }
        assert!(Instant::now() < deadline, "ledger never counted 2: {l}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(ledger["input_tokens"], input, "{ledger}");
    assert_eq!(ledger["output_tokens"], output, "{ledger}");
    assert!(ledger["cost_micros"].as_u64().unwrap_or(0) > 0, "{ledger}");

    // The admin API is closed without the token.
    let resp = client.get(&url).send().await.unwrap();
    assert!(
        [401, 403].contains(&resp.status().as_u16()),
        "{}",
        resp.status()
    );
}
