//! The usage ledger over HTTP with a live Redis: every request is booked exactly once,
//! whatever mix of retries, duplicates and outages the filter's batches go through.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::support::RedisConnection;
use redis::AsyncCommands;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{
    assert_unavailable, cluster_layout, json_of, marker, marker_pattern, new_user, usage_config,
    RedisServer, Service, ADMIN_TOKEN,
};

const FIELDS: [&str; 8] = [
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "reasoning_tokens",
    "cache_creation_input_tokens",
    "cost_micros",
    "requests",
    "estimated_requests",
];
const ZERO: [i64; 8] = [0; 8];

// UTC instants the tests book on.
const MAR_10_NOON: u64 = 1_741_608_000_000; // 2025-03-10T12:00:00Z
const MAR_10_LATE: u64 = 1_741_647_600_000; // 2025-03-10T23:00:00Z
const MAR_11_EARLY: u64 = 1_741_654_800_000; // 2025-03-11T01:00:00Z
const APR_1_MIDNIGHT: u64 = 1_743_465_600_000; // 2025-04-01T00:00:00Z

/// A record as the filter sends it. `counts` are input, output, cached input, reasoning
/// and cache-creation tokens, then cost in micro-dollars.
fn record(request_id: &str, user: &str, counts: [u64; 6], ts_ms: u64) -> Value {
    json!({
        "request_id": request_id,
        "user": user,
        "tenant": "acme",
        "groups": ["eng"],
        "cost_center": "cc-1",
        "model": "gpt-4o",
        "provider": "openai",
        "format": "openai_chat",
        "stream": false,
        "input_tokens": counts[0],
        "output_tokens": counts[1],
        "cached_input_tokens": counts[2],
        "reasoning_tokens": counts[3],
        "cache_creation_input_tokens": counts[4],
        "cost_micros": counts[5],
        "estimated": false,
        "status": 200,
        "decision": "allow",
        "latency_ms": 420,
        "ttft_ms": null,
        "completed": true,
        "ts_ms": ts_ms,
    })
}

/// `record` with some fields set (to `null`, too); `without` takes one out entirely.
fn with(mut record: Value, changes: &[(&str, Value)]) -> Value {
    for (field, value) in changes {
        record[*field] = value.clone();
    }
    record
}

fn without(mut record: Value, field: &str) -> Value {
    record.as_object_mut().expect("object").remove(field);
    record
}

fn totals_of(body: &Value) -> [i64; 8] {
    FIELDS.map(|field| {
        body[field]
            .as_i64()
            .unwrap_or_else(|| panic!("{field} in {body}"))
    })
}

/// (accepted, duplicates) of a usage response.
type Counts = (u64, u64);

/// (service, bearer token, query, expected status, expected error code or None for 200)
type AdminCase<'a> = (
    &'a Service,
    Option<&'a str>,
    &'a [(&'a str, &'a str)],
    StatusCode,
    Option<&'a str>,
);

fn accepted(status: StatusCode, body: &Value) -> Counts {
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body.as_object().map(|o| o.len()),
        Some(3),
        "only accepted, duplicates and dead_lettered: {body}"
    );
    assert_eq!(body["dead_lettered"], 0, "{body}");
    (
        body["accepted"].as_u64().expect("accepted"),
        body["duplicates"].as_u64().expect("duplicates"),
    )
}

async fn keys(redis: &mut RedisConnection, pattern: &str) -> BTreeSet<String> {
    let keys: Vec<String> = redis.keys(pattern).await.expect("KEYS");
    keys.into_iter().collect()
}

/// Every ledger hash, field by field.
async fn ledger_snapshot(
    redis: &mut RedisConnection,
) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut snapshot = BTreeMap::new();
    for key in keys(redis, "ck:ledger:*").await {
        let hash: BTreeMap<String, String> = redis.hgetall(&key).await.expect("HGETALL");
        snapshot.insert(key, hash);
    }
    snapshot
}

async fn audit_len(redis: &mut RedisConnection) -> u64 {
    redis::cmd("XLEN")
        .arg("ck:usage:log")
        .query_async(redis)
        .await
        .expect("XLEN")
}

fn metric_line(metrics: &str, line: &str) -> bool {
    metrics.lines().any(|l| l == line)
}

/// Today's UTC date by the system's `date`, an oracle independent of the service's
/// own calendar code.
fn utc_today() -> String {
    let output = Command::new("date")
        .args(["-u", "+%F"])
        .output()
        .expect("run date");
    String::from_utf8(output.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}

fn now_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_millis(),
    )
    .expect("fits")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_booked_per_scope_day_and_month() {
    let redis = RedisServer::start();
    let service = Service::start(usage_config(&redis)).await;
    let (alice, bob) = (new_user(), new_user());

    let batch = [
        record("r1", &alice, [100, 10, 50, 5, 0, 1000], MAR_10_NOON),
        with(
            record("r2", &alice, [200, 20, 0, 0, 30, 2000], MAR_10_LATE),
            &[
                ("model", json!("claude-sonnet")),
                ("cost_center", Value::Null),
                ("estimated", json!(true)),
                ("stream", json!(true)),
            ],
        ),
        with(
            record("r3", &bob, [1, 2, 3, 4, 5, 6], MAR_11_EARLY),
            &[("tenant", json!("globex")), ("trace_id", json!("trace-r3"))],
        ),
        record("r4", &alice, [7, 0, 0, 0, 0, 70], APR_1_MIDNIGHT),
    ];
    let (status, body) = service.post_usage(&batch).await;
    assert_eq!(accepted(status, &body), (4, 0));

    let r1 = [100, 10, 50, 5, 0, 1000, 1, 0];
    let r2 = [200, 20, 0, 0, 30, 2000, 1, 1];
    let r3 = [1, 2, 3, 4, 5, 6, 1, 0];
    let r4 = [7, 0, 0, 0, 0, 70, 1, 0];
    let sum = |parts: &[[i64; 8]]| -> [i64; 8] {
        let mut total = ZERO;
        for part in parts {
            for (t, p) in total.iter_mut().zip(part) {
                *t += p;
            }
        }
        total
    };
    // (scope, id, period, expected totals)
    let cases: Vec<(&str, &str, &str, [i64; 8])> = vec![
        ("user", &alice, "2025-03-10", sum(&[r1, r2])),
        ("user", &alice, "2025-03", sum(&[r1, r2])),
        ("user", &alice, "2025-03-11", ZERO),
        ("user", &alice, "2025-04-01", r4),
        ("user", &alice, "2025-04", r4),
        ("user", &bob, "2025-03-11", r3),
        ("user", &bob, "2025-03", r3),
        ("user", &bob, "2025-03-10", ZERO),
        ("tenant", "acme", "2025-03-10", sum(&[r1, r2])),
        ("tenant", "acme", "2025-03", sum(&[r1, r2])),
        ("tenant", "acme", "2025-04", r4),
        ("tenant", "globex", "2025-03", r3),
        ("tenant", "initech", "2025-03", ZERO),
        ("model", "gpt-4o", "2025-03-10", r1),
        ("model", "gpt-4o", "2025-03", sum(&[r1, r3])),
        ("model", "claude-sonnet", "2025-03", r2),
        ("cost_center", "cc-1", "2025-03-10", r1),
        ("cost_center", "cc-1", "2025-03", sum(&[r1, r3])),
        ("cost_center", "cc-1", "2025-04-01", r4),
        ("cost_center", "cc-1", "2025-02", ZERO),
    ];
    for (scope, id, period, expected) in cases {
        let body = service.ledger(scope, id, period).await;
        let mut want = json!({"scope": scope, "id": id, "period": period});
        for (field, value) in FIELDS.iter().zip(expected) {
            want[*field] = json!(value);
        }
        assert_eq!(body, want, "{scope} {id} {period}");
    }
    // The ledger holds users under their canonical id; reads canonicalise too.
    let upper = service
        .ledger("user", &alice.to_uppercase(), "2025-03")
        .await;
    assert_eq!(upper["id"], alice.as_str());
    assert_eq!(totals_of(&upper), sum(&[r1, r2]));

    let mut conn = redis.connection().await;
    let mut expected_keys = BTreeSet::new();
    let key_sets: [(&str, &str, &[&str]); 7] = [
        (
            "user",
            &alice,
            &["2025-03-10", "2025-03", "2025-04-01", "2025-04"],
        ),
        ("user", &bob, &["2025-03-11", "2025-03"]),
        (
            "tenant",
            "acme",
            &["2025-03-10", "2025-03", "2025-04-01", "2025-04"],
        ),
        ("tenant", "globex", &["2025-03-11", "2025-03"]),
        (
            "model",
            "gpt-4o",
            &[
                "2025-03-10",
                "2025-03-11",
                "2025-03",
                "2025-04-01",
                "2025-04",
            ],
        ),
        ("model", "claude-sonnet", &["2025-03-10", "2025-03"]),
        (
            "cost_center",
            "cc-1",
            &[
                "2025-03-10",
                "2025-03-11",
                "2025-03",
                "2025-04-01",
                "2025-04",
            ],
        ),
    ];
    for (scope, id, periods) in key_sets {
        for period in periods {
            expected_keys.insert(format!("ck:ledger:{scope}:{{{id}}}:{period}"));
        }
    }
    assert_eq!(keys(&mut conn, "ck:ledger:*").await, expected_keys);

    let seen: BTreeSet<String> = ["r1", "r2", "r3", "r4"]
        .iter()
        .map(|id| marker(id))
        .collect();
    assert_eq!(keys(&mut conn, marker_pattern()).await, seen);
    for key in &seen {
        let ttl: i64 = conn.ttl(key).await.expect("TTL");
        assert!((604_790..=604_800).contains(&ttl), "{key} TTL {ttl}");
    }

    // The audit stream keeps each booked record as sent, with the day it was booked on.
    assert_eq!(audit_len(&mut conn).await, 4);
    // Each entry is [id, [field, value, ...]]: `record` and `day`.
    let entries: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
        .arg("ck:usage:log")
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .expect("XRANGE");
    let logged: Vec<Value> = entries
        .iter()
        .map(|(_, fields)| {
            assert_eq!(fields.len(), 4, "{fields:?}");
            assert_eq!((fields[0].as_str(), fields[2].as_str()), ("record", "day"));
            let mut record: Value = serde_json::from_str(&fields[1]).expect("record is JSON");
            record["(day)"] = json!(fields[3]);
            record
        })
        .collect();
    let ids: Vec<&str> = logged
        .iter()
        .map(|r| r["request_id"].as_str().expect("request_id"))
        .collect();
    assert_eq!(ids, ["r1", "r2", "r3", "r4"]);
    assert_eq!(logged[0]["user"], alice.as_str());
    assert_eq!(logged[0]["(day)"], "2025-03-10");
    assert_eq!(logged[1]["estimated"], true);
    assert_eq!(logged[1]["cost_center"], Value::Null);
    assert_eq!(logged[3]["(day)"], "2025-04-01");
    // Raw means raw: fields the ledger does not know are kept.
    assert_eq!(logged[2]["trace_id"], "trace-r3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_batch_is_all_duplicates_and_changes_nothing() {
    let redis = RedisServer::start();
    let service = Service::start(usage_config(&redis)).await;
    let mut conn = redis.connection().await;
    let user = new_user();
    let batch: Vec<Value> = (0..3)
        .map(|i| record(&format!("r{i}"), &user, [10, 20, 0, 0, 0, 5], MAR_10_NOON))
        .collect();

    let (status, body) = service.post_usage(&batch).await;
    assert_eq!(accepted(status, &body), (3, 0));
    let before = ledger_snapshot(&mut conn).await;
    assert!(!before.is_empty());
    let logged = audit_len(&mut conn).await;

    for _ in 0..2 {
        let (status, body) = service.post_usage(&batch).await;
        assert_eq!(accepted(status, &body), (0, 3));
        assert_eq!(ledger_snapshot(&mut conn).await, before);
        assert_eq!(
            audit_len(&mut conn).await,
            logged,
            "duplicates are not logged"
        );
    }
    let body = service.ledger("user", &user, "2025-03").await;
    assert_eq!(totals_of(&body), [30, 60, 0, 0, 0, 15, 3, 0]);

    let metrics = service.metrics().await;
    for line in [
        "chokepoint_policy_usage_records_total{result=\"accepted\"} 3",
        "chokepoint_policy_usage_records_total{result=\"duplicate\"} 6",
        "chokepoint_policy_usage_records_total{result=\"error\"} 0",
    ] {
        assert!(
            metric_line(&metrics, line),
            "missing {line:?} in\n{metrics}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partly_new_batch_books_only_the_new_records() {
    let redis = RedisServer::start();
    let service = Service::start(usage_config(&redis)).await;
    let user = new_user();
    let rec = |id: &str, input: u64| record(id, &user, [input, 1, 0, 0, 0, 10], MAR_10_NOON);

    // (batch, expected (accepted, duplicates), expected user month requests and input tokens)
    let steps: Vec<(Vec<Value>, Counts, (i64, i64))> = vec![
        (vec![rec("a", 1), rec("b", 2)], (2, 0), (2, 3)),
        // Old and new interleaved, as a retry after a partial failure looks.
        (
            vec![rec("c", 4), rec("a", 1), rec("d", 8), rec("b", 2)],
            (2, 2),
            (4, 15),
        ),
        // The same new record twice in one batch counts once.
        (vec![rec("e", 16), rec("e", 16)], (1, 1), (5, 31)),
        (vec![rec("a", 1), rec("e", 16)], (0, 2), (5, 31)),
    ];
    for (step, (batch, counts, (requests, input))) in steps.into_iter().enumerate() {
        let (status, body) = service.post_usage(&batch).await;
        assert_eq!(accepted(status, &body), counts, "step {step}");
        let totals = totals_of(&service.ledger("user", &user, "2025-03").await);
        assert_eq!((totals[6], totals[0]), (requests, input), "step {step}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_posts_of_the_same_records_count_them_once() {
    let redis = RedisServer::start();
    let service = Arc::new(Service::start(usage_config(&redis)).await);
    let user = new_user();

    // (records per batch, concurrent posts of that same batch)
    for (size, posts) in [(1_usize, 50_usize), (10, 20)] {
        let batch: Vec<Value> = (0..size)
            .map(|i| {
                record(
                    &format!("c{size}-{i}"),
                    &user,
                    [3, 1, 0, 0, 0, 7],
                    MAR_10_NOON,
                )
            })
            .collect();
        let before = totals_of(&service.ledger("user", &user, "2025-03-10").await);
        let calls: Vec<_> = (0..posts)
            .map(|_| {
                let service = service.clone();
                let batch = batch.clone();
                tokio::spawn(async move { service.post_usage(&batch).await })
            })
            .collect();
        let (mut booked, mut duplicates) = (0, 0);
        for call in calls {
            let (status, body) = call.await.expect("task");
            let (a, d) = accepted(status, &body);
            booked += a;
            duplicates += d;
        }
        assert_eq!(booked, size as u64, "batch of {size}");
        assert_eq!(duplicates, (size * (posts - 1)) as u64, "batch of {size}");
        let after = totals_of(&service.ledger("user", &user, "2025-03-10").await);
        let size = size as i64;
        assert_eq!(after[6] - before[6], size, "requests");
        assert_eq!(after[0] - before[0], 3 * size, "input tokens");
        assert_eq!(after[5] - before[5], 7 * size, "cost");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_batches_get_400_naming_the_field_and_book_nothing() {
    let redis = RedisServer::start();
    let service = Service::start(usage_config(&redis)).await;
    let user = new_user();
    let good = record("g", &user, [1, 1, 0, 0, 0, 1], MAR_10_NOON);
    let batch = |records: Vec<Value>| json!({ "records": records }).to_string();

    let full_batch = |n: usize| {
        batch(
            (0..n)
                .map(|i| {
                    with(
                        good.clone(),
                        &[("request_id", json!(format!("req-{i:04}")))],
                    )
                })
                .collect(),
        )
    };
    let oversized = full_batch(1001);
    // Far past the 64 KiB limit of other endpoints: usage batches have their own.
    assert!(oversized.len() > 256 * 1024, "{} bytes", oversized.len());
    let huge = batch(vec![with(
        good.clone(),
        &[("pad", json!("x".repeat(1100 * 1024)))],
    )]);

    let json_type = Some("application/json");
    // Only whole-batch problems: an invalid record on its own is dead-lettered instead
    // (see dead_letters.rs).
    // (content type, body, status, code, message fragment)
    let cases: Vec<(Option<&str>, String, StatusCode, &str, &str)> = vec![
        (
            json_type,
            oversized,
            StatusCode::BAD_REQUEST,
            "invalid_field",
            "records must hold at most 1000 records per batch (got 1001)",
        ),
        (
            json_type,
            "{}".into(),
            StatusCode::BAD_REQUEST,
            "missing_field",
            "records is required",
        ),
        (
            json_type,
            "{\"records\":7}".into(),
            StatusCode::BAD_REQUEST,
            "invalid_field",
            "records: invalid type",
        ),
        (
            json_type,
            "{\"records\":[".into(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "not valid JSON",
        ),
        (
            Some("text/plain"),
            batch(vec![good.clone()]),
            StatusCode::BAD_REQUEST,
            "unsupported_content_type",
            "content-type must be application/json",
        ),
        (
            json_type,
            huge,
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "too large",
        ),
    ];
    let count = cases.len();
    for (content_type, body, status, code, needle) in cases {
        let mut request = service.gateway_post("/v1/usage").body(body.clone());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let (got_status, got) = json_of(request.send().await.expect("send")).await;
        let shown = &body[..body.len().min(100)];
        assert_eq!(got_status, status, "{shown}: {got}");
        assert_eq!(got["error"]["type"], "invalid_request_error", "{got}");
        assert_eq!(got["error"]["code"], code, "{shown}: {got}");
        let message = got["error"]["message"].as_str().expect("message");
        assert!(
            message.contains(needle),
            "{shown}: {message:?} lacks {needle:?}"
        );
    }

    // Nothing reached Redis: no marker, no ledger, no audit entry.
    let mut conn = redis.connection().await;
    let size: u64 = redis::cmd("DBSIZE")
        .query_async(&mut conn)
        .await
        .expect("DBSIZE");
    assert_eq!(size, 0);
    let metrics = service.metrics().await;
    let line = format!("chokepoint_policy_usage_invalid_batches_total {count}");
    assert!(metric_line(&metrics, &line), "{metrics}");

    // A full batch of 1000 is fine.
    let (status, body) = service.post_usage_raw(&full_batch(1000)).await;
    assert_eq!(accepted(status, &body), (1000, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_gives_503_and_a_retry_after_the_restart_is_accepted() {
    if crate::support::skip_on_cluster(
        "redis_down_gives_503_and_a_retry_after_the_restart_is_accepted",
        "kills and restarts the one redis-server",
    ) {
        return;
    }
    let mut redis = RedisServer::start();
    let service = Service::start(usage_config(&redis)).await;
    let user = new_user();
    let first = [record("a", &user, [1, 1, 0, 0, 0, 1], MAR_10_NOON)];
    let (status, body) = service.post_usage(&first).await;
    assert_eq!(accepted(status, &body), (1, 0));

    redis.kill();
    let batch: Vec<Value> = ["b", "c", "d"]
        .iter()
        .map(|id| record(id, &user, [2, 2, 0, 0, 0, 2], MAR_10_NOON))
        .collect();
    let started = Instant::now();
    let (status, body) = service.post_usage(&batch).await;
    assert_unavailable(status, &body);
    assert!(started.elapsed() < Duration::from_secs(2));
    let metrics = service.metrics().await;
    assert!(
        metric_line(
            &metrics,
            "chokepoint_policy_usage_records_total{result=\"error\"} 3"
        ),
        "{metrics}"
    );

    redis.restart();
    // The filter keeps the batch and retries until it is acknowledged.
    let deadline = Instant::now() + Duration::from_secs(5);
    let body = loop {
        let (status, body) = service.post_usage(&batch).await;
        if status == StatusCode::OK {
            break body;
        }
        assert_unavailable(status, &body);
        assert!(Instant::now() < deadline, "no recovery within 5 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(accepted(StatusCode::OK, &body), (3, 0));
    // The restarted Redis has no data (no persistence): only the retried batch is there.
    let totals = totals_of(&service.ledger("user", &user, "2025-03-10").await);
    assert_eq!(totals, [6, 6, 0, 0, 0, 6, 3, 0]);
    let (status, body) = service.post_usage(&batch).await;
    assert_eq!(accepted(status, &body), (0, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_reads_need_the_admin_token() {
    let redis = RedisServer::start();
    let guarded = Service::start(usage_config(&redis)).await;
    let open = Service::start(crate::support::config(&redis, 10, Duration::from_secs(60))).await;
    let user = new_user();
    let query = [
        ("scope", "user"),
        ("id", user.as_str()),
        ("period", "2025-03"),
    ];
    let bad_query = [("scope", "group"), ("id", "eng"), ("period", "2025-03")];
    let wrong_prefix = &ADMIN_TOKEN[..ADMIN_TOKEN.len() - 1];
    let too_long = format!("{ADMIN_TOKEN}x");

    let cases: Vec<AdminCase<'_>> = vec![
        (
            &open,
            None,
            &query,
            StatusCode::FORBIDDEN,
            Some("admin_disabled"),
        ),
        (
            &open,
            Some(ADMIN_TOKEN),
            &query,
            StatusCode::FORBIDDEN,
            Some("admin_disabled"),
        ),
        (
            &guarded,
            None,
            &query,
            StatusCode::UNAUTHORIZED,
            Some("missing_admin_token"),
        ),
        (
            &guarded,
            Some("nope"),
            &query,
            StatusCode::UNAUTHORIZED,
            Some("invalid_admin_token"),
        ),
        (
            &guarded,
            Some(wrong_prefix),
            &query,
            StatusCode::UNAUTHORIZED,
            Some("invalid_admin_token"),
        ),
        (
            &guarded,
            Some(&too_long),
            &query,
            StatusCode::UNAUTHORIZED,
            Some("invalid_admin_token"),
        ),
        // Authentication comes before any look at the query.
        (
            &guarded,
            Some("nope"),
            &bad_query,
            StatusCode::UNAUTHORIZED,
            Some("invalid_admin_token"),
        ),
        (
            &guarded,
            Some(ADMIN_TOKEN),
            &bad_query,
            StatusCode::BAD_REQUEST,
            Some("invalid_field"),
        ),
        (
            &guarded,
            Some(ADMIN_TOKEN),
            &[("scope", "user"), ("id", "alice"), ("period", "2025-03")],
            StatusCode::BAD_REQUEST,
            Some("invalid_field"),
        ),
        (
            &guarded,
            Some(ADMIN_TOKEN),
            &[("scope", "tenant"), ("id", "acme"), ("period", "2025-13")],
            StatusCode::BAD_REQUEST,
            Some("invalid_field"),
        ),
        (
            &guarded,
            Some(ADMIN_TOKEN),
            &[("scope", "tenant"), ("period", "2025-03")],
            StatusCode::BAD_REQUEST,
            Some("missing_field"),
        ),
        (&guarded, Some(ADMIN_TOKEN), &query, StatusCode::OK, None),
    ];
    for (step, (service, token, query, status, code)) in cases.into_iter().enumerate() {
        let response = service.admin_usage(token, query).await;
        let challenge = response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().expect("ascii").to_owned());
        let (got_status, body) = json_of(response).await;
        assert_eq!(got_status, status, "step {step}: {body}");
        assert_eq!(body["error"]["code"].as_str(), code, "step {step}: {body}");
        assert_eq!(
            challenge.as_deref(),
            (status == StatusCode::UNAUTHORIZED).then_some("Bearer"),
            "step {step}"
        );
        if status == StatusCode::FORBIDDEN {
            let message = body["error"]["message"].as_str().expect("message");
            assert!(
                message.contains("no admin token is configured"),
                "{message}"
            );
        }
        if status == StatusCode::OK {
            assert_eq!(totals_of(&body), ZERO, "nothing booked yet: {body}");
        }
    }

    // A GET on the write endpoint, and a POST on the read one, are JSON 405s.
    let (status, body) = json_of(guarded.get("/v1/usage").await).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");
    let response = guarded
        .http
        .post(format!("{}/v1/admin/usage", guarded.admin_base))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_without_tenant_model_or_cost_center_skip_those_scopes() {
    let redis = RedisServer::start();
    let service = Service::start(usage_config(&redis)).await;
    let mut conn = redis.connection().await;
    let user = new_user();
    let base = record("n1", &user, [5, 5, 0, 0, 0, 5], MAR_10_NOON);
    let batch = [
        with(
            base.clone(),
            &[
                ("tenant", Value::Null),
                ("model", Value::Null),
                ("cost_center", Value::Null),
            ],
        ),
        // Absent, and blank, name no scope either.
        with(
            without(without(base.clone(), "tenant"), "cost_center"),
            &[("request_id", json!("n2")), ("model", json!("  "))],
        ),
        with(
            base.clone(),
            &[
                ("request_id", json!("n3")),
                ("tenant", json!("")),
                ("model", Value::Null),
                ("cost_center", Value::Null),
            ],
        ),
    ];
    let (status, body) = service.post_usage(&batch).await;
    assert_eq!(accepted(status, &body), (3, 0));

    let expected: BTreeSet<String> = ["2025-03-10", "2025-03"]
        .iter()
        .map(|period| format!("ck:ledger:user:{{{user}}}:{period}"))
        .collect();
    assert_eq!(keys(&mut conn, "ck:ledger:*").await, expected);
    let totals = totals_of(&service.ledger("user", &user, "2025-03").await);
    assert_eq!(totals, [15, 15, 0, 0, 0, 15, 3, 0]);
    assert_eq!(audit_len(&mut conn).await, 3, "all three are still audited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_day_comes_from_ts_ms() {
    let redis = RedisServer::start();
    let service = Service::start(usage_config(&redis)).await;
    let mut conn = redis.connection().await;
    let today_before = utc_today();
    let two_days_ahead = now_ms() + 2 * 86_400_000;

    // (ts_ms as sent; None leaves the field out; expected day, or None for "today")
    let cases: Vec<(Option<Value>, Option<&str>)> = vec![
        (Some(json!(1_735_689_599_999_u64)), Some("2024-12-31")),
        (Some(json!(1_735_689_600_000_u64)), Some("2025-01-01")),
        (Some(json!(1_709_208_000_000_u64)), Some("2024-02-29")),
        (Some(json!(MAR_10_LATE)), Some("2025-03-10")),
        (Some(json!(MAR_11_EARLY)), Some("2025-03-11")),
        // Missing, null, or beyond a day ahead of the server's clock: the server's day.
        (None, None),
        (Some(Value::Null), None),
        (Some(json!(two_days_ahead)), None),
    ];
    let mut users = Vec::new();
    let mut batch = Vec::new();
    for (i, (ts_ms, _)) in cases.iter().enumerate() {
        let user = new_user();
        let mut rec = without(
            record(&format!("d{i}"), &user, [1, 0, 0, 0, 0, 1], 0),
            "ts_ms",
        );
        if let Some(ts_ms) = ts_ms {
            rec["ts_ms"] = ts_ms.clone();
        }
        batch.push(rec);
        users.push(user);
    }
    let (status, body) = service.post_usage(&batch).await;
    assert_eq!(accepted(status, &body), (cases.len() as u64, 0));
    let today_after = utc_today();

    for ((ts_ms, expected), user) in cases.iter().zip(&users) {
        let user_keys = keys(&mut conn, &format!("ck:ledger:user:{{{user}}}:*")).await;
        let day = user_keys
            .iter()
            .filter_map(|key| key.rsplit(':').next())
            .find(|period| period.len() == 10)
            .unwrap_or_else(|| panic!("no day key for {ts_ms:?}: {user_keys:?}"))
            .to_owned();
        match expected {
            Some(expected) => assert_eq!(day, *expected, "ts_ms {ts_ms:?}"),
            // Midnight may pass during the test.
            None => assert!(
                day == today_before || day == today_after,
                "ts_ms {ts_ms:?}: {day} is not today ({today_before}/{today_after})"
            ),
        }
        assert_eq!(user_keys.len(), 2, "one day and one month: {user_keys:?}");
        let month = &day[..7];
        for period in [day.as_str(), month] {
            let totals = totals_of(&service.ledger("user", user, period).await);
            assert_eq!(totals[6], 1, "ts_ms {ts_ms:?} period {period}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn booking_survives_a_script_flush() {
    let redis = RedisServer::start();
    let service = Service::start(usage_config(&redis)).await;
    let mut conn = redis.connection().await;
    let user = new_user();
    let first = record("f1", &user, [1, 0, 0, 0, 0, 0], MAR_10_NOON);
    let (status, body) = service.post_usage(std::slice::from_ref(&first)).await;
    assert_eq!(accepted(status, &body), (1, 0));

    let () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut conn)
        .await
        .expect("SCRIPT FLUSH");
    let second = record("f2", &user, [2, 0, 0, 0, 0, 0], MAR_10_NOON);
    let (status, body) = service.post_usage(&[first, second]).await;
    assert_eq!(accepted(status, &body), (1, 1), "reloaded, dedupe intact");
    let totals = totals_of(&service.ledger("user", &user, "2025-03-10").await);
    assert_eq!((totals[0], totals[6]), (3, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_is_booked_again_only_after_the_dedupe_window() {
    let redis = RedisServer::start();
    let service = Service::start(chokepoint_policy::Config {
        usage_dedupe_window: Duration::from_secs(1),
        ..usage_config(&redis)
    })
    .await;
    let mut conn = redis.connection().await;
    let user = new_user();
    let batch = [record("w1", &user, [1, 0, 0, 0, 0, 0], MAR_10_NOON)];

    let (status, body) = service.post_usage(&batch).await;
    assert_eq!(accepted(status, &body), (1, 0));
    let pttl: i64 = conn.pttl(marker("w1")).await.expect("PTTL");
    assert!((1..=1000).contains(&pttl), "marker PTTL {pttl}");
    let (status, body) = service.post_usage(&batch).await;
    assert_eq!(accepted(status, &body), (0, 1));

    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let exists: bool = conn.exists(marker("w1")).await.expect("EXISTS");
        if !exists {
            break;
        }
        assert!(Instant::now() < deadline, "marker did not expire");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, body) = service.post_usage(&batch).await;
    assert_eq!(
        accepted(status, &body),
        (1, 0),
        "forgotten after the window"
    );
    let totals = totals_of(&service.ledger("user", &user, "2025-03-10").await);
    assert_eq!(totals[6], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_that_cannot_be_booked_leaves_nothing_behind() {
    let redis = RedisServer::start();
    let service = Service::start(usage_config(&redis)).await;
    let mut conn = redis.connection().await;
    let (alice, bob) = (new_user(), new_user());
    let fine = with(
        record("ok", &alice, [1, 1, 0, 0, 0, 1], MAR_10_NOON),
        &[
            ("tenant", json!("globex")),
            ("model", json!("gpt-4o-mini")),
            ("cost_center", Value::Null),
        ],
    );
    let blocked = record("blocked", &bob, [2, 2, 0, 0, 0, 2], MAR_10_NOON);
    let batch = [fine, blocked];

    // (what breaks one of `blocked`'s ledger keys, how to repair it)
    let breakages: [(&str, redis::Cmd, redis::Cmd); 2] = [
        (
            "a ledger key of the wrong type",
            redis::cmd("SET")
                .arg("ck:ledger:tenant:{acme}:2025-03-10")
                .arg("oops")
                .clone(),
            redis::cmd("DEL")
                .arg("ck:ledger:tenant:{acme}:2025-03-10")
                .clone(),
        ),
        (
            "a ledger field that is not an integer",
            redis::cmd("HSET")
                .arg("ck:ledger:model:{gpt-4o}:2025-03")
                .arg("output_tokens")
                .arg("lots")
                .clone(),
            redis::cmd("HDEL")
                .arg("ck:ledger:model:{gpt-4o}:2025-03")
                .arg("output_tokens")
                .clone(),
        ),
    ];
    for (round, (what, breakage, repair)) in breakages.into_iter().enumerate() {
        let () = redis::cmd("FLUSHALL")
            .query_async(&mut conn)
            .await
            .expect("FLUSHALL");
        let () = breakage.query_async(&mut conn).await.expect("break");

        let (status, body) = service.post_usage(&batch).await;
        assert_unavailable(status, &body);
        // The other record went through; the blocked one left no trace at all (in the
        // cluster layout, none but its share in the slots that could take it, its user's
        // ledger among them: the retry below completes it, and the totals it checks are
        // the same).
        assert!(
            conn.exists::<_, bool>(marker("ok")).await.expect("EXISTS"),
            "{what}"
        );
        assert!(
            !conn
                .exists::<_, bool>(marker("blocked"))
                .await
                .expect("EXISTS"),
            "{what}"
        );
        if !cluster_layout() {
            assert!(
                keys(&mut conn, &format!("ck:ledger:user:{{{bob}}}:*"))
                    .await
                    .is_empty(),
                "{what}"
            );
        }
        assert_eq!(audit_len(&mut conn).await, 1, "{what}");
        let metrics = service.metrics().await;
        let errors = format!(
            "chokepoint_policy_usage_records_total{{result=\"error\"}} {}",
            round + 1
        );
        assert!(metric_line(&metrics, &errors), "{what}: {metrics}");

        // Once repaired, the filter's retry books exactly the missing record.
        let () = repair.query_async(&mut conn).await.expect("repair");
        let (status, body) = service.post_usage(&batch).await;
        assert_eq!(accepted(status, &body), (1, 1), "{what}");
        let totals = totals_of(&service.ledger("user", &bob, "2025-03-10").await);
        assert_eq!(totals, [2, 2, 0, 0, 0, 2, 1, 0], "{what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_total_saturates_instead_of_overflowing() {
    let redis = RedisServer::start();
    let service = Service::start(usage_config(&redis)).await;
    let mut conn = redis.connection().await;
    let user = new_user();
    let key = format!("ck:ledger:user:{{{user}}}:2025-03");
    let () = conn
        .hset(&key, "cost_micros", "9223372036854775000")
        .await
        .expect("HSET");

    let max = 9_007_199_254_740_992_u64;
    for (i, expected_requests) in [(0, 1), (1, 2)] {
        let batch = [record(
            &format!("s{i}"),
            &user,
            [4, 0, 0, 0, 0, max],
            MAR_10_NOON,
        )];
        let (status, body) = service.post_usage(&batch).await;
        assert_eq!(accepted(status, &body), (1, 0));
        let cost: String = conn.hget(&key, "cost_micros").await.expect("HGET");
        assert_eq!(cost, i64::MAX.to_string());
        let totals = totals_of(&service.ledger("user", &user, "2025-03").await);
        assert_eq!(totals[5], i64::MAX);
        assert_eq!(totals[6], expected_requests, "other fields count on");
        assert_eq!(totals[0], 4 * expected_requests);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_audit_stream_off_records_are_booked_once_and_not_logged() {
    let redis = RedisServer::start();
    let service = Service::start(chokepoint_policy::Config {
        usage_audit_stream: false,
        ..usage_config(&redis)
    })
    .await;
    let mut conn = redis.connection().await;
    let user = new_user();
    let rec = |id: &str, input: u64| {
        with(
            record(id, &user, [input, 1, 0, 0, 0, 10], MAR_10_NOON),
            &[("client", json!("claude-code")), ("session", json!("s-1"))],
        )
    };

    // (batch, expected (accepted, duplicates), expected user month requests and input
    // tokens): exactly once per request id, as with the stream on.
    let steps: Vec<(Vec<Value>, Counts, (i64, i64))> = vec![
        (vec![rec("a", 1), rec("b", 2), rec("c", 4)], (3, 0), (3, 7)),
        (vec![rec("a", 1), rec("b", 2), rec("c", 4)], (0, 3), (3, 7)),
        (vec![rec("d", 8), rec("a", 1), rec("d", 8)], (1, 2), (4, 15)),
    ];
    for (step, (batch, counts, (requests, input))) in steps.into_iter().enumerate() {
        let (status, body) = service.post_usage(&batch).await;
        assert_eq!(accepted(status, &body), counts, "step {step}");
        let totals = totals_of(&service.ledger("user", &user, "2025-03").await);
        assert_eq!((totals[6], totals[0]), (requests, input), "step {step}");
    }
    assert_eq!(audit_len(&mut conn).await, 0, "nothing is logged");
    assert_eq!(
        keys(&mut conn, marker_pattern()).await.len(),
        4,
        "every booked request id is still remembered"
    );

    // What reads the stream says it is off, in the API's error shape.
    for path in [
        "/v1/admin/audit?limit=10",
        "/v1/admin/usage?by=session&period=2025-03",
        "/v1/admin/usage?by=client&period=2025-03",
    ] {
        let (status, body) = service.admin(reqwest::Method::GET, path, None).await;
        assert_eq!(status, StatusCode::CONFLICT, "{path}: {body}");
        assert_eq!(body["error"]["code"], "audit_stream_off", "{path}: {body}");
    }
    let (status, health) = json_of(service.get("/healthz").await).await;
    assert_eq!(status, StatusCode::OK, "{health}");
    assert_eq!(health["usage_audit_stream"], false, "{health}");
}
