//! HTTP surface: routes and the state every handler shares.

pub mod authorize;
pub mod error;
pub mod health;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;

use crate::metrics::Metrics;
use crate::rate_limit::RequestRateLimit;
use crate::store::Store;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub rate_limit: RequestRateLimit,
    pub metrics: Arc<Metrics>,
}

pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/v1/authorize", post(authorize::authorize))
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(health::metrics))
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}
