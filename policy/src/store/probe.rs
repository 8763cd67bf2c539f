//! Background PING loop.
//!
//! redis-rs only notices a dead connection when a command fails on it, so without this
//! the first request after a Redis restart would get a 503 while it triggers the
//! reconnect. Probing also keeps `/metrics` and the logs truthful while no traffic
//! flows, and during an outage it is what keeps dialling Redis. In Sentinel mode each
//! tick first asks the sentinels whether the primary moved.

use std::time::Duration;

use tokio::task::JoinHandle;

use super::Store;

/// Runs until the returned handle is aborted. Outcomes are logged by [`Store`] itself
/// (on transitions only).
pub(crate) fn spawn_probe(store: Store, every: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        // After a stall, one probe is enough; a burst of catch-up PINGs tells nothing new.
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            store.follow_primary().await;
            let _ = store.ping().await;
        }
    })
}
