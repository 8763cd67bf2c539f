//! Redis access: one self-healing connection (to a fixed Redis, to the primary
//! Sentinel names, or to a Redis Cluster: `link`), the Lua scripts, and a time bound on
//! every round trip. Decisions' round trips live in `authorize`, the usage ledger's in
//! `usage`, refused usage records' in `dead_letter`, the admin API's in `admin`, the audit
//! export's pages in `audit`, pipelines split per hash slot in `pipeline`.
//!
//! In cluster mode every round trip must touch one hash slot (a script's keys, a
//! pipeline's commands, a MULTI's keys): Redis refuses anything else with `CROSSSLOT`.
//!
//! The service keeps no counters of its own. When Redis cannot answer, callers get a
//! [`StoreError`] and the API answers 503; the filter then applies its configured
//! failure mode. Falling back to in-process counters would hand every replica its own
//! quota and silently multiply the limit.

mod admin;
mod audit;
mod authorize;
mod cluster_state;
mod dead_letter;
mod hash_tag;
mod link;
mod pipeline;
mod probe;
mod rollups;
mod sharded_authorize;
mod sharded_usage;
mod usage;

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManagerConfig;
use redis::{Client, ConnectionAddr, RedisError, Script};

use crate::config::{ClusterConfig, RedisWait, SentinelConfig};
use link::{Connection, Link};

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
    /// The primary booked the writes, but fewer replicas than `WAIT` asks for
    /// acknowledged them in time: a failover now could lose them, so the caller is told
    /// to send them again (the ledger's dedupe makes that exact).
    Unreplicated { wanted: u32, acknowledged: i64 },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Timeout(limit) => write!(f, "no answer within {} ms", limit.as_millis()),
            StoreError::Redis(err) => write!(f, "{err}"),
            StoreError::UnexpectedReply(what) => write!(f, "unexpected reply: {what}"),
            StoreError::Unreplicated {
                wanted,
                acknowledged,
            } => write!(
                f,
                "{acknowledged} of the {wanted} replicas WAIT asks for acknowledged the ledger's writes"
            ),
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

/// Which Redis a store talks to.
#[derive(Clone, Copy)]
pub enum Target<'a> {
    Url(&'a str),
    Sentinel(&'a SentinelConfig),
    /// Never with `WAIT` (`Config::validate` rejects it).
    Cluster(&'a ClusterConfig),
}

/// How the Redis behind a store is deployed, as `/healthz` states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisMode {
    Single,
    Sentinel,
    Cluster,
}

impl RedisMode {
    pub fn as_str(self) -> &'static str {
        match self {
            RedisMode::Single => "single",
            RedisMode::Sentinel => "sentinel",
            RedisMode::Cluster => "cluster",
        }
    }
}

struct Inner {
    link: Link,
    /// The ledger's own connection when `WAIT` is on: `WAIT` blocks the connection it is
    /// sent on, and authorize calls must not queue behind it.
    ledger: Option<Link>,
    wait: Option<RedisWait>,
    mode: RedisMode,
    /// Whether the last `WAIT` found too few replicas (for logging its transitions).
    unreplicated: AtomicBool,
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
    /// The cluster layout: every script call touches one hash tag (see
    /// `sharded_authorize` and `sharded_usage`).
    sharded: bool,
}

impl Store {
    /// Prepares a connection without dialling, so the service starts (and answers 503)
    /// while Redis (or every sentinel) is still down. Fails only on a malformed URL.
    pub fn new(
        target: Target<'_>,
        timeout: Duration,
        wait: Option<RedisWait>,
    ) -> Result<Self, RedisError> {
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            // One attempt per (re)connect. With backoff retries a dead Redis would hold
            // every request until its timeout; with none a request fails in
            // microseconds and the next request or probe tick dials again (concurrent
            // callers share one attempt, so an outage cannot cause a dial storm).
            .set_number_of_retries(0);
        let mode = match target {
            Target::Url(_) => RedisMode::Single,
            Target::Sentinel(_) => RedisMode::Sentinel,
            Target::Cluster(_) => RedisMode::Cluster,
        };
        let (address, link, ledger) = match target {
            Target::Url(url) => {
                let client = Client::open(url)?;
                let address = match client.get_connection_info().addr() {
                    ConnectionAddr::Unix(path) => format!("unix:{}", path.display()),
                    other => other.to_string(),
                };
                let ledger = match wait {
                    Some(_) => Some(Link::direct(client.clone(), manager_config.clone())?),
                    None => None,
                };
                (address, Link::direct(client, manager_config)?, ledger)
            }
            Target::Sentinel(sentinel) => {
                let address = format!(
                    "the primary of {} through sentinels {}",
                    sentinel.master_name,
                    sentinel.addresses_shown()
                );
                let ledger = match wait {
                    Some(_) => Some(Link::sentinel(sentinel, manager_config.clone())?),
                    None => None,
                };
                (address, Link::sentinel(sentinel, manager_config)?, ledger)
            }
            Target::Cluster(cluster) => {
                let address = format!("the cluster seeded by {}", cluster.nodes_shown());
                // WAIT is rejected with a cluster, so the ledger shares the connection.
                (address, Link::cluster(cluster, timeout)?, None)
            }
        };
        Ok(Self {
            inner: Arc::new(Inner {
                link,
                ledger,
                wait,
                mode,
                unreplicated: AtomicBool::new(false),
                authorize: Script::new(AUTHORIZE_SCRIPT),
                record_usage: Script::new(RECORD_USAGE_SCRIPT),
                release: Script::new(RELEASE_SCRIPT),
                dead_letter: Script::new(DEAD_LETTER_SCRIPT),
                audit_page: Script::new(AUDIT_PAGE_SCRIPT),
                timeout,
                address,
                availability: AtomicU8::new(Availability::Unknown.as_u8()),
                errors: AtomicU64::new(0),
                sharded: false,
            }),
        })
    }

    /// Calls the scripts one hash tag at a time, as a Redis Cluster needs them (see
    /// `Config::redis_cluster_layout`). Only on a store not yet shared.
    pub fn with_cluster_layout(mut self) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.sharded = true;
        }
        self
    }

    pub fn address(&self) -> &str {
        &self.inner.address
    }

    pub fn mode(&self) -> RedisMode {
        self.inner.mode
    }

    /// Whether keys live on several nodes (a Redis Cluster), or the cluster layout was
    /// asked for on one Redis: then every script call, pipeline and MULTI keeps to one
    /// hash slot, and calls that would span slots are split per slot.
    pub fn sharded(&self) -> bool {
        self.inner.sharded || self.inner.mode == RedisMode::Cluster
    }

    pub fn availability(&self) -> Availability {
        Availability::from_u8(self.inner.availability.load(Ordering::Relaxed))
    }

    /// Failed Redis round trips since start.
    pub fn error_count(&self) -> u64 {
        self.inner.errors.load(Ordering::Relaxed)
    }

    /// Whether Redis can serve: a `PING`, or on a cluster every primary's `CLUSTER INFO`
    /// saying `cluster_state:ok` (see `cluster_state`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        if self.inner.mode == RedisMode::Cluster {
            return self.cluster_ok().await;
        }
        let reply: Result<String, StoreError> = self
            .bounded(|mut connection| async move {
                redis::cmd("PING").query_async(&mut connection).await
            })
            .await;
        match reply? {
            pong if pong == "PONG" => Ok(()),
            other => Err(self.record(StoreError::UnexpectedReply(format!("PING -> {other:?}")))),
        }
    }

    /// In Sentinel mode: asks the sentinels where the primary is, and moves there if it
    /// moved (see `Link::follow`); bounded like a round trip. Failures are left to the
    /// next round trip, which reports them.
    pub(crate) async fn follow_primary(&self) {
        for link in std::iter::once(&self.inner.link).chain(&self.inner.ledger) {
            let _ = tokio::time::timeout(self.inner.timeout, link.follow()).await;
        }
    }

    /// Bounds a round trip on the main connection by the configured timeout (finding
    /// the primary included) and records the outcome.
    async fn bounded<T, F, Fut>(&self, round_trip: F) -> Result<T, StoreError>
    where
        F: FnOnce(Connection) -> Fut,
        Fut: std::future::Future<Output = Result<T, RedisError>>,
    {
        self.bounded_on(&self.inner.link, round_trip).await
    }

    /// The same on the ledger's connection (its own one when `WAIT` is on).
    async fn bounded_ledger<T, F, Fut>(&self, round_trip: F) -> Result<T, StoreError>
    where
        F: FnOnce(Connection) -> Fut,
        Fut: std::future::Future<Output = Result<T, RedisError>>,
    {
        let link = self.inner.ledger.as_ref().unwrap_or(&self.inner.link);
        self.bounded_on(link, round_trip).await
    }

    async fn bounded_on<T, F, Fut>(&self, link: &Link, round_trip: F) -> Result<T, StoreError>
    where
        F: FnOnce(Connection) -> Fut,
        Fut: std::future::Future<Output = Result<T, RedisError>>,
    {
        let attempt = async {
            let connection = link.connection().await?;
            round_trip(connection).await
        };
        let outcome = match tokio::time::timeout(self.inner.timeout, attempt).await {
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

    /// Counts a failed round trip; in Sentinel mode a failure that can mean a failover
    /// has the next round trip ask the sentinels where the primary is.
    fn record(&self, err: StoreError) -> StoreError {
        self.inner.link.after_error(&err);
        if let Some(ledger) = &self.inner.ledger {
            ledger.after_error(&err);
        }
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
