//! The per-request context: forwards Envoy's callbacks to the request's [`Flow`].

use std::cell::RefCell;
use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, BufferType, MapType};

use super::metrics::Metrics;
use super::proxy_host::ProxyHost;
use crate::auth_state::AuthState;
use crate::flow::{Flow, Next};
use crate::runtime::Runtime;

pub struct Http {
    flow: Flow,
    metrics: Rc<Metrics>,
}

impl Http {
    pub fn new(rt: Rc<Runtime>, auth: Rc<RefCell<AuthState>>, metrics: Rc<Metrics>) -> Http {
        Http {
            flow: Flow::new(rt, auth),
            metrics,
        }
    }
}

fn action(next: Next) -> Action {
    match next {
        Next::Continue => Action::Continue,
        Next::Pause => Action::Pause,
    }
}

impl Context for Http {
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        _num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        let status = hostcalls::get_map_value(MapType::HttpCallResponseHeaders, ":status")
            .ok()
            .flatten()
            .and_then(|s| s.parse::<u32>().ok());
        let body = hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
            .ok()
            .flatten()
            .unwrap_or_default();
        let mut host = ProxyHost {
            metrics: &self.metrics,
        };
        self.flow
            .on_callout_response(&mut host, token_id, status, &body);
    }
}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let mut host = ProxyHost {
            metrics: &self.metrics,
        };
        action(self.flow.on_request_headers(&mut host, end_of_stream))
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let mut host = ProxyHost {
            metrics: &self.metrics,
        };
        action(
            self.flow
                .on_request_body(&mut host, body_size, end_of_stream),
        )
    }
}
