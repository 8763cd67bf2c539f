//! HTTP surface: the two listeners' routes and the state every handler shares.
//!
//! The gateway listener serves only what Envoy's filter calls (`/v1/authorize`,
//! `/v1/usage`, behind the gateway token) and `/healthz`; the admin listener serves the
//! admin API, `/metrics` and `/healthz`. Each answers 404 for the other's paths, so the
//! gateway's network never reaches the admin API, whatever its token.

pub mod admin_audit;
pub mod admin_auth;
pub mod admin_limits;
pub mod admin_overview;
pub mod admin_spend;
pub mod admin_usage;
pub mod authorize;
pub mod bearer;
pub mod error;
pub mod gateway_auth;
pub mod health;
pub mod json_body;
pub mod ui;
pub mod usage;
pub mod viewer;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post};
use axum::Router;

use crate::clock::Clock;
use crate::decision::Policy;
use crate::ledger::Ledger;
use crate::metrics::Metrics;
use crate::store::Store;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub policy: Policy,
    pub ledger: Ledger,
    pub clock: Clock,
    /// `None`: admin endpoints are disabled.
    pub admin_token: Option<Arc<str>>,
    /// What the gateway sends as its bearer token on authorize and usage calls.
    pub gateway_token: Arc<str>,
    pub metrics: Arc<Metrics>,
    /// Who is looking: the admin token, an admin group's member or one user.
    pub viewers: Arc<crate::viewer::Viewers>,
}

/// Request body limits: usage batches carry up to 1000 records and get their own.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    pub default: usize,
    pub usage: usize,
}

/// The gateway listener: what Envoy's filter calls, behind the gateway token.
pub fn gateway_router(state: AppState, limits: BodyLimits) -> Router {
    Router::new()
        .route("/v1/authorize", post(authorize::authorize))
        // The route's own limit runs inside the router-wide one below and overrides it.
        .route(
            "/v1/usage",
            post(usage::record_usage).layer(DefaultBodyLimit::max(limits.usage)),
        )
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            gateway_auth::require,
        ))
        .route("/healthz", get(health::healthz))
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(limits.default))
        .with_state(state)
}

/// The admin listener: the admin API (behind the admin token), the spend page (`/ui`,
/// the same) and `/metrics`.
pub fn admin_router(state: AppState, limits: BodyLimits) -> Router {
    Router::new()
        .route("/v1/admin/usage", get(admin_usage::read_usage))
        .route("/v1/admin/audit", get(admin_audit::read_audit))
        .route("/v1/admin/limits", get(admin_limits::list_limits))
        .route(
            "/v1/admin/limits/{scope_kind}/{id}",
            get(admin_limits::get_limits)
                .put(admin_limits::put_limits)
                .delete(admin_limits::delete_limits),
        )
        .route("/v1/admin/spend", get(admin_spend::read_spend))
        .route("/v1/admin/top", get(admin_spend::read_top))
        .route("/v1/admin/overview", get(admin_overview::read_overview))
        .route(
            "/v1/admin/overview/user",
            get(admin_overview::read_user_overview),
        )
        .route("/v1/viewer", get(viewer::read_viewer))
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(health::metrics))
        .merge(ui::router())
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(limits.default))
        .with_state(state)
}
