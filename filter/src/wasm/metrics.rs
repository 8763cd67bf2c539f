//! Envoy counters for [`Counter`], defined once per VM.

use std::collections::HashMap;

use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;

use crate::host::Counter;

#[derive(Default)]
pub struct Metrics {
    ids: HashMap<String, u32>,
}

impl Metrics {
    pub fn define() -> Metrics {
        let mut ids = HashMap::new();
        for c in Counter::all() {
            let name = c.stat_name();
            match hostcalls::define_metric(MetricType::Counter, &name) {
                Ok(id) => {
                    ids.insert(name, id);
                }
                Err(e) => log::warn!("cannot define metric {name}: {e:?}"),
            }
        }
        Metrics { ids }
    }

    pub fn increment(&self, c: Counter) {
        if let Some(id) = self.ids.get(&c.stat_name()) {
            // A lost increment is not worth failing a request over.
            let _ = hostcalls::increment_metric(*id, 1);
        }
    }
}
