//! Usage extraction for every provider format (`filter/src/accounting/usage/`, each
//! format's reader in its provider's module, and `accounting/meter.rs`): streamed (SSE)
//! and whole JSON bodies of OpenAI chat, OpenAI Responses, Anthropic and
//! Gemini.
//!
//! Layout: byte 0 picks the format (`% 4`: chat, responses, anthropic, gemini) and the
//! mode (`/ 4 % 4`: stream accountant, whole body, `Accounting` over an event stream,
//! `Accounting` over a JSON body); byte 1 picks `max_event_bytes` as in the sse target
//! (and the response status in the `Accounting` modes); the rest is a [`crate::chunks`]
//! chunking of the body.
//!
//! Invariants:
//! - the running counters (delivered text, malformed and oversized events) never go down
//!   while a stream is read;
//! - the final report does not depend on how the stream was cut;
//! - an error label is a short identifier (at most 64 characters of `[A-Za-z0-9_.:/-]`):
//!   it is provider-controlled and ends up in logs and usage records;
//! - the settled usage never charges zero output for a response that delivered text or
//!   was cut before the provider's final usage; a cut answer without usage is charged
//!   its text or its unseen estimate, never past the request's bound.
//!
//! Reported token counts are kept as the provider sent them (a later Gemini chunk may
//! report less than an earlier one), so their monotonicity is not an invariant.

use chokepoint_filter::accounting::meter::Accounting;
use chokepoint_filter::accounting::usage::estimate::{account, tokens_for_bytes, Answering};
use chokepoint_filter::accounting::usage::report::{Format, Report};
use chokepoint_filter::accounting::usage::{from_body, StreamAccountant};

use crate::chunks;

const FORMATS: [Format; 4] = [
    Format::OpenAiChat,
    Format::OpenAiResponses,
    Format::Anthropic,
    Format::Gemini,
];

const STATUSES: [u32; 8] = [200, 200, 200, 201, 400, 429, 500, 503];

fn check_report(report: &Report, prompt_bytes: u64) {
    if let Some(label) = &report.error {
        assert!(
            !label.is_empty()
                && label.len() <= 64
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-.:/".contains(c)),
            "error label {label:?} is not a short identifier"
        );
    }
    let answering = Answering {
        millis: 5_000,
        output_bound: 4_096,
    };
    let accounted = account(report, prompt_bytes, answering);
    // The provider's final count is the bill, even for a stream cut after it (a
    // `message_delta` with the final usage, then no `message_stop`); only a count that
    // is missing or still running is topped up.
    if report.delivered_text_bytes > 0 || (!report.completed && !report.usage_final) {
        assert!(
            accounted.usage.output_tokens > 0,
            "text was delivered ({} bytes) or the answer was cut before its final usage, but zero output is charged: {report:?}",
            report.delivered_text_bytes
        );
    }
    if report.usage.is_none() {
        assert!(accounted.estimated);
        let text = tokens_for_bytes(report.delivered_text_bytes);
        let out = accounted.usage.output_tokens;
        if report.completed {
            assert_eq!(out, text, "a whole answer is charged its text");
        } else {
            assert!(
                out >= text && out <= text.max(answering.output_bound),
                "a cut answer: {out} for {text} tokens of text"
            );
        }
    }
}

fn stream(format: Format, max: usize, chunks: &[&[u8]]) -> Report {
    let mut accountant = StreamAccountant::new(format, max);
    let mut last = Report::default();
    for chunk in chunks {
        accountant.feed(chunk);
        let now = accountant.report();
        assert!(now.delivered_text_bytes >= last.delivered_text_bytes);
        assert!(now.malformed_events >= last.malformed_events);
        assert!(now.oversized_events >= last.oversized_events);
        last = now.clone();
    }
    let report = accountant.finish();
    assert!(report.delivered_text_bytes >= last.delivered_text_bytes);
    report
}

fn accounting(
    format: Format,
    max: usize,
    status: u32,
    content_type: &str,
    chunks: &[&[u8]],
) -> chokepoint_filter::accounting::meter::Settled {
    let mut a = Accounting::new(Some(format), max);
    a.on_headers(Some(status), Some(content_type), 0);
    let mut bytes = 0u64;
    for (i, chunk) in chunks.iter().enumerate() {
        a.on_chunk(chunk, i as u64, i + 1 == chunks.len());
        bytes += chunk.len() as u64;
    }
    if chunks.is_empty() {
        a.on_chunk(b"", 0, true);
    }
    assert_eq!(a.response_bytes, bytes);
    a.settle(1000, 1000, 4096)
}

pub fn run(data: &[u8]) {
    let [selector, limit, rest @ ..] = data else {
        return;
    };
    let format = FORMATS[usize::from(selector % 4)];
    let mode = selector / 4 % 4;
    let max = crate::sse::max_event_bytes(*limit);
    let cut = chunks::split(rest);
    match mode {
        0 => {
            let whole = stream(format, max, &[cut.stream]);
            let chunked = stream(format, max, &cut.chunks);
            assert_eq!(whole, chunked, "chunking changed the report");
            check_report(&whole, 400);
        }
        1 => {
            let report = from_body(format, cut.stream);
            check_report(&report, 400);
            assert_eq!(report.oversized_events, 0);
            assert!(!report.ended_mid_event);
        }
        _ => {
            let status = STATUSES[usize::from(limit % 8)];
            let content_type = if mode == 2 {
                "text/event-stream; charset=utf-8"
            } else {
                "application/json"
            };
            let whole = accounting(format, max, status, content_type, &[cut.stream]);
            let chunked = accounting(format, max, status, content_type, &cut.chunks);
            assert_eq!(whole, chunked, "chunking changed the settled usage");
        }
    }
}
