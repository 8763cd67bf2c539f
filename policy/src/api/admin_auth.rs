//! Admin endpoints' gate: `Authorization: Bearer <admin token>`, the token from config.
//!
//! Without a configured token the admin endpoints are off (403), rather than open: an
//! operator who forgot the token must not publish every user's usage.

use axum::http::{header, HeaderMap};

use super::error::ApiError;

pub fn check(configured: Option<&str>, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = configured else {
        return Err(ApiError::admin_disabled());
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(bearer_token);
    match presented {
        None => Err(ApiError::unauthorized(
            "missing_admin_token",
            "admin endpoints need an `Authorization: Bearer <admin token>` header",
        )),
        Some(token) if tokens_match(token.as_bytes(), expected.as_bytes()) => Ok(()),
        Some(_) => Err(ApiError::unauthorized(
            "invalid_admin_token",
            "the admin token is not valid",
        )),
    }
}

/// The credential of a `Bearer` authorization (scheme case-insensitive, RFC 7235).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Compares in time that depends only on the expected token's length, never on how
/// many leading bytes match, so response timing cannot be used to guess the token a
/// byte at a time.
fn tokens_match(presented: &[u8], expected: &[u8]) -> bool {
    let presented = std::hint::black_box(presented);
    let mut difference = usize::from(presented.len() != expected.len());
    for (i, &byte) in expected.iter().enumerate() {
        let other = presented.get(i).copied().unwrap_or(0);
        difference |= usize::from(byte ^ other);
    }
    std::hint::black_box(difference) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn compares_whole_tokens() {
        let cases: [(&[u8], &[u8], bool); 7] = [
            (b"s3cret-token", b"s3cret-token", true),
            (b"s3cret-tokem", b"s3cret-token", false),
            (b"s3cret-toke", b"s3cret-token", false),
            (b"s3cret-token-", b"s3cret-token", false),
            (b"", b"s3cret-token", false),
            (b"s3cret-token\0", b"s3cret-token", false),
            (b"S3CRET-TOKEN", b"s3cret-token", false),
        ];
        for (presented, expected, matches) in cases {
            assert_eq!(
                tokens_match(presented, expected),
                matches,
                "{presented:?} vs {expected:?}"
            );
        }
    }

    /// (configured token, Authorization header, expected outcome or error code)
    type Case = (
        Option<&'static str>,
        Option<&'static str>,
        Result<(), &'static str>,
    );

    #[test]
    fn answers_403_401_or_ok() {
        let token = Some("s3cret-token");
        let cases: [Case; 10] = [
            (None, Some("Bearer s3cret-token"), Err("admin_disabled")),
            (None, None, Err("admin_disabled")),
            (token, None, Err("missing_admin_token")),
            (token, Some(""), Err("missing_admin_token")),
            (token, Some("Bearer "), Err("missing_admin_token")),
            (
                token,
                Some("Basic czNjcmV0LXRva2Vu"),
                Err("missing_admin_token"),
            ),
            (token, Some("s3cret-token"), Err("missing_admin_token")),
            (token, Some("Bearer wrong"), Err("invalid_admin_token")),
            (token, Some("Bearer s3cret-token"), Ok(())),
            (token, Some("bearer  s3cret-token "), Ok(())),
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
