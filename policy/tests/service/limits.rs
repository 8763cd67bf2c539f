//! Rate limits and budgets per scope kind over HTTP with a live Redis: own sets and
//! defaults, rpm and tpm windows that deny and recover, the limit a denial names, and
//! the denial metrics.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{
    authorize_request, new_tenant, new_user, usage_config, usage_for, ManualClock, RedisServer,
    Service,
};

const NOV_25_NOON: u64 = 1_795_608_000_000; // 2026-11-25T12:00:00Z

/// An authorize body naming `kind` = `id` (and fresh ids for the other scopes).
fn request_naming(kind: &str, id: &str) -> Value {
    let mut request = authorize_request(&new_user(), &new_tenant(), 10, 10);
    request["cost_center"] = json!(new_tenant());
    request["model"] = json!(new_tenant());
    request[kind] = json!(id);
    request
}

async fn allowed_in_a_row(service: &Service, request: impl Fn() -> Value) -> (u64, Value) {
    for allowed in 0..100 {
        let (status, body) = service.authorize_body(&request()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if body["allow"] != true {
            return (allowed, body);
        }
    }
    panic!("never denied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_scope_kind_has_its_own_limits_and_a_default() {
    let redis = RedisServer::start();
    let service = Service::start(usage_config(&redis)).await;

    // (scope kind, the request field naming it, how a denial names its owner)
    let kinds = [
        ("user", "user", "user"),
        ("tenant", "tenant", "tenant {id}'s"),
        ("cost_center", "cost_center", "cost centre {id}'s"),
        ("model", "model", "model {id}'s"),
    ];
    for (kind, field, owner) in kinds {
        let (own, other) = if kind == "user" {
            (new_user(), new_user())
        } else {
            (new_tenant(), new_tenant())
        };
        service.set_limits(kind, &own, json!({"rpm": 1})).await;
        service.set_limits(kind, "*", json!({"rpm": 3})).await;

        // (id, requests allowed before the denial)
        for (id, expected) in [(&own, 1), (&other, 3)] {
            let (allowed, denied) = allowed_in_a_row(&service, || request_naming(field, id)).await;
            assert_eq!(allowed, expected, "{kind} {id}");
            assert_eq!(denied["limit_name"], format!("{kind}:rpm"), "{denied}");
            assert_eq!(denied["reason"], "rate_limited", "{denied}");
            let who = owner.replace("{id}", id);
            assert_eq!(
                denied["message"],
                format!("{who} request limit of {expected} per 60s reached"),
                "{denied}"
            );
        }
        // Deleting the default leaves other scopes of the kind unlimited (users fall
        // back to the service's --requests-per-window, 1000 here).
        let (status, body) = service
            .admin(
                reqwest::Method::DELETE,
                &format!("/v1/admin/limits/{kind}/*"),
                None,
            )
            .await;
        assert_eq!((status, &body["deleted"]), (StatusCode::OK, &json!(true)));
        let fresh = if kind == "user" {
            new_user()
        } else {
            new_tenant()
        };
        let (_, body) = service.authorize_body(&request_naming(field, &fresh)).await;
        assert_eq!(body["allow"], true, "{body}");
        let names: Vec<&str> = body["limits"]
            .as_array()
            .expect("limits")
            .iter()
            .map(|l| l["name"].as_str().expect("name"))
            .collect();
        assert_eq!(names, ["user:rpm"], "{kind}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scopes_own_set_overrides_the_default_per_limit() {
    let redis = RedisServer::start();
    let clock = ManualClock::at(NOV_25_NOON);
    let service = Service::start(chokepoint_policy::Config {
        clock: clock.clock(),
        ..usage_config(&redis)
    })
    .await;
    let tenant = new_tenant();
    // The default has a budget and an rpm; the tenant's own set only an rpm. Its own
    // rpm applies, and the default's budget still does.
    service
        .set_limits(
            "tenant",
            "*",
            json!({"rpm": 1, "usd_micros": 100, "period": "day"}),
        )
        .await;
    service
        .set_limits("tenant", &tenant, json!({"rpm": 50}))
        .await;

    let request = authorize_request(&new_user(), &tenant, 0, 60);
    let (_, body) = service.authorize_body(&request).await;
    assert_eq!(body["allow"], true, "{body}");
    let limits: Vec<(String, u64)> = body["limits"]
        .as_array()
        .expect("limits")
        .iter()
        .map(|l| {
            (
                l["name"].as_str().expect("name").to_owned(),
                l["limit"].as_u64().expect("limit"),
            )
        })
        .collect();
    assert_eq!(
        limits,
        [
            ("user:rpm".to_owned(), 1000),
            ("tenant:rpm".to_owned(), 50),
            ("tenant:usd_micros:day".to_owned(), 100),
        ]
    );
    // The tightest limit is the budget: 40 of 100 left after this reservation.
    assert_eq!(
        (&body["limit"], &body["remaining"]),
        (&json!(100), &json!(40)),
        "{body}"
    );

    let spend = service.spend("tenant", &tenant, None).await;
    let sources: Vec<(&str, &str)> = spend["rate_limits"]
        .as_array()
        .into_iter()
        .chain(spend["budgets"].as_array())
        .flatten()
        .map(|l| {
            (
                l["name"].as_str().expect("name"),
                l["source"].as_str().expect("source"),
            )
        })
        .collect();
    let own = format!("tenant:{tenant}");
    assert_eq!(
        sources,
        [
            ("tenant:rpm", own.as_str()),
            ("tenant:usd_micros:day", "tenant:*")
        ]
    );
    let user_spend = service
        .spend("user", request["user"].as_str().expect("user"), None)
        .await;
    assert_eq!(
        user_spend["rate_limits"][0]["source"], "config",
        "{user_spend}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denial_names_the_tripped_limit_that_resets_last() {
    let redis = RedisServer::start();
    let clock = ManualClock::at(NOV_25_NOON);
    let service = Service::start(chokepoint_policy::Config {
        clock: clock.clock(),
        ..usage_config(&redis)
    })
    .await;
    let user = new_user();
    let tenant = new_tenant();
    service.set_limits("user", &user, json!({"rpm": 1})).await;
    service
        .set_limits(
            "tenant",
            &tenant,
            json!({"usd_micros": 1000, "period": "month"}),
        )
        .await;
    service
        .set_limits("model", "gpt-4o-mini", json!({"rpm": 2}))
        .await;

    let first = authorize_request(&user, &tenant, 1, 1000);
    let (_, body) = service.authorize_body(&first).await;
    assert_eq!(body["allow"], true, "{body}");
    // Now the user's rpm (resets in a minute) and the tenant's budget (at month end)
    // both deny; the request cannot pass before the later one resets.
    let (_, body) = service
        .authorize_body(&authorize_request(&user, &tenant, 1, 1000))
        .await;
    assert_eq!(body["limit_name"], "tenant:usd_micros:month", "{body}");
    assert_eq!(body["reason"], "budget_exceeded", "{body}");
    // Only the user's rpm: named alone.
    let (_, body) = service
        .authorize_body(&authorize_request(&user, &new_tenant(), 1, 1000))
        .await;
    assert_eq!(body["limit_name"], "user:rpm", "{body}");
    assert_eq!(body["retry_after_ms"], 60_000, "{body}");
    // Neither took anything: the model's rpm of 2 still has room for one.
    let (_, body) = service
        .authorize_body(&authorize_request(&new_user(), &new_tenant(), 1, 1000))
        .await;
    assert_eq!(body["allow"], true, "{body}");
    let (_, body) = service
        .authorize_body(&authorize_request(&new_user(), &new_tenant(), 1, 1000))
        .await;
    assert_eq!(body["limit_name"], "model:rpm", "{body}");
    assert_eq!(
        body["message"],
        "model gpt-4o-mini's request limit of 2 per 60s reached"
    );

    let metrics = service.metrics().await;
    for line in [
        "chokepoint_policy_denials_total{reason=\"budget_exceeded\",scope=\"tenant\",limit=\"usd_micros\"} 1",
        "chokepoint_policy_denials_total{reason=\"rate_limited\",scope=\"user\",limit=\"rpm\"} 1",
        "chokepoint_policy_denials_total{reason=\"rate_limited\",scope=\"model\",limit=\"rpm\"} 1",
        "chokepoint_policy_denials_total{reason=\"rate_limited\",scope=\"tenant\",limit=\"tpm\"} 0",
        "chokepoint_policy_authorize_total{decision=\"deny\"} 3",
        "chokepoint_policy_authorize_total{decision=\"allow\"} 2",
    ] {
        assert!(metrics.lines().any(|l| l == line), "missing {line:?} in\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpm_and_tpm_windows_deny_then_recover() {
    let redis = RedisServer::start();
    let service = Service::start(chokepoint_policy::Config {
        window: Duration::from_secs(1),
        ..usage_config(&redis)
    })
    .await;

    // (limits, tokens each request reserves, requests a window allows, name, message)
    let cases = [
        (
            json!({"rpm": 2}),
            0,
            2,
            "tenant:rpm",
            "tenant {t}'s request limit of 2 per 1s reached",
        ),
        (
            json!({"tpm": 1000}),
            400,
            2,
            "tenant:tpm",
            "tenant {t}'s token limit of 1000 per 1s has 200 tokens left, less than this \
             request's worst case of 400 tokens",
        ),
        (
            json!({"rpm": 5, "tpm": 100}),
            50,
            2,
            "tenant:tpm",
            "tenant {t}'s token limit of 100 per 1s reached",
        ),
    ];
    for (limits, tokens, allowed, name, message) in cases {
        let tenant = new_tenant();
        service.set_limits("tenant", &tenant, limits.clone()).await;
        let request = || authorize_request(&new_user(), &tenant, tokens, 0);
        let (got, denied) = allowed_in_a_row(&service, request).await;
        assert_eq!(got, allowed, "{limits}");
        assert_eq!(denied["limit_name"], name, "{denied}");
        assert_eq!(
            denied["message"],
            message.replace("{t}", &tenant),
            "{denied}"
        );
        let retry = denied["retry_after_ms"].as_u64().expect("retry_after_ms");
        assert!((1..=1000).contains(&retry), "{denied}");

        // Denials take nothing and do not move the reset.
        let (_, again) = service.authorize_body(&request()).await;
        assert_eq!(again["allow"], false, "{again}");
        assert!(again["retry_after_ms"].as_u64().expect("retry") <= retry);

        tokio::time::sleep(Duration::from_millis(retry + 50)).await;
        let (got, _) = allowed_in_a_row(&service, request).await;
        assert_eq!(got, allowed, "a fresh window: {limits}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_larger_than_a_limit_is_denied_and_says_so() {
    let redis = RedisServer::start();
    let service = Service::start(usage_config(&redis)).await;
    let tenant = new_tenant();
    service
        .set_limits("tenant", &tenant, json!({"tokens": 1000, "period": "day"}))
        .await;
    let (_, body) = service
        .authorize_body(&authorize_request(&new_user(), &tenant, 1001, 0))
        .await;
    assert_eq!(body["limit_name"], "tenant:tokens:day", "{body}");
    assert_eq!(
        body["message"],
        format!(
            "tenant {tenant}'s daily token budget of 1000 tokens has 1000 tokens left, less \
             than this request's worst case of 1001 tokens"
        )
    );
    // A reservation past 2^53 is clamped, never refused: still a denial, not a 400.
    let mut huge = authorize_request(&new_user(), &tenant, 0, 0);
    huge["reserve_tokens"] = json!(u64::MAX);
    let (status, body) = service.authorize_body(&huge).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["allow"], false, "{body}");

    // Odd scope names are taken as they come (the model comes from the client), up to
    // their bound: the filter refuses a longer model name itself.
    let mut odd = authorize_request(&new_user(), &new_tenant(), 1, 1);
    odd["model"] = json!(format!("{}\u{7}}}{{:*", "m".repeat(250)));
    odd["cost_center"] = json!("   ");
    let (status, body) = service.authorize_body(&odd).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["allow"], true, "{body}");
    let (status, body) = service.post_usage(&[usage_for(&odd, 1, 1, 1)]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (&body["accepted"], &body["dead_lettered"]),
        (&json!(1), &json!(0))
    );
    odd["model"] = json!("m".repeat(257));
    let (status, body) = service.authorize_body(&odd).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        body["error"]["message"], "model must be at most 256 bytes (got 257)",
        "{body}"
    );
}
