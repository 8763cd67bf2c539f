//! The service's clock: milliseconds since the Unix epoch, read once per decision and
//! handed to the Lua scripts as an argument.
//!
//! Why the service's clock and not Redis `TIME` inside the scripts: the usage ledger
//! already books each record on a UTC day chosen here (from the record's timestamp), and
//! budgets read that same ledger, so one clock must choose the calendar periods of both;
//! the calendar arithmetic then stays in Rust (`utc_date`, tested), every key a script
//! touches can be named up front, and tests can move time across a midnight or a month
//! end without waiting. Replicas' clocks differ only by their NTP error: a request within
//! that error of a window boundary may land in the neighbouring window, and since every
//! counter lives in Redis, no limit is ever multiplied by it.

use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

type NowFn = dyn Fn() -> u64 + Send + Sync;

/// A source of "now" in Unix milliseconds. [`Clock::system`] in production; tests use
/// [`Clock::from_fn`] to control time.
#[derive(Clone, Default)]
pub struct Clock(Option<Arc<NowFn>>);

impl Clock {
    /// The host's wall clock.
    pub fn system() -> Self {
        Self(None)
    }

    /// A clock that reads `now` (a test hook: the returned value must not go backwards by
    /// much, as no real clock does).
    pub fn from_fn(now: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        Self(Some(Arc::new(now)))
    }

    pub fn now_ms(&self) -> u64 {
        match &self.0 {
            Some(now) => now(),
            None => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |since| {
                    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
                }),
        }
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Clock(custom)"
        } else {
            "Clock(system)"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn system_and_custom_clocks() {
        // 2020-09-13: any real clock is past it.
        assert!(Clock::system().now_ms() > 1_600_000_000_000);
        let time = Arc::new(AtomicU64::new(5));
        let clock = {
            let time = time.clone();
            Clock::from_fn(move || time.load(Ordering::Relaxed))
        };
        assert_eq!(clock.now_ms(), 5);
        time.store(7, Ordering::Relaxed);
        assert_eq!(clock.clone().now_ms(), 7);
        assert_eq!(format!("{clock:?}"), "Clock(custom)");
        assert_eq!(format!("{:?}", Clock::default()), "Clock(system)");
    }
}
