//! A mock identity provider: serves a JWKS from a file (re-read on every request, so a
//! test rotates keys by rewriting it) and counts fetches, so tests can prove the gateway
//! does not stampede it.

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use tokio::net::TcpListener;

pub const JWKS_PATH: &str = "/jwks.json";

#[derive(Clone)]
struct Idp {
    jwks_file: Arc<PathBuf>,
    fetches: Arc<AtomicU64>,
}

pub async fn serve(
    listener: TcpListener,
    jwks_file: PathBuf,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let idp = Idp {
        jwks_file: Arc::new(jwks_file),
        fetches: Arc::new(AtomicU64::new(0)),
    };
    let app = Router::new()
        .route(JWKS_PATH, get(jwks))
        .route("/__idp/stats", get(stats))
        .with_state(idp);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn jwks(State(idp): State<Idp>) -> impl IntoResponse {
    idp.fetches.fetch_add(1, Ordering::Relaxed);
    match tokio::fs::read(idp.jwks_file.as_ref()).await {
        Ok(body) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "no key set").into_response(),
    }
}

async fn stats(State(idp): State<Idp>) -> impl IntoResponse {
    Json(serde_json::json!({ "jwks_requests": idp.fetches.load(Ordering::Relaxed) }))
}
