//! The per-attempt context of the key injector (an Envoy upstream HTTP filter).

use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, MapType};

use super::abi;
use super::metrics::Metrics;
use crate::host::Counter;
use crate::providers::key_injection::{Injector, PROVIDER_HEADER, PROVIDER_METADATA};
use crate::providers::reply;

pub struct UpstreamHttp {
    injector: Rc<Injector>,
    metrics: Rc<Metrics>,
    provider: Option<String>,
}

impl UpstreamHttp {
    pub fn new(injector: Rc<Injector>, metrics: Rc<Metrics>) -> UpstreamHttp {
        UpstreamHttp {
            injector,
            metrics,
            provider: None,
        }
    }
}

impl Context for UpstreamHttp {}

impl HttpContext for UpstreamHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let provider = abi::property(&PROVIDER_METADATA)
            .ok()
            .flatten()
            .and_then(|b| String::from_utf8(b).ok());
        let edits = provider.as_deref().and_then(|p| self.injector.edits(p));
        let Some(edits) = edits else {
            // An endpoint without provider metadata is a configuration error: refuse
            // rather than send the request without a key (or with the wrong one).
            log::error!(
                "upstream endpoint has no known chokepoint provider in its metadata ({provider:?})"
            );
            self.metrics.increment(Counter::HostFailure);
            let r = reply::internal("no_provider_for_upstream");
            let headers: Vec<(&str, &str)> =
                r.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let _ = abi::send_response(r.status, &headers, r.body.as_bytes());
            return Action::Pause;
        };
        for (name, value) in edits {
            if abi::set_header(MapType::HttpRequestHeaders, name, value.as_deref()).is_err() {
                self.metrics.increment(Counter::HostFailure);
            }
        }
        self.provider = provider;
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if let Some(p) = &self.provider {
            let _ = abi::set_header(MapType::HttpResponseHeaders, PROVIDER_HEADER, Some(p));
        }
        Action::Continue
    }
}
