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
    pub redis_url: String,
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
    /// Limit sets written to Redis at start (from the policy file).
    pub seed_limits: Vec<crate::seed_limits::SeedLimit>,
    /// Whose company JWTs identify a viewer of the service's pages, and which groups see
    /// everything (`--identity`, rendered from the policy file). Without issuers only the
    /// admin token does.
    pub identity: crate::viewer::ViewerConfig,
}

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
            seed_limits: Vec::new(),
            identity: crate::viewer::ViewerConfig::admin_token_only(),
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("redis_url", &self.redis_url)
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
            .field("identity", &self.identity)
            .finish()
    }
}

impl Config {
    /// Rejects values that would make the service misbehave at request time, naming the field.
    pub fn validate(&self) -> Result<(), Error> {
        let invalid = |field: &str, why: &str| Err(Error::Config(format!("{field}: {why}")));
        if self.redis_url.trim().is_empty() {
            return invalid("redis_url", "must not be empty");
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
        let cases: Vec<(Config, &str)> = vec![
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
        for (config, field) in cases {
            let err = config.validate().expect_err(field).to_string();
            assert!(err.contains(field), "{err:?} should name {field}");
        }
    }
}
