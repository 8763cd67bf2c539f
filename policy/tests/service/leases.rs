//! Leases (authorize.lua, "Leases"): one decision grants several requests' worth as
//! ordinary reservations, sized to at most a quarter of what any limit has left; unused
//! slots are released through the usage endpoint; a slot used by a request is released
//! by its usage record; near a limit's end decisions are per request again.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{
    authorize_request, new_tenant, new_user, usage_config, usage_for, RedisServer, Service,
};

fn with_lease(mut request: Value, slots: u64) -> Value {
    request["lease_slots"] = json!(slots);
    request
}

fn budget(spend: &Value) -> (u64, u64) {
    let b = &spend["budgets"][0];
    (
        b["spent"].as_u64().unwrap_or_default(),
        b["reserved"].as_u64().unwrap_or_default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_reserves_slots_that_records_and_releases_give_back() {
    let redis = RedisServer::start();
    let service = Service::start(usage_config(&redis)).await;
    let tenant = new_tenant();
    // Room for 100 requests of 10,000 micro-dollars.
    service
        .set_limits(
            "tenant",
            &tenant,
            json!({"usd_micros": 1_000_000, "period": "month"}),
        )
        .await;
    let user = new_user();
    let request = with_lease(authorize_request(&user, &tenant, 100, 10_000), 16);
    let (status, body) = service.authorize_body(&request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["slots"], 16,
        "min(16, a quarter of 100 requests): {body}"
    );
    let spend = service.spend("tenant", &tenant, None).await;
    assert_eq!(budget(&spend), (0, 160_000), "16 slots reserved: {spend}");

    // The request itself and one spare slot are used; their records release them.
    let id = request["request_id"].as_str().unwrap().to_string();
    let mut own = usage_for(&request, 40, 60, 4_000);
    own["request_id"] = json!(id);
    let mut spare = usage_for(&request, 10, 10, 2_000);
    spare["request_id"] = json!(format!("{id}-next"));
    spare["reservation_id"] = json!(format!("{id}.2"));
    let (status, body) = service.post_usage(&[own, spare]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let spend = service.spend("tenant", &tenant, None).await;
    assert_eq!(budget(&spend), (6_000, 140_000), "{spend}");

    // The other 14 are released; releasing again changes nothing.
    let releases: Vec<String> = (3..=16).map(|i| format!("{id}.{i}")).collect();
    let body = json!({"records": [], "releases": releases}).to_string();
    let (status, answer) = service.post_usage_raw(&body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["released"], 14, "{answer}");
    let (_, again) = service.post_usage_raw(&body).await;
    assert_eq!(again["released"], 0, "{again}");
    let spend = service.spend("tenant", &tenant, None).await;
    assert_eq!(budget(&spend), (6_000, 0), "{spend}");

    // A malformed slot id is dead-lettered, naming it, and fails nothing else.
    let (status, answer) = service
        .post_usage_raw(&format!(r#"{{"records": [], "releases": ["", "{id}.3"]}}"#))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        (&answer["dead_lettered"], &answer["released"]),
        (&json!(1), &json!(0)),
        "{answer}"
    );
    let mut conn = redis.connection().await;
    let dead: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
        .arg("ck:usage:dead")
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .expect("XRANGE");
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].1[..2], ["error", "releases[0] must not be empty"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slots_shrink_near_the_end_and_rate_windows_count_them() {
    let redis = RedisServer::start();
    let service = Service::start(usage_config(&redis)).await;
    let tenant = new_tenant();
    // Room for 7 requests: a quarter is less than two, so no lease.
    service
        .set_limits(
            "tenant",
            &tenant,
            json!({"usd_micros": 70_000, "period": "month"}),
        )
        .await;
    let request = with_lease(authorize_request(&new_user(), &tenant, 100, 10_000), 16);
    let (status, body) = service.authorize_body(&request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body.get("slots").is_none(),
        "per request near the end: {body}"
    );

    // A user rpm of 40: a lease takes a quarter (10), counted as 10 requests.
    let user = new_user();
    service.set_limits("user", &user, json!({"rpm": 40})).await;
    let tenant = new_tenant();
    let request = with_lease(authorize_request(&user, &tenant, 0, 0), 64);
    let (_, body) = service.authorize_body(&request).await;
    assert_eq!(body["slots"], 10, "{body}");
    let rpm = |body: &Value| {
        body["limits"]
            .as_array()
            .and_then(|l| l.iter().find(|l| l["name"] == "user:rpm"))
            .map(|l| l["remaining"].as_u64().unwrap_or_default())
            .unwrap_or_default()
    };
    assert_eq!(rpm(&body), 30, "{body}");
    let id = request["request_id"].as_str().unwrap().to_string();
    let releases: Vec<String> = (2..=10).map(|i| format!("{id}.{i}")).collect();
    let (_, answer) = service
        .post_usage_raw(&json!({"records": [], "releases": releases}).to_string())
        .await;
    assert_eq!(answer["released"], 9, "{answer}");
    // The next decision sees the 9 requests given back (31 left, minus its own).
    let (_, body) = service
        .authorize_body(&authorize_request(&user, &tenant, 0, 0))
        .await;
    assert_eq!(rpm(&body), 38, "{body}");
}

/// A caller's spare slots count in full until used or given back, so leases can take a
/// limit's last room before the caller has sent that many requests. Such a denial says
/// to retry when the spare slots are back (the filter's `lease_return_ms`), not at the
/// window's or budget's end; a denial the caller's own requests cause keeps the reset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denial_only_spare_slots_cause_lifts_when_they_are_back() {
    let redis = RedisServer::start();
    let service = Service::start(usage_config(&redis)).await;
    let retry = |body: &Value| body["retry_after_ms"].as_u64().unwrap_or_default();

    for budget in [false, true] {
        let user = new_user();
        let tenant = new_tenant();
        if budget {
            // Room for 40 requests of 1,000 micro-dollars this month.
            service
                .set_limits(
                    "tenant",
                    &tenant,
                    json!({"usd_micros": 40_000, "period": "month"}),
                )
                .await;
        } else {
            service.set_limits("user", &user, json!({"rpm": 40})).await;
        }
        let cost = if budget { 1_000 } else { 0 };
        let mut lease = with_lease(authorize_request(&user, &tenant, 0, cost), 64);
        lease["lease_return_ms"] = json!(3_000);
        let (_, body) = service.authorize_body(&lease).await;
        assert_eq!(body["slots"], 10, "a quarter of 40: {body}");

        // The caller's own requests take the other 30; the next is denied by the 9 spare
        // slots alone, and told to come back when they are.
        for i in 0..30 {
            let (status, body) = service
                .authorize_body(&authorize_request(&user, &tenant, 0, cost))
                .await;
            assert_eq!(status, StatusCode::OK, "request {i}: {body}");
            assert_eq!(body["allow"], true, "request {i}: {body}");
        }
        let (_, body) = service
            .authorize_body(&authorize_request(&user, &tenant, 0, cost))
            .await;
        assert_eq!(body["allow"], false, "{body}");
        assert!(
            (1..=3_000).contains(&retry(&body)),
            "held slots are back within 3 s: {body}"
        );

        // They come back: the caller goes on.
        let id = lease["request_id"].as_str().unwrap().to_string();
        let releases: Vec<String> = (2..=10).map(|i| format!("{id}.{i}")).collect();
        let (_, answer) = service
            .post_usage_raw(&json!({"records": [], "releases": releases}).to_string())
            .await;
        assert_eq!(answer["released"], 9, "{answer}");
        for i in 0..9 {
            let (_, body) = service
                .authorize_body(&authorize_request(&user, &tenant, 0, cost))
                .await;
            assert_eq!(body["allow"], true, "request {i} after the release: {body}");
        }

        // Spent by the caller's own requests: the real reset.
        let (_, body) = service
            .authorize_body(&authorize_request(&user, &tenant, 0, cost))
            .await;
        assert_eq!(body["allow"], false, "{body}");
        assert!(
            retry(&body) > 3_000,
            "nothing held any more, so the window's or month's reset: {body}"
        );
    }
}
