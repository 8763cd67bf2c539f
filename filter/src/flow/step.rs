//! What a step is: one job on the request path, run by the executor (`Flow`) with the
//! request's context, saying where the request goes next.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::LazyLock;

use super::facts::Facts;
use crate::accounting::meter::Accounting;
use crate::auth_state::AuthState;
use crate::host::{Host, HostError};
use crate::providers::reply::{self, Reply};
use crate::providers::request_body::{Body, RequestFields};
use crate::runtime::Runtime;

/// Where the request goes after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Go {
    /// On to the next step.
    Next,
    /// Straight to the last step, forwarding: the request goes upstream as it is now.
    Forward,
    /// Wait until the whole request body is there; the next step gets it scanned (or
    /// none at all when the request has no body).
    Body,
    /// Wait for this callout's answer, which goes to the same step's `answered`.
    Call(u32),
}

pub trait Step: Sync {
    /// For logs and the architecture page.
    fn name(&self) -> &'static str;
    fn run(&self, cx: &mut Cx<'_>) -> Result<Go, Reply>;
    /// It reads the request body (`cx.body`, `cx.fields()`): after a callout answered by
    /// an earlier step, the executor reads and scans the body again for it.
    fn reads_body(&self) -> bool {
        false
    }
    /// The callout this step started answered (`status` `None`: it failed).
    fn answered(&self, _cx: &mut Cx<'_>, _status: Option<u32>, _body: &[u8]) -> Result<Go, Reply> {
        Ok(Go::Next)
    }
}

/// What a step works with.
pub struct Cx<'a> {
    pub host: &'a mut dyn Host,
    pub rt: &'a Rc<Runtime>,
    pub auth: &'a Rc<RefCell<AuthState>>,
    pub facts: &'a mut Facts,
    pub accounting: &'a mut Option<Accounting>,
    /// The request body, scanned, in the callback that read it (`None` before, after,
    /// and for a request without one).
    pub body: Option<&'a Body<'a>>,
}

impl Cx<'_> {
    /// The body's fields, or none for a request without a body.
    pub fn fields(&self) -> &RequestFields {
        static NONE: LazyLock<RequestFields> = LazyLock::new(RequestFields::default);
        self.body.map_or(&*NONE, |b| &b.fields)
    }

    /// A hostcall failed: logged, counted, answered 500.
    pub fn host_failed(&mut self, e: HostError) -> Reply {
        log::error!("hostcall failed: {}", e.0);
        self.host.count(crate::host::Counter::HostFailure);
        reply::internal("gateway_error")
    }
}
