//! Screen: a request the gateway could not account is refused before anything else is
//! done for it: an answer format it cannot read, a body that is not JSON or is
//! compressed.

use crate::flow::step::{Cx, Go, Step};
use crate::host::Counter;
use crate::providers::reply::{self, Reply};

pub struct Screen;

impl Step for Screen {
    fn name(&self) -> &'static str {
        "screen"
    }

    fn run(&self, cx: &mut Cx<'_>) -> Result<Go, Reply> {
        let asked = &cx.facts.asked;
        let refusal = if asked.unreadable_format {
            Some(reply::bad_request(
                "unsupported_response_format",
                "The gateway answers only in JSON or SSE (`alt=json`, `alt=sse`): it must \
                 read each answer's usage.",
            ))
        } else if asked.has_body && asked.not_json {
            Some(reply::unsupported_media_type())
        } else if asked.has_body && asked.encoded {
            Some(reply::unsupported_content_encoding())
        } else {
            None
        };
        if let Some(r) = refusal {
            cx.host.count(Counter::BadRequest);
            return Err(r);
        }
        let facts = &mut *cx.facts;
        facts.trace_id = facts.asked.trace_id.clone();
        facts.path_model = facts.asked.path_model.take();
        Ok(Go::Next)
    }
}
