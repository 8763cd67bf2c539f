//! The root context: parses and validates the plugin configuration once per VM and
//! hands every request the shared, immutable runtime.

use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType};

use super::http::Http;
use super::metrics::Metrics;
use crate::config::Config;
use crate::runtime::Runtime;

#[derive(Default)]
pub struct Root {
    runtime: Option<Rc<Runtime>>,
    metrics: Rc<Metrics>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, plugin_configuration_size: usize) -> bool {
        let bytes = hostcalls::get_buffer(
            BufferType::PluginConfiguration,
            0,
            plugin_configuration_size,
        )
        .ok()
        .flatten()
        .unwrap_or_default();
        let runtime =
            Config::parse(&bytes).and_then(|c| Runtime::new(c, |k| std::env::var(k).ok()));
        match runtime {
            Ok(rt) => {
                log::info!(
                    "chokepoint configured: {} issuer(s), provider {}",
                    rt.config.issuers.len(),
                    rt.config.provider.name
                );
                self.runtime = Some(Rc::new(rt));
                self.metrics = Rc::new(Metrics::define());
                true
            }
            Err(e) => {
                // Rejecting the configuration makes Envoy refuse it at load, naming the field.
                log::error!("{e}");
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let rt = self.runtime.as_ref()?;
        Some(Box::new(Http::new(Rc::clone(rt), Rc::clone(&self.metrics))))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
