//! Budgets over HTTP with a live Redis: reservations under concurrency, commits through
//! the usage endpoint, day/month/rolling periods (on a clock the test moves), and
//! reservations that expire when their usage never arrives.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{
    authorize_request, new_tenant, new_user, usage_config, usage_for, ManualClock, RedisServer,
    Service,
};

// UTC instants the tests run at.
const NOV_25_NOON: u64 = 1_795_608_000_000; // 2026-11-25T12:00:00Z
const NOV_26: u64 = 1_795_651_200_000; // 2026-11-26T00:00:00Z
const NOV_30_LAST_MS: u64 = 1_796_083_199_999; // 2026-11-30T23:59:59.999Z
const DEC_1: u64 = 1_796_083_200_000; // 2026-12-01T00:00:00Z

async fn service_at(redis: &RedisServer, clock: &ManualClock) -> Service {
    Service::start(chokepoint_policy::Config {
        clock: clock.clock(),
        ..usage_config(redis)
    })
    .await
}

fn budget_of<'a>(spend: &'a Value, name: &str) -> &'a Value {
    spend["budgets"]
        .as_array()
        .and_then(|budgets| budgets.iter().find(|b| b["name"] == name))
        .unwrap_or_else(|| panic!("no budget {name} in {spend}"))
}

/// (spent, reserved, remaining) of one budget in a spend answer.
fn standing(spend: &Value, name: &str) -> (u64, u64, u64) {
    let budget = budget_of(spend, name);
    let number = |field: &str| {
        budget[field]
            .as_u64()
            .unwrap_or_else(|| panic!("{field} in {budget}"))
    };
    (number("spent"), number("reserved"), number("remaining"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_budget_affords_exactly_n_of_10n_concurrent_requests_and_commits_actual_spend() {
    let redis = RedisServer::start();
    let clock = ManualClock::at(NOV_25_NOON);
    let service = Arc::new(service_at(&redis, &clock).await);

    // (N, each request's worst-case cost R, each allowed request's actual cost)
    let cases: [(u64, u64, u64); 3] = [(1, 7_000, 1), (8, 25_000, 10_000), (25, 1_000, 999)];
    for (n, reserve, actual) in cases {
        let tenant = new_tenant();
        let budget = n * reserve;
        service
            .set_limits(
                "tenant",
                &tenant,
                json!({"usd_micros": budget, "period": "month"}),
            )
            .await;
        let requests: Vec<Value> = (0..10 * n)
            .map(|_| authorize_request(&new_user(), &tenant, 500, reserve))
            .collect();
        let calls: Vec<_> = requests
            .iter()
            .map(|request| {
                let service = service.clone();
                let request = request.clone();
                tokio::spawn(async move { service.authorize_body(&request).await })
            })
            .collect();
        let mut allowed = Vec::new();
        for (request, call) in requests.iter().zip(calls) {
            let (status, body) = call.await.expect("task");
            assert_eq!(status, StatusCode::OK, "{body}");
            if body["allow"] == true {
                allowed.push(request.clone());
                continue;
            }
            assert_eq!(body["reason"], "budget_exceeded", "{body}");
            assert_eq!(body["limit_name"], "tenant:usd_micros:month", "{body}");
            assert_eq!(body["limit"], budget, "{body}");
            assert_eq!(body["retry_after_ms"], DEC_1 - NOV_25_NOON, "{body}");
            let message = body["message"].as_str().expect("message");
            assert!(
                message.starts_with(&format!("tenant {tenant}'s monthly budget of $")),
                "{message}"
            );
        }
        assert_eq!(allowed.len() as u64, n, "N = {n}, R = {reserve}");
        let spend = service.spend("tenant", &tenant, None).await;
        assert_eq!(
            standing(&spend, "tenant:usd_micros:month"),
            (0, budget, 0),
            "{spend}"
        );

        // The allowed requests report what they really cost, less than reserved.
        let records: Vec<Value> = allowed
            .iter()
            .map(|request| usage_for(request, 300, 200, actual))
            .collect();
        let (status, body) = service.post_usage(&records).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["accepted"], n, "{body}");
        // Retried: nothing is released or booked twice.
        let (_, body) = service.post_usage(&records).await;
        assert_eq!(body["duplicates"], n, "{body}");

        let spent = n * actual;
        let spend = service.spend("tenant", &tenant, None).await;
        assert_eq!(
            standing(&spend, "tenant:usd_micros:month"),
            (spent, 0, budget - spent),
            "spend is the sum of actuals and the reservations are gone: {spend}"
        );
        assert_eq!(spend["usage"]["cost_micros"], spent, "{spend}");
        assert_eq!(spend["usage"]["requests"], n, "{spend}");

        // Exactly what the actuals left room for is allowed now.
        let mut more = 0;
        loop {
            let request = authorize_request(&new_user(), &tenant, 500, reserve);
            let (_, body) = service.authorize_body(&request).await;
            if body["allow"] != true {
                break;
            }
            more += 1;
            assert!(more <= 10 * n, "the budget never ran out");
        }
        assert_eq!(more, (budget - spent) / reserve, "N = {n}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_budget_period_resets_when_its_window_ends() {
    let redis = RedisServer::start();
    let clock = ManualClock::at(NOV_25_NOON);
    let service = service_at(&redis, &clock).await;

    // (period, how the denial names it, its retry_after_ms, a moment still in the
    // window, the first moment of the next). A rolling hour has 60 one-minute buckets
    // plus the current one, so spend at noon counts until 13:01.
    let hour = 3_600_000;
    let cases: [(&str, &str, u64, u64, u64); 3] = [
        (
            "day",
            "daily budget of $0.001",
            NOV_26 - NOV_25_NOON,
            NOV_26 - 1,
            NOV_26,
        ),
        (
            "month",
            "monthly budget of $0.001",
            DEC_1 - NOV_25_NOON,
            NOV_30_LAST_MS,
            DEC_1,
        ),
        (
            "rolling:3600",
            "budget of $0.001 per 3600s",
            hour + 60_000,
            NOV_25_NOON + hour + 59_999,
            NOV_25_NOON + hour + 60_000,
        ),
    ];
    for (period, phrase, retry_after, still_in, next) in cases {
        clock.set(NOV_25_NOON);
        let tenant = new_tenant();
        service
            .set_limits(
                "tenant",
                &tenant,
                json!({"usd_micros": 1000, "tokens": 100_000, "period": period}),
            )
            .await;
        let kind = period.split(':').next().expect("kind");
        let name = format!("tenant:usd_micros:{kind}");

        let first = authorize_request(&new_user(), &tenant, 100, 600);
        let (_, body) = service.authorize_body(&first).await;
        assert_eq!(body["allow"], true, "{period}: {body}");
        let (status, _) = service.post_usage(&[usage_for(&first, 10, 10, 600)]).await;
        assert_eq!(status, StatusCode::OK);

        // (time, allowed?) for a request reserving 600 of the 1000.
        for (at, allow) in [(NOV_25_NOON, false), (still_in, false), (next, true)] {
            clock.set(at);
            let request = authorize_request(&new_user(), &tenant, 100, 600);
            let (_, body) = service.authorize_body(&request).await;
            assert_eq!(body["allow"], allow, "{period} at {at}: {body}");
            if at == NOV_25_NOON {
                assert_eq!(body["limit_name"], name.as_str(), "{body}");
                assert_eq!(body["retry_after_ms"], retry_after, "{period}: {body}");
                assert_eq!(
                    body["message"],
                    format!(
                        "tenant {tenant}'s {phrase} has $0.0004 left, less than this \
                         request's worst case of $0.0006"
                    ),
                    "{body}"
                );
            }
            if allow {
                let spend = service.spend("tenant", &tenant, None).await;
                assert_eq!(
                    standing(&spend, &name),
                    (0, 600, 400),
                    "{period}: a new window holds only the new reservation: {spend}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spend_reads_earlier_periods_from_the_ledger() {
    let redis = RedisServer::start();
    let clock = ManualClock::at(NOV_25_NOON);
    let service = service_at(&redis, &clock).await;
    let tenant = new_tenant();
    service
        .set_limits(
            "tenant",
            &tenant,
            json!({"usd_micros": 10_000, "period": "month"}),
        )
        .await;
    let request = authorize_request(&new_user(), &tenant, 100, 3_000);
    service.authorize_body(&request).await;
    service
        .post_usage(&[usage_for(&request, 40, 2, 2_500)])
        .await;

    clock.set(DEC_1 + 1000);
    let now = service.spend("tenant", &tenant, None).await;
    assert_eq!(now["period"], "2026-12", "{now}");
    assert_eq!(standing(&now, "tenant:usd_micros:month"), (0, 0, 10_000));
    assert_eq!(
        budget_of(&now, "tenant:usd_micros:month")["window"],
        "2026-12"
    );

    let november = service.spend("tenant", &tenant, Some("2026-11")).await;
    assert_eq!(november["usage"]["cost_micros"], 2_500, "{november}");
    assert_eq!(november["usage"]["input_tokens"], 40, "{november}");
    let budget = budget_of(&november, "tenant:usd_micros:month");
    assert_eq!(budget["window"], "2026-11", "{november}");
    assert_eq!(
        standing(&november, "tenant:usd_micros:month"),
        (2_500, 0, 7_500)
    );
    assert_eq!(budget["reset_after_ms"], Value::Null);

    // A day says nothing about a month budget; the usage is still there.
    let day = service.spend("tenant", &tenant, Some("2026-11-25")).await;
    assert_eq!(day["budgets"], json!([]), "{day}");
    assert_eq!(day["usage"]["requests"], 1, "{day}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_whose_usage_never_arrives_stops_counting_after_its_ttl() {
    let redis = RedisServer::start();
    let clock = ManualClock::at(NOV_25_NOON);
    let ttl = Duration::from_secs(2);
    let service = Service::start(chokepoint_policy::Config {
        clock: clock.clock(),
        reservation_ttl: ttl,
        ..usage_config(&redis)
    })
    .await;
    let tenant = new_tenant();
    service
        .set_limits(
            "tenant",
            &tenant,
            json!({"usd_micros": 1000, "period": "day"}),
        )
        .await;
    let name = "tenant:usd_micros:day";

    let lost = authorize_request(&new_user(), &tenant, 10, 1000);
    let (_, body) = service.authorize_body(&lost).await;
    assert_eq!(body["allow"], true, "{body}");

    // (ms after the reservation, allowed?, reserved as spend reads it)
    for (after, allow, reserved) in [(0, false, 1000), (1999, false, 1000), (2000, true, 1000)] {
        clock.set(NOV_25_NOON + after);
        let spend = service.spend("tenant", &tenant, None).await;
        let expected = if allow { 0 } else { reserved };
        assert_eq!(
            standing(&spend, name).1,
            expected,
            "at +{after} ms: {spend}"
        );
        let (_, body) = service
            .authorize_body(&authorize_request(&new_user(), &tenant, 10, 1000))
            .await;
        assert_eq!(body["allow"], allow, "at +{after} ms: {body}");
    }
    // The lost request's usage turns up after all: it is booked, and its expired
    // reservation is not released a second time (the live one stays whole).
    let (status, _) = service.post_usage(&[usage_for(&lost, 1, 1, 700)]).await;
    assert_eq!(status, StatusCode::OK);
    let spend = service.spend("tenant", &tenant, None).await;
    assert_eq!(standing(&spend, name), (700, 1000, 0), "{spend}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_expires_on_the_real_clock_too() {
    let redis = RedisServer::start();
    let service = Service::start(chokepoint_policy::Config {
        reservation_ttl: Duration::from_millis(300),
        ..usage_config(&redis)
    })
    .await;
    let user = new_user();
    service
        .set_limits(
            "user",
            &user,
            json!({"tokens": 1000, "period": "rolling:60"}),
        )
        .await;
    let (_, body) = service
        .authorize_body(&authorize_request(&user, &new_tenant(), 1000, 0))
        .await;
    assert_eq!(body["allow"], true, "{body}");
    let (_, body) = service
        .authorize_body(&authorize_request(&user, &new_tenant(), 1000, 0))
        .await;
    assert_eq!(body["limit_name"], "user:tokens:rolling", "{body}");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (_, body) = service
        .authorize_body(&authorize_request(&user, &new_tenant(), 1000, 0))
        .await;
    assert_eq!(body["allow"], true, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actual_tokens_replace_reserved_ones_in_the_current_rate_window() {
    let redis = RedisServer::start();
    let clock = ManualClock::at(NOV_25_NOON);
    let service = service_at(&redis, &clock).await;
    let user = new_user();
    service
        .set_limits("user", &user, json!({"tpm": 1000}))
        .await;
    let request = |n: u64| authorize_request(&user, &new_tenant(), n, 0);

    let first = request(400);
    let second = request(400);
    for r in [&first, &second] {
        let (_, body) = service.authorize_body(r).await;
        assert_eq!(body["allow"], true, "{body}");
    }
    let (_, denied) = service.authorize_body(&request(400)).await;
    assert_eq!(denied["limit_name"], "user:tpm", "{denied}");
    assert_eq!(denied["reason"], "rate_limited", "{denied}");
    assert_eq!(
        denied["message"],
        "user token limit of 1000 per 60s has 200 tokens left, less than this request's \
         worst case of 400 tokens"
    );

    // The first used 100 of its 400: the window now holds 500.
    service.post_usage(&[usage_for(&first, 60, 40, 0)]).await;
    let rate = |spend: &Value| spend["rate_limits"][1].clone();
    let spend = service.spend("user", &user, None).await;
    assert_eq!(rate(&spend)["name"], "user:tpm", "{spend}");
    assert_eq!(rate(&spend)["used"], 500, "{spend}");
    let (_, body) = service.authorize_body(&request(400)).await;
    assert_eq!(body["allow"], true, "{body}");
    let (_, body) = service.authorize_body(&request(400)).await;
    assert_eq!(body["allow"], false, "{body}");

    // Usage from an ended window leaves the new window alone.
    clock.advance(Duration::from_secs(60));
    let (_, body) = service.authorize_body(&request(100)).await;
    assert_eq!(body["allow"], true, "{body}");
    service.post_usage(&[usage_for(&second, 500, 500, 0)]).await;
    let spend = service.spend("user", &user, None).await;
    assert_eq!(rate(&spend)["used"], 100, "{spend}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_budget_denies_even_requests_that_reserve_nothing() {
    let redis = RedisServer::start();
    let clock = ManualClock::at(NOV_25_NOON);
    let service = service_at(&redis, &clock).await;
    let tenant = new_tenant();
    service
        .set_limits(
            "tenant",
            &tenant,
            json!({"usd_micros": 500_000_000, "period": "month"}),
        )
        .await;
    let request = authorize_request(&new_user(), &tenant, 0, 0);
    let (_, body) = service.authorize_body(&request).await;
    assert_eq!(body["allow"], true, "{body}");
    service
        .post_usage(&[usage_for(&request, 1, 1, 500_000_000)])
        .await;
    let (_, body) = service
        .authorize_body(&authorize_request(&new_user(), &tenant, 0, 0))
        .await;
    assert_eq!(body["allow"], false, "{body}");
    assert_eq!(
        body["message"],
        format!("tenant {tenant}'s monthly budget of $500.00 is spent")
    );
    assert_eq!(body["remaining"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_request_id_holds_one_reservation() {
    let redis = RedisServer::start();
    let clock = ManualClock::at(NOV_25_NOON);
    let service = service_at(&redis, &clock).await;
    let tenant = new_tenant();
    service
        .set_limits("tenant", &tenant, json!({"tokens": 1000, "period": "day"}))
        .await;
    let request = authorize_request(&new_user(), &tenant, 400, 0);
    for _ in 0..2 {
        let (_, body) = service.authorize_body(&request).await;
        assert_eq!(body["allow"], true, "{body}");
    }
    let spend = service.spend("tenant", &tenant, None).await;
    assert_eq!(standing(&spend, "tenant:tokens:day"), (0, 400, 600));
    service.post_usage(&[usage_for(&request, 100, 50, 0)]).await;
    let spend = service.spend("tenant", &tenant, None).await;
    assert_eq!(standing(&spend, "tenant:tokens:day"), (150, 0, 850));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_windows_age_spend_out_and_start_afresh_when_their_length_changes() {
    let redis = RedisServer::start();
    let clock = ManualClock::at(NOV_25_NOON);
    let service = service_at(&redis, &clock).await;
    let user = new_user();
    service
        .set_limits(
            "user",
            &user,
            json!({"usd_micros": 100, "period": "rolling:60"}),
        )
        .await;
    let name = "user:usd_micros:rolling";
    let authorize = || authorize_request(&user, &new_tenant(), 1, 1);
    // 10 a second for the first ten seconds spends the budget. A 60 s window has
    // one-second buckets plus the current one: second 0's spend counts until 61 s.
    for second in 0..10 {
        clock.set(NOV_25_NOON + second * 1000);
        let request = authorize();
        let (_, body) = service.authorize_body(&request).await;
        assert_eq!(body["allow"], true, "second {second}: {body}");
        service.post_usage(&[usage_for(&request, 1, 0, 10)]).await;
    }
    // (ms after the first spend, allowed?, spent)
    let steps: [(u64, bool, u64); 4] = [
        (10_000, false, 100),
        (60_999, false, 100),
        (61_000, true, 90),
        (70_000, true, 0),
    ];
    for (after, allow, spent) in steps {
        clock.set(NOV_25_NOON + after);
        let spend = service.spend("user", &user, None).await;
        assert_eq!(standing(&spend, name).0, spent, "+{after} ms: {spend}");
        let (_, body) = service.authorize_body(&authorize()).await;
        assert_eq!(body["allow"], allow, "+{after} ms: {body}");
        if after == 10_000 {
            // Room for the request once second 0's spend ages out.
            assert_eq!(body["retry_after_ms"], 51_000, "{body}");
        }
    }

    service
        .set_limits(
            "user",
            &user,
            json!({"usd_micros": 100, "period": "rolling:120"}),
        )
        .await;
    let request = authorize();
    service.authorize_body(&request).await;
    service.post_usage(&[usage_for(&request, 1, 0, 10)]).await;
    let spend = service.spend("user", &user, None).await;
    assert_eq!(
        standing(&spend, name).0,
        10,
        "a new length starts a new window: {spend}"
    );
}
