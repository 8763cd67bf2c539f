//! Out of sight: a request whose usage would be reported where the gateway cannot see it
//! is refused: OpenAI's background responses, fetched later by id.

use crate::accounting::usage::report::Format;
use crate::flow::step::{Cx, Go, Step};
use crate::host::Counter;
use crate::providers::reply::{self, Reply};

pub struct OutOfSight;

impl Step for OutOfSight {
    fn name(&self) -> &'static str {
        "out_of_sight"
    }

    fn reads_body(&self) -> bool {
        true
    }

    fn run(&self, cx: &mut Cx<'_>) -> Result<Go, Reply> {
        let responses = cx
            .facts
            .endpoint
            .is_some_and(|e| e.format == Some(Format::OpenAiResponses));
        if responses && cx.fields().background {
            cx.host.count(Counter::BadRequest);
            return Err(reply::bad_request(
                "background_not_supported",
                "Background responses are not supported through this gateway: their usage \
                 would be reported out of its sight. Send the request without `background`.",
            ));
        }
        Ok(Go::Next)
    }
}
