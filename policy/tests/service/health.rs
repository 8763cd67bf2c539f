//! `/healthz` (on both listeners), `/metrics` and shutdown with Redis up.

use std::time::Duration;

use reqwest::StatusCode;

use crate::support::{
    config, json_of, listeners, new_user, on_cluster, RedisServer, Service, GATEWAY_TOKEN,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_is_ok_while_redis_answers() {
    let redis = RedisServer::start();
    let service = Service::start(config(&redis, 5, Duration::from_secs(60))).await;

    for response in [
        service.get("/healthz").await,
        service.get_admin("/healthz").await,
    ] {
        let (status, body) = json_of(response).await;
        assert_eq!(status, StatusCode::OK);
        // The dedupe window is the service's default: `reconcile` checks its own against it.
        assert_eq!(
            body,
            serde_json::json!({
                "status": "ok",
                "usage_dedupe_secs": 604_800,
                "redis": if on_cluster() { "cluster" } else { "single" },
                "usage_audit_stream": true,
            })
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_decisions() {
    let redis = RedisServer::start();
    let service = Service::start(config(&redis, 2, Duration::from_secs(60))).await;
    let user = new_user();
    for _ in 0..3 {
        service.authorize(&user).await;
    }

    let response = service.get_admin("/metrics").await;
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = response.text().await.expect("body");
    for line in [
        "chokepoint_policy_authorize_total{decision=\"allow\"} 2",
        "chokepoint_policy_authorize_total{decision=\"deny\"} 1",
        "chokepoint_policy_authorize_total{decision=\"error\"} 0",
        "chokepoint_policy_redis_up 1",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stops_when_asked() {
    let redis = RedisServer::start();
    let service = Service::start(config(&redis, 5, Duration::from_secs(60))).await;
    let bases = [service.base.clone(), service.admin_base.clone()];
    let http = service.http.clone();
    service.authorize(&new_user()).await;

    tokio::time::timeout(Duration::from_secs(5), service.stop())
        .await
        .expect("stops within 5 s")
        .expect("clean exit");
    for base in bases {
        assert!(
            http.get(format!("{base}/healthz")).send().await.is_err(),
            "{base} closed"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_to_start_on_invalid_config() {
    let valid = || chokepoint_policy::Config {
        gateway_token: Some(GATEWAY_TOKEN.into()),
        ..chokepoint_policy::Config::default()
    };
    let cases = [
        (
            chokepoint_policy::Config {
                requests_per_window: 0,
                ..valid()
            },
            "requests_per_window",
        ),
        (
            chokepoint_policy::Config {
                redis_url: "http://not-redis".into(),
                ..valid()
            },
            "redis_url",
        ),
    ];
    for (config, field) in cases {
        let err = chokepoint_policy::run(listeners().await, config, std::future::pending())
            .await
            .expect_err(field);
        assert!(err.to_string().contains(field), "{err}");
    }
}
