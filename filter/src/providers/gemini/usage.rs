//! Gemini `generateContent` bodies and `streamGenerateContent` streams (`alt=sse`, or a
//! JSON array of the same chunks without it).
//!
//! Every chunk is a `GenerateContentResponse`; its `usageMetadata` is cumulative, so the
//! last one seen is the count. The chunk whose candidate has a `finishReason` ends a
//! normal stream, and its usage is final; so does a `promptFeedback.blockReason`, which
//! ends a stream before any candidate. A failure arrives as `{"error": {"code", "status"}}`.
//!
//! Mapping (the names are Gemini's):
//! - `input_tokens` = `promptTokenCount + toolUsePromptTokenCount`: the prompt (cached
//!   content included) plus what built-in tools such as search added to it, billed as input;
//! - `cached_input_tokens` = `cachedContentTokenCount`, part of `promptTokenCount`;
//! - `output_tokens` = `candidatesTokenCount + thoughtsTokenCount`: unlike OpenAI's,
//!   Gemini's output count leaves thinking out, but thinking is billed as output;
//! - `reasoning_tokens` = `thoughtsTokenCount`;
//! - `cache_creation_input_tokens` = 0: creating a Gemini cache is a separate call.

use serde::de::IgnoredAny;
use serde::Deserialize;

use crate::accounting::sse::Event;
use crate::accounting::usage::report::{parse, Report, Usage};
use crate::accounting::usage::wire::{ApiError, Count, Label, TextLen};

#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Chunk {
    candidates: Option<Vec<Candidate>>,
    usage_metadata: Option<RawUsage>,
    prompt_feedback: Option<PromptFeedback>,
    error: Option<ApiError>,
    /// `embedContent`'s and `batchEmbedContents`' answers: whole once they arrive, with no
    /// usage (estimated from the request). The vectors are skipped, not built.
    embedding: Option<IgnoredAny>,
    embeddings: Option<IgnoredAny>,
}

#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Candidate {
    content: Option<Content>,
    finish_reason: Label,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Content {
    parts: Option<Vec<Part>>,
}

/// Thought summaries are text parts marked `thought: true`; they count like any text.
/// Function-call arguments arrive as JSON objects and have no cheap length.
#[derive(Default, Deserialize)]
#[serde(default)]
struct Part {
    text: TextLen,
}

#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct PromptFeedback {
    block_reason: Label,
}

#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct RawUsage {
    prompt_token_count: Count,
    candidates_token_count: Count,
    cached_content_token_count: Count,
    thoughts_token_count: Count,
    tool_use_prompt_token_count: Count,
}

impl RawUsage {
    fn normalise(&self) -> Usage {
        let thoughts = self.thoughts_token_count.or_zero();
        Usage {
            input_tokens: self
                .prompt_token_count
                .or_zero()
                .saturating_add(self.tool_use_prompt_token_count.or_zero()),
            output_tokens: self
                .candidates_token_count
                .or_zero()
                .saturating_add(thoughts),
            cached_input_tokens: self.cached_content_token_count.or_zero(),
            reasoning_tokens: thoughts,
            cache_creation_input_tokens: 0,
            cache_write_1h_input_tokens: 0,
        }
    }
}

fn read(chunk: Chunk, report: &mut Report) {
    for candidate in chunk.candidates.iter().flatten() {
        let parts = candidate
            .content
            .iter()
            .flat_map(|c| c.parts.iter().flatten());
        let bytes = parts.fold(0u64, |n, p| n.saturating_add(p.text.0));
        report.delivered_text_bytes = report.delivered_text_bytes.saturating_add(bytes);
        if candidate.finish_reason.0.is_some() {
            report.completed = true;
        }
    }
    if chunk
        .prompt_feedback
        .is_some_and(|f| f.block_reason.0.is_some())
        || chunk.embedding.is_some()
        || chunk.embeddings.is_some()
    {
        report.completed = true;
    }
    if let Some(usage) = &chunk.usage_metadata {
        report.usage = Some(usage.normalise());
    }
    if let Some(error) = chunk.error {
        report.error = Some(error.label());
        report.completed = false;
    }
    report.usage_final = report.completed && report.usage.is_some();
}

pub fn on_event(event: &Event<'_>, report: &mut Report) {
    if let Some(chunk) = parse::<Chunk>(event.data, report) {
        read(chunk, report);
    }
}

pub fn from_body(body: &[u8]) -> Report {
    let mut report = Report::default();
    if body.trim_ascii_start().starts_with(b"[") {
        if let Some(chunks) = parse::<Vec<Chunk>>(body, &mut report) {
            for chunk in chunks {
                read(chunk, &mut report);
            }
        }
    } else if let Some(chunk) = parse::<Chunk>(body, &mut report) {
        read(chunk, &mut report);
    }
    report
}
