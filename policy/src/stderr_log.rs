//! One-line-per-event logger to stderr for the binary: `<UTC time> <LEVEL> <message>`.
//!
//! A tracing stack would cost more compile time than the service has log lines.

use std::io::Write as _;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use log::{Level, LevelFilter, Log, Metadata, Record};

use crate::utc_date::Day;

struct StderrLog {
    level: Level,
}

impl Log for StderrLog {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        // Dependencies only get a say when something is wrong. redis-rs's cluster client
        // logs every failed reconnect (each probe tick of an outage) at warn and error;
        // the store already logs the outage's start and end, so its lines show only at
        // debug.
        let target = metadata.target();
        if target == "redis" || target.starts_with("redis::") {
            return self.level >= Level::Debug && metadata.level() <= self.level;
        }
        let ours = target.starts_with(env!("CARGO_CRATE_NAME"));
        metadata.level() <= if ours { self.level } else { Level::Warn }
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = format!(
            "{} {:<5} {}\n",
            utc_timestamp(SystemTime::now()),
            record.level(),
            record.args()
        );
        // One write per line keeps concurrent lines whole; a closed stderr is not worth
        // crashing over.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
    }
}

static LOGGER: OnceLock<StderrLog> = OnceLock::new();

/// Installs the logger once; later calls keep the first level.
pub fn install(level: Level) {
    let logger = LOGGER.get_or_init(|| StderrLog { level });
    if log::set_logger(logger).is_ok() {
        log::set_max_level(LevelFilter::Trace);
    }
}

/// RFC 3339 with milliseconds, e.g. `2026-04-20T09:15:02.431Z`.
fn utc_timestamp(now: SystemTime) -> String {
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let millis = u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX);
    let rem = since_epoch.as_secs() % 86_400;
    format!(
        "{}T{:02}:{:02}:{:02}.{:03}Z",
        Day::from_unix_ms(millis),
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since_epoch.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_utc_timestamps() {
        let cases = [
            (0, "1970-01-01T00:00:00.000Z"),
            (951_782_400_123, "2000-02-29T00:00:00.123Z"),
            (1_709_164_799_999, "2024-02-28T23:59:59.999Z"),
            (1_735_689_600_000, "2025-01-01T00:00:00.000Z"),
            (4_102_444_799_000, "2099-12-31T23:59:59.000Z"),
        ];
        for (millis, expected) in cases {
            let at = UNIX_EPOCH + Duration::from_millis(millis);
            assert_eq!(utc_timestamp(at), expected, "{millis} ms");
        }
    }

    #[test]
    fn dependencies_speak_when_something_is_wrong_redis_only_at_debug() {
        // (our level, target, the line's level, shown)
        let cases = [
            (Level::Info, "chokepoint_policy::store", Level::Info, true),
            (Level::Info, "chokepoint_policy::store", Level::Debug, false),
            (Level::Info, "hyper::proto", Level::Warn, true),
            (Level::Info, "hyper::proto", Level::Info, false),
            (Level::Info, "redis::cluster_async", Level::Error, false),
            (Level::Info, "redis", Level::Warn, false),
            (Level::Debug, "redis::cluster_async", Level::Warn, true),
            (Level::Debug, "redis::cluster_async", Level::Trace, false),
            (Level::Info, "redis_like_crate", Level::Warn, true),
        ];
        for (level, target, line, shown) in cases {
            let logger = StderrLog { level };
            let metadata = Metadata::builder().target(target).level(line).build();
            assert_eq!(logger.enabled(&metadata), shown, "{level} {target} {line}");
        }
    }
}
