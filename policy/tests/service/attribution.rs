//! Spend by calling tool and by agent session: booked records summed through the admin
//! API from the audit stream.

use std::time::{SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{json_of, new_user, usage_config, RedisServer, Service, ADMIN_TOKEN};

fn now_ms() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock");
    u64::try_from(since.as_millis()).expect("ms")
}

fn record(id: &str, user: &str, client: Option<&str>, session: Option<&str>, cost: u64) -> Value {
    let mut r = json!({
        "request_id": id, "user": user, "tenant": "acme", "model": "claude-sonnet-4-5",
        "input_tokens": 100, "output_tokens": 10, "cached_input_tokens": 40,
        "cost_micros": cost, "ts_ms": now_ms(),
    });
    if let Some(c) = client {
        r["client"] = json!(c);
    }
    if let Some(s) = session {
        r["session"] = json!(s);
    }
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spend_sums_by_client_and_by_session() {
    let redis = RedisServer::start();
    let service = Service::start(usage_config(&redis)).await;
    let (alice, bob) = (new_user(), new_user());
    let s1 = "1e6872d4-cb3a-4791-9ae1-32aa40e69098";
    let s2 = "01a24e43-6b4c-7e82-b276-0ab1bd115bf8";
    let records = [
        record("a1", &alice, Some("claude-code/2.1.332"), Some(s1), 300),
        record("a2", &alice, Some("claude-code/2.1.332"), Some(s1), 200),
        record("b1", &bob, Some("codex/0.171.0"), Some(s2), 700),
        record("b2", &bob, None, None, 5),
    ];
    let (status, body) = service.post_usage(&records).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A retried batch books nothing again, so sums nothing again.
    service.post_usage(&records).await;
    let day = utc_day(now_ms());

    let (status, body) = json_of(
        service
            .admin_usage(Some(ADMIN_TOKEN), &[("by", "client"), ("period", &day)])
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["complete"], true, "{body}");
    assert_eq!(body["records"], 4, "{body}");
    let rows = body["rows"].as_array().expect("rows");
    let ids: Vec<&str> = rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        ["codex/0.171.0", "claude-code/2.1.332", "(none)"],
        "{body}"
    );
    assert_eq!(rows[1]["requests"], 2, "{body}");
    assert_eq!(rows[1]["cost_micros"], 500, "{body}");
    assert_eq!(rows[1]["input_tokens"], 200, "{body}");
    assert_eq!(rows[1]["cached_input_tokens"], 80, "{body}");

    let (_, body) = json_of(
        service
            .admin_usage(
                Some(ADMIN_TOKEN),
                &[("by", "session"), ("period", &day[..7]), ("id", s1)],
            )
            .await,
    )
    .await;
    let rows = body["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 1, "{body}");
    assert_eq!(rows[0]["id"], s1);
    assert_eq!(rows[0]["requests"], 2);
    assert_eq!(rows[0]["cost_micros"], 500);
    assert_eq!(rows[0]["client"], "claude-code/2.1.332");
    assert_eq!(rows[0]["user"], alice);

    // Nothing was booked a year ago.
    let (_, body) = json_of(
        service
            .admin_usage(
                Some(ADMIN_TOKEN),
                &[("by", "session"), ("period", "2020-01")],
            )
            .await,
    )
    .await;
    assert_eq!(body["rows"], json!([]), "{body}");

    for (query, field) in [
        (vec![("by", "user"), ("period", "2026-01")], "by"),
        (vec![("by", "client")], "period"),
        (
            vec![("by", "client"), ("period", "2026-01"), ("limit", "0")],
            "limit",
        ),
        (
            vec![("by", "client"), ("period", "2026-01"), ("scope", "user")],
            "scope",
        ),
    ] {
        let (status, body) = json_of(service.admin_usage(Some(ADMIN_TOKEN), &query).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query:?}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(field), "{query:?}: {body}");
    }
    let (status, _) = json_of(service.admin_usage(None, &[("by", "client")]).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    service.stop().await.expect("stop");
}

/// `YYYY-MM-DD` of a UTC instant, as the service computes it.
fn utc_day(ms: u64) -> String {
    chokepoint_policy::utc_date::Day::from_unix_ms(ms).to_string()
}
