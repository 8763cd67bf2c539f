//! The spend page, `/ui` on the admin listener: server-rendered HTML whose tables read
//! without JavaScript, with charts drawn by one vendored library. Every page handler
//! takes a [`viewer::Viewer`]; the page is off when no admin token is configured, as
//! the admin API is.
//!
//! - `GET /ui[?period=…]`: the overview (a user's own page for a user viewer)
//! - `GET /ui/user/<uuid>[?period=…][&tenant=…]`: one user's usage and limits
//! - `GET /ui/login`, `POST /ui/login` (form field `token`), `POST /ui/logout`
//! - `GET /ui/static/<file>`: the stylesheet, the script, the chart library

pub mod assets;
pub mod html;
pub mod pages;
pub mod session;
pub mod viewer;

use axum::http::{header, HeaderValue};
use axum::middleware;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;

use super::AppState;

/// Only the service's own files, no inline script or style, no framing, forms posting
/// only back here.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                       connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ui", get(pages::overview_page))
        .route("/ui/user/{id}", get(pages::user_page))
        .route("/ui/login", get(pages::login_form).post(pages::login))
        .route("/ui/logout", post(pages::logout))
        .route("/ui/static/{name}", get(assets::asset))
        .layer(middleware::map_response(locked_down))
}

/// Headers on every answer of the page: its CSP, no sniffing, no referrer, and no
/// caching of pages (which hold figures); the static files set their own caching.
async fn locked_down(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
