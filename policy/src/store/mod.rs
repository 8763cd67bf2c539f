//! Redis access: one self-healing connection, the Lua scripts, and a time bound on
//! every round trip. Decisions' round trips live in `authorize`, the usage ledger's in
//! `usage`, refused usage records' in `dead_letter`, the admin API's in `admin`, the audit
//! export's pages in `audit`.
//!
//! The service keeps no counters of its own. When Redis cannot answer, callers get a
//! [`StoreError`] and the API answers 503; the filter then applies its configured
//! failure mode. Falling back to in-process counters would hand every replica its own
//! quota and silently multiply the limit.

mod admin;
mod audit;
mod authorize;
mod dead_letter;
mod probe;
mod usage;

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, ConnectionAddr, RedisError, Script};

pub use authorize::{LimitState, Metric, ScriptCall, Source};
pub(crate) use probe::spawn_probe;
pub use usage::{ScopeWrite, UsageTally, UsageWrite};

/// The helpers and key layouts both scripts share; sent ahead of each script, so
/// each runs (and is cached by SHA) as one body.
pub const AUTHORIZE_SCRIPT: &str = concat!(
    include_str!("../scripts/windows.lua"),
    include_str!("../scripts/authorize.lua")
);
pub const RELEASE_SCRIPT: &str = concat!(
    include_str!("../scripts/windows.lua"),
    include_str!("../scripts/release.lua")
);
pub const RECORD_USAGE_SCRIPT: &str = concat!(
    include_str!("../scripts/windows.lua"),
    include_str!("../scripts/record_usage.lua")
);
pub const DEAD_LETTER_SCRIPT: &str = concat!(
    include_str!("../scripts/windows.lua"),
    include_str!("../scripts/dead_letter.lua")
);
/// Needs none of the shared helpers.
pub const AUDIT_PAGE_SCRIPT: &str = include_str!("../scripts/audit_page.lua");

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
    release: Script,
    dead_letter: Script,
    audit_page: Script,
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
                authorize: Script::new(AUTHORIZE_SCRIPT),
                record_usage: Script::new(RECORD_USAGE_SCRIPT),
                release: Script::new(RELEASE_SCRIPT),
                dead_letter: Script::new(DEAD_LETTER_SCRIPT),
                audit_page: Script::new(AUDIT_PAGE_SCRIPT),
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
