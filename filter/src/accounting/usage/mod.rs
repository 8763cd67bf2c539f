//! Token usage as each provider reports it, read from a streamed or whole response body.
//!
//! Every format is normalised into one [`Usage`] so the rest of the gateway prices and
//! budgets all providers alike. The events are parsed into small typed structs that read
//! only counts, error codes and the *length* of generated text: prompt and completion text
//! is never kept, so it can never reach a log line or a usage record.

mod anthropic;
pub mod estimate;
mod gemini;
mod openai_chat;
mod openai_responses;
mod wire;

use crate::accounting::sse::{End, Event, SseParser};

/// Token counts of one response, normalised across providers:
///
/// - `input_tokens` is the whole input, cached and cache-creating tokens included;
///   `cached_input_tokens` and `cache_creation_input_tokens` are parts of it.
/// - `output_tokens` is the whole output, reasoning ("thinking") tokens included;
///   `reasoning_tokens` is a part of it, reported only by OpenAI and Gemini.
///
/// How each provider's fields map onto these is documented in its module. Counts are kept
/// as reported: a provider that reports a part larger than its whole is priced with
/// saturating arithmetic, never a panic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_input_tokens: u64,
    pub reasoning_tokens: u64,
    pub cache_creation_input_tokens: u64,
}

impl Usage {
    /// Input tokens billed at the full input price.
    pub fn uncached_input_tokens(&self) -> u64 {
        self.input_tokens
            .saturating_sub(self.cached_input_tokens)
            .saturating_sub(self.cache_creation_input_tokens)
    }
}

/// The wire format of a provider's response, chosen by the route, not sniffed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenAI `/v1/chat/completions` (and the many servers that copy it).
    OpenAiChat,
    /// OpenAI `/v1/responses`.
    OpenAiResponses,
    /// Anthropic `/v1/messages`.
    Anthropic,
    /// Gemini `generateContent` and `streamGenerateContent`.
    Gemini,
}

impl Format {
    /// The name in usage records.
    pub fn name(self) -> &'static str {
        match self {
            Format::OpenAiChat => "openai_chat",
            Format::OpenAiResponses => "openai_responses",
            Format::Anthropic => "anthropic",
            Format::Gemini => "gemini",
        }
    }
}

/// What a response said about its own usage and how it ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Usage as the provider reported it, normalised; `None` when it never said.
    pub usage: Option<Usage>,
    /// `usage` is the provider's final count, not a running one that the stream outlived
    /// (Anthropic's `message_start`, Gemini's chunks before the last).
    pub usage_final: bool,
    /// The provider sent its normal end of response (`[DONE]`, `response.completed` or
    /// `response.incomplete`, `message_stop`, a Gemini `finishReason`), or for a whole
    /// body, the body is a successful response.
    pub completed: bool,
    /// The provider's error type or code, when it reported an error; never its message.
    pub error: Option<String>,
    /// Bytes of generated text delivered (content, reasoning, refusals, tool arguments),
    /// the basis of an estimate when usage is missing. Left 0, unmeasured, for a whole
    /// OpenAI chat body with final usage and some output: no settlement reads it then.
    pub delivered_text_bytes: u64,
    /// Events or bodies that were not the JSON their format promises.
    pub malformed_events: u64,
    /// Events dropped for exceeding the parser's size limit.
    pub oversized_events: u64,
    /// The stream stopped inside an event (a cut connection, not a clean end).
    pub ended_mid_event: bool,
}

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

/// Parses one event's or body's JSON, counting it as malformed when it is not `T`.
fn parse<'a, T: serde::Deserialize<'a>>(json: &'a [u8], report: &mut Report) -> Option<T> {
    match serde_json::from_slice(json) {
        Ok(value) => Some(value),
        Err(_) => {
            report.malformed_events += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests;
