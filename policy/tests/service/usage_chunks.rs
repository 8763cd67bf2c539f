//! Usage records are booked, and lease slots released, many per script call (up to 64;
//! see store/usage.rs). A call must end exactly as one call per record would, fail no
//! record but the one that cannot be booked, and count every record exactly.

use std::collections::{BTreeMap, BTreeSet};

use crate::support::RedisConnection;
use redis::AsyncCommands;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{
    assert_unavailable, cluster_layout, marker, reservation_prefix, usage_config, ManualClock,
    RedisServer, Service,
};

const NOV_25_NOON: u64 = 1_795_608_000_000; // 2026-11-25T12:00:00Z
const NOV_26_EARLY: u64 = 1_795_654_800_000; // 2026-11-26T01:00:00Z
const NOW: u64 = 1_795_694_400_000; // 2026-11-26T12:00:00Z

const USER: &str = "0190a6f2-7c1e-8b3a-9f00-00000000c0de";

/// Everything in Redis, key by key, as comparable text. Stream entries without their
/// ids (which come from the wall clock); of TTLs only whether there is one.
async fn snapshot(redis: &mut RedisConnection) -> BTreeMap<String, String> {
    let keys: Vec<String> = redis.keys("*").await.expect("KEYS");
    let mut all = BTreeMap::new();
    for key in keys {
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(redis)
            .await
            .expect("TYPE");
        let content = match kind.as_str() {
            "string" => {
                let value: String = redis.get(&key).await.expect("GET");
                value
            }
            "hash" => {
                let hash: BTreeMap<String, String> = redis.hgetall(&key).await.expect("HGETALL");
                format!("{hash:?}")
            }
            "zset" => {
                let members: Vec<(String, f64)> =
                    redis.zrange_withscores(&key, 0, -1).await.expect("ZRANGE");
                format!("{members:?}")
            }
            "set" => {
                let mut members: Vec<String> = redis.smembers(&key).await.expect("SMEMBERS");
                members.sort();
                format!("{members:?}")
            }
            "stream" => {
                let entries: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
                    .arg(&key)
                    .arg("-")
                    .arg("+")
                    .query_async(redis)
                    .await
                    .expect("XRANGE");
                let fields: Vec<Vec<String>> = entries.into_iter().map(|(_, f)| f).collect();
                format!("{fields:?}")
            }
            other => panic!("{key} holds a {other}"),
        };
        let pttl: i64 = redis.pttl(&key).await.expect("PTTL");
        all.insert(key, format!("{kind} ttl={} {content}", pttl > 0));
    }
    all
}

fn authorize_body(id: &str, model: &str, slots: u64) -> Value {
    json!({
        "request_id": id,
        "user": USER,
        "tenant": "acme",
        "cost_center": "cc-1",
        "model": model,
        "provider": "openai",
        "reserve_tokens": 500,
        "reserve_cost_micros": 2_000,
        "lease_slots": slots,
    })
}

fn record(id: &str, model: &str, i: u64, ts_ms: u64) -> Value {
    // Every seventh record spent nothing, which books no spend and ranks nothing.
    let (input, output, cost) = if i.is_multiple_of(7) {
        (0, 0, 0)
    } else {
        (100 + i, 10 * i, 1_000 + 37 * i)
    };
    json!({
        "request_id": id,
        "user": USER,
        "tenant": "acme",
        "cost_center": if i.is_multiple_of(3) { Value::Null } else { json!("cc-1") },
        "model": model,
        "provider": "openai",
        "input_tokens": input,
        "output_tokens": output,
        "cached_input_tokens": i,
        "cost_micros": cost,
        "estimated": i.is_multiple_of(5),
        "ts_ms": ts_ms,
    })
}

/// Authorizes requests of one user (rate limits, a rolling budget on the user and a
/// month budget on the tenant, a lease) and books their records, all in one POST or
/// one POST per record; returns the response counts summed and all of Redis.
async fn book(one_per_post: bool, duplicate: bool) -> ((u64, u64), BTreeMap<String, String>) {
    let redis = RedisServer::start();
    let clock = ManualClock::at(NOW);
    let service = Service::start(chokepoint_policy::Config {
        clock: clock.clock(),
        ..usage_config(&redis)
    })
    .await;
    service
        .set_limits(
            "user",
            USER,
            json!({"rpm": 500, "tpm": 1_000_000, "usd_micros": 1_000_000_000, "period": "rolling:3600"}),
        )
        .await;
    service
        .set_limits(
            "tenant",
            "acme",
            json!({"usd_micros": 1_000_000_000, "tokens": 1_000_000_000, "period": "month"}),
        )
        .await;

    let model = |i: u64| {
        if i.is_multiple_of(2) {
            "gpt-4o"
        } else {
            "claude"
        }
    };
    for i in 0..52 {
        let (status, body) = service
            .authorize_body(&authorize_body(&format!("q{i}"), model(i), 0))
            .await;
        assert_eq!(
            (status, &body["allow"]),
            (StatusCode::OK, &json!(true)),
            "{body}"
        );
    }
    let (_, body) = service
        .authorize_body(&authorize_body("lease", "gpt-4o", 8))
        .await;
    assert_eq!(body["slots"], 8, "{body}");

    let mut records: Vec<Value> = (0..52_u64)
        .map(|i| {
            // Two booking days: a day ledger each, one month ledger shared.
            let ts = if i.is_multiple_of(4) {
                NOV_25_NOON
            } else {
                NOV_26_EARLY
            };
            record(&format!("q{i}"), model(i), i, ts)
        })
        .collect();
    // The same request twice in the batch: the second is a duplicate, and the script
    // adds up the records itself rather than take the service's sums.
    if duplicate {
        records.insert(10, records[3].clone());
    }
    // Two lease slots used by other requests.
    for (slot, i) in [(2, 60), (5, 61)] {
        let mut used = record(&format!("l{i}"), "gpt-4o", i, NOV_26_EARLY);
        used["reservation_id"] = json!(format!("lease.{slot}"));
        records.push(used);
    }
    // A record never authorized: no reservation to commit.
    records.push(record("x1", "gpt-4o", 62, NOV_26_EARLY));
    // Two records naming one reservation: the first commits it, before and after the
    // request's own record.
    let mut reused = record("q5-retry", "claude", 63, NOV_26_EARLY);
    reused["reservation_id"] = json!("q5");
    records.push(reused);
    let mut early = record("q40-early", "gpt-4o", 64, NOV_26_EARLY);
    early["reservation_id"] = json!("q40");
    records.insert(20, early);
    assert!(records.len() <= 64, "one script call: {}", records.len());

    // What the booked records add up to (each request id once), every one of them in
    // the tenant's month: the totals a state that only matches itself could still miss.
    let mut ids = BTreeSet::new();
    let (mut input, mut output, mut cost, mut booked) = (0, 0, 0, 0);
    for r in records
        .iter()
        .filter(|r| ids.insert(r["request_id"].to_string()))
    {
        let n = |field: &str| r[field].as_u64().expect(field);
        (input, output, cost) = (
            input + n("input_tokens"),
            output + n("output_tokens"),
            cost + n("cost_micros"),
        );
        booked += 1;
    }

    let (mut accepted, mut duplicates) = (0, 0);
    let batches: Vec<Vec<Value>> = if one_per_post {
        records.into_iter().map(|r| vec![r]).collect()
    } else {
        vec![records]
    };
    for batch in batches {
        let (status, body) = service.post_usage(&batch).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        accepted += body["accepted"].as_u64().expect("accepted");
        duplicates += body["duplicates"].as_u64().expect("duplicates");
    }
    let mut conn = redis.connection().await;
    let ledger: BTreeMap<String, u64> = conn
        .hgetall("ck:ledger:tenant:{acme}:2026-11")
        .await
        .expect("HGETALL");
    let totals = (
        ledger["input_tokens"],
        ledger["output_tokens"],
        ledger["cost_micros"],
        ledger["requests"],
    );
    assert_eq!(totals, (input, output, cost, booked), "{ledger:?}");
    for (ranking, total) in [("tokens", input + output), ("cost_micros", cost)] {
        let score: f64 = conn
            .zscore(format!("ck:top:tenant:{ranking}:2026-11"), "acme")
            .await
            .expect("ZSCORE");
        assert_eq!(score, total as f64, "{ranking}");
    }
    let state = snapshot(&mut conn).await;
    service.stop().await.expect("stop");
    ((accepted, duplicates), state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_ends_exactly_as_one_call_per_record() {
    // Without a duplicate the script takes the service's per-group sums; with one it
    // adds up the booked records itself. Both must end as one call per record does.
    for (duplicate, counts) in [(false, (57, 0)), (true, (57, 1))] {
        chunk_matches_single_calls(duplicate, counts).await;
    }
}

async fn chunk_matches_single_calls(duplicate: bool, counts: (u64, u64)) {
    let (chunk_counts, chunked) = book(false, duplicate).await;
    let (single_counts, single) = book(true, duplicate).await;
    assert_eq!(chunk_counts, counts, "duplicate: {duplicate}");
    assert_eq!(single_counts, chunk_counts);

    // The state reached is a real one: spend booked everywhere a record reaches.
    let day = format!("ck:ledger:user:{{{USER}}}:2026-11-26");
    for key in [
        day.as_str(),
        "ck:ledger:tenant:{acme}:2026-11",
        "ck:ledger:model:{claude}:2026-11-26",
        "ck:ledger:cost_center:{cc-1}:2026-11",
        "ck:top:model:tokens:2026-11",
        "ck:top:user:cost_micros:2026-11-25",
        &format!("ck:roll:user:{{{USER}}}"),
        &format!("ck:rate:user:{{{USER}}}"),
        "ck:resv:sum:tenant:{acme}",
        "ck:usage:log",
        &marker("q40-early"),
    ] {
        assert!(chunked.contains_key(key), "{key} missing: {chunked:#?}");
    }
    // Every reservation was committed but the lease's six unused slots (in the cluster
    // layout, each slot's index names its records).
    let reservations: Vec<&String> = chunked
        .keys()
        .filter(|key| key.starts_with(reservation_prefix()))
        .collect();
    assert_eq!(reservations.len(), 6, "{reservations:?}");

    let keys: BTreeSet<&String> = chunked.keys().chain(single.keys()).collect();
    let differences: Vec<String> = keys
        .into_iter()
        .filter(|key| chunked.get(*key) != single.get(*key))
        .map(|key| {
            format!(
                "{key}:\n  chunk  {:?}\n  single {:?}",
                chunked.get(key),
                single.get(key)
            )
        })
        .collect();
    assert!(
        differences.is_empty(),
        "duplicate: {duplicate}\n{}",
        differences.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_id_repeated_in_a_chunk_is_booked_once() {
    let redis = RedisServer::start();
    let service = Service::start(usage_config(&redis)).await;
    let mut conn = redis.connection().await;
    let batch: Vec<Value> = ["a", "b", "a", "c", "b", "a"]
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let mut r = record(id, "gpt-4o", 1, NOV_26_EARLY);
            // Which copy was booked shows in the audit stream.
            r["copy"] = json!(i);
            r
        })
        .collect();
    let (status, body) = service.post_usage(&batch).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (&body["accepted"], &body["duplicates"]),
        (&json!(3), &json!(3))
    );
    let totals = service.ledger("user", USER, "2026-11-26").await;
    assert_eq!(totals["requests"], 3, "{totals}");
    assert_eq!(totals["input_tokens"], 3 * 101, "{totals}");
    let entries: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
        .arg("ck:usage:log")
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .expect("XRANGE");
    let copies: Vec<u64> = entries
        .iter()
        .map(|(_, fields)| {
            let logged: Value = serde_json::from_str(&fields[1]).expect("JSON");
            logged["copy"].as_u64().expect("copy")
        })
        .collect();
    assert_eq!(copies, [0, 1, 3], "the first copy of each is booked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_failing_a_check_fails_alone_in_its_chunk() {
    let redis = RedisServer::start();
    let service = Service::start(usage_config(&redis)).await;
    let mut conn = redis.connection().await;
    // Three chunks (64, 64, 22); records 70 and 100 name tenants whose ledger keys hold
    // the wrong type, so the middle chunk fails as a whole and is booked record by record.
    let batch: Vec<Value> = (0..150)
        .map(|i| {
            let mut r = record(&format!("r{i}"), "gpt-4o", i, NOV_26_EARLY);
            match i {
                70 => r["tenant"] = json!("broken-day"),
                100 => r["tenant"] = json!("broken-month"),
                _ => {}
            }
            r
        })
        .collect();
    let breakages = [
        "ck:ledger:tenant:{broken-day}:2026-11-26",
        "ck:ledger:tenant:{broken-month}:2026-11",
    ];
    for key in breakages {
        let () = conn.set(key, "oops").await.expect("SET");
    }

    let (status, body) = service.post_usage(&batch).await;
    assert_unavailable(status, &body);
    let metrics = service.metrics().await;
    for line in [
        "chokepoint_policy_usage_records_total{result=\"accepted\"} 148",
        "chokepoint_policy_usage_records_total{result=\"duplicate\"} 0",
        "chokepoint_policy_usage_records_total{result=\"error\"} 2",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
    for (i, failed) in [
        (69, false),
        (70, true),
        (71, false),
        (100, true),
        (149, false),
    ] {
        let seen: bool = conn.exists(marker(&format!("r{i}"))).await.expect("EXISTS");
        assert_eq!(seen, !failed, "r{i}");
    }
    let logged: u64 = redis::cmd("XLEN")
        .arg("ck:usage:log")
        .query_async(&mut conn)
        .await
        .expect("XLEN");
    assert_eq!(logged, 148);
    // In the cluster layout a failed record is booked in the slots that could take it
    // (its user's among them); the retry below completes it.
    let totals = service.ledger("user", USER, "2026-11-26").await;
    let in_user = if cluster_layout() { 150 } else { 148 };
    assert_eq!(totals["requests"], in_user, "{totals}");
    let acme = service.ledger("tenant", "acme", "2026-11").await;
    assert_eq!(acme["requests"], 148, "{acme}");

    // Repaired, the retry books exactly the two.
    for key in breakages {
        let () = conn.del(key).await.expect("DEL");
    }
    let (status, body) = service.post_usage(&batch).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (&body["accepted"], &body["duplicates"]),
        (&json!(2), &json!(148))
    );
    let totals = service.ledger("user", USER, "2026-11-26").await;
    assert_eq!(totals["requests"], 150, "{totals}");
    let broken = service.ledger("tenant", "broken-day", "2026-11-26").await;
    assert_eq!(broken["requests"], 1, "{broken}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_slots_are_released_in_one_call_each_once() {
    let redis = RedisServer::start();
    let clock = ManualClock::at(NOW);
    let service = Service::start(chokepoint_policy::Config {
        clock: clock.clock(),
        ..usage_config(&redis)
    })
    .await;
    let mut conn = redis.connection().await;
    service
        .set_limits(
            "tenant",
            "acme",
            json!({"usd_micros": 1_000_000_000, "period": "month"}),
        )
        .await;
    for lease in ["la", "lb"] {
        let (_, body) = service
            .authorize_body(&authorize_body(lease, "gpt-4o", 64))
            .await;
        assert_eq!(body["slots"], 64, "{body}");
    }
    let rate_key = format!("ck:rate:user:{{{USER}}}");
    let requests: String = conn.hget(&rate_key, "requests").await.expect("HGET");
    assert_eq!(requests, "128");

    // 126 spare slots (two calls of up to 64), some named twice, some never leased.
    let mut releases: Vec<String> = Vec::new();
    for lease in ["la", "lb"] {
        releases.extend((2..=64).map(|i| format!("{lease}.{i}")));
    }
    releases.extend(["la.7", "lb.64", "la.65", "nobody"].map(String::from));
    let body = json!({"records": [], "releases": releases}).to_string();
    let (status, answer) = service.post_usage_raw(&body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["released"], 126, "{answer}");

    // What remains is the two leases' first slots, as if never leased.
    let window: BTreeMap<String, String> = conn.hgetall(&rate_key).await.expect("HGETALL");
    assert_eq!(window["requests"], "2", "{window:?}");
    assert_eq!(window["tokens"], "1000", "{window:?}");
    let reserved: BTreeMap<String, String> = conn
        .hgetall("ck:resv:sum:tenant:{acme}")
        .await
        .expect("HGETALL");
    assert_eq!(reserved["cost_micros"], "4000", "{reserved:?}");
    let members: u64 = conn.zcard("ck:resv:z:tenant:{acme}").await.expect("ZCARD");
    assert_eq!(members, 2);
    let records: Vec<String> = conn
        .keys(format!("{}*", reservation_prefix()))
        .await
        .expect("KEYS");
    assert_eq!(records.len(), 2, "{records:?}");

    let (_, again) = service.post_usage_raw(&body).await;
    assert_eq!(again["released"], 0, "{again}");
    let (status, spend) = service
        .admin(
            reqwest::Method::GET,
            "/v1/admin/spend?scope_kind=tenant&id=acme",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{spend}");
    assert_eq!(spend["budgets"][0]["reserved"], 4_000, "{spend}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amounts_past_two_to_the_53_sum_exactly_in_a_chunk() {
    let redis = RedisServer::start();
    let service = Service::start(usage_config(&redis)).await;
    let mut conn = redis.connection().await;
    service
        .set_limits(
            "user",
            USER,
            json!({"usd_micros": 1_000, "period": "rolling:3600"}),
        )
        .await;
    const MAX: u64 = 1 << 53;
    // Odd amounts: a double sum past 2^53 would round them.
    let batch: Vec<Value> = (0..5)
        .map(|i| {
            json!({
                "request_id": format!("big{i}"),
                "user": USER,
                "input_tokens": MAX - 1,
                "output_tokens": 3,
                "cost_micros": MAX - 1,
                "ts_ms": NOV_26_EARLY,
            })
        })
        .collect();
    let (status, body) = service.post_usage(&batch).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["accepted"], 5, "{body}");

    let ledger: BTreeMap<String, String> = conn
        .hgetall(format!("ck:ledger:user:{{{USER}}}:2026-11"))
        .await
        .expect("HGETALL");
    let five_of = |n: u64| (5 * u128::from(n)).to_string();
    assert_eq!(ledger["input_tokens"], five_of(MAX - 1));
    assert_eq!(ledger["output_tokens"], "15");
    assert_eq!(ledger["cost_micros"], five_of(MAX - 1));
    // Budgets count input plus output, capped at 2^53 per record.
    let rolling: BTreeMap<String, String> = conn
        .hgetall(format!("ck:roll:user:{{{USER}}}"))
        .await
        .expect("HGETALL");
    assert_eq!(rolling["tokens"], five_of(MAX), "{rolling:?}");
    assert_eq!(rolling["cost_micros"], five_of(MAX - 1), "{rolling:?}");
    let score: f64 = conn
        .zscore("ck:top:user:tokens:2026-11", USER)
        .await
        .expect("ZSCORE");
    // In the cluster layout a ranking is set from the ledger's totals, which count each
    // record's tokens uncapped.
    let ranked = if cluster_layout() {
        (5 * (MAX - 1) + 15) as f64
    } else {
        5.0 * MAX as f64
    };
    assert_eq!(score, ranked);
}
