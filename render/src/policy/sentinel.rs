//! `deploy.redis.external` in its Sentinel form: the sentinels, the primary's name, and
//! the Secrets holding the passwords, checked as `chokepoint-policy serve` checks its
//! `--redis-sentinels` flags (policy/src/config.rs, `validate_sentinel`) so that a file
//! the service would refuse at start is refused here, with its field and line.

use super::kubernetes::secret_name;
use super::load::Ctx;
use super::redis_nodes::{self, word};
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
    redis_nodes::addresses(
        cx,
        &f("sentinels"),
        &addresses,
        (MAX_SENTINELS, "sentinels"),
        "name at least one sentinel (host:port); three or five in a real deployment",
    )?;
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

/// For `url` and `url_secret`: none of the Sentinel or Cluster forms' fields, which
/// would be silently ignored.
pub(super) fn none_given(cx: &Ctx, field: &str, ext: &RawExternalRedis) -> Result<(), PolicyError> {
    let shared = "applies to sentinels and cluster_nodes only (with url, a password goes in \
                  the URL's Secret)";
    let sentinel_only = "applies to sentinels only";
    let given = [
        ("master_name", ext.master_name.is_some(), sentinel_only),
        ("username", ext.username.is_some(), shared),
        ("password_secret", ext.password_secret.is_some(), shared),
        (
            "sentinel_password_secret",
            ext.sentinel_password_secret.is_some(),
            sentinel_only,
        ),
        ("wait_replicas", ext.wait_replicas.is_some(), sentinel_only),
    ];
    match given.iter().find(|(_, set, _)| *set) {
        Some((name, _, why)) => Err(cx.err(format!("{field}.{name}"), *why)),
        None => Ok(()),
    }
}
