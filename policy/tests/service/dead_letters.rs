//! An invalid usage record is dead-lettered, not its batch refused: the rest of the
//! batch is booked, the record is kept (with the error naming its field) in the capped
//! stream `ck:usage:dead`, counted in `/metrics`, and the answer is a 200 the filter
//! stops retrying on.

use crate::support::RedisConnection;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{
    authorize_request, new_tenant, new_user, usage_config, usage_for, ManualClock, RedisServer,
    Service,
};

const NOW: u64 = 1_795_694_400_000; // 2026-11-26T12:00:00Z: records book in 2026-11
const MONTH: &str = "2026-11";

/// A service on a clock stopped at [`NOW`].
async fn service(redis: &RedisServer) -> Service {
    Service::start(chokepoint_policy::Config {
        clock: ManualClock::at(NOW).clock(),
        ..usage_config(redis)
    })
    .await
}

/// The dead-letter stream's entries, oldest first, as field maps.
pub async fn dead_letters(redis: &mut RedisConnection) -> Vec<Vec<(String, String)>> {
    let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg("ck:usage:dead")
        .arg("-")
        .arg("+")
        .query_async(redis)
        .await
        .expect("XRANGE");
    entries.into_iter().map(|(_, fields)| fields).collect()
}

fn field<'a>(entry: &'a [(String, String)], name: &str) -> &'a str {
    entry
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {name} in {entry:?}"))
}

fn metric(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{metrics}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_records_are_dead_lettered_and_the_rest_of_the_batch_is_booked_once() {
    let redis = RedisServer::start();
    let service = service(&redis).await;
    let (user, tenant) = (new_user(), new_tenant());
    service
        .set_limits(
            "tenant",
            &tenant,
            json!({"usd_micros": 1_000_000, "period": "month"}),
        )
        .await;
    // The valid record's request holds a reservation its record commits.
    let request = authorize_request(&user, &tenant, 1_000, 50_000);
    let (status, body) = service.authorize_body(&request).await;
    assert_eq!((status, &body["allow"]), (StatusCode::OK, &json!(true)));
    let valid = usage_for(&request, 10, 20, 3_000);
    let mut long_model = usage_for(&request, 1, 1, 1);
    long_model["request_id"] = json!("long-model");
    long_model["model"] = json!("m".repeat(64 * 1024));
    let mut negative = usage_for(&request, 1, 1, 1);
    negative["request_id"] = json!("negative");
    negative["input_tokens"] = json!(-1);
    let batch = json!({"records": [valid, long_model, negative, "not an object"]}).to_string();

    let (status, body) = service.post_usage_raw(&batch).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"accepted": 1, "duplicates": 0, "dead_lettered": 3})
    );

    let mut conn = redis.connection().await;
    let dead = dead_letters(&mut conn).await;
    let errors: Vec<&str> = dead.iter().map(|entry| field(entry, "error")).collect();
    assert_eq!(
        errors,
        [
            "records[1].model must be at most 256 bytes (got 65536)",
            "records[2].input_tokens: invalid value: integer `-1`, expected u64",
            "records[3] must be a JSON object",
        ]
    );
    // The record as sent, cut to 4 KiB, with its full length.
    let long = &dead[0];
    assert_eq!(field(long, "record").len(), 4096);
    assert!(field(long, "record").starts_with('{'));
    assert!(field(long, "record_bytes").parse::<usize>().expect("bytes") > 64 * 1024);
    assert_eq!(field(&dead[2], "record"), "\"not an object\"");
    assert!(dead.iter().all(|entry| !field(entry, "ts_ms").is_empty()));
    let metrics = service.metrics().await;
    assert_eq!(
        metric(&metrics, "chokepoint_policy_usage_dead_lettered_total"),
        3
    );
    assert_eq!(
        metric(&metrics, "chokepoint_policy_usage_invalid_batches_total"),
        0
    );

    // Booked once and committed: the reservation gave way to the actual cost.
    let check = |ledger: &Value| {
        assert_eq!(
            (&ledger["requests"], &ledger["cost_micros"]),
            (&json!(1), &json!(3_000)),
            "{ledger}"
        );
    };
    check(&service.ledger("tenant", &tenant, MONTH).await);
    let reserved: Option<u64> = redis::cmd("HGET")
        .arg(format!("ck:resv:sum:tenant:{{{tenant}}}"))
        .arg("cost_micros")
        .query_async(&mut conn)
        .await
        .expect("HGET");
    assert_eq!(reserved, Some(0));

    // The filter's retry of the same batch charges nothing twice.
    let (status, body) = service.post_usage_raw(&batch).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"accepted": 0, "duplicates": 1, "dead_lettered": 3})
    );
    check(&service.ledger("tenant", &tenant, MONTH).await);
    let logged: u64 = redis::cmd("XLEN")
        .arg("ck:usage:log")
        .query_async(&mut conn)
        .await
        .expect("XLEN");
    assert_eq!(logged, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_invalid_record_is_kept_with_the_error_naming_its_field() {
    let redis = RedisServer::start();
    let service = service(&redis).await;
    let user = new_user();
    let good = |id: &str| {
        json!({"request_id": id, "user": user, "tenant": "acme", "model": "gpt-4o",
               "model_key": "gpt-4o", "input_tokens": 1, "cost_micros": 1})
    };
    let bad = |changes: &[(&str, Value)]| {
        let mut record = good("bad");
        for (field, value) in changes {
            record[*field] = value.clone();
        }
        record
    };
    let long = "x".repeat(257);
    // (record, error fragment)
    let cases: Vec<(Value, &str)> = vec![
        (
            bad(&[("output_tokens", json!(1.5))]),
            "records[1].output_tokens: invalid type: floating point `1.5`",
        ),
        (
            bad(&[("cost_micros", json!(12.0))]),
            "records[1].cost_micros: invalid type: floating point",
        ),
        (
            bad(&[("cached_input_tokens", json!(9_007_199_254_740_993_u64))]),
            "records[1].cached_input_tokens must be at most 2^53 (9007199254740992)",
        ),
        (
            json!({"request_id": "bad", "model": "m"}),
            "records[1].user is required",
        ),
        (
            bad(&[("user", json!("alice"))]),
            "records[1].user must be a UUID",
        ),
        (json!({"user": user}), "records[1].request_id is required"),
        (
            bad(&[("estimated", json!("no"))]),
            "records[1].estimated: invalid type",
        ),
        (
            bad(&[("model_key", json!(long))]),
            "records[1].model_key must be at most 256 bytes (got 257)",
        ),
        (
            bad(&[("model_key", json!(""))]),
            "records[1].model_key must not be empty",
        ),
        (
            bad(&[("tenant", json!(long))]),
            "records[1].tenant must be at most 256 bytes",
        ),
        (
            bad(&[("cost_center", json!(long))]),
            "records[1].cost_center must be at most 256 bytes",
        ),
        (
            bad(&[("groups", json!(["eng", long]))]),
            "records[1].groups[1] must be at most 256 bytes",
        ),
        (
            bad(&[("groups", json!(vec!["g"; 65]))]),
            "records[1].groups must hold at most 64 groups (got 65)",
        ),
        (
            bad(&[("provider", json!(long))]),
            "records[1].provider must be at most 256 bytes",
        ),
        (
            bad(&[("format", json!(long))]),
            "records[1].format must be at most 256 bytes",
        ),
        (
            bad(&[("decision", json!(long))]),
            "records[1].decision must be at most 256 bytes",
        ),
        (
            bad(&[("error", json!(long))]),
            "records[1].error must be at most 256 bytes",
        ),
        (
            bad(&[("trace_id", json!("t".repeat(257)))]),
            "records[1].trace_id must be at most 256 bytes",
        ),
        (
            bad(&[("reservation_id", json!("r".repeat(257)))]),
            "records[1].reservation_id must be at most 256 bytes",
        ),
        (json!([1, 2]), "records[1] must be a JSON object"),
        (json!(null), "records[1] must be a JSON object"),
    ];
    let mut conn = redis.connection().await;
    for (i, (record, needle)) in cases.iter().enumerate() {
        let id = format!("good-{i}");
        let (status, body) = service
            .post_usage(&[good(&id), record.clone(), good(&id)])
            .await;
        assert_eq!(status, StatusCode::OK, "{needle}: {body}");
        assert_eq!(
            body,
            json!({"accepted": 1, "duplicates": 1, "dead_lettered": 1}),
            "{needle}"
        );
        let dead = dead_letters(&mut conn).await;
        assert_eq!(dead.len(), i + 1, "{needle}");
        let error = field(&dead[i], "error");
        assert!(error.contains(needle), "{error:?} lacks {needle:?}");
    }
    let metrics = service.metrics().await;
    assert_eq!(
        metric(&metrics, "chokepoint_policy_usage_dead_lettered_total"),
        cases.len() as u64
    );
    // Nothing invalid reached the ledger: only the good records, each once.
    let ledger = service.ledger("model", "gpt-4o", MONTH).await;
    assert_eq!(ledger["requests"], cases.len(), "{ledger}");
}
