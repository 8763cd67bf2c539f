//! The response side of one request: reads a copy of each body chunk as it is forwarded
//! (never holding the stream) and settles the usage to charge when the exchange ends,
//! however it ends.

use crate::accounting::usage::estimate::{self, Accounted, Answering};
use crate::accounting::usage::report::{Format, Report};
use crate::accounting::usage::{self, StreamAccountant};

/// Whole (non-streamed) bodies are read up to this size; past it the usage is estimated
/// from the body size rather than buffering without bound.
pub const MAX_WHOLE_BODY_BYTES: usize = 8 * 1024 * 1024;

#[derive(Debug)]
pub struct Accounting {
    format: Option<Format>,
    max_event_bytes: usize,
    stream: Option<StreamAccountant>,
    body: Vec<u8>,
    body_overflow: bool,
    pub status: Option<u32>,
    /// When the response headers came: the provider began answering.
    headers_ms: Option<u64>,
    pub first_byte_ms: Option<u64>,
    pub response_bytes: u64,
    pub ended: bool,
}

/// The usage to charge for one exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    pub accounted: Accounted,
    pub completed: bool,
    pub error: Option<String>,
}

impl Accounting {
    pub fn new(format: Option<Format>, max_event_bytes: usize) -> Accounting {
        Accounting {
            format,
            max_event_bytes,
            stream: None,
            body: Vec::new(),
            body_overflow: false,
            status: None,
            headers_ms: None,
            first_byte_ms: None,
            response_bytes: 0,
            ended: false,
        }
    }

    /// Response headers: a `text/event-stream` body is parsed event by event, any other
    /// body is read whole at its end.
    pub fn on_headers(&mut self, status: Option<u32>, content_type: Option<&str>, now_ms: u64) {
        self.status = status;
        self.headers_ms = Some(now_ms);
        let sse = content_type.is_some_and(|ct| {
            ct.trim_start()
                .to_ascii_lowercase()
                .starts_with("text/event-stream")
        });
        if let (true, Some(format)) = (sse, self.format) {
            self.stream = Some(StreamAccountant::new(format, self.max_event_bytes));
        }
    }

    pub fn on_chunk(&mut self, chunk: &[u8], now_ms: u64, end_of_stream: bool) {
        if !chunk.is_empty() && self.first_byte_ms.is_none() {
            self.first_byte_ms = Some(now_ms);
        }
        self.response_bytes = self.response_bytes.saturating_add(chunk.len() as u64);
        self.ended |= end_of_stream;
        if self.format.is_none() {
            return;
        }
        match &mut self.stream {
            Some(s) => s.feed(chunk),
            None if self.body_overflow => {}
            None if self.body.len() + chunk.len() > MAX_WHOLE_BODY_BYTES => {
                self.body_overflow = true;
                self.body = Vec::new();
            }
            None => self.body.extend_from_slice(chunk),
        }
    }

    /// A response came, but no body callback said it ended.
    pub fn end_unseen(&self) -> bool {
        self.status.is_some() && !self.ended
    }

    /// The response ended although no body callback said so: Envoy's decompressor (in
    /// front of the filter for upstreams that compress regardless) drops the end of
    /// stream it forwards to a wasm filter (envoyproxy/envoy#18380).
    pub fn mark_ended(&mut self) {
        self.ended = true;
    }

    /// Whether the response body must be read at all (endpoints without usage need not
    /// cross the VM boundary).
    pub fn wants_body(&self) -> bool {
        self.format.is_some()
    }

    /// Settles the usage when the exchange is over (at `now_ms`). `prompt_bytes` sizes the
    /// request for estimates; `output_bound` is the most it could produce.
    ///
    /// The rule for answers that did not come whole: a request that reached the provider
    /// is charged at least its input, even when no answer came back (the client hung up
    /// first; the provider read the prompt all the same); an answer that began is charged
    /// at least what the provider is taken to have generated while it was answering
    /// (see `estimate::Answering`), hidden reasoning included, and never its whole cap.
    pub fn settle(&mut self, prompt_bytes: u64, now_ms: u64, output_bound: u64) -> Settled {
        let Some(format) = self.format else {
            return Settled {
                accounted: Accounted::default(),
                completed: self.ended,
                error: None,
            };
        };
        let report = match &mut self.stream {
            Some(s) => s.finish(),
            None if self.body_overflow => Report {
                // Unreadable: charge as if the whole body were generated text.
                delivered_text_bytes: self.response_bytes,
                completed: self.ended,
                ..Report::default()
            },
            None if self.body.is_empty() => Report::default(),
            None => {
                let mut r = usage::from_body(format, &self.body);
                r.completed &= self.ended;
                if r.usage.is_none() && !self.ended {
                    // A whole answer cut short: the provider generated all of it before
                    // sending any; what arrived is at least what it was.
                    r.delivered_text_bytes = r.delivered_text_bytes.max(self.response_bytes);
                }
                r
            }
        };
        let accounted = match self.status {
            None => estimate::unanswered(prompt_bytes),
            // Providers do not bill failed requests; keep whatever they reported.
            Some(s) if s >= 400 => Accounted {
                usage: report.usage.unwrap_or_default(),
                estimated: false,
            },
            Some(_) => {
                let answering = Answering {
                    millis: self
                        .headers_ms
                        .map_or(0, |start| now_ms.saturating_sub(start)),
                    output_bound,
                };
                estimate::account(&report, prompt_bytes, answering)
            }
        };
        Settled {
            accounted,
            completed: report.completed && self.ended,
            error: report.error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHAT_STREAM: &str = include_str!("../../fixtures/openai_chat_stream.sse");
    const ANTHROPIC_BODY: &str = include_str!("../../fixtures/anthropic_message.json");

    #[test]
    fn stream_chunks_are_counted_as_they_pass() {
        let mut a = Accounting::new(Some(Format::OpenAiChat), 1 << 20);
        a.on_headers(Some(200), Some("text/event-stream; charset=utf-8"), 5);
        let bytes = CHAT_STREAM.as_bytes();
        let (first, rest) = bytes.split_at(7);
        a.on_chunk(first, 10, false);
        a.on_chunk(rest, 20, true);
        let s = a.settle(100, 30, 4096);
        assert!(!s.accounted.estimated);
        assert!(s.completed);
        assert!(s.accounted.usage.output_tokens > 0);
        assert_eq!(a.first_byte_ms, Some(10));
    }

    #[test]
    fn a_cut_stream_is_estimated_never_zero() {
        let mut a = Accounting::new(Some(Format::OpenAiChat), 1 << 20);
        a.on_headers(Some(200), Some("text/event-stream"), 5);
        let cut = CHAT_STREAM.len() / 2;
        a.on_chunk(&CHAT_STREAM.as_bytes()[..cut], 10, false);
        let s = a.settle(400, 20, 4096);
        assert!(s.accounted.estimated);
        assert!(!s.completed);
        assert!(s.accounted.usage.output_tokens > 0);
        assert_eq!(s.accounted.usage.input_tokens, 100);
    }

    #[test]
    fn whole_bodies_are_read_at_the_end() {
        let mut a = Accounting::new(Some(Format::Anthropic), 1 << 20);
        a.on_headers(Some(200), Some("application/json"), 0);
        for chunk in ANTHROPIC_BODY.as_bytes().chunks(5) {
            a.on_chunk(chunk, 1, false);
        }
        a.on_chunk(b"", 2, true);
        let s = a.settle(10, 3, 4096);
        assert!(!s.accounted.estimated);
        assert!(s.accounted.usage.input_tokens > 0);
    }

    #[test]
    fn errors_are_not_estimated_and_usage_less_endpoints_are_free() {
        let mut a = Accounting::new(Some(Format::OpenAiChat), 1 << 20);
        a.on_headers(Some(429), Some("application/json"), 0);
        a.on_chunk(br#"{"error":{"type":"rate_limit"}}"#, 1, true);
        assert_eq!(a.settle(1000, 2, 4096).accounted, Accounted::default());
        let mut m = Accounting::new(None, 1 << 20);
        m.on_headers(Some(200), Some("application/json"), 0);
        assert!(!m.wants_body());
        assert_eq!(m.settle(10, 1, 4096).accounted, Accounted::default());
    }

    #[test]
    fn no_answer_is_charged_the_input_and_a_cut_whole_body_what_arrived() {
        // The client hung up before the response headers: the prompt was still read.
        let mut gone = Accounting::new(Some(Format::OpenAiChat), 1 << 20);
        let s = gone.settle(4_000, 1_500, 4096);
        assert_eq!(s.accounted.usage.input_tokens, 1_000);
        assert_eq!(s.accounted.usage.output_tokens, 0);
        assert!(s.accounted.estimated && !s.completed);
        // A whole JSON answer cut in the middle: what arrived counts as generated text.
        let mut cut = Accounting::new(Some(Format::Anthropic), 1 << 20);
        cut.on_headers(Some(200), Some("application/json"), 0);
        cut.on_chunk(&ANTHROPIC_BODY.as_bytes()[..200], 1, false);
        let s = cut.settle(40, 2, 4096);
        assert_eq!(s.accounted.usage.output_tokens, 50);
        assert!(s.accounted.estimated && !s.completed);
    }
}
