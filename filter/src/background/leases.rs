//! Lease slots kept topped up while a caller uses them, and given back when they expire
//! (see `lease`).

use super::Background;
use crate::admission::authorize::{self, Decision};
use crate::admission::lease::{self, Renewal};
use crate::admission::policy_callout;
use crate::host::{Counter, RootHost};

impl Background {
    /// Sends the lease renewals that came due since the last tick.
    pub(super) fn renew_leases(&mut self, host: &mut dyn RootHost, now_ms: u64) {
        let rt = &self.rt;
        let policy = &rt.config.policy;
        if policy.lease_slots < 2 {
            return;
        }
        let in_flight = u64::try_from(policy.timeout.as_millis()).unwrap_or(u64::MAX);
        let due = self.auth.borrow_mut().leases.renewals(now_ms, in_flight);
        let return_ms = lease::return_within_ms(policy.lease_ttl, rt.config.usage.flush);
        for renewal in due {
            let request_id = host.random_id();
            let request = authorize::renewal(&request_id, &renewal.ask, renewal.slots, return_ms);
            let Ok(body) = serde_json::to_vec(&request) else {
                self.auth
                    .borrow_mut()
                    .leases
                    .renewal_failed(&renewal, now_ms);
                continue;
            };
            let headers =
                policy_callout::headers(rt, policy_callout::AUTHORIZE_PATH, Some(&request_id));
            match host.call(&policy.cluster, &headers, Some(&body), policy.timeout) {
                Ok(token) => {
                    self.renewals.insert(token, (renewal, request_id));
                }
                Err(e) => {
                    log::warn!("cannot renew a lease via {}: {e:?}", policy.cluster);
                    self.auth
                        .borrow_mut()
                        .leases
                        .renewal_failed(&renewal, now_ms);
                }
            }
        }
    }

    /// The policy service answered a renewal: keep the slots, or back off.
    pub(super) fn renewal_answered(
        &mut self,
        host: &mut dyn RootHost,
        renewal: &Renewal,
        request_id: &str,
        status: Option<u32>,
        body: &[u8],
    ) {
        let now = host.now_ms();
        match authorize::decide(status, body) {
            Decision::Allow(quota) => {
                let ttl =
                    u64::try_from(self.rt.config.policy.lease_ttl.as_millis()).unwrap_or(u64::MAX);
                let released = self.auth.borrow_mut().leases.renewed(
                    renewal,
                    request_id,
                    quota.slots,
                    now,
                    ttl,
                );
                host.add(Counter::LeaseRenewed, 1);
                enqueue_releases(host, &released);
            }
            Decision::Deny { .. } | Decision::Unavailable(_) => {
                self.auth.borrow_mut().leases.renewal_failed(renewal, now);
            }
        }
    }

    /// Lease slots past their time go back to the policy service with the next batch.
    pub(super) fn release_expired_leases(&mut self, host: &mut dyn RootHost, now_ms: u64) {
        let expired = self.auth.borrow_mut().leases.expire(now_ms);
        enqueue_releases(host, &expired);
    }
}

/// Slots to give back travel with the usage records, as a request's do.
fn enqueue_releases(host: &mut dyn RootHost, slots: &[String]) {
    for slot in slots {
        let Ok(json) = serde_json::to_vec(slot) else {
            continue;
        };
        if !host.push_usage(&json) {
            host.add(Counter::UsageQueueFailure, 1);
        }
    }
}
