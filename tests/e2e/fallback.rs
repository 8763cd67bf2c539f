//! Fallback chains: when the first provider answers 429 or 5xx or cannot be reached, the
//! next one in the route's chain serves the request; each attempt carries its own
//! provider's key, and the client sees one response naming the provider that served it.

use chokepoint_dev::stack::Stack;
use serde_json::Value;

use crate::support::{self, header};

async fn saw(url: &str, case: &str) -> Vec<Value> {
    let all: Vec<Value> = reqwest::get(format!("{url}/__mock/requests"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    all.into_iter()
        .filter(|r| header(r, "x-test-case").as_deref() == Some(case))
        .collect()
}

async fn chat(stack: &Stack, case: &str, faults: &[(&str, &str)]) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", stack.gateway_url))
        .bearer_auth(support::token(stack, "fallback-user"))
        .header("x-test-case", case)
        .json(&support::chat(false));
    for (k, v) in faults {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn the_next_provider_serves_with_its_own_key() {
    let mut stack = support::start("fallback", |o| o.requests_per_window = 100).await;
    let primary = stack.mock_url.clone().unwrap();
    let backup = stack.backup_mock_url.clone();
    let primary_key = format!("Bearer {}", stack.opts.mock_key);
    let backup_key = format!("Bearer {}", stack.opts.backup_key);

    // Healthy: the first provider serves.
    let resp = chat(&stack, "healthy", &[]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-chokepoint-provider"], "openai");
    assert_eq!(saw(&primary, "healthy").await.len(), 1);
    assert!(saw(&backup, "healthy").await.is_empty());

    for status in ["429", "503"] {
        let case = format!("fails-{status}");
        let faults = [("x-mock-only", "openai-mock"), ("x-mock-status", status)];
        let resp = chat(&stack, &case, &faults).await;
        assert_eq!(resp.status(), 200, "{status}");
        assert_eq!(
            resp.headers()["x-chokepoint-provider"],
            "openai-backup",
            "{status}"
        );
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["object"], "chat.completion");
        let first = saw(&primary, &case).await;
        let second = saw(&backup, &case).await;
        assert_eq!(
            first.len(),
            1,
            "{status}: one attempt at the first provider"
        );
        assert_eq!(second.len(), 1, "{status}: then the backup");
        assert_eq!(
            header(&first[0], "authorization"),
            Some(primary_key.clone())
        );
        assert_eq!(
            header(&second[0], "authorization"),
            Some(backup_key.clone()),
            "the backup's own key"
        );
    }

    // The first provider unreachable: straight to the backup.
    stack.kill_mock();
    let resp = chat(&stack, "refused", &[]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-chokepoint-provider"], "openai-backup");
    let request_id = resp.headers()["x-chokepoint-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(saw(&backup, "refused").await.len(), 1);

    // The record names the provider that served.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let log = std::fs::read_to_string(stack.usage_log()).unwrap_or_default();
        if let Some(rec) = log
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|r| r["request_id"] == request_id.as_str())
        {
            assert_eq!(rec["provider"], "openai-backup", "{rec}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no record");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
