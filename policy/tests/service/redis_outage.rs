//! Redis down, hung, restarted, or late: the service answers 503 fast, never falls
//! back to local counters, and recovers by itself.

use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::support::{
    assert_unavailable, config, json_of, new_user, wait_until_allowed, RedisServer, Service,
};

const MINUTE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_503_fast_while_redis_is_down_and_recovers_after_a_restart() {
    if crate::support::skip_on_cluster(
        "answers_503_fast_while_redis_is_down_and_recovers_after_a_restart",
        "kills and restarts the one redis-server (cluster::a_cluster_node_down_answers_503 covers a node down)",
    ) {
        return;
    }
    let mut redis = RedisServer::start();
    let service = Service::start(config(&redis, 5, MINUTE)).await;
    let user = new_user();
    let (_, body) = service.authorize(&user).await;
    assert_eq!(body["allow"], true, "{body}");

    redis.kill();
    for attempt in 0..5 {
        let started = Instant::now();
        let (status, body) = service.authorize(&user).await;
        let took = started.elapsed();
        assert_unavailable(status, &body);
        assert!(
            took < Duration::from_secs(2),
            "attempt {attempt} took {took:?}"
        );
    }
    let started = Instant::now();
    let (status, body) = json_of(service.get("/healthz").await).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["status"], "unavailable", "{body}");
    assert_eq!(body["error"]["code"], "redis_unavailable", "{body}");
    assert!(started.elapsed() < Duration::from_secs(2));

    let metrics = service.metrics().await;
    assert!(
        metrics.lines().any(|l| l == "chokepoint_policy_redis_up 0"),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l == "chokepoint_policy_authorize_total{decision=\"error\"} 5"),
        "{metrics}"
    );

    redis.restart();
    // The restarted Redis has no data (no persistence), so this user starts afresh.
    let body = wait_until_allowed(&service, &user, Duration::from_secs(5)).await;
    assert_eq!(body["remaining"], 4, "{body}");
    let (status, _) = json_of(service.get("/healthz").await).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_without_redis_and_serves_once_it_appears() {
    if crate::support::skip_on_cluster(
        "starts_without_redis_and_serves_once_it_appears",
        "starts the one redis-server late on its unix socket (cluster::starts_before_the_cluster_and_rides_out_a_node_restart covers a cluster)",
    ) {
        return;
    }
    let mut redis = RedisServer::not_started();
    let service = Service::start(config(&redis, 5, MINUTE)).await;
    let user = new_user();

    let started = Instant::now();
    let (status, body) = service.authorize(&user).await;
    assert_unavailable(status, &body);
    let (status, _) = json_of(service.get("/healthz").await).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(started.elapsed() < Duration::from_secs(2));

    redis.restart();
    let body = wait_until_allowed(&service, &user, Duration::from_secs(5)).await;
    assert_eq!(body["allow"], true, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_redis_gives_503_within_the_timeout() {
    if crate::support::skip_on_cluster(
        "a_hung_redis_gives_503_within_the_timeout",
        "stops the one redis-server with SIGSTOP",
    ) {
        return;
    }
    let redis = RedisServer::start();
    let service = Service::start(chokepoint_policy::Config {
        redis_timeout: Duration::from_millis(300),
        ..config(&redis, 5, MINUTE)
    })
    .await;
    let user = new_user();
    let (_, body) = service.authorize(&user).await;
    assert_eq!(body["allow"], true, "{body}");

    // A stopped process keeps its socket open but never answers.
    redis.signal("STOP");
    let started = Instant::now();
    let (status, body) = service.authorize(&user).await;
    let took = started.elapsed();
    redis.signal("CONT");
    assert_unavailable(status, &body);
    assert!(took < Duration::from_secs(1), "took {took:?}");

    let body = wait_until_allowed(&service, &user, Duration::from_secs(5)).await;
    let remaining = body["remaining"].as_u64().expect("remaining");
    // The timed-out call may or may not have been counted once Redis resumed.
    assert!((2..=3).contains(&remaining), "{body}");
}
