//! The spend page's data, as admin JSON (the page renders exactly these answers):
//!
//! - `GET /v1/admin/overview[?period=YYYY-MM|YYYY-MM-DD][&limit=10]`: spend over the
//!   period's days by model, tenant, cost centre and client tool; the top spending users;
//!   every budget with its spend, reservations and what remains, and its spend day by
//!   day; refusals (429s) by limit.
//! - `GET /v1/admin/overview/user?id=<uuid>[&tenant=…][&period=…]`: one user's totals
//!   and daily spend, their limits, and their tenant's when named.
//!
//! Everything is read from rollups kept as usage is booked (ledger hashes, rankings,
//! the client tools' and refusals' day hashes), never from the audit stream, so an
//! answer costs the same whatever the number of records.

use std::collections::{HashMap, HashSet};

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::admin_spend::{self, totals_json};
use super::error::ApiError;
use super::{admin_auth, AppState};
use crate::client_tools;
use crate::fields;
use crate::keys::{self, Ranking, LIMITS_INDEX_KEY};
use crate::ledger::{ledger_key, FIELDS};
use crate::limit_set::LimitSet;
use crate::refusals;
use crate::scope::Scope;
use crate::user_id::UserId;
use crate::utc_date::{Day, Period};

/// Most rows per table by default, and at most.
pub const DEFAULT_ROWS: u64 = 10;
pub const MAX_ROWS: u64 = 100;

/// One row of spend over the period: its totals, and its cost on each of the period's
/// days.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Row {
    pub id: String,
    pub cost_micros: u64,
    pub tokens: u64,
    pub requests: u64,
    pub daily_cost_micros: Vec<u64>,
}

/// Refusals of one limit over the period, and on each day.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Refused {
    pub limit: String,
    pub count: u64,
    pub daily: Vec<u64>,
}

#[derive(Debug, Serialize)]
pub struct Overview {
    pub period: String,
    /// Whether the period is the current day or month: budgets are then shown as they
    /// stand now (`GET /v1/admin/spend` without a period), every kind of them.
    pub current: bool,
    pub days: Vec<String>,
    /// How many of `days` have begun: the rest of a current month is still to come.
    pub elapsed_days: usize,
    pub by_model: Vec<Row>,
    pub by_tenant: Vec<Row>,
    pub by_cost_center: Vec<Row>,
    pub by_client: Vec<Row>,
    /// `GET /v1/admin/top`'s entries for users by cost.
    pub top_users: Vec<Value>,
    pub budgets: Vec<Value>,
    pub refusals: Vec<Refused>,
}

#[derive(Debug, Serialize)]
pub struct UserOverview {
    pub user: String,
    pub period: String,
    pub current: bool,
    pub days: Vec<String>,
    /// How many of `days` have begun.
    pub elapsed_days: usize,
    /// The ledger's totals (`GET /v1/admin/usage?scope=user`).
    pub usage: Value,
    pub daily_cost_micros: Vec<u64>,
    /// `GET /v1/admin/spend` for the user, and for their tenant when known.
    pub limits: Vec<Value>,
}

#[derive(Deserialize)]
pub struct OverviewQuery {
    period: Option<String>,
    limit: Option<String>,
}

#[derive(Deserialize)]
pub struct UserQuery {
    id: Option<String>,
    tenant: Option<String>,
    period: Option<String>,
}

fn query_error(rejection: QueryRejection) -> ApiError {
    ApiError::invalid_request("invalid_query", format!("query string: {rejection}"))
}

/// The period asked for, this UTC month by default.
pub fn period_of(text: Option<&str>, now_ms: u64) -> Result<Period, ApiError> {
    match text {
        None | Some("") => Ok(Period::Month(Day::from_unix_ms(now_ms).month())),
        Some(text) => Period::parse(text).ok_or_else(|| {
            fields::invalid(
                "period",
                "must be a UTC day (YYYY-MM-DD) or month (YYYY-MM)",
            )
            .into()
        }),
    }
}

pub fn rows_of(text: Option<&str>) -> Result<u64, ApiError> {
    match text {
        None => Ok(DEFAULT_ROWS),
        Some(text) => text
            .parse::<u64>()
            .ok()
            .filter(|n| (1..=MAX_ROWS).contains(n))
            .ok_or_else(|| {
                fields::invalid("limit", &format!("must be an integer from 1 to {MAX_ROWS}")).into()
            }),
    }
}

/// How many of `days` have begun by `now_ms`.
fn elapsed(days: &[Day], now_ms: u64) -> usize {
    days.iter()
        .take_while(|day| Period::Day(**day).start_ms() <= now_ms)
        .count()
}

fn is_current(period: Period, now_ms: u64) -> bool {
    let today = Day::from_unix_ms(now_ms);
    period == Period::Day(today) || period == Period::Month(today.month())
}

fn unavailable<E>(_: E) -> ApiError {
    ApiError::store_unavailable()
}

pub async fn read_overview(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<OverviewQuery>, QueryRejection>,
) -> Response {
    if let Err(err) = admin_auth::check(state.admin_token.as_deref(), &headers) {
        return err.into_response();
    }
    let now_ms = state.clock.now_ms();
    let parsed = query.map_err(query_error).and_then(|Query(q)| {
        Ok((
            period_of(q.period.as_deref(), now_ms)?,
            rows_of(q.limit.as_deref())?,
        ))
    });
    let answer = match parsed {
        Ok((period, rows)) => overview(&state, period, rows).await,
        Err(err) => Err(err),
    };
    match answer {
        Ok(overview) => Json(overview).into_response(),
        Err(err) => err.into_response(),
    }
}

pub async fn read_user_overview(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<UserQuery>, QueryRejection>,
) -> Response {
    if let Err(err) = admin_auth::check(state.admin_token.as_deref(), &headers) {
        return err.into_response();
    }
    let now_ms = state.clock.now_ms();
    let parsed = query.map_err(query_error).and_then(|Query(q)| {
        let user = fields::user("id", q.id)?;
        let tenant = fields::name("tenant", q.tenant)?.filter(|t| !t.trim().is_empty());
        Ok((user, tenant, period_of(q.period.as_deref(), now_ms)?))
    });
    let answer = match parsed {
        Ok((user, tenant, period)) => user_overview(&state, &user, tenant.as_deref(), period).await,
        Err(err) => Err(err),
    };
    match answer {
        Ok(overview) => Json(overview).into_response(),
        Err(err) => err.into_response(),
    }
}

/// Everything the overview shows for `period`, `rows` rows per table.
pub async fn overview(state: &AppState, period: Period, rows: u64) -> Result<Overview, ApiError> {
    let now_ms = state.clock.now_ms();
    let days = period.days();
    let by_model = ranked_rows(state, Scope::Model, period, &days, rows).await?;
    let by_tenant = ranked_rows(state, Scope::Tenant, period, &days, rows).await?;
    let by_cost_center = ranked_rows(state, Scope::CostCenter, period, &days, rows).await?;
    let top_users = admin_spend::top(&state.store, Scope::User, Ranking::CostMicros, period, rows)
        .await
        .map_err(unavailable)?;
    let current = is_current(period, now_ms);
    Ok(Overview {
        period: period.to_string(),
        current,
        days: days.iter().map(Day::to_string).collect(),
        elapsed_days: elapsed(&days, now_ms),
        by_model,
        by_tenant,
        by_cost_center,
        by_client: client_rows(state, &days, rows).await?,
        budgets: budgets(state, period, current, &days, rows).await?,
        refusals: refused(state, &days).await?,
        top_users,
    })
}

/// One user's page: their totals and daily spend over `period`, and their limits (their
/// tenant's too when known).
pub async fn user_overview(
    state: &AppState,
    user: &UserId,
    tenant: Option<&str>,
    period: Period,
) -> Result<UserOverview, ApiError> {
    let now_ms = state.clock.now_ms();
    let current = is_current(period, now_ms);
    let days = period.days();
    let usage = state
        .ledger
        .totals(&state.store, Scope::User, user.as_str(), period)
        .await
        .map_err(unavailable)?;
    let day_keys: Vec<String> = days
        .iter()
        .map(|day| ledger_key(Scope::User, user.as_str(), Period::Day(*day)))
        .collect();
    let daily = state
        .store
        .hashes_integers(&day_keys, &["cost_micros"])
        .await
        .map_err(unavailable)?;
    let asked = (!current).then_some(period);
    let mut limits = vec![admin_spend::spend(state, Scope::User, user.as_str(), asked).await?];
    if let Some(tenant) = tenant {
        limits.push(admin_spend::spend(state, Scope::Tenant, tenant, asked).await?);
    }
    Ok(UserOverview {
        user: user.as_str().to_owned(),
        period: period.to_string(),
        current,
        days: days.iter().map(Day::to_string).collect(),
        elapsed_days: elapsed(&days, now_ms),
        usage: totals_json(&usage),
        daily_cost_micros: daily.iter().map(|v| first_count(v)).collect(),
        limits,
    })
}

fn first_count(values: &[Option<i64>]) -> u64 {
    count(values.first().copied().flatten())
}

fn count(value: Option<i64>) -> u64 {
    value.and_then(|v| u64::try_from(v).ok()).unwrap_or(0)
}

/// The biggest spenders of a kind over the period, with their totals and each day's
/// cost (the day rankings' scores: the same amounts the ledger adds).
async fn ranked_rows(
    state: &AppState,
    scope: Scope,
    period: Period,
    days: &[Day],
    rows: u64,
) -> Result<Vec<Row>, ApiError> {
    let top = admin_spend::top(&state.store, scope, Ranking::CostMicros, period, rows)
        .await
        .map_err(unavailable)?;
    let ids: Vec<String> = top
        .iter()
        .filter_map(|entry| entry["id"].as_str().map(str::to_owned))
        .collect();
    let day_keys: Vec<String> = days
        .iter()
        .map(|day| keys::top_key(scope, Ranking::CostMicros, Period::Day(*day)))
        .collect();
    let scores = state
        .store
        .ranking_scores(&day_keys, &ids)
        .await
        .map_err(unavailable)?;
    Ok(top
        .iter()
        .zip(&ids)
        .enumerate()
        .map(|(i, (entry, id))| Row {
            id: id.clone(),
            cost_micros: entry["cost_micros"].as_u64().unwrap_or(0),
            tokens: entry["tokens"].as_u64().unwrap_or(0),
            requests: entry["requests"].as_u64().unwrap_or(0),
            daily_cost_micros: scores
                .iter()
                .map(|day| {
                    // Scores are sums of integers under 2^53: exact as doubles.
                    day.get(i)
                        .copied()
                        .flatten()
                        .map_or(0, |s| s.max(0.0) as u64)
                })
                .collect(),
        })
        .collect())
}

/// Spend by client tool: the tools' day hashes summed over the period, biggest cost
/// first (then by name), at most `rows`.
async fn client_rows(state: &AppState, days: &[Day], rows: u64) -> Result<Vec<Row>, ApiError> {
    let per_day = client_tools::read_days(&state.store, days)
        .await
        .map_err(unavailable)?;
    let mut totals: HashMap<&str, Row> = HashMap::new();
    for (d, tools) in per_day.iter().enumerate() {
        for (tool, t) in tools {
            let row = totals.entry(tool.as_str()).or_insert_with(|| Row {
                id: tool.clone(),
                cost_micros: 0,
                tokens: 0,
                requests: 0,
                daily_cost_micros: vec![0; days.len()],
            });
            row.cost_micros = row.cost_micros.saturating_add(t.cost_micros);
            row.tokens = row.tokens.saturating_add(t.tokens);
            row.requests = row.requests.saturating_add(t.requests);
            if let Some(slot) = row.daily_cost_micros.get_mut(d) {
                *slot = t.cost_micros;
            }
        }
    }
    let mut rows_out: Vec<Row> = totals.into_values().collect();
    rows_out.sort_by(|a, b| b.cost_micros.cmp(&a.cost_micros).then(a.id.cmp(&b.id)));
    rows_out.truncate(usize::try_from(rows).unwrap_or(usize::MAX));
    Ok(rows_out)
}

/// Refusals by limit over the period, most first (then by name).
async fn refused(state: &AppState, days: &[Day]) -> Result<Vec<Refused>, ApiError> {
    let per_day = refusals::read_days(&state.store, days)
        .await
        .map_err(unavailable)?;
    let mut totals: HashMap<&str, Refused> = HashMap::new();
    for (d, limits) in per_day.iter().enumerate() {
        for (limit, n) in limits {
            let row = totals.entry(limit.as_str()).or_insert_with(|| Refused {
                limit: limit.clone(),
                count: 0,
                daily: vec![0; days.len()],
            });
            row.count = row.count.saturating_add(*n);
            if let Some(slot) = row.daily.get_mut(d) {
                *slot = *n;
            }
        }
    }
    let mut out: Vec<Refused> = totals.into_values().collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then(a.limit.cmp(&b.limit)));
    Ok(out)
}

/// Every budget: each limit set of its own that holds one, and for a kind's default set
/// the kind's `rows` biggest spenders of the period that have no set of their own. Each
/// as `GET /v1/admin/spend` shows it (as it stands now when the period is the current
/// one), with `scope_kind`, `id` and, for a day or month budget, its cumulative spend at
/// the end of each of the period's days (`spent_by_day`).
async fn budgets(
    state: &AppState,
    period: Period,
    current: bool,
    days: &[Day],
    rows: u64,
) -> Result<Vec<Value>, ApiError> {
    let listed = state
        .store
        .indexed_hashes(LIMITS_INDEX_KEY, |member| {
            let (scope, id) = index_entry(member)?;
            Some(keys::limits_key(scope, id))
        })
        .await
        .map_err(unavailable)?;
    let mut own: Vec<(Scope, String)> = Vec::new();
    let mut defaults: Vec<Scope> = Vec::new();
    for (member, hash) in &listed {
        let Some((scope, id)) = index_entry(member) else {
            continue;
        };
        let Ok(Some(set)) = LimitSet::from_fields(hash) else {
            continue;
        };
        if set.period.is_none() || !scope.has_spend() {
            continue;
        }
        if id == keys::DEFAULT_ID {
            defaults.push(scope);
        } else {
            own.push((scope, id.to_owned()));
        }
    }
    own.sort();
    let with_own: HashSet<(Scope, String)> = own.iter().cloned().collect();
    defaults.sort();
    for scope in defaults {
        let spenders = state
            .store
            .top_members(&keys::top_key(scope, Ranking::CostMicros, period), rows)
            .await
            .map_err(unavailable)?;
        for id in spenders {
            if !with_own.contains(&(scope, id.clone())) {
                own.push((scope, id));
            }
        }
    }
    let asked = (!current).then_some(period);
    let mut out = Vec::new();
    let mut burn_keys: Vec<String> = Vec::new();
    for (scope, id) in &own {
        let spend = admin_spend::spend(state, *scope, id, asked).await?;
        for budget in spend["budgets"].as_array().into_iter().flatten() {
            let mut budget = budget.clone();
            budget["scope_kind"] = json!(scope.as_str());
            budget["id"] = json!(id);
            let name = budget["name"].as_str().unwrap_or_default();
            let kind = budget["period"].as_str().unwrap_or_default();
            // Only a budget over the shown period's kind has a day-by-day spend in it.
            let burns = matches!(
                (kind, period),
                ("month", Period::Month(_)) | ("day", Period::Day(_))
            );
            if burns {
                budget["metric"] = json!(if name.contains(":usd_micros:") {
                    "usd_micros"
                } else {
                    "tokens"
                });
                burn_keys.extend(
                    days.iter()
                        .map(|day| ledger_key(*scope, id, Period::Day(*day))),
                );
            }
            out.push(budget);
        }
    }
    let daily = state
        .store
        .hashes_integers(&burn_keys, &FIELDS)
        .await
        .map_err(unavailable)?;
    let mut chunks = daily.chunks(days.len().max(1));
    for budget in &mut out {
        let Some(metric) = budget["metric"].as_str().map(str::to_owned) else {
            continue;
        };
        let Some(chunk) = chunks.next() else { break };
        let mut total: u64 = 0;
        let cumulative: Vec<u64> = chunk
            .iter()
            .map(|fields| {
                let field = |i: usize| count(fields.get(i).copied().flatten());
                let spent = if metric == "usd_micros" {
                    field(5)
                } else {
                    field(0).saturating_add(field(1))
                };
                total = total.saturating_add(spent);
                total
            })
            .collect();
        budget["spent_by_day"] = json!(cumulative);
    }
    Ok(out)
}

/// `<kind>:<id>` from the limits index; members the service did not write are skipped.
fn index_entry(member: &str) -> Option<(Scope, &str)> {
    let (kind, id) = member.split_once(':')?;
    Some((Scope::parse(kind)?, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_period_and_rows() {
        // 2026-11-25T21:20:42Z
        let now = 1_795_640_042_000;
        let cases = [
            (None, Ok("2026-11".to_owned())),
            (Some("2026-10-03"), Ok("2026-10-03".to_owned())),
            (Some("2026-13"), Err("invalid_field")),
        ];
        for (text, expected) in cases {
            let got = period_of(text, now)
                .map(|p| p.to_string())
                .map_err(|e| e.code);
            assert_eq!(got, expected, "{text:?}");
        }
        assert!(is_current(Period::parse("2026-11").expect("month"), now));
        let november = Period::parse("2026-11").expect("month").days();
        assert_eq!(elapsed(&november, now), 25);
        assert_eq!(elapsed(&november, now + 6 * 86_400_000), 30);
        assert_eq!(elapsed(&november, 0), 0);
        assert!(is_current(Period::parse("2026-11-25").expect("day"), now));
        assert!(!is_current(Period::parse("2026-11-24").expect("day"), now));
        for (text, expected) in [
            (None, Ok(10)),
            (Some("1"), Ok(1)),
            (Some("100"), Ok(100)),
            (Some("0"), Err("invalid_field")),
            (Some("101"), Err("invalid_field")),
            (Some("x"), Err("invalid_field")),
        ] {
            assert_eq!(rows_of(text).map_err(|e| e.code), expected, "{text:?}");
        }
    }
}
