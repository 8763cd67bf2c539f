//! OpenAI Responses API: `response` objects and their typed event streams.
//!
//! Each event names its type twice, in `event:` and in the data's `type`; the data's wins
//! (proxies that rewrite SSE framing keep the JSON intact). Usage arrives once, in the
//! terminal event's `response.usage`: `response.completed`, `response.incomplete` (cut
//! short by `max_output_tokens` or a content filter: a normal, billed end) or
//! `response.failed`. A stream-level `error` event carries a `code`.
//!
//! Mapping (the names are OpenAI's):
//! - `input_tokens` = `input_tokens`, which already includes
//!   `cached_input_tokens` = `input_tokens_details.cached_tokens`;
//! - `output_tokens` = `output_tokens`, which already includes
//!   `reasoning_tokens` = `output_tokens_details.reasoning_tokens`;
//! - `cache_creation_input_tokens` = 0.

use std::borrow::Cow;

use serde::Deserialize;

use crate::accounting::sse::Event;
use crate::accounting::usage::report::{parse, Report, Usage};
use crate::accounting::usage::wire::{ApiError, Count, Label, TextLen};

/// Events whose `delta` is generated text (audio deltas are base64 and would overcount).
const TEXT_DELTAS: &[&str] = &[
    "response.output_text.delta",
    "response.refusal.delta",
    "response.reasoning_text.delta",
    "response.reasoning_summary_text.delta",
    "response.function_call_arguments.delta",
    "response.custom_tool_call_input.delta",
    "response.mcp_call_arguments.delta",
    "response.code_interpreter_call_code.delta",
];

#[derive(Default, Deserialize)]
#[serde(default)]
struct StreamEvent<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    delta: TextLen,
    /// The response so far; only its status, usage and error are read, not its output,
    /// which repeats the text already counted from the deltas.
    response: Option<ResponseState>,
    code: Label,
    error: Option<ApiError>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct ResponseState {
    usage: Option<RawUsage>,
    error: Option<ApiError>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct ResponseBody {
    status: Label,
    output: Option<Vec<OutputItem>>,
    usage: Option<RawUsage>,
    error: Option<ApiError>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct OutputItem {
    content: Option<Vec<Part>>,
    summary: Option<Vec<Part>>,
    arguments: TextLen,
    input: TextLen,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Part {
    text: TextLen,
    refusal: TextLen,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct RawUsage {
    input_tokens: Count,
    output_tokens: Count,
    input_tokens_details: Option<InputDetails>,
    output_tokens_details: Option<OutputDetails>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct InputDetails {
    cached_tokens: Count,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct OutputDetails {
    reasoning_tokens: Count,
}

impl RawUsage {
    fn normalise(&self) -> Usage {
        Usage {
            input_tokens: self.input_tokens.or_zero(),
            output_tokens: self.output_tokens.or_zero(),
            cached_input_tokens: self
                .input_tokens_details
                .as_ref()
                .map_or(0, |d| d.cached_tokens.or_zero()),
            reasoning_tokens: self
                .output_tokens_details
                .as_ref()
                .map_or(0, |d| d.reasoning_tokens.or_zero()),
            cache_creation_input_tokens: 0,
            cache_write_1h_input_tokens: 0,
        }
    }
}

fn take_usage(usage: Option<&RawUsage>, report: &mut Report) {
    if let Some(usage) = usage {
        report.usage = Some(usage.normalise());
        report.usage_final = true;
    }
}

pub fn on_event(event: &Event<'_>, report: &mut Report) {
    let Some(ev) = parse::<StreamEvent>(event.data, report) else {
        return;
    };
    let kind = ev.kind.as_deref().unwrap_or(event.event);
    let state = ev.response.as_ref();
    match kind {
        "response.completed" | "response.incomplete" => {
            take_usage(state.and_then(|r| r.usage.as_ref()), report);
            report.completed = true;
        }
        "response.failed" => {
            take_usage(state.and_then(|r| r.usage.as_ref()), report);
            let error = ev.response.and_then(|r| r.error).map(ApiError::label);
            report.error = Some(error.unwrap_or_else(|| "response.failed".to_string()));
        }
        "error" => {
            let error = ev.error.map(ApiError::label).or(ev.code.0);
            report.error = Some(error.unwrap_or_else(|| "error".to_string()));
        }
        kind if TEXT_DELTAS.contains(&kind) => {
            report.delivered_text_bytes = report.delivered_text_bytes.saturating_add(ev.delta.0);
        }
        _ => {}
    }
}

pub fn from_body(body: &[u8]) -> Report {
    let mut report = Report::default();
    let Some(response) = parse::<ResponseBody>(body, &mut report) else {
        return report;
    };
    let parts = |p: &Option<Vec<Part>>| {
        p.iter().flatten().fold(0u64, |n, p| {
            n.saturating_add(p.text.0).saturating_add(p.refusal.0)
        })
    };
    for item in response.output.iter().flatten() {
        let bytes = parts(&item.content)
            .saturating_add(parts(&item.summary))
            .saturating_add(item.arguments.0)
            .saturating_add(item.input.0);
        report.delivered_text_bytes = report.delivered_text_bytes.saturating_add(bytes);
    }
    take_usage(response.usage.as_ref(), &mut report);
    if let Some(error) = response.error {
        report.error = Some(error.label());
        return report;
    }
    match response.status.0.as_deref() {
        Some("completed" | "incomplete") => report.completed = true,
        Some("failed") => report.error = Some("response.failed".to_string()),
        Some(_) => {}
        None => report.completed = response.usage.is_some(),
    }
    report
}
