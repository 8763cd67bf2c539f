//! Admin endpoints' gate: `Authorization: Bearer <admin token>`, the token from config.
//!
//! Without a configured token the admin endpoints are off (403), rather than open: an
//! operator who forgot the token must not publish every user's usage.

use axum::http::HeaderMap;

use super::bearer::{self, Gate};
use super::error::ApiError;

const ADMIN: Gate = Gate {
    missing_code: "missing_admin_token",
    missing_message: "admin endpoints need an `Authorization: Bearer <admin token>` header",
    invalid_code: "invalid_admin_token",
    invalid_message: "the admin token is not valid",
};

pub fn check(configured: Option<&str>, headers: &HeaderMap) -> Result<(), ApiError> {
    match configured {
        None => Err(ApiError::admin_disabled()),
        Some(expected) => bearer::check(&ADMIN, expected, headers),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{header, HeaderValue};

    /// (configured token, Authorization header, expected outcome or error code)
    type Case = (
        Option<&'static str>,
        Option<&'static str>,
        Result<(), &'static str>,
    );

    #[test]
    fn answers_403_401_or_ok() {
        let token = Some("s3cret-token");
        let cases: [Case; 6] = [
            (None, Some("Bearer s3cret-token"), Err("admin_disabled")),
            (None, None, Err("admin_disabled")),
            (token, None, Err("missing_admin_token")),
            (token, Some("s3cret-token"), Err("missing_admin_token")),
            (token, Some("Bearer wrong"), Err("invalid_admin_token")),
            (token, Some("Bearer s3cret-token"), Ok(())),
        ];
        for (configured, authorization, expected) in cases {
            let mut headers = HeaderMap::new();
            if let Some(value) = authorization {
                headers.insert(
                    header::AUTHORIZATION,
                    HeaderValue::from_str(value).expect("header"),
                );
            }
            let got = check(configured, &headers).map_err(|err| err.code);
            assert_eq!(got, expected, "{configured:?} / {authorization:?}");
        }
    }
}
