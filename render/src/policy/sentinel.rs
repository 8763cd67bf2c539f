//! `deploy.redis.external` in its Sentinel form: the sentinels, the primary's name, and
//! the Secrets holding the passwords, checked as `chokepoint-policy serve` checks its
//! `--redis-sentinels` flags (policy/src/config.rs, `validate_sentinel`) so that a file
//! the service would refuse at start is refused here, with its field and line.

use super::kubernetes::secret_name;
use super::load::Ctx;
use super::{PolicyError, Sentinel};
use crate::policy_file::RawExternalRedis;

/// The most sentinels the service asks (policy/src/config.rs `MAX_SENTINELS`).
const MAX_SENTINELS: usize = 16;

/// The validated Sentinel form of `ext` (whose `sentinels` is given); `field` is
/// `deploy.redis.external`.
pub(super) fn sentinel(
    cx: &Ctx,
    field: &str,
    ext: RawExternalRedis,
) -> Result<Sentinel, PolicyError> {
    let f = |n: &str| format!("{field}.{n}");
    let addresses = ext.sentinels.unwrap_or_default();
    if addresses.is_empty() {
        return Err(cx.err(
            f("sentinels"),
            "name at least one sentinel (host:port); three or five in a real deployment",
        ));
    }
    if addresses.len() > MAX_SENTINELS {
        return Err(cx.err(f("sentinels"), format!("at most {MAX_SENTINELS} sentinels")));
    }
    for (i, a) in addresses.iter().enumerate() {
        let at = f(&format!("sentinels[{i}]"));
        address(a).map_err(|m| cx.err(at.clone(), m))?;
        if addresses[..i].contains(a) {
            return Err(cx.err(at, format!("{a:?} is listed twice")));
        }
    }
    let Some(master_name) = ext.master_name else {
        return Err(cx.err(
            f("master_name"),
            "required with sentinels: the name they monitor the primary under \
             (`sentinel monitor NAME ...`)",
        ));
    };
    word(&master_name, 256).map_err(|m| cx.err(f("master_name"), m))?;
    if let Some(user) = &ext.username {
        word(user, 256).map_err(|m| cx.err(f("username"), m))?;
    }
    for (name, secret) in [
        ("password_secret", &ext.password_secret),
        ("sentinel_password_secret", &ext.sentinel_password_secret),
    ] {
        if let Some(s) = secret {
            secret_name(s).map_err(|m| cx.err(f(name), m))?;
        }
    }
    if ext.wait_replicas == Some(0) {
        return Err(cx.err(
            f("wait_replicas"),
            "must be at least 1; leave it out not to wait for replicas",
        ));
    }
    Ok(Sentinel {
        addresses,
        master_name,
        username: ext.username,
        password_secret: ext.password_secret,
        sentinel_password_secret: ext.sentinel_password_secret,
        wait_replicas: ext.wait_replicas,
    })
}

/// For `url` and `url_secret`: none of the Sentinel form's fields, which would be
/// silently ignored.
pub(super) fn none_given(cx: &Ctx, field: &str, ext: &RawExternalRedis) -> Result<(), PolicyError> {
    let given = [
        ("master_name", ext.master_name.is_some()),
        ("username", ext.username.is_some()),
        ("password_secret", ext.password_secret.is_some()),
        (
            "sentinel_password_secret",
            ext.sentinel_password_secret.is_some(),
        ),
        ("wait_replicas", ext.wait_replicas.is_some()),
    ];
    match given.iter().find(|(_, set)| *set) {
        Some((name, _)) => Err(cx.err(
            format!("{field}.{name}"),
            "applies to sentinels only (with url, a password goes in the URL's Secret)",
        )),
        None => Ok(()),
    }
}

/// `host:port`: a host name or IPv4 address and a port from 1 to 65535. Nothing the
/// service's comma-separated `--redis-sentinels` would split or misread.
fn address(s: &str) -> Result<(), String> {
    let bad = || format!("{s:?} must be host:port (a host name or IPv4 address, port 1 to 65535)");
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        && !host.starts_with(['.', '-'])
        && !host.ends_with(['.', '-']);
    let port_ok =
        port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_ok_and(|p| p > 0);
    if host_ok && port_ok {
        Ok(())
    } else {
        Err(bad())
    }
}

/// A name the service takes as it is: 1 to `max` bytes, no whitespace or control
/// character.
fn word(s: &str, max: usize) -> Result<(), String> {
    if s.is_empty() || s.len() > max || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Err(format!("{s:?} must be 1 to {max} bytes without whitespace"))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_addresses_are_host_and_port() {
        let cases = [
            ("sentinel-0.redis.data.svc:26379", true),
            ("10.0.0.5:26379", true),
            ("sentinel:1", true),
            ("sentinel:65535", true),
            ("sentinel", false),
            ("sentinel:", false),
            (":26379", false),
            ("sentinel:0", false),
            ("sentinel:65536", false),
            ("sentinel:+26379", false),
            ("sentinel: 26379", false),
            ("a,b:26379", false),
            ("sentinel 1:26379", false),
            ("[fd00::1]:26379", false),
            ("-sentinel:26379", false),
            ("redis://sentinel:26379", false),
        ];
        for (s, ok) in cases {
            assert_eq!(address(s).is_ok(), ok, "{s:?}: {:?}", address(s));
        }
    }

    #[test]
    fn names_are_one_word() {
        let cases = [
            ("mymaster", true),
            ("primary-1", true),
            ("", false),
            ("my master", false),
            ("tab\there", false),
        ];
        for (s, ok) in cases {
            assert_eq!(word(s, 256).is_ok(), ok, "{s:?}");
        }
        assert!(word(&"a".repeat(257), 256).is_err());
    }
}
