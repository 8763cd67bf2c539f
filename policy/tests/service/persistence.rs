//! With Redis persisting (append-only, as `scripts/run` starts it), limits, spend and
//! live reservations survive a Redis crash and restart, and the service carries on.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{
    assert_unavailable, authorize_request, new_tenant, new_user, usage_config, usage_for,
    ManualClock, RedisServer, Service,
};

const NOV_25_NOON: u64 = 1_795_608_000_000; // 2026-11-25T12:00:00Z

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_spend_and_reservations_survive_a_redis_restart() {
    if crate::support::skip_on_cluster(
        "limits_spend_and_reservations_survive_a_redis_restart",
        "kills and restarts one appendonly redis-server; the cluster's nodes are not persistent",
    ) {
        return;
    }
    let mut redis = RedisServer::start_persistent();
    let clock = ManualClock::at(NOV_25_NOON);
    let service = Service::start(chokepoint_policy::Config {
        clock: clock.clock(),
        ..usage_config(&redis)
    })
    .await;
    let tenant = new_tenant();
    let limits = json!({"rpm": 100, "usd_micros": 1000, "period": "month"});
    service.set_limits("tenant", &tenant, limits.clone()).await;
    let committed = authorize_request(&new_user(), &tenant, 10, 400);
    let pending = authorize_request(&new_user(), &tenant, 10, 300);
    for request in [&committed, &pending] {
        let (_, body) = service.authorize_body(request).await;
        assert_eq!(body["allow"], true, "{body}");
    }
    service
        .post_usage(&[usage_for(&committed, 5, 5, 250)])
        .await;
    let path = format!("/v1/admin/limits/tenant/{tenant}");
    let (_, stored) = service.admin(Method::GET, &path, None).await;
    let before = service.spend("tenant", &tenant, None).await;
    assert_eq!(before["budgets"][0]["spent"], 250, "{before}");
    assert_eq!(before["budgets"][0]["reserved"], 300, "{before}");

    redis.kill();
    let (status, body) = service.admin(Method::GET, &path, None).await;
    assert_unavailable(status, &body);
    let (status, body) = service
        .authorize_body(&authorize_request(&new_user(), &tenant, 1, 1))
        .await;
    assert_unavailable(status, &body);

    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(5);
    let after: Value = loop {
        let (status, body) = service.admin(Method::GET, &path, None).await;
        if status == StatusCode::OK {
            break body;
        }
        assert!(Instant::now() < deadline, "service did not recover: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(after, stored, "the limit set survived");
    assert_eq!(after["limits"], limits);
    assert_eq!(
        service.spend("tenant", &tenant, None).await,
        before,
        "spend survived"
    );

    // The reservation made before the crash is still released by its usage.
    service.post_usage(&[usage_for(&pending, 5, 5, 100)]).await;
    let spend = service.spend("tenant", &tenant, None).await;
    assert_eq!(
        (
            &spend["budgets"][0]["spent"],
            &spend["budgets"][0]["reserved"]
        ),
        (&json!(350), &json!(0)),
        "{spend}"
    );
}
