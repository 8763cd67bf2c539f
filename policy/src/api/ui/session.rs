//! The spend page's browser session: after the login form took the admin token, a
//! cookie holding an expiry and an HMAC-SHA256 of it under a key derived from the admin
//! token. The cookie is never the token, proves nothing once expired, and no cookie made
//! under one admin token opens the page after the token changes. Stateless, so any
//! replica checks it; logging out deletes it from the browser, and a copy taken before
//! stays good until it expires (at most [`LIFETIME_SECS`]).

use axum::http::{header, HeaderMap, HeaderValue};

use crate::api::bearer::tokens_match;

pub const COOKIE: &str = "chokepoint_ui";

/// How long a login lasts.
pub const LIFETIME_SECS: u64 = 8 * 3600;

const KEY_LABEL: &[u8] = b"chokepoint spend page session v1";

fn key(admin_token: &str) -> [u8; 32] {
    hmac_sha256::HMAC::mac(KEY_LABEL, admin_token.as_bytes())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn mac(admin_token: &str, expires: u64) -> String {
    hex(&hmac_sha256::HMAC::mac(
        format!("session:{expires}").as_bytes(),
        key(admin_token),
    ))
}

/// A session value that expires [`LIFETIME_SECS`] after `now_ms`: `<expiry>.<mac>`.
pub fn mint(admin_token: &str, now_ms: u64) -> String {
    let expires = now_ms / 1000 + LIFETIME_SECS;
    format!("{expires}.{}", mac(admin_token, expires))
}

/// Whether `value` is a session minted under `admin_token` that has not expired.
pub fn valid(admin_token: &str, value: &str, now_ms: u64) -> bool {
    let Some((expires, presented)) = value.split_once('.') else {
        return false;
    };
    let Ok(expires) = expires.parse::<u64>() else {
        return false;
    };
    // A value from a future beyond one lifetime was not minted by this clock.
    let now = now_ms / 1000;
    if expires <= now || expires > now + LIFETIME_SECS {
        return false;
    }
    tokens_match(presented.as_bytes(), mac(admin_token, expires).as_bytes())
}

/// The session cookie's value, if the request carries one.
pub fn from_headers(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|line| line.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE).then_some(value)
        })
}

/// The request reached us over HTTPS, as a TLS-terminating proxy in front says.
pub fn over_https(headers: &HeaderMap) -> bool {
    let says = |name: &str, needle: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().contains(needle))
    };
    says("x-forwarded-proto", "https") || says("forwarded", "proto=https")
}

/// `Set-Cookie` for `value` (empty and expired: deletes it).
pub fn set_cookie(value: &str, secure: bool) -> HeaderValue {
    // The value is digits, a dot and hex: always a valid header.
    cookie(COOKIE, value, secure)
}

/// The cookie holding a company JWT a user logged in with: the token itself, verified
/// again on every request (so it ends when the token expires, or when it no longer
/// verifies), sent only to the pages and never readable by a script.
pub fn set_token_cookie(token: &str, secure: bool) -> HeaderValue {
    cookie(crate::viewer::VIEWER_COOKIE, token, secure)
}

/// `name=value` for the pages only; an empty value deletes it. A value that is no valid
/// header (a JWT is base64url and dots) sets nothing.
fn cookie(name: &str, value: &str, secure: bool) -> HeaderValue {
    let max_age = if value.is_empty() { 0 } else { LIFETIME_SECS };
    let secure = if secure { "; Secure" } else { "" };
    let cookie =
        format!("{name}={value}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}");
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_795_640_042_000;

    #[test]
    fn only_an_unexpired_session_of_this_token_is_valid() {
        let session = mint("s3cret-token", NOW);
        assert!(!session.contains("s3cret-token"));
        let (expiry, mac) = session.split_once('.').expect("two parts");
        let forged_expiry = format!("{}.{mac}", expiry.parse::<u64>().expect("n") + 60);
        let mut flipped = session.clone();
        flipped.pop();
        flipped.push(if session.ends_with('0') { '1' } else { '0' });
        let cases = [
            ("s3cret-token", session.as_str(), NOW, true),
            (
                "s3cret-token",
                session.as_str(),
                NOW + LIFETIME_SECS * 1000 - 1000,
                true,
            ),
            (
                "s3cret-token",
                session.as_str(),
                NOW + LIFETIME_SECS * 1000,
                false,
            ),
            ("other-token", session.as_str(), NOW, false),
            ("s3cret-token", forged_expiry.as_str(), NOW, false),
            ("s3cret-token", flipped.as_str(), NOW, false),
            ("s3cret-token", "", NOW, false),
            ("s3cret-token", "s3cret-token", NOW, false),
            ("s3cret-token", "99999999999.00", NOW, false),
        ];
        for (token, value, now, expected) in cases {
            assert_eq!(valid(token, value, now), expected, "{token} {value} {now}");
        }
    }

    #[test]
    fn reads_the_cookie_and_writes_it_locked_down() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; chokepoint_ui=123.abc; b=2"),
        );
        assert_eq!(from_headers(&headers), Some("123.abc"));
        assert_eq!(from_headers(&HeaderMap::new()), None);
        let cookie = set_cookie("123.abc", false);
        assert_eq!(
            cookie,
            "chokepoint_ui=123.abc; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=28800"
        );
        assert!(set_cookie("1.a", true)
            .to_str()
            .expect("ascii")
            .ends_with("; Secure"));
        assert!(set_cookie("", false)
            .to_str()
            .expect("ascii")
            .contains("Max-Age=0"));
        for (name, value, https) in [
            ("x-forwarded-proto", "https", true),
            ("x-forwarded-proto", "http", false),
            ("forwarded", "for=1.2.3.4;proto=https", true),
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(name, HeaderValue::from_static(value));
            assert_eq!(over_https(&headers), https, "{name}: {value}");
        }
    }
}
