//! Usage records to the ledger: one batch in flight, taken from the shared queue, and
//! what its answer means (see `delivery`).

use super::Background;
use crate::accounting::delivery::{Answer, Bounds, Outcome};
use crate::admission::policy_callout;
use crate::host::{Counter, RootHost};

impl Background {
    /// Sends the next batch of usage records to the ledger, if one is due.
    pub(super) fn deliver_usage(&mut self, host: &mut dyn RootHost) {
        let now = host.now_ms();
        if !self.delivery.ready(now) {
            return;
        }
        let usage = &self.rt.config.usage;
        let bounds = Bounds {
            max_items: usage.batch_max,
            max_bytes: usage.batch_max_bytes,
        };
        self.delivery.fill(bounds, || host.dequeue_usage());
        if self.delivery.is_empty() {
            return;
        }
        let body = self.delivery.body();
        let headers = policy_callout::headers(&self.rt, &usage.path, None);
        let cluster = &self.rt.config.policy.cluster;
        match host.call(cluster, &headers, Some(&body), usage.timeout) {
            Ok(call) => self.delivery.sent(call),
            Err(e) => {
                log::warn!("cannot send usage to {cluster}: {e:?}; will retry");
                self.delivery.failed(now);
                host.add(Counter::UsageDeliveryFailed, 1);
            }
        }
    }

    /// The ledger answered a usage batch: done, taken apart, dropped, or kept for a retry.
    pub(super) fn usage_answered(
        &mut self,
        host: &mut dyn RootHost,
        status: Option<u32>,
        body: &[u8],
    ) {
        let pending = self.delivery.len();
        let now = host.now_ms();
        match self.delivery.answered(Answer::read(status, body), now) {
            Outcome::Delivered {
                items,
                dead_lettered,
            } => {
                host.add(Counter::UsageDelivered, items as u64);
                if dead_lettered > 0 {
                    log::warn!(
                        "the ledger kept {dead_lettered} usage record(s) as invalid (its dead-letter stream)"
                    );
                    host.add(Counter::UsageDeadLettered, dead_lettered);
                }
                // A big batch (or one that left an item for the next): more are likely
                // waiting. Send the next one now rather than at the next tick, or a
                // sustained load outruns delivery and the shared queue (Envoy's memory)
                // grows. Bundles make batches land short of `batch_max`, hence half.
                let busy = items >= self.rt.config.usage.batch_max / 2;
                if busy || self.delivery.has_carry() {
                    self.deliver_usage(host);
                }
            }
            Outcome::Split { items } => {
                log::warn!(
                    "the ledger refused a usage batch of {items} item(s) ({status:?}); sending them one at a time"
                );
                self.deliver_usage(host);
            }
            Outcome::Dropped { items, request_id } => {
                log::error!(
                    "the ledger refused usage record {} ({status:?}); dropped from delivery, kept in the access log",
                    request_id.as_deref().unwrap_or("(unreadable)")
                );
                host.add(Counter::UsageDeadLettered, items as u64);
                self.deliver_usage(host);
            }
            Outcome::Retry => {
                log::warn!(
                    "usage batch of {pending} record(s) not accepted by the ledger ({status:?}); will retry"
                );
                host.add(Counter::UsageDeliveryFailed, 1);
            }
        }
    }
}
