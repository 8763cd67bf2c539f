//! Admit: whether the call may go ahead. Its worst case (input estimate and the output the
//! provider may produce) is priced; a lease slot this worker holds for the caller admits
//! it at once, else the policy service decides (and may grant a lease for the caller's
//! next calls). A refusal is answered in the API's shape; an unreachable policy service
//! fails open or closed as configured.

use chokepoint_contract::{McpScope, Required};

use crate::accounting::pricing;
use crate::accounting::usage::estimate;
use crate::accounting::usage::report::Usage;
use crate::admission::authorize::{self, AuthorizeRequest, Decision as Answer};
use crate::admission::lease::{self, LeaseAsk, LeaseTable};
use crate::admission::output_bound;
use crate::admission::policy_callout;
use crate::flow::facts::{Caller, Decision};
use crate::flow::release_slots;
use crate::flow::step::{Cx, Go, Step};
use crate::host::Counter;
use crate::mcp::message::Kind;
use crate::providers::reply::{self, Reply};

pub struct Admit;

impl Step for Admit {
    fn name(&self) -> &'static str {
        "admit"
    }

    fn reads_body(&self) -> bool {
        true
    }

    fn run(&self, cx: &mut Cx<'_>) -> Result<Go, Reply> {
        with_caller(cx, admit)
    }

    /// The policy service answered, or the callout failed: asked once more when no
    /// instance answered (an instance dying under load), else decided.
    fn answered(&self, cx: &mut Cx<'_>, status: Option<u32>, body: &[u8]) -> Result<Go, Reply> {
        if !cx.facts.policy_retried && authorize::worth_retrying(status, body) {
            cx.facts.policy_retried = true;
            cx.host.count(Counter::PolicyRetried);
            let slots = cx.facts.lease_ask;
            return with_caller(cx, |cx, caller| ask_policy(cx, caller, slots));
        }
        let answer = authorize::decide(status, body);
        with_caller(cx, |cx, caller| decided(cx, caller, answer))
    }
}

/// Runs `f` with the caller, which stays in the facts for the record.
fn with_caller(
    cx: &mut Cx<'_>,
    f: impl FnOnce(&mut Cx<'_>, &Caller) -> Result<Go, Reply>,
) -> Result<Go, Reply> {
    let Some(caller) = cx.facts.caller.take() else {
        return Err(reply::internal("no_caller"));
    };
    let go = f(cx, &caller);
    cx.facts.caller = Some(caller);
    go
}

fn admit(cx: &mut Cx<'_>, caller: &Caller) -> Result<Go, Reply> {
    let rt = cx.rt;
    let policy = &rt.config.policy;
    let mcp = mcp_scope(cx);
    match &mcp {
        // An MCP notification, response, listening stream or session end: recorded, not
        // limited.
        _ if cx.facts.mcp.is_some() && mcp.is_none() => return Ok(Go::Next),
        // No tokens, no price: an MCP call is limited by its count alone.
        Some(_) => {
            cx.facts.reserve = (0, 0);
            cx.facts.priced = true;
        }
        None => price_worst_case(cx),
    }
    let (reserve_tokens, reserve_cost_micros) = cx.facts.reserve;
    let mut lease_slots = 0;
    if policy.lease_slots >= 2 {
        let key = lease_key(cx, caller);
        let now = cx.host.now_ms();
        let mut auth = cx.auth.borrow_mut();
        let slot = auth
            .leases
            .take(&key, reserve_tokens, reserve_cost_micros, now);
        if slot.is_none() {
            let in_flight = u64::try_from(policy.timeout.as_millis()).unwrap_or(u64::MAX);
            lease_slots = auth.leases.ask(&key, now, in_flight);
            cx.facts.asked_lease = lease_slots > 0;
            cx.facts.lease_ask = lease_slots;
        }
        drop(auth);
        if let Some(slot) = slot {
            // Already reserved by the policy service: no callout for this request.
            cx.facts.reservation_id = Some(slot);
            cx.host.count(Counter::LeaseServed);
            cx.host.count(Counter::Allowed);
            return Ok(Go::Forward);
        }
    }
    ask_policy(cx, caller, lease_slots)
}

/// Asks the policy service for this request's decision (and `lease_slots` for the
/// caller's next requests).
fn ask_policy(cx: &mut Cx<'_>, caller: &Caller, lease_slots: u64) -> Result<Go, Reply> {
    let rt = cx.rt;
    let policy = &rt.config.policy;
    let (reserve_tokens, reserve_cost_micros) = cx.facts.reserve;
    let mcp = mcp_scope(cx);
    let facts = &*cx.facts;
    let provider = facts
        .provider
        .and_then(|i| rt.config.providers.get(i))
        .map_or("", |p| p.name.as_str());
    let request = AuthorizeRequest {
        request_id: Required::new(&facts.request_id),
        user: Required::new(&caller.user),
        tenant: caller.tenant.as_deref(),
        groups: &caller.groups,
        model: facts.model.as_deref(),
        model_key: facts.model_key.as_deref(),
        priced: facts.priced,
        cost_center: caller.cost_center.as_deref(),
        provider: (!provider.is_empty()).then_some(provider),
        stream: facts.stream,
        reserve_tokens,
        reserve_cost_micros,
        lease_slots,
        lease_return_ms: if lease_slots > 0 {
            lease::return_within_ms(policy.lease_ttl, rt.config.usage.flush)
        } else {
            0
        },
        mcp: mcp.as_ref().map(|(server, tool)| McpScope {
            server: server.as_str(),
            tool: tool.as_deref(),
        }),
    };
    let body = serde_json::to_vec(&request).map_err(|_| reply::internal("encode_failed"))?;
    let headers =
        policy_callout::headers(rt, policy_callout::AUTHORIZE_PATH, Some(&caller.request_id));
    match cx
        .host
        .dispatch(&policy.cluster, &headers, &body, policy.timeout)
    {
        Ok(call) => Ok(Go::Call(call)),
        Err(e) => {
            log::warn!("cannot reach policy cluster {}: {}", policy.cluster, e.0);
            cx.host.count(Counter::PolicyUnavailable);
            Err(reply::policy_unavailable())
        }
    }
}

/// What the request may cost at most, priced once (the record prices its usage at the
/// same rates): the reservation the policy service holds against its budgets.
fn price_worst_case(cx: &mut Cx<'_>) {
    let cfg = &cx.rt.config;
    let fields = cx.fields();
    // What the provider may really produce: the cap it honours (or the default the
    // gateway writes or assumes) for each of the outputs the request asks for.
    let output_tokens = cx.facts.endpoint.map_or(0, |e| {
        output_bound::cap(e, fields)
            .unwrap_or(cfg.default_max_output_tokens)
            .saturating_mul(output_bound::choices(e, fields))
    });
    let facts = &mut *cx.facts;
    let worst_case = Usage {
        input_tokens: estimate::tokens_for_bytes(facts.body_bytes as u64),
        output_tokens,
        ..Default::default()
    };
    facts.output_bound = output_tokens;
    let (price, model_key) = match facts.model.as_deref() {
        Some(m) => {
            let (price, key) = cfg.price_and_key(m);
            (price.copied(), Some(key.to_string()))
        }
        None => (cfg.prices.default_price().copied(), None),
    };
    let reserve_cost_micros = price
        .as_ref()
        .map_or(0, |p| pricing::cost_micros(&worst_case, p));
    // Endpoints without usage cost nothing; anything else needs a price before a dollar
    // budget lets it run (the policy service decides whether one applies).
    facts.priced = price.is_some() || facts.endpoint.is_none_or(|e| e.format.is_none());
    facts.price = price;
    facts.model_key = model_key;
    let reserve_tokens = worst_case
        .input_tokens
        .saturating_add(worst_case.output_tokens);
    facts.reserve = (reserve_tokens, reserve_cost_micros);
}

/// What the policy service's answer means for the request.
fn decided(cx: &mut Cx<'_>, caller: &Caller, answer: Answer) -> Result<Go, Reply> {
    let fail_open = cx.rt.config.policy.fail_open;
    match answer {
        Answer::Allow(quota) => {
            cx.facts.quota = Some(quota);
            cx.host.count(Counter::Allowed);
            if cx.rt.config.policy.lease_slots >= 2 {
                keep_lease(cx, caller, quota.slots);
            }
            Ok(Go::Next)
        }
        // The caller's one ask is over, whatever became of it.
        answer @ (Answer::Deny { .. } | Answer::Unavailable(_)) if cx.facts.asked_lease => {
            let key = lease_key(cx, caller);
            cx.auth.borrow_mut().leases.answered(&key);
            cx.facts.asked_lease = false;
            decided(cx, caller, answer)
        }
        // Waiting would not help: the model has no price and a dollar budget applies.
        Answer::Deny {
            reason, message, ..
        } if reason == chokepoint_contract::reason::UNPRICED_MODEL => {
            cx.host.count(Counter::Denied);
            Err(reply::error(
                403,
                "permission_error",
                "model_not_priced",
                &message,
            ))
        }
        Answer::Deny {
            reason,
            message,
            retry_after_secs,
        } => {
            cx.host.count(Counter::Denied);
            Err(reply::rate_limited(&reason, &message, retry_after_secs))
        }
        Answer::Unavailable(why) if fail_open => {
            log::warn!(
                "policy service unavailable ({why}) for request {}; failing open",
                caller.request_id
            );
            cx.host.count(Counter::PolicyUnavailable);
            cx.host.count(Counter::FailedOpen);
            cx.facts.decision = Decision::AllowedFailOpen;
            Ok(Go::Next)
        }
        Answer::Unavailable(why) => {
            log::warn!(
                "policy service unavailable ({why}) for request {}; failing closed",
                caller.request_id
            );
            cx.host.count(Counter::PolicyUnavailable);
            Err(reply::policy_unavailable())
        }
    }
}

/// The scopes a lease covers for this caller and model (or MCP server and tool).
fn lease_key(cx: &Cx<'_>, caller: &Caller) -> String {
    let mcp = mcp_scope(cx)
        .map(|(server, tool)| format!("mcp:{server}/{}", tool.as_deref().unwrap_or_default()));
    LeaseTable::key(
        &caller.user,
        caller.tenant.as_deref(),
        caller.cost_center.as_deref(),
        mcp.as_deref().or(cx.facts.model_key.as_deref()),
    )
}

/// The MCP server (and tool) whose limits a JSON-RPC request counts against: every
/// request (a message with an id) counts for its server, a `tools/call` for its tool too.
fn mcp_scope(cx: &Cx<'_>) -> Option<(String, Option<String>)> {
    let m = cx.facts.mcp.as_ref()?;
    let message = m.message.as_ref().filter(|msg| msg.kind == Kind::Request)?;
    let server = m.server(cx.rt)?;
    let tool = message
        .name
        .clone()
        .filter(|_| message.method.as_deref() == Some("tools/call"));
    Some((server.name.clone(), tool))
}

/// Keeps the spare slots of a granted lease for this caller's next requests; slots past
/// the per-caller bound (or of an evicted caller) go back to the policy service.
fn keep_lease(cx: &mut Cx<'_>, caller: &Caller, slots: u64) {
    let key = lease_key(cx, caller);
    let facts = &*cx.facts;
    let (reserve_tokens, reserve_cost_micros) = facts.reserve;
    let template = LeaseAsk {
        user: caller.user.clone(),
        tenant: caller.tenant.clone(),
        groups: caller.groups.clone(),
        model: facts.model.clone(),
        model_key: facts.model_key.clone(),
        priced: facts.priced,
        cost_center: caller.cost_center.clone(),
        provider: facts
            .provider
            .and_then(|i| cx.rt.config.providers.get(i))
            .map_or_else(String::new, |p| p.name.clone()),
        stream: facts.stream,
        reserve_tokens,
        reserve_cost_micros,
        mcp: mcp_scope(cx),
    };
    let now = cx.host.now_ms();
    let ttl = u64::try_from(cx.rt.config.policy.lease_ttl.as_millis()).unwrap_or(u64::MAX);
    let released =
        cx.auth
            .borrow_mut()
            .leases
            .grant(&key, &facts.request_id, slots, template, now, ttl);
    cx.facts.asked_lease = false;
    release_slots(cx.host, &released);
}
