//! Lease slots held by one worker: requests' worth of a caller's limits that the policy
//! service already reserved (each slot an ordinary reservation of one request's worst
//! case, named `<request_id>.<i>`), spent on the caller's next requests without a
//! callout. A slot is used only while fresh and only by a request whose worst case fits
//! in it, so every admitted request is still covered by a reservation; slots not used in
//! time are handed back for release.
//!
//! How many slots to ask for adapts per caller, like a congestion window: it doubles
//! (up to the configured maximum) when a caller used up its slots, and halves when slots
//! expired unused, so a caller sending a few requests a minute does not reserve (and
//! release) sixteen at a time.

use std::collections::HashMap;

/// The ask a caller starts from.
const FIRST_ASK: u64 = 4;

#[derive(Debug)]
struct Slot {
    id: String,
    /// What the slot reserved: a request's worst-case tokens and cost.
    tokens: u64,
    cost_micros: u64,
    valid_until_ms: u64,
}

#[derive(Debug)]
struct Caller {
    slots: Vec<Slot>,
    /// Slots to ask for next time.
    ask: u64,
}

#[derive(Debug)]
pub struct LeaseTable {
    callers: HashMap<String, Caller>,
    max_callers: usize,
    max_slots: u64,
}

impl LeaseTable {
    /// At most `max_callers` callers; at most `max_slots` asked for (and held) per caller.
    pub fn new(max_callers: usize, max_slots: u64) -> LeaseTable {
        LeaseTable {
            callers: HashMap::new(),
            max_callers,
            max_slots,
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

    /// A slot for a request needing `tokens` and `cost_micros` at worst, if `key` holds a
    /// fresh one that covers it.
    pub fn take(
        &mut self,
        key: &str,
        tokens: u64,
        cost_micros: u64,
        now_ms: u64,
    ) -> Option<String> {
        let caller = self.callers.get_mut(key)?;
        let i = caller.slots.iter().rposition(|s| {
            now_ms < s.valid_until_ms && tokens <= s.tokens && cost_micros <= s.cost_micros
        })?;
        Some(caller.slots.swap_remove(i).id)
    }

    /// How many slots to ask for on `key`'s next decision. Asking means the caller's
    /// slots ran out (or did not fit), so the window grows.
    pub fn ask(&mut self, key: &str) -> u64 {
        if self.max_slots < 2 {
            return 0;
        }
        match self.callers.get_mut(key) {
            Some(c) => {
                let ask = c.ask;
                c.ask = (c.ask * 2).min(self.max_slots);
                ask
            }
            None => FIRST_ASK.min(self.max_slots),
        }
    }

    /// Keeps the spare slots of a granted lease (`slots` in all; the first, `request_id`
    /// itself, is the request that asked). Returns slots to release: the oldest beyond
    /// the per-caller bound, and a whole caller evicted when the table is full.
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
        if slots < 2 {
            return release;
        }
        if !self.callers.contains_key(key) && self.callers.len() >= self.max_callers {
            // The caller whose slots expire first goes: it had the least use left.
            let oldest = self
                .callers
                .iter()
                .min_by_key(|(_, c)| c.slots.iter().map(|s| s.valid_until_ms).max())
                .map(|(k, _)| k.clone());
            if let Some(c) = oldest.and_then(|k| self.callers.remove(&k)) {
                release.extend(c.slots.into_iter().map(|s| s.id));
            }
        }
        let first = FIRST_ASK.min(self.max_slots);
        let caller = self.callers.entry(key.to_string()).or_insert(Caller {
            slots: Vec::new(),
            ask: (first * 2).min(self.max_slots),
        });
        let valid_until_ms = now_ms.saturating_add(ttl_ms);
        // Highest first, so the newest, lowest-numbered slots are taken first.
        caller.slots.extend((2..=slots).rev().map(|i| Slot {
            id: format!("{request_id}.{i}"),
            tokens,
            cost_micros,
            valid_until_ms,
        }));
        let cap = usize::try_from(self.max_slots.saturating_mul(2)).unwrap_or(usize::MAX);
        if caller.slots.len() > cap {
            let extra = caller.slots.len() - cap;
            release.extend(caller.slots.drain(..extra).map(|s| s.id));
        }
        release
    }

    /// Removes slots past their time and returns them for release; a caller whose slots
    /// expired unused asks for half as many next time, and one with nothing left is
    /// forgotten.
    pub fn expire(&mut self, now_ms: u64) -> Vec<String> {
        let mut release = Vec::new();
        self.callers.retain(|_, c| {
            let before = release.len();
            let mut kept = Vec::with_capacity(c.slots.len());
            for s in c.slots.drain(..) {
                if now_ms >= s.valid_until_ms {
                    release.push(s.id);
                } else {
                    kept.push(s);
                }
            }
            c.slots = kept;
            if release.len() > before {
                c.ask = (c.ask / 2).max(2);
            }
            !c.slots.is_empty() || c.ask > FIRST_ASK
        });
        release
    }

    pub fn len(&self) -> usize {
        self.callers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.callers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_serve_fitting_requests_while_fresh() {
        let mut t = LeaseTable::new(10, 16);
        let k = LeaseTable::key("u", Some("acme"), None, Some("gpt-4o"));
        assert!(t.grant(&k, "r1", 4, 100, 50, 1_000, 5_000).is_empty());
        assert_eq!(t.take(&k, 100, 50, 1_001).as_deref(), Some("r1.2"));
        assert_eq!(t.take(&k, 101, 50, 1_002), None, "a bigger worst case");
        assert_eq!(t.take(&k, 10, 51, 1_002), None, "a costlier one");
        assert_eq!(t.take("other", 1, 1, 1_002), None);
        assert_eq!(t.take(&k, 1, 1, 1_003).as_deref(), Some("r1.3"));
        assert_eq!(t.take(&k, 1, 1, 6_000), None, "expired");
        assert_eq!(t.expire(6_000), ["r1.4"]);
    }

    #[test]
    fn concurrent_leases_add_up_instead_of_replacing() {
        let mut t = LeaseTable::new(10, 4);
        assert!(t.grant("a", "r1", 3, 1, 1, 0, 100).is_empty());
        assert!(t.grant("a", "r2", 3, 5, 5, 10, 100).is_empty());
        // A request needing 5 only fits r2's slots.
        assert_eq!(t.take("a", 5, 5, 20).as_deref(), Some("r2.2"));
        assert_eq!(t.take("a", 1, 1, 20).as_deref(), Some("r2.3"));
        assert_eq!(t.take("a", 1, 1, 20).as_deref(), Some("r1.2"));
        // Past twice the maximum per caller, the oldest go back.
        assert!(t.grant("a", "r3", 4, 1, 1, 30, 100).is_empty());
        assert!(t.grant("a", "r4", 4, 1, 1, 30, 100).is_empty());
        assert_eq!(t.grant("a", "r5", 4, 1, 1, 30, 100), ["r1.3", "r3.4"]);
        // r1's last slot expired at 100, the rest at 130.
        assert_eq!(t.expire(130).len(), 8);
    }

    #[test]
    fn the_ask_grows_when_used_up_and_shrinks_when_unused() {
        let mut t = LeaseTable::new(10, 16);
        assert_eq!(t.ask("a"), 4, "a new caller");
        t.grant("a", "r1", 4, 1, 1, 0, 100);
        assert_eq!(t.ask("a"), 8);
        assert_eq!(t.ask("a"), 16);
        assert_eq!(t.ask("a"), 16, "capped");
        t.expire(200);
        t.grant("a", "r2", 2, 1, 1, 200, 100);
        assert_eq!(t.expire(400), ["r2.2"]);
        assert_eq!(t.ask("a"), 4, "halved each time slots went unused");
        assert_eq!(LeaseTable::new(10, 0).ask("a"), 0, "leases off");
    }

    #[test]
    fn the_table_is_bounded() {
        let mut t = LeaseTable::new(2, 16);
        t.grant("a", "r1", 2, 1, 1, 0, 100);
        t.grant("b", "r2", 2, 1, 1, 0, 200);
        assert_eq!(t.grant("c", "r3", 2, 1, 1, 0, 300), ["r1.2"]);
        assert_eq!(t.len(), 2);
        assert!(
            t.grant("d", "r4", 1, 1, 1, 0, 100).is_empty(),
            "one slot is no lease"
        );
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
