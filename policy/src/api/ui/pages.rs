//! The spend page's pages: the overview (the admin's), a user's page, the login form.
//! Each renders the admin JSON's answer for the same period (`admin_overview`), so every
//! figure on a page is the API's.

use std::fmt::Write;

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use serde::Deserialize;
use serde_json::{json, Value};

use super::html::{bar, count_cell, esc, page, usd_cell, Frame};
use super::session;
use super::viewer::{self, Unseen, Viewer};
use crate::api::admin_overview::{self, Overview, Refused, Row, UserOverview};
use crate::api::bearer::tokens_match;
use crate::api::error::ApiError;
use crate::api::AppState;
use crate::display::{format_duration_ms, format_usd};
use crate::fields;
use crate::user_id::UserId;

#[derive(Deserialize, Default)]
pub struct PageQuery {
    period: Option<String>,
    limit: Option<String>,
    /// A user page's tenant, whose limits it shows too (the admin's choice; a user's
    /// own tenant comes with their viewer).
    tenant: Option<String>,
}

#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
}

fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

fn redirect(to: &'static str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, HeaderValue::from_static(to))],
    )
        .into_response()
}

/// A page saying what went wrong, with the status the API would answer.
fn error_page(viewer: Option<&Viewer>, status: StatusCode, message: &str) -> Response {
    let who = viewer.map(Viewer::label).unwrap_or_default();
    let frame = Frame {
        title: "Spend",
        who: &who,
        period: None,
        logout: viewer.is_some(),
    };
    let body = format!(
        r#"<section><p class="error" id="error">{}</p><p><a href="/ui">Back to the overview</a></p></section>"#,
        esc(message)
    );
    html(status, page(&frame, &body, None))
}

fn api_error_page(viewer: &Viewer, err: &ApiError) -> Response {
    error_page(Some(viewer), err.status, &err.message)
}

fn unseen(unseen: Unseen) -> Response {
    match unseen {
        Unseen::Off => error_page(
            None,
            StatusCode::FORBIDDEN,
            "The spend page is off: no admin token is configured (set --admin-token or \
             CHOKEPOINT_ADMIN_TOKEN).",
        ),
        Unseen::LogIn => redirect("/ui/login"),
    }
}

fn query_of(query: Result<Query<PageQuery>, QueryRejection>) -> Result<PageQuery, ApiError> {
    query
        .map(|Query(q)| q)
        .map_err(|rejection| ApiError::invalid_request("invalid_query", format!("{rejection}")))
}

/// `GET /ui`: the overview for the admin, a user's own page for a user.
pub async fn overview_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Response {
    match viewer::resolve(&state, &headers).await {
        Ok(viewer) => match query_of(query) {
            Ok(query) => overview_for(&state, &viewer, &query).await,
            Err(err) => api_error_page(&viewer, &err),
        },
        Err(why) => unseen(why),
    }
}

/// `GET /ui/user/<id>`: one user's page, for the admin or that user.
pub async fn user_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Response {
    match viewer::resolve(&state, &headers).await {
        Ok(viewer) => match query_of(query) {
            Ok(query) => user_for(&state, &viewer, &id, &query).await,
            Err(err) => api_error_page(&viewer, &err),
        },
        Err(why) => unseen(why),
    }
}

pub async fn overview_for(state: &AppState, viewer: &Viewer, query: &PageQuery) -> Response {
    if let Viewer::User { user, .. } = viewer {
        return user_for(state, viewer, user.as_str(), query).await;
    }
    let now_ms = state.clock.now_ms();
    let parsed = admin_overview::period_of(query.period.as_deref(), now_ms)
        .and_then(|period| Ok((period, admin_overview::rows_of(query.limit.as_deref())?)));
    let (period, rows) = match parsed {
        Ok(parsed) => parsed,
        Err(err) => return api_error_page(viewer, &err),
    };
    match admin_overview::overview(state, period, rows).await {
        Ok(data) => {
            let (body, charts) = render_overview(&data);
            let who = viewer.label();
            let frame = Frame {
                title: "Spend",
                who: &who,
                period: Some((&data.period, "/ui")),
                logout: true,
            };
            html(StatusCode::OK, page(&frame, &body, Some(&charts)))
        }
        Err(err) => api_error_page(viewer, &err),
    }
}

pub async fn user_for(state: &AppState, viewer: &Viewer, id: &str, query: &PageQuery) -> Response {
    let Some(user) = UserId::parse(id) else {
        return error_page(
            Some(viewer),
            StatusCode::BAD_REQUEST,
            "A user is named by their UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx).",
        );
    };
    // Checked before anything is read: a user learns nothing of another's usage.
    if !viewer.may_see(&user) {
        return error_page(
            Some(viewer),
            StatusCode::FORBIDDEN,
            "You can see only your own usage.",
        );
    }
    let tenant = match viewer {
        Viewer::User { tenant, .. } => Ok(tenant.clone()),
        Viewer::Admin => fields::name("tenant", query.tenant.clone())
            .map(|t| t.filter(|t| !t.trim().is_empty()))
            .map_err(ApiError::from),
    };
    let now_ms = state.clock.now_ms();
    let parsed = tenant.and_then(|t| {
        Ok((
            t,
            admin_overview::period_of(query.period.as_deref(), now_ms)?,
        ))
    });
    let (tenant, period) = match parsed {
        Ok(parsed) => parsed,
        Err(err) => return api_error_page(viewer, &err),
    };
    match admin_overview::user_overview(state, &user, tenant.as_deref(), period).await {
        Ok(data) => {
            let (body, charts) = render_user(&data);
            let who = viewer.label();
            let action = format!("/ui/user/{}", user.as_str());
            let frame = Frame {
                title: "Usage",
                who: &who,
                period: Some((&data.period, &action)),
                logout: true,
            };
            html(StatusCode::OK, page(&frame, &body, Some(&charts)))
        }
        Err(err) => api_error_page(viewer, &err),
    }
}

/// `GET /ui/login`: the form (or the page itself for a browser already logged in).
pub async fn login_form(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match viewer::resolve(&state, &headers).await {
        Ok(_) => redirect("/ui"),
        Err(Unseen::Off) => unseen(Unseen::Off),
        Err(Unseen::LogIn) => login_page(StatusCode::OK, None),
    }
}

fn login_page(status: StatusCode, message: Option<&str>) -> Response {
    let frame = Frame {
        title: "Spend",
        who: "",
        period: None,
        logout: false,
    };
    let message = message.map_or_else(String::new, |m| {
        format!(r#"<p class="error" id="error">{}</p>"#, esc(m))
    });
    let body = format!(
        r#"<section><h2>Log in</h2>{message}<form class="login" method="post" action="/ui/login"><label>Admin token or company token<input type="password" name="token" autocomplete="current-password" required autofocus></label><button type="submit">Log in</button></form><p class="muted">The admin token is the policy service's (--admin-token): the browser keeps a signed session for {hours} hours, never the token. A company token (the JWT <code>chokepoint-login</code> prints) shows your own usage, or everyone's to an admin group; the browser keeps it, for the pages only, until it expires.</p></section>"#,
        hours = session::LIFETIME_SECS / 3600
    );
    html(status, page(&frame, &body, None))
}

/// `POST /ui/login`: the admin token from the form (a session cookie), or a company JWT
/// (kept in its own cookie, verified on every request).
pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    if state.admin_token.is_none() && !state.viewers.has_issuers() {
        return unseen(Unseen::Off);
    }
    let presented = form.map(|Form(form)| form.token).unwrap_or_default();
    let presented = presented.trim();
    let secure = session::over_https(&headers);
    if let Some(token) = state.admin_token.as_deref() {
        if tokens_match(presented.as_bytes(), token.as_bytes()) {
            let value = session::mint(token, state.clock.now_ms());
            let mut response = redirect("/ui");
            response
                .headers_mut()
                .insert(header::SET_COOKIE, session::set_cookie(&value, secure));
            return response;
        }
    }
    // A company JWT: kept as it is (the pages verify it on every request) once it verifies
    // now; the admin token is never put in a cookie.
    let mut as_bearer = HeaderMap::new();
    let verified = match header::HeaderValue::from_str(&format!("Bearer {presented}")) {
        Ok(value) => {
            as_bearer.insert(header::AUTHORIZATION, value);
            state.viewers.has_issuers()
                && state
                    .viewers
                    .resolve(&as_bearer, state.clock.now_ms() / 1000)
                    .await
                    .is_ok()
        }
        Err(_) => false,
    };
    if !verified {
        return login_page(
            StatusCode::UNAUTHORIZED,
            Some("That is neither the admin token nor a valid company token."),
        );
    }
    let mut response = redirect("/ui");
    response.headers_mut().insert(
        header::SET_COOKIE,
        session::set_token_cookie(presented, secure),
    );
    response
}

/// `POST /ui/logout`: deletes the session cookie.
pub async fn logout(headers: HeaderMap) -> Response {
    let mut response = redirect("/ui/login");
    let secure = session::over_https(&headers);
    let cookies = response.headers_mut();
    cookies.append(header::SET_COOKIE, session::set_cookie("", secure));
    cookies.append(header::SET_COOKIE, session::set_token_cookie("", secure));
    response
}

/// One chart for ui.js: daily values per series, none for the days still to come (past
/// `elapsed`).
fn chart(id: &str, unit: &str, days: &[String], elapsed: usize, mut series: Vec<Value>) -> Value {
    for s in &mut series {
        if let Some(values) = s["values"].as_array_mut() {
            for value in values.iter_mut().skip(elapsed) {
                *value = Value::Null;
            }
        }
    }
    json!({"id": id, "unit": unit, "days": days, "series": series})
}

fn spend_section(
    title: &str,
    key: &str,
    what: &str,
    rows: &[Row],
    days: &[String],
    elapsed: usize,
) -> (String, Value) {
    let mut out = format!(
        r#"<section id="{key}"><h2>{title}</h2><div class="chart" id="chart-{key}"></div>"#,
        title = esc(title)
    );
    if rows.is_empty() {
        out.push_str(r#"<p class="empty">No spend in this period.</p></section>"#);
    } else {
        let _ = write!(
            out,
            r#"<table><thead><tr><th>{what}</th><th class="num">Cost</th><th class="num">Tokens</th><th class="num">Requests</th></tr></thead><tbody>"#,
            what = esc(what)
        );
        for row in rows {
            let _ = write!(
                out,
                r#"<tr data-id="{id}"><td class="id">{id}</td>{}{}{}</tr>"#,
                usd_cell(row.cost_micros),
                count_cell(row.tokens),
                count_cell(row.requests),
                id = esc(&row.id),
            );
        }
        out.push_str("</tbody></table></section>\n");
    }
    let series = rows
        .iter()
        .map(|row| json!({"label": row.id, "values": row.daily_cost_micros}))
        .collect();
    (
        out,
        chart(&format!("chart-{key}"), "usd_micros", days, elapsed, series),
    )
}

fn top_section(top: &[Value], period: &str) -> String {
    let mut out = String::from(r#"<section id="top-users"><h2>Top spenders</h2>"#);
    if top.is_empty() {
        out.push_str(r#"<p class="empty">No spend in this period.</p></section>"#);
        return out;
    }
    out.push_str(r#"<table><thead><tr><th class="num">Rank</th><th>User</th><th class="num">Cost</th><th class="num">Tokens</th><th class="num">Requests</th></tr></thead><tbody>"#);
    for entry in top {
        let id = entry["id"].as_str().unwrap_or_default();
        let n = |field: &str| entry[field].as_u64().unwrap_or(0);
        let _ = write!(
            out,
            r#"<tr data-id="{id}"><td class="num">{rank}</td><td class="id"><a href="/ui/user/{id}?period={period}">{id}</a></td>{}{}{}</tr>"#,
            usd_cell(n("cost_micros")),
            count_cell(n("tokens")),
            count_cell(n("requests")),
            rank = n("rank"),
            id = esc(id),
            period = esc(period),
        );
    }
    out.push_str("</tbody></table></section>\n");
    out
}

/// A budget's figure as it reads: dollars or tokens.
fn amount(metric: &str, n: u64) -> String {
    if metric == "usd_micros" {
        format_usd(n)
    } else {
        format!("{n} tokens")
    }
}

fn budget_rows(budgets: &[Value], with_owner: bool) -> String {
    let mut out = String::from("<table><thead><tr>");
    if with_owner {
        out.push_str("<th>Scope</th>");
    }
    out.push_str(r#"<th>Budget</th><th>Window</th><th>Source</th><th class="num">Limit</th><th class="num">Spent</th><th class="num">Reserved</th><th class="num">Remaining</th><th>Used</th><th>Resets in</th></tr></thead><tbody>"#);
    for budget in budgets {
        let name = budget["name"].as_str().unwrap_or_default();
        let metric = if name.contains(":usd_micros:") {
            "usd_micros"
        } else {
            "tokens"
        };
        let n = |field: &str| budget[field].as_u64().unwrap_or(0);
        let cell = |field: &str| {
            format!(
                r#"<td class="num" data-value="{}">{}</td>"#,
                n(field),
                esc(&amount(metric, n(field)))
            )
        };
        let scope = format!(
            "{}:{}",
            budget["scope_kind"].as_str().unwrap_or_default(),
            budget["id"].as_str().unwrap_or_default()
        );
        let _ = write!(
            out,
            r#"<tr data-scope="{}" data-name="{}">"#,
            esc(&scope),
            esc(name)
        );
        if with_owner {
            let _ = write!(out, r#"<td class="id">{}</td>"#, esc(&scope));
        }
        let _ = write!(
            out,
            r#"<td>{name}</td><td>{window}</td><td class="id">{source}</td>{limit}{spent}{reserved}{remaining}<td>{bar}</td><td>{reset}</td></tr>"#,
            name = esc(name),
            window = esc(budget["window"].as_str().unwrap_or_default()),
            source = esc(budget["source"].as_str().unwrap_or_default()),
            limit = cell("limit"),
            spent = cell("spent"),
            reserved = cell("reserved"),
            remaining = cell("remaining"),
            bar = bar(n("spent").saturating_add(n("reserved")), n("limit")),
            reset = budget["reset_after_ms"]
                .as_u64()
                .map_or_else(String::new, format_duration_ms),
        );
    }
    out.push_str("</tbody></table>");
    out
}

/// Burn-down charts: what remains of each day or month budget at the end of each day,
/// against spending it evenly over the period.
fn burn_charts(budgets: &[Value], days: &[String], elapsed: usize) -> (String, Vec<Value>) {
    let mut html = String::new();
    let mut charts = Vec::new();
    for (i, budget) in budgets
        .iter()
        .filter(|b| b["spent_by_day"].is_array())
        .take(12)
        .enumerate()
    {
        let limit = budget["limit"].as_u64().unwrap_or(0);
        let spent: Vec<u64> = budget["spent_by_day"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| v.as_u64().unwrap_or(0))
            .collect();
        let remaining: Vec<u64> = spent.iter().map(|s| limit.saturating_sub(*s)).collect();
        let span = days.len().max(1) as u64;
        let pace: Vec<u64> = (1..=span)
            .map(|d| limit.saturating_sub(limit.saturating_mul(d) / span))
            .collect();
        let unit = budget["metric"].as_str().unwrap_or("usd_micros");
        let title = format!(
            "{}:{} {}",
            budget["scope_kind"].as_str().unwrap_or_default(),
            budget["id"].as_str().unwrap_or_default(),
            budget["name"].as_str().unwrap_or_default()
        );
        let id = format!("chart-burn-{i}");
        let _ = write!(
            html,
            r#"<div><h3 class="muted">{}</h3><div class="chart" id="{id}"></div></div>"#,
            esc(&title)
        );
        charts.push(chart(
            &id,
            unit,
            days,
            days.len(),
            vec![
                json!({"label": "remaining", "values": remaining.iter().take(elapsed).collect::<Vec<_>>()}),
                json!({"label": "even pace", "values": pace, "dash": [6, 4], "colour": "#9aa0a6"}),
            ],
        ));
    }
    (html, charts)
}

fn refusals_section(refusals: &[Refused], days: &[String], elapsed: usize) -> (String, Value) {
    let mut out = String::from(
        r#"<section id="refusals"><h2>Rate-limit pressure: refusals (429) by limit</h2><div class="chart" id="chart-refusals"></div>"#,
    );
    if refusals.is_empty() {
        out.push_str(r#"<p class="empty">No request was refused in this period.</p>"#);
    } else {
        out.push_str(
            r#"<table><thead><tr><th>Limit</th><th class="num">Refused</th></tr></thead><tbody>"#,
        );
        for row in refusals {
            let _ = write!(
                out,
                r#"<tr data-id="{limit}"><td class="id">{limit}</td>{}</tr>"#,
                count_cell(row.count),
                limit = esc(&row.limit)
            );
        }
        out.push_str("</tbody></table>");
    }
    out.push_str("</section>\n");
    let series = refusals
        .iter()
        .map(|row| json!({"label": row.limit, "values": row.daily}))
        .collect();
    (out, chart("chart-refusals", "count", days, elapsed, series))
}

pub fn render_overview(data: &Overview) -> (String, Value) {
    let mut body = String::new();
    let mut charts = Vec::new();
    let _ = write!(
        body,
        r#"<p class="muted">Spend in {period}, by UTC day, from the ledger's rollups: the same figures as <code>GET /v1/admin/overview?period={period}</code>.</p><div class="grid">"#,
        period = esc(&data.period)
    );
    for (title, key, what, rows) in [
        ("Spend by model", "by-model", "Model", &data.by_model),
        (
            "Spend by team (cost centre)",
            "by-cost-center",
            "Cost centre",
            &data.by_cost_center,
        ),
        ("Spend by tenant", "by-tenant", "Tenant", &data.by_tenant),
        (
            "Spend by client tool",
            "by-client",
            "Client tool",
            &data.by_client,
        ),
    ] {
        let (html, chart) = spend_section(title, key, what, rows, &data.days, data.elapsed_days);
        body.push_str(&html);
        charts.push(chart);
    }
    body.push_str("</div>\n");
    body.push_str(&top_section(&data.top_users, &data.period));
    let _ = write!(
        body,
        r#"<section id="budgets"><h2>Budgets</h2><p class="muted">{}</p>"#,
        if data.current {
            "As they stand now: every budget's spend in its current window, with live reservations."
        } else {
            "The budgets over this kind of period, with the ledger's spend in it."
        }
    );
    if data.budgets.is_empty() {
        body.push_str(r#"<p class="empty">No budget is set.</p>"#);
    } else {
        body.push_str(&budget_rows(&data.budgets, true));
        let (html, burn) = burn_charts(&data.budgets, &data.days, data.elapsed_days);
        if !burn.is_empty() {
            let _ = write!(body, r#"<h2>Burn-down</h2><div class="grid">{html}</div>"#);
            charts.extend(burn);
        }
    }
    body.push_str("</section>\n");
    let (html, chart) = refusals_section(&data.refusals, &data.days, data.elapsed_days);
    body.push_str(&html);
    charts.push(chart);
    (body, Value::Array(charts))
}

pub fn render_user(data: &UserOverview) -> (String, Value) {
    let mut body = String::new();
    let n = |field: &str| data.usage[field].as_u64().unwrap_or(0);
    let _ = write!(
        body,
        r#"<section id="usage"><h2>Usage of <span class="id" id="user">{user}</span> in {period}</h2><div class="chart" id="chart-user"></div><table><tbody><tr><th>Cost</th>{cost}</tr><tr><th>Requests</th>{requests}</tr><tr><th>Input tokens</th>{input}</tr><tr><th>Output tokens</th>{output}</tr><tr><th>Cached input tokens</th>{cached}</tr><tr><th>Reasoning tokens</th>{reasoning}</tr></tbody></table></section>"#,
        user = esc(&data.user),
        period = esc(&data.period),
        cost = usd_cell(n("cost_micros")),
        requests = count_cell(n("requests")),
        input = count_cell(n("input_tokens")),
        output = count_cell(n("output_tokens")),
        cached = count_cell(n("cached_input_tokens")),
        reasoning = count_cell(n("reasoning_tokens")),
    );
    body.push_str(r#"<section id="limits"><h2>Limits that apply</h2>"#);
    for spend in &data.limits {
        let scope = format!(
            "{}:{}",
            spend["scope_kind"].as_str().unwrap_or_default(),
            spend["id"].as_str().unwrap_or_default()
        );
        let _ = write!(body, r#"<h3 class="id">{}</h3>"#, esc(&scope));
        let budgets: Vec<Value> = spend["budgets"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|b| {
                let mut b = b.clone();
                b["scope_kind"] = spend["scope_kind"].clone();
                b["id"] = spend["id"].clone();
                b
            })
            .collect();
        if budgets.is_empty() {
            body.push_str(r#"<p class="empty">No budget.</p>"#);
        } else {
            body.push_str(&budget_rows(&budgets, false));
        }
        let rates = spend["rate_limits"].as_array().cloned().unwrap_or_default();
        if !rates.is_empty() {
            body.push_str(r#"<table><thead><tr><th>Rate limit</th><th class="num">Limit</th><th class="num">Used</th><th class="num">Remaining</th><th>Window resets in</th></tr></thead><tbody>"#);
            for rate in &rates {
                let v = |field: &str| rate[field].as_u64().unwrap_or(0);
                let _ = write!(
                    body,
                    r#"<tr data-name="{name}"><td>{name}</td>{}{}{}<td>{reset}</td></tr>"#,
                    count_cell(v("limit")),
                    count_cell(v("used")),
                    count_cell(v("remaining")),
                    name = esc(rate["name"].as_str().unwrap_or_default()),
                    reset = format_duration_ms(v("reset_after_ms")),
                );
            }
            body.push_str("</tbody></table>");
        }
    }
    body.push_str("</section>\n");
    let charts = json!([chart(
        "chart-user",
        "usd_micros",
        &data.days,
        data.elapsed_days,
        vec![json!({"label": "cost", "values": data.daily_cost_micros})],
    )]);
    (body, charts)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::api::admin_overview::UserOverview;
    use crate::clock::Clock;
    use crate::decision::Policy;
    use crate::ledger::{Ledger, Retention};
    use crate::metrics::Metrics;
    use crate::store::Store;

    const ALICE: &str = "0190a6f2-7c1e-8b3a-9f00-1234567890ab";
    const BOB: &str = "0190a6f2-7c1e-8b3a-9f00-1234567890ac";

    /// A service state whose Redis is nowhere: a handler that reads anything answers
    /// 503, one that refuses first never gets that far.
    fn state() -> AppState {
        AppState {
            store: Store::new(
                crate::store::Target::Url("redis://127.0.0.1:1/"),
                Duration::from_millis(200),
                None,
            )
            .expect("url"),
            policy: Policy {
                default_user_rpm: 60,
                window: Duration::from_secs(60),
                reservation_ttl: Duration::from_secs(60),
            },
            ledger: Ledger {
                dedupe_window: Duration::from_secs(60),
                retention: Retention {
                    max_len: 10,
                    max_age: Duration::from_secs(60),
                    audit: true,
                },
            },
            clock: Clock::from_fn(|| 1_795_640_042_000),
            admin_token: Some(Arc::from("s3cret-token")),
            gateway_token: Arc::from("gateway"),
            metrics: Arc::new(Metrics::default()),
            viewers: Arc::new(
                crate::viewer::Viewers::new(
                    crate::viewer::ViewerConfig::admin_token_only(),
                    Some("s3cret-token"),
                    |_| None,
                )
                .expect("viewers"),
            ),
        }
    }

    fn user(id: &str) -> Viewer {
        Viewer::User {
            user: UserId::parse(id).expect("uuid"),
            groups: vec!["eng".into()],
            tenant: Some("acme".into()),
        }
    }

    async fn text(response: Response) -> (StatusCode, String) {
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn a_user_viewer_is_refused_anothers_page_before_anything_is_read() {
        let state = state();
        let query = PageQuery::default();
        // (viewer, page of, status): a refusal is 403 and reads nothing; a page the
        // viewer may see goes on to read Redis, here unreachable (503).
        let cases = [
            (user(ALICE), BOB, StatusCode::FORBIDDEN),
            (
                user(ALICE),
                &ALICE.to_uppercase(),
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (user(ALICE), ALICE, StatusCode::SERVICE_UNAVAILABLE),
            (Viewer::Admin, BOB, StatusCode::SERVICE_UNAVAILABLE),
            (user(ALICE), "not-a-uuid", StatusCode::BAD_REQUEST),
        ];
        for (viewer, page_of, expected) in cases {
            let (status, body) = text(user_for(&state, &viewer, page_of, &query).await).await;
            assert_eq!(status, expected, "{viewer:?} on {page_of}: {body}");
            if status == StatusCode::FORBIDDEN {
                assert!(body.contains("only your own usage"), "{body}");
                assert!(!body.contains(BOB), "names nobody else: {body}");
            }
        }
        // A user's overview is their own page, never everyone's.
        let (status, body) = text(overview_for(&state, &user(ALICE), &query).await).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert!(body.contains("user 0190a6f2"), "{body}");
    }

    #[test]
    fn a_users_page_shows_their_figures_and_limits_escaped() {
        let data = UserOverview {
            user: ALICE.into(),
            period: "2026-11".into(),
            current: true,
            days: vec!["2026-11-01".into(), "2026-11-02".into()],
            elapsed_days: 2,
            usage: json!({"cost_micros": 1_250_000, "requests": 3, "input_tokens": 40,
                          "output_tokens": 2, "cached_input_tokens": 0, "reasoning_tokens": 0}),
            daily_cost_micros: vec![250_000, 1_000_000],
            limits: vec![
                json!({"scope_kind": "user", "id": ALICE, "budgets": [
                    {"name": "user:usd_micros:month", "window": "2026-11", "source": "user:*",
                     "limit": 5_000_000, "spent": 1_250_000, "reserved": 10, "remaining": 3_749_990,
                     "reset_after_ms": 1000}],
                    "rate_limits": [{"name": "user:rpm", "limit": 60, "used": 1, "remaining": 59,
                                     "reset_after_ms": 30000}]}),
                json!({"scope_kind": "tenant", "id": "<b>acme</b>", "budgets": [], "rate_limits": []}),
            ],
        };
        let (body, charts) = render_user(&data);
        for needle in [
            r#"data-value="1250000">$1.25<"#,
            r#"data-value="3749990">$3.74999<"#,
            "user:rpm",
            "&lt;b&gt;acme&lt;/b&gt;",
        ] {
            assert!(body.contains(needle), "{needle} in {body}");
        }
        assert!(!body.contains("<b>acme"), "{body}");
        assert_eq!(
            charts[0]["series"][0]["values"],
            json!([250_000, 1_000_000])
        );
    }
}
