//! `GET /v1/admin/usage?scope=…&id=…&period=…`: ledger totals, for operators and tests;
//! `GET /v1/admin/usage?by=client|session&period=…[&id=…][&limit=…]`: spend by calling
//! tool or agent session, summed from the audit stream (see `attribution`);
//! `GET /v1/admin/usage?by=mcp_server|mcp_tool&period=YYYY-MM-DD[&user=…][&id=…]`: MCP
//! exchanges of a day per server or per tool (`<server>/<tool>`), everyone's or one
//! user's (see `mcp_counts`).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::{admin_auth, AppState};
use crate::attribution::{self, By};
use crate::fields;
use crate::ledger::FIELDS;
use crate::mcp_counts;
use crate::scope::Scope;
use crate::user_id::UserId;
use crate::utc_date::{Day, Period};

/// All optional so that a missing parameter gets our message rather than serde's.
#[derive(Deserialize)]
pub struct UsageQuery {
    scope: Option<String>,
    id: Option<String>,
    period: Option<String>,
    by: Option<String>,
    limit: Option<usize>,
    user: Option<String>,
}

/// Most rows a by-client or by-session answer holds by default, and at most.
const DEFAULT_ROWS: usize = 100;
const MAX_ROWS: usize = 10_000;

pub async fn read_usage(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<UsageQuery>, QueryRejection>,
) -> Response {
    // Authentication comes first: an unauthenticated caller learns nothing, not even
    // which parameters are wrong.
    if let Err(err) = admin_auth::check(state.admin_token.as_deref(), &headers) {
        return err.into_response();
    }
    let query = match query {
        Ok(Query(q)) => q,
        Err(rejection) => {
            return ApiError::invalid_request("invalid_query", format!("query string: {rejection}"))
                .into_response()
        }
    };
    match query.by.as_deref().map(Scope::parse) {
        Some(Some(scope)) if scope.per_user() => return read_mcp(&state, scope, query).await,
        Some(_) => return read_attributed(&state, query).await,
        None => {}
    }
    if query.user.is_some() {
        return ApiError::from(fields::invalid(
            "user",
            "goes with by=mcp_server or by=mcp_tool",
        ))
        .into_response();
    }
    let (scope, id, period) = match parse(query) {
        Ok(parsed) => parsed,
        Err(err) => return err.into_response(),
    };

    match state.ledger.totals(&state.store, scope, &id, period).await {
        Ok(totals) => {
            let mut body = json!({
                "scope": scope.as_str(),
                "id": id,
                "period": period.to_string(),
            });
            for (field, total) in FIELDS.iter().zip(totals) {
                body[*field] = Value::from(total);
            }
            Json(body).into_response()
        }
        Err(_) => ApiError::store_unavailable().into_response(),
    }
}

/// Spend by client or by session over a period.
async fn read_attributed(state: &AppState, query: UsageQuery) -> Response {
    let parsed = (|| -> Result<_, ApiError> {
        let by = query.by.as_deref().unwrap_or_default();
        let by = By::parse(by).ok_or_else(|| {
            fields::invalid("by", "must be client, session, mcp_server or mcp_tool")
        })?;
        if query.scope.is_some() {
            return Err(fields::invalid("scope", "does not go with by").into());
        }
        if query.user.is_some() {
            return Err(fields::invalid("user", "goes with by=mcp_server or by=mcp_tool").into());
        }
        let period = query
            .period
            .as_deref()
            .ok_or_else(|| fields::missing("period"))?;
        let period = Period::parse(period).ok_or_else(|| {
            fields::invalid(
                "period",
                "must be a UTC day (YYYY-MM-DD) or month (YYYY-MM)",
            )
        })?;
        let limit = query.limit.unwrap_or(DEFAULT_ROWS);
        if !(1..=MAX_ROWS).contains(&limit) {
            return Err(fields::invalid("limit", "must be 1 to 10000").into());
        }
        Ok((by, period, limit))
    })();
    let (by, period, limit) = match parsed {
        Ok(p) => p,
        Err(err) => return err.into_response(),
    };
    // Spend by client and by session is summed from the audit stream (see attribution).
    if !state.ledger.retention.audit {
        return ApiError::audit_stream_off().into_response();
    }
    match attribution::sums(&state.store, by, query.id.as_deref(), period, limit).await {
        Ok(sums) => Json(json!({
            "by": by.as_str(),
            "period": period.to_string(),
            "rows": sums.rows,
            "records": sums.records,
            "complete": sums.complete,
        }))
        .into_response(),
        Err(_) => ApiError::store_unavailable().into_response(),
    }
}

/// MCP exchanges of a day by server or tool: `{"by", "period", "user"?, "rows": [{"id",
/// "requests", "errors"}]}`, most requests first.
async fn read_mcp(state: &AppState, scope: Scope, query: UsageQuery) -> Response {
    let (day, user) = match parse_mcp(&query) {
        Ok(parsed) => parsed,
        Err(err) => return err.into_response(),
    };
    let user = user.as_ref().map(UserId::as_str);
    match mcp_counts::read(&state.store, scope, user, day, query.id.as_deref()).await {
        Ok(rows) => {
            let mut body = json!({
                "by": scope.as_str(),
                "period": day.to_string(),
                "rows": rows,
            });
            if let Some(user) = user {
                body["user"] = json!(user);
            }
            Json(body).into_response()
        }
        Err(_) => ApiError::store_unavailable().into_response(),
    }
}

fn parse_mcp(query: &UsageQuery) -> Result<(Day, Option<UserId>), ApiError> {
    if query.scope.is_some() {
        return Err(fields::invalid("scope", "does not go with by").into());
    }
    if query.limit.is_some() {
        return Err(
            fields::invalid("limit", "does not go with by=mcp_server or by=mcp_tool").into(),
        );
    }
    let period = query
        .period
        .as_deref()
        .ok_or_else(|| fields::missing("period"))?;
    let day = match Period::parse(period) {
        Some(Period::Day(day)) => day,
        _ => {
            return Err(fields::invalid(
                "period",
                "must be a UTC day (YYYY-MM-DD): MCP exchanges are counted per day",
            )
            .into())
        }
    };
    let user = query
        .user
        .clone()
        .map(|user| fields::user("user", Some(user)))
        .transpose()?;
    Ok((day, user))
}

fn parse(query: UsageQuery) -> Result<(Scope, String, Period), ApiError> {
    let scope = query.scope.ok_or_else(|| fields::missing("scope"))?;
    let scope = Scope::parse(&scope)
        .filter(|scope| scope.has_spend())
        .ok_or_else(|| {
            fields::invalid("scope", "must be one of user, tenant, model, cost_center")
        })?;
    let id = query.id.ok_or_else(|| fields::missing("id"))?;
    let id = match scope {
        // The ledger holds users under their canonical (lowercase) id.
        Scope::User => fields::user("id", Some(id))?.as_str().to_owned(),
        _ if id.trim().is_empty() => return Err(fields::invalid("id", "must not be empty").into()),
        _ => id,
    };
    let period = query.period.ok_or_else(|| fields::missing("period"))?;
    let period = Period::parse(&period).ok_or_else(|| {
        fields::invalid(
            "period",
            "must be a UTC day (YYYY-MM-DD) or month (YYYY-MM)",
        )
    })?;
    Ok((scope, id, period))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(scope: Option<&str>, id: Option<&str>, period: Option<&str>) -> UsageQuery {
        UsageQuery {
            scope: scope.map(str::to_owned),
            id: id.map(str::to_owned),
            period: period.map(str::to_owned),
            by: None,
            limit: None,
            user: None,
        }
    }

    #[test]
    fn validates_scope_id_and_period() {
        const USER: &str = "0190A6F2-7C1E-8B3A-9F00-1234567890AB";
        let ok = parse(query(Some("user"), Some(USER), Some("2025-01"))).expect("user");
        assert_eq!(ok.0, Scope::User);
        assert_eq!(ok.1, USER.to_lowercase());
        assert_eq!(ok.2.to_string(), "2025-01");
        let ok = parse(query(
            Some("cost_center"),
            Some("cc 42"),
            Some("2025-01-31"),
        ))
        .expect("cc");
        assert_eq!((ok.0, ok.1.as_str()), (Scope::CostCenter, "cc 42"));

        let cases = [
            (
                query(None, Some("acme"), Some("2025-01")),
                "scope is required",
            ),
            (
                query(Some("group"), Some("eng"), Some("2025-01")),
                "scope must be one of",
            ),
            (
                query(Some("tenant"), None, Some("2025-01")),
                "id is required",
            ),
            (
                query(Some("tenant"), Some(" "), Some("2025-01")),
                "id must not be empty",
            ),
            (
                query(Some("user"), Some("alice"), Some("2025-01")),
                "id must be a UUID",
            ),
            (
                query(Some("tenant"), Some("acme"), None),
                "period is required",
            ),
            (
                query(Some("tenant"), Some("acme"), Some("2025-02-30")),
                "period must be a UTC day",
            ),
            (
                query(Some("tenant"), Some("acme"), Some("2025")),
                "period must be a UTC day",
            ),
        ];
        for (query, needle) in cases {
            let err = parse(query).expect_err(needle);
            assert_eq!(err.status, axum::http::StatusCode::BAD_REQUEST);
            assert!(
                err.message.contains(needle),
                "{:?} lacks {needle:?}",
                err.message
            );
        }
    }
}
