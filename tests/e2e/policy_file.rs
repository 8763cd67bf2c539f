//! The policy file drives the running gateway: an edit applies live through ECDS with
//! requests in flight completing, an invalid edit is refused while the running policy
//! keeps serving, and the providers' own SDK variables move a provider to another server.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use chokepoint_dev::stack::process::{self, Managed};
use chokepoint_dev::stack::random_hex;
use serde_json::{json, Value};

use crate::support::{self, access_record, error_code, header, ledger_settled, upstream_saw};

fn policy_copy(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("chokepoint-policy-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("chokepoint.yaml");
    std::fs::copy(support::root().join("envoy/chokepoint.yaml"), &path).unwrap();
    std::fs::copy(
        support::root().join("envoy/prices.yaml"),
        dir.join("prices.yaml"),
    )
    .unwrap();
    path
}

fn edit(path: &Path, old: &str, new: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(old), "policy file lacks {old:?}");
    std::fs::write(path, text.replacen(old, new, 1)).unwrap();
}

async fn messages(stack_url: &str, token: &str, model: &str, case: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{stack_url}/v1/messages"))
        .bearer_auth(token)
        .header("anthropic-version", "2023-06-01")
        .header("x-test-case", case)
        .json(&json!({"model": model, "max_tokens": 32, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_policy_edit_applies_live_with_requests_in_flight() {
    let file = policy_copy("live");
    let f = file.clone();
    let mut stack = support::start("live-policy", move |o| o.policy_file = f).await;
    let envoy_pid = stack.envoy_pid();
    let token = support::token(&stack, "live");
    let gw = stack.gateway_url.clone();

    let resp = messages(&gw, &token, "team-model", "before").await;
    assert_eq!(error_code(resp, 404).await, "model_not_found");

    // A stream of about three seconds, started before the swap.
    let (t, g) = (token.clone(), gw.clone());
    let in_flight = tokio::spawn(async move {
        let resp = reqwest::Client::new()
            .post(format!("{g}/v1/chat/completions"))
            .bearer_auth(&t)
            .header("x-mock-words", "60")
            .header("x-mock-event-delay-ms", "50")
            .json(&support::chat(true))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    let before = stack.ecds_updates().await.unwrap();
    edit(
        &file,
        "  routes:\n",
        "  routes:\n    - model: team-model\n      providers: [anthropic]\n",
    );
    // A dollar budget applies: the new model needs a price, or the edit is refused.
    let prices = file.with_file_name("prices.yaml");
    edit(
        &prices,
        "models:\n",
        "models:\n  team-model: {input_per_mtok_usd: \"1\", output_per_mtok_usd: \"2\"}\n",
    );
    edit(&file, "default: gpt-4.1-mini", "default: gpt-4o-mini");
    let swapped_at = Instant::now();
    stack.reload_policy(&[]).unwrap();
    while stack.ecds_updates().await.unwrap() <= before {
        assert!(
            swapped_at.elapsed() < Duration::from_secs(10),
            "Envoy never took the new filter config"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "new policy live {} ms after the rename",
        swapped_at.elapsed().as_millis()
    );

    // The new route and the new alias target, from the same Envoy process.
    let resp = messages(&gw, &token, "team-model", "after").await;
    assert_eq!(resp.status(), 200);
    let resp = reqwest::Client::new()
        .post(format!("{gw}/v1/chat/completions"))
        .bearer_auth(&token)
        .header("x-test-case", "alias-after")
        .json(&json!({"model": "default", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = upstream_saw(&stack, "alias-after").await;
    let sent: Value = serde_json::from_str(seen[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(sent["model"], "gpt-4o-mini");
    assert_eq!(stack.envoy_pid(), envoy_pid, "no restart");

    // The stream that straddled the swap finished whole.
    let (status, body) = in_flight.await.unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("data: [DONE]"), "stream cut: {body}");
    assert!(
        swapped_at.elapsed() > Duration::from_millis(500),
        "the stream must straddle the swap"
    );

    // A broken edit is refused; the running policy keeps serving.
    edit(&file, "providers: [gemini]", "providers: [gemnii]");
    let err = stack.reload_policy(&[]).unwrap_err();
    assert!(err.contains("models.routes[6].providers"), "{err}");
    let resp = messages(&gw, &token, "team-model", "after-bad-edit").await;
    assert_eq!(resp.status(), 200);
}

/// A second OpenAI-compatible server, as `OPENAI_BASE_URL` would name one.
fn elsewhere(dir: &Path, key: &str) -> (Managed, String) {
    let addr_file = dir.join("elsewhere.addr");
    let mut cmd = Command::new(support::root().join("target/debug/chokepoint-mock"));
    cmd.args([
        "--listen",
        "127.0.0.1:0",
        "--name",
        "elsewhere",
        "--addr-file",
    ])
    .arg(&addr_file)
    .env("CHOKEPOINT_MOCK_API_KEY", key);
    let mut proc = Managed::spawn("elsewhere", cmd, &dir.join("elsewhere.log")).unwrap();
    let addr = process::wait_for_file(&addr_file, &mut proc, Duration::from_secs(10)).unwrap();
    (proc, addr)
}

#[tokio::test]
async fn openai_base_url_moves_openai_to_another_server() {
    let dir = std::env::temp_dir().join(format!("chokepoint-elsewhere-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = format!("sk-elsewhere-{}", random_hex(8));
    let (_server, addr) = elsewhere(&dir, &key);
    let env = vec![
        ("OPENAI_BASE_URL".to_string(), format!("http://{addr}/v1")),
        ("OPENAI_API_KEY".to_string(), key.clone()),
    ];
    let stack = support::start("base-url", move |o| o.provider_env = env).await;
    let token = support::token(&stack, "elsewhere-user");

    let resp = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", stack.gateway_url))
        .bearer_auth(&token)
        .header("x-test-case", "elsewhere")
        .json(&json!({"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()
            .get("x-chokepoint-provider")
            .and_then(|v| v.to_str().ok()),
        Some("openai")
    );
    let request_id = resp
        .headers()
        .get("x-chokepoint-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap()
        .to_string();
    let body: Value = resp.json().await.unwrap();

    // It reached the other server, with the configured key, and not the mock.
    let seen: Vec<Value> = reqwest::get(format!("http://{addr}/__mock/requests"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let seen: Vec<&Value> = seen
        .iter()
        .filter(|r| header(r, "x-test-case").as_deref() == Some("elsewhere"))
        .collect();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        header(seen[0], "authorization").as_deref(),
        Some(format!("Bearer {key}").as_str())
    );
    assert!(upstream_saw(&stack, "elsewhere").await.is_empty());

    // Accounted like any other provider: the access-log record and the ledger.
    let rec = access_record(&stack, &request_id).await;
    assert_eq!(rec["provider"], "openai");
    assert_eq!(rec["output_tokens"], body["usage"]["completion_tokens"]);
    assert_eq!(rec["input_tokens"], body["usage"]["prompt_tokens"]);
    let l = ledger_settled(&stack, &support::uuid_of(&stack, "elsewhere-user"), 1).await;
    assert_eq!(l["output_tokens"], body["usage"]["completion_tokens"]);
    let _ = std::fs::remove_dir_all(&dir);
}
