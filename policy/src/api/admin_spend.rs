//! Spend against limits, for operators:
//!
//! - `GET /v1/admin/spend?scope_kind=…&id=…[&period=YYYY-MM|YYYY-MM-DD]`: one scope's
//!   ledger totals for the period (default: this UTC month), its budgets (spent,
//!   reserved, remaining, reset) and its rate limits as they stand now. With a period,
//!   only budgets over that kind of period are listed, with the ledger's spend for it
//!   (and the live reservations when it is the current one); rolling budgets only
//!   without one.
//! - `GET /v1/admin/top[?scope_kind=user][&period=YYYY-MM|YYYY-MM-DD][&by=cost_micros|tokens][&limit=10]`:
//!   the biggest spenders of a period, from rankings updated as usage is committed.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::error::ApiError;
use super::{admin_auth, AppState};
use crate::decision::NamedLimit;
use crate::fields;
use crate::keys::{self, Ranking};
use crate::ledger::{ledger_key, FIELDS};
use crate::limit_set::BudgetPeriod;
use crate::scope::Scope;
use crate::store::{Source, Store, StoreError};
use crate::utc_date::{Day, Period};

/// Most spenders one `top` answer lists.
pub const MAX_TOP: u64 = 1000;

/// All optional so that a missing parameter gets our message rather than serde's.
#[derive(Deserialize)]
pub struct SpendQuery {
    scope_kind: Option<String>,
    id: Option<String>,
    period: Option<String>,
}

#[derive(Deserialize)]
pub struct TopQuery {
    scope_kind: Option<String>,
    period: Option<String>,
    by: Option<String>,
    limit: Option<String>,
}

fn period_param(value: Option<String>) -> Result<Option<Period>, ApiError> {
    value
        .map(|text| {
            Period::parse(&text).ok_or_else(|| {
                fields::invalid(
                    "period",
                    "must be a UTC day (YYYY-MM-DD) or month (YYYY-MM)",
                )
            })
        })
        .transpose()
        .map_err(ApiError::from)
}

fn query_error(rejection: QueryRejection) -> ApiError {
    ApiError::invalid_request("invalid_query", format!("query string: {rejection}"))
}

fn source_name(limit: &NamedLimit) -> String {
    match limit.state.source {
        Source::Own => format!("{}:{}", limit.scope.as_str(), limit.id),
        Source::Default => format!("{}:{}", limit.scope.as_str(), keys::DEFAULT_ID),
        Source::Config => "config".to_owned(),
        Source::Server => format!(
            "{}:{}",
            limit.scope.as_str(),
            keys::server_default_id(limit.scope, &limit.id).unwrap_or_default()
        ),
    }
}

pub fn totals_json(totals: &[i64]) -> Value {
    let mut object = Map::new();
    for (field, total) in FIELDS.iter().zip(totals) {
        object.insert((*field).to_owned(), json!(total));
    }
    Value::Object(object)
}

pub async fn read_spend(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<SpendQuery>, QueryRejection>,
) -> Response {
    if let Err(err) = admin_auth::check(state.admin_token.as_deref(), &headers) {
        return err.into_response();
    }
    let parsed = query.map_err(query_error).and_then(|Query(query)| {
        let scope = fields::spend_kind("scope_kind", query.scope_kind)?;
        let id = fields::scope_id("id", scope, query.id, false)?;
        Ok((scope, id, period_param(query.period)?))
    });
    match parsed {
        Ok((scope, id, asked)) => match spend(&state, scope, &id, asked).await {
            Ok(body) => Json(body).into_response(),
            Err(err) => err.into_response(),
        },
        Err(err) => err.into_response(),
    }
}

/// One scope's spend against its limits, as `GET /v1/admin/spend` answers it (the spend
/// page shows the same).
pub async fn spend(
    state: &AppState,
    scope: Scope,
    id: &str,
    asked: Option<Period>,
) -> Result<Value, ApiError> {
    let now_ms = state.clock.now_ms();
    let today = Day::from_unix_ms(now_ms);
    let period = asked.unwrap_or(Period::Month(today.month()));

    let unavailable = |_| ApiError::store_unavailable();
    let limits = state
        .policy
        .peek(&state.store, scope, id, now_ms)
        .await
        .map_err(unavailable)?;
    let usage = state
        .ledger
        .totals(&state.store, scope, id, period)
        .await
        .map_err(unavailable)?;

    let mut budgets = Vec::new();
    let mut rate_limits = Vec::new();
    for limit in &limits {
        let s = &limit.state;
        let Some(budget_period) = s.period else {
            rate_limits.push(json!({
                "name": limit.name,
                "source": source_name(limit),
                "limit": s.limit,
                "used": s.used,
                "remaining": s.remaining(),
                "reset_after_ms": s.reset_after_ms,
            }));
            continue;
        };
        let current = match budget_period {
            BudgetPeriod::Day => Some(Period::Day(today)),
            BudgetPeriod::Month => Some(Period::Month(today.month())),
            BudgetPeriod::Rolling { .. } => None,
        };
        let window = current.map_or_else(|| budget_period.to_string(), |p| p.to_string());
        let mut entry = json!({
            "name": limit.name,
            "period": budget_period.to_string(),
            "window": window,
            "source": source_name(limit),
            "limit": s.limit,
            "spent": s.used,
            "reserved": s.reserved,
            "remaining": s.remaining(),
            "reset_after_ms": s.reset_after_ms,
        });
        match (asked, current) {
            // No period asked, or the budget's current one: as it stands.
            (None, _) => {}
            (Some(asked), Some(current)) if asked == current => {}
            // An earlier (or later) window of the same kind: the ledger's spend for it.
            (Some(asked @ Period::Day(_)), Some(Period::Day(_)))
            | (Some(asked @ Period::Month(_)), Some(Period::Month(_))) => {
                let spent = if s.metric == crate::store::Metric::UsdMicros {
                    usage[5]
                } else {
                    usage[0].saturating_add(usage[1])
                };
                let spent = u64::try_from(spent).unwrap_or(0);
                entry["window"] = json!(asked.to_string());
                entry["spent"] = json!(spent);
                entry["reserved"] = json!(0);
                entry["remaining"] = json!(s.limit.saturating_sub(spent));
                entry["reset_after_ms"] = Value::Null;
            }
            // A budget over another kind of period says nothing about this one.
            _ => continue,
        }
        budgets.push(entry);
    }

    Ok(json!({
        "scope_kind": scope.as_str(),
        "id": id,
        "period": period.to_string(),
        "usage": totals_json(&usage),
        "budgets": budgets,
        "rate_limits": rate_limits,
    }))
}

pub async fn read_top(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<TopQuery>, QueryRejection>,
) -> Response {
    if let Err(err) = admin_auth::check(state.admin_token.as_deref(), &headers) {
        return err.into_response();
    }
    let now_ms = state.clock.now_ms();
    let parsed = query.map_err(query_error).and_then(|Query(query)| {
        let scope = match query.scope_kind {
            Some(kind) => fields::spend_kind("scope_kind", Some(kind))?,
            None => Scope::User,
        };
        let period =
            period_param(query.period)?.unwrap_or(Period::Month(Day::from_unix_ms(now_ms).month()));
        let by = match query.by {
            Some(by) => Ranking::parse(&by)
                .ok_or_else(|| fields::invalid("by", "must be cost_micros or tokens"))?,
            None => Ranking::CostMicros,
        };
        let limit = match query.limit {
            Some(text) => text
                .parse::<u64>()
                .ok()
                .filter(|n| (1..=MAX_TOP).contains(n))
                .ok_or_else(|| {
                    fields::invalid("limit", &format!("must be an integer from 1 to {MAX_TOP}"))
                })?,
            None => 10,
        };
        Ok((scope, period, by, limit))
    });
    let (scope, period, by, limit) = match parsed {
        Ok(parsed) => parsed,
        Err(err) => return err.into_response(),
    };

    match top(&state.store, scope, by, period, limit).await {
        Ok(top) => Json(json!({
            "scope_kind": scope.as_str(),
            "period": period.to_string(),
            "by": by.as_str(),
            "top": top,
        }))
        .into_response(),
        Err(_) => ApiError::store_unavailable().into_response(),
    }
}

/// The `limit` biggest spenders of a kind over `period` with their ledger totals, as
/// `GET /v1/admin/top` lists them (the spend page shows the same).
pub async fn top(
    store: &Store,
    scope: Scope,
    by: Ranking,
    period: Period,
    limit: u64,
) -> Result<Vec<Value>, StoreError> {
    let ids = store
        .top_members(&keys::top_key(scope, by, period), limit)
        .await?;
    let ledger_keys: Vec<String> = ids.iter().map(|id| ledger_key(scope, id, period)).collect();
    let totals = store.hashes_integers(&ledger_keys, &FIELDS).await?;
    Ok(ids
        .iter()
        .zip(totals)
        .enumerate()
        .map(|(rank, (id, totals))| {
            let totals: Vec<i64> = totals.into_iter().map(|v| v.unwrap_or(0)).collect();
            let mut entry = totals_json(&totals);
            entry["rank"] = json!(rank + 1);
            entry["id"] = json!(id);
            let total = |i: usize| totals.get(i).copied().unwrap_or(0);
            entry["tokens"] = json!(total(0).saturating_add(total(1)));
            entry
        })
        .collect())
}
