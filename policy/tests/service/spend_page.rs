//! The spend page and its data: booked usage and refusals read back through
//! `/v1/admin/overview` (equal to the ledger, the rankings and `/v1/admin/spend`) and
//! rendered at `/ui` with the same figures; the page's login, session cookie and
//! headers; client tools bounded per day.

use std::time::{SystemTime, UNIX_EPOCH};

use reqwest::{header, StatusCode};
use serde_json::{json, Value};

use crate::support::{
    authorize_request, new_tenant, new_user, usage_config, RedisServer, Service, ADMIN_TOKEN,
};

fn now_ms() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock");
    u64::try_from(since.as_millis()).expect("ms")
}

fn day_and_month() -> (String, String) {
    let day = chokepoint_policy::utc_date::Day::from_unix_ms(now_ms());
    (day.to_string(), day.month().to_string())
}

fn record(
    id: &str,
    user: &str,
    tenant: &str,
    model: &str,
    client: Option<&str>,
    cost: u64,
) -> Value {
    let mut r = json!({
        "request_id": id, "user": user, "tenant": tenant, "cost_center": "cc-9",
        "model": model, "input_tokens": 100, "output_tokens": 10, "cost_micros": cost,
        "ts_ms": now_ms(),
    });
    if let Some(client) = client {
        r["client"] = json!(client);
    }
    r
}

fn row<'a>(rows: &'a Value, id: &str) -> &'a Value {
    rows.as_array()
        .and_then(|rows| rows.iter().find(|r| r["id"] == id))
        .unwrap_or_else(|| panic!("no row {id} in {rows}"))
}

async fn page(
    service: &Service,
    path: &str,
    cookie: Option<&str>,
    bearer: Option<&str>,
) -> (StatusCode, header::HeaderMap, String) {
    let mut request = service.http.get(format!("{}{path}", service.admin_base));
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("send");
    let status = response.status();
    let headers = response.headers().clone();
    (status, headers, response.text().await.expect("body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_equals_the_ledger_and_the_page_shows_it() {
    let redis = RedisServer::start();
    let service = Service::start(usage_config(&redis)).await;
    let (day, month) = day_and_month();
    let (alice, bob) = (new_user(), new_user());
    let tenant = new_tenant();
    let hostile = "<script>alert(1)</script>";
    let records = [
        record(
            "p1",
            &alice,
            &tenant,
            "gpt-4o",
            Some("claude-code/2.1.332"),
            3_000_000,
        ),
        record(
            "p2",
            &alice,
            &tenant,
            "gpt-4o",
            Some("Claude-Code/2.2.0"),
            1_000_000,
        ),
        record(
            "p3",
            &bob,
            hostile,
            "claude-sonnet-4-5",
            Some("codex/0.171.0"),
            700_000,
        ),
        record("p4", &bob, &tenant, "claude-sonnet-4-5", None, 5),
    ];
    let (status, body) = service.post_usage(&records).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A retried batch books nothing again, by client tool either.
    let (_, again) = service.post_usage(&records).await;
    assert_eq!(again["duplicates"], 4, "{again}");

    // A budget of the tenant's, and refusals: bob's rpm of 1 refuses his second request.
    service
        .set_limits(
            "tenant",
            &tenant,
            json!({"usd_micros": 10_000_000, "period": "month"}),
        )
        .await;
    service.set_limits("user", &bob, json!({"rpm": 1})).await;
    let mut refused = 0;
    for _ in 0..3 {
        let (status, answer) = service
            .authorize_body(&authorize_request(&bob, &tenant, 10, 10))
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        if answer["allow"] == false {
            assert_eq!(answer["limit_name"], "user:rpm", "{answer}");
            refused += 1;
        }
    }
    assert_eq!(refused, 2);

    let (status, overview) = service
        .admin(reqwest::Method::GET, "/v1/admin/overview", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{overview}");
    assert_eq!(overview["period"], month.as_str());
    assert_eq!(overview["current"], true);
    let days = overview["days"].as_array().expect("days");
    let today = days
        .iter()
        .position(|d| d == day.as_str())
        .expect("today listed");

    // Spend by model and tenant: the rankings' /v1/admin/top, with each day's cost.
    for (kind, key, id, cost) in [
        ("model", "by_model", "gpt-4o", 4_000_000),
        ("model", "by_model", "claude-sonnet-4-5", 700_005),
        ("tenant", "by_tenant", tenant.as_str(), 4_000_005),
        ("tenant", "by_tenant", hostile, 700_000),
        ("cost_center", "by_cost_center", "cc-9", 4_700_005),
    ] {
        let r = row(&overview[key], id);
        assert_eq!(r["cost_micros"], cost, "{kind} {id}: {r}");
        assert_eq!(r["daily_cost_micros"][today], cost, "{kind} {id}: {r}");
        let (_, top) = service
            .admin(
                reqwest::Method::GET,
                &format!("/v1/admin/top?scope_kind={kind}"),
                None,
            )
            .await;
        let t = row(&top["top"], id);
        for field in ["cost_micros", "tokens", "requests"] {
            assert_eq!(r[field], t[field], "{kind} {id} {field}: {r} vs {t}");
        }
    }
    // By client tool: versions dropped, case folded; a record naming none is in no row.
    let clients = &overview["by_client"];
    assert_eq!(clients.as_array().map(Vec::len), Some(2), "{clients}");
    let claude = row(clients, "claude-code");
    assert_eq!(
        (
            &claude["cost_micros"],
            &claude["requests"],
            &claude["tokens"]
        ),
        (&json!(4_000_000), &json!(2), &json!(220)),
        "{claude}"
    );
    assert_eq!(row(clients, "codex")["cost_micros"], 700_000);
    // Top users: /v1/admin/top's entries.
    let (_, top_users) = service
        .admin(reqwest::Method::GET, "/v1/admin/top", None)
        .await;
    assert_eq!(overview["top_users"], top_users["top"]);
    assert_eq!(overview["top_users"][0]["id"], alice.as_str());
    // Budgets: /v1/admin/spend's, with the day-by-day spend.
    let budget = overview["budgets"]
        .as_array()
        .and_then(|b| b.iter().find(|b| b["id"] == tenant.as_str()))
        .unwrap_or_else(|| panic!("no budget of {tenant}: {overview}"));
    let spend = service.spend("tenant", &tenant, None).await;
    let own = &spend["budgets"][0];
    for field in ["name", "limit", "spent", "reserved", "remaining", "window"] {
        assert_eq!(budget[field], own[field], "{field}: {budget} vs {own}");
    }
    assert_eq!(budget["spent"], 4_000_005);
    assert_eq!(budget["spent_by_day"][today], 4_000_005, "{budget}");
    // Refusals by limit.
    let refusals = &overview["refusals"];
    assert_eq!(refusals[0]["limit"], "user:rpm", "{refusals}");
    assert_eq!(refusals[0]["count"], 2, "{refusals}");
    assert_eq!(refusals[0]["daily"][today], 2, "{refusals}");

    // The page: the same figures, client-chosen names escaped.
    let (status, headers, html) = page(&service, "/ui", None, Some(ADMIN_TOKEN)).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert_eq!(
        headers[header::CONTENT_SECURITY_POLICY].to_str().ok(),
        Some("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
    );
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    for needle in [
        r#"<tr data-id="gpt-4o"><td class="id">gpt-4o</td><td class="num" data-value="4000000">$4.00</td>"#.to_owned(),
        format!(r#"<tr data-id="{alice}"><td class="num">1</td>"#),
        r#"<tr data-id="user:rpm"><td class="id">user:rpm</td><td class="num" data-value="2">2</td>"#.to_owned(),
        format!(r#"data-value="{}">"#, budget["remaining"]),
        "&lt;script&gt;alert(1)&lt;/script&gt;".to_owned(),
    ] {
        assert!(html.contains(&needle), "{needle} not in {html}");
    }
    assert!(!html.contains(hostile), "unescaped: {html}");
    // The charts' JSON cannot close its script element either.
    let charts = html
        .split(r#"<script type="application/json" id="charts">"#)
        .nth(1)
        .and_then(|rest| rest.split("</script>").next())
        .expect("charts");
    let charts: Value = serde_json::from_str(charts).expect("charts JSON");
    assert!(charts.to_string().contains(hostile));

    // A user's page: their ledger totals and limits.
    let (status, _, html) = page(
        &service,
        &format!("/ui/user/{bob}?tenant={tenant}"),
        None,
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{html}");
    let (_, user) = service
        .admin(
            reqwest::Method::GET,
            &format!("/v1/admin/overview/user?id={bob}&tenant={tenant}"),
            None,
        )
        .await;
    assert_eq!(user["usage"]["cost_micros"], 700_005, "{user}");
    assert_eq!(
        user["limits"][0]["rate_limits"][0]["name"], "user:rpm",
        "{user}"
    );
    assert_eq!(user["limits"][1]["id"], tenant.as_str(), "{user}");
    assert!(html.contains(r#"data-value="700005">$0.700005<"#), "{html}");
    assert!(html.contains("user:rpm"), "{html}");

    // The static files: cached for good, under the same CSP.
    let js = html
        .split(r#"<script src=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a script");
    let (status, headers, body) = page(&service, js, None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers[header::CACHE_CONTROL],
        "public, max-age=31536000, immutable"
    );
    assert!(body.contains("uPlot"), "{js}");
    service.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_needs_the_admin_token_or_a_session_of_it() {
    let redis = RedisServer::start();
    let service = Service::start(usage_config(&redis)).await;
    let no_redirects = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let url = |path: &str| format!("{}{path}", service.admin_base);

    // Without credentials: to the login form; a wrong bearer token too.
    for bearer in [None, Some("wrong")] {
        let mut request = no_redirects.get(url("/ui"));
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("send");
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{bearer:?}");
        assert_eq!(response.headers()[header::LOCATION], "/ui/login");
    }
    // The form: a wrong token is refused, the right one gives a session cookie that is
    // not the token, locked down, and opens the page.
    let login = |token: &str| {
        no_redirects
            .post(url("/ui/login"))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(format!("token={}", token))
            .send()
    };
    let refused = login("wrong").await.expect("send");
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert!(refused.headers().get(header::SET_COOKIE).is_none());
    let ok = login(ADMIN_TOKEN).await.expect("send");
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    let cookie = ok.headers()[header::SET_COOKIE]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(!cookie.contains(ADMIN_TOKEN), "{cookie}");
    for attribute in [
        "; Path=/ui",
        "; HttpOnly",
        "; SameSite=Strict",
        "; Max-Age=28800",
    ] {
        assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    let session = cookie.split(';').next().expect("pair").to_owned();
    let (status, _, html) = page(&service, "/ui", Some(&session), None).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    // A tampered session is no session.
    let tampered = format!("{}0", session.trim_end_matches(char::is_alphanumeric));
    let (status, _, _) = page(&service, "/ui/login", Some(&tampered), None).await;
    assert_eq!(status, StatusCode::OK, "the login form again");
    // Behind a TLS proxy the cookie is Secure.
    let https = no_redirects
        .post(url("/ui/login"))
        .header("x-forwarded-proto", "https")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("token={}", ADMIN_TOKEN))
        .send()
        .await
        .expect("send");
    assert!(https.headers()[header::SET_COOKIE]
        .to_str()
        .expect("ascii")
        .contains("; Secure"));
    // Logging out deletes the cookie.
    let out = no_redirects
        .post(url("/ui/logout"))
        .header(header::COOKIE, &session)
        .send()
        .await
        .expect("send");
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert!(out.headers()[header::SET_COOKIE]
        .to_str()
        .expect("ascii")
        .contains("Max-Age=0"));
    service.stop().await.expect("stop");

    // Without an admin token the page is off, as the admin API is, whatever is sent.
    let service = Service::start(chokepoint_policy::Config {
        admin_token: None,
        ..usage_config(&redis)
    })
    .await;
    let (status, _, html) = page(&service, "/ui", Some(&session), Some(ADMIN_TOKEN)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{html}");
    assert!(html.contains("The spend page is off"), "{html}");
    let off = reqwest::Client::new()
        .post(format!("{}/ui/login", service.admin_base))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("token={}", ADMIN_TOKEN))
        .send()
        .await
        .expect("send");
    assert_eq!(off.status(), StatusCode::FORBIDDEN);
    service.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_takes_at_most_64_client_tools_and_counts_the_rest_as_other() {
    let redis = RedisServer::start();
    let service = Service::start(usage_config(&redis)).await;
    let user = new_user();
    let tenant = new_tenant();
    // 70 tools, one record each, in chunks of several records (the script's cap holds
    // within a chunk and across them).
    let records: Vec<Value> = (0..70)
        .map(|i| {
            record(
                &format!("c{i}"),
                &user,
                &tenant,
                "gpt-4o",
                Some(&format!("tool-{i:02}/1.0")),
                10,
            )
        })
        .collect();
    for batch in records.chunks(30) {
        let (status, body) = service.post_usage(batch).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // A batch of a booked record and a new one (the script then reads each record's
    // amounts): only the new one counts.
    let mixed = [
        records[0].clone(),
        record("c70", &user, &tenant, "gpt-4o", Some("tool-00/2.0"), 5),
    ];
    let (status, body) = service.post_usage(&mixed).await;
    assert_eq!(
        (status, &body["duplicates"]),
        (StatusCode::OK, &json!(1)),
        "{body}"
    );
    let (status, overview) = service
        .admin(reqwest::Method::GET, "/v1/admin/overview?limit=100", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{overview}");
    let clients = overview["by_client"].as_array().expect("rows");
    assert_eq!(clients.len(), 65, "64 tools and other: {clients:?}");
    let other = row(&overview["by_client"], "other");
    assert_eq!(other["requests"], 6, "{other}");
    assert_eq!(other["cost_micros"], 60, "{other}");
    let tool = row(&overview["by_client"], "tool-00");
    assert_eq!(
        (&tool["requests"], &tool["cost_micros"]),
        (&json!(2), &json!(15)),
        "{tool}"
    );
    let total: u64 = clients.iter().filter_map(|c| c["requests"].as_u64()).sum();
    assert_eq!(total, 71, "every record counted once");
    service.stop().await.expect("stop");
}
