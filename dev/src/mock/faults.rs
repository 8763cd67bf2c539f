//! Fault injection driven by request headers, so a test picks the failure
//! per request instead of reconfiguring a shared server. (`x-mock-content-type`,
//! which replaces the response's content type byte for byte, and
//! `x-mock-content-encoding: gzip`, which compresses the whole answer, are applied by
//! the mock's middleware to every answer.)

use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};

use super::sse::StreamTiming;
use super::tool_call::ToolCall;

/// Words in the completion when `x-mock-words` is absent.
pub const DEFAULT_WORDS: usize = 8;
/// Keeps a typo in `x-mock-words` from building a gigabyte response.
pub const MAX_WORDS: usize = 100_000;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults {
    /// `x-mock-status`: answer with this status and the error body the
    /// addressed provider sends for it (429 adds `retry-after: 1`).
    pub status: Option<StatusCode>,
    /// `x-mock-delay-ms`: wait before sending response headers.
    pub delay: Option<Duration>,
    /// `x-mock-event-delay-ms`: wait between stream events.
    pub event_delay: Option<Duration>,
    /// `x-mock-pause-after` + `x-mock-pause-ms`: after this many events,
    /// pause once for the duration.
    pub pause: Option<(usize, Duration)>,
    /// `x-mock-cut-after`: after this many events, abort the response.
    pub cut_after: Option<usize>,
    /// `x-mock-words`: completion length in words.
    pub words: usize,
    /// `x-mock-cache-read`: prompt tokens to report as read from the prompt
    /// cache, in each format's own terms (Anthropic: in addition to
    /// `input_tokens`; OpenAI and Gemini: the part of the prompt tokens that
    /// was cached, so capped at them).
    pub cache_read: u64,
    /// `x-mock-reasoning-tokens`: output tokens the model spends reasoning out of sight
    /// (Responses: a reasoning item before the message, counted in `reasoning_tokens`).
    pub reasoning: u64,
    /// `x-mock-tool-call: <tool> <arguments>`: an agent loop (tool_call.rs). When the
    /// request offers the tool and its conversation does not end in a tool's result, the
    /// answer calls the tool with the arguments (a JSON object; a custom tool's raw
    /// input): an Anthropic `tool_use` block, a Responses `function_call` or
    /// `custom_tool_call` item, a Gemini `functionCall` part, a Chat Completions
    /// `tool_calls` message (Azure's too). When it ends in a tool's
    /// result, the answer is text quoting the result's first 200 bytes. On these turns
    /// the model also thinks, as the request allows it: a signed Anthropic `thinking`
    /// block, a Responses `reasoning` item with `encrypted_content`, a Gemini
    /// `thoughtSignature` (signature.rs); a request that carries one back altered gets
    /// the provider's 400 whatever its headers.
    pub tool_call: Option<ToolCall>,
}

impl Faults {
    /// Like [`Faults::from_headers`], but `x-mock-only: NAME` aims the faults at the mock
    /// of that name alone (the others answer normally): a fallback test makes the first
    /// provider of a chain fail and the second succeed on the same request.
    pub fn from_headers_for(headers: &HeaderMap, name: &str) -> Self {
        let target = headers.get("x-mock-only").and_then(|v| v.to_str().ok());
        match target {
            Some(t) if t != name => {
                let mut quiet = HeaderMap::new();
                if let Some(w) = headers.get("x-mock-words") {
                    quiet.insert("x-mock-words", w.clone());
                }
                Self::from_headers(&quiet)
            }
            _ => Self::from_headers(headers),
        }
    }

    /// Unparseable values are ignored rather than rejected: a fault header
    /// the mock cannot read must not itself look like an injected fault.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let num = |name: &str| -> Option<u64> {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok())
        };
        let ms = |name: &str| num(name).map(Duration::from_millis);
        let pause = match (num("x-mock-pause-after"), ms("x-mock-pause-ms")) {
            (Some(after), Some(d)) => Some((after as usize, d)),
            _ => None,
        };
        Self {
            status: num("x-mock-status")
                .and_then(|s| u16::try_from(s).ok())
                .and_then(|s| StatusCode::from_u16(s).ok())
                .filter(|s| s.is_client_error() || s.is_server_error()),
            delay: ms("x-mock-delay-ms"),
            event_delay: ms("x-mock-event-delay-ms"),
            pause,
            cut_after: num("x-mock-cut-after").map(|k| k as usize),
            words: num("x-mock-words")
                .map(|n| (n as usize).min(MAX_WORDS))
                .unwrap_or(DEFAULT_WORDS),
            cache_read: num("x-mock-cache-read").unwrap_or(0),
            reasoning: num("x-mock-reasoning-tokens").unwrap_or(0),
            tool_call: headers
                .get("x-mock-tool-call")
                .and_then(|v| v.to_str().ok())
                .and_then(ToolCall::from_header),
        }
    }

    /// Waits out `x-mock-delay-ms`, if any.
    pub async fn delay(&self) {
        if let Some(d) = self.delay {
            tokio::time::sleep(d).await;
        }
    }

    /// The knobs that shape a stream once its headers are out.
    pub fn timing(&self) -> StreamTiming {
        StreamTiming {
            event_delay: self.event_delay,
            pause: self.pause,
            cut_after: self.cut_after,
        }
    }
}
