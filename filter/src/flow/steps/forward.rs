//! Forward and inject: the request goes on, admitted, with the headers of [`upstream`]
//! (the provider's cluster and key, the caller's identity where it may go), unless they
//! already left before the body was read.

use super::upstream;
use crate::flow::facts::Decision;
use crate::flow::step::{Cx, Go, Step};
use crate::providers::reply::Reply;

pub struct Forward;

impl Step for Forward {
    fn name(&self) -> &'static str {
        "forward"
    }

    fn run(&self, cx: &mut Cx<'_>) -> Result<Go, Reply> {
        if !cx.facts.headers_gone {
            upstream::write_headers(cx)?;
        }
        if cx.facts.decision != Decision::AllowedFailOpen {
            cx.facts.decision = Decision::Allowed;
        }
        if cx.rt.config.identity_only {
            // Identity-only mode writes no usage record.
            cx.facts.logged = true;
        }
        Ok(Go::Next)
    }
}
