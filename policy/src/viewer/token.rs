//! Where a viewer's credential is read from: `Authorization: Bearer <token>` (what API
//! clients and the CLI send), else the cookie a browser page keeps it in. Bounded before
//! anything parses it.

use axum::http::{header, HeaderMap};
use chokepoint_filter::identity::jwt::AuthError;

/// The cookie a page sets to the viewer's token (`HttpOnly; Secure; SameSite=Strict`).
pub const VIEWER_COOKIE: &str = "chokepoint_token";

/// The presented token; `Missing` when there is none, `TooLarge` past `max` bytes.
pub fn presented(headers: &HeaderMap, max: usize) -> Result<&str, AuthError> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value.to_str().map_err(|_| AuthError::Malformed)?;
        let (scheme, token) = value.trim().split_once(' ').ok_or(AuthError::Missing)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(AuthError::Missing);
        }
        return bounded(token.trim(), max);
    }
    for value in headers.get_all(header::COOKIE) {
        // A cookie header past the bound holds no token we would take anyway.
        let Ok(value) = value.to_str() else { continue };
        for pair in value.split(';') {
            if let Some((name, token)) = pair.trim().split_once('=') {
                if name == VIEWER_COOKIE {
                    return bounded(token, max);
                }
            }
        }
    }
    Err(AuthError::Missing)
}

fn bounded(token: &str, max: usize) -> Result<&str, AuthError> {
    if token.is_empty() {
        Err(AuthError::Missing)
    } else if token.len() > max {
        Err(AuthError::TooLarge)
    } else {
        Ok(token)
    }
}
