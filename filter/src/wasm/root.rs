//! The root context: parses and validates the plugin configuration once per VM, hands
//! every request the shared runtime and identity state, and drives the worker's
//! background work (keys, usage delivery, leases: see `background`) from the timer and
//! the callout answers. It moves bytes and makes no decisions.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType};

use super::abi;
use super::http::Http;
use super::metrics::Metrics;
use super::proxy_host::{call_response, ProxyRootHost};
use super::upstream::UpstreamHttp;
use crate::auth_state::AuthState;
use crate::background::Background;
use crate::config::Config;
use crate::providers::key_injection::{self, Injector};
use crate::runtime::Runtime;

/// The shared queue usage records travel through, from every worker to the roots.
const USAGE_QUEUE: &str = "chokepoint.usage";

#[derive(Default)]
pub struct Root {
    runtime: Option<Rc<Runtime>>,
    auth: Option<Rc<RefCell<AuthState>>>,
    background: Option<Background>,
    metrics: Rc<Metrics>,
    usage_queue: Option<u32>,
    /// Set when this plugin instance is the per-attempt key injector.
    injector: Option<Rc<Injector>>,
    /// The timer's period now (see `Background::wanted_tick`).
    tick: Duration,
}

impl Context for Root {
    /// A configuration being replaced (ECDS) or Envoy shutting down.
    fn on_done(&mut self) -> bool {
        if let (Some(background), Some(queue)) = (&mut self.background, self.usage_queue) {
            background.shutdown(&mut ProxyRootHost {
                metrics: &self.metrics,
                usage_queue: queue,
            });
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
        let (Some(background), Some(queue)) = (&mut self.background, self.usage_queue) else {
            return;
        };
        let (status, body) = call_response(body_size);
        background.answered(
            &mut ProxyRootHost {
                metrics: &self.metrics,
                usage_queue: queue,
            },
            token_id,
            status,
            &body,
        );
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
                    "chokepoint configured: {} issuer(s), {} provider(s); request path: {}",
                    rt.config.issuers.len(),
                    rt.config.providers.len(),
                    crate::flow::pipeline().join(" -> ")
                );
                let rt = Rc::new(rt);
                let auth = Rc::new(RefCell::new(AuthState::new(&rt)));
                let background = Background::new(Rc::clone(&rt), Rc::clone(&auth));
                let tick = background.wanted_tick();
                self.runtime = Some(rt);
                self.auth = Some(auth);
                self.background = Some(background);
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
        let (Some(background), Some(queue)) = (&mut self.background, self.usage_queue) else {
            return;
        };
        background.tick(&mut ProxyRootHost {
            metrics: &self.metrics,
            usage_queue: queue,
        });
        let tick = background.wanted_tick();
        if tick != self.tick && hostcalls::set_tick_period(tick).is_ok() {
            self.tick = tick;
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
