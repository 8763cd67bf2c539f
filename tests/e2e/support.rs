//! Starting a stack for a test, and reading what the mock provider saw.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use chokepoint_dev::devtoken::{DevKey, TokenSpec, DEFAULT_ISSUER};
use chokepoint_dev::stack::{Stack, StackOptions};
use serde_json::Value;

pub const LIMIT: u64 = 5;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A stack of its own for one test: fresh run folder, fresh dev key, any free port.
pub async fn start(name: &str, tweak: impl FnOnce(&mut StackOptions)) -> Stack {
    match try_start(name, tweak).await {
        Ok(s) => s,
        Err(e) => panic!("stack did not start: {e}"),
    }
}

/// [`start`], for a test that expects the stack to fail: the error names why, then
/// every component's log.
pub async fn try_start(name: &str, tweak: impl FnOnce(&mut StackOptions)) -> Result<Stack, String> {
    static N: AtomicU32 = AtomicU32::new(0);
    let run_dir = std::env::temp_dir().join(format!(
        "chokepoint-e2e-{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&run_dir);
    let mut opts = StackOptions::defaults(&root(), &run_dir, DevKey::generate_with_derived_kid());
    opts.requests_per_window = LIMIT;
    opts.window_secs = 60;
    tweak(&mut opts);
    Stack::start(opts).await
}

/// Marks the mock's OpenAI providers (`gpt-4o-mini`'s fallback chain) as the
/// organisation's own, the one kind of upstream that receives the caller's identity
/// headers (tests that read them at the mock).
pub fn internal_openai(o: &mut chokepoint_dev::stack::StackOptions) {
    for name in ["openai", "openai-backup"] {
        o.overrides
            .push(chokepoint_render::overrides::Override::new(
                format!("providers[name={name}].internal"),
                true,
            ));
    }
}

/// The UUID the gateway must derive for `subject` from the dev issuer.
pub fn uuid_of(stack: &Stack, subject: &str) -> String {
    chokepoint_filter::identity::pseudonym::user_uuid(
        stack.opts.salt.as_bytes(),
        DEFAULT_ISSUER,
        subject,
    )
}

pub fn token(stack: &Stack, subject: &str) -> String {
    stack.token(
        &TokenSpec::new(subject)
            .with_tenant("acme")
            .with_groups(["ml"]),
    )
}

/// Fails the test when the filter's VM trapped (a Rust panic logs "panicked at").
pub fn assert_no_wasm_panic(stack: &Stack) {
    let log = std::fs::read_to_string(stack.opts.run_dir.join("envoy.log")).unwrap_or_default();
    let panics: Vec<&str> = log.lines().filter(|l| l.contains("panicked at")).collect();
    assert!(
        panics.is_empty(),
        "the filter panicked:\n{}",
        panics.join("\n")
    );
}

/// Requests the mock provider recorded with `x-test-case: case`.
pub async fn upstream_saw(stack: &Stack, case: &str) -> Vec<Value> {
    let url = format!(
        "{}/__mock/requests",
        stack.mock_url.as_deref().expect("mock")
    );
    let all: Vec<Value> = reqwest::get(url)
        .await
        .expect("mock log")
        .json()
        .await
        .expect("json");
    all.into_iter()
        .filter(|r| header(r, "x-test-case").as_deref() == Some(case))
        .collect()
}

/// A header of a recorded request; `None` when absent.
pub fn header(recorded: &Value, name: &str) -> Option<String> {
    recorded["headers"]
        .as_array()?
        .iter()
        .find(|h| h[0] == name)
        .and_then(|h| h[1].as_str().map(str::to_owned))
}

pub fn chat(stream: bool) -> Value {
    serde_json::json!({
        "model": "gpt-4o-mini",
        "stream": stream,
        "messages": [{"role": "user", "content": "Say hello"}],
    })
}

/// Asserts an OpenAI-shaped error and returns its `code`.
pub async fn error_code(resp: reqwest::Response, status: u16) -> String {
    let (_, code) = error_shape(resp, status).await;
    code
}

/// Which API's error shape an error response has (`openai`, `anthropic`, `gemini`), and
/// the gateway's failure class in it, after checking the fields that API's SDK reads.
pub async fn error_shape(resp: reqwest::Response, status: u16) -> (&'static str, String) {
    assert_eq!(resp.status().as_u16(), status, "status");
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or("").to_string());
    assert_eq!(ct.as_deref(), Some("application/json"));
    let v: Value = resp.json().await.expect("JSON error body");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{v}"
    );
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    if v["type"] == "error" {
        assert!(v["error"]["type"].is_string(), "{v}");
        ("anthropic", text(&v["error"]["code"]))
    } else if v["error"]["status"].is_string() {
        assert_eq!(v["error"]["code"], u64::from(status), "{v}");
        ("gemini", text(&v["error"]["details"][0]["reason"]))
    } else {
        assert!(v["error"]["type"].is_string(), "{v}");
        ("openai", text(&v["error"]["code"]))
    }
}

pub use chokepoint_dev::utc::today;

/// A policy-service admin API answer (`path_and_query` after its admin listener's URL).
pub async fn admin_get(stack: &Stack, path_and_query: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{}{path_and_query}", stack.policy_admin_url))
        .bearer_auth(&stack.opts.admin_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A user's spend as the policy service reports it (budgets, usage).
pub async fn user_spend(stack: &Stack, user: &str) -> Value {
    admin_get(stack, &format!("/v1/admin/spend?scope_kind=user&id={user}")).await
}

/// The sum of the policy service's metrics lines that start with `prefix`.
pub async fn policy_metric(stack: &Stack, prefix: &str) -> u64 {
    let text = reqwest::get(format!("{}/metrics", stack.policy_admin_url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// The policy service's ledger for one scope, today.
pub async fn ledger(stack: &Stack, scope: &str, id: &str) -> Value {
    let day = today();
    admin_get(
        stack,
        &format!("/v1/admin/usage?scope={scope}&id={id}&period={day}"),
    )
    .await
}

/// The access-log record of one request, waiting for Envoy's log flush.
pub async fn access_record(stack: &Stack, request_id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = std::fs::read_to_string(stack.usage_log()).unwrap_or_default();
        let found: Vec<Value> = log
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|r| r["request_id"] == request_id)
            .collect();
        if let [record] = found.as_slice() {
            check_record(record);
            return record.clone();
        }
        assert!(
            found.len() < 2,
            "{} access-log records for {request_id}",
            found.len()
        );
        assert!(
            Instant::now() < deadline,
            "no access-log record for {request_id}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A record as Envoy logged it meets the contract's schema, and so does what it publishes
/// (the OpenTelemetry attributes and the Parquet row it becomes).
pub fn check_record(record: &Value) {
    use chokepoint_contract::validate::{check, Schema};
    if let Err(e) = check(Schema::UsageRecord, record) {
        panic!("{e}\nrecord: {record}");
    }
    let parsed: chokepoint_contract::UsageRecord =
        serde_json::from_value(record.clone()).expect("a record the schema passed reads");
    let published = chokepoint_contract::published::to_json(&parsed);
    if let Err(e) = check(Schema::PublishedRecord, &published) {
        panic!("{e}\npublished: {published}");
    }
}

/// Waits until the ledger shows `requests` for this user, then returns it.
pub async fn ledger_settled(stack: &Stack, user: &str, requests: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let l = ledger(stack, "user", user).await;
        if l["requests"].as_u64() == Some(requests) {
            return l;
        }
        if Instant::now() > deadline {
            let metrics = reqwest::get(format!("{}/metrics", stack.policy_admin_url))
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let stats = reqwest::get(format!("{}/stats?filter=chokepoint.usage", stack.admin_url))
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            panic!("ledger for {user}: {l}\npolicy metrics:\n{metrics}\nenvoy stats:\n{stats}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
