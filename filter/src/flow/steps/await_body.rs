//! Await body: the steps after this one see the request body, read whole and scanned.
//! Where Envoy holds the headers meanwhile (`Config::hold_headers`), nothing else happens
//! here. Where it cannot (Istio's WasmPlugin and TrafficExtension, Envoy Gateway), a
//! paused header callback would stop the body as well, so the headers leave first: to the
//! provider the path and API name (a model in the path is routed now), with its key, its
//! cluster and the caller's identity where it goes, and without `content-length`, since
//! the body may still be edited. The body itself is held until the steps after this one
//! have decided; a refusal then resets the upstream stream before any of it is sent.

use super::route;
use super::upstream;
use crate::flow::step::{Cx, Go, Step};
use crate::providers::api::ModelSource;
use crate::providers::reply::Reply;

pub struct AwaitBody;

impl Step for AwaitBody {
    fn name(&self) -> &'static str {
        "await_body"
    }

    fn run(&self, cx: &mut Cx<'_>) -> Result<Go, Reply> {
        if cx.rt.config.hold_headers || !cx.facts.asked.has_body {
            return Ok(Go::Body);
        }
        let in_path = cx
            .facts
            .endpoint
            .is_some_and(|e| e.api.spec().model_source() != ModelSource::Body);
        if in_path {
            // The path names the model: routed (and refused) before anything leaves.
            route::route_model(cx)?;
        }
        // One cluster: a fallback chain would need the body's answer to retry elsewhere.
        cx.facts.chain.truncate(1);
        upstream::write_headers(cx)?;
        cx.host
            .set_request_header("content-length", None)
            .map_err(|e| cx.host_failed(e))?;
        cx.facts.headers_gone = true;
        Ok(Go::Body)
    }
}
