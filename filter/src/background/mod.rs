//! The root context's work between requests, one per worker: keeping each remote issuer's
//! keys fresh ([`keys`]), delivering usage records to the ledger ([`usage`]), and renewing
//! and returning lease slots ([`leases`]). Host-free: the wasm root only moves the timer,
//! the callout answers and the shared queue through a [`RootHost`].

mod keys;
mod leases;
mod usage;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use crate::accounting::delivery::Delivery;
use crate::admission::lease::{self, Renewal};
use crate::auth_state::AuthState;
use crate::host::RootHost;
use crate::runtime::Runtime;

/// How often the keys are checked and usage goes out, at the slowest (faster with a
/// shorter `usage.flush_ms`).
pub const TICK: Duration = Duration::from_secs(1);

pub struct Background {
    rt: Rc<Runtime>,
    auth: Rc<RefCell<AuthState>>,
    /// Pending JWKS fetches: callout token -> issuer.
    fetches: HashMap<u32, String>,
    delivery: Delivery,
    /// Lease renewals out: callout token -> (renewal, its request id).
    renewals: HashMap<u32, (Renewal, String)>,
    /// When the slow part of the tick (keys, usage) and lease expiry last ran, ms.
    last_slow_ms: u64,
    last_expire_ms: u64,
}

impl Background {
    pub fn new(rt: Rc<Runtime>, auth: Rc<RefCell<AuthState>>) -> Background {
        Background {
            rt,
            auth,
            fetches: HashMap::new(),
            delivery: Delivery::default(),
            renewals: HashMap::new(),
            last_slow_ms: 0,
            last_expire_ms: 0,
        }
    }

    /// The period of the slow part of the tick.
    fn slow_period(&self) -> Duration {
        TICK.min(self.rt.config.usage.flush)
    }

    /// The timer's period for what this worker holds now: fast only while it holds lease
    /// slots.
    pub fn wanted_tick(&self) -> Duration {
        let config = &self.rt.config;
        let leases_on = !config.identity_only && config.policy.lease_slots >= 2;
        let holds = self.auth.borrow().leases.holds_slots();
        lease::tick_period(leases_on, holds, self.slow_period())
    }

    /// One timer tick: renewals due, the outbox into the queue, expired slots back; at
    /// the slow period, a usage batch and the keys.
    pub fn tick(&mut self, host: &mut dyn RootHost) {
        let now_ms = host.now_ms();
        self.renew_leases(host, now_ms);
        self.flush_outbox(host);
        if now_ms.saturating_sub(self.last_expire_ms) >= lease::EXPIRE_EVERY_MS {
            self.last_expire_ms = now_ms;
            self.release_expired_leases(host, now_ms);
        }
        let slow_ms = u64::try_from(self.slow_period().as_millis()).unwrap_or(u64::MAX);
        if now_ms.saturating_sub(self.last_slow_ms) < slow_ms {
            return;
        }
        self.last_slow_ms = now_ms;
        self.deliver_usage(host);
        self.refresh_keys(host);
    }

    /// A callout of this root's came back (`status` `None`: no answer, a timeout or a
    /// connection failure).
    pub fn answered(
        &mut self,
        host: &mut dyn RootHost,
        token: u32,
        status: Option<u32>,
        body: &[u8],
    ) {
        if self.delivery.is_in_flight(token) {
            self.usage_answered(host, status, body);
        } else if let Some((renewal, request_id)) = self.renewals.remove(&token) {
            self.renewal_answered(host, &renewal, &request_id, status, body);
        } else if let Some(issuer) = self.fetches.remove(&token) {
            self.keys_answered(host, &issuer, status, body);
        }
    }

    /// The configuration is being replaced (ECDS) or Envoy is shutting down: the slots
    /// held go back with the next batch any worker sends, and a batch not yet
    /// acknowledged goes back to the queue for the next root (the ledger drops any record
    /// it already booked, so nothing is charged twice).
    pub fn shutdown(&mut self, host: &mut dyn RootHost) {
        self.release_expired_leases(host, u64::MAX);
        self.flush_outbox(host);
        for item in self.delivery.take_all() {
            if !host.requeue_usage(&item) {
                host.add(crate::host::Counter::UsageQueueFailure, 1);
            }
        }
    }

    /// What this worker's requests left in the outbox goes into the shared queue.
    fn flush_outbox(&self, host: &mut dyn RootHost) {
        if !host.flush_outbox() {
            host.add(crate::host::Counter::UsageQueueFailure, 1);
        }
    }
}

#[cfg(test)]
mod tests;
