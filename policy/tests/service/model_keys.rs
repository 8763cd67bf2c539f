//! Model limits, rate windows, reservations, the ledger and the rankings key on the
//! filter's `model_key` (a model of the policy, a price pattern or `other`), never on
//! the name a client chose: client-chosen names make no Redis keys of their own, and the
//! audit stream stays within its cap. The audit trail keeps each record as sent.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::support::RedisConnection;
use redis::AsyncCommands;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{marker, marker_pattern, usage_config, ManualClock, RedisServer, Service};

const USER: &str = "0190a6f2-7c1e-8b3a-9f00-00000000ce75";
const NOW: u64 = 1_795_694_400_000; // 2026-11-26T12:00:00Z

fn ask(id: &str, model: &str, model_key: Option<&str>) -> Value {
    let mut body = json!({
        "request_id": id, "user": USER, "tenant": "acme", "model": model,
        "reserve_tokens": 100, "reserve_cost_micros": 1_000,
    });
    if let Some(key) = model_key {
        body["model_key"] = json!(key);
    }
    body
}

fn record(id: &str, model: &str, model_key: Option<&str>) -> Value {
    let mut record = json!({
        "request_id": id, "user": USER, "tenant": "acme", "model": model,
        "input_tokens": 40, "output_tokens": 2, "cost_micros": 500, "ts_ms": NOW,
    });
    if let Some(key) = model_key {
        record["model_key"] = json!(key);
    }
    record
}

async fn all_keys(redis: &mut RedisConnection) -> BTreeSet<String> {
    let keys: Vec<String> = redis.keys("*").await.expect("KEYS");
    keys.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_limits_and_the_ledger_key_on_the_model_key() {
    let redis = RedisServer::start();
    let service = Service::start(chokepoint_policy::Config {
        clock: ManualClock::at(NOW).clock(),
        ..usage_config(&redis)
    })
    .await;
    service
        .set_limits("model", "gpt-4o*", json!({"rpm": 2}))
        .await;

    // Two names of one price pattern share its limit; the third name is one too many.
    let names = [
        "gpt-4o-2024-08-06",
        "gpt-4o-mini-2024-07-18",
        "gpt-4o-latest",
    ];
    for (i, name) in names.iter().enumerate() {
        let (status, body) = service
            .authorize_body(&ask(&format!("r{i}"), name, Some("gpt-4o*")))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["allow"], i < 2, "{name}: {body}");
        if i == 2 {
            assert_eq!(body["limit_name"], "model:rpm", "{body}");
            assert_eq!(
                body["message"], "model gpt-4o*'s request limit of 2 per 60s reached",
                "{body}"
            );
        }
    }
    // Without a key (a filter from before model keys) the name is the scope, as before.
    let (_, body) = service
        .authorize_body(&ask("legacy", "gpt-4o-legacy", None))
        .await;
    assert_eq!(body["allow"], true, "{body}");

    let records = [
        record("r0", names[0], Some("gpt-4o*")),
        record("r1", names[1], Some("gpt-4o*")),
        record("u", "made-up-by-a-client", Some("other")),
        record("legacy", "gpt-4o-legacy", None),
    ];
    let (status, body) = service.post_usage(&records).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["accepted"], 4, "{body}");

    // (model scope id, requests booked)
    for (id, requests) in [
        ("gpt-4o*", 2),
        ("other", 1),
        ("gpt-4o-legacy", 1),
        (names[0], 0),
        ("made-up-by-a-client", 0),
    ] {
        let ledger = service.ledger("model", id, "2026-11-26").await;
        assert_eq!(ledger["requests"], requests, "{id}: {ledger}");
    }
    let (status, top) = service
        .admin(
            reqwest::Method::GET,
            "/v1/admin/top?scope_kind=model&period=2026-11&by=tokens",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{top}");
    let mut ranked: Vec<&str> = top["top"]
        .as_array()
        .expect("top")
        .iter()
        .filter_map(|entry| entry["id"].as_str())
        .collect();
    ranked.sort_unstable();
    assert_eq!(ranked, ["gpt-4o*", "gpt-4o-legacy", "other"], "{top}");

    // No key anywhere names what a client chose; the audit trail keeps it.
    let mut conn = redis.connection().await;
    let keys = all_keys(&mut conn).await;
    let named: Vec<&String> = keys
        .iter()
        .filter(|key| names.iter().any(|n| key.contains(n)) || key.contains("made-up"))
        .collect();
    assert!(named.is_empty(), "{named:?}");
    let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg("ck:usage:log")
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .expect("XRANGE");
    let logged: Vec<Value> = entries
        .iter()
        .map(|(_, fields)| serde_json::from_str(&fields[0].1).expect("record"))
        .collect();
    assert_eq!(logged[2]["model"], "made-up-by-a-client");
    assert_eq!(logged[2]["model_key"], "other");
}

/// What one phase leaves in Redis.
#[derive(Debug)]
struct Footprint {
    /// Every key but the per-request dedupe markers.
    keys: BTreeSet<String>,
    /// `ck:usage:seen:{<request id>}`: one per booked request, each expiring after the
    /// dedupe window.
    markers: usize,
    /// Bytes of every key but the markers (`MEMORY USAGE … SAMPLES 0`), and of those the
    /// audit stream's.
    bytes: u64,
    audit_bytes: u64,
    audit_len: u64,
    used_memory: u64,
    dbsize: u64,
}

async fn footprint(redis: &mut RedisConnection) -> Footprint {
    let all = all_keys(redis).await;
    let (markers, keys): (BTreeSet<String>, BTreeSet<String>) = all
        .into_iter()
        .partition(|key| key.starts_with("ck:usage:seen:"));
    let per_request = marker_pattern().trim_end_matches('*');
    let markers: BTreeSet<String> = markers
        .into_iter()
        .filter(|key| key.starts_with(per_request))
        .collect();
    let mut bytes = 0;
    for key in &keys {
        let usage: Option<u64> = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(key)
            .arg("SAMPLES")
            .arg(0)
            .query_async(redis)
            .await
            .expect("MEMORY USAGE");
        bytes += usage.unwrap_or(0);
    }
    let audit_bytes: Option<u64> = redis::cmd("MEMORY")
        .arg("USAGE")
        .arg("ck:usage:log")
        .arg("SAMPLES")
        .arg(0)
        .query_async(redis)
        .await
        .expect("MEMORY USAGE");
    let audit_len: u64 = redis::cmd("XLEN")
        .arg("ck:usage:log")
        .query_async(redis)
        .await
        .expect("XLEN");
    // One server's INFO, or on a cluster every primary's (address to INFO): summed.
    let info: redis::Value = redis::cmd("INFO")
        .arg("memory")
        .query_async(redis)
        .await
        .expect("INFO");
    let infos: Vec<String> = match info {
        redis::Value::Map(nodes) => nodes
            .into_iter()
            .map(|(_, info)| redis::from_redis_value(info).expect("INFO text"))
            .collect(),
        one => vec![redis::from_redis_value(one).expect("INFO text")],
    };
    let used_memory = infos
        .iter()
        .map(|info| -> u64 {
            info.lines()
                .find_map(|line| line.strip_prefix("used_memory:"))
                .and_then(|n| n.trim().parse().ok())
                .expect("used_memory")
        })
        .sum();
    let dbsize: u64 = redis::cmd("DBSIZE")
        .query_async(redis)
        .await
        .expect("DBSIZE");
    Footprint {
        keys,
        markers: markers.len(),
        bytes,
        audit_bytes: audit_bytes.unwrap_or(0),
        audit_len,
        used_memory,
        dbsize,
    }
}

/// Authorizes requests `ids` (each for its own made-up model, all keyed `other`), 16 at
/// a time, then books their records in batches of 1000.
async fn send(service: &Arc<Service>, ids: std::ops::Range<usize>) {
    let model = |i: usize| format!("client-chosen-model-name-{i:06}");
    let mut pending = Vec::new();
    for i in ids.clone() {
        let service = service.clone();
        let body = ask(&format!("req-{i:06}"), &model(i), Some("other"));
        pending.push(tokio::spawn(
            async move { service.authorize_body(&body).await },
        ));
        if pending.len() == 16 || i + 1 == ids.end {
            for call in pending.drain(..) {
                let (status, body) = call.await.expect("task");
                assert_eq!(
                    (status, &body["allow"]),
                    (StatusCode::OK, &json!(true)),
                    "{body}"
                );
            }
        }
    }
    let records: Vec<Value> = ids
        .map(|i| record(&format!("req-{i:06}"), &model(i), Some("other")))
        .collect();
    for batch in records.chunks(1000) {
        let (status, body) = service.post_usage(batch).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            (&body["accepted"], &body["dead_lettered"]),
            (&json!(batch.len()), &json!(0)),
            "{body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_model_names_leave_redis_flat() {
    const AUDIT_CAP: u64 = 1000;
    let redis = RedisServer::start();
    let service = Arc::new(
        Service::start(chokepoint_policy::Config {
            clock: ManualClock::at(NOW).clock(),
            requests_per_window: 1_000_000_000,
            audit_max_len: AUDIT_CAP,
            ..usage_config(&redis)
        })
        .await,
    );
    // Every model scope has a rate limit and a rolling token budget, so each would
    // have its own rate window, reservations and rolling window if names were scopes.
    service
        .set_limits(
            "model",
            "*",
            json!({"rpm": 1_000_000_000, "tokens": 1_000_000_000_000_u64, "period": "rolling:3600"}),
        )
        .await;
    let mut conn = redis.connection().await;

    send(&service, 0..100).await;
    let baseline = footprint(&mut conn).await;
    send(&service, 100..10_100).await;
    let after = footprint(&mut conn).await;
    let summary = format!(
        "100 names: {} keys ({} markers), used_memory {} B, {} B in other keys ({} B audit, \
         {} entries); 10,100 names: {} keys ({} markers), used_memory {} B, {} B in other \
         keys ({} B audit, {} entries)",
        baseline.dbsize,
        baseline.markers,
        baseline.used_memory,
        baseline.bytes,
        baseline.audit_bytes,
        baseline.audit_len,
        after.dbsize,
        after.markers,
        after.used_memory,
        after.bytes,
        after.audit_bytes,
        after.audit_len,
    );
    println!("{summary}");

    // Not one key more for 10,000 more names: the markers are per request, not per name.
    let added: Vec<&String> = after.keys.difference(&baseline.keys).collect();
    assert!(
        added.is_empty(),
        "{} keys more, e.g. {:?}\n{summary}",
        added.len(),
        &added[..added.len().min(5)]
    );
    // One per request (in the cluster layout, one per request and hash tag: counted
    // here are those of the audit stream's calls, one per request).
    assert_eq!(
        (baseline.markers, after.markers),
        (100, 10_100),
        "{summary}"
    );
    let ttl: i64 = conn.ttl(marker("req-010099")).await.expect("TTL");
    assert!(ttl > 0, "a marker expires: {ttl}");
    // The audit stream stays at its cap (give or take one macro node of 100 entries).
    assert!(
        (AUDIT_CAP..=AUDIT_CAP + 100).contains(&after.audit_len),
        "{summary}"
    );
    // Besides the audit stream, the keys hold what they held for 100 names.
    let others = |f: &Footprint| f.bytes - f.audit_bytes;
    assert!(
        others(&after) <= others(&baseline) + 1024,
        "{} B besides the audit stream, {} B for 100 names\n{summary}",
        others(&after),
        others(&baseline)
    );
    // All that grows is the markers (about 100 B each: every key added is one; the
    // cluster layout has one per request and hash tag) and the audit stream, to its cap.
    let grown = after.used_memory.saturating_sub(baseline.used_memory);
    let markers_added = after.dbsize - baseline.dbsize;
    // A cluster node also indexes every key by its slot, and the cluster's three nodes
    // each have their own overhead.
    let per_marker = if crate::cluster::on_cluster() {
        200
    } else {
        150
    };
    let allowed =
        markers_added * per_marker + (after.audit_bytes - baseline.audit_bytes) + 256 * 1024;
    assert!(
        grown <= allowed,
        "grew {grown} B, allowed {allowed} B\n{summary}"
    );
}
