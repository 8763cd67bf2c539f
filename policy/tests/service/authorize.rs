//! Rate-limit decisions over HTTP with a live Redis.

use std::time::Duration;

use redis::AsyncCommands;
use reqwest::StatusCode;
use serde_json::Value;

use crate::support::{config, new_user, RedisServer, Service};

const MINUTE: Duration = Duration::from_secs(60);

fn keys_of(body: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = body
        .as_object()
        .expect("object body")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allows_up_to_the_limit_then_denies_until_the_window_resets() {
    let redis = RedisServer::start();
    let service = Service::start(config(&redis, 3, MINUTE)).await;
    let user = new_user();

    for expected_remaining in [2, 1, 0] {
        let (status, body) = service.authorize(&user).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            keys_of(&body),
            ["allow", "limit", "limits", "remaining", "reset_after_ms"],
            "{body}"
        );
        assert_eq!(
            body["limits"],
            serde_json::json!([{
                "name": "user:rpm",
                "limit": 3,
                "remaining": expected_remaining,
                "reset_after_ms": body["reset_after_ms"],
            }]),
            "only the configured per-user window applies: {body}"
        );
        assert_eq!(body["allow"], true, "{body}");
        assert_eq!(body["limit"], 3, "{body}");
        assert_eq!(body["remaining"], expected_remaining, "{body}");
        let reset = body["reset_after_ms"].as_u64().expect("reset_after_ms");
        assert!((55_000..=60_000).contains(&reset), "{body}");
    }

    // Denials must not consume quota or move the reset, however often they come.
    for _ in 0..3 {
        let (status, body) = service.authorize(&user).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            keys_of(&body),
            [
                "allow",
                "limit",
                "limit_name",
                "message",
                "reason",
                "remaining",
                "retry_after_ms"
            ],
            "{body}"
        );
        assert_eq!(body["allow"], false, "{body}");
        assert_eq!(body["reason"], "rate_limited", "{body}");
        assert_eq!(body["limit_name"], "user:rpm", "{body}");
        assert_eq!(
            body["message"], "user request limit of 3 per 60s reached",
            "{body}"
        );
        assert_eq!(body["limit"], 3, "{body}");
        assert_eq!(body["remaining"], 0, "{body}");
        let retry = body["retry_after_ms"].as_u64().expect("retry_after_ms");
        assert!((55_000..=60_000).contains(&retry), "{body}");
    }

    let mut redis_conn = redis.connection().await;
    let key = format!("ck:rate:user:{{{user}}}");
    let count: u64 = redis_conn
        .hget(&key, "requests")
        .await
        .expect("HGET counter");
    assert_eq!(count, 3, "a denied request must not be counted");
    // The TTL only collects garbage (two windows); the window's start decides.
    let ttl: i64 = redis_conn.pttl(&key).await.expect("PTTL counter");
    assert!((115_000..=120_000).contains(&ttl), "counter TTL {ttl}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_window_starts_after_the_old_one_expires() {
    let redis = RedisServer::start();
    let service = Service::start(config(&redis, 2, Duration::from_secs(1))).await;
    let user = new_user();

    for _ in 0..2 {
        let (_, body) = service.authorize(&user).await;
        assert_eq!(body["allow"], true, "{body}");
    }
    let (_, denied) = service.authorize(&user).await;
    assert_eq!(denied["allow"], false, "{denied}");
    assert_eq!(denied["message"], "user request limit of 2 per 1s reached");
    let retry = denied["retry_after_ms"].as_u64().expect("retry_after_ms");
    assert!((1..=1000).contains(&retry), "{denied}");

    tokio::time::sleep(Duration::from_millis(retry + 100)).await;
    let (status, body) = service.authorize(&user).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["allow"], true, "{body}");
    assert_eq!(body["remaining"], 1, "a fresh window: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_have_independent_counters() {
    let redis = RedisServer::start();
    let service = Service::start(config(&redis, 1, MINUTE)).await;
    let (alice, bob) = (new_user(), new_user());

    // (user, expected allow) in order.
    let steps = [
        (&alice, true),
        (&alice, false),
        (&bob, true),
        (&bob, false),
        (&alice, false),
    ];
    for (step, (user, allow)) in steps.iter().enumerate() {
        let (status, body) = service.authorize(user).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["allow"], *allow, "step {step}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_id_in_upper_case_shares_the_lower_case_counter() {
    let redis = RedisServer::start();
    let service = Service::start(config(&redis, 1, MINUTE)).await;
    let user = new_user();

    let (_, first) = service.authorize(&user).await;
    assert_eq!(first["allow"], true, "{first}");
    let (_, second) = service.authorize(&user.to_uppercase()).await;
    assert_eq!(second["allow"], false, "{second}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_the_limit_is_allowed_under_concurrency() {
    let redis = RedisServer::start();
    let service = std::sync::Arc::new(Service::start(config(&redis, 10, MINUTE)).await);
    let user = new_user();

    let calls: Vec<_> = (0..50)
        .map(|_| {
            let service = service.clone();
            let user = user.clone();
            tokio::spawn(async move { service.authorize(&user).await })
        })
        .collect();
    let mut allowed = 0;
    for call in calls {
        let (status, body) = call.await.expect("task");
        assert_eq!(status, StatusCode::OK, "{body}");
        if body["allow"] == true {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_a_script_flush() {
    let redis = RedisServer::start();
    let service = Service::start(config(&redis, 5, MINUTE)).await;
    let user = new_user();
    let mut redis_conn = redis.connection().await;
    let sha = redis::Script::new(chokepoint_policy::AUTHORIZE_SCRIPT)
        .get_hash()
        .to_owned();
    let script_cached = |conn: &mut crate::support::RedisConnection| {
        let mut conn = conn.clone();
        let sha = sha.clone();
        async move {
            let exists: Vec<bool> = redis::cmd("SCRIPT")
                .arg("EXISTS")
                .arg(&sha)
                .query_async(&mut conn)
                .await
                .expect("SCRIPT EXISTS");
            exists == [true]
        }
    };

    let (_, body) = service.authorize(&user).await;
    assert_eq!(body["remaining"], 4, "{body}");
    assert!(script_cached(&mut redis_conn).await);

    let () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut redis_conn)
        .await
        .expect("SCRIPT FLUSH");
    assert!(!script_cached(&mut redis_conn).await);

    let (status, body) = service.authorize(&user).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["remaining"], 3,
        "counting goes on after the reload: {body}"
    );
    assert!(script_cached(&mut redis_conn).await, "script was reloaded");
}
