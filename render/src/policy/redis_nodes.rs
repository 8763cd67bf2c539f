//! What the Sentinel and Cluster forms of `deploy.redis.external` share: a list of
//! `host:port` addresses and one-word names, checked as `chokepoint-policy serve` reads
//! its comma-separated `--redis-sentinels` and `--redis-cluster-nodes`, so that a list it
//! would split, misread or refuse is refused here with its field and line.

use super::load::Ctx;
use super::PolicyError;

/// `list` as the addresses of `field` (e.g. `deploy.redis.external.sentinels`): at least
/// one, at most `max` (of `noun`), each `host:port`, none twice. `empty` says what to
/// name when there is none.
pub(super) fn addresses(
    cx: &Ctx,
    field: &str,
    list: &[String],
    (max, noun): (usize, &str),
    empty: &str,
) -> Result<(), PolicyError> {
    if list.is_empty() {
        return Err(cx.err(field.to_owned(), empty));
    }
    if list.len() > max {
        return Err(cx.err(field.to_owned(), format!("at most {max} {noun}")));
    }
    for (i, a) in list.iter().enumerate() {
        let at = format!("{field}[{i}]");
        address(a).map_err(|m| cx.err(at.clone(), m))?;
        if list[..i].contains(a) {
            return Err(cx.err(at, format!("{a:?} is listed twice")));
        }
    }
    Ok(())
}

/// `host:port`: a host name or IPv4 address and a port from 1 to 65535. Nothing the
/// service's comma-separated flag would split or misread.
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
pub(super) fn word(s: &str, max: usize) -> Result<(), String> {
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
    fn addresses_are_host_and_port() {
        let cases = [
            ("sentinel-0.redis.data.svc:26379", true),
            ("10.0.0.5:26379", true),
            ("node:1", true),
            ("node:65535", true),
            ("node", false),
            ("node:", false),
            (":6379", false),
            ("node:0", false),
            ("node:65536", false),
            ("node:+6379", false),
            ("node: 6379", false),
            ("a,b:6379", false),
            ("node 1:6379", false),
            ("[fd00::1]:6379", false),
            ("-node:6379", false),
            ("redis://node:6379", false),
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
