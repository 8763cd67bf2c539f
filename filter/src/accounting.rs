//! The response side of one request: reads a copy of each body chunk as it is forwarded
//! (never holding the stream) and settles the usage to charge when the exchange ends,
//! however it ends.

use crate::usage::estimate::{self, Accounted};
use crate::usage::{self, Format, Report, StreamAccountant};

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
            first_byte_ms: None,
            response_bytes: 0,
            ended: false,
        }
    }

    /// Response headers: a `text/event-stream` body is parsed event by event, any other
    /// body is read whole at its end.
    pub fn on_headers(&mut self, status: Option<u32>, content_type: Option<&str>) {
        self.status = status;
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

    /// Settles the usage. `prompt_bytes` sizes the request for estimates.
    pub fn settle(&mut self, prompt_bytes: u64) -> Settled {
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
                r
            }
        };
        let provider_error = self.status.is_some_and(|s| s >= 400);
        let accounted = if provider_error || self.status.is_none() {
            // Providers do not bill failed requests; keep whatever they reported.
            Accounted {
                usage: report.usage.unwrap_or_default(),
                estimated: false,
            }
        } else {
            estimate::account(&report, prompt_bytes)
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

    const CHAT_STREAM: &str = include_str!("../fixtures/openai_chat_stream.sse");
    const ANTHROPIC_BODY: &str = include_str!("../fixtures/anthropic_message.json");

    #[test]
    fn stream_chunks_are_counted_as_they_pass() {
        let mut a = Accounting::new(Some(Format::OpenAiChat), 1 << 20);
        a.on_headers(Some(200), Some("text/event-stream; charset=utf-8"));
        let bytes = CHAT_STREAM.as_bytes();
        let (first, rest) = bytes.split_at(7);
        a.on_chunk(first, 10, false);
        a.on_chunk(rest, 20, true);
        let s = a.settle(100);
        assert!(!s.accounted.estimated);
        assert!(s.completed);
        assert!(s.accounted.usage.output_tokens > 0);
        assert_eq!(a.first_byte_ms, Some(10));
    }

    #[test]
    fn a_cut_stream_is_estimated_never_zero() {
        let mut a = Accounting::new(Some(Format::OpenAiChat), 1 << 20);
        a.on_headers(Some(200), Some("text/event-stream"));
        let cut = CHAT_STREAM.len() / 2;
        a.on_chunk(&CHAT_STREAM.as_bytes()[..cut], 10, false);
        let s = a.settle(400);
        assert!(s.accounted.estimated);
        assert!(!s.completed);
        assert!(s.accounted.usage.output_tokens > 0);
        assert_eq!(s.accounted.usage.input_tokens, 100);
    }

    #[test]
    fn whole_bodies_are_read_at_the_end() {
        let mut a = Accounting::new(Some(Format::Anthropic), 1 << 20);
        a.on_headers(Some(200), Some("application/json"));
        for chunk in ANTHROPIC_BODY.as_bytes().chunks(5) {
            a.on_chunk(chunk, 1, false);
        }
        a.on_chunk(b"", 2, true);
        let s = a.settle(10);
        assert!(!s.accounted.estimated);
        assert!(s.accounted.usage.input_tokens > 0);
    }

    #[test]
    fn errors_are_not_estimated_and_usage_less_endpoints_are_free() {
        let mut a = Accounting::new(Some(Format::OpenAiChat), 1 << 20);
        a.on_headers(Some(429), Some("application/json"));
        a.on_chunk(br#"{"error":{"type":"rate_limit"}}"#, 1, true);
        assert_eq!(a.settle(1000).accounted, Accounted::default());
        let mut m = Accounting::new(None, 1 << 20);
        m.on_headers(Some(200), Some("application/json"));
        assert!(!m.wants_body());
        assert_eq!(m.settle(10).accounted, Accounted::default());
    }
}
