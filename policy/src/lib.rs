//! chokepoint's policy service: answers the filter's "may this call go ahead?" from
//! limits and counters in Redis (request and token rates, budgets in dollars and
//! tokens, per user, tenant, cost centre and model), reserving each allowed call's worst
//! case; and books what each call consumed into a usage ledger, once per request however
//! often the filter retries, which also commits it against the budgets. Operators set
//! limits through the admin API (or the CLI over it). The service holds no state of its
//! own, so replicas scale out freely behind Envoy.
//!
//! [`run`] serves the API on two listeners the caller bound, which lets tests and the
//! binary alike use port 0 and learn the real ports from the listeners: the gateway's
//! (authorize and usage, which only a caller holding the gateway token may use) and the
//! admin's (the admin API and metrics), kept apart so that what can reach the one
//! never reaches the other.

mod api;
mod attribution;
mod client_tools;
mod clock;
mod config;
mod dead_letter;
mod decision;
pub mod display;
mod error;
mod fields;
mod keys;
mod ledger;
mod limit_set;
mod mcp_counts;
mod metrics;
pub mod publish;
pub mod reconcile;
mod refusals;
mod scope;
pub mod seed_limits;
pub mod stderr_log;
mod store;
pub mod stream_id;
mod user_id;
pub mod utc_date;
mod validated;
pub mod viewer;

use std::future::{Future, IntoFuture};
use std::sync::Arc;

use tokio::net::TcpListener;

pub use api::usage::UsageBatch;
pub use chokepoint_contract::bounds::{
    MAX_GROUPS, MAX_NAME_BYTES, MAX_REQUEST_ID_BYTES, MAX_USAGE_COUNT, MAX_USAGE_RECORDS,
};
pub use clock::Clock;
pub use config::{
    ClusterConfig, Config, RedisWait, SentinelConfig, DEFAULT_AUDIT_MAX_AGE, DEFAULT_AUDIT_MAX_LEN,
    DEFAULT_RESERVATION_TTL, DEFAULT_USAGE_DEDUPE_WINDOW, MIN_GATEWAY_TOKEN_BYTES,
};
pub use dead_letter::{DeadLetter, MAX_DEAD_RECORD_BYTES};
pub use error::Error;
pub use store::{AUTHORIZE_SCRIPT, RECORD_USAGE_SCRIPT};
pub use user_id::UserId;
pub use validated::{AuthorizeRequest, UsageRecord};

use api::{AppState, BodyLimits};
use decision::Policy;
use ledger::{Ledger, Retention};
use metrics::Metrics;
use store::Store;

/// The two sockets the service answers on.
pub struct Listeners {
    /// `/v1/authorize`, `/v1/usage` (gateway token) and `/healthz`: Envoy's policy
    /// cluster points here.
    pub gateway: TcpListener,
    /// The admin API (admin token), `/metrics` and `/healthz`: for operators and
    /// Prometheus, never the gateway's network.
    pub admin: TcpListener,
}

/// Serves the policy API on both listeners until `shutdown` completes, then finishes
/// the requests in flight and returns.
///
/// Redis need not be up: the connection is made on first use and re-made after every
/// failure, and until it works the API answers 503.
pub async fn run(
    listeners: Listeners,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    config.validate()?;
    let (target, field) = match (&config.redis_sentinel, &config.redis_cluster) {
        (Some(sentinel), _) => (store::Target::Sentinel(sentinel), "redis_sentinel"),
        (None, Some(cluster)) => (store::Target::Cluster(cluster), "redis_cluster"),
        (None, None) => (store::Target::Url(&config.redis_url), "redis_url"),
    };
    let mut store = Store::new(target, config.redis_timeout, config.redis_wait)
        .map_err(|err| Error::Config(format!("{field}: {err}")))?;
    if config.redis_cluster_layout {
        store = store.with_cluster_layout();
    }
    let policy = Policy {
        default_user_rpm: config.requests_per_window,
        window: config.window,
        reservation_ttl: config.reservation_ttl,
    };

    if !config.seed_limits.is_empty() {
        let clock = config.clock.clone();
        let seeding = tokio::spawn(seed_limits::apply(
            store.clone(),
            config.seed_limits.clone(),
            move || clock.now_ms(),
        ));
        // Detached on purpose: it ends once Redis took every set.
        drop(seeding);
    }
    let probe = store::spawn_probe(store.clone(), config.redis_probe_interval);
    // Stop probing however this function exits, including by being dropped.
    let _probe = AbortOnDrop(probe);

    let address = |listener: &TcpListener| {
        listener
            .local_addr()
            .map_or_else(|_| "?".to_owned(), |addr| addr.to_string())
    };
    log::info!(
        "policy service listening on {} (authorize, usage: gateway token required) and {} \
         (admin API, metrics); redis at {}; rate window {} ms, {} requests per window per user \
         unless limits say otherwise; reservations live {} ms",
        address(&listeners.gateway),
        address(&listeners.admin),
        store.address(),
        policy.window.as_millis(),
        policy.default_user_rpm,
        policy.reservation_ttl.as_millis(),
    );
    if let Some(wait) = &config.redis_wait {
        log::info!(
            "each usage batch waits for {} replica(s) to hold it (WAIT, up to {} ms), else 503",
            wait.replicas,
            wait.timeout.as_millis()
        );
    }
    log::info!(
        "usage ledger remembers request ids for {} s; admin endpoints {}",
        config.usage_dedupe_window.as_secs(),
        if config.admin_token.is_some() {
            "enabled"
        } else {
            "disabled (no admin token)"
        },
    );

    if config.usage_audit_stream {
        log::info!(
            "audit stream {} and dead letters {} keep about {} entries each, none much \
             older than {} s",
            ledger::AUDIT_LOG_KEY,
            dead_letter::DEAD_LETTER_KEY,
            config.audit_max_len,
            config.audit_max_age.as_secs(),
        );
    } else {
        log::info!(
            "audit stream off: booked records are not logged in {} (the gateway's access \
             log is the audit trail); dead letters {} keep about {} entries, none much \
             older than {} s",
            ledger::AUDIT_LOG_KEY,
            dead_letter::DEAD_LETTER_KEY,
            config.audit_max_len,
            config.audit_max_age.as_secs(),
        );
    }

    // The environment holds the gateway's UUID salt (and any HMAC issuer's secret), by
    // the names the identity file gives.
    let viewers = viewer::Viewers::new(
        config.identity.clone(),
        config.admin_token.as_deref(),
        |name| std::env::var(name).ok(),
    )?;
    log::info!(
        "pages: {} company-token issuer(s), {} admin group(s)",
        config.identity.issuers.len(),
        config.identity.admin_groups.len(),
    );
    let state = AppState {
        viewers: Arc::new(viewers),
        store,
        policy,
        ledger: Ledger {
            dedupe_window: config.usage_dedupe_window,
            retention: Retention {
                max_len: config.audit_max_len,
                max_age: config.audit_max_age,
                audit: config.usage_audit_stream,
            },
        },
        clock: config.clock.clone(),
        admin_token: config.admin_token.as_deref().map(Arc::from),
        // validate() refused a config without one.
        gateway_token: Arc::from(config.gateway_token.as_deref().unwrap_or_default()),
        metrics: Arc::new(Metrics::default()),
    };
    let limits = BodyLimits {
        default: config.max_body_bytes,
        usage: config.max_usage_body_bytes,
    };
    // One shutdown for both: dropping the sender wakes every receiver.
    let (stop, stopped) = tokio::sync::watch::channel(());
    let graceful = |mut stopped: tokio::sync::watch::Receiver<()>| async move {
        let _ = stopped.changed().await;
    };
    let gateway = axum::serve(
        listeners.gateway,
        api::gateway_router(state.clone(), limits),
    )
    .with_graceful_shutdown(graceful(stopped.clone()))
    .into_future();
    let admin = axum::serve(listeners.admin, api::admin_router(state, limits))
        .with_graceful_shutdown(graceful(stopped))
        .into_future();
    let serving = async { tokio::try_join!(gateway, admin) };
    tokio::pin!(serving);
    let served = tokio::select! {
        // Only a failure ends a listener before the shutdown signal.
        served = &mut serving => served,
        () = shutdown => {
            drop(stop);
            serving.await
        }
    };
    served.map_err(Error::Serve)?;
    log::info!("policy service stopped");
    Ok(())
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
