//! Envoy stats: the fixed [`Counter`]s, defined once per VM, and usage stats whose names
//! depend on the provider and model, defined on first use (bounded by the price table,
//! see `telemetry`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Write;

use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;

use super::abi;
use crate::accounting::telemetry::{self, Outcome};
use crate::host::Counter;

#[derive(Default)]
pub struct Metrics {
    /// The fixed counters, defined up front: counting one costs no allocation.
    counters: HashMap<Counter, u32>,
    /// Usage stats, by name, defined on first use.
    ids: RefCell<HashMap<String, u32>>,
    /// The ids of [`telemetry::names`], by label set (status class, decision, provider,
    /// model: bounded by the price table and the few decisions).
    outcome_ids: RefCell<HashMap<String, [Option<u32>; telemetry::STATS]>>,
}

impl Metrics {
    pub fn define() -> Metrics {
        let mut m = Metrics::default();
        for c in Counter::all() {
            if let Some(id) = m.id(&c.stat_name(), MetricType::Counter) {
                m.counters.insert(c, id);
            }
        }
        m
    }

    fn id(&self, name: &str, kind: MetricType) -> Option<u32> {
        if let Some(id) = self.ids.borrow().get(name) {
            return Some(*id);
        }
        match hostcalls::define_metric(kind, name) {
            Ok(id) => {
                self.ids.borrow_mut().insert(name.to_string(), id);
                Some(id)
            }
            Err(e) => {
                log::warn!("cannot define metric {name}: {e:?}");
                None
            }
        }
    }

    pub fn increment(&self, c: Counter) {
        self.add(c, 1);
    }

    pub fn add(&self, c: Counter, n: u64) {
        if let Some(id) = self.counters.get(&c).copied() {
            // A lost increment is not worth failing a request over.
            let _ = abi::increment_metric(id, i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// An outcome's usage stats. Their ids are kept per label set, so a request costs
    /// one small key and one lookup, not a name built and hashed per stat.
    pub fn record_outcome(&self, o: &Outcome) {
        let (class, decision, provider, model) = telemetry::labels(o);
        let mut key = String::with_capacity(decision.len() + provider.len() + model.len() + 8);
        for part in [decision, provider, model] {
            key.push_str(part);
            key.push('\0');
        }
        // Every digit: the names carry the whole class, however large the status.
        let _ = write!(key, "{class}");
        let cached = self.outcome_ids.borrow().get(&key).copied();
        let ids = match cached {
            Some(ids) => ids,
            None => {
                let mut ids = [None; telemetry::STATS];
                for ((id, name), histogram) in ids
                    .iter_mut()
                    .zip(telemetry::names(o))
                    .zip(telemetry::IS_HISTOGRAM)
                {
                    let kind = if histogram {
                        MetricType::Histogram
                    } else {
                        MetricType::Counter
                    };
                    *id = self.id(&name, kind);
                }
                self.outcome_ids.borrow_mut().insert(key, ids);
                ids
            }
        };
        for ((id, value), histogram) in ids
            .into_iter()
            .zip(telemetry::values(o))
            .zip(telemetry::IS_HISTOGRAM)
        {
            let (Some(id), Some(v)) = (id, value) else {
                continue;
            };
            // A lost update is not worth failing a request over.
            let _ = if histogram {
                abi::record_metric(id, v)
            } else {
                abi::increment_metric(id, i64::try_from(v).unwrap_or(i64::MAX))
            };
        }
    }
}
