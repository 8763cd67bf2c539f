//! Redis access: one self-healing connection, the Lua scripts, and a time bound on
//! every round trip. The usage ledger's round trips live in `usage`.
//!
//! The service keeps no counters of its own. When Redis cannot answer, callers get a
//! [`StoreError`] and the API answers 503; the filter then applies its configured
//! failure mode. Falling back to in-process counters would hand every replica its own
//! quota and silently multiply the limit.

mod probe;
mod usage;

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, ConnectionAddr, RedisError, Script};

pub(crate) use probe::spawn_probe;
pub use usage::{UsageTally, UsageWrite};

/// The outcome of one run of `scripts/authorize.lua`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowCount {
    pub allowed: bool,
    /// Requests counted in the current window, including this one when allowed.
    pub count: u64,
    /// Milliseconds until the window resets.
    pub reset_after_ms: u64,
}

#[derive(Debug)]
pub enum StoreError {
    /// Redis did not answer within the configured timeout.
    Timeout(Duration),
    /// Connecting failed, the connection dropped, or Redis answered with an error.
    Redis(RedisError),
    /// Redis answered, but not in the shape the script promises.
    UnexpectedReply(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Timeout(limit) => write!(f, "no answer within {} ms", limit.as_millis()),
            StoreError::Redis(err) => write!(f, "{err}"),
            StoreError::UnexpectedReply(what) => write!(f, "unexpected reply: {what}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// Redis availability as last observed, for logs and `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    /// No round trip has finished yet.
    Unknown,
    Up,
    Down,
}

impl Availability {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => Availability::Up,
            2 => Availability::Down,
            _ => Availability::Unknown,
        }
    }

    fn as_u8(self) -> u8 {
        match self {
            Availability::Unknown => 0,
            Availability::Up => 1,
            Availability::Down => 2,
        }
    }
}

#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    connection: ConnectionManager,
    authorize: Script,
    record_usage: Script,
    timeout: Duration,
    /// Where Redis is, without credentials: safe to log.
    address: String,
    availability: AtomicU8,
    errors: AtomicU64,
}

impl Store {
    /// Prepares a connection without dialling, so the service starts (and answers 503)
    /// while Redis is still down. Fails only on a malformed URL.
    pub fn new(redis_url: &str, timeout: Duration) -> Result<Self, RedisError> {
        let client = Client::open(redis_url)?;
        let address = match client.get_connection_info().addr() {
            ConnectionAddr::Unix(path) => format!("unix:{}", path.display()),
            other => other.to_string(),
        };
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            // One attempt per (re)connect. With backoff retries a dead Redis would hold
            // every request until its timeout; with none a request fails in
            // microseconds and the next request or probe tick dials again (concurrent
            // callers share one attempt, so an outage cannot cause a dial storm).
            .set_number_of_retries(0);
        let connection = ConnectionManager::new_lazy_with_config(client, manager_config)?;
        Ok(Self {
            inner: Arc::new(Inner {
                connection,
                authorize: Script::new(include_str!("../scripts/authorize.lua")),
                record_usage: Script::new(include_str!("../scripts/record_usage.lua")),
                timeout,
                address,
                availability: AtomicU8::new(Availability::Unknown.as_u8()),
                errors: AtomicU64::new(0),
            }),
        })
    }

    pub fn address(&self) -> &str {
        &self.inner.address
    }

    pub fn availability(&self) -> Availability {
        Availability::from_u8(self.inner.availability.load(Ordering::Relaxed))
    }

    /// Failed Redis round trips since start.
    pub fn error_count(&self) -> u64 {
        self.inner.errors.load(Ordering::Relaxed)
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut connection = self.inner.connection.clone();
        let reply: Result<String, StoreError> = self
            .bounded(async move { redis::cmd("PING").query_async(&mut connection).await })
            .await;
        match reply? {
            pong if pong == "PONG" => Ok(()),
            other => Err(self.record(StoreError::UnexpectedReply(format!("PING -> {other:?}")))),
        }
    }

    /// Runs `scripts/authorize.lua` on one counter key: takes a slot when one is free.
    ///
    /// `Script` sends EVALSHA and on NOSCRIPT (Redis restarted, failed over, or
    /// `SCRIPT FLUSH`) loads the script and retries, so the body crosses the wire only
    /// when Redis lost it.
    ///
    /// On a timeout the script may still run later and count the request; the caller
    /// has already answered 503 by then, so at worst a user loses one slot.
    pub async fn take_request_slot(
        &self,
        key: &str,
        limit: u64,
        window: Duration,
    ) -> Result<WindowCount, StoreError> {
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        let mut connection = self.inner.connection.clone();
        let mut invocation = self.inner.authorize.key(key);
        invocation.arg(limit).arg(window_ms);
        let reply: Vec<i64> = self
            .bounded(async move { invocation.invoke_async(&mut connection).await })
            .await?;
        match reply.as_slice() {
            &[allowed @ (0 | 1), count, pttl] if count >= 0 => Ok(WindowCount {
                allowed: allowed == 1,
                count: count.unsigned_abs(),
                // The script repairs missing expiries, so a negative PTTL cannot come
                // back; if it somehow does, the full window is the honest upper bound.
                reset_after_ms: u64::try_from(pttl).unwrap_or(window_ms),
            }),
            _ => Err(self.record(StoreError::UnexpectedReply(format!(
                "authorize.lua returned {reply:?}"
            )))),
        }
    }

    /// Bounds a round trip by the configured timeout and records the outcome.
    async fn bounded<T>(
        &self,
        round_trip: impl std::future::Future<Output = Result<T, RedisError>>,
    ) -> Result<T, StoreError> {
        let outcome = match tokio::time::timeout(self.inner.timeout, round_trip).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(StoreError::Redis(err)),
            Err(_) => Err(StoreError::Timeout(self.inner.timeout)),
        };
        match outcome {
            Ok(value) => {
                self.set_availability(Availability::Up, None);
                Ok(value)
            }
            Err(err) => Err(self.record(err)),
        }
    }

    fn record(&self, err: StoreError) -> StoreError {
        self.inner.errors.fetch_add(1, Ordering::Relaxed);
        self.set_availability(Availability::Down, Some(&err));
        err
    }

    /// Logs only transitions, so an outage is two log lines rather than one per request.
    fn set_availability(&self, now: Availability, cause: Option<&StoreError>) {
        let before =
            Availability::from_u8(self.inner.availability.swap(now.as_u8(), Ordering::Relaxed));
        if before == now {
            return;
        }
        let address = &self.inner.address;
        match (now, cause) {
            (Availability::Up, _) => log::info!("redis available at {address}"),
            (Availability::Down, Some(err)) => {
                log::warn!("redis unavailable at {address}: {err}; answering 503 until it is back");
            }
            _ => {}
        }
    }
}
