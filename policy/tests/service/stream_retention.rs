//! The audit stream (`ck:usage:log`) and the dead-letter stream (`ck:usage:dead`) are
//! each capped by length and by age (`--audit-max-len`, `--audit-max-age-secs`), so
//! neither grows for good whatever the volume or the time.

use std::time::Duration;

use crate::support::RedisConnection;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{new_user, usage_config, RedisServer, Service};

async fn len(redis: &mut RedisConnection, stream: &str) -> u64 {
    redis::cmd("XLEN")
        .arg(stream)
        .query_async(redis)
        .await
        .expect("XLEN")
}

async fn newest(redis: &mut RedisConnection, stream: &str) -> Vec<String> {
    let entries: Vec<(String, Vec<String>)> = redis::cmd("XREVRANGE")
        .arg(stream)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(redis)
        .await
        .expect("XREVRANGE");
    entries
        .into_iter()
        .next()
        .map(|(_, f)| f)
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_streams_are_capped_by_length_and_by_age() {
    const CAP: u64 = 10;
    let redis = RedisServer::start();
    let mut conn = redis.connection().await;
    // Redis trims whole macro nodes only: small ones make the bounds show at small sizes.
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("stream-node-max-entries")
        .arg(2)
        .query_async(&mut conn)
        .await
        .expect("CONFIG SET");
    let service = Service::start(chokepoint_policy::Config {
        audit_max_len: CAP,
        audit_max_age: Duration::from_secs(1),
        ..usage_config(&redis)
    })
    .await;
    let user = new_user();
    let batch = |tag: &str, n: usize| -> Vec<Value> {
        (0..n)
            .flat_map(|i| {
                let id = format!("{tag}-{i}");
                [
                    json!({"request_id": id, "user": user, "input_tokens": 1}),
                    json!({"request_id": id, "user": user, "input_tokens": -1}),
                ]
            })
            .collect()
    };

    // Length: 30 of each in one batch, and each stream keeps about the last 10.
    let (status, body) = service.post_usage(&batch("many", 30)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (&body["accepted"], &body["dead_lettered"]),
        (&json!(30), &json!(30))
    );
    for stream in ["ck:usage:log", "ck:usage:dead"] {
        let n = len(&mut conn, stream).await;
        assert!((CAP..=CAP + 2).contains(&n), "{stream}: {n} entries");
    }

    // Age: once they are older than a second, the next write drops them.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let (status, body) = service.post_usage(&batch("late", 1)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for stream in ["ck:usage:log", "ck:usage:dead"] {
        // The new entry, and at most its node's older one.
        let n = len(&mut conn, stream).await;
        assert!((1..=2).contains(&n), "{stream}: {n} entries");
        let entry = newest(&mut conn, stream).await.join(" ");
        assert!(entry.contains("late-0"), "{stream}: {entry}");
    }
}
