//! One request's path through the gateway, as an explicit state machine held by value:
//! strip, authenticate (with a key refetch when a token names an unknown `kid`), read the
//! body, authorize (a lease slot held by this worker, else one callout), inject, forward.

use std::cell::RefCell;
use std::rc::Rc;

use crate::accounting::meter::Accounting;
use crate::accounting::usage::Format;
use crate::admission::authorize::{self, AuthorizeRequest, Decision};
use crate::admission::lease::{LeaseAsk, LeaseTable};
use crate::admission::output_bound;
use crate::auth_state::AuthState;
use crate::host::{Counter, Host, HostError};
use crate::identity::credentials;
use crate::identity::jwt::{AuthError, Verifier};
use crate::identity::pseudonym;
use crate::identity::token_cache::Verified;
use crate::identity::token_source;
use crate::providers::api::{self, Api, Endpoint};
use crate::providers::apis;
use crate::providers::reply::{self, Reply};
use crate::providers::request_body::{self, RequestFields};
use crate::runtime::Runtime;

/// Header carrying the anonymous user id to an internal provider (see `Provider::internal`).
pub const USER_HEADER: &str = "x-chokepoint-user";
/// Headers carrying the caller's tenant, groups and cost centre to an internal provider,
/// when the token names them.
pub const TENANT_HEADER: &str = "x-chokepoint-tenant";
pub const GROUPS_HEADER: &str = "x-chokepoint-groups";
pub const COST_CENTER_HEADER: &str = "x-chokepoint-cost-center";
/// Header naming the Envoy cluster of the chosen provider (a `cluster_header` route).
pub const CLUSTER_HEADER: &str = "x-chokepoint-cluster";
/// Response header with the gateway's id for the request, for support and audit.
pub const REQUEST_ID_HEADER: &str = "x-chokepoint-request-id";
/// The policy service's reason for refusing a model without a price under a dollar budget.
const UNPRICED_REASON: &str = "unpriced_model";
/// Filter state holding the usage record (`%FILTER_STATE(wasm.chokepoint_usage:PLAIN)%`).
pub const USAGE_FILTER_STATE: &str = "chokepoint_usage";

/// What the host should do with the stream after a callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Continue,
    Pause,
}

/// The verified caller, as the rest of the request needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user: String,
    pub tenant: Option<String>,
    pub groups: Vec<String>,
    pub cost_center: Option<String>,
    pub request_id: String,
}

/// What the headers told us, kept while the keys are being fetched.
#[derive(Debug, PartialEq, Eq)]
struct Pending {
    request_id: String,
    end_of_stream: bool,
    /// The body's full size once it has all arrived during the key fetch.
    body_done: Option<usize>,
}

#[derive(Debug, PartialEq, Eq)]
enum Phase {
    Headers,
    FetchingKeys {
        call: u32,
        issuer: String,
        token: String,
        pending: Pending,
    },
    ReadingBody {
        caller: Caller,
    },
    Authorizing {
        call: u32,
        caller: Caller,
    },
    Forwarding,
    /// A local reply was sent; nothing more happens to this request.
    Replied,
}

/// What the usage record needs to know about the request, gathered on the way.
#[derive(Debug, Default)]
struct Facts {
    request_id: String,
    trace_id: String,
    start_ms: u64,
    endpoint: Option<Endpoint>,
    /// Whose error shape the gateway's own replies take.
    shape: Api,
    /// The request's `:method`.
    method: String,
    provider: Option<usize>,
    caller: Option<Caller>,
    model: Option<String>,
    /// What ledgers and limits key the model under (see `Config::model_key`).
    model_key: Option<String>,
    /// The model has a price (or its endpoint no usage).
    priced: bool,
    /// The model's price, when it has one.
    price: Option<crate::accounting::pricing::Price>,
    /// The most output the request may produce: its cap times its outputs (the
    /// reservation's output part), bounding any estimate of an interrupted answer.
    output_bound: u64,
    /// The model named in the path (Gemini, Azure), when the API puts it there.
    path_model: Option<String>,
    /// The route's providers for this API, in fallback order (the first is `provider`).
    chain: Vec<usize>,
    /// The caller's quota from the policy service, returned as `x-ratelimit-*` headers.
    quota: Option<crate::admission::authorize::Quota>,
    /// The lease slot this request was admitted on (its reservation), if any.
    reservation_id: Option<String>,
    /// The worst case asked of the policy service: (tokens, cost), what a lease's slots
    /// then reserve each.
    reserve: (u64, u64),
    /// This request's decision asks for a lease (the caller's one ask out).
    asked_lease: bool,
    stream: bool,
    body_bytes: usize,
    /// Status of the gateway's own reply, when it answered instead of the provider.
    replied: Option<u32>,
    decision: &'static str,
    logged: bool,
}

pub struct Flow {
    rt: Rc<Runtime>,
    auth: Rc<RefCell<AuthState>>,
    phase: Phase,
    facts: Facts,
    accounting: Option<Accounting>,
}

impl Flow {
    pub fn new(rt: Rc<Runtime>, auth: Rc<RefCell<AuthState>>) -> Flow {
        Flow {
            rt,
            auth,
            phase: Phase::Headers,
            facts: Facts::default(),
            accounting: None,
        }
    }

    pub fn on_request_headers(&mut self, host: &mut dyn Host, end_of_stream: bool) -> Next {
        let result = self.headers(host, end_of_stream);
        self.settle(host, result)
    }

    pub fn on_request_body(
        &mut self,
        host: &mut dyn Host,
        body_size: usize,
        end_of_stream: bool,
    ) -> Next {
        let reading = match &mut self.phase {
            Phase::ReadingBody { .. } => true,
            Phase::FetchingKeys { pending, .. } => {
                if end_of_stream {
                    pending.body_done = Some(body_size);
                }
                false
            }
            _ => return Next::Continue,
        };
        if body_size > self.rt.config.max_request_body_bytes {
            host.count(Counter::BadRequest);
            let r = reply::payload_too_large(self.rt.config.max_request_body_bytes);
            return self.settle(host, Err(r));
        }
        if !end_of_stream || !reading {
            // Envoy keeps buffering until the whole body is there (and the keys are).
            return Next::Pause;
        }
        let result = self.body(host, body_size);
        self.settle(host, result)
    }

    /// A callout answered (or failed: `status` is `None`).
    pub fn on_callout_response(
        &mut self,
        host: &mut dyn Host,
        call: u32,
        status: Option<u32>,
        body: &[u8],
    ) {
        let result = match std::mem::replace(&mut self.phase, Phase::Forwarding) {
            Phase::Authorizing {
                call: expected,
                caller,
            } if expected == call => self.authorized(host, &caller, status, body),
            Phase::FetchingKeys {
                call: expected,
                issuer,
                token,
                pending,
            } if expected == call => {
                self.keys_fetched(host, &issuer, &token, pending, status, body)
            }
            other => {
                self.phase = other;
                return;
            }
        };
        match result {
            Ok(true) => {
                if host.resume_request().is_err() {
                    host.count(Counter::HostFailure);
                }
            }
            Ok(false) => {}
            Err(r) => self.reply(host, &r),
        }
    }

    fn headers(&mut self, host: &mut dyn Host, end_of_stream: bool) -> Result<Next, Reply> {
        let headers = host
            .request_headers()
            .map_err(|e| self.host_failed(host, e))?;
        let cfg = &self.rt.config;

        self.facts.start_ms = host.now_ms();
        self.facts.request_id = host.random_id();
        let mut request_id = String::new();
        let mut content_type = None;
        let mut encoded = false;
        let mut path = "";
        let mut method = "";
        let (mut anthropic_client, mut google_client) = (false, false);
        let mut to_strip: Vec<&str> = Vec::new();
        let token_headers: Vec<&str> = token_source::header_names(&cfg.token_sources).collect();
        for (name, value) in &headers {
            match name.as_str() {
                "x-request-id" => request_id = trace_id(value),
                "content-type" => content_type = Some(value.as_str()),
                "content-encoding" => encoded |= !request_body::is_identity_encoding(value),
                ":path" => path = value.as_str(),
                ":method" => method = value.as_str(),
                "anthropic-version" => anthropic_client = true,
                "x-goog-api-client" => google_client = true,
                _ => {}
            }
            if (credentials::must_strip(name) || token_headers.contains(&name.as_str()))
                && !to_strip.contains(&name.as_str())
            {
                to_strip.push(name);
            }
        }
        let token = token_source::find(&cfg.token_sources, &headers);
        // Strip before anything else can read or forward what the client sent.
        for name in &to_strip {
            host.set_request_header(name, None)
                .map_err(|e| self.host_failed(host, e))?;
        }
        let cleaned = api::clean_query(path);
        if let Ok(Some(stripped)) = &cleaned {
            host.set_request_header(":path", Some(stripped))
                .map_err(|e| self.host_failed(host, e))?;
        }
        self.facts.endpoint = apis::classify(path);
        self.facts.method = method.to_string();
        self.facts.shape =
            api::error_shape(self.facts.endpoint, path, anthropic_client, google_client);
        if cleaned.is_err() {
            host.count(Counter::BadRequest);
            return Err(reply::bad_request(
                "unsupported_response_format",
                "The gateway answers only in JSON or SSE (`alt=json`, `alt=sse`): it must \
                 read each answer's usage.",
            ));
        }
        if !end_of_stream && content_type.is_some_and(|ct| !request_body::is_json_content_type(ct))
        {
            host.count(Counter::BadRequest);
            return Err(reply::unsupported_media_type());
        }
        if !end_of_stream && encoded {
            host.count(Counter::BadRequest);
            return Err(reply::unsupported_content_encoding());
        }
        self.facts.trace_id = request_id.clone();
        self.facts.path_model = apis::model_in_path(path).map(str::to_owned);
        let token = token.map_err(|e| refuse(host, e))?;
        let pending = Pending {
            request_id,
            end_of_stream,
            body_done: None,
        };
        match self.verify(host, token) {
            Ok(verified) => {
                let caller = self.caller(verified, pending.request_id);
                self.after_authentication(host, caller, end_of_stream, None)
            }
            Err(e @ (AuthError::UnknownKey | AuthError::KeysUnavailable)) => {
                self.refetch_keys(host, token, pending, e)
            }
            Err(e) => Err(refuse(host, e)),
        }
    }

    /// Verifies with the token cache in front of the signature check.
    fn verify(&self, host: &mut dyn Host, token: &str) -> Result<Verified, AuthError> {
        let cfg = &self.rt.config;
        let now = host.now_secs();
        let mut auth = self.auth.borrow_mut();
        let key = auth.cache.key(token);
        if let Some(hit) = auth.cache.get(&key, now) {
            host.count(Counter::TokenCacheHit);
            return Ok(hit.clone());
        }
        host.count(Counter::TokenCacheMiss);
        let verifier = Verifier {
            issuers: &cfg.issuers,
            keys: &auth.keys,
            max_token_bytes: cfg.max_token_bytes,
            skew: cfg.clock_skew,
        };
        let token = verifier.verify(token, now)?;
        let verified = Verified {
            user: pseudonym::user_uuid(&self.rt.salt, &token.issuer, &token.subject),
            token,
        };
        auth.cache.insert(key, verified.clone(), now);
        Ok(verified)
    }

    fn caller(&self, v: Verified, request_id: String) -> Caller {
        Caller {
            user: v.user,
            tenant: v.token.tenant,
            groups: v.token.groups,
            cost_center: v.token.cost_center,
            request_id,
        }
    }

    /// Authenticated: read the body if one is coming, else authorize now.
    /// `body_done` is the body size when it already arrived during a key fetch.
    fn after_authentication(
        &mut self,
        host: &mut dyn Host,
        caller: Caller,
        end_of_stream: bool,
        body_done: Option<usize>,
    ) -> Result<Next, Reply> {
        self.facts.caller = Some(caller.clone());
        let Some(endpoint) = self.facts.endpoint else {
            return Err(reply::error(
                404,
                "invalid_request_error",
                "unknown_url",
                "This path is not an AI provider API the gateway serves.",
            ));
        };
        let allowed = api::allowed_method(endpoint);
        if self.facts.method != allowed {
            // `GET /v1/chat/completions` lists an organisation's stored chats; only what
            // the gateway understands is forwarded.
            let mut r = reply::error(
                405,
                "invalid_request_error",
                "method_not_allowed",
                &format!(
                    "{} is not allowed on this path; use {allowed}.",
                    clip_method(&self.facts.method)
                ),
            );
            r.headers.push(("allow", allowed.to_string()));
            return Err(r);
        }
        // The route table answers the model list whichever providers serve its API.
        if !self.rt.config.identity_only {
            if let Some(reply) = self.models_reply(&caller) {
                return Err(reply);
            }
        }
        let Some((index, _)) =
            crate::providers::registry::for_api(&self.rt.config.providers, endpoint.api)
        else {
            return Err(reply::error(
                404,
                "invalid_request_error",
                "no_provider",
                &format!(
                    "No provider is configured for the {} API.",
                    endpoint.api.name()
                ),
            ));
        };
        self.facts.provider = Some(index);
        if self.rt.config.identity_only {
            // Who called, attributed and sent on with the provider's key: no body read,
            // no decision, no usage record.
            self.forward(host, &caller)?;
            self.facts.logged = true;
            return Ok(Next::Continue);
        }
        self.facts.stream = endpoint.streams_by_path;
        self.accounting = Some(Accounting::new(
            endpoint.format,
            crate::accounting::sse::DEFAULT_MAX_EVENT_BYTES,
        ));
        if end_of_stream {
            let fields = RequestFields::default();
            self.route_model(&caller, &fields)?;
            return self.authorize(host, caller, &fields);
        }
        self.phase = Phase::ReadingBody { caller };
        match body_done {
            Some(size) => self.body(host, size),
            // Envoy buffers the body meanwhile.
            None => Ok(Next::Pause),
        }
    }

    fn body(&mut self, host: &mut dyn Host, body_size: usize) -> Result<Next, Reply> {
        let Phase::ReadingBody { caller } = std::mem::replace(&mut self.phase, Phase::Forwarding)
        else {
            return Ok(Next::Pause);
        };
        if body_size > self.rt.config.max_request_body_bytes {
            host.count(Counter::BadRequest);
            return Err(reply::payload_too_large(
                self.rt.config.max_request_body_bytes,
            ));
        }
        let body = host
            .request_body(body_size)
            .map_err(|e| self.host_failed(host, e))?;
        let scanned = request_body::scan(&body).map_err(|e| {
            host.count(Counter::BadRequest);
            reply::bad_request("invalid_body", &e.message())
        })?;
        let fields = &scanned.fields;
        self.facts.body_bytes = body_size;
        self.facts.stream |= fields.stream;
        let resolved = self.route_model(&caller, fields)?;
        let endpoint = self.facts.endpoint;
        if fields.background && endpoint.is_some_and(|e| e.format == Some(Format::OpenAiResponses))
        {
            host.count(Counter::BadRequest);
            return Err(reply::bad_request(
                "background_not_supported",
                "Background responses are not supported through this gateway: their usage \
                 would be reported out of its sight. Send the request without `background`.",
            ));
        }
        let edits = request_body::Edits {
            model: resolved.as_deref(),
            include_usage: endpoint.is_some_and(|e| e.api.spec().stream_usage_is_optional(e.op))
                && fields.stream,
            user: if self.rt.config.attribution {
                endpoint
                    .and_then(Endpoint::user_field)
                    .map(|f| (f, caller.user.as_str()))
            } else {
                None
            },
            output_cap: match endpoint {
                Some(e)
                    if self.rt.config.enforce_output_cap
                        && output_bound::cap(e, fields).is_none() =>
                {
                    e.cap_field()
                        .map(|f| (f, self.rt.config.default_max_output_tokens))
                }
                _ => None,
            },
        };
        if let Some(new_body) = scanned.edit(edits) {
            // Headers are still held, so the length can be fixed before they go.
            host.set_request_body(&new_body)
                .and_then(|()| {
                    host.set_request_header("content-length", Some(&new_body.len().to_string()))
                })
                .map_err(|e| self.host_failed(host, e))?;
        }
        self.authorize(host, caller, fields)
    }

    fn authorize(
        &mut self,
        host: &mut dyn Host,
        caller: Caller,
        fields: &RequestFields,
    ) -> Result<Next, Reply> {
        let rt = Rc::clone(&self.rt);
        let policy = &rt.config.policy;
        let provider = self
            .facts
            .provider
            .and_then(|i| self.rt.config.providers.get(i))
            .map_or("", |p| p.name.as_str());
        // What the provider may really produce: the cap it honours (or the default the
        // gateway writes or assumes) for each of the outputs the request asks for.
        let output_tokens = self.facts.endpoint.map_or(0, |e| {
            output_bound::cap(e, fields)
                .unwrap_or(self.rt.config.default_max_output_tokens)
                .saturating_mul(output_bound::choices(e, fields))
        });
        let worst_case = crate::accounting::usage::Usage {
            input_tokens: crate::accounting::usage::estimate::tokens_for_bytes(
                self.facts.body_bytes as u64,
            ),
            output_tokens,
            ..Default::default()
        };
        self.facts.output_bound = output_tokens;
        // Looked up once: the record prices the usage at the same rates.
        let (price, model_key) = match self.facts.model.as_deref() {
            Some(m) => {
                let (price, key) = rt.config.price_and_key(m);
                (price.copied(), Some(key.to_string()))
            }
            None => (rt.config.prices.default_price().copied(), None),
        };
        let reserve_cost_micros = price.as_ref().map_or(0, |p| {
            crate::accounting::pricing::cost_micros(&worst_case, p)
        });
        // Endpoints without usage cost nothing; anything else needs a price before a
        // dollar budget lets it run (the policy service decides whether one applies).
        let priced = price.is_some() || self.facts.endpoint.is_none_or(|e| e.format.is_none());
        self.facts.priced = priced;
        self.facts.price = price;
        self.facts.model_key = model_key;
        let reserve_tokens = worst_case
            .input_tokens
            .saturating_add(worst_case.output_tokens);
        self.facts.reserve = (reserve_tokens, reserve_cost_micros);
        let mut lease_slots = 0;
        if policy.lease_slots >= 2 {
            let key = self.lease_key(&caller);
            let now = host.now_ms();
            let mut auth = self.auth.borrow_mut();
            let slot = auth
                .leases
                .take(&key, reserve_tokens, reserve_cost_micros, now);
            if slot.is_none() {
                let in_flight = u64::try_from(policy.timeout.as_millis()).unwrap_or(u64::MAX);
                lease_slots = auth.leases.ask(&key, now, in_flight);
                self.facts.asked_lease = lease_slots > 0;
            }
            drop(auth);
            if let Some(slot) = slot {
                // Already reserved by the policy service: no callout for this request.
                self.facts.reservation_id = Some(slot);
                host.count(Counter::LeaseServed);
                host.count(Counter::Allowed);
                self.forward(host, &caller)?;
                return Ok(Next::Continue);
            }
        }
        let request = AuthorizeRequest {
            request_id: &self.facts.request_id,
            user: &caller.user,
            tenant: caller.tenant.as_deref(),
            groups: &caller.groups,
            model: self.facts.model.as_deref(),
            model_key: self.facts.model_key.as_deref(),
            priced,
            cost_center: caller.cost_center.as_deref(),
            provider,
            stream: self.facts.stream,
            reserve_tokens,
            reserve_cost_micros,
            lease_slots,
            lease_return_ms: if lease_slots > 0 {
                crate::admission::lease::return_within_ms(
                    policy.lease_ttl,
                    self.rt.config.usage.flush,
                )
            } else {
                0
            },
        };
        let body = serde_json::to_vec(&request).map_err(|_| reply::internal("encode_failed"))?;
        let headers = crate::admission::policy_callout::headers(
            &rt,
            crate::admission::policy_callout::AUTHORIZE_PATH,
            Some(&caller.request_id),
        );
        match host.dispatch(&policy.cluster, &headers, &body, policy.timeout) {
            Ok(call) => {
                self.phase = Phase::Authorizing { call, caller };
                Ok(Next::Pause)
            }
            Err(e) => {
                log::warn!("cannot reach policy cluster {}: {}", policy.cluster, e.0);
                host.count(Counter::PolicyUnavailable);
                Err(reply::policy_unavailable())
            }
        }
    }

    /// The policy service answered. `Ok(true)`: resume the request.
    fn authorized(
        &mut self,
        host: &mut dyn Host,
        caller: &Caller,
        status: Option<u32>,
        body: &[u8],
    ) -> Result<bool, Reply> {
        match authorize::decide(status, body) {
            Decision::Allow(quota) => {
                self.facts.quota = Some(quota);
                host.count(Counter::Allowed);
                if self.rt.config.policy.lease_slots >= 2 {
                    self.keep_lease(host, caller, quota.slots);
                }
                self.forward(host, caller)?;
                Ok(true)
            }
            Decision::Deny { .. } | Decision::Unavailable(_) if self.facts.asked_lease => {
                let key = self.lease_key(caller);
                self.auth.borrow_mut().leases.answered(&key);
                self.facts.asked_lease = false;
                self.authorized(host, caller, status, body)
            }
            // Waiting would not help: the model has no price and a dollar budget applies.
            Decision::Deny {
                reason, message, ..
            } if reason == UNPRICED_REASON => {
                host.count(Counter::Denied);
                Err(reply::error(
                    403,
                    "permission_error",
                    "model_not_priced",
                    &message,
                ))
            }
            Decision::Deny {
                reason,
                message,
                retry_after_secs,
            } => {
                host.count(Counter::Denied);
                Err(reply::rate_limited(&reason, &message, retry_after_secs))
            }
            Decision::Unavailable(why) if self.rt.config.policy.fail_open => {
                log::warn!(
                    "policy service unavailable ({why}) for request {}; failing open",
                    caller.request_id
                );
                host.count(Counter::PolicyUnavailable);
                host.count(Counter::FailedOpen);
                self.forward(host, caller)?;
                self.facts.decision = "allowed_fail_open";
                Ok(true)
            }
            Decision::Unavailable(why) => {
                log::warn!(
                    "policy service unavailable ({why}) for request {}; failing closed",
                    caller.request_id
                );
                host.count(Counter::PolicyUnavailable);
                Err(reply::policy_unavailable())
            }
        }
    }

    /// The scopes a lease covers for this caller and model.
    fn lease_key(&self, caller: &Caller) -> String {
        LeaseTable::key(
            &caller.user,
            caller.tenant.as_deref(),
            caller.cost_center.as_deref(),
            self.facts.model_key.as_deref(),
        )
    }

    /// Keeps the spare slots of a granted lease for this caller's next requests; slots
    /// past the per-caller bound (or of an evicted caller) go back to the policy service.
    fn keep_lease(&mut self, host: &mut dyn Host, caller: &Caller, slots: u64) {
        let key = self.lease_key(caller);
        let (reserve_tokens, reserve_cost_micros) = self.facts.reserve;
        let template = LeaseAsk {
            user: caller.user.clone(),
            tenant: caller.tenant.clone(),
            groups: caller.groups.clone(),
            model: self.facts.model.clone(),
            model_key: self.facts.model_key.clone(),
            priced: self.facts.priced,
            cost_center: caller.cost_center.clone(),
            provider: self
                .facts
                .provider
                .and_then(|i| self.rt.config.providers.get(i))
                .map_or_else(String::new, |p| p.name.clone()),
            stream: self.facts.stream,
            reserve_tokens,
            reserve_cost_micros,
        };
        let now = host.now_ms();
        let ttl = u64::try_from(self.rt.config.policy.lease_ttl.as_millis()).unwrap_or(u64::MAX);
        let released = self.auth.borrow_mut().leases.grant(
            &key,
            &self.facts.request_id,
            slots,
            template,
            now,
            ttl,
        );
        self.facts.asked_lease = false;
        release_slots(host, &released);
    }

    /// The request may go: route it to the provider's cluster with the provider's key and
    /// the anonymous id.
    fn forward(&mut self, host: &mut dyn Host, caller: &Caller) -> Result<(), Reply> {
        let rt = Rc::clone(&self.rt);
        let index = self.facts.provider.unwrap_or(0);
        let (Some(provider), Some(key)) =
            (rt.config.providers.get(index), rt.provider_keys.get(index))
        else {
            return Err(reply::internal("no_provider"));
        };
        let groups = caller.groups.join(",");
        // The organisation's own view of the caller goes only where every provider the
        // request may reach (a fallback chain's included) is the organisation's own.
        let internal = if self.facts.chain.is_empty() {
            provider.internal
        } else {
            self.facts
                .chain
                .iter()
                .all(|i| rt.config.providers.get(*i).is_some_and(|p| p.internal))
        };
        fn identity(internal: bool, value: Option<&str>) -> Option<&str> {
            value.filter(|_| internal)
        }
        let mut set = |name: &str, value: Option<&str>| match value {
            Some(v) if !v.is_empty() => host.set_request_header(name, Some(v)),
            _ => Ok(()),
        };
        let key = rt
            .config
            .inject_keys_downstream
            .then(|| format!("{}{}", provider.key_prefix, key));
        set(&provider.key_header, key.as_deref())
            .and_then(|()| set(CLUSTER_HEADER, Some(&self.cluster_for(index))))
            // Bodies must be readable for accounting: ask providers not to compress.
            .and_then(|()| set("accept-encoding", Some("identity")))
            .and_then(|()| set(USER_HEADER, identity(internal, Some(&caller.user))))
            .and_then(|()| set(TENANT_HEADER, identity(internal, caller.tenant.as_deref())))
            .and_then(|()| set(GROUPS_HEADER, identity(internal, Some(&groups))))
            .and_then(|()| {
                set(
                    COST_CENTER_HEADER,
                    identity(internal, caller.cost_center.as_deref()),
                )
            })
            .map_err(|e| self.host_failed(host, e))?;
        self.facts.decision = "allowed";
        self.phase = Phase::Forwarding;
        Ok(())
    }

    /// The cluster a request goes to: the provider's own, or for a fallback chain the
    /// aggregate cluster `chain_<p1>__<p2>...` that Envoy retries through in order.
    fn cluster_for(&self, index: usize) -> String {
        let providers = &self.rt.config.providers;
        if self.facts.chain.len() > 1 {
            let names: Vec<&str> = self
                .facts
                .chain
                .iter()
                .filter_map(|i| providers.get(*i).map(|p| p.name.as_str()))
                .collect();
            return chain_cluster(&names);
        }
        providers
            .get(index)
            .map_or_else(String::new, |p| p.cluster.clone())
    }

    fn host_failed(&self, host: &mut dyn Host, e: HostError) -> Reply {
        log::error!("hostcall failed: {}", e.0);
        host.count(Counter::HostFailure);
        reply::internal("gateway_error")
    }

    fn settle(&mut self, host: &mut dyn Host, result: Result<Next, Reply>) -> Next {
        match result {
            Ok(next) => next,
            Err(r) => {
                self.reply(host, &r);
                Next::Pause
            }
        }
    }

    fn reply(&mut self, host: &mut dyn Host, r: &Reply) {
        self.phase = Phase::Replied;
        self.facts.replied = Some(r.status);
        self.facts.decision = decision_for(r);
        let mut r = r.clone().in_shape_of(self.facts.shape);
        if !self.facts.request_id.is_empty() {
            r.headers
                .push((REQUEST_ID_HEADER, self.facts.request_id.clone()));
        }
        if host.send_reply(&r).is_err() {
            host.count(Counter::HostFailure);
        }
    }
}

/// Queues unused lease slots for release, with the usage records (a JSON string each).
pub fn release_slots(host: &mut dyn Host, slots: &[String]) {
    for slot in slots {
        let Ok(json) = serde_json::to_vec(slot) else {
            continue;
        };
        if !host.enqueue_usage(&json) {
            host.count(Counter::UsageQueueFailure);
        }
    }
}

/// The aggregate cluster of a fallback chain, by convention (the bootstrap defines it).
pub fn chain_cluster(providers: &[&str]) -> String {
    format!("chain_{}", providers.join("__"))
}

/// Longest `x-request-id` kept for the record and the callouts. Envoy replaces a client's
/// own unless told to keep it (`preserve_external_request_id`); then it is the client's
/// string, and goes into every record and batch.
const MAX_TRACE_ID_BYTES: usize = 128;

/// The `x-request-id` as the record keeps it: printable ASCII, at most
/// [`MAX_TRACE_ID_BYTES`]; anything else is not kept at all.
fn trace_id(value: &str) -> String {
    if value.len() <= MAX_TRACE_ID_BYTES && value.bytes().all(|b| b.is_ascii_graphic()) {
        value.to_string()
    } else {
        String::new()
    }
}

/// A client's method, echoed in an error: short and printable.
fn clip_method(m: &str) -> String {
    m.chars().filter(char::is_ascii_graphic).take(16).collect()
}

/// The decision a local reply stands for, in the usage record and stats.
fn decision_for(r: &Reply) -> &'static str {
    match r.status {
        200 => "answered",
        401 => "unauthenticated",
        403 => "forbidden",
        429 => "denied",
        404 => "not_found",
        400 | 405 | 413 | 415 => "invalid",
        503 if r
            .error
            .as_ref()
            .is_some_and(|e| e.code == "jwks_unavailable") =>
        {
            "unauthenticated"
        }
        503 => "policy_unavailable",
        _ => "error",
    }
}

/// An authentication failure: counted, and answered 401 (503 when our keys are missing,
/// 403 when a valid token claims what its issuer may not).
fn refuse(host: &mut dyn Host, e: AuthError) -> Reply {
    host.count(Counter::AuthFailed(e));
    match e {
        AuthError::KeysUnavailable => {
            reply::error(503, "service_unavailable", e.code(), e.message())
        }
        // The token is good; what it claims is not its issuer's to claim.
        AuthError::TenantNotAllowed | AuthError::CostCenterNotAllowed => {
            reply::error(403, "permission_error", e.code(), e.message())
        }
        _ => reply::unauthorized(e.code(), e.message()),
    }
}

mod keys;
mod response;
mod routing;
#[cfg(test)]
mod tests;
