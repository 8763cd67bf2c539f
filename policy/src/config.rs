//! Service configuration, validated once before anything binds or connects.

use std::fmt;
use std::time::Duration;

use crate::clock::Clock;
use crate::error::Error;

/// Everything [`crate::run`] needs. Build it with struct-update syntax over
/// [`Config::default`] so new fields do not break callers.
///
/// `Debug` shows whether a token is set, never the token.
#[derive(Clone)]
pub struct Config {
    /// `redis://host:port[/db]`, `unix:///path/redis.sock` or `redis+unix:///path/redis.sock`.
    /// Not used when `redis_sentinel` or `redis_cluster` is set.
    pub redis_url: String,
    /// Follow the primary Sentinel names instead of one fixed Redis.
    pub redis_sentinel: Option<SentinelConfig>,
    /// Talk to a Redis Cluster (found through these seed nodes) instead of one Redis.
    /// Not with `redis_sentinel` or `redis_wait`.
    pub redis_cluster: Option<ClusterConfig>,
    /// Call the Lua scripts one hash tag at a time, as a Redis Cluster needs (see
    /// `store::sharded_authorize`), on whatever Redis this is: the tests run the
    /// cluster's layout on one Redis with it, where every call is also checked to keep
    /// to one tag.
    pub redis_cluster_layout: bool,
    /// After each usage batch is booked, wait until this many replicas hold it (`WAIT`),
    /// else answer 503 so the filter sends the batch again: bounds what a failover can
    /// lose of the ledger. `None`: no waiting (replication stays asynchronous).
    pub redis_wait: Option<RedisWait>,
    /// Requests one user may make per window when neither the user's limit set nor the
    /// `user:*` default set has an `rpm`.
    pub requests_per_window: u64,
    /// Length of the rate window every `rpm` and `tpm` limit counts over (one minute in
    /// production; the names say "per minute" for that reason).
    pub window: Duration,
    /// How long a budget reservation counts when the request's usage never arrives
    /// (a crashed filter, a lost record). Whole milliseconds.
    pub reservation_ttl: Duration,
    /// Where "now" comes from: the system clock, or a test's (see `clock`).
    pub clock: Clock,
    /// Upper bound on every Redis round trip (including connecting). A hung or
    /// unreachable Redis turns into a 503 after this long, never a hung request.
    pub redis_timeout: Duration,
    /// How often a background PING checks Redis. It keeps the connection warm so the
    /// first request after a Redis restart finds a fresh connection, and it notices
    /// outages while the service is idle.
    pub redis_probe_interval: Duration,
    /// Largest accepted request body; larger bodies get 413.
    pub max_body_bytes: usize,
    /// Largest accepted `POST /v1/usage` body. A full batch is 1000 records of about
    /// half a kilobyte each, far past `max_body_bytes`.
    pub max_usage_body_bytes: usize,
    /// Bearer token for `/v1/admin/*`. `None` disables those endpoints (403), so they
    /// are never open by accident.
    pub admin_token: Option<String>,
    /// The secret the gateway sends as `Authorization: Bearer` on every authorize and
    /// usage call (at least [`MIN_GATEWAY_TOKEN_BYTES`]). Required: without it anyone who
    /// can reach the service could book or reserve spend.
    pub gateway_token: Option<String>,
    /// How long a booked usage record's request id is remembered (whole seconds). The
    /// filter's retries must end within it: a record retried later is booked again.
    pub usage_dedupe_window: Duration,
    /// About how many entries the audit stream (`ck:usage:log`) and the dead-letter
    /// stream (`ck:usage:dead`) each keep: `XADD MAXLEN ~`.
    pub audit_max_len: u64,
    /// About how old their entries may grow before they go, by Redis's clock:
    /// `XTRIM MINID ~`. Whole milliseconds.
    pub audit_max_age: Duration,
    /// Whether booked usage records are logged in the audit stream (`ck:usage:log`).
    /// Off, booking costs Redis less per record, and what reads the stream (the audit
    /// export, spend by client and by session) answers that it is off.
    pub usage_audit_stream: bool,
    /// Limit sets written to Redis at start (from the policy file).
    pub seed_limits: Vec<crate::seed_limits::SeedLimit>,
    /// Whose company JWTs identify a viewer of the service's pages, and which groups see
    /// everything (`--identity`, rendered from the policy file). Without issuers only the
    /// admin token does.
    pub identity: crate::viewer::ViewerConfig,
}

/// Where the sentinels are and which primary to follow. `Debug` never shows a password.
#[derive(Clone, PartialEq, Eq)]
pub struct SentinelConfig {
    /// Each sentinel's host and port; they are asked in this order.
    pub addresses: Vec<(String, u16)>,
    /// The name the sentinels monitor the primary under (`sentinel monitor <name> …`).
    pub master_name: String,
    /// The sentinels' `requirepass`, if they have one.
    pub sentinel_password: Option<String>,
    /// The ACL user for the primary (and replicas); the default user when `None`.
    pub redis_username: Option<String>,
    /// The primary's password (`requirepass`, or the ACL user's).
    pub redis_password: Option<String>,
}

impl SentinelConfig {
    /// `host:port,host:port`, for logs.
    pub fn addresses_shown(&self) -> String {
        self.addresses
            .iter()
            .map(|(host, port)| format!("{host}:{port}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Parses `host:port[,host:port…]`, naming the entry that is wrong.
    pub fn parse_addresses(text: &str) -> Result<Vec<(String, u16)>, String> {
        text.split(',')
            .enumerate()
            .map(|(i, entry)| {
                let entry = entry.trim();
                let (host, port) = entry
                    .rsplit_once(':')
                    .ok_or_else(|| format!("[{i}] {entry:?}: expected host:port"))?;
                let port = port
                    .parse::<u16>()
                    .ok()
                    .filter(|port| *port != 0)
                    .ok_or_else(|| format!("[{i}] {entry:?}: port must be 1 to 65535"))?;
                Ok((host.to_owned(), port))
            })
            .collect()
    }
}

impl fmt::Debug for SentinelConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |secret: &Option<String>| secret.as_ref().map(|_| "<redacted>");
        f.debug_struct("SentinelConfig")
            .field("addresses", &self.addresses_shown())
            .field("master_name", &self.master_name)
            .field("sentinel_password", &redacted(&self.sentinel_password))
            .field("redis_username", &self.redis_username)
            .field("redis_password", &redacted(&self.redis_password))
            .finish()
    }
}

/// Where a Redis Cluster can be found. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// Seed nodes (`host:port`): the client asks them for the slot map, then talks to
    /// whichever primary holds each key's slot. One reachable seed is enough.
    pub nodes: Vec<(String, u16)>,
    /// The ACL user on every node; the default user when `None`.
    pub username: Option<String>,
    /// The nodes' password (`requirepass`, or the ACL user's).
    pub password: Option<String>,
}

impl ClusterConfig {
    /// `host:port,host:port`, for logs.
    pub fn nodes_shown(&self) -> String {
        self.nodes
            .iter()
            .map(|(host, port)| format!("{host}:{port}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("nodes", &self.nodes_shown())
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// `WAIT replicas timeout` after every usage batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedisWait {
    /// At least 1.
    pub replicas: u32,
    /// Whole milliseconds, shorter than `redis_timeout` (the round trip's bound).
    pub timeout: Duration,
}

/// Most sentinels the service asks; a deployment has three or five.
pub const MAX_SENTINELS: usize = 16;

/// Most cluster seed nodes; the client learns the rest from the first that answers.
pub const MAX_CLUSTER_SEEDS: usize = 64;

/// The shortest gateway token accepted, as for the filter's HMAC secrets: 32 bytes
/// cannot be guessed, and the filter refuses a shorter one at load.
pub const MIN_GATEWAY_TOKEN_BYTES: usize = 32;

/// Seven days: longer than any outage the filter's retry queue is meant to ride out.
pub const DEFAULT_USAGE_DEDUPE_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);

/// A hundred thousand records: about 50 MB of audit trail in Redis at half a kilobyte
/// each.
pub const DEFAULT_AUDIT_MAX_LEN: u64 = 100_000;

/// Thirty days: a month of audit trail at most, whatever the volume.
pub const DEFAULT_AUDIT_MAX_AGE: Duration = Duration::from_secs(30 * 24 * 3600);

/// Ten minutes: longer than any model call, short enough that a lost usage record does
/// not hold budget for long.
pub const DEFAULT_RESERVATION_TTL: Duration = Duration::from_secs(600);

impl Default for Config {
    fn default() -> Self {
        Self {
            redis_url: "redis://127.0.0.1:6379".to_owned(),
            redis_sentinel: None,
            redis_cluster: None,
            redis_cluster_layout: false,
            redis_wait: None,
            requests_per_window: 60,
            window: Duration::from_secs(60),
            reservation_ttl: DEFAULT_RESERVATION_TTL,
            clock: Clock::system(),
            redis_timeout: Duration::from_secs(1),
            redis_probe_interval: Duration::from_secs(1),
            max_body_bytes: 64 * 1024,
            max_usage_body_bytes: 1024 * 1024,
            admin_token: None,
            gateway_token: None,
            usage_dedupe_window: DEFAULT_USAGE_DEDUPE_WINDOW,
            audit_max_len: DEFAULT_AUDIT_MAX_LEN,
            audit_max_age: DEFAULT_AUDIT_MAX_AGE,
            usage_audit_stream: true,
            seed_limits: Vec::new(),
            identity: crate::viewer::ViewerConfig::admin_token_only(),
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("redis_url", &self.redis_url)
            .field("redis_sentinel", &self.redis_sentinel)
            .field("redis_cluster", &self.redis_cluster)
            .field("redis_cluster_layout", &self.redis_cluster_layout)
            .field("redis_wait", &self.redis_wait)
            .field("requests_per_window", &self.requests_per_window)
            .field("window", &self.window)
            .field("reservation_ttl", &self.reservation_ttl)
            .field("clock", &self.clock)
            .field("redis_timeout", &self.redis_timeout)
            .field("redis_probe_interval", &self.redis_probe_interval)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_usage_body_bytes", &self.max_usage_body_bytes)
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "gateway_token",
                &self.gateway_token.as_ref().map(|_| "<redacted>"),
            )
            .field("usage_dedupe_window", &self.usage_dedupe_window)
            .field("audit_max_len", &self.audit_max_len)
            .field("audit_max_age", &self.audit_max_age)
            .field("usage_audit_stream", &self.usage_audit_stream)
            .field("identity", &self.identity)
            .finish()
    }
}

impl Config {
    /// Rejects values that would make the service misbehave at request time, naming the field.
    pub fn validate(&self) -> Result<(), Error> {
        let invalid = |field: &str, why: &str| Err(Error::Config(format!("{field}: {why}")));
        match (&self.redis_sentinel, &self.redis_cluster) {
            (Some(_), Some(_)) => {
                return invalid(
                    "redis_cluster",
                    "not with redis_sentinel: a cluster fails over by itself",
                );
            }
            (None, None) if self.redis_url.trim().is_empty() => {
                return invalid("redis_url", "must not be empty");
            }
            (None, None) => {}
            (Some(sentinel), None) => validate_sentinel(sentinel)?,
            (None, Some(cluster)) => {
                validate_cluster(cluster)?;
                // WAIT counts the replicas of the node it is sent to; a batch writes to
                // several primaries, so one WAIT would not cover it.
                if self.redis_wait.is_some() {
                    return invalid(
                        "redis_wait",
                        "not with redis_cluster: WAIT covers one node's writes, and a usage \
                         batch writes to several primaries",
                    );
                }
            }
        }
        if self.requests_per_window == 0 {
            return invalid("requests_per_window", "must be at least 1");
        }
        // Redis keeps expiries in milliseconds; a sub-millisecond window would round to
        // zero and the counter would never expire.
        if self.window < Duration::from_millis(1) {
            return invalid("window", "must be at least 1 ms");
        }
        if self.window > Duration::from_secs(366 * 24 * 3600) {
            return invalid("window", "must be at most a year");
        }
        if self.reservation_ttl < Duration::from_millis(1) {
            return invalid("reservation_ttl", "must be at least 1 ms");
        }
        // Longer would let a lost usage record hold budget for days.
        if self.reservation_ttl > Duration::from_secs(24 * 3600) {
            return invalid("reservation_ttl", "must be at most a day");
        }
        if self.redis_timeout.is_zero() {
            return invalid("redis_timeout", "must be greater than zero");
        }
        if let Some(wait) = &self.redis_wait {
            if wait.replicas == 0 {
                return invalid(
                    "redis_wait.replicas",
                    "must be at least 1 (omit WAIT to turn it off)",
                );
            }
            if wait.timeout < Duration::from_millis(1) {
                return invalid(
                    "redis_wait.timeout",
                    "must be at least 1 ms (WAIT 0 would wait forever)",
                );
            }
            // WAIT is one round trip: it must answer within the bound every round trip has.
            if wait.timeout >= self.redis_timeout {
                return invalid(
                    "redis_wait.timeout",
                    &format!(
                        "must be shorter than redis_timeout ({} ms)",
                        self.redis_timeout.as_millis()
                    ),
                );
            }
        }
        if self.redis_probe_interval.is_zero() {
            return invalid("redis_probe_interval", "must be greater than zero");
        }
        if self.max_body_bytes == 0 {
            return invalid("max_body_bytes", "must be greater than zero");
        }
        if self.max_usage_body_bytes == 0 {
            return invalid("max_usage_body_bytes", "must be greater than zero");
        }
        if let Some(token) = &self.admin_token {
            // An empty token would make `Bearer ` a valid credential; leave it unset to
            // disable the admin endpoints instead.
            if token.is_empty() {
                return invalid(
                    "admin_token",
                    "must not be empty (omit it to disable admin endpoints)",
                );
            }
            if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return invalid(
                    "admin_token",
                    "must not contain whitespace or control characters (it is sent as a bearer token)",
                );
            }
        }
        match &self.gateway_token {
            None => {
                return invalid(
                    "gateway_token",
                    "required: the secret the gateway sends on every authorize and usage call \
                     (CHOKEPOINT_POLICY_TOKEN)",
                )
            }
            Some(token) if token.len() < MIN_GATEWAY_TOKEN_BYTES => {
                return invalid(
                    "gateway_token",
                    &format!("must be at least {MIN_GATEWAY_TOKEN_BYTES} bytes"),
                )
            }
            Some(token) if token.chars().any(|c| c.is_whitespace() || c.is_control()) => {
                return invalid(
                    "gateway_token",
                    "must not contain whitespace or control characters (it is sent as a bearer token)",
                )
            }
            Some(_) => {}
        }
        // The dedupe marker's expiry is set in whole seconds (SET … EX).
        if self.usage_dedupe_window < Duration::from_secs(1) {
            return invalid("usage_dedupe_window", "must be at least 1 s");
        }
        if self.usage_dedupe_window > Duration::from_secs(366 * 24 * 3600) {
            return invalid("usage_dedupe_window", "must be at most a year");
        }
        // Zero would trim each stream to nothing at every write: no audit trail at all.
        if self.audit_max_len == 0 {
            return invalid("audit_max_len", "must be at least 1");
        }
        if self.audit_max_age < Duration::from_millis(1) {
            return invalid("audit_max_age", "must be at least 1 ms");
        }
        Ok(())
    }
}

fn validate_sentinel(sentinel: &SentinelConfig) -> Result<(), Error> {
    let invalid =
        |field: &str, why: &str| Err(Error::Config(format!("redis_sentinel.{field}: {why}")));
    if sentinel.addresses.is_empty() {
        return invalid("addresses", "name at least one sentinel (host:port)");
    }
    if sentinel.addresses.len() > MAX_SENTINELS {
        return invalid("addresses", &format!("at most {MAX_SENTINELS} sentinels"));
    }
    if let Some((i, why)) = bad_address(&sentinel.addresses) {
        return invalid(&format!("addresses[{i}]"), why);
    }
    let name = &sentinel.master_name;
    if name.is_empty()
        || name.len() > 256
        || name.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return invalid("master_name", "must be 1 to 256 bytes without whitespace");
    }
    for (field, secret) in [
        ("sentinel_password", &sentinel.sentinel_password),
        ("redis_username", &sentinel.redis_username),
        ("redis_password", &sentinel.redis_password),
    ] {
        if let Some(why) = bad_secret(secret.as_deref()) {
            return invalid(field, why);
        }
    }
    Ok(())
}

fn validate_cluster(cluster: &ClusterConfig) -> Result<(), Error> {
    let invalid =
        |field: &str, why: &str| Err(Error::Config(format!("redis_cluster.{field}: {why}")));
    if cluster.nodes.is_empty() {
        return invalid("nodes", "name at least one node (host:port)");
    }
    if cluster.nodes.len() > MAX_CLUSTER_SEEDS {
        return invalid("nodes", &format!("at most {MAX_CLUSTER_SEEDS} seed nodes"));
    }
    if let Some((i, why)) = bad_address(&cluster.nodes) {
        return invalid(&format!("nodes[{i}]"), why);
    }
    for (field, secret) in [
        ("username", &cluster.username),
        ("password", &cluster.password),
    ] {
        if let Some(why) = bad_secret(secret.as_deref()) {
            return invalid(field, why);
        }
    }
    Ok(())
}

/// The first `host:port` that cannot be dialled as given, and why.
fn bad_address(addresses: &[(String, u16)]) -> Option<(usize, &'static str)> {
    addresses.iter().enumerate().find_map(|(i, (host, port))| {
        if host.is_empty()
            || host.len() > 253
            || host.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            Some((i, "host must be 1 to 253 characters without whitespace"))
        } else if *port == 0 {
            Some((i, "port must be 1 to 65535"))
        } else {
            None
        }
    })
}

fn bad_secret(secret: Option<&str>) -> Option<&'static str> {
    let secret = secret?;
    if secret.is_empty() {
        Some("must not be empty (omit it when there is none)")
    } else if secret.chars().any(char::is_control) {
        Some("must not contain control characters")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GATEWAY_TOKEN: &str = "gateway-token-of-at-least-32-bytes";

    /// The defaults plus the one setting without a default.
    fn valid() -> Config {
        Config {
            gateway_token: Some(GATEWAY_TOKEN.into()),
            ..Config::default()
        }
    }

    #[test]
    fn defaults_are_valid_given_a_gateway_token() {
        assert!(valid().validate().is_ok());
    }

    #[test]
    fn a_sentinel_configuration_is_valid_and_never_shows_a_password() {
        let config = Config {
            redis_url: String::new(),
            redis_sentinel: Some(SentinelConfig {
                addresses: SentinelConfig::parse_addresses("127.0.0.1:26379, sentinel-2:26380")
                    .expect("addresses"),
                master_name: "chokepoint".into(),
                sentinel_password: Some("sentinel-s3cret".into()),
                redis_username: Some("gateway".into()),
                redis_password: Some("redis-s3cret".into()),
            }),
            redis_wait: Some(RedisWait {
                replicas: 1,
                timeout: Duration::from_millis(100),
            }),
            ..valid()
        };
        assert!(config.validate().is_ok());
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(
            shown.contains("127.0.0.1:26379,sentinel-2:26380"),
            "{shown}"
        );
        // (text, the entry the error names)
        for (text, entry) in [
            ("h", "[0]"),
            ("h:1,h:0", "[1]"),
            ("h:1,h:x", "[1]"),
            ("h:70000", "[0]"),
        ] {
            let err = SentinelConfig::parse_addresses(text).expect_err(text);
            assert!(err.starts_with(entry), "{text}: {err}");
        }
    }

    #[test]
    fn a_cluster_configuration_is_valid_alone_and_never_shows_a_password() {
        let cluster = ClusterConfig {
            nodes: SentinelConfig::parse_addresses("10.0.0.1:7000,10.0.0.2:7001").expect("nodes"),
            username: Some("gateway".into()),
            password: Some("cluster-s3cret".into()),
        };
        let config = Config {
            redis_cluster: Some(cluster.clone()),
            ..valid()
        };
        assert!(config.validate().is_ok());
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("10.0.0.1:7000,10.0.0.2:7001"), "{shown}");

        let sentinel = SentinelConfig {
            addresses: vec![("127.0.0.1".into(), 26379)],
            master_name: "chokepoint".into(),
            sentinel_password: None,
            redis_username: None,
            redis_password: None,
        };
        let wait = RedisWait {
            replicas: 1,
            timeout: Duration::from_millis(100),
        };
        // (config, what the error must name)
        let cases: Vec<(Config, &str)> = vec![
            (
                Config {
                    redis_sentinel: Some(sentinel),
                    ..config.clone()
                },
                "redis_cluster: not with redis_sentinel",
            ),
            (
                Config {
                    redis_wait: Some(wait),
                    ..config.clone()
                },
                "redis_wait: not with redis_cluster",
            ),
            (
                Config {
                    redis_cluster: Some(ClusterConfig {
                        nodes: Vec::new(),
                        ..cluster.clone()
                    }),
                    ..valid()
                },
                "redis_cluster.nodes:",
            ),
            (
                Config {
                    redis_cluster: Some(ClusterConfig {
                        nodes: vec![("ok".into(), 1), ("bad host".into(), 2)],
                        ..cluster.clone()
                    }),
                    ..valid()
                },
                "redis_cluster.nodes[1]:",
            ),
            (
                Config {
                    redis_cluster: Some(ClusterConfig {
                        password: Some(String::new()),
                        ..cluster.clone()
                    }),
                    ..valid()
                },
                "redis_cluster.password:",
            ),
        ];
        for (config, named) in cases {
            let err = config.validate().expect_err(named).to_string();
            assert!(err.contains(named), "{named}: {err}");
        }
    }

    #[test]
    fn debug_never_shows_a_token() {
        let config = Config {
            admin_token: Some("s3cret-token".into()),
            ..valid()
        };
        assert!(config.validate().is_ok());
        let shown = format!("{config:?}");
        for secret in ["s3cret", GATEWAY_TOKEN] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert_eq!(shown.matches("<redacted>").count(), 2, "{shown}");
    }

    #[test]
    fn rejects_values_that_break_requests() {
        let mut cases: Vec<(Config, &str)> = vec![
            (
                Config {
                    redis_url: " ".into(),
                    ..valid()
                },
                "redis_url",
            ),
            (
                Config {
                    requests_per_window: 0,
                    ..valid()
                },
                "requests_per_window",
            ),
            (
                Config {
                    window: Duration::from_micros(10),
                    ..valid()
                },
                "window",
            ),
            (
                Config {
                    reservation_ttl: Duration::from_micros(999),
                    ..valid()
                },
                "reservation_ttl",
            ),
            (
                Config {
                    reservation_ttl: Duration::from_secs(24 * 3600 + 1),
                    ..valid()
                },
                "reservation_ttl",
            ),
            (
                Config {
                    redis_timeout: Duration::ZERO,
                    ..valid()
                },
                "redis_timeout",
            ),
            (
                Config {
                    redis_probe_interval: Duration::ZERO,
                    ..valid()
                },
                "redis_probe_interval",
            ),
            (
                Config {
                    max_body_bytes: 0,
                    ..valid()
                },
                "max_body_bytes",
            ),
            (
                Config {
                    max_usage_body_bytes: 0,
                    ..valid()
                },
                "max_usage_body_bytes",
            ),
            (
                Config {
                    admin_token: Some(String::new()),
                    ..valid()
                },
                "admin_token",
            ),
            (
                Config {
                    admin_token: Some("two words".into()),
                    ..valid()
                },
                "admin_token",
            ),
            (
                Config {
                    gateway_token: None,
                    ..valid()
                },
                "gateway_token",
            ),
            (
                Config {
                    gateway_token: Some(GATEWAY_TOKEN[..31].into()),
                    ..valid()
                },
                "gateway_token",
            ),
            (
                Config {
                    gateway_token: Some(format!("{GATEWAY_TOKEN} x")),
                    ..valid()
                },
                "gateway_token",
            ),
            (
                Config {
                    usage_dedupe_window: Duration::from_millis(999),
                    ..valid()
                },
                "usage_dedupe_window",
            ),
            (
                Config {
                    usage_dedupe_window: Duration::from_secs(400 * 24 * 3600),
                    ..valid()
                },
                "usage_dedupe_window",
            ),
            (
                Config {
                    audit_max_len: 0,
                    ..valid()
                },
                "audit_max_len",
            ),
            (
                Config {
                    audit_max_age: Duration::from_micros(999),
                    ..valid()
                },
                "audit_max_age",
            ),
        ];
        let sentinel = |change: fn(&mut SentinelConfig)| {
            let mut sentinel = SentinelConfig {
                addresses: vec![("127.0.0.1".into(), 26379)],
                master_name: "chokepoint".into(),
                sentinel_password: None,
                redis_username: None,
                redis_password: None,
            };
            change(&mut sentinel);
            Config {
                redis_sentinel: Some(sentinel),
                ..valid()
            }
        };
        let wait = |replicas, timeout_ms| Config {
            redis_wait: Some(RedisWait {
                replicas,
                timeout: Duration::from_millis(timeout_ms),
            }),
            ..valid()
        };
        cases.extend([
            (
                sentinel(|s| s.addresses.clear()),
                "redis_sentinel.addresses",
            ),
            (
                sentinel(|s| s.addresses = vec![("h".into(), 1); MAX_SENTINELS + 1]),
                "redis_sentinel.addresses",
            ),
            (
                sentinel(|s| s.addresses.push((String::new(), 26379))),
                "redis_sentinel.addresses[1]",
            ),
            (
                sentinel(|s| s.addresses[0].1 = 0),
                "redis_sentinel.addresses[0]",
            ),
            (
                sentinel(|s| s.master_name = "two words".into()),
                "redis_sentinel.master_name",
            ),
            (
                sentinel(|s| s.master_name.clear()),
                "redis_sentinel.master_name",
            ),
            (
                sentinel(|s| s.redis_password = Some(String::new())),
                "redis_sentinel.redis_password",
            ),
            (
                sentinel(|s| s.sentinel_password = Some("a\nb".into())),
                "redis_sentinel.sentinel_password",
            ),
            (wait(0, 100), "redis_wait.replicas"),
            (wait(1, 0), "redis_wait.timeout"),
            (wait(1, 1000), "redis_wait.timeout"),
        ]);
        for (config, field) in cases {
            let err = config.validate().expect_err(field).to_string();
            assert!(err.contains(field), "{err:?} should name {field}");
        }
    }
}
