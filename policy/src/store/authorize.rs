//! The authorize round trip: `scripts/authorize.lua` (after `scripts/windows.lua`) and its
//! reply, read strictly.

use redis::Value;

use super::{Store, StoreError};
use crate::limit_set::BudgetPeriod;

/// The keys and arguments of one run of the authorize script, in the order its header
/// documents (built by `decision`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptCall {
    pub keys: Vec<String>,
    pub args: Vec<String>,
    /// Per scope, what precedes an id in its reservation record's key in the cluster
    /// layout (`keys::scope_reservation_prefix`), where the call is split by scope.
    pub scope_prefixes: Vec<String>,
}

/// What a limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Requests per rate window.
    Rpm,
    /// Tokens per rate window.
    Tpm,
    /// Budget in micro-dollars.
    UsdMicros,
    /// Budget in tokens.
    Tokens,
}

impl Metric {
    pub const ALL: [Metric; 4] = [Metric::Rpm, Metric::Tpm, Metric::UsdMicros, Metric::Tokens];

    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Rpm => "rpm",
            Metric::Tpm => "tpm",
            Metric::UsdMicros => "usd_micros",
            Metric::Tokens => "tokens",
        }
    }

    fn parse(text: &[u8]) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|metric| metric.as_str().as_bytes() == text)
    }

    /// Rate limits reset with their window; budgets with their period.
    pub fn is_budget(self) -> bool {
        matches!(self, Metric::UsdMicros | Metric::Tokens)
    }
}

/// Which limit set a limit came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The scope's own set.
    Own,
    /// The scope kind's default set (`*`).
    Default,
    /// The service's configuration (the users' fallback rpm).
    Config,
    /// An MCP tool's server's set (`mcp_tool:<server>/*`).
    Server,
}

/// One limit as the script saw it (see the script's header for the fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitState {
    /// Index into the scopes of the call (0-based).
    pub scope: usize,
    pub metric: Metric,
    /// The budget's period; `None` for rate limits.
    pub period: Option<BudgetPeriod>,
    pub limit: u64,
    pub used: u64,
    pub reserved: u64,
    pub reset_after_ms: u64,
    pub tripped: bool,
    /// Tripped because the request has no price and this is a dollar budget: no amount
    /// of waiting lets it through.
    pub unpriced: bool,
    pub source: Source,
}

impl LimitState {
    pub fn remaining(&self) -> u64 {
        self.limit
            .saturating_sub(self.used.saturating_add(self.reserved))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    /// Requests' worth taken: 1, or more for a lease; 0 when denied or only reporting.
    pub slots: u64,
    pub limits: Vec<LimitState>,
}

impl Store {
    /// Runs the authorize script once. `Script` sends EVALSHA and on NOSCRIPT (Redis
    /// restarted, failed over, or `SCRIPT FLUSH`) loads the script and retries, so the
    /// body crosses the wire only when Redis lost it.
    ///
    /// On a timeout the script may still run later and take the request's share; the
    /// caller has already answered 503 by then, so at worst a scope loses one request's
    /// worth until its window ends or the reservation expires.
    pub async fn authorize(&self, call: &ScriptCall) -> Result<Verdict, StoreError> {
        if self.sharded() {
            return self.authorize_sharded(call).await;
        }
        self.run_authorize(&call.keys, &call.args).await
    }

    /// One run of the script with these keys and arguments.
    pub(super) async fn run_authorize(
        &self,
        keys: &[String],
        args: &[String],
    ) -> Result<Verdict, StoreError> {
        let mut invocation = self.inner.authorize.prepare_invoke();
        for key in keys {
            invocation.key(key);
        }
        for arg in args {
            invocation.arg(arg);
        }
        let reply: Value = self
            .bounded(|mut connection| async move { invocation.invoke_async(&mut connection).await })
            .await?;
        parse_verdict(&reply).ok_or_else(|| {
            self.record(StoreError::UnexpectedReply(format!(
                "authorize.lua returned {reply:?}"
            )))
        })
    }
}

pub(super) fn parse_verdict(reply: &Value) -> Option<Verdict> {
    let Value::Array(items) = reply else {
        return None;
    };
    let (first, rest) = items.split_first()?;
    let allowed = match first {
        Value::Int(1) => true,
        Value::Int(0) => false,
        _ => return None,
    };
    let (slots, rest) = rest.split_first()?;
    let slots = match slots {
        Value::Int(n) => u64::try_from(*n).ok()?,
        _ => return None,
    };
    let limits = rest.iter().map(parse_limit).collect::<Option<Vec<_>>>()?;
    // A denial always names at least one tripped limit.
    if !allowed && !limits.iter().any(|limit| limit.tripped) {
        return None;
    }
    Some(Verdict {
        allowed,
        slots,
        limits,
    })
}

fn parse_limit(value: &Value) -> Option<LimitState> {
    let Value::Array(fields) = value else {
        return None;
    };
    let [scope, metric, period, limit, used, reserved, reset, tripped, source] = fields.as_slice()
    else {
        return None;
    };
    let int = |value: &Value| match value {
        Value::Int(n) => u64::try_from(*n).ok(),
        _ => None,
    };
    let text = |value: &Value| match value {
        Value::BulkString(bytes) => Some(bytes.clone()),
        Value::SimpleString(text) => Some(text.clone().into_bytes()),
        _ => None,
    };
    let metric = Metric::parse(&text(metric)?)?;
    let period = text(period)?;
    let period = if metric.is_budget() {
        Some(BudgetPeriod::parse(std::str::from_utf8(&period).ok()?)?)
    } else if period.is_empty() {
        None
    } else {
        return None;
    };
    let (tripped, unpriced) = match int(tripped)? {
        0 => (false, false),
        1 => (true, false),
        // Only a dollar budget can refuse an unpriced request.
        2 if metric == Metric::UsdMicros => (true, true),
        _ => return None,
    };
    Some(LimitState {
        scope: usize::try_from(int(scope)?.checked_sub(1)?).ok()?,
        metric,
        period,
        limit: int(limit)?,
        used: int(used)?,
        reserved: int(reserved)?,
        reset_after_ms: int(reset)?,
        tripped,
        unpriced,
        source: match int(source)? {
            0 => Source::Own,
            1 => Source::Default,
            2 => Source::Config,
            3 => Source::Server,
            _ => return None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    fn limit(fields: [Value; 9]) -> Value {
        Value::Array(fields.to_vec())
    }

    fn rpm(tripped: i64) -> Value {
        limit([
            Value::Int(1),
            bulk("rpm"),
            bulk(""),
            Value::Int(3),
            Value::Int(3),
            Value::Int(0),
            Value::Int(41_000),
            Value::Int(tripped),
            Value::Int(2),
        ])
    }

    fn budget() -> Value {
        usd_budget(0)
    }

    fn usd_budget(tripped: i64) -> Value {
        limit([
            Value::Int(2),
            bulk("usd_micros"),
            bulk("rolling:3600"),
            Value::Int(500),
            Value::Int(100),
            Value::Int(50),
            Value::Int(9),
            Value::Int(tripped),
            Value::Int(1),
        ])
    }

    #[test]
    fn reads_well_formed_replies() {
        let verdict = parse_verdict(&Value::Array(vec![
            Value::Int(0),
            Value::Int(0),
            rpm(1),
            budget(),
        ]))
        .expect("verdict");
        assert!(!verdict.allowed);
        assert_eq!(
            verdict.limits[0],
            LimitState {
                scope: 0,
                metric: Metric::Rpm,
                period: None,
                limit: 3,
                used: 3,
                reserved: 0,
                reset_after_ms: 41_000,
                tripped: true,
                unpriced: false,
                source: Source::Config,
            }
        );
        let budget = &verdict.limits[1];
        assert_eq!(
            (budget.scope, budget.metric, budget.period, budget.source),
            (
                1,
                Metric::UsdMicros,
                Some(BudgetPeriod::Rolling { secs: 3600 }),
                Source::Default
            )
        );
        assert_eq!(budget.remaining(), 350);
        assert!(!budget.tripped && !budget.unpriced);
        let unpriced = parse_verdict(&Value::Array(vec![
            Value::Int(0),
            Value::Int(0),
            usd_budget(2),
        ]))
        .expect("unpriced");
        assert!(unpriced.limits[0].tripped && unpriced.limits[0].unpriced);
        let allowed =
            parse_verdict(&Value::Array(vec![Value::Int(1), Value::Int(4)])).expect("no limits");
        assert!(allowed.allowed && allowed.limits.is_empty());
        assert_eq!(allowed.slots, 4);
    }

    #[test]
    fn rejects_anything_else() {
        let mut bad_scope = rpm(0);
        if let Value::Array(fields) = &mut bad_scope {
            fields[0] = Value::Int(0);
        }
        let mut bad_period = rpm(0);
        if let Value::Array(fields) = &mut bad_period {
            fields[2] = bulk("day");
        }
        let mut negative = budget();
        if let Value::Array(fields) = &mut negative {
            fields[4] = Value::Int(-1);
        }
        let cases = [
            Value::Nil,
            Value::Int(1),
            Value::Array(vec![]),
            Value::Array(vec![Value::Int(2)]),
            Value::Array(vec![bulk("1")]),
            // No slot count.
            Value::Array(vec![Value::Int(1)]),
            Value::Array(vec![Value::Int(1), Value::Int(-1)]),
            // A denial that names no tripped limit.
            Value::Array(vec![Value::Int(0), Value::Int(0), rpm(0)]),
            Value::Array(vec![
                Value::Int(1),
                Value::Int(1),
                Value::Array(vec![Value::Int(1)]),
            ]),
            Value::Array(vec![Value::Int(1), Value::Int(1), bad_scope]),
            Value::Array(vec![Value::Int(1), Value::Int(1), bad_period]),
            Value::Array(vec![Value::Int(1), Value::Int(1), negative]),
            // Only a dollar budget refuses an unpriced request.
            Value::Array(vec![Value::Int(0), Value::Int(0), rpm(2)]),
            Value::Array(vec![Value::Int(0), Value::Int(0), usd_budget(3)]),
        ];
        for reply in cases {
            assert_eq!(parse_verdict(&reply), None, "{reply:?}");
        }
    }
}
