//! Lease slots held by one worker: requests' worth of a caller's limits that the policy
//! service already reserved (each slot an ordinary reservation of one request's worst
//! case, named `<request_id>.<i>`), spent on the caller's next requests without a
//! callout. A slot is used only while its lease is fresh and only by a request whose
//! worst case fits in it, so every admitted request is still covered by a reservation;
//! slots not used in time are handed back for release.

use std::collections::HashMap;

#[derive(Debug)]
struct Lease {
    slots: Vec<String>,
    /// What each slot reserved: a request's worst-case tokens and cost.
    tokens: u64,
    cost_micros: u64,
    valid_until_ms: u64,
}

#[derive(Debug)]
pub struct LeaseTable {
    leases: HashMap<String, Lease>,
    max_entries: usize,
}

impl LeaseTable {
    pub fn new(max_entries: usize) -> LeaseTable {
        LeaseTable {
            leases: HashMap::new(),
            max_entries,
        }
    }

    /// The scopes a decision covers: slots are only valid for the same user, tenant,
    /// cost centre and model (the policy service's scopes).
    pub fn key(
        user: &str,
        tenant: Option<&str>,
        cost_center: Option<&str>,
        model: Option<&str>,
    ) -> String {
        // JSON of the tuple: unambiguous whatever the names contain.
        serde_json::to_string(&(user, tenant, cost_center, model)).unwrap_or_default()
    }

    /// A slot for a request needing `tokens` and `cost_micros` at worst, if a fresh lease
    /// for `key` has one that covers it.
    pub fn take(
        &mut self,
        key: &str,
        tokens: u64,
        cost_micros: u64,
        now_ms: u64,
    ) -> Option<String> {
        let lease = self.leases.get_mut(key)?;
        if now_ms >= lease.valid_until_ms
            || tokens > lease.tokens
            || cost_micros > lease.cost_micros
        {
            return None;
        }
        lease.slots.pop()
    }

    /// Keeps a new lease of `slots` for `key` (the first slot, `request_id` itself, is the
    /// request that asked). Returns the slots to release: what an older lease for the key
    /// had left, and a whole lease evicted when the table is full.
    #[allow(clippy::too_many_arguments)]
    pub fn grant(
        &mut self,
        key: &str,
        request_id: &str,
        slots: u64,
        tokens: u64,
        cost_micros: u64,
        now_ms: u64,
        ttl_ms: u64,
    ) -> Vec<String> {
        let mut release = Vec::new();
        if let Some(old) = self.leases.remove(key) {
            release.extend(old.slots);
        }
        if slots < 2 {
            return release;
        }
        if self.leases.len() >= self.max_entries {
            // The lease closest to expiry goes first: it had the least use left.
            let oldest = self
                .leases
                .iter()
                .min_by_key(|(_, l)| l.valid_until_ms)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                if let Some(l) = self.leases.remove(&k) {
                    release.extend(l.slots);
                }
            }
        }
        // Highest first, so pop() hands out `.2` first.
        let ids = (2..=slots)
            .rev()
            .map(|i| format!("{request_id}.{i}"))
            .collect();
        self.leases.insert(
            key.to_string(),
            Lease {
                slots: ids,
                tokens,
                cost_micros,
                valid_until_ms: now_ms.saturating_add(ttl_ms),
            },
        );
        release
    }

    /// Removes leases past their time; returns their unused slots for release.
    pub fn expire(&mut self, now_ms: u64) -> Vec<String> {
        let mut release = Vec::new();
        self.leases.retain(|_, l| {
            if now_ms >= l.valid_until_ms {
                release.append(&mut l.slots);
                false
            } else {
                !l.slots.is_empty()
            }
        });
        release
    }

    pub fn len(&self) -> usize {
        self.leases.len()
    }

    pub fn is_empty(&self) -> bool {
        self.leases.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_serve_fitting_requests_while_fresh() {
        let mut t = LeaseTable::new(10);
        let k = LeaseTable::key("u", Some("acme"), None, Some("gpt-4o"));
        assert!(t.grant(&k, "r1", 4, 100, 50, 1_000, 5_000).is_empty());
        assert_eq!(t.take(&k, 100, 50, 1_001).as_deref(), Some("r1.2"));
        assert_eq!(t.take(&k, 101, 50, 1_002), None, "a bigger worst case");
        assert_eq!(t.take(&k, 10, 51, 1_002), None, "a costlier one");
        assert_eq!(t.take("other", 1, 1, 1_002), None);
        assert_eq!(t.take(&k, 1, 1, 1_003).as_deref(), Some("r1.3"));
        assert_eq!(t.take(&k, 1, 1, 6_000), None, "expired");
        assert_eq!(t.expire(6_000), ["r1.4"]);
        assert!(t.is_empty());
    }

    #[test]
    fn a_new_lease_releases_the_old_ones_rest_and_the_table_is_bounded() {
        let mut t = LeaseTable::new(2);
        assert!(t.grant("a", "r1", 3, 1, 1, 0, 100).is_empty());
        assert_eq!(t.grant("a", "r2", 2, 1, 1, 10, 100), ["r1.3", "r1.2"]);
        assert!(t.grant("b", "r3", 2, 1, 1, 20, 100).is_empty());
        // Full: the lease closest to expiry ("a", until 110) is evicted and released.
        assert_eq!(t.grant("c", "r4", 2, 1, 1, 30, 100), ["r2.2"]);
        assert_eq!(t.len(), 2);
        // One slot is no lease: nothing kept.
        assert!(t.grant("d", "r5", 1, 1, 1, 40, 100).is_empty());
        assert_eq!(t.len(), 2);
        // An emptied lease is dropped at the next expiry pass.
        assert_eq!(t.take("b", 1, 1, 50).as_deref(), Some("r3.2"));
        assert!(t.expire(60).is_empty());
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn keys_separate_scopes() {
        assert_ne!(
            LeaseTable::key("u", Some("a"), None, None),
            LeaseTable::key("u", None, Some("a"), None)
        );
        assert_ne!(
            LeaseTable::key("u", Some("a\",\"b"), None, None),
            LeaseTable::key("u", Some("a"), Some("b"), None),
        );
    }
}
