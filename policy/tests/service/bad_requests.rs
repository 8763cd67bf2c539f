//! Malformed input gets a JSON error in the OpenAI shape, never a plain-text body.

use std::time::Duration;

use reqwest::StatusCode;

use crate::support::{config, json_of, new_user, RedisServer, Service};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_authorize_requests_get_json_errors() {
    let redis = RedisServer::start();
    let service = Service::start(config(&redis, 5, Duration::from_secs(60))).await;
    let user = new_user();
    let json = Some("application/json");

    // (content type, body, status, code)
    let cases: Vec<(Option<&str>, String, StatusCode, &str)> = vec![
        (
            json,
            "{not json".into(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (json, String::new(), StatusCode::BAD_REQUEST, "invalid_json"),
        (
            json,
            "[1,2]".into(),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            json,
            r#"{"request_id":"r1"}"#.into(),
            StatusCode::BAD_REQUEST,
            "missing_field",
        ),
        (
            json,
            format!(r#"{{"user":"{user}"}}"#),
            StatusCode::BAD_REQUEST,
            "missing_field",
        ),
        (
            json,
            r#"{"request_id":"r1","user":"bob"}"#.into(),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            json,
            r#"{"request_id":"r1","user":"0190a6f2-7c1e-8b3a-9f00-1234567890zz"}"#.into(),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            json,
            format!(r#"{{"request_id":"","user":"{user}"}}"#),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            json,
            format!(r#"{{"request_id":"r1","user":"{user}","stream":"yes"}}"#),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        // A client's 60 KB model name is refused before any decision (the filter refuses
        // it first; this is the bound behind it).
        (
            json,
            format!(
                r#"{{"request_id":"r1","user":"{user}","model":"{}"}}"#,
                "m".repeat(60 * 1024)
            ),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            json,
            format!(r#"{{"request_id":"r1","user":"{user}","model_key":""}}"#),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            json,
            format!(r#"{{"request_id":"r1","user":"{user}","priced":"no"}}"#),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            Some("text/plain"),
            format!(r#"{{"request_id":"r1","user":"{user}"}}"#),
            StatusCode::BAD_REQUEST,
            "unsupported_content_type",
        ),
        (
            None,
            format!(r#"{{"request_id":"r1","user":"{user}"}}"#),
            StatusCode::BAD_REQUEST,
            "unsupported_content_type",
        ),
        (
            json,
            format!(
                r#"{{"request_id":"r1","user":"{user}","pad":"{}"}}"#,
                "x".repeat(70 * 1024)
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
        ),
    ];
    let count = cases.len();
    for (content_type, body, status, code) in cases {
        let mut request = service.gateway_post("/v1/authorize").body(body.clone());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.expect("send");
        let (got_status, got) = json_of(response).await;
        let shown = &body[..body.len().min(80)];
        assert_eq!(got_status, status, "body {shown:?}: {got}");
        assert_eq!(
            got["error"]["type"], "invalid_request_error",
            "body {shown:?}: {got}"
        );
        assert_eq!(got["error"]["code"], code, "body {shown:?}: {got}");
        assert!(
            got["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "body {shown:?}: {got}"
        );
    }

    // None of them reached Redis or counted against the user.
    let (_, body) = service.authorize(&user).await;
    assert_eq!(body["remaining"], 4, "{body}");
    let metrics = service.metrics().await;
    let line = format!("chokepoint_policy_invalid_requests_total {count}");
    assert!(metrics.lines().any(|l| l == line), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_and_methods_get_json_errors() {
    let redis = RedisServer::start();
    let service = Service::start(config(&redis, 5, Duration::from_secs(60))).await;

    let (status, body) = json_of(service.get("/v1/nope").await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found", "{body}");

    let (status, body) = json_of(service.get("/v1/authorize").await).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["error"]["code"], "method_not_allowed", "{body}");
}
