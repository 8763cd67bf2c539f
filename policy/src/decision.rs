//! Authorization decisions: the scopes a request is checked against, the script call
//! that checks every limit of theirs at once, and the answer the filter gets (limit
//! names, messages a client can read, the tightest limit).

use std::cmp::Ordering;
use std::time::Duration;

use chokepoint_contract::{reason, Allow, Deny, LimitState as LimitAnswer, Required, Tag};

use crate::display::{format_usd, format_window};
use crate::keys;
use crate::ledger::ledger_key;
use crate::limit_set::BudgetPeriod;
use crate::scope::Scope;
use crate::store::{LimitState, Metric, ScriptCall, Store, StoreError};
use crate::utc_date::{Day, Period};
use crate::validated::AuthorizeRequest;

/// The service-wide settings a decision needs.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Requests per window for a user when neither the user's limit set nor `user:*`
    /// has an rpm (the service's --requests-per-window).
    pub default_user_rpm: u64,
    /// The rate window every rpm and tpm counts over.
    pub window: Duration,
    /// How long a budget reservation counts when its usage never arrives.
    pub reservation_ttl: Duration,
}

/// What a request reserves against budgets (its worst case).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reserve {
    pub tokens: u64,
    pub cost_micros: u64,
    /// The filter has no price for the model: `cost_micros` is 0 and means nothing, so
    /// dollar budgets refuse the request (see authorize.lua, "Unpriced").
    pub unpriced: bool,
}

/// A limit with its name and scope, e.g. `tenant:usd_micros:month` for tenant `acme`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedLimit {
    pub name: String,
    pub scope: Scope,
    pub id: String,
    pub state: LimitState,
}

impl NamedLimit {
    fn new(scopes: &[(Scope, String)], state: LimitState) -> Option<Self> {
        let (scope, id) = scopes.get(state.scope)?;
        Some(Self {
            name: limit_name(*scope, &state),
            scope: *scope,
            id: id.clone(),
            state,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow {
        limits: Vec<NamedLimit>,
        /// Requests' worth granted: 1, or a lease's slots (see authorize.lua).
        slots: u64,
    },
    Deny {
        /// The dollar budget that refuses an unpriced request (the first, in scope
        /// order), else the tripped limit that resets last: the request cannot pass
        /// before it does.
        tripped: NamedLimit,
        message: String,
    },
}

/// `user:rpm`, `tenant:tpm`, `tenant:usd_micros:month`, `model:tokens:rolling`.
pub fn limit_name(scope: Scope, state: &LimitState) -> String {
    match state.period {
        Some(period) => format!(
            "{}:{}:{}",
            scope.as_str(),
            state.metric.as_str(),
            period.kind()
        ),
        None => format!("{}:{}", scope.as_str(), state.metric.as_str()),
    }
}

/// The scopes a request is checked against, in the order the script takes them: the
/// user always, then tenant, cost centre and model when the request names them (blank
/// names nothing, as in the ledger). The model scope is the model key when the filter
/// sent one, so model limits, rate windows and reservations key on it, not on the name
/// the client chose.
///
/// An MCP request is checked against its server (`mcp_server:<server>`) and, for a
/// tool call, its tool (`mcp_tool:<server>/<tool>`) only: no user, tenant, cost centre
/// or model limit, so an agent's tool calls never take its model calls' room. Both are
/// per user (see `keys::window_id`).
pub fn scopes_of(request: &AuthorizeRequest) -> Vec<(Scope, String)> {
    if let Some(mcp) = &request.mcp {
        let mut scopes = vec![(Scope::McpServer, mcp.server.clone())];
        if let Some(tool) = &mcp.tool {
            scopes.push((Scope::McpTool, format!("{}/{tool}", mcp.server)));
        }
        return scopes;
    }
    let mut scopes = vec![(Scope::User, request.user.as_str().to_owned())];
    let model = request.model_key.as_ref().or(request.model.as_ref());
    for (scope, id) in [
        (Scope::Tenant, request.tenant.as_ref()),
        (Scope::CostCenter, request.cost_center.as_ref()),
        (Scope::Model, model),
    ] {
        if let Some(id) = id.filter(|id| !id.trim().is_empty()) {
            scopes.push((scope, id.clone()));
        }
    }
    scopes
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Who asks, for which request: the request id names its reservation, the user keys
/// the per-user (MCP) scopes' windows. Empty when only reporting.
#[derive(Debug, Clone, Copy, Default)]
pub struct Caller<'a> {
    pub request_id: &'a str,
    pub user: &'a str,
}

/// A lease asked for: slots wanted (0 or 1: none) and within how many ms the filter
/// gives unused ones back (0: unknown).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lease {
    pub slots: u64,
    pub return_ms: u64,
}

impl Policy {
    /// The authorize script's keys and arguments (see its header). `take` false only
    /// reports the limits' state.
    pub fn call(
        &self,
        scopes: &[(Scope, String)],
        caller: Caller<'_>,
        reserve: Reserve,
        take: bool,
        lease: Lease,
        now_ms: u64,
    ) -> ScriptCall {
        let Caller { request_id, user } = caller;
        let today = Day::from_unix_ms(now_ms);
        let mut call_keys = vec![keys::reservation_key(request_id)];
        let mut scope_prefixes = Vec::with_capacity(scopes.len());
        for (scope, id) in scopes {
            let default = keys::limits_key(*scope, keys::DEFAULT_ID);
            let server = keys::server_default_id(*scope, id).map_or_else(
                || default.clone(),
                |server| keys::limits_key(*scope, &server),
            );
            let window = keys::window_id(*scope, id, user);
            scope_prefixes.push(keys::scope_reservation_prefix(*scope, &window));
            call_keys.extend([
                keys::limits_key(*scope, id),
                default,
                keys::rate_key(*scope, &window),
                keys::reservations_key(*scope, &window),
                keys::reserved_key(*scope, &window),
                ledger_key(*scope, &window, Period::Day(today)),
                ledger_key(*scope, &window, Period::Month(today.month())),
                keys::rolling_key(*scope, &window),
                server,
            ]);
        }
        let mut args = vec![
            now_ms.to_string(),
            millis(self.window).to_string(),
            millis(self.reservation_ttl).to_string(),
            reserve.tokens.to_string(),
            reserve.cost_micros.to_string(),
            u8::from(take).to_string(),
            today.end_ms().to_string(),
            today.month().end_ms().to_string(),
            request_id.to_owned(),
            lease.slots.to_string(),
            lease.return_ms.to_string(),
            u8::from(!reserve.unpriced).to_string(),
        ];
        args.extend(scopes.iter().map(|(scope, _)| match scope {
            Scope::User => self.default_user_rpm.to_string(),
            _ => String::new(),
        }));
        ScriptCall {
            keys: call_keys,
            args,
            scope_prefixes,
        }
    }

    /// Checks every limit of the request's scopes and, if all pass, takes its share.
    pub async fn decide(
        &self,
        store: &Store,
        request: &AuthorizeRequest,
        now_ms: u64,
    ) -> Result<Decision, StoreError> {
        let scopes = scopes_of(request);
        // An MCP request has no tokens or cost to reserve (and its kinds no budgets).
        let reserve = match request.mcp {
            Some(_) => Reserve::default(),
            None => Reserve {
                tokens: request.reserve_tokens,
                cost_micros: request.reserve_cost_micros,
                unpriced: !request.priced,
            },
        };
        let call = self.call(
            &scopes,
            Caller {
                request_id: &request.request_id,
                user: request.user.as_str(),
            },
            reserve,
            true,
            Lease {
                slots: request.lease_slots,
                return_ms: request.lease_return_ms,
            },
            now_ms,
        );
        let verdict = store.authorize(&call).await?;
        let limits: Vec<NamedLimit> = verdict
            .limits
            .into_iter()
            .map(|state| NamedLimit::new(&scopes, state))
            .collect::<Option<_>>()
            .ok_or_else(|| {
                StoreError::UnexpectedReply("authorize.lua named a scope it was not given".into())
            })?;
        if verdict.allowed {
            return Ok(Decision::Allow {
                limits,
                slots: verdict.slots.max(1),
            });
        }
        // No wait lets an unpriced request through, so that reason goes first.
        let unpriced = limits.iter().position(|limit| limit.state.unpriced);
        let tripped = match unpriced {
            Some(at) => limits.into_iter().nth(at),
            None => limits
                .into_iter()
                .filter(|limit| limit.state.tripped)
                // max_by keeps the last of equals; reversing keeps the first.
                .rev()
                .max_by_key(|limit| limit.state.reset_after_ms),
        }
        .ok_or_else(|| StoreError::UnexpectedReply("a denial without a limit".into()))?;
        let message = match unpriced {
            Some(_) => unpriced_message(&tripped, request),
            None => message(&tripped, reserve, self.window),
        };
        Ok(Decision::Deny { tripped, message })
    }

    /// The limits of one scope as they stand, without taking anything (a kind with
    /// spend: see [`Scope::has_spend`]).
    pub async fn peek(
        &self,
        store: &Store,
        scope: Scope,
        id: &str,
        now_ms: u64,
    ) -> Result<Vec<NamedLimit>, StoreError> {
        let scopes = [(scope, id.to_owned())];
        let call = self.call(
            &scopes,
            Caller::default(),
            Reserve::default(),
            false,
            Lease::default(),
            now_ms,
        );
        let verdict = store.authorize(&call).await?;
        verdict
            .limits
            .into_iter()
            .map(|state| NamedLimit::new(&scopes, state))
            .collect::<Option<_>>()
            .ok_or_else(|| {
                StoreError::UnexpectedReply("authorize.lua named a scope it was not given".into())
            })
    }
}

impl Decision {
    /// The answer, in the contract's terms. The top-level `limit`, `remaining` and
    /// `reset_after_ms` of an allow describe the tightest limit (least left, as a share
    /// of the limit), as the single per-user limit did before budgets.
    pub fn answer(&self) -> chokepoint_contract::Decision<&str> {
        match self {
            Decision::Allow { limits, slots } => {
                let tightest = tightest(limits).map(|limit| &limit.state);
                chokepoint_contract::Decision::Allow(Allow {
                    allow: Tag,
                    limits: limits
                        .iter()
                        .map(|limit| LimitAnswer {
                            name: limit.name.as_str(),
                            limit: limit.state.limit,
                            remaining: limit.state.remaining(),
                            reset_after_ms: limit.state.reset_after_ms,
                        })
                        .collect(),
                    // Only for a lease: a per-request answer keeps its documented shape.
                    slots: (*slots > 1).then_some(*slots),
                    limit: tightest.map(|state| state.limit),
                    remaining: tightest.map(LimitState::remaining),
                    reset_after_ms: tightest.map(|state| state.reset_after_ms),
                })
            }
            Decision::Deny { tripped, message } => chokepoint_contract::Decision::Deny(Deny {
                allow: Tag,
                reason: Required::new(deny_reason(&tripped.state)),
                limit_name: tripped.name.as_str(),
                message: Required::new(message.as_str()),
                limit: tripped.state.limit,
                remaining: 0,
                // Waiting does not price a model: an unpriced denial has no retry time.
                retry_after_ms: (!tripped.state.unpriced).then_some(tripped.state.reset_after_ms),
            }),
        }
    }
}

/// `rate_limited` for rpm and tpm, `budget_exceeded` for budgets.
pub fn reason(metric: Metric) -> &'static str {
    if metric.is_budget() {
        reason::BUDGET_EXCEEDED
    } else {
        reason::RATE_LIMITED
    }
}

/// The reason a tripped limit gives: `unpriced_model` when it refused an unpriced
/// request, else [`reason`] of its metric.
pub fn deny_reason(state: &LimitState) -> &'static str {
    if state.unpriced {
        reason::UNPRICED_MODEL
    } else {
        reason(state.metric)
    }
}

/// The limit with the least left as a share of itself; the first of equals.
fn tightest(limits: &[NamedLimit]) -> Option<&NamedLimit> {
    limits.iter().reduce(|best, next| {
        // remaining/limit compared without division: r1 * l2 vs r2 * l1.
        let share =
            |a: &LimitState, b: &LimitState| u128::from(a.remaining()) * u128::from(b.limit.max(1));
        match share(&next.state, &best.state).cmp(&share(&best.state, &next.state)) {
            Ordering::Less => next,
            _ => best,
        }
    })
}

/// Who a limit belongs to, as a client reads it: `user`, `tenant acme's`.
fn owner(scope: Scope, id: &str) -> String {
    match scope {
        Scope::User => "user".to_owned(),
        Scope::Tenant => format!("tenant {id}'s"),
        Scope::CostCenter => format!("cost centre {id}'s"),
        Scope::Model => format!("model {id}'s"),
        Scope::McpServer => format!("MCP server {id}'s per-user"),
        Scope::McpTool => format!("MCP tool {id}'s per-user"),
    }
}

/// Why an unpriced request was denied, naming its model and the dollar budget:
/// `model gpt-4o has no price, so it cannot be charged to tenant acme's monthly budget
/// of $500.00`.
pub fn unpriced_message(limit: &NamedLimit, request: &AuthorizeRequest) -> String {
    let model = request
        .model
        .as_deref()
        .filter(|model| !model.trim().is_empty())
        .or(request.model_key.as_deref())
        .unwrap_or("(none)");
    let budget = budget_text(limit);
    format!(
        "model {model} has no price, so it cannot be charged to {budget}; an administrator \
         must price it (or the budget must not be in dollars) before it can be used"
    )
}

/// `tenant acme's monthly budget of $500.00`, `the user's daily budget of $5.00`.
fn budget_text(limit: &NamedLimit) -> String {
    let who = match limit.scope {
        Scope::User => "the user's".to_owned(),
        scope => owner(scope, &limit.id),
    };
    let amount = format_usd(limit.state.limit);
    match limit.state.period {
        Some(BudgetPeriod::Day) => format!("{who} daily budget of {amount}"),
        Some(BudgetPeriod::Rolling { secs }) => format!("{who} budget of {amount} per {secs}s"),
        _ => format!("{who} monthly budget of {amount}"),
    }
}

/// Why the request was denied, naming the limit and its owner:
/// `tenant acme's monthly budget of $500.00 is spent`.
pub fn message(limit: &NamedLimit, reserve: Reserve, window: Duration) -> String {
    let state = &limit.state;
    let who = owner(limit.scope, &limit.id);
    let taken = state.used.saturating_add(state.reserved);
    let left = state.limit.saturating_sub(taken);
    let window = format_window(window);
    let (what, need, amount): (String, u64, fn(u64) -> String) = match state.metric {
        Metric::Rpm => {
            return format!(
                "{who} request limit of {} per {window} reached",
                state.limit
            );
        }
        Metric::Tpm => (
            format!("{who} token limit of {} per {window}", state.limit),
            reserve.tokens,
            |n| format!("{n} tokens"),
        ),
        Metric::UsdMicros => (
            match state.period {
                Some(BudgetPeriod::Day) => {
                    format!("{who} daily budget of {}", format_usd(state.limit))
                }
                Some(BudgetPeriod::Rolling { secs }) => {
                    format!("{who} budget of {} per {secs}s", format_usd(state.limit))
                }
                _ => format!("{who} monthly budget of {}", format_usd(state.limit)),
            },
            reserve.cost_micros,
            format_usd,
        ),
        Metric::Tokens => (
            match state.period {
                Some(BudgetPeriod::Day) => {
                    format!("{who} daily token budget of {} tokens", state.limit)
                }
                Some(BudgetPeriod::Rolling { secs }) => {
                    format!("{who} token budget of {} tokens per {secs}s", state.limit)
                }
                _ => format!("{who} monthly token budget of {} tokens", state.limit),
            },
            reserve.tokens,
            |n| format!("{n} tokens"),
        ),
    };
    let verb = if state.metric == Metric::Tpm {
        "reached"
    } else {
        "is spent"
    };
    if left == 0 || need == 0 {
        format!("{what} {verb}")
    } else {
        format!(
            "{what} has {} left, less than this request's worst case of {}",
            amount(left),
            amount(need)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Source;
    use crate::user_id::UserId;
    use chokepoint_contract::validate::Schema;

    const USER: &str = "0190a6f2-7c1e-8b3a-9f00-1234567890ab";

    fn state(metric: Metric, period: Option<BudgetPeriod>, limit: u64, used: u64) -> LimitState {
        LimitState {
            scope: 0,
            metric,
            period,
            limit,
            used,
            reserved: 0,
            reset_after_ms: 1000,
            tripped: false,
            unpriced: false,
            source: Source::Own,
        }
    }

    fn named(scope: Scope, id: &str, state: LimitState) -> NamedLimit {
        NamedLimit {
            name: limit_name(scope, &state),
            scope,
            id: id.to_owned(),
            state,
        }
    }

    fn request() -> AuthorizeRequest {
        AuthorizeRequest {
            request_id: "r1".into(),
            user: UserId::parse(USER).expect("uuid"),
            tenant: Some("acme".into()),
            groups: vec![],
            cost_center: Some(" ".into()),
            model: Some("gpt-4o".into()),
            model_key: None,
            priced: true,
            provider: None,
            stream: false,
            reserve_tokens: 10,
            reserve_cost_micros: 20,
            lease_slots: 0,
            lease_return_ms: 0,
            mcp: None,
        }
    }

    #[test]
    fn names_limits() {
        let month = Some(BudgetPeriod::Month);
        let rolling = Some(BudgetPeriod::Rolling { secs: 60 });
        let cases = [
            (Scope::User, state(Metric::Rpm, None, 1, 0), "user:rpm"),
            (Scope::Tenant, state(Metric::Tpm, None, 1, 0), "tenant:tpm"),
            (
                Scope::Tenant,
                state(Metric::UsdMicros, month, 1, 0),
                "tenant:usd_micros:month",
            ),
            (
                Scope::Model,
                state(Metric::Tokens, rolling, 1, 0),
                "model:tokens:rolling",
            ),
            (
                Scope::CostCenter,
                state(Metric::UsdMicros, Some(BudgetPeriod::Day), 1, 0),
                "cost_center:usd_micros:day",
            ),
        ];
        for (scope, state, expected) in cases {
            assert_eq!(limit_name(scope, &state), expected);
        }
    }

    #[test]
    fn builds_the_documented_call() {
        let policy = Policy {
            default_user_rpm: 60,
            window: Duration::from_secs(60),
            reservation_ttl: Duration::from_secs(600),
        };
        let request = request();
        let scopes = scopes_of(&request);
        assert_eq!(
            scopes,
            [
                (Scope::User, USER.to_owned()),
                (Scope::Tenant, "acme".to_owned()),
                (Scope::Model, "gpt-4o".to_owned()),
            ],
            "the blank cost centre names no scope"
        );
        // 2026-11-25T20:54:02Z
        let now = 1_795_640_042_000;
        let call = policy.call(
            &scopes,
            Caller {
                request_id: "r1",
                user: USER,
            },
            Reserve {
                tokens: 10,
                cost_micros: 20,
                unpriced: true,
            },
            true,
            Lease {
                slots: 16,
                return_ms: 3_270,
            },
            now,
        );
        assert_eq!(call.keys.len(), 1 + 9 * 3);
        assert_eq!(call.keys[0], "ck:resv:req:{r1}");
        assert_eq!(
            &call.keys[10..19],
            [
                "ck:limits:tenant:{acme}",
                "ck:limits:tenant:{*}",
                "ck:rate:tenant:{acme}",
                "ck:resv:z:tenant:{acme}",
                "ck:resv:sum:tenant:{acme}",
                "ck:ledger:tenant:{acme}:2026-11-25",
                "ck:ledger:tenant:{acme}:2026-11",
                "ck:roll:tenant:{acme}",
                "ck:limits:tenant:{*}",
            ]
        );
        assert_eq!(
            call.args,
            [
                "1795640042000",
                "60000",
                "600000",
                "10",
                "20",
                "1",
                "1795651200000",
                "1796083200000",
                "r1",
                "16",
                "3270",
                "0",
                "60",
                "",
                ""
            ]
        );
    }

    #[test]
    fn an_mcp_request_is_checked_against_its_server_and_tool_only_per_user() {
        let policy = Policy {
            default_user_rpm: 60,
            window: Duration::from_secs(60),
            reservation_ttl: Duration::from_secs(600),
        };
        let mcp = |server: &str, tool: Option<&str>| AuthorizeRequest {
            mcp: Some(crate::validated::McpScope {
                server: server.to_owned(),
                tool: tool.map(str::to_owned),
            }),
            ..request()
        };
        // (request, scopes)
        let cases = [
            (
                mcp("everything", None),
                vec![(Scope::McpServer, "everything".to_owned())],
            ),
            (
                mcp("everything", Some("echo")),
                vec![
                    (Scope::McpServer, "everything".to_owned()),
                    (Scope::McpTool, "everything/echo".to_owned()),
                ],
            ),
        ];
        for (request, expected) in cases {
            assert_eq!(scopes_of(&request), expected, "{:?}", request.mcp);
        }
        let scopes = scopes_of(&mcp("everything", Some("echo")));
        let call = policy.call(
            &scopes,
            Caller {
                request_id: "r1",
                user: USER,
            },
            Reserve::default(),
            true,
            Lease::default(),
            1_795_640_042_000,
        );
        assert_eq!(call.keys.len(), 1 + 9 * 2);
        assert_eq!(
            &call.keys[10..19],
            [
                "ck:limits:mcp_tool:{everything/echo}".to_owned(),
                "ck:limits:mcp_tool:{*}".to_owned(),
                format!("ck:rate:mcp_tool:{{{USER}:everything/echo}}"),
                format!("ck:resv:z:mcp_tool:{{{USER}:everything/echo}}"),
                format!("ck:resv:sum:mcp_tool:{{{USER}:everything/echo}}"),
                format!("ck:ledger:mcp_tool:{{{USER}:everything/echo}}:2026-11-25"),
                format!("ck:ledger:mcp_tool:{{{USER}:everything/echo}}:2026-11"),
                format!("ck:roll:mcp_tool:{{{USER}:everything/echo}}"),
                "ck:limits:mcp_tool:{everything/*}".to_owned(),
            ]
        );
        assert_eq!(
            call.keys[3],
            format!("ck:rate:mcp_server:{{{USER}:everything}}")
        );
        assert_eq!(call.keys[9], call.keys[2], "a server has no middle set");
        // No user fallback rpm for MCP scopes.
        assert_eq!(&call.args[12..], ["", ""]);

        let limit = named(
            Scope::McpTool,
            "everything/echo",
            state(Metric::Rpm, None, 10, 10),
        );
        assert_eq!(limit.name, "mcp_tool:rpm");
        assert_eq!(
            message(&limit, Reserve::default(), Duration::from_secs(60)),
            "MCP tool everything/echo's per-user request limit of 10 per 60s reached"
        );
    }

    #[test]
    fn messages_name_the_limit_and_its_owner() {
        let reserve = Reserve {
            tokens: 1200,
            cost_micros: 1_200_000,
            unpriced: false,
        };
        let month = Some(BudgetPeriod::Month);
        let day = Some(BudgetPeriod::Day);
        let rolling = Some(BudgetPeriod::Rolling { secs: 3600 });
        let cases = [
            (
                named(Scope::User, USER, state(Metric::Rpm, None, 3, 3)),
                "user request limit of 3 per 60s reached",
            ),
            (
                named(Scope::Tenant, "acme", state(Metric::Rpm, None, 100, 100)),
                "tenant acme's request limit of 100 per 60s reached",
            ),
            (
                named(Scope::Model, "gpt-4o", state(Metric::Tpm, None, 1000, 1000)),
                "model gpt-4o's token limit of 1000 per 60s reached",
            ),
            (
                named(Scope::User, USER, state(Metric::Tpm, None, 1000, 400)),
                "user token limit of 1000 per 60s has 600 tokens left, less than this \
                 request's worst case of 1200 tokens",
            ),
            (
                named(
                    Scope::Tenant,
                    "acme",
                    state(Metric::UsdMicros, month, 500_000_000, 500_000_000),
                ),
                "tenant acme's monthly budget of $500.00 is spent",
            ),
            (
                named(
                    Scope::CostCenter,
                    "cc-1",
                    state(Metric::UsdMicros, day, 5_000_000, 4_600_000),
                ),
                "cost centre cc-1's daily budget of $5.00 has $0.40 left, less than this \
                 request's worst case of $1.20",
            ),
            (
                named(
                    Scope::User,
                    USER,
                    state(Metric::UsdMicros, rolling, 1_000_000, 2_000_000),
                ),
                "user budget of $1.00 per 3600s is spent",
            ),
            (
                named(Scope::Tenant, "ml", state(Metric::Tokens, month, 10, 10)),
                "tenant ml's monthly token budget of 10 tokens is spent",
            ),
            (
                named(Scope::Tenant, "ml", state(Metric::Tokens, day, 2000, 1000)),
                "tenant ml's daily token budget of 2000 tokens has 1000 tokens left, less \
                 than this request's worst case of 1200 tokens",
            ),
            (
                named(Scope::Model, "m", state(Metric::Tokens, rolling, 10, 10)),
                "model m's token budget of 10 tokens per 3600s is spent",
            ),
        ];
        for (limit, expected) in cases {
            assert_eq!(message(&limit, reserve, Duration::from_secs(60)), expected);
        }
        // A request that reserves nothing is denied only by a spent limit.
        let spent = named(Scope::Tenant, "acme", state(Metric::UsdMicros, month, 5, 5));
        assert_eq!(
            message(&spent, Reserve::default(), Duration::from_secs(60)),
            "tenant acme's monthly budget of $0.000005 is spent"
        );
    }

    #[test]
    fn the_tightest_limit_has_the_least_left_as_a_share() {
        let limits = [
            named(Scope::User, USER, state(Metric::Rpm, None, 60, 30)),
            named(Scope::Tenant, "acme", state(Metric::Tpm, None, 1000, 900)),
            named(Scope::Model, "m", state(Metric::Rpm, None, 10, 9)),
        ];
        let tightest = tightest(&limits).expect("some");
        assert_eq!(
            tightest.name, "tenant:tpm",
            "of equal shares (10%), the first"
        );
        assert!(super::tightest(&[]).is_none());

        let decision = Decision::Allow {
            limits: limits.to_vec(),
            slots: 1,
        };
        let body = serde_json::to_value(decision.answer()).unwrap();
        assert_eq!(
            chokepoint_contract::validate::check(Schema::Decision, &body),
            Ok(())
        );
        assert_eq!(body["limit"], 1000);
        assert_eq!(body["remaining"], 100);
        assert_eq!(body["limits"][2]["name"], "model:rpm");
        assert_eq!(body["limits"][2]["remaining"], 1);
    }

    #[test]
    fn the_model_scope_keys_on_the_model_key_when_sent() {
        // (model, model_key, the model scope's id)
        let cases = [
            (Some("gpt-4o-2024-08-06"), Some("gpt-4o*"), Some("gpt-4o*")),
            (Some("made-up-name"), Some("other"), Some("other")),
            (Some("gpt-4o"), None, Some("gpt-4o")),
            (None, Some("other"), Some("other")),
            (Some(" "), None, None),
            (None, None, None),
        ];
        for (model, model_key, expected) in cases {
            let request = AuthorizeRequest {
                model: model.map(str::to_owned),
                model_key: model_key.map(str::to_owned),
                ..request()
            };
            let scopes = scopes_of(&request);
            let id = scopes
                .iter()
                .find(|(scope, _)| *scope == Scope::Model)
                .map(|(_, id)| id.as_str());
            assert_eq!(id, expected, "{model:?} {model_key:?}");
        }
    }

    #[test]
    fn an_unpriced_denial_names_the_model_and_the_budget_and_has_no_retry_time() {
        let month = Some(BudgetPeriod::Month);
        let unpriced = |scope, id: &str, period| {
            let mut state = state(Metric::UsdMicros, period, 25_000_000, 0);
            state.tripped = true;
            state.unpriced = true;
            named(scope, id, state)
        };
        let request = AuthorizeRequest {
            model: Some("gpt-4o".into()),
            model_key: Some("other".into()),
            ..request()
        };
        let cases = [
            (
                unpriced(Scope::User, USER, month),
                "model gpt-4o has no price, so it cannot be charged to the user's monthly \
                 budget of $25.00",
            ),
            (
                unpriced(Scope::Tenant, "acme", Some(BudgetPeriod::Day)),
                "model gpt-4o has no price, so it cannot be charged to tenant acme's daily \
                 budget of $25.00",
            ),
            (
                unpriced(
                    Scope::Model,
                    "other",
                    Some(BudgetPeriod::Rolling { secs: 60 }),
                ),
                "model gpt-4o has no price, so it cannot be charged to model other's budget \
                 of $25.00 per 60s",
            ),
        ];
        for (limit, expected) in cases {
            let message = unpriced_message(&limit, &request);
            assert!(message.starts_with(expected), "{message}");
            let decision = Decision::Deny {
                tripped: limit,
                message,
            };
            let body = serde_json::to_value(decision.answer()).unwrap();
            assert_eq!(
                chokepoint_contract::validate::check(Schema::Decision, &body),
                Ok(())
            );
            assert_eq!(body["reason"], reason::UNPRICED_MODEL, "{body}");
            assert!(body.get("retry_after_ms").is_none(), "{body}");
        }
        // Without a model name the key names it.
        let keyed = AuthorizeRequest {
            model: None,
            ..request
        };
        let message = unpriced_message(&unpriced(Scope::User, USER, month), &keyed);
        assert!(message.starts_with("model other has no price"), "{message}");
    }
}
