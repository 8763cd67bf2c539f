//! Where round trips go: one Redis at a fixed URL, the primary Sentinel names, or a
//! Redis Cluster.
//!
//! In Sentinel mode the primary is resolved through the sentinels on first use and
//! forgotten after any failure that can mean a failover (a dropped or refused
//! connection, a timeout, `READONLY` from a demoted primary, `MASTERDOWN`), so the next
//! round trip asks the sentinels again. Resolving is itself a round trip inside the
//! caller's time bound, and concurrent callers share one.
//!
//! In cluster mode redis-rs's cluster client routes each command (and each pipeline, by
//! its first key) to the primary holding its slot, and follows the slot map itself.

use std::sync::RwLock;

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    Client, Cmd, ConnectionAddr, ErrorKind, Pipeline, RedisError, RedisFuture, ServerErrorKind,
    Value,
};

use super::StoreError;
use crate::config::{ClusterConfig, SentinelConfig};

pub(super) enum Link {
    /// A fixed address; the manager re-dials it after a failure.
    Direct(ConnectionManager),
    Sentinel(Box<SentinelLink>),
    /// The cluster client; it re-dials nodes and refreshes the slot map by itself.
    Cluster(ClusterConnection),
}

/// What a round trip is handed: a connection to one Redis (the fixed one or the
/// primary), or the cluster client. Both are cheap clones of a shared, multiplexed
/// connection, so concurrent round trips never wait for one another's turn.
#[derive(Clone)]
pub enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Single(manager) => manager.req_packed_command(cmd),
            Connection::Cluster(cluster) => cluster.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Single(manager) => manager.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(cluster) => cluster.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(manager) => manager.get_db(),
            Connection::Cluster(cluster) => cluster.get_db(),
        }
    }
}

pub(super) struct SentinelLink {
    /// Held while resolving, so concurrent callers wait for one answer instead of each
    /// asking the sentinels.
    client: tokio::sync::Mutex<SentinelClient>,
    /// The primary's connection while it is believed to be the primary.
    current: RwLock<Option<ConnectionManager>>,
    /// Where the primary was last found (no credentials), to log a move once.
    last_address: RwLock<Option<String>>,
    master_name: String,
    manager_config: ConnectionManagerConfig,
}

impl Link {
    pub(super) fn direct(
        client: Client,
        config: ConnectionManagerConfig,
    ) -> Result<Self, RedisError> {
        Ok(Link::Direct(ConnectionManager::new_lazy_with_config(
            client, config,
        )?))
    }

    pub(super) fn sentinel(
        config: &SentinelConfig,
        manager_config: ConnectionManagerConfig,
    ) -> Result<Self, RedisError> {
        let addresses = config
            .addresses
            .iter()
            .map(|(host, port)| ConnectionAddr::Tcp(host.clone(), *port));
        let mut builder =
            SentinelClientBuilder::new(addresses, &config.master_name, SentinelServerType::Master)?;
        if let Some(password) = &config.sentinel_password {
            builder = builder.set_client_to_sentinel_password(password);
        }
        if let Some(username) = &config.redis_username {
            builder = builder.set_client_to_redis_username(username);
        }
        if let Some(password) = &config.redis_password {
            builder = builder.set_client_to_redis_password(password);
        }
        Ok(Link::Sentinel(Box::new(SentinelLink {
            client: tokio::sync::Mutex::new(builder.build()?),
            current: RwLock::new(None),
            last_address: RwLock::new(None),
            master_name: config.master_name.clone(),
            manager_config,
        })))
    }

    /// The cluster client, dialling lazily like the other links: the service starts
    /// (and answers 503) while every node is down.
    ///
    /// No retries, as for one Redis: a dead node fails the round trip at once and the
    /// client reconnects in the background. That holds for redirections too: a `MOVED`
    /// (after a failover or a resharding) fails that one round trip, and makes the
    /// client refresh its slot map, so the next one goes to the right node. Retrying a
    /// script whose reply was lost could also run it twice.
    pub(super) fn cluster(config: &ClusterConfig, timeout: Duration) -> Result<Self, RedisError> {
        let nodes = config
            .nodes
            .iter()
            .map(|(host, port)| ConnectionAddr::Tcp(host.clone(), *port));
        let mut builder = ClusterClientBuilder::new(nodes)
            .retries(0)
            .connection_timeout(timeout)
            .response_timeout(timeout);
        if let Some(username) = &config.username {
            builder = builder.username(username);
        }
        if let Some(password) = &config.password {
            builder = builder.password(password);
        }
        let client = builder.build()?;
        Ok(Link::Cluster(
            client.get_pending_async_connection_with_config(
                redis::cluster::ClusterConfig::new()
                    .set_connection_timeout(timeout)
                    .set_response_timeout(timeout),
            ),
        ))
    }

    /// A connection to the primary (the fixed one, or the one the sentinels name), or
    /// the cluster client.
    pub(super) async fn connection(&self) -> Result<Connection, RedisError> {
        match self {
            Link::Direct(manager) => Ok(Connection::Single(manager.clone())),
            Link::Sentinel(link) => link.connection().await.map(Connection::Single),
            Link::Cluster(cluster) => Ok(Connection::Cluster(cluster.clone())),
        }
    }

    /// Asks the sentinels where the primary is now and moves there if it moved. Sentinel
    /// demotes a live old primary only when it next polls it (up to ten seconds after
    /// naming the new one), and until then the old one takes writes that the demotion
    /// throws away; the probe calls this every tick so the service leaves it within one.
    pub(super) async fn follow(&self) -> Result<(), RedisError> {
        match self {
            Link::Direct(_) | Link::Cluster(_) => Ok(()),
            Link::Sentinel(link) => link.follow().await,
        }
    }

    /// After `err`: forgets the primary when the error can mean it moved.
    pub(super) fn after_error(&self, err: &StoreError) {
        if let Link::Sentinel(link) = self {
            if may_mean_failover(err) {
                if let Ok(mut current) = link.current.write() {
                    *current = None;
                }
            }
        }
    }
}

impl SentinelLink {
    async fn connection(&self) -> Result<ConnectionManager, RedisError> {
        if let Some(manager) = self.cached() {
            return Ok(manager);
        }
        let mut client = self.client.lock().await;
        // Another caller may have resolved while this one waited.
        if let Some(manager) = self.cached() {
            return Ok(manager);
        }
        // Asks the sentinels in turn, and checks with ROLE that the node they name is
        // a primary, so a stale answer during a failover is an error, not a replica.
        let primary = client.async_get_client().await?;
        let address = primary.get_connection_info().addr().to_string();
        let manager =
            ConnectionManager::new_lazy_with_config(primary, self.manager_config.clone())?;
        if let Ok(mut current) = self.current.write() {
            *current = Some(manager.clone());
        }
        self.note_address(address);
        Ok(manager)
    }

    async fn follow(&self) -> Result<(), RedisError> {
        let mut client = self.client.lock().await;
        let primary = client.async_get_client().await?;
        let address = primary.get_connection_info().addr().to_string();
        let moved = self
            .last_address
            .read()
            .map_or(true, |last| last.as_deref() != Some(address.as_str()));
        if moved || self.cached().is_none() {
            let manager =
                ConnectionManager::new_lazy_with_config(primary, self.manager_config.clone())?;
            if let Ok(mut current) = self.current.write() {
                *current = Some(manager);
            }
            self.note_address(address);
        }
        Ok(())
    }

    fn cached(&self) -> Option<ConnectionManager> {
        self.current.read().ok().and_then(|current| current.clone())
    }

    fn note_address(&self, address: String) {
        let Ok(mut last) = self.last_address.write() else {
            return;
        };
        if last.as_deref() != Some(address.as_str()) {
            match last.as_deref() {
                None => log::info!(
                    "sentinels name {address} the primary of {}",
                    self.master_name
                ),
                Some(before) => log::warn!(
                    "the primary of {} moved from {before} to {address} (failover)",
                    self.master_name
                ),
            }
            *last = Some(address);
        }
    }
}

/// Whether `err` can mean the primary is gone or demoted, so the sentinels must be
/// asked again. A script's own error or a malformed reply cannot.
pub(super) fn may_mean_failover(err: &StoreError) -> bool {
    match err {
        StoreError::Timeout(_) => true,
        StoreError::Redis(err) => is_failover_error(err),
        StoreError::UnexpectedReply(_) | StoreError::Unreplicated { .. } => false,
    }
}

pub(super) fn is_failover_error(err: &RedisError) -> bool {
    err.is_io_error()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || err.is_timeout()
        || matches!(
            err.kind(),
            ErrorKind::Server(ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown)
        )
}
