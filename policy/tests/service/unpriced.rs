//! A request for a model without a price (`"priced": false`) is refused under any dollar
//! budget that applies to it, own or `*` default, whichever scope holds it: it would be
//! booked at 0 µ$. It takes nothing (no reservation, no rate-window count, no lease).
//! Without a dollar budget it goes ahead; token budgets and rate limits apply as ever.

use crate::support::RedisConnection;
use redis::AsyncCommands;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{usage_config, RedisServer, Service};

const USER: &str = "0190a6f2-7c1e-8b3a-9f00-0000000c0575";
const MODEL: &str = "gpt-4o-2024-11-20";

/// The keys that hold something of a request: rate windows counting requests,
/// reservations and their totals, reservation records and indexes. (In the cluster
/// layout a scope that allowed a request another refused gives its share back, which
/// leaves its window and totals at zero.)
async fn taken(redis: &mut RedisConnection) -> Vec<String> {
    let mut held = Vec::new();
    for pattern in ["ck:rate:*", "ck:resv:*"] {
        let keys: Vec<String> = redis.keys(pattern).await.expect("KEYS");
        for key in keys {
            let counts: Vec<Option<u64>> = if key.starts_with("ck:rate:") {
                redis::cmd("HMGET")
                    .arg(&key)
                    .arg("requests")
                    .query_async(redis)
                    .await
                    .expect("HMGET")
            } else if key.starts_with("ck:resv:sum:") {
                redis::cmd("HMGET")
                    .arg(&key)
                    .arg(&["tokens", "cost_micros"])
                    .query_async(redis)
                    .await
                    .expect("HMGET")
            } else {
                vec![Some(1)]
            };
            if counts.iter().any(|count| count.unwrap_or(0) > 0) {
                held.push(key);
            }
        }
    }
    held.sort();
    held
}

fn ask(id: &str, priced: Option<bool>, lease_slots: u64) -> Value {
    let mut body = json!({
        "request_id": id,
        "user": USER,
        "tenant": "acme",
        "cost_center": "cc-1",
        "model": MODEL,
        "model_key": "other",
        "reserve_tokens": 1_000,
        "reserve_cost_micros": 0,
        "lease_slots": lease_slots,
        "lease_return_ms": 1_000,
    });
    if let Some(priced) = priced {
        body["priced"] = json!(priced);
    }
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpriced_requests_are_refused_under_any_dollar_budget_that_applies() {
    let usd = |period: &str| json!({"usd_micros": 25_000_000, "period": period});
    // (case, limit sets as (kind, id, set), the dollar budget that refuses an unpriced
    // request and the message's owner, or None: unpriced requests go ahead)
    type Case = (
        &'static str,
        Vec<(&'static str, &'static str, Value)>,
        Option<(&'static str, &'static str)>,
    );
    let cases: Vec<Case> = vec![
        (
            "user",
            vec![("user", USER, usd("month"))],
            Some((
                "user:usd_micros:month",
                "the user's monthly budget of $25.00",
            )),
        ),
        (
            "tenant",
            vec![("tenant", "acme", usd("month"))],
            Some((
                "tenant:usd_micros:month",
                "tenant acme's monthly budget of $25.00",
            )),
        ),
        (
            "cost centre",
            vec![("cost_center", "cc-1", usd("day"))],
            Some((
                "cost_center:usd_micros:day",
                "cost centre cc-1's daily budget of $25.00",
            )),
        ),
        (
            "model, by its key",
            vec![("model", "other", usd("rolling:3600"))],
            Some((
                "model:usd_micros:rolling",
                "model other's budget of $25.00 per 3600s",
            )),
        ),
        (
            "`*` default",
            vec![("tenant", "*", usd("month"))],
            Some((
                "tenant:usd_micros:month",
                "tenant acme's monthly budget of $25.00",
            )),
        ),
        (
            "the first of several, in scope order",
            vec![
                ("model", "*", usd("day")),
                ("cost_center", "cc-1", usd("month")),
            ],
            Some((
                "cost_center:usd_micros:month",
                "cost centre cc-1's monthly budget of $25.00",
            )),
        ),
        ("no budget", vec![], None),
        (
            "a token budget only",
            vec![(
                "tenant",
                "acme",
                json!({"tokens": 1_000_000, "period": "month"}),
            )],
            None,
        ),
        (
            "a model's own budget is not the client's model name's",
            vec![("model", MODEL, usd("month"))],
            None,
        ),
        (
            "an own token budget shadows a `*` dollar default",
            vec![
                ("user", "*", usd("month")),
                ("user", USER, json!({"tokens": 1_000_000, "period": "day"})),
            ],
            None,
        ),
    ];
    for (case, sets, refused) in cases {
        // A Redis of its own: `*` defaults reach every scope of their kind.
        let redis = RedisServer::start();
        let service = Service::start(usage_config(&redis)).await;
        let mut conn = redis.connection().await;
        for (kind, id, set) in &sets {
            service.set_limits(kind, id, set.clone()).await;
        }

        for (id, lease) in [("unpriced", 0), ("unpriced-lease", 8)] {
            let (status, body) = service.authorize_body(&ask(id, Some(false), lease)).await;
            assert_eq!(status, StatusCode::OK, "{case}: {body}");
            match refused {
                Some((limit_name, budget)) => {
                    assert_eq!(body["allow"], false, "{case}: {body}");
                    assert_eq!(body["reason"], "unpriced_model", "{case}: {body}");
                    assert_eq!(body["limit_name"], limit_name, "{case}: {body}");
                    let message = body["message"].as_str().expect("message");
                    let expected =
                        format!("model {MODEL} has no price, so it cannot be charged to {budget}");
                    assert!(message.starts_with(&expected), "{case}: {message}");
                    assert!(body.get("retry_after_ms").is_none(), "{case}: {body}");
                    assert_eq!(taken(&mut conn).await, Vec::<String>::new(), "{case}");
                }
                None => assert_eq!(body["allow"], true, "{case}: {body}"),
            }
        }
        if refused.is_none() {
            // Token budgets and rate limits still count it.
            let keys = taken(&mut conn).await;
            assert!(
                keys.contains(&format!("ck:rate:user:{{{USER}}}")),
                "{case}: {keys:?}"
            );
            assert!(
                keys.contains(&"ck:resv:req:{unpriced}".to_owned())
                    || keys.contains(&"ck:resv:idx:{unpriced}".to_owned()),
                "{case}: {keys:?}"
            );
        }

        // Priced (said so, or by default), the same request goes ahead.
        for (id, priced) in [("priced", Some(true)), ("priced-by-default", None)] {
            let (status, body) = service.authorize_body(&ask(id, priced, 0)).await;
            assert_eq!(status, StatusCode::OK, "{case}: {body}");
            assert_eq!(body["allow"], true, "{case} {id}: {body}");
        }
        if refused.is_some() {
            let metrics = service.metrics().await;
            let scope = refused.map_or("", |(name, _)| name.split(':').next().unwrap_or(""));
            let line = format!(
                "chokepoint_policy_denials_total{{reason=\"unpriced_model\",scope=\"{scope}\",limit=\"usd_micros\"}} 2"
            );
            assert!(metrics.lines().any(|l| l == line), "{case}: {metrics}");
        }
    }
}
