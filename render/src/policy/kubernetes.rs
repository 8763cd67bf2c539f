//! `deploy.policy_service`, `deploy.redis` and `deploy.secrets`: how the policy service and
//! its Redis run in Kubernetes, checked here so that a value the API server would refuse
//! (a quantity, a name) or one that would leak a secret (a password in a URL) is an error
//! with its field and line instead of a failed `kubectl apply`.

use super::load::{dns_label, Ctx};
use super::{CpuMemory, PolicyDeploy, PolicyError, Redis, RedisConnection, Resources, SecretNames};
use crate::policy_file::{RawCpuMemory, RawPolicyDeploy, RawRedis, RawResources, RawSecretNames};

/// What an example cluster pulls when the file names no image: the admin builds and
/// pushes their own (the compose stack's runtime image holds `chokepoint-policy`).
const POLICY_IMAGE: &str = "registry.example.com/chokepoint/policy:0.1.0";
/// The upstream image Redis is run from, its major version pinned.
const REDIS_IMAGE: &str = "redis:7.4";

pub(super) fn policy_deploy(cx: &Ctx, d: RawPolicyDeploy) -> Result<PolicyDeploy, PolicyError> {
    let f = |n: &str| format!("deploy.policy_service.{n}");
    let image = d.image.unwrap_or_else(|| POLICY_IMAGE.into());
    image_reference(&image).map_err(|m| cx.err(f("image"), m))?;
    let replicas = d.replicas.unwrap_or(2);
    if replicas == 0 {
        return Err(cx.err(
            f("replicas"),
            "must be at least 1: every request is decided by the service",
        ));
    }
    // The service holds nothing in memory but its Redis connection and in-flight requests.
    let defaults = Resources {
        requests: cpu_memory("100m", "64Mi"),
        limits: cpu_memory("1", "256Mi"),
    };
    Ok(PolicyDeploy {
        image,
        replicas,
        resources: resources(cx, &f("resources"), d.resources, defaults)?,
    })
}

pub(super) fn redis(cx: &Ctx, r: RawRedis) -> Result<Redis, PolicyError> {
    let f = |n: &str| format!("deploy.redis.{n}");
    if let Some(ext) = r.external {
        let in_cluster = [
            ("image", r.image.is_some()),
            ("storage", r.storage.is_some()),
            ("storage_class", r.storage_class.is_some()),
            (
                "resources",
                r.resources.requests.cpu.is_some()
                    || r.resources.requests.memory.is_some()
                    || r.resources.limits.cpu.is_some()
                    || r.resources.limits.memory.is_some(),
            ),
        ];
        if let Some((name, _)) = in_cluster.iter().find(|(_, set)| *set) {
            return Err(cx.err(
                f(name),
                "applies to a Redis in the cluster only; this one is external",
            ));
        }
        let exactly_one = || {
            cx.err(
                f("external"),
                "needs exactly one of url, url_secret, sentinels and cluster_nodes",
            )
        };
        let forms = [
            ext.url.is_some(),
            ext.url_secret.is_some(),
            ext.sentinels.is_some(),
            ext.cluster_nodes.is_some(),
        ];
        if forms.iter().filter(|given| **given).count() != 1 {
            return Err(exactly_one());
        }
        if ext.sentinels.is_none() && ext.cluster_nodes.is_none() {
            // The Sentinel and Cluster forms' fields mean nothing to one fixed Redis.
            super::sentinel::none_given(cx, &f("external"), &ext)?;
        }
        let connection = match (ext.url.clone(), ext.url_secret.clone()) {
            _ if ext.sentinels.is_some() => {
                RedisConnection::Sentinel(super::sentinel::sentinel(cx, &f("external"), ext)?)
            }
            _ if ext.cluster_nodes.is_some() => {
                RedisConnection::Cluster(super::cluster::cluster(cx, &f("external"), ext)?)
            }
            (Some(url), None) => {
                redis_url(&url).map_err(|m| cx.err(f("external.url"), m))?;
                RedisConnection::Url(url)
            }
            (None, Some(name)) => {
                secret_name(&name).map_err(|m| cx.err(f("external.url_secret"), m))?;
                RedisConnection::Secret(name)
            }
            _ => return Err(exactly_one()),
        };
        return Ok(Redis::External(connection));
    }
    let image = r.image.unwrap_or_else(|| REDIS_IMAGE.into());
    image_reference(&image).map_err(|m| cx.err(f("image"), m))?;
    let storage = r.storage.unwrap_or_else(|| "1Gi".into());
    if quantity(&storage).is_none_or(|q| q <= 0.0) {
        return Err(cx.err(f("storage"), not_a_quantity(&storage)));
    }
    if let Some(class) = &r.storage_class {
        secret_name(class).map_err(|m| cx.err(f("storage_class"), m))?;
    }
    // Redis holds the ledger, the limits and the counters: a few hundred bytes per user
    // and day. Its memory limit is its working set; evictions would lose budgets.
    let defaults = Resources {
        requests: cpu_memory("100m", "128Mi"),
        limits: cpu_memory("1", "512Mi"),
    };
    Ok(Redis::InCluster {
        image,
        storage,
        storage_class: r.storage_class,
        resources: resources(cx, &f("resources"), r.resources, defaults)?,
    })
}

pub(super) fn secret_names(cx: &Ctx, s: RawSecretNames) -> Result<SecretNames, PolicyError> {
    let one = |field: &str, v: Option<String>, default: &str| {
        let name = v.unwrap_or_else(|| default.into());
        secret_name(&name)
            .map(|()| name)
            .map_err(|m| cx.err(format!("deploy.secrets.{field}"), m))
    };
    Ok(SecretNames {
        policy_token: one("policy_token", s.policy_token, "chokepoint-policy-token")?,
        admin_token: one("admin_token", s.admin_token, "chokepoint-admin-token")?,
        gateway_keys: one("gateway_keys", s.gateway_keys, "chokepoint-gateway-keys")?,
    })
}

fn cpu_memory(cpu: &str, memory: &str) -> CpuMemory {
    CpuMemory {
        cpu: cpu.into(),
        memory: memory.into(),
    }
}

/// Requests and limits with the defaults filled in; each a quantity, no request above
/// its limit (the API server refuses such a pod).
fn resources(
    cx: &Ctx,
    field: &str,
    raw: RawResources,
    defaults: Resources,
) -> Result<Resources, PolicyError> {
    let pick = |kind: &str, raw: RawCpuMemory, d: CpuMemory| -> Result<CpuMemory, PolicyError> {
        let out = CpuMemory {
            cpu: raw.cpu.unwrap_or(d.cpu),
            memory: raw.memory.unwrap_or(d.memory),
        };
        for (name, v) in [("cpu", &out.cpu), ("memory", &out.memory)] {
            if quantity(v).is_none_or(|q| q <= 0.0) {
                return Err(cx.err(format!("{field}.{kind}.{name}"), not_a_quantity(v)));
            }
        }
        Ok(out)
    };
    let requests = pick("requests", raw.requests, defaults.requests)?;
    let limits = pick("limits", raw.limits, defaults.limits)?;
    for (name, req, lim) in [
        ("cpu", &requests.cpu, &limits.cpu),
        ("memory", &requests.memory, &limits.memory),
    ] {
        if quantity(req) > quantity(lim) {
            return Err(cx.err(
                format!("{field}.requests.{name}"),
                format!("{req} is more than its limit {lim}"),
            ));
        }
    }
    Ok(Resources { requests, limits })
}

fn not_a_quantity(v: &str) -> String {
    format!("{v:?} is not a positive Kubernetes quantity (e.g. 500m, 2, 256Mi, 1Gi)")
}

/// A Kubernetes quantity's value (`250m` = 0.25, `1Gi` = 2^30), or None when it is not
/// one: a decimal number and an optional SI or binary suffix, as the API server reads
/// resources (apimachinery's resource.ParseQuantity; exponents are left out).
pub(crate) fn quantity(s: &str) -> Option<f64> {
    const SUFFIXES: [(&str, f64); 13] = [
        ("Ki", 1024.0),
        ("Mi", 1048576.0),
        ("Gi", 1073741824.0),
        ("Ti", 1099511627776.0),
        ("Pi", 1125899906842624.0),
        ("Ei", 1152921504606846976.0),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    let (number, scale) = SUFFIXES
        .iter()
        .find_map(|(suffix, scale)| s.strip_suffix(suffix).map(|n| (n, *scale)))
        .unwrap_or((s, 1.0));
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) || number.ends_with('.') {
        return None;
    }
    number.parse::<f64>().ok().map(|n| n * scale)
}

/// A container image reference with a tag or a digest: `[host[:port]/]path[:tag][@sha256:hex]`
/// (the grammar of distribution's reference package, lower-case path components). A
/// floating `latest` by omission would change what runs on any reschedule.
pub(crate) fn image_reference(s: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("{s:?} is not an image reference: {why}"));
    if s.contains("://") {
        return bad("no scheme (registry/repository:tag)");
    }
    let (name, digest) = match s.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (s, None),
    };
    if let Some(d) = digest {
        let hex = d.strip_prefix("sha256:").unwrap_or("");
        if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return bad("a digest is sha256: and 64 lowercase hex characters");
        }
    }
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let (repo, tag) = match name[last_slash..].split_once(':') {
        Some((_, t)) => (&name[..name.len() - t.len() - 1], Some(t)),
        None => (name, None),
    };
    if let Some(t) = tag {
        let ok = !t.is_empty()
            && t.len() <= 128
            && !t.starts_with(['.', '-'])
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if !ok {
            return bad("a tag is up to 128 letters, digits, _, . and -");
        }
    }
    if tag.is_none() && digest.is_none() {
        return bad("give a tag or a digest");
    }
    let mut parts: Vec<&str> = repo.split('/').collect();
    // A first component with a dot or a port, or `localhost`, is the registry's host.
    if parts.len() > 1 && (parts[0].contains(['.', ':']) || parts[0] == "localhost") {
        let host = parts.remove(0);
        let ok = host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
        if !ok {
            return bad("the registry is a host name and an optional port");
        }
    }
    let component = |c: &str| {
        !c.is_empty()
            && c.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            })
            && c.starts_with(|ch: char| ch.is_ascii_alphanumeric())
            && c.ends_with(|ch: char| ch.is_ascii_alphanumeric())
    };
    if !parts.iter().all(|c| component(c)) {
        return bad("the repository is lower-case letters, digits and separators");
    }
    Ok(())
}

/// A Secret's (or StorageClass's) name: a DNS-1123 subdomain.
pub(super) fn secret_name(s: &str) -> Result<(), String> {
    if s.len() <= 253 && s.split('.').all(dns_label) {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a Kubernetes object name (lower-case DNS-1123 subdomain)"
        ))
    }
}

/// `redis://host[:port][/db]`, what the policy service's `--redis` takes from another pod,
/// without a password: that one belongs in `url_secret`.
fn redis_url(s: &str) -> Result<(), String> {
    let Some(rest) = s.strip_prefix("redis://") else {
        return Err(format!(
            "{s:?} must be redis://host[:port][/db] (the policy service speaks plain Redis)"
        ));
    };
    let (authority, db) = rest.split_once('/').unwrap_or((rest, ""));
    if authority.contains('@') {
        return Err(
            "must not carry credentials: put the whole URL in a Secret and name it in url_secret"
                .into(),
        );
    }
    // An IPv6 host is bracketed: its colons are not the port's.
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((h, "")) => (h, None),
            Some((h, p)) => (h, Some(p.strip_prefix(':').unwrap_or(""))),
            None => ("", None),
        },
        None => match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
    let db_ok = db.is_empty() || db.parse::<u32>().is_ok();
    if host.is_empty() || !port_ok || !db_ok {
        return Err(format!("{s:?} must be redis://host[:port][/db]"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_read_as_the_api_server_reads_them() {
        let cases = [
            ("100m", Some(0.1)),
            ("1", Some(1.0)),
            ("1.5", Some(1.5)),
            ("256Mi", Some(268435456.0)),
            ("1Gi", Some(1073741824.0)),
            ("2G", Some(2e9)),
            ("", None),
            ("Mi", None),
            ("1.", None),
            ("-1", None),
            ("1 Gi", None),
            ("1gb", None),
            ("one", None),
        ];
        for (s, want) in cases {
            assert_eq!(quantity(s), want, "{s:?}");
        }
    }

    #[test]
    fn image_references_need_a_tag_or_digest() {
        let digest = format!("@sha256:{}", "a".repeat(64));
        let cases: Vec<(String, bool)> = vec![
            ("redis:7.4".into(), true),
            ("registry.example.com/chokepoint/policy:0.1.0".into(), true),
            ("localhost:5000/policy:dev".into(), true),
            (format!("ghcr.io/acme/policy{digest}"), true),
            (format!("ghcr.io/acme/policy:1{digest}"), true),
            ("redis".into(), false),
            ("registry.example.com:5000/policy".into(), false),
            ("oci://registry.example.com/policy:1".into(), false),
            ("Registry/Policy:1".into(), false),
            ("policy:".into(), false),
            ("policy:-1".into(), false),
            ("policy@sha256:abc".into(), false),
            ("policy:1 ".into(), false),
        ];
        for (s, ok) in cases {
            assert_eq!(image_reference(&s).is_ok(), ok, "{s:?}");
        }
    }

    #[test]
    fn external_redis_urls_carry_no_password() {
        let cases = [
            ("redis://redis.data.svc:6379", true),
            ("redis://10.0.0.5:6379/2", true),
            ("redis://redis", true),
            ("redis://[fd00::1]:6379", true),
            ("redis://[fd00::1]", true),
            ("redis://[fd00::1", false),
            ("redis://:hunter2@redis:6379", false),
            ("redis://user:pw@redis", false),
            ("rediss://redis:6380", false),
            ("unix:///run/redis.sock", false),
            ("redis://:6379", false),
            ("redis://redis:0", false),
            ("redis://redis:6379/x", false),
        ];
        for (s, ok) in cases {
            assert_eq!(redis_url(s).is_ok(), ok, "{s:?}");
        }
    }
}
