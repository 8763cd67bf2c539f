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
//!
//! Renewal: when a busy caller's slots run down to half an ask, the root renews the
//! lease in the background (the same decision request under a fresh id), so requests
//! keep finding slots instead of calling out once they run out. At most one ask per
//! caller is out at a time, a request's or a renewal: concurrent misses used to ask for
//! a lease each, and the surplus went back unused.

use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use serde::Serialize;

/// The ask a caller starts from.
const FIRST_ASK: u64 = 4;

/// How long a busy caller's slots must last once a renewal is queued: the root's
/// renewal tick plus a renewal's round trip under load. A caller taking slots faster
/// than half an ask covers in that time is renewed earlier than at half an ask (at a
/// fixed 1,000 requests/s per worker with 16 slots, 7.7 % of requests found no slot and
/// called out themselves when renewals waited for half an ask).
pub const RENEW_LOOKAHEAD_MS: u64 = 20;

/// After a renewal was refused (a limit reached) or failed, how long before another.
const RENEW_BACKOFF_MS: u64 = 1_000;

/// The root's timer while this worker holds lease slots: a busy caller's renewal must be
/// sent well within [`RENEW_LOOKAHEAD_MS`].
pub const RENEW_TICK: Duration = Duration::from_millis(5);

/// The root's timer with leases on but none held: the first slots a request gets are
/// renewed from the tick after, at most this late (the caller's requests ask for more
/// themselves meanwhile).
pub const IDLE_LEASE_TICK: Duration = Duration::from_millis(100);

/// How often the root hands expired slots back for release (every caller is walked).
pub const EXPIRE_EVERY_MS: u64 = 250;

/// At most how long after a grant a lease's unused slots are released at the policy
/// service: their lifetime, the root's next expiry pass, the next usage delivery (every
/// `flush_ms`) and its round trip.
pub fn return_within_ms(lease_ttl: Duration, flush: Duration) -> u64 {
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    ms(lease_ttl)
        .saturating_add(EXPIRE_EVERY_MS)
        .saturating_add(ms(flush))
        .saturating_add(RENEW_LOOKAHEAD_MS)
}

/// How often the root's timer should run: every [`RENEW_TICK`] only while slots are held,
/// so an idle proxy, or one in identity-only mode, is not woken 200 times a second per
/// worker; `slow` is the period the rest of the timer's work needs.
pub fn tick_period(leases_on: bool, holds_slots: bool, slow: Duration) -> Duration {
    match (leases_on, holds_slots) {
        (true, true) => RENEW_TICK.min(slow),
        (true, false) => IDLE_LEASE_TICK.min(slow),
        (false, _) => slow,
    }
}

/// What a renewal asks the policy service for: the decision request of the caller's
/// last granted lease, without its request id and slot count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaseAsk {
    pub user: String,
    pub tenant: Option<String>,
    pub groups: Vec<String>,
    pub model: Option<String>,
    pub model_key: Option<String>,
    pub priced: bool,
    pub cost_center: Option<String>,
    pub provider: String,
    pub stream: bool,
    pub reserve_tokens: u64,
    pub reserve_cost_micros: u64,
    /// An MCP caller's server and tool (see `AuthorizeRequest.mcp`).
    pub mcp: Option<(String, Option<String>)>,
}

/// A renewal to send: the caller's key, what to ask, and how many slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Renewal {
    pub key: String,
    pub ask: Rc<LeaseAsk>,
    pub slots: u64,
}

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
    /// An ask (a request's or a renewal) is out until then: no second one meanwhile.
    asking_until_ms: u64,
    /// What a renewal asks for, from the caller's last granted lease.
    template: Option<Rc<LeaseAsk>>,
    /// Queued in the table's `due` list.
    due: bool,
    /// No renewal before then.
    renew_after_ms: u64,
    /// The caller's pace since its last grant: slots taken, when the grant came, and how
    /// long its slots live. A renewal is only worth it if that pace would use it up.
    taken: u64,
    granted_ms: u64,
    ttl_ms: u64,
}

impl Caller {
    fn new(ask: u64) -> Caller {
        Caller {
            slots: Vec::new(),
            ask,
            asking_until_ms: 0,
            template: None,
            due: false,
            renew_after_ms: 0,
            taken: 0,
            granted_ms: 0,
            ttl_ms: 0,
        }
    }
}

#[derive(Debug)]
pub struct LeaseTable {
    callers: HashMap<String, Caller>,
    max_callers: usize,
    max_slots: u64,
    /// Callers whose slots ran low, in the order they did.
    due: Vec<String>,
}

impl LeaseTable {
    /// At most `max_callers` callers; at most `max_slots` asked for (and held) per caller.
    pub fn new(max_callers: usize, max_slots: u64) -> LeaseTable {
        LeaseTable {
            callers: HashMap::new(),
            max_callers,
            max_slots,
            due: Vec::new(),
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
    /// fresh one that covers it. Taking one that leaves half an ask or less queues the
    /// caller for a renewal.
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
        let slot = caller.slots.swap_remove(i).id;
        caller.taken += 1;
        let elapsed = now_ms.saturating_sub(caller.granted_ms).max(1);
        // Slots this caller's pace takes before a renewal queued now could land.
        let need = caller.taken.saturating_mul(RENEW_LOOKAHEAD_MS) / elapsed;
        let low = caller.slots.len() as u64 <= (caller.ask / 2).max(need);
        // At this pace, would a renewal's slots be taken before they expire? A caller
        // sending a few requests a minute would only reserve slots to release them.
        let busy = caller.taken.saturating_mul(caller.ttl_ms) / elapsed >= caller.ask;
        if low
            && busy
            && !caller.due
            && caller.template.is_some()
            && now_ms >= caller.asking_until_ms
            && now_ms >= caller.renew_after_ms
        {
            caller.due = true;
            self.due.push(key.to_string());
        }
        Some(slot)
    }

    /// How many slots to ask for on `key`'s next decision; 0 (just this request) while
    /// another ask for the caller is out, which then counts as out until `now_ms +
    /// in_flight_ms`. Asking means the caller's slots ran out (or did not fit), so the
    /// window grows.
    pub fn ask(&mut self, key: &str, now_ms: u64, in_flight_ms: u64) -> u64 {
        if self.max_slots < 2 {
            return 0;
        }
        let first = FIRST_ASK.min(self.max_slots);
        if !self.callers.contains_key(key) && self.callers.len() < self.max_callers {
            self.callers.insert(key.to_string(), Caller::new(first));
        }
        match self.callers.get_mut(key) {
            Some(c) if now_ms < c.asking_until_ms => 0,
            Some(c) => {
                c.asking_until_ms = now_ms.saturating_add(in_flight_ms);
                let ask = c.ask;
                c.ask = (c.ask * 2).min(self.max_slots);
                ask
            }
            None => first,
        }
    }

    /// A request's ask was answered without a lease (denied, or the service failed).
    pub fn answered(&mut self, key: &str) {
        if let Some(c) = self.callers.get_mut(key) {
            c.asking_until_ms = 0;
        }
    }

    /// Keeps the spare slots of a granted lease (`slots` in all; the first, `request_id`
    /// itself, is the request that asked). `template` is what a renewal of this lease
    /// asks for. Returns slots to release: the oldest beyond the per-caller bound, and a
    /// whole caller evicted when the table is full.
    pub fn grant(
        &mut self,
        key: &str,
        request_id: &str,
        slots: u64,
        template: LeaseAsk,
        now_ms: u64,
        ttl_ms: u64,
    ) -> Vec<String> {
        let mut release = Vec::new();
        if let Some(c) = self.callers.get_mut(key) {
            c.asking_until_ms = 0;
        }
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
        let caller = self
            .callers
            .entry(key.to_string())
            .or_insert_with(|| Caller::new((first * 2).min(self.max_slots)));
        (caller.taken, caller.granted_ms, caller.ttl_ms) = (0, now_ms, ttl_ms);
        let valid_until_ms = now_ms.saturating_add(ttl_ms);
        let (tokens, cost_micros) = (template.reserve_tokens, template.reserve_cost_micros);
        // Highest first, so the newest, lowest-numbered slots are taken first.
        caller.slots.extend((2..=slots).rev().map(|i| Slot {
            id: format!("{request_id}.{i}"),
            tokens,
            cost_micros,
            valid_until_ms,
        }));
        if caller.template.as_deref() != Some(&template) {
            caller.template = Some(Rc::new(template));
        }
        release.extend(self.trim(key));
        release
    }

    /// The renewals due now, each then counted as out until `now_ms + in_flight_ms`.
    pub fn renewals(&mut self, now_ms: u64, in_flight_ms: u64) -> Vec<Renewal> {
        let mut out = Vec::new();
        for key in std::mem::take(&mut self.due) {
            let Some(c) = self.callers.get_mut(&key) else {
                continue;
            };
            c.due = false;
            let Some(template) = c.template.clone() else {
                continue;
            };
            if now_ms < c.asking_until_ms || now_ms < c.renew_after_ms {
                continue;
            }
            c.asking_until_ms = now_ms.saturating_add(in_flight_ms);
            out.push(Renewal {
                key,
                ask: template,
                slots: c.ask.max(2),
            });
        }
        out
    }

    /// A renewal was granted `slots` slots under `request_id`; all of them are spare (no
    /// request asked), `request_id` itself included. Returns slots to release, as
    /// `grant` does, or all of them if the caller was evicted meanwhile.
    pub fn renewed(
        &mut self,
        renewal: &Renewal,
        request_id: &str,
        slots: u64,
        now_ms: u64,
        ttl_ms: u64,
    ) -> Vec<String> {
        let Some(c) = self.callers.get_mut(&renewal.key) else {
            let mut all = vec![request_id.to_string()];
            all.extend((2..=slots).map(|i| format!("{request_id}.{i}")));
            return all;
        };
        c.asking_until_ms = 0;
        (c.taken, c.granted_ms, c.ttl_ms) = (0, now_ms, ttl_ms);
        let valid_until_ms = now_ms.saturating_add(ttl_ms);
        let (tokens, cost_micros) = (renewal.ask.reserve_tokens, renewal.ask.reserve_cost_micros);
        c.slots.extend(
            (2..=slots)
                .rev()
                .map(|i| format!("{request_id}.{i}"))
                .chain(std::iter::once(request_id.to_string()))
                .map(|id| Slot {
                    id,
                    tokens,
                    cost_micros,
                    valid_until_ms,
                }),
        );
        self.trim(&renewal.key)
    }

    /// A renewal was refused (a limit reached) or failed: no other for a while; the
    /// caller's requests ask for themselves meanwhile.
    pub fn renewal_failed(&mut self, renewal: &Renewal, now_ms: u64) {
        if let Some(c) = self.callers.get_mut(&renewal.key) {
            c.asking_until_ms = 0;
            c.renew_after_ms = now_ms.saturating_add(RENEW_BACKOFF_MS);
        }
    }

    /// Releases the oldest slots of `key` beyond twice the maximum ask.
    fn trim(&mut self, key: &str) -> Vec<String> {
        let cap = usize::try_from(self.max_slots.saturating_mul(2)).unwrap_or(usize::MAX);
        match self.callers.get_mut(key) {
            Some(c) if c.slots.len() > cap => {
                let extra = c.slots.len() - cap;
                c.slots.drain(..extra).map(|s| s.id).collect()
            }
            _ => Vec::new(),
        }
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
            !c.slots.is_empty() || c.ask > FIRST_ASK || now_ms < c.asking_until_ms
        });
        release
    }

    pub fn len(&self) -> usize {
        self.callers.len()
    }

    /// Whether any caller holds a slot or waits for a renewal.
    pub fn holds_slots(&self) -> bool {
        !self.due.is_empty() || self.callers.values().any(|c| !c.slots.is_empty())
    }

    pub fn is_empty(&self) -> bool {
        self.callers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask_for(tokens: u64, cost_micros: u64) -> LeaseAsk {
        LeaseAsk {
            user: "u".into(),
            tenant: None,
            groups: Vec::new(),
            model: Some("gpt-4o".into()),
            model_key: Some("gpt-4o".into()),
            priced: true,
            cost_center: None,
            provider: "openai".into(),
            stream: false,
            reserve_tokens: tokens,
            reserve_cost_micros: cost_micros,
            mcp: None,
        }
    }

    /// `grant` with a template of that worst case.
    #[allow(clippy::too_many_arguments)]
    fn grant(
        t: &mut LeaseTable,
        key: &str,
        id: &str,
        slots: u64,
        tokens: u64,
        cost: u64,
        now: u64,
        ttl: u64,
    ) -> Vec<String> {
        t.grant(key, id, slots, ask_for(tokens, cost), now, ttl)
    }

    #[test]
    fn slots_serve_fitting_requests_while_fresh() {
        let mut t = LeaseTable::new(10, 16);
        let k = LeaseTable::key("u", Some("acme"), None, Some("gpt-4o"));
        assert!(grant(&mut t, &k, "r1", 4, 100, 50, 1_000, 5_000).is_empty());
        assert_eq!(t.take(&k, 100, 50, 1_001).as_deref(), Some("r1.2"));
        assert_eq!(t.take(&k, 101, 50, 1_002), None, "a bigger worst case");
        assert_eq!(t.take(&k, 10, 51, 1_002), None, "a costlier one");
        assert_eq!(t.take("other", 1, 1, 1_002), None);
        assert_eq!(t.take(&k, 1, 1, 1_003).as_deref(), Some("r1.3"));
        assert_eq!(t.take(&k, 1, 1, 6_000), None, "expired");
        assert_eq!(t.expire(6_000), ["r1.4"]);
    }

    #[test]
    fn the_timer_is_fast_only_while_slots_are_held() {
        let slow = Duration::from_secs(1);
        // (leases on, slots held, usage flush, period)
        let cases = [
            (true, true, slow, RENEW_TICK),
            (true, false, slow, IDLE_LEASE_TICK),
            (false, false, slow, slow),
            (false, true, slow, slow),
            (
                true,
                false,
                Duration::from_millis(50),
                Duration::from_millis(50),
            ),
            (
                true,
                true,
                Duration::from_millis(2),
                Duration::from_millis(2),
            ),
        ];
        for (on, held, flush, want) in cases {
            assert_eq!(tick_period(on, held, flush), want, "{on} {held} {flush:?}");
        }

        let mut t = LeaseTable::new(10, 16);
        let k = LeaseTable::key("u", None, None, Some("gpt-4o"));
        assert!(!t.holds_slots());
        grant(&mut t, &k, "r1", 3, 1, 1, 1_000, 2_000);
        assert!(t.holds_slots());
        assert_eq!(t.expire(3_000), ["r1.3", "r1.2"]);
        assert!(
            !t.holds_slots(),
            "nothing held, nothing due: the timer slows down"
        );
    }

    #[test]
    fn concurrent_leases_add_up_instead_of_replacing() {
        let mut t = LeaseTable::new(10, 4);
        assert!(grant(&mut t, "a", "r1", 3, 1, 1, 0, 100).is_empty());
        assert!(grant(&mut t, "a", "r2", 3, 5, 5, 10, 100).is_empty());
        // A request needing 5 only fits r2's slots.
        assert_eq!(t.take("a", 5, 5, 20).as_deref(), Some("r2.2"));
        assert_eq!(t.take("a", 1, 1, 20).as_deref(), Some("r2.3"));
        assert_eq!(t.take("a", 1, 1, 20).as_deref(), Some("r1.2"));
        // Past twice the maximum per caller, the oldest go back.
        assert!(grant(&mut t, "a", "r3", 4, 1, 1, 30, 100).is_empty());
        assert!(grant(&mut t, "a", "r4", 4, 1, 1, 30, 100).is_empty());
        assert_eq!(grant(&mut t, "a", "r5", 4, 1, 1, 30, 100), ["r1.3", "r3.4"]);
        // r1's last slot expired at 100, the rest at 130.
        assert_eq!(t.expire(130).len(), 8);
    }

    #[test]
    fn the_ask_grows_when_used_up_and_shrinks_when_unused() {
        let mut t = LeaseTable::new(10, 16);
        assert_eq!(t.ask("a", 0, 0), 4, "a new caller");
        grant(&mut t, "a", "r1", 4, 1, 1, 0, 100);
        assert_eq!(t.ask("a", 0, 0), 8);
        assert_eq!(t.ask("a", 0, 0), 16);
        assert_eq!(t.ask("a", 0, 0), 16, "capped");
        t.expire(200);
        grant(&mut t, "a", "r2", 2, 1, 1, 200, 100);
        assert_eq!(t.expire(400), ["r2.2"]);
        assert_eq!(t.ask("a", 400, 0), 4, "halved each time slots went unused");
        assert_eq!(LeaseTable::new(10, 0).ask("a", 0, 0), 0, "leases off");
    }

    #[test]
    fn one_ask_per_caller_is_out_at_a_time() {
        let mut t = LeaseTable::new(10, 16);
        assert_eq!(t.ask("a", 0, 50), 4);
        assert_eq!(t.ask("a", 10, 50), 0, "the first ask is out");
        assert_eq!(t.ask("b", 10, 50), 4, "another caller asks for itself");
        grant(&mut t, "a", "r1", 4, 1, 1, 20, 1_000);
        assert_eq!(t.ask("a", 21, 50), 8, "answered: the next may ask");
        assert_eq!(t.ask("a", 22, 50), 0);
        t.answered("a");
        assert_eq!(t.ask("a", 23, 50), 16, "a denial also ends the ask");
        assert_eq!(t.ask("a", 100, 50), 16, "an ask never answered times out");
    }

    #[test]
    fn low_slots_renew_in_the_background() {
        let mut t = LeaseTable::new(10, 8);
        assert!(t.renewals(0, 50).is_empty());
        assert_eq!(t.ask("a", 0, 50), 4);
        grant(&mut t, "a", "r1", 4, 7, 3, 0, 1_000);
        // Three spare slots, ask now 8: taking one leaves 2 <= 8 / 2.
        assert_eq!(t.take("a", 1, 1, 1).as_deref(), Some("r1.2"));
        assert_eq!(t.take("a", 1, 1, 2).as_deref(), Some("r1.3"));
        let due = t.renewals(3, 50);
        assert_eq!(due.len(), 1, "queued once: {due:?}");
        assert_eq!((due[0].key.as_str(), due[0].slots), ("a", 8));
        assert_eq!(*due[0].ask, ask_for(7, 3));
        assert_eq!(t.ask("a", 4, 50), 0, "the renewal is the caller's ask");
        assert!(t.renewals(4, 50).is_empty());
        assert!(t.renewed(&due[0], "n1", 3, 10, 1_000).is_empty());
        // All of the renewal's slots are spare, its own id included.
        let mut got: Vec<String> = (0..4).filter_map(|_| t.take("a", 7, 3, 11)).collect();
        got.sort();
        assert_eq!(got, ["n1", "n1.2", "n1.3", "r1.4"]);
        assert_eq!(t.take("a", 1, 1, 12), None);
    }

    #[test]
    fn a_fast_caller_renews_before_half_its_slots_are_gone() {
        let mut t = LeaseTable::new(10, 16);
        assert_eq!(t.ask("a", 0, 50), 4);
        grant(&mut t, "a", "r1", 16, 1, 1, 0, 2_000);
        // Six requests in 2 ms: 60 slots in the lookahead, far more than the 9 left.
        for now in [1, 1, 1, 2, 2, 2] {
            assert!(t.take("a", 1, 1, now).is_some());
        }
        assert_eq!(t.renewals(3, 50).len(), 1);
        // The same slots taken at 100 ms apart wait for half an ask.
        let mut t = LeaseTable::new(10, 16);
        t.ask("a", 0, 50);
        grant(&mut t, "a", "r1", 16, 1, 1, 0, 2_000);
        for i in 1..=6 {
            assert!(t.take("a", 1, 1, i * 100).is_some());
        }
        assert!(t.renewals(700, 50).is_empty());
    }

    #[test]
    fn a_slow_caller_is_not_renewed() {
        let mut t = LeaseTable::new(10, 8);
        assert_eq!(t.ask("a", 0, 50), 4);
        grant(&mut t, "a", "r1", 4, 1, 1, 0, 2_000);
        // One request every 700 ms: two slots per lease life, far short of an ask of 8.
        assert!(t.take("a", 1, 1, 700).is_some());
        assert!(t.take("a", 1, 1, 1_400).is_some());
        assert!(t.renewals(1_401, 50).is_empty(), "not worth reserving");
    }

    #[test]
    fn a_refused_renewal_backs_off() {
        let mut t = LeaseTable::new(10, 4);
        grant(&mut t, "a", "r1", 4, 1, 1, 0, 10_000);
        t.take("a", 1, 1, 1);
        t.take("a", 1, 1, 1);
        let due = t.renewals(2, 50);
        assert_eq!(due.len(), 1);
        t.renewal_failed(&due[0], 5);
        t.take("a", 1, 1, 6);
        assert!(t.renewals(7, 50).is_empty(), "backing off");
        grant(&mut t, "a", "r2", 4, 1, 1, 1_100, 10_000);
        t.take("a", 1, 1, 1_101);
        t.take("a", 1, 1, 1_101);
        assert_eq!(t.renewals(1_102, 50).len(), 1, "after the backoff");
    }

    #[test]
    fn a_renewal_for_an_evicted_caller_goes_back_whole() {
        let mut t = LeaseTable::new(1, 4);
        grant(&mut t, "a", "r1", 4, 1, 1, 0, 10_000);
        t.take("a", 1, 1, 1);
        t.take("a", 1, 1, 1);
        let due = t.renewals(2, 50);
        assert_eq!(
            grant(&mut t, "b", "r2", 2, 1, 1, 3, 100),
            ["r1.4"],
            "a evicted"
        );
        assert_eq!(t.renewed(&due[0], "n1", 2, 4, 100), ["n1", "n1.2"]);
    }

    #[test]
    fn the_table_is_bounded() {
        let mut t = LeaseTable::new(2, 16);
        grant(&mut t, "a", "r1", 2, 1, 1, 0, 100);
        grant(&mut t, "b", "r2", 2, 1, 1, 0, 200);
        assert_eq!(grant(&mut t, "c", "r3", 2, 1, 1, 0, 300), ["r1.2"]);
        assert_eq!(t.len(), 2);
        assert!(
            grant(&mut t, "d", "r4", 1, 1, 1, 0, 100).is_empty(),
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
