//! The mock guardrail service over real HTTP: LiteLLM's Generic Guardrail API request
//! and verdict shapes, the bearer key, each marker's behaviour and the request log.

use chokepoint_dev::mock::{self, MockConfig, RunningMock, GUARDRAIL_PATH};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

const GUARD_KEY: &str = "guard-test-key-5678";

async fn start() -> RunningMock {
    mock::spawn(MockConfig {
        api_key: "sk-unused".into(),
        name: "guard-mock".into(),
        guardrail_key: Some(GUARD_KEY.into()),
    })
    .await
    .expect("mock starts")
}

/// A request as LiteLLM's `GenericGuardrailAPIRequest.model_dump()` sends it.
fn litellm_request(texts: &[&str]) -> Value {
    json!({
        "input_type": "request",
        "litellm_call_id": "call-1",
        "litellm_trace_id": null,
        "structured_messages": null,
        "images": null,
        "tools": null,
        "texts": texts,
        "request_data": {"user_api_key_user_id": "u-1"},
        "request_headers": null,
        "litellm_version": null,
        "additional_provider_specific_params": {},
        "tool_calls": null,
        "model": "gpt-4o"
    })
}

async fn post(m: &RunningMock, key: Option<&str>, body: &Value) -> (StatusCode, String) {
    let mut req = Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(format!("{}{GUARDRAIL_PATH}", m.base_url()))
        .json(body);
    if let Some(key) = key {
        req = req.bearer_auth(key);
    }
    let resp = req.send().await.expect("mock answers");
    let status = resp.status();
    (status, resp.text().await.unwrap_or_default())
}

#[tokio::test]
async fn verdicts_by_marker_over_http() {
    let m = start().await;
    type Case = (&'static [&'static str], StatusCode, Option<Value>);
    let cases: &[Case] = &[
        (&["hello"], StatusCode::OK, Some(json!({"action": "NONE"}))),
        (
            &["ok", "GUARD-BLOCK"],
            StatusCode::OK,
            Some(
                json!({"action": "BLOCKED", "blocked_reason": "text 1 is not allowed: GUARD-BLOCK"}),
            ),
        ),
        (
            &["GUARD-MASK:pw1 pw1"],
            StatusCode::OK,
            Some(
                json!({"action": "GUARDRAIL_INTERVENED", "texts": ["GUARD-MASK:[MASKED] [MASKED]"]}),
            ),
        ),
        (&["GUARD-500"], StatusCode::INTERNAL_SERVER_ERROR, None),
        (&["GUARD-GARBAGE"], StatusCode::OK, None),
        (
            &["GUARD-SLOW"],
            StatusCode::OK,
            Some(json!({"action": "NONE"})),
        ),
    ];
    for (texts, status, want) in cases {
        let (got_status, body) = post(&m, Some(GUARD_KEY), &litellm_request(texts)).await;
        assert_eq!(got_status, *status, "{texts:?}: {body}");
        let parsed = serde_json::from_str::<Value>(&body).ok();
        match want {
            Some(want) => assert_eq!(parsed.as_ref(), Some(want), "{texts:?}"),
            None if texts == &["GUARD-GARBAGE"] => assert!(parsed.is_none(), "{body}"),
            None => {}
        }
    }
    let log = m.recorder.requests();
    assert_eq!(log.len(), cases.len());
    let sent: Vec<Value> = log
        .iter()
        .map(|r| r.json().unwrap()["texts"].clone())
        .collect();
    assert_eq!(sent[1], json!(["ok", "GUARD-BLOCK"]));
    assert!(log.iter().all(|r| r.path == GUARDRAIL_PATH));
    assert_eq!(
        log[0].header("authorization"),
        Some(&*format!("Bearer {GUARD_KEY}"))
    );
}

#[tokio::test]
async fn key_and_shape_are_checked() {
    let m = start().await;
    let body = litellm_request(&["hello"]);
    assert_eq!(post(&m, None, &body).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        post(&m, Some("wrong"), &body).await.0,
        StatusCode::UNAUTHORIZED
    );
    let mut no_type = body.clone();
    no_type["input_type"] = json!("prompt");
    let (status, detail) = post(&m, Some(GUARD_KEY), &no_type).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{detail}");
    // Every attempt is in the log, refused or not, so a test sees what the gateway sent.
    assert_eq!(m.recorder.len(), 3);
}
