//! The root context: parses and validates the plugin configuration once per VM, hands
//! every request the shared runtime and identity state, and keeps fetched JWKS fresh on a
//! timer (one fetch per refresh across all workers, see `jwks_sync`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType, MapType};

use super::abi;
use super::http::Http;
use super::metrics::Metrics;
use super::proxy_host::{now_ms, now_secs, ProxyHost};
use super::shared::{self, EnvoyShared};
use super::upstream::UpstreamHttp;
use crate::accounting::delivery::{Answer, Delivery, Outcome};
use crate::admission::authorize::{self, AuthorizeRequest, Decision};
use crate::admission::lease::Renewal;
use crate::admission::policy_callout;
use crate::auth_state::AuthState;
use crate::config::{Config, JwksUri, KeySource};
use crate::host::Counter;
use crate::identity::jwks::KeySet;
use crate::identity::jwks_sync;
use crate::providers::key_injection::{self, Injector};
use crate::runtime::Runtime;

/// How often the root checks shared data for new keys and whether a refresh is due; usage
/// batches go out on the same timer (or faster, with a shorter `usage.flush_ms`).
const TICK: Duration = Duration::from_secs(1);

/// The shared queue usage records travel through, from every worker to the roots.
const USAGE_QUEUE: &str = "chokepoint.usage";

#[derive(Default)]
pub struct Root {
    runtime: Option<Rc<Runtime>>,
    auth: Option<Rc<RefCell<AuthState>>>,
    metrics: Rc<Metrics>,
    /// Pending JWKS fetches: callout token -> issuer.
    fetches: HashMap<u32, String>,
    usage_queue: Option<u32>,
    delivery: Delivery,
    /// Set when this plugin instance is the per-attempt key injector.
    injector: Option<Rc<Injector>>,
    /// Lease renewals out: callout token -> (renewal, its request id).
    renewals: HashMap<u32, (Renewal, String)>,
    /// When the slow part of the tick (keys, usage, expiry) last ran, ms.
    last_slow_ms: u64,
    last_expire_ms: u64,
    /// The timer's period now (see `lease::tick_period`).
    tick: Duration,
}

impl Root {
    /// The timer's period for what this worker holds now: fast only while it holds lease
    /// slots.
    fn wanted_tick(&self) -> Duration {
        let slow = TICK.min(rt_flush(&self.runtime));
        let leases_on = self
            .runtime
            .as_ref()
            .is_some_and(|rt| !rt.config.identity_only && rt.config.policy.lease_slots >= 2);
        let holds = self
            .auth
            .as_ref()
            .is_some_and(|a| a.borrow().leases.holds_slots());
        crate::admission::lease::tick_period(leases_on, holds, slow)
    }

    fn remote_issuers(&self) -> Vec<(String, JwksUri)> {
        let Some(rt) = &self.runtime else {
            return Vec::new();
        };
        rt.config
            .issuers
            .iter()
            .filter_map(|i| match &i.keys {
                KeySource::Remote(u) => Some((i.issuer.clone(), u.clone())),
                KeySource::Inline(_) => None,
            })
            .collect()
    }

    /// Picks up a JWKS another worker (or a refetch) stored, if it is newer than ours.
    fn sync_from_shared(&self, issuer: &str, doc: &jwks_sync::Doc) {
        let Some(auth) = &self.auth else { return };
        if auth.borrow().keys.version(issuer) == Some(doc.version) {
            return;
        }
        match KeySet::from_fetched(&doc.jwks) {
            Ok((set, _)) => {
                let mut auth = auth.borrow_mut();
                auth.keys.replace(issuer, set, doc.version);
                auth.cache.clear();
            }
            Err(e) => log::warn!("stored JWKS for {issuer} is unusable: {e}"),
        }
    }
}

fn rt_flush(rt: &Option<Rc<Runtime>>) -> Duration {
    rt.as_ref().map_or(TICK, |rt| rt.config.usage.flush)
}

impl Root {
    /// Lease slots past their time go back to the policy service with the next batch.
    fn release_expired_leases(&mut self, now_ms: u64) {
        let Some(auth) = &self.auth else {
            return;
        };
        let expired = auth.borrow_mut().leases.expire(now_ms);
        self.enqueue_releases(&expired);
    }

    /// Sends the next batch of usage records to the ledger, if one is due.
    fn deliver_usage(&mut self) {
        let (Some(rt), Some(queue)) = (&self.runtime, self.usage_queue) else {
            return;
        };
        let now = now_ms();
        if !self.delivery.ready(now) {
            return;
        }
        let bounds = crate::accounting::delivery::Bounds {
            max_items: rt.config.usage.batch_max,
            max_bytes: rt.config.usage.batch_max_bytes,
        };
        self.delivery
            .fill(bounds, || abi::dequeue(queue).ok().flatten());
        if self.delivery.is_empty() {
            return;
        }
        let body = self.delivery.body();
        let headers = policy_callout::headers(rt, &rt.config.usage.path, None);
        match hostcalls::dispatch_http_call(
            &rt.config.policy.cluster,
            headers,
            Some(&body),
            vec![],
            rt.config.usage.timeout,
        ) {
            Ok(call) => self.delivery.sent(call),
            Err(e) => {
                log::warn!(
                    "cannot send usage to {}: {e:?}; will retry",
                    rt.config.policy.cluster
                );
                self.delivery.failed(now);
                self.metrics.increment(Counter::UsageDeliveryFailed);
            }
        }
    }
}

impl Root {
    /// The ledger answered a usage batch: done, taken apart, dropped, or kept for a retry.
    fn usage_answered(&mut self, body_size: usize) {
        let (status, body) = super::proxy_host::call_response(body_size);
        let pending = self.delivery.len();
        match self
            .delivery
            .answered(Answer::read(status, &body), now_ms())
        {
            Outcome::Delivered {
                items,
                dead_lettered,
            } => {
                self.metrics.add(Counter::UsageDelivered, items as u64);
                if dead_lettered > 0 {
                    log::warn!(
                        "the ledger kept {dead_lettered} usage record(s) as invalid (its dead-letter stream)"
                    );
                    self.metrics.add(Counter::UsageDeadLettered, dead_lettered);
                }
                // A big batch (or one that left an item for the next): more are likely
                // waiting. Send the next one now rather than at the next tick, or a
                // sustained load outruns delivery and the shared queue (Envoy's memory)
                // grows. Bundles make batches land short of `batch_max`, hence half.
                let busy = self
                    .runtime
                    .as_ref()
                    .is_some_and(|rt| items >= rt.config.usage.batch_max / 2);
                if busy || self.delivery.has_carry() {
                    self.deliver_usage();
                }
            }
            Outcome::Split { items } => {
                log::warn!(
                    "the ledger refused a usage batch of {items} item(s) ({status:?}); sending them one at a time"
                );
                self.deliver_usage();
            }
            Outcome::Dropped { items, request_id } => {
                log::error!(
                    "the ledger refused usage record {} ({status:?}); dropped from delivery, kept in the access log",
                    request_id.as_deref().unwrap_or("(unreadable)")
                );
                self.metrics.add(Counter::UsageDeadLettered, items as u64);
                self.deliver_usage();
            }
            Outcome::Retry => {
                log::warn!(
                    "usage batch of {pending} record(s) not accepted by the ledger ({status:?}); will retry"
                );
                self.metrics.increment(Counter::UsageDeliveryFailed);
            }
        }
    }
}

impl Root {
    /// Sends the lease renewals that came due since the last tick.
    fn renew_leases(&mut self, now_ms: u64) {
        let (Some(rt), Some(auth)) = (&self.runtime, &self.auth) else {
            return;
        };
        let policy = &rt.config.policy;
        if policy.lease_slots < 2 {
            return;
        }
        let in_flight = u64::try_from(policy.timeout.as_millis()).unwrap_or(u64::MAX);
        let due = auth.borrow_mut().leases.renewals(now_ms, in_flight);
        for renewal in due {
            let n: u128 = jwt_simple::reexports::rand::random();
            let request_id = format!("{n:032x}");
            let a = &renewal.ask;
            let request = AuthorizeRequest {
                request_id: &request_id,
                user: &a.user,
                tenant: a.tenant.as_deref(),
                groups: &a.groups,
                model: a.model.as_deref(),
                model_key: a.model_key.as_deref(),
                priced: a.priced,
                cost_center: a.cost_center.as_deref(),
                provider: &a.provider,
                stream: a.stream,
                reserve_tokens: a.reserve_tokens,
                reserve_cost_micros: a.reserve_cost_micros,
                lease_slots: renewal.slots,
                lease_return_ms: crate::admission::lease::return_within_ms(
                    policy.lease_ttl,
                    rt.config.usage.flush,
                ),
            };
            let Ok(body) = serde_json::to_vec(&request) else {
                auth.borrow_mut().leases.renewal_failed(&renewal, now_ms);
                continue;
            };
            let headers =
                policy_callout::headers(rt, policy_callout::AUTHORIZE_PATH, Some(&request_id));
            match hostcalls::dispatch_http_call(
                &policy.cluster,
                headers,
                Some(&body),
                vec![],
                policy.timeout,
            ) {
                Ok(token) => {
                    self.renewals.insert(token, (renewal, request_id));
                }
                Err(e) => {
                    log::warn!("cannot renew a lease via {}: {e:?}", policy.cluster);
                    auth.borrow_mut().leases.renewal_failed(&renewal, now_ms);
                }
            }
        }
    }

    /// The policy service answered a renewal: keep the slots, or back off.
    fn renewal_answered(&mut self, renewal: &Renewal, request_id: &str, body_size: usize) {
        let (Some(rt), Some(auth)) = (&self.runtime, &self.auth) else {
            return;
        };
        let (status, body) = super::proxy_host::call_response(body_size);
        let now = now_ms();
        match authorize::decide(status, &body) {
            Decision::Allow(quota) => {
                let ttl = u64::try_from(rt.config.policy.lease_ttl.as_millis()).unwrap_or(u64::MAX);
                let released =
                    auth.borrow_mut()
                        .leases
                        .renewed(renewal, request_id, quota.slots, now, ttl);
                self.metrics.increment(Counter::LeaseRenewed);
                self.enqueue_releases(&released);
            }
            Decision::Deny { .. } | Decision::Unavailable(_) => {
                auth.borrow_mut().leases.renewal_failed(renewal, now);
            }
        }
    }

    /// Slots to give back travel with the usage records, as a request's do.
    fn enqueue_releases(&self, slots: &[String]) {
        let mut host = ProxyHost {
            metrics: &self.metrics,
            usage_queue: self.usage_queue,
        };
        crate::flow::release_slots(&mut host, slots);
    }

    /// What this worker's requests left in the outbox goes into the shared queue.
    fn flush_outbox(&self) {
        if let Some(queue) = self.usage_queue {
            if !shared::outbox_flush(queue) {
                self.metrics.increment(Counter::UsageQueueFailure);
            }
        }
    }
}

impl Context for Root {
    /// A configuration being replaced (ECDS) or Envoy shutting down: the leases this root
    /// held are released with the next batch any worker sends.
    fn on_done(&mut self) -> bool {
        self.release_expired_leases(u64::MAX);
        self.flush_outbox();
        // A batch not yet acknowledged goes back to the queue for the next root: the
        // ledger drops any record it already booked, so nothing is charged twice.
        if let Some(queue) = self.usage_queue {
            for item in self.delivery.take_all() {
                if !shared::enqueue(queue, &item) {
                    self.metrics.increment(Counter::UsageQueueFailure);
                }
            }
        }
        true
    }

    fn on_http_call_response(
        &mut self,
        token_id: u32,
        _num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        if self.delivery.is_in_flight(token_id) {
            self.usage_answered(body_size);
            return;
        }
        if let Some((renewal, request_id)) = self.renewals.remove(&token_id) {
            self.renewal_answered(&renewal, &request_id, body_size);
            return;
        }
        let Some(issuer) = self.fetches.remove(&token_id) else {
            return;
        };
        let status = abi::header(MapType::HttpCallResponseHeaders, ":status");
        let body = abi::buffer(BufferType::HttpCallResponseBody, 0, body_size).unwrap_or_default();
        let now = now_secs();
        let mut sd = EnvoyShared;
        match (status.as_deref(), KeySet::from_fetched(&body)) {
            (Some("200"), Ok((_, skipped))) => {
                if skipped > 0 {
                    log::info!("JWKS for {issuer}: skipped {skipped} key(s) of unsupported types");
                }
                jwks_sync::publish(&mut sd, &issuer, now, &body);
                jwks_sync::release(&mut sd, &issuer);
                self.metrics.increment(Counter::JwksFetched);
                if let Some(doc) = jwks_sync::read_doc(&sd, &issuer) {
                    self.sync_from_shared(&issuer, &doc);
                }
            }
            (status, parsed) => {
                let have_keys = jwks_sync::read_doc(&sd, &issuer).is_some();
                log::warn!(
                    "JWKS fetch for {issuer} failed (status {}{}); {}",
                    status.unwrap_or("none: timeout or connection failure"),
                    parsed.err().map(|e| format!(", {e}")).unwrap_or_default(),
                    if have_keys {
                        "keeping the last good keys"
                    } else {
                        "no keys yet: its tokens get 503"
                    }
                );
                jwks_sync::backoff(&mut sd, &issuer, have_keys, now);
                self.metrics.increment(Counter::JwksFetchFailed);
            }
        }
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, plugin_configuration_size: usize) -> bool {
        let bytes = abi::buffer(
            BufferType::PluginConfiguration,
            0,
            plugin_configuration_size,
        )
        .unwrap_or_default();
        if key_injection::is_injector_config(&bytes) {
            return match Injector::parse(&bytes, |k| std::env::var(k).ok()) {
                Ok(inj) => {
                    log::info!("chokepoint key injector configured: {inj:?}");
                    self.injector = Some(Rc::new(inj));
                    self.metrics = Rc::new(Metrics::define());
                    true
                }
                Err(e) => {
                    log::error!("{e}");
                    false
                }
            };
        }
        let runtime =
            Config::parse(&bytes).and_then(|c| Runtime::new(c, |k| std::env::var(k).ok()));
        match runtime {
            Ok(rt) => {
                log::info!(
                    "chokepoint configured: {} issuer(s), {} provider(s)",
                    rt.config.issuers.len(),
                    rt.config.providers.len()
                );
                self.auth = Some(Rc::new(RefCell::new(AuthState::new(&rt))));
                self.runtime = Some(Rc::new(rt));
                let tick = self.wanted_tick();
                self.metrics = Rc::new(Metrics::define());
                match hostcalls::register_shared_queue(USAGE_QUEUE) {
                    Ok(q) => self.usage_queue = Some(q),
                    Err(e) => {
                        log::error!("cannot register the usage queue: {e:?}");
                        return false;
                    }
                }
                if hostcalls::set_tick_period(tick).is_err() {
                    log::error!("cannot start the timer (JWKS refresh, usage delivery)");
                    return false;
                }
                self.tick = tick;
                true
            }
            Err(e) => {
                // Rejecting the configuration makes Envoy refuse it at load, naming the field.
                log::error!("{e}");
                false
            }
        }
    }

    fn on_tick(&mut self) {
        let now_ms = now_ms();
        self.renew_leases(now_ms);
        self.flush_outbox();
        if now_ms.saturating_sub(self.last_expire_ms) >= crate::admission::lease::EXPIRE_EVERY_MS {
            self.last_expire_ms = now_ms;
            self.release_expired_leases(now_ms);
        }
        let tick = self.wanted_tick();
        if tick != self.tick && hostcalls::set_tick_period(tick).is_ok() {
            self.tick = tick;
        }
        let slow = TICK.min(rt_flush(&self.runtime));
        let slow_ms = u64::try_from(slow.as_millis()).unwrap_or(u64::MAX);
        if now_ms.saturating_sub(self.last_slow_ms) < slow_ms {
            return;
        }
        self.last_slow_ms = now_ms;
        self.deliver_usage();
        let now = now_secs();
        let mut sd = EnvoyShared;
        for (issuer, uri) in self.remote_issuers() {
            let doc = jwks_sync::read_doc(&sd, &issuer);
            if let Some(doc) = &doc {
                self.sync_from_shared(&issuer, doc);
            }
            if self.fetches.values().any(|i| *i == issuer) {
                continue;
            }
            if !jwks_sync::should_fetch(&mut sd, &issuer, doc.as_ref(), uri.refresh.as_secs(), now)
            {
                continue;
            }
            let headers = vec![
                (":method", "GET"),
                (":path", uri.path.as_str()),
                (":authority", uri.authority.as_str()),
            ];
            match hostcalls::dispatch_http_call(&uri.cluster, headers, None, vec![], uri.timeout) {
                Ok(token) => {
                    self.fetches.insert(token, issuer);
                }
                Err(e) => {
                    log::warn!(
                        "cannot fetch JWKS for {issuer} from cluster {}: {e:?}",
                        uri.cluster
                    );
                    jwks_sync::backoff(&mut sd, &issuer, doc.is_some(), now);
                    self.metrics.increment(Counter::JwksFetchFailed);
                }
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        if let Some(inj) = &self.injector {
            return Some(Box::new(UpstreamHttp::new(
                Rc::clone(inj),
                Rc::clone(&self.metrics),
            )));
        }
        let rt = self.runtime.as_ref()?;
        let auth = self.auth.as_ref()?;
        Some(Box::new(Http::new(
            Rc::clone(rt),
            Rc::clone(auth),
            Rc::clone(&self.metrics),
            self.usage_queue,
        )))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
