//! The per-request context: forwards Envoy's callbacks to the request's [`Flow`].

use std::cell::RefCell;
use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

use super::metrics::Metrics;
use super::proxy_host::ProxyHost;
use crate::auth_state::AuthState;
use crate::flow::{Flow, Next};
use crate::runtime::Runtime;

pub struct Http {
    flow: Flow,
    metrics: Rc<Metrics>,
    usage_queue: Option<u32>,
}

impl Http {
    pub fn new(
        rt: Rc<Runtime>,
        auth: Rc<RefCell<AuthState>>,
        metrics: Rc<Metrics>,
        usage_queue: Option<u32>,
    ) -> Http {
        Http {
            flow: Flow::new(rt, auth),
            metrics,
            usage_queue,
        }
    }

    /// Runs one step of the flow against the real host.
    fn step<R>(&mut self, f: impl FnOnce(&mut Flow, &mut ProxyHost<'_>) -> R) -> R {
        let Http {
            flow,
            metrics,
            usage_queue,
        } = self;
        let mut host = ProxyHost {
            metrics,
            usage_queue: *usage_queue,
        };
        f(flow, &mut host)
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
        let (status, body) = super::proxy_host::call_response(body_size);
        self.step(|flow, host| flow.on_callout_response(host, token_id, status, &body));
    }
}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        action(self.step(|flow, host| flow.on_request_headers(host, end_of_stream)))
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        action(self.step(|flow, host| flow.on_request_body(host, body_size, end_of_stream)))
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        action(self.step(|flow, host| flow.on_response_headers(host)))
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        action(self.step(|flow, host| flow.on_response_body(host, body_size, end_of_stream)))
    }

    fn on_log(&mut self) {
        self.step(|flow, host| flow.on_log(host));
    }
}
