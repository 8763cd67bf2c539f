//! Anthropic Messages: `message` bodies and their event streams.
//!
//! `message_start` carries the input counts and a placeholder output count (usually 1);
//! `message_delta`, near the end, carries the cumulative output count, and newer API
//! versions repeat the input and cache counts there too. Each count is therefore taken
//! from the latest event that has it. Usage is final only once `message_delta` has come:
//! a stream cut after `message_start` knows its input but not its output. `message_stop`
//! ends a normal stream; `event: error` reports a failure (e.g. `overloaded_error`).
//!
//! Mapping (the names are Anthropic's). Anthropic's `input_tokens` counts only the
//! tokens after the last cache breakpoint, so the parts are added back:
//! - `input_tokens` = `input_tokens + cache_read_input_tokens + cache_creation_input_tokens`;
//! - `cached_input_tokens` = `cache_read_input_tokens`;
//! - `cache_creation_input_tokens` = `cache_creation_input_tokens`;
//! - `cache_write_1h_input_tokens` = `cache_creation.ephemeral_1h_input_tokens` (the
//!   writes of breakpoints with `ttl: "1h"`, a part of the above, priced apart);
//! - `output_tokens` = `output_tokens`, thinking included;
//! - `reasoning_tokens` = 0: Anthropic does not report thinking tokens apart.

use std::borrow::Cow;

use serde::Deserialize;

use crate::accounting::sse::Event;
use crate::accounting::usage::report::{parse, Report, Usage};
use crate::accounting::usage::wire::{ApiError, Count, Label, TextLen};

/// The counts seen so far in a stream, as Anthropic names them.
#[derive(Debug, Default, Clone, Copy)]
pub struct Running {
    input: u64,
    cache_read: u64,
    cache_creation: u64,
    cache_write_1h: u64,
    output: u64,
}

impl Running {
    fn update(&mut self, raw: &RawUsage) {
        let keep = |field: &mut u64, count: Count| {
            if let Some(n) = count.0 {
                *field = n;
            }
        };
        keep(&mut self.input, raw.input_tokens);
        keep(&mut self.cache_read, raw.cache_read_input_tokens);
        keep(&mut self.cache_creation, raw.cache_creation_input_tokens);
        if let Some(split) = &raw.cache_creation {
            keep(&mut self.cache_write_1h, split.ephemeral_1h_input_tokens);
        }
        keep(&mut self.output, raw.output_tokens);
    }

    fn normalise(&self) -> Usage {
        Usage {
            input_tokens: self
                .input
                .saturating_add(self.cache_read)
                .saturating_add(self.cache_creation),
            output_tokens: self.output,
            cached_input_tokens: self.cache_read,
            reasoning_tokens: 0,
            cache_creation_input_tokens: self.cache_creation,
            // Never more than the writes it is a part of.
            cache_write_1h_input_tokens: self.cache_write_1h.min(self.cache_creation),
        }
    }
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct StreamEvent<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    /// `message_start`'s message; its `content` is empty.
    message: Option<MessageStart>,
    /// `message_delta`'s cumulative counts.
    usage: Option<RawUsage>,
    delta: Option<Block>,
    content_block: Option<Block>,
    error: Option<ApiError>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct MessageStart {
    usage: Option<RawUsage>,
}

/// A content block or a delta to one: `text`, `thinking` or a tool call's `partial_json`.
/// Signatures and redacted thinking are opaque data, not generated text.
#[derive(Default, Deserialize)]
#[serde(default)]
struct Block {
    text: TextLen,
    thinking: TextLen,
    partial_json: TextLen,
}

impl Block {
    fn text_bytes(&self) -> u64 {
        self.text
            .0
            .saturating_add(self.thinking.0)
            .saturating_add(self.partial_json.0)
    }
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct MessageBody {
    #[serde(rename = "type")]
    kind: Label,
    content: Option<Vec<Block>>,
    usage: Option<RawUsage>,
    error: Option<ApiError>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct RawUsage {
    input_tokens: Count,
    output_tokens: Count,
    cache_creation_input_tokens: Count,
    cache_read_input_tokens: Count,
    /// The writes by TTL, where the API reports them.
    cache_creation: Option<CacheCreation>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct CacheCreation {
    ephemeral_1h_input_tokens: Count,
}

pub fn on_event(running: &mut Running, event: &Event<'_>, report: &mut Report) {
    let Some(ev) = parse::<StreamEvent>(event.data, report) else {
        return;
    };
    match ev.kind.as_deref().unwrap_or(event.event) {
        "message_start" => {
            if let Some(usage) = ev.message.as_ref().and_then(|m| m.usage.as_ref()) {
                running.update(usage);
                report.usage = Some(running.normalise());
            }
        }
        "message_delta" => {
            if let Some(usage) = &ev.usage {
                running.update(usage);
                report.usage = Some(running.normalise());
                report.usage_final = true;
            }
        }
        "content_block_start" | "content_block_delta" => {
            let bytes = [&ev.content_block, &ev.delta]
                .into_iter()
                .flatten()
                .fold(0u64, |n, b| n.saturating_add(b.text_bytes()));
            report.delivered_text_bytes = report.delivered_text_bytes.saturating_add(bytes);
        }
        "message_stop" => report.completed = true,
        "error" => {
            let error = ev.error.map(ApiError::label);
            report.error = Some(error.unwrap_or_else(|| "error".to_string()));
        }
        _ => {}
    }
}

pub fn from_body(body: &[u8]) -> Report {
    let mut report = Report::default();
    let Some(message) = parse::<MessageBody>(body, &mut report) else {
        return report;
    };
    report.delivered_text_bytes = message
        .content
        .iter()
        .flatten()
        .fold(0u64, |n, b| n.saturating_add(b.text_bytes()));
    if let Some(usage) = &message.usage {
        let mut running = Running::default();
        running.update(usage);
        report.usage = Some(running.normalise());
        report.usage_final = true;
    }
    if let Some(error) = message.error {
        report.error = Some(error.label());
        return report;
    }
    report.completed = match message.kind.0.as_deref() {
        Some("message") => true,
        Some(_) => false,
        None => message.usage.is_some(),
    };
    report
}
