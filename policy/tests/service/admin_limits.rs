//! The admin API for limits, spend and rankings: authentication, strict validation that
//! names the field, and round trips through Redis.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{
    authorize_request, config, json_of, new_tenant, new_user, percent_encode, usage_config,
    usage_for, RedisServer, Service, ADMIN_TOKEN,
};

/// (method, path, body) of every admin endpoint this issue added.
fn endpoints() -> Vec<(Method, String, Option<Value>)> {
    vec![
        (
            Method::PUT,
            "/v1/admin/limits/tenant/acme".into(),
            Some(json!({"rpm": 5})),
        ),
        (Method::GET, "/v1/admin/limits/tenant/acme".into(), None),
        (Method::DELETE, "/v1/admin/limits/tenant/acme".into(), None),
        (Method::GET, "/v1/admin/limits".into(), None),
        (
            Method::GET,
            "/v1/admin/spend?scope_kind=tenant&id=acme".into(),
            None,
        ),
        (Method::GET, "/v1/admin/top".into(), None),
        (Method::GET, "/v1/admin/audit?limit=1".into(), None),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_endpoint_needs_the_admin_token() {
    let redis = RedisServer::start();
    let guarded = Service::start(usage_config(&redis)).await;
    let open = Service::start(config(&redis, 5, std::time::Duration::from_secs(60))).await;

    // (service, token, status, code)
    let cases: [(&Service, Option<&str>, StatusCode, &str); 4] = [
        (
            &open,
            Some(ADMIN_TOKEN),
            StatusCode::FORBIDDEN,
            "admin_disabled",
        ),
        (
            &guarded,
            None,
            StatusCode::UNAUTHORIZED,
            "missing_admin_token",
        ),
        (
            &guarded,
            Some("nope"),
            StatusCode::UNAUTHORIZED,
            "invalid_admin_token",
        ),
        (
            &guarded,
            Some(&ADMIN_TOKEN[1..]),
            StatusCode::UNAUTHORIZED,
            "invalid_admin_token",
        ),
    ];
    for (method, path, body) in endpoints() {
        for (service, token, status, code) in &cases {
            let mut request = service
                .http
                .request(method.clone(), format!("{}{path}", service.admin_base));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            if let Some(body) = &body {
                request = request.json(body);
            }
            let (got, answer) = json_of(request.send().await.expect("send")).await;
            assert_eq!(got, *status, "{method} {path}: {answer}");
            assert_eq!(answer["error"]["code"], *code, "{method} {path}: {answer}");
        }
    }
    // Nothing was written by the refused PUTs.
    let (status, body) = guarded.admin(Method::GET, "/v1/admin/limits", None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"limits": []})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_sets_round_trip() {
    let redis = RedisServer::start();
    let service = Service::start(usage_config(&redis)).await;
    let user = new_user();

    // (kind, id as sent, id as stored, limits)
    let sets = [
        (
            "tenant",
            "acme".to_owned(),
            "acme".to_owned(),
            json!({"usd_micros": 500_000_000, "period": "month"}),
        ),
        (
            "tenant",
            "*".to_owned(),
            "*".to_owned(),
            json!({"rpm": 100, "tpm": 200_000}),
        ),
        (
            "user",
            user.to_uppercase(),
            user.clone(),
            json!({"rpm": 60, "tpm": 100_000, "tokens": 5_000_000, "period": "day"}),
        ),
        (
            "cost_center",
            "cc 42".to_owned(),
            "cc 42".to_owned(),
            json!({"usd_micros": 1, "period": "rolling:3600"}),
        ),
        (
            "model",
            "openai/gpt-4o".to_owned(),
            "openai/gpt-4o".to_owned(),
            json!({"tpm": 0}),
        ),
    ];
    for (kind, sent, stored, limits) in &sets {
        let path = format!("/v1/admin/limits/{kind}/{}", percent_encode(sent));
        let (status, body) = service.admin(Method::PUT, &path, Some(limits)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["id"], stored.as_str(), "{body}");
        assert_eq!(body["limits"], *limits, "{body}");
        assert!(body["updated_ms"].as_u64().is_some(), "{body}");
        let (status, got) = service.admin(Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::OK, "{got}");
        assert_eq!(got, body, "GET returns what PUT stored");
    }

    // PUT replaces the whole set.
    let path = "/v1/admin/limits/tenant/acme";
    service
        .set_limits("tenant", "acme", json!({"rpm": 7}))
        .await;
    let (_, got) = service.admin(Method::GET, path, None).await;
    assert_eq!(got["limits"], json!({"rpm": 7}), "{got}");

    let (status, listed) = service.admin(Method::GET, "/v1/admin/limits", None).await;
    assert_eq!(status, StatusCode::OK);
    let listed: Vec<(String, String)> = listed["limits"]
        .as_array()
        .expect("limits")
        .iter()
        .map(|entry| {
            (
                entry["scope_kind"].as_str().expect("kind").to_owned(),
                entry["id"].as_str().expect("id").to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("user", user.as_str()),
        ("tenant", "*"),
        ("tenant", "acme"),
        ("model", "openai/gpt-4o"),
        ("cost_center", "cc 42"),
    ]
    .iter()
    .map(|(k, i)| ((*k).to_owned(), (*i).to_owned()))
    .collect();
    assert_eq!(listed, expected, "sorted by kind, then id");
    let (_, only) = service
        .admin(Method::GET, "/v1/admin/limits?scope_kind=tenant", None)
        .await;
    assert_eq!(only["limits"].as_array().map(Vec::len), Some(2), "{only}");

    // DELETE removes the set and its index entry; a second DELETE finds nothing.
    for deleted in [true, false] {
        let (status, body) = service.admin(Method::DELETE, path, None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body,
            json!({"scope_kind": "tenant", "id": "acme", "deleted": deleted})
        );
    }
    let (status, body) = service.admin(Method::GET, path, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "limits_not_found", "{body}");
    let (_, listed) = service.admin(Method::GET, "/v1/admin/limits", None).await;
    assert_eq!(
        listed["limits"].as_array().map(Vec::len),
        Some(4),
        "{listed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_admin_requests_get_400s_naming_the_field() {
    let redis = RedisServer::start();
    let service = Service::start(usage_config(&redis)).await;

    // (method, path, body, code, what the message says)
    let cases: Vec<(Method, &str, Option<Value>, &str, &str)> = vec![
        (
            Method::PUT,
            "/v1/admin/limits/tenant/acme",
            Some(json!({"rpm": 5, "burst": 9})),
            "unknown_field",
            "burst is not a limit field",
        ),
        (
            Method::PUT,
            "/v1/admin/limits/tenant/acme",
            Some(json!({"rpm": -5})),
            "invalid_field",
            "rpm: invalid value",
        ),
        (
            Method::PUT,
            "/v1/admin/limits/tenant/acme",
            Some(json!({"tpm": "5"})),
            "invalid_field",
            "tpm: invalid type",
        ),
        (
            Method::PUT,
            "/v1/admin/limits/tenant/acme",
            Some(json!({"usd_micros": 5})),
            "invalid_field",
            "period is required",
        ),
        (
            Method::PUT,
            "/v1/admin/limits/tenant/acme",
            Some(json!({"tokens": 5, "period": "weekly"})),
            "invalid_field",
            "period must be day, month or rolling:<secs>",
        ),
        (
            Method::PUT,
            "/v1/admin/limits/tenant/acme",
            Some(json!({})),
            "invalid_field",
            "at least one of rpm, tpm, usd_micros, tokens",
        ),
        (
            Method::PUT,
            "/v1/admin/limits/tenant/acme",
            Some(json!([1])),
            "invalid_field",
            "must be a JSON object",
        ),
        (
            Method::PUT,
            "/v1/admin/limits/team/acme",
            Some(json!({"rpm": 5})),
            "invalid_field",
            "scope_kind must be one of user, tenant, cost_center, model",
        ),
        (
            Method::PUT,
            "/v1/admin/limits/user/alice",
            Some(json!({"rpm": 5})),
            "invalid_field",
            "id must be a UUID",
        ),
        (
            Method::PUT,
            "/v1/admin/limits/tenant/%20",
            Some(json!({"rpm": 5})),
            "invalid_field",
            "id must not be empty",
        ),
        (
            Method::PUT,
            "/v1/admin/limits/tenant/a%07b",
            Some(json!({"rpm": 5})),
            "invalid_field",
            "id must not contain control characters",
        ),
        (
            Method::GET,
            "/v1/admin/limits?scope_kind=group",
            None,
            "invalid_field",
            "scope_kind must be one of",
        ),
        (
            Method::GET,
            "/v1/admin/spend?id=acme",
            None,
            "missing_field",
            "scope_kind is required",
        ),
        (
            Method::GET,
            "/v1/admin/spend?scope_kind=tenant",
            None,
            "missing_field",
            "id is required",
        ),
        (
            Method::GET,
            "/v1/admin/spend?scope_kind=tenant&id=*",
            None,
            "invalid_field",
            "id must name one scope",
        ),
        (
            Method::GET,
            "/v1/admin/spend?scope_kind=tenant&id=acme&period=2026-13",
            None,
            "invalid_field",
            "period must be a UTC day",
        ),
        (
            Method::GET,
            "/v1/admin/top?by=cost",
            None,
            "invalid_field",
            "by must be cost_micros or tokens",
        ),
        (
            Method::GET,
            "/v1/admin/top?limit=0",
            None,
            "invalid_field",
            "limit must be an integer from 1 to 1000",
        ),
        (
            Method::GET,
            "/v1/admin/top?limit=ten",
            None,
            "invalid_field",
            "limit must be an integer",
        ),
        (
            Method::GET,
            "/v1/admin/top?period=2026",
            None,
            "invalid_field",
            "period must be a UTC day",
        ),
        (
            Method::GET,
            "/v1/admin/top?scope_kind=team",
            None,
            "invalid_field",
            "scope_kind must be one of",
        ),
        (
            Method::GET,
            "/v1/admin/audit?after=17",
            None,
            "invalid_field",
            "after must be a stream id",
        ),
        (
            Method::GET,
            "/v1/admin/audit?until=%2B",
            None,
            "invalid_field",
            "until must be a stream id",
        ),
        (
            Method::GET,
            "/v1/admin/audit?limit=1001",
            None,
            "invalid_field",
            "limit must be 1 to 1000",
        ),
    ];
    for (method, path, body, code, needle) in cases {
        let (status, answer) = service.admin(method.clone(), path, body.as_ref()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {path}: {answer}");
        assert_eq!(answer["error"]["type"], "invalid_request_error", "{answer}");
        assert_eq!(answer["error"]["code"], code, "{method} {path}: {answer}");
        let message = answer["error"]["message"].as_str().expect("message");
        assert!(
            message.contains(needle),
            "{method} {path}: {message:?} lacks {needle:?}"
        );
    }
    // A body that is not JSON, or not declared as JSON.
    let response = service
        .http
        .put(format!(
            "{}/v1/admin/limits/tenant/acme",
            service.admin_base
        ))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "text/plain")
        .body(r#"{"rpm":5}"#)
        .send()
        .await
        .expect("send");
    let (status, answer) = json_of(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["error"]["code"], "unsupported_content_type");
    let (_, listed) = service.admin(Method::GET, "/v1/admin/limits", None).await;
    assert_eq!(listed, json!({"limits": []}), "nothing was stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_lists_the_biggest_spenders_of_a_period() {
    let redis = RedisServer::start();
    let service = Service::start(usage_config(&redis)).await;
    let tenant = new_tenant();
    // (user, cost, tokens as input + output)
    let spenders: Vec<(String, u64, (u64, u64))> = vec![
        (new_user(), 300, (10, 1)),
        (new_user(), 900, (5, 5)),
        (new_user(), 100, (500, 500)),
    ];
    for (user, cost, (input, output)) in &spenders {
        let request = authorize_request(user, &tenant, 1, 1);
        service.authorize_body(&request).await;
        // Twice: the rankings, like the ledger, count a request once.
        for _ in 0..2 {
            service
                .post_usage(&[usage_for(&request, *input, *output, *cost)])
                .await;
        }
    }
    let (status, top) = service
        .admin(
            Method::GET,
            "/v1/admin/top?scope_kind=user&by=cost_micros&limit=2",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{top}");
    let ranked = |top: &Value, field: &str| -> Vec<(String, u64)> {
        top["top"]
            .as_array()
            .expect("top")
            .iter()
            .map(|e| {
                (
                    e["id"].as_str().expect("id").to_owned(),
                    e[field].as_u64().expect("value"),
                )
            })
            .collect()
    };
    assert_eq!(
        ranked(&top, "cost_micros"),
        [(spenders[1].0.clone(), 900), (spenders[0].0.clone(), 300)]
    );
    assert_eq!(top["top"][0]["rank"], 1);
    assert_eq!(top["top"][0]["requests"], 1, "{top}");
    assert_eq!(top["by"], "cost_micros");

    let (_, by_tokens) = service
        .admin(Method::GET, "/v1/admin/top?by=tokens", None)
        .await;
    assert_eq!(
        ranked(&by_tokens, "tokens"),
        [
            (spenders[2].0.clone(), 1000),
            (spenders[0].0.clone(), 11),
            (spenders[1].0.clone(), 10),
        ]
    );
    let (_, tenants) = service
        .admin(Method::GET, "/v1/admin/top?scope_kind=tenant", None)
        .await;
    assert_eq!(ranked(&tenants, "cost_micros"), [(tenant.clone(), 1300)]);
    let (_, empty) = service
        .admin(Method::GET, "/v1/admin/top?period=2020-01", None)
        .await;
    assert_eq!(empty["top"], json!([]), "{empty}");
}
