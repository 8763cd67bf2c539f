//! OpenAI chat completions: `chat.completion` bodies and `chat.completion.chunk` streams;
//! also the legacy `text_completion`s (the same usage, the text in `choices[].text`) and
//! embeddings (a body with only `prompt_tokens`).
//!
//! The stream reports usage once, in a last chunk with `choices: []`, and only when the
//! request asked for it (`stream_options.include_usage`, which the gateway adds); every
//! chunk before carries `"usage": null`. `data: [DONE]` ends a normal stream. A failure
//! mid-stream arrives as a chunk `{"error": {...}}` and the stream stops.
//!
//! Mapping (the names are OpenAI's):
//! - `input_tokens` = `prompt_tokens`, which already includes
//!   `cached_input_tokens` = `prompt_tokens_details.cached_tokens`;
//! - `output_tokens` = `completion_tokens`, which already includes
//!   `reasoning_tokens` = `completion_tokens_details.reasoning_tokens`;
//! - `cache_creation_input_tokens` = 0: OpenAI does not charge for writing its cache.

use serde::Deserialize;

use crate::accounting::sse::Event;
use crate::accounting::usage::report::{parse, Report, Usage};
use crate::accounting::usage::wire::{ApiError, Count, TextLen};

#[derive(Default, Deserialize)]
#[serde(default)]
struct Chunk {
    choices: Option<Vec<Choice>>,
    usage: Option<RawUsage>,
    error: Option<ApiError>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Choice {
    /// Set in stream chunks.
    delta: Option<Message>,
    /// Set in whole bodies.
    message: Option<Message>,
    /// Legacy completions: the text itself, in bodies and chunks.
    text: TextLen,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Message {
    content: TextLen,
    /// Not OpenAI's own, but reasoning models served behind its API shape stream their
    /// reasoning here, and it is billed as output.
    reasoning_content: TextLen,
    refusal: TextLen,
    tool_calls: Option<Vec<ToolCall>>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct ToolCall {
    function: Option<Function>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Function {
    arguments: TextLen,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct RawUsage {
    prompt_tokens: Count,
    completion_tokens: Count,
    prompt_tokens_details: Option<PromptDetails>,
    completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct PromptDetails {
    cached_tokens: Count,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct CompletionDetails {
    reasoning_tokens: Count,
}

impl RawUsage {
    fn normalise(&self) -> Usage {
        Usage {
            input_tokens: self.prompt_tokens.or_zero(),
            output_tokens: self.completion_tokens.or_zero(),
            cached_input_tokens: self
                .prompt_tokens_details
                .as_ref()
                .map_or(0, |d| d.cached_tokens.or_zero()),
            reasoning_tokens: self
                .completion_tokens_details
                .as_ref()
                .map_or(0, |d| d.reasoning_tokens.or_zero()),
            cache_creation_input_tokens: 0,
            cache_write_1h_input_tokens: 0,
        }
    }
}

impl Message {
    fn text_bytes(&self) -> u64 {
        let tools = self.tool_calls.iter().flatten();
        let arguments = tools
            .filter_map(|t| t.function.as_ref())
            .fold(0u64, |n, f| n.saturating_add(f.arguments.0));
        self.content
            .0
            .saturating_add(self.reasoning_content.0)
            .saturating_add(self.refusal.0)
            .saturating_add(arguments)
    }
}

/// Reads what a chunk or body says; true when it said anything a response says.
fn read(chunk: Chunk, report: &mut Report) -> bool {
    for choice in chunk.choices.iter().flatten() {
        for message in [&choice.delta, &choice.message].into_iter().flatten() {
            report.delivered_text_bytes = report
                .delivered_text_bytes
                .saturating_add(message.text_bytes());
        }
        report.delivered_text_bytes = report.delivered_text_bytes.saturating_add(choice.text.0);
    }
    if let Some(error) = chunk.error {
        report.error = Some(error.label());
        return false;
    }
    if let Some(usage) = &chunk.usage {
        report.usage = Some(usage.normalise());
        report.usage_final = true;
    }
    chunk.choices.is_some() || chunk.usage.is_some()
}

pub fn on_event(event: &Event<'_>, report: &mut Report) {
    if event.data.trim_ascii() == b"[DONE]" {
        report.completed = true;
        return;
    }
    if let Some(chunk) = parse::<Chunk>(event.data, report) {
        read(chunk, report);
    }
}

pub fn from_body(body: &[u8]) -> Report {
    usage_only(body).unwrap_or_else(|| full_body(body))
}

/// The usual answer: usage with some output, no error. Its texts are not needed then
/// (they only back an estimate), so only `usage` is read and the rest skipped unmeasured,
/// about a third of the work of [`full_body`]; anything else gets the full read.
fn usage_only(body: &[u8]) -> Option<Report> {
    #[derive(Deserialize)]
    struct Head {
        #[serde(default)]
        usage: Option<RawUsage>,
        #[serde(default)]
        error: Option<serde::de::IgnoredAny>,
    }
    let head: Head = serde_json::from_slice(body).ok()?;
    let usage = head.usage?.normalise();
    if head.error.is_some() || usage.output_tokens == 0 {
        return None;
    }
    Some(Report {
        usage: Some(usage),
        usage_final: true,
        completed: true,
        ..Report::default()
    })
}

fn full_body(body: &[u8]) -> Report {
    let mut report = Report::default();
    if let Some(chunk) = parse::<Chunk>(body, &mut report) {
        report.completed = read(chunk, &mut report);
    }
    report
}

#[cfg(test)]
mod body_tests {
    use super::*;
    use crate::accounting::usage::estimate;

    /// Reading usage alone settles every body exactly as the full read does.
    #[test]
    fn usage_only_settles_as_the_full_read() {
        let fixture = include_str!("../../../fixtures/openai_chat.json");
        let bodies = [
            fixture.to_string(),
            r#"{"choices":[{"message":{"content":"hello there"}}],"usage":{"prompt_tokens":5,"completion_tokens":2}}"#.into(),
            // Zero output for delivered text is not believed: the full read measures it.
            r#"{"choices":[{"message":{"content":"hello there"}}],"usage":{"prompt_tokens":5,"completion_tokens":0}}"#.into(),
            r#"{"choices":[{"message":{"content":"hi"}}],"usage":null}"#.into(),
            r#"{"choices":[{"message":{"content":"hi"}}]}"#.into(),
            r#"{"error":{"message":"no","type":"server_error"},"usage":{"prompt_tokens":1,"completion_tokens":1}}"#.into(),
            r#"{"usage":{"prompt_tokens":3,"completion_tokens":4,"prompt_tokens_details":{"cached_tokens":2},"completion_tokens_details":{"reasoning_tokens":1}}}"#.into(),
            r#"{"usage":{"prompt_tokens":"x"}}"#.into(),
            "not json".into(),
            r#"{"choices":[{"message":{"content":"a\u00e9\"b"}}],"usage":{"prompt_tokens":1,"completion_tokens":9}}"#.into(),
        ];
        for body in &bodies {
            let (fast, full) = (from_body(body.as_bytes()), full_body(body.as_bytes()));
            assert_eq!(
                estimate::account(&fast, 100, estimate::Answering::default()),
                estimate::account(&full, 100, estimate::Answering::default()),
                "{body}"
            );
            assert_eq!(
                (
                    fast.completed,
                    fast.error,
                    fast.malformed_events,
                    fast.usage_final
                ),
                (
                    full.completed,
                    full.error,
                    full.malformed_events,
                    full.usage_final
                ),
                "{body}"
            );
        }
    }
}
