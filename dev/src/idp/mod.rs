//! A mock identity provider: serves a JWKS from a file (re-read on every request, so a
//! test rotates keys by rewriting it) and counts fetches, so tests can prove the gateway
//! does not stampede it. Given a signing key it is also an OAuth 2.0 token service
//! ([`oauth`]): the flows a token helper uses to get the company JWT.

pub mod oauth;

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::net::TcpListener;

pub const JWKS_PATH: &str = "/jwks.json";

/// Where the JWKS comes from: a file (re-read per request; missing = 503), or the public
/// half of the token service's signing key.
pub enum Jwks {
    File(PathBuf),
    Inline(String),
}

#[derive(Clone)]
struct Idp {
    jwks: Arc<Jwks>,
    fetches: Arc<AtomicU64>,
    oauth: Option<oauth::OAuth>,
}

pub async fn serve(
    listener: TcpListener,
    jwks: Jwks,
    oauth: Option<oauth::OAuth>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let idp = Idp {
        jwks: Arc::new(jwks),
        fetches: Arc::new(AtomicU64::new(0)),
        oauth: oauth.clone(),
    };
    let mut app = Router::new()
        .route(JWKS_PATH, get(jwks_handler))
        .route("/__idp/stats", get(stats))
        .with_state(idp);
    if let Some(oauth) = oauth {
        app = app.merge(
            Router::new()
                .route(oauth::TOKEN_PATH, post(oauth::token))
                .route(oauth::DEVICE_PATH, post(oauth::device_authorization))
                .route(oauth::VERIFICATION_PATH, get(oauth::verification_page))
                .route(oauth::APPROVE_PATH, post(oauth::approve))
                .route(oauth::REVOKE_PATH, post(oauth::revoke))
                .with_state(oauth),
        );
    }
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn jwks_handler(State(idp): State<Idp>) -> impl IntoResponse {
    idp.fetches.fetch_add(1, Ordering::Relaxed);
    let body = match idp.jwks.as_ref() {
        Jwks::Inline(text) => Ok(text.clone().into_bytes()),
        Jwks::File(path) => tokio::fs::read(path).await,
    };
    match body {
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
    let mut body = serde_json::json!({ "jwks_requests": idp.fetches.load(Ordering::Relaxed) });
    if let Some(oauth) = &idp.oauth {
        body["oauth"] = oauth.stats();
    }
    Json(body)
}
