//! Token usage as each provider reports it, read from a streamed or whole response body:
//! this file picks the reader of each wire format (each lives in its provider's module,
//! `providers::openai::chat_usage` and so on).
//!
//! Every format is normalised into one [`report::Usage`] so the rest of the gateway
//! prices and budgets all providers alike. The events are parsed into small typed structs that read
//! only counts, error codes and the *length* of generated text: prompt and completion text
//! is never kept, so it can never reach a log line or a usage record.

pub mod estimate;
pub mod report;
pub mod wire;

use crate::accounting::sse::{End, Event, SseParser};
use crate::providers::anthropic::usage as anthropic;
use crate::providers::gemini::usage as gemini;
use crate::providers::openai::{chat_usage as openai_chat, responses_usage as openai_responses};
use report::{Format, Report};

/// Reads a streamed (SSE) response chunk by chunk, as it is forwarded.
#[derive(Debug)]
pub struct StreamAccountant {
    parser: SseParser,
    reader: Reader,
    report: Report,
}

/// Per-format state that lives across events.
#[derive(Debug)]
enum Reader {
    OpenAiChat,
    OpenAiResponses,
    Anthropic(anthropic::Running),
    Gemini,
}

impl Reader {
    fn on_event(&mut self, event: &Event<'_>, report: &mut Report) {
        match self {
            Reader::OpenAiChat => openai_chat::on_event(event, report),
            Reader::OpenAiResponses => openai_responses::on_event(event, report),
            Reader::Anthropic(running) => anthropic::on_event(running, event, report),
            Reader::Gemini => gemini::on_event(event, report),
        }
    }
}

impl StreamAccountant {
    pub fn new(format: Format, max_event_bytes: usize) -> StreamAccountant {
        let reader = match format {
            Format::OpenAiChat => Reader::OpenAiChat,
            Format::OpenAiResponses => Reader::OpenAiResponses,
            Format::Anthropic => Reader::Anthropic(anthropic::Running::default()),
            Format::Gemini => Reader::Gemini,
        };
        StreamAccountant {
            parser: SseParser::new(max_event_bytes),
            reader,
            report: Report::default(),
        }
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        let StreamAccountant {
            parser,
            reader,
            report,
        } = self;
        parser.feed(chunk, |event| reader.on_event(&event, report));
        report.oversized_events = parser.oversized_events();
    }

    /// What has been learnt so far; the stream may still be running.
    pub fn report(&self) -> &Report {
        &self.report
    }

    /// Ends the stream (normally or not) and returns the final report.
    pub fn finish(&mut self) -> Report {
        if self.parser.finish() == End::MidEvent {
            self.report.ended_mid_event = true;
        }
        self.report.oversized_events = self.parser.oversized_events();
        self.report.clone()
    }
}

/// Reads a whole (non-streamed) JSON response body: a success body or the provider's error
/// body. For Gemini, a `streamGenerateContent` body without `alt=sse` (a JSON array of
/// chunks) is read too.
pub fn from_body(format: Format, body: &[u8]) -> Report {
    match format {
        Format::OpenAiChat => openai_chat::from_body(body),
        Format::OpenAiResponses => openai_responses::from_body(body),
        Format::Anthropic => anthropic::from_body(body),
        Format::Gemini => gemini::from_body(body),
    }
}

#[cfg(test)]
mod tests;
