//! Envoy stats: the fixed [`Counter`]s, defined once per VM, and usage [`Metric`]s whose
//! names depend on the provider and model, defined on first use (bounded by the price
//! table, see `telemetry`).

use std::cell::RefCell;
use std::collections::HashMap;

use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;

use crate::host::Counter;
use crate::telemetry::Metric;

#[derive(Default)]
pub struct Metrics {
    /// The fixed counters, defined up front: counting one costs no allocation.
    counters: HashMap<Counter, u32>,
    /// Usage stats, by name, defined on first use.
    ids: RefCell<HashMap<String, u32>>,
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
            let _ = hostcalls::increment_metric(id, i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    pub fn emit(&self, m: &Metric) {
        match m {
            Metric::Counter(name, n) => {
                if *n > 0 {
                    if let Some(id) = self.id(name, MetricType::Counter) {
                        let _ =
                            hostcalls::increment_metric(id, i64::try_from(*n).unwrap_or(i64::MAX));
                    }
                }
            }
            Metric::Histogram(name, v) => {
                if let Some(id) = self.id(name, MetricType::Histogram) {
                    let _ = hostcalls::record_metric(id, *v);
                }
            }
        }
    }
}
