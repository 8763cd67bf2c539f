//! `GET /healthz` and `GET /metrics`.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::error::ApiError;
use super::AppState;
use crate::metrics::RedisState;

/// Healthy means "can decide": a live PING, not a cached flag, so a load balancer
/// takes this replica out as soon as its Redis path breaks (on a cluster the PING goes to
/// every primary, so one unreachable primary counts). The answer names how long booked
/// request ids are remembered (`reconcile` books no record older than that), how
/// Redis is deployed (`single`, `sentinel` or `cluster`), and whether booked records are
/// logged in the audit stream.
pub async fn healthz(State(state): State<AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) => Json(json!({
            "status": "ok",
            "usage_dedupe_secs": state.ledger.dedupe_window.as_secs(),
            "redis": state.store.mode().as_str(),
            "usage_audit_stream": state.ledger.retention.audit,
        }))
        .into_response(),
        Err(_) => {
            let mut body = ApiError::store_unavailable().body();
            body["status"] = json!("unavailable");
            body["redis"] = json!(state.store.mode().as_str());
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    let text = state.metrics.render(RedisState {
        availability: state.store.availability(),
        errors: state.store.error_count(),
    });
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
