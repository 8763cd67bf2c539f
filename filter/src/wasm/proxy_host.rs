//! [`Host`] over proxy-wasm hostcalls, all of which return `Result` (the SDK's
//! trait helpers would panic and trap the VM instead).

use std::time::{Duration, UNIX_EPOCH};

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType};

use super::metrics::Metrics;
use super::shared::EnvoyShared;
use crate::host::{Counter, Host, HostError};
use crate::jwks_sync::{CasMismatch, SharedData};
use crate::reply::Reply;

pub struct ProxyHost<'a> {
    pub metrics: &'a Metrics,
}

impl Host for ProxyHost<'_> {
    fn request_headers(&self) -> Result<Vec<(String, String)>, HostError> {
        hostcalls::get_map(MapType::HttpRequestHeaders)
            .map_err(|_| HostError("get request headers"))
    }

    fn set_request_header(&mut self, name: &str, value: Option<&str>) -> Result<(), HostError> {
        hostcalls::set_map_value(MapType::HttpRequestHeaders, name, value)
            .map_err(|_| HostError("set request header"))
    }

    fn request_body(&self, size: usize) -> Result<Vec<u8>, HostError> {
        hostcalls::get_buffer(BufferType::HttpRequestBody, 0, size)
            .map(Option::unwrap_or_default)
            .map_err(|_| HostError("get request body"))
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
        hostcalls::send_http_response(reply.status, headers, Some(reply.body.as_bytes()))
            .map_err(|_| HostError("send local reply"))
    }

    fn resume_request(&mut self) -> Result<(), HostError> {
        hostcalls::resume_http_request().map_err(|_| HostError("resume request"))
    }

    fn count(&mut self, counter: Counter) {
        self.metrics.increment(counter);
    }

    fn now_secs(&self) -> u64 {
        now_secs()
    }
}

impl SharedData for ProxyHost<'_> {
    fn get_shared(&self, key: &str) -> (Option<Vec<u8>>, u32) {
        EnvoyShared.get_shared(key)
    }

    fn set_shared(&mut self, key: &str, value: &[u8], cas: u32) -> Result<(), CasMismatch> {
        EnvoyShared.set_shared(key, value, cas)
    }
}

/// Unix seconds from Envoy's clock.
pub fn now_secs() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}
