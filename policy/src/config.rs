//! Service configuration, validated once before anything binds or connects.

use std::time::Duration;

use crate::error::Error;

/// Everything [`crate::run`] needs. Build it with struct-update syntax over
/// [`Config::default`] so new fields do not break callers.
#[derive(Debug, Clone)]
pub struct Config {
    /// `redis://host:port[/db]`, `unix:///path/redis.sock` or `redis+unix:///path/redis.sock`.
    pub redis_url: String,
    /// Requests one user may make per window.
    pub requests_per_window: u64,
    /// Length of the fixed rate-limit window.
    pub window: Duration,
    /// Upper bound on every Redis round trip (including connecting). A hung or
    /// unreachable Redis turns into a 503 after this long, never a hung request.
    pub redis_timeout: Duration,
    /// How often a background PING checks Redis. It keeps the connection warm so the
    /// first request after a Redis restart finds a fresh connection, and it notices
    /// outages while the service is idle.
    pub redis_probe_interval: Duration,
    /// Largest accepted request body; larger bodies get 413.
    pub max_body_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            redis_url: "redis://127.0.0.1:6379".to_owned(),
            requests_per_window: 60,
            window: Duration::from_secs(60),
            redis_timeout: Duration::from_secs(1),
            redis_probe_interval: Duration::from_secs(1),
            max_body_bytes: 64 * 1024,
        }
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
        if self.redis_timeout.is_zero() {
            return invalid("redis_timeout", "must be greater than zero");
        }
        if self.redis_probe_interval.is_zero() {
            return invalid("redis_probe_interval", "must be greater than zero");
        }
        if self.max_body_bytes == 0 {
            return invalid("max_body_bytes", "must be greater than zero");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        assert!(Config::default().validate().is_ok());
    }

    #[test]
    fn rejects_values_that_break_requests() {
        let cases: Vec<(Config, &str)> = vec![
            (
                Config {
                    redis_url: " ".into(),
                    ..Config::default()
                },
                "redis_url",
            ),
            (
                Config {
                    requests_per_window: 0,
                    ..Config::default()
                },
                "requests_per_window",
            ),
            (
                Config {
                    window: Duration::from_micros(10),
                    ..Config::default()
                },
                "window",
            ),
            (
                Config {
                    redis_timeout: Duration::ZERO,
                    ..Config::default()
                },
                "redis_timeout",
            ),
            (
                Config {
                    redis_probe_interval: Duration::ZERO,
                    ..Config::default()
                },
                "redis_probe_interval",
            ),
            (
                Config {
                    max_body_bytes: 0,
                    ..Config::default()
                },
                "max_body_bytes",
            ),
        ];
        for (config, field) in cases {
            let err = config.validate().expect_err(field).to_string();
            assert!(err.contains(field), "{err:?} should name {field}");
        }
    }
}
