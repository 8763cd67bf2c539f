//! `Authorization: Bearer <token>` checked against a configured secret, in constant time:
//! the one comparison behind both gates, the admin API's (`admin_auth`) and the
//! gateway's (`gateway_auth`). Each gate names its own error codes.

use axum::http::{header, HeaderMap};

use super::error::ApiError;

/// The error codes and messages one gate answers 401 with.
pub struct Gate {
    pub missing_code: &'static str,
    pub missing_message: &'static str,
    pub invalid_code: &'static str,
    pub invalid_message: &'static str,
}

/// Ok when the request carries `Bearer <expected>`; else the gate's 401.
pub fn check(gate: &Gate, expected: &str, headers: &HeaderMap) -> Result<(), ApiError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(bearer_token);
    match presented {
        None => Err(ApiError::unauthorized(
            gate.missing_code,
            gate.missing_message,
        )),
        Some(token) if tokens_match(token.as_bytes(), expected.as_bytes()) => Ok(()),
        Some(_) => Err(ApiError::unauthorized(
            gate.invalid_code,
            gate.invalid_message,
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
pub(crate) fn tokens_match(presented: &[u8], expected: &[u8]) -> bool {
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

    const GATE: Gate = Gate {
        missing_code: "missing",
        missing_message: "m",
        invalid_code: "invalid",
        invalid_message: "i",
    };

    #[test]
    fn reads_only_bearer_credentials() {
        let cases: [(Option<&str>, Result<(), &str>); 9] = [
            (None, Err("missing")),
            (Some(""), Err("missing")),
            (Some("Bearer "), Err("missing")),
            (Some("Basic czNjcmV0LXRva2Vu"), Err("missing")),
            (Some("s3cret-token"), Err("missing")),
            (Some("Bearer wrong"), Err("invalid")),
            (Some("Bearer s3cret-token extra"), Err("invalid")),
            (Some("Bearer s3cret-token"), Ok(())),
            (Some("bearer  s3cret-token "), Ok(())),
        ];
        for (authorization, expected) in cases {
            let mut headers = HeaderMap::new();
            if let Some(value) = authorization {
                headers.insert(
                    header::AUTHORIZATION,
                    HeaderValue::from_str(value).expect("header"),
                );
            }
            let got = check(&GATE, "s3cret-token", &headers).map_err(|err| err.code);
            assert_eq!(got, expected, "{authorization:?}");
        }
    }
}
