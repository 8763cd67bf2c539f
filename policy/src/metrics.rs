//! Prometheus counters, kept as plain atomics: a handful of series does not justify a
//! metrics registry dependency.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::scope::Scope;
use crate::store::{Availability, LimitState, Metric};

#[derive(Debug, Default)]
pub struct Metrics {
    allowed: AtomicU64,
    denied: AtomicU64,
    errored: AtomicU64,
    invalid: AtomicU64,
    usage_accepted: AtomicU64,
    usage_duplicate: AtomicU64,
    usage_error: AtomicU64,
    usage_invalid_batches: AtomicU64,
    /// Usage records (and releases) refused as invalid and kept in the dead-letter stream.
    usage_dead_lettered: AtomicU64,
    /// Authorize and usage calls turned away without a valid gateway token.
    gateway_missing_token: AtomicU64,
    gateway_invalid_token: AtomicU64,
    /// Denials by the tripped limit's scope kind and metric, in `Scope::ALL` and
    /// `Metric::ALL` order.
    denials: [[AtomicU64; Metric::ALL.len()]; Scope::ALL.len()],
    /// Unpriced requests refused, by the dollar budget's scope kind (`Scope::ALL` order).
    unpriced_denials: [AtomicU64; Scope::ALL.len()],
}

#[derive(Debug, Clone, Copy)]
pub enum Outcome {
    Allow,
    Deny,
    /// The store could not decide; the caller got a 503.
    Error,
    /// The request was rejected before any decision (400/413).
    Invalid,
}

/// Redis state as seen by the store, rendered next to the counters.
#[derive(Debug, Clone, Copy)]
pub struct RedisState {
    pub availability: Availability,
    pub errors: u64,
}

impl Metrics {
    pub fn record(&self, outcome: Outcome) {
        let counter = match outcome {
            Outcome::Allow => &self.allowed,
            Outcome::Deny => &self.denied,
            Outcome::Error => &self.errored,
            Outcome::Invalid => &self.invalid,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Which limit a denial named.
    pub fn record_denial(&self, scope: Scope, limit: &LimitState) {
        let s = Scope::ALL.iter().position(|&x| x == scope).unwrap_or(0);
        let counter = if limit.unpriced {
            self.unpriced_denials.get(s)
        } else {
            let m = Metric::ALL
                .iter()
                .position(|&x| x == limit.metric)
                .unwrap_or(0);
            self.denials.get(s).and_then(|row| row.get(m))
        };
        if let Some(counter) = counter {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Invalid records (and releases) of accepted usage batches, kept in the dead-letter
    /// stream rather than booked.
    pub fn record_dead_letters(&self, n: u64) {
        self.usage_dead_lettered.fetch_add(n, Ordering::Relaxed);
    }

    /// What one usage batch did: records booked, already booked, and not processed
    /// because Redis failed (the filter retries those).
    pub fn record_usage(&self, accepted: u64, duplicates: u64, errors: u64) {
        self.usage_accepted.fetch_add(accepted, Ordering::Relaxed);
        self.usage_duplicate
            .fetch_add(duplicates, Ordering::Relaxed);
        self.usage_error.fetch_add(errors, Ordering::Relaxed);
    }

    /// A usage batch rejected as malformed (400/413): none of its records were booked,
    /// and since resending it cannot help, this is the series to alert on.
    pub fn record_invalid_usage_batch(&self) {
        self.usage_invalid_batches.fetch_add(1, Ordering::Relaxed);
    }

    /// An authorize or usage call refused for its gateway token (`code`: missing or
    /// invalid). Anything but zero means a caller other than the gateway, or a token
    /// rotated on one side only.
    pub fn record_gateway_refusal(&self, code: &str) {
        let counter = if code == "missing_gateway_token" {
            &self.gateway_missing_token
        } else {
            &self.gateway_invalid_token
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Prometheus text exposition format 0.0.4.
    pub fn render(&self, redis: RedisState) -> String {
        let mut out = String::with_capacity(1024);
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        // Writing to a String cannot fail.
        let _ = write!(
            out,
            "# HELP chokepoint_policy_authorize_total Authorization decisions by outcome.\n\
             # TYPE chokepoint_policy_authorize_total counter\n\
             chokepoint_policy_authorize_total{{decision=\"allow\"}} {}\n\
             chokepoint_policy_authorize_total{{decision=\"deny\"}} {}\n\
             chokepoint_policy_authorize_total{{decision=\"error\"}} {}\n\
             # HELP chokepoint_policy_invalid_requests_total Authorize requests rejected as malformed.\n\
             # TYPE chokepoint_policy_invalid_requests_total counter\n\
             chokepoint_policy_invalid_requests_total {}\n\
             # HELP chokepoint_policy_usage_records_total Usage records by what the ledger did with them.\n\
             # TYPE chokepoint_policy_usage_records_total counter\n\
             chokepoint_policy_usage_records_total{{result=\"accepted\"}} {}\n\
             chokepoint_policy_usage_records_total{{result=\"duplicate\"}} {}\n\
             chokepoint_policy_usage_records_total{{result=\"error\"}} {}\n\
             # HELP chokepoint_policy_usage_invalid_batches_total Usage batches rejected as malformed; none of their records were booked.\n\
             # TYPE chokepoint_policy_usage_invalid_batches_total counter\n\
             chokepoint_policy_usage_invalid_batches_total {}\n\
             # HELP chokepoint_policy_usage_dead_lettered_total Invalid usage records (and lease releases) of accepted batches, kept in the dead-letter stream ck:usage:dead instead of booked.\n\
             # TYPE chokepoint_policy_usage_dead_lettered_total counter\n\
             chokepoint_policy_usage_dead_lettered_total {}\n\
             # HELP chokepoint_policy_redis_errors_total Redis round trips that failed or timed out.\n\
             # TYPE chokepoint_policy_redis_errors_total counter\n\
             chokepoint_policy_redis_errors_total {}\n\
             # HELP chokepoint_policy_redis_up Whether the last Redis round trip succeeded (1) or not (0).\n\
             # TYPE chokepoint_policy_redis_up gauge\n\
             chokepoint_policy_redis_up {}\n",
            load(&self.allowed),
            load(&self.denied),
            load(&self.errored),
            load(&self.invalid),
            load(&self.usage_accepted),
            load(&self.usage_duplicate),
            load(&self.usage_error),
            load(&self.usage_invalid_batches),
            load(&self.usage_dead_lettered),
            redis.errors,
            u8::from(redis.availability == Availability::Up),
        );
        out.push_str(
            "# HELP chokepoint_policy_denials_total Denials by reason and by the tripped limit's scope kind and metric.\n\
             # TYPE chokepoint_policy_denials_total counter\n",
        );
        for (scope, row) in Scope::ALL.iter().zip(&self.denials) {
            for (metric, counter) in Metric::ALL.iter().zip(row) {
                // An MCP kind can only deny on rpm.
                if !scope.takes(*metric) {
                    continue;
                }
                let _ = writeln!(
                    out,
                    "chokepoint_policy_denials_total{{reason=\"{}\",scope=\"{}\",limit=\"{}\"}} {}",
                    crate::decision::reason(*metric),
                    scope.as_str(),
                    metric.as_str(),
                    load(counter),
                );
            }
        }
        for (scope, counter) in Scope::ALL.iter().zip(&self.unpriced_denials) {
            if !scope.takes(Metric::UsdMicros) {
                continue;
            }
            let _ = writeln!(
                out,
                "chokepoint_policy_denials_total{{reason=\"{}\",scope=\"{}\",limit=\"{}\"}} {}",
                chokepoint_contract::reason::UNPRICED_MODEL,
                scope.as_str(),
                Metric::UsdMicros.as_str(),
                load(counter),
            );
        }
        let _ = write!(
            out,
            "# HELP chokepoint_policy_gateway_refusals_total Authorize and usage calls refused for their gateway token.\n\
             # TYPE chokepoint_policy_gateway_refusals_total counter\n\
             chokepoint_policy_gateway_refusals_total{{code=\"missing_gateway_token\"}} {}\n\
             chokepoint_policy_gateway_refusals_total{{code=\"invalid_gateway_token\"}} {}\n",
            load(&self.gateway_missing_token),
            load(&self.gateway_invalid_token),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Source;

    #[test]
    fn renders_every_series() {
        let metrics = Metrics::default();
        for outcome in [
            Outcome::Allow,
            Outcome::Allow,
            Outcome::Deny,
            Outcome::Error,
            Outcome::Invalid,
        ] {
            metrics.record(outcome);
        }
        metrics.record_usage(5, 2, 0);
        metrics.record_usage(1, 0, 3);
        metrics.record_invalid_usage_batch();
        metrics.record_dead_letters(3);
        let limit = |metric, unpriced| LimitState {
            scope: 0,
            metric,
            period: None,
            limit: 1,
            used: 1,
            reserved: 0,
            reset_after_ms: 1,
            tripped: true,
            unpriced,
            source: Source::Own,
        };
        metrics.record_denial(Scope::Tenant, &limit(Metric::UsdMicros, false));
        metrics.record_denial(Scope::Tenant, &limit(Metric::UsdMicros, false));
        metrics.record_denial(Scope::User, &limit(Metric::Rpm, false));
        metrics.record_denial(Scope::Model, &limit(Metric::UsdMicros, true));
        metrics.record_gateway_refusal("missing_gateway_token");
        metrics.record_gateway_refusal("invalid_gateway_token");
        metrics.record_gateway_refusal("invalid_gateway_token");
        let text = metrics.render(RedisState {
            availability: Availability::Up,
            errors: 3,
        });
        for line in [
            "chokepoint_policy_authorize_total{decision=\"allow\"} 2",
            "chokepoint_policy_authorize_total{decision=\"deny\"} 1",
            "chokepoint_policy_authorize_total{decision=\"error\"} 1",
            "chokepoint_policy_invalid_requests_total 1",
            "chokepoint_policy_usage_records_total{result=\"accepted\"} 6",
            "chokepoint_policy_usage_records_total{result=\"duplicate\"} 2",
            "chokepoint_policy_usage_records_total{result=\"error\"} 3",
            "chokepoint_policy_usage_invalid_batches_total 1",
            "chokepoint_policy_usage_dead_lettered_total 3",
            "chokepoint_policy_redis_errors_total 3",
            "chokepoint_policy_redis_up 1",
            "chokepoint_policy_denials_total{reason=\"budget_exceeded\",scope=\"tenant\",limit=\"usd_micros\"} 2",
            "chokepoint_policy_denials_total{reason=\"rate_limited\",scope=\"user\",limit=\"rpm\"} 1",
            "chokepoint_policy_denials_total{reason=\"rate_limited\",scope=\"model\",limit=\"tpm\"} 0",
            "chokepoint_policy_denials_total{reason=\"budget_exceeded\",scope=\"cost_center\",limit=\"tokens\"} 0",
            "chokepoint_policy_denials_total{reason=\"unpriced_model\",scope=\"model\",limit=\"usd_micros\"} 1",
            "chokepoint_policy_denials_total{reason=\"unpriced_model\",scope=\"user\",limit=\"usd_micros\"} 0",
            "chokepoint_policy_gateway_refusals_total{code=\"missing_gateway_token\"} 1",
            "chokepoint_policy_gateway_refusals_total{code=\"invalid_gateway_token\"} 2",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert!(text.ends_with('\n'));
    }
}
