//! [`Host`] and [`RootHost`] over proxy-wasm hostcalls, all of which return `Result` (the
//! SDK's trait helpers would panic and trap the VM instead).

use std::time::{Duration, UNIX_EPOCH};

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType};

use super::abi;
use super::metrics::Metrics;
use super::shared::EnvoyShared;
use crate::accounting::telemetry::Outcome;
use crate::host::{Clock, Counter, Host, HostError, RootHost};
use crate::identity::jwks_sync::{CasMismatch, SharedData};
use crate::providers::reply::Reply;

pub struct ProxyHost<'a> {
    pub metrics: &'a Metrics,
    /// The usage delivery queue (registered by the root), when there is one.
    pub usage_queue: Option<u32>,
}

impl Host for ProxyHost<'_> {
    fn request_headers(&self) -> Result<crate::host::HeaderList, HostError> {
        abi::header_pairs(MapType::HttpRequestHeaders).map_err(|_| HostError("get request headers"))
    }

    fn set_request_header(&mut self, name: &str, value: Option<&str>) -> Result<(), HostError> {
        abi::set_header(MapType::HttpRequestHeaders, name, value)
            .map_err(|_| HostError("set request header"))
    }

    fn request_body(&self, size: usize) -> Result<Vec<u8>, HostError> {
        abi::buffer(BufferType::HttpRequestBody, 0, size).map_err(|_| HostError("get request body"))
    }

    fn dispatch(
        &mut self,
        cluster: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        timeout: Duration,
    ) -> Result<u32, HostError> {
        hostcalls::dispatch_http_call(cluster, headers.to_vec(), Some(body), vec![], timeout)
            .map_err(|_| HostError("dispatch http call"))
    }

    fn send_reply(&mut self, reply: &Reply) -> Result<(), HostError> {
        let headers: Vec<(&str, &str)> = reply
            .headers
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect();
        abi::send_response(reply.status, &headers, reply.body.as_bytes())
            .map_err(|_| HostError("send local reply"))
    }

    fn callout_header(&self, name: &str) -> Option<String> {
        abi::header(MapType::HttpCallResponseHeaders, name)
    }

    fn resume_request(&mut self) -> Result<(), HostError> {
        abi::resume_request().map_err(|_| HostError("resume request"))
    }

    fn resume_response(&mut self) -> Result<(), HostError> {
        abi::resume_response().map_err(|_| HostError("resume response"))
    }

    fn count(&mut self, counter: Counter) {
        self.metrics.increment(counter);
    }

    fn response_status_and_type(&self) -> (Option<u32>, Option<String>) {
        let get = |name| abi::header(MapType::HttpResponseHeaders, name);
        (
            get(":status").and_then(|s| s.parse().ok()),
            get("content-type"),
        )
    }

    fn response_header(&self, name: &str) -> Option<String> {
        abi::header(MapType::HttpResponseHeaders, name)
    }

    fn response_flags(&self) -> Option<u64> {
        let bytes = abi::property(&["response", "flags"]).ok().flatten()?;
        Some(u64::from_le_bytes(bytes.try_into().ok()?))
    }

    fn response_body(&self, size: usize) -> Result<Vec<u8>, HostError> {
        abi::buffer(BufferType::HttpResponseBody, 0, size)
            .map_err(|_| HostError("get response body"))
    }

    fn set_request_body(&mut self, body: &[u8]) -> Result<(), HostError> {
        // Replace the whole buffered body (start 0, size = everything).
        abi::set_buffer(BufferType::HttpRequestBody, 0, usize::MAX, body)
            .map_err(|_| HostError("set request body"))
    }

    fn set_response_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        abi::set_header(MapType::HttpResponseHeaders, name, Some(value))
            .map_err(|_| HostError("set response header"))
    }

    fn remove_response_header(&mut self, name: &str) -> Result<(), HostError> {
        abi::set_header(MapType::HttpResponseHeaders, name, None)
            .map_err(|_| HostError("remove response header"))
    }

    fn replace_response_body(&mut self, size: usize, bytes: &[u8]) -> Result<(), HostError> {
        abi::set_buffer(BufferType::HttpResponseBody, 0, size, bytes)
            .map_err(|_| HostError("replace response body"))
    }

    fn set_filter_state(&mut self, name: &str, value: &[u8]) {
        if abi::set_property(&[name], value).is_err() {
            self.metrics.increment(Counter::HostFailure);
        }
    }

    fn enqueue_usage(&mut self, record: &[u8]) -> bool {
        self.usage_queue
            .is_some_and(|q| super::shared::outbox_push(q, record))
    }

    fn record_outcome(&mut self, outcome: &Outcome) {
        self.metrics.record_outcome(outcome);
    }
}

/// Envoy's clock, its CSPRNG and its shared data, the same for both hosts.
macro_rules! envoy_clock_and_shared_data {
    ($host:ty) => {
        impl Clock for $host {
            fn now_secs(&self) -> u64 {
                now_secs()
            }

            fn now_ms(&self) -> u64 {
                now_ms()
            }

            fn random_id(&self) -> String {
                random_id()
            }
        }

        impl SharedData for $host {
            fn get_shared(&self, key: &str) -> (Option<Vec<u8>>, u32) {
                EnvoyShared.get_shared(key)
            }

            fn set_shared(&mut self, key: &str, value: &[u8], cas: u32) -> Result<(), CasMismatch> {
                EnvoyShared.set_shared(key, value, cas)
            }
        }
    };
}

envoy_clock_and_shared_data!(ProxyHost<'_>);
envoy_clock_and_shared_data!(ProxyRootHost<'_>);

/// [`RootHost`] over proxy-wasm hostcalls, for the root context's background work.
pub struct ProxyRootHost<'a> {
    pub metrics: &'a Metrics,
    pub usage_queue: u32,
}

impl RootHost for ProxyRootHost<'_> {
    fn call(
        &mut self,
        cluster: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<u32, HostError> {
        hostcalls::dispatch_http_call(cluster, headers.to_vec(), body, vec![], timeout)
            .map_err(|_| HostError("dispatch http call"))
    }

    fn dequeue_usage(&mut self) -> Option<Vec<u8>> {
        abi::dequeue(self.usage_queue).ok().flatten()
    }

    fn requeue_usage(&mut self, item: &[u8]) -> bool {
        super::shared::enqueue(self.usage_queue, item)
    }

    fn push_usage(&mut self, item: &[u8]) -> bool {
        super::shared::outbox_push(self.usage_queue, item)
    }

    fn flush_outbox(&mut self) -> bool {
        super::shared::outbox_flush(self.usage_queue)
    }

    fn add(&mut self, counter: Counter, n: u64) {
        self.metrics.add(counter, n);
    }
}

/// 128 random bits, hex, from the host's CSPRNG (WASI `random_get` in Envoy).
fn random_id() -> String {
    crate::host::hex_id(jwt_simple::reexports::rand::random())
}

/// Unix milliseconds from Envoy's clock.
pub fn now_ms() -> u64 {
    abi::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Unix seconds from Envoy's clock.
pub fn now_secs() -> u64 {
    abi::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The answer to an HTTP callout, inside its response callback: the status (absent when
/// the call failed: timeout, reset, no healthy host) and the body.
pub fn call_response(body_size: usize) -> (Option<u32>, Vec<u8>) {
    let status = abi::header(MapType::HttpCallResponseHeaders, ":status")
        .and_then(|s| s.parse::<u32>().ok());
    let body = abi::buffer(BufferType::HttpCallResponseBody, 0, body_size).unwrap_or_default();
    (status, body)
}
