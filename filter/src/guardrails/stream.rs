//! A streamed (SSE) answer as it passes: the text its events carry, read incrementally
//! whatever the chunking, for the response checks to scan; and the end of the stream in
//! the API's own error event when a check blocks.
//!
//! Texts per format: OpenAI chat `choices[].delta.content` and
//! `delta.tool_calls[].function.arguments` (legacy completions `choices[].text`);
//! Responses `response.output_text.delta` and `response.function_call_arguments.delta`;
//! Anthropic `content_block_delta`'s `text_delta.text` and `input_json_delta.partial_json`
//! (never thinking or signatures); Gemini `candidates[].content.parts[].text` and the
//! strings of `functionCall.args`.
//!
//! Nothing is forwarded before it is scanned: [`StreamGuard::feed`] hands back only the
//! complete events of what arrived, holding the start of an event that is not complete
//! yet (a chunk can end anywhere, even inside a line) until the rest comes. So a block
//! can always end the stream on an event boundary, where the client's SSE parser takes
//! the error event whole, and a secret inside one event never reaches the client. What
//! was forwarded before cannot be taken back: a secret split across two events has its
//! first part delivered when the second part's event is blocked.
//!
//! The texts go into a rolling window that keeps the last [`OVERLAP`] bytes already
//! scanned in front of the new text, so a secret split across events is found; a finding
//! that ends inside the kept part was reported by an earlier scan ([`StreamGuard::fresh_from`]).

use serde::Deserialize;
use serde_json::Value;

use crate::accounting::sse::SseParser;
use crate::accounting::usage::report::Format;
use crate::providers::reply::Reply;

/// Bytes of already-scanned text kept in front of new text.
pub const OVERLAP: usize = 256;

/// What to send the client for a chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pass {
    /// The chunk as it came: nothing held, nothing released.
    Whole,
    /// These bytes instead (possibly none).
    Bytes(Vec<u8>),
}

#[derive(Debug)]
pub struct StreamGuard {
    format: Format,
    parser: SseParser,
    max_event_bytes: usize,
    boundary: Boundary,
    /// The start of an event not complete yet, not forwarded.
    held: Vec<u8>,
    /// Text scanned before (at most `OVERLAP` bytes), then text not scanned yet.
    window: String,
    fresh_from: usize,
    /// The text slot (choice, block, output item) the window's last text came from.
    slot: Option<(u64, u64)>,
    /// Responses' last `sequence_number`, for the error event to follow it.
    sequence: Option<u64>,
    /// An event outgrew `max_event_bytes`: it went out unscanned.
    unchecked: bool,
    terminated: bool,
}

impl StreamGuard {
    /// `max_event_bytes`: the most held back for one event (the accounting parser's bound).
    pub fn new(format: Format, max_event_bytes: usize) -> StreamGuard {
        StreamGuard {
            format,
            parser: SseParser::new(max_event_bytes),
            max_event_bytes,
            boundary: Boundary::default(),
            held: Vec::new(),
            window: String::new(),
            fresh_from: 0,
            slot: None,
            sequence: None,
            unchecked: false,
            terminated: false,
        }
    }

    /// Reads the next chunk as the provider sent it; says what the client gets for it if
    /// the new text passes the checks (scan [`Self::window`] before sending it). At
    /// `end_of_stream` whatever is held goes out as it came (an unfinished event, which
    /// SSE clients discard). After [`Self::terminate`], nothing.
    pub fn feed(&mut self, chunk: &[u8], end_of_stream: bool) -> Pass {
        if self.terminated {
            return Pass::Bytes(Vec::new());
        }
        let cut = self.boundary.last_event_end(chunk);
        {
            let StreamGuard {
                parser,
                format,
                window,
                slot,
                sequence,
                ..
            } = self;
            let mut texts = Texts {
                window,
                slot,
                sequence,
            };
            parser.feed(chunk, |event| texts.read(*format, event.event, event.data));
        }
        let (complete, partial) = match cut {
            Some(cut) => chunk.split_at(cut.min(chunk.len())),
            None => (&[][..], chunk),
        };
        if self.held.is_empty() && (partial.is_empty() || end_of_stream) {
            return Pass::Whole;
        }
        let mut out = Vec::new();
        if !complete.is_empty() || end_of_stream {
            out.append(&mut self.held);
            out.extend_from_slice(complete);
        }
        if end_of_stream {
            out.extend_from_slice(partial);
        } else {
            self.held.extend_from_slice(partial);
            if self.held.len() > self.max_event_bytes {
                // The parser drops an event this large unread: it goes out unscanned.
                self.unchecked = true;
                out.append(&mut self.held);
            }
        }
        Pass::Bytes(out)
    }

    /// Text not scanned yet arrived with the last chunk.
    pub fn has_fresh_text(&self) -> bool {
        self.window.len() > self.fresh_from
    }

    /// What to scan: up to [`OVERLAP`] bytes scanned before, then the new text.
    pub fn window(&self) -> &str {
        &self.window
    }

    /// Where the new text starts in [`Self::window`]: a finding ending at or before it
    /// was found by an earlier scan.
    pub fn fresh_from(&self) -> usize {
        self.fresh_from
    }

    /// The window was scanned: keep its last [`OVERLAP`] bytes for the next one.
    pub fn mark_scanned(&mut self) {
        let mut keep_from = self.window.len().saturating_sub(OVERLAP);
        while !self.window.is_char_boundary(keep_from) {
            keep_from += 1;
        }
        self.window.drain(..keep_from);
        self.fresh_from = self.window.len();
    }

    /// Part of the stream went out unscanned (an event larger than the bound).
    pub fn unchecked(&self) -> bool {
        self.unchecked
    }

    /// Ends the stream for the client: the bytes to send in place of the chunk that
    /// blocked (the API's error event, built from `reply`, an error already in the API's
    /// shape, see `Reply::in_shape_of`); every later chunk is swallowed by `feed`.
    pub fn terminate(&mut self, reply: &Reply) -> Vec<u8> {
        self.terminated = true;
        self.held = Vec::new();
        let body = reply.body.as_str();
        match self.format {
            Format::Anthropic => format!("event: error\ndata: {body}\n\n").into_bytes(),
            Format::OpenAiChat | Format::Gemini => format!("data: {body}\n\n").into_bytes(),
            Format::OpenAiResponses => {
                let error = serde_json::from_str::<Value>(body)
                    .ok()
                    .and_then(|v| v.get("error").cloned())
                    .unwrap_or(Value::Null);
                let field = |name: &str| error.get(name).cloned().unwrap_or(Value::Null);
                // Responses' own error event, plus the `error` object the OpenAI SDKs
                // raise on (`APIError` for any event whose data has one).
                let event = serde_json::json!({
                    "type": "error",
                    "sequence_number": self.sequence.map_or(0, |n| n + 1),
                    "code": field("code"),
                    "message": field("message"),
                    "param": Value::Null,
                    "error": error,
                });
                format!("event: error\ndata: {event}\n\n").into_bytes()
            }
        }
    }

    pub fn terminated(&self) -> bool {
        self.terminated
    }
}

/// Where the last complete event of `bytes` (which begin at an event's start) begins:
/// the end of the event before it, or 0. What a guard holding back the stream's last
/// event (for verdicts still to come) may let go is `bytes[..last_event_start(bytes)]`.
pub fn last_event_start(bytes: &[u8]) -> usize {
    let (mut prev, mut last) = (0, 0);
    let (mut at_line_start, mut after_cr) = (true, false);
    for (i, &b) in bytes.iter().enumerate() {
        if after_cr {
            after_cr = false;
            if b == b'\n' {
                // The LF of a CRLF whose CR ended a line (and maybe an event).
                if last == i {
                    last = i + 1;
                }
                continue;
            }
        }
        match b {
            b'\r' | b'\n' => {
                if at_line_start {
                    prev = last;
                    last = i + 1;
                }
                at_line_start = true;
                after_cr = b == b'\r';
            }
            _ => at_line_start = false,
        }
    }
    prev
}

/// Finds where events end in the raw bytes: after a blank line, as the SSE parser
/// dispatches. Tracks line starts and a CR whose LF may open the next chunk.
#[derive(Debug)]
struct Boundary {
    at_line_start: bool,
    after_cr: bool,
}

impl Default for Boundary {
    fn default() -> Self {
        Boundary {
            at_line_start: true,
            after_cr: false,
        }
    }
}

impl Boundary {
    /// The offset just past the last event end in `chunk`, if it has one.
    fn last_event_end(&mut self, chunk: &[u8]) -> Option<usize> {
        let mut last = None;
        for (i, &b) in chunk.iter().enumerate() {
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    // The LF of a CRLF whose CR ended a line (and maybe an event).
                    if last == Some(i) {
                        last = Some(i + 1);
                    }
                    continue;
                }
            }
            match b {
                b'\r' | b'\n' => {
                    if self.at_line_start {
                        last = Some(i + 1);
                    }
                    self.at_line_start = true;
                    self.after_cr = b == b'\r';
                }
                _ => self.at_line_start = false,
            }
        }
        last
    }
}

/// Appends each event's texts to the window.
struct Texts<'a> {
    window: &'a mut String,
    slot: &'a mut Option<(u64, u64)>,
    sequence: &'a mut Option<u64>,
}

impl Texts<'_> {
    fn push(&mut self, slot: (u64, u64), text: &str) {
        if text.is_empty() {
            return;
        }
        // Texts of different slots are not one text: a secret is not split across them.
        if self.slot.is_some_and(|s| s != slot) && !self.window.is_empty() {
            self.window.push('\n');
        }
        *self.slot = Some(slot);
        self.window.push_str(text);
    }

    fn read(&mut self, format: Format, event: &str, data: &[u8]) {
        match format {
            Format::OpenAiChat => self.chat(data),
            Format::OpenAiResponses => self.responses(event, data),
            Format::Anthropic => self.anthropic(event, data),
            Format::Gemini => self.gemini(data),
        }
    }

    fn chat(&mut self, data: &[u8]) {
        let Ok(chunk) = serde_json::from_slice::<ChatChunk>(data) else {
            return;
        };
        for choice in chunk.choices.unwrap_or_default() {
            if let Some(text) = &choice.text {
                self.push((choice.index, 0), text);
            }
            let Some(delta) = choice.delta else { continue };
            if let Some(content) = &delta.content {
                self.push((choice.index, 0), content);
            }
            for call in delta.tool_calls.unwrap_or_default() {
                if let Some(args) = call.function.and_then(|f| f.arguments) {
                    self.push((choice.index, call.index + 1), &args);
                }
            }
        }
    }

    fn responses(&mut self, event: &str, data: &[u8]) {
        let Ok(e) = serde_json::from_slice::<ResponsesEvent>(data) else {
            return;
        };
        if e.sequence_number.is_some() {
            *self.sequence = e.sequence_number;
        }
        let text_event = matches!(
            event,
            "response.output_text.delta" | "response.function_call_arguments.delta"
        ) || matches!(
            e.kind.as_deref(),
            Some("response.output_text.delta" | "response.function_call_arguments.delta")
        );
        if let (true, Some(delta)) = (text_event, &e.delta) {
            let slot = (e.output_index.unwrap_or(0), e.content_index.unwrap_or(0));
            self.push(slot, delta);
        }
    }

    fn anthropic(&mut self, event: &str, data: &[u8]) {
        if event != "content_block_delta" {
            return;
        }
        let Ok(e) = serde_json::from_slice::<AnthropicDelta>(data) else {
            return;
        };
        let Some(delta) = e.delta else { return };
        let text = match delta.kind.as_deref() {
            Some("text_delta") => delta.text,
            Some("input_json_delta") => delta.partial_json,
            _ => None,
        };
        if let Some(text) = text {
            self.push((e.index.unwrap_or(0), 0), &text);
        }
    }

    fn gemini(&mut self, data: &[u8]) {
        let Ok(chunk) = serde_json::from_slice::<GeminiChunk>(data) else {
            return;
        };
        for (i, candidate) in chunk.candidates.unwrap_or_default().into_iter().enumerate() {
            let index = candidate.index.unwrap_or(i as u64);
            let parts = candidate.content.and_then(|c| c.parts).unwrap_or_default();
            for part in parts {
                if let Some(text) = &part.text {
                    self.push((index, 0), text);
                }
                if let Some(args) = part.function_call.and_then(|c| c.args) {
                    let mut strings = Vec::new();
                    collect_strings(&args, &mut strings, 0);
                    for s in strings {
                        self.push((index, 1), s);
                    }
                }
            }
        }
    }
}

/// Every string inside a value, to a bounded depth (serde_json bounds it at 128).
fn collect_strings<'v>(v: &'v Value, out: &mut Vec<&'v str>, depth: usize) {
    if depth > 64 {
        return;
    }
    match v {
        Value::String(s) => out.push(s),
        Value::Array(items) => items
            .iter()
            .for_each(|i| collect_strings(i, out, depth + 1)),
        Value::Object(m) => m.values().for_each(|i| collect_strings(i, out, depth + 1)),
        _ => {}
    }
}

#[derive(Deserialize)]
struct ChatChunk {
    #[serde(default)]
    choices: Option<Vec<ChatChoice>>,
}

#[derive(Deserialize)]
struct ChatChoice {
    #[serde(default)]
    index: u64,
    #[serde(default)]
    delta: Option<ChatDelta>,
    #[serde(default)]
    text: Option<String>,
}

#[derive(Deserialize)]
struct ChatDelta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<ChatToolDelta>>,
}

#[derive(Deserialize)]
struct ChatToolDelta {
    #[serde(default)]
    index: u64,
    #[serde(default)]
    function: Option<FunctionDelta>,
}

#[derive(Deserialize)]
struct FunctionDelta {
    #[serde(default)]
    arguments: Option<String>,
}

#[derive(Deserialize)]
struct ResponsesEvent {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    sequence_number: Option<u64>,
    #[serde(default)]
    output_index: Option<u64>,
    #[serde(default)]
    content_index: Option<u64>,
    /// A string in the text events; other events' `delta`s are not read.
    #[serde(default, deserialize_with = "string_or_none")]
    delta: Option<String>,
}

fn string_or_none<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => Some(s),
        _ => None,
    })
}

#[derive(Deserialize)]
struct AnthropicDelta {
    #[serde(default)]
    index: Option<u64>,
    #[serde(default)]
    delta: Option<AnthropicDeltaBody>,
}

#[derive(Deserialize)]
struct AnthropicDeltaBody {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    partial_json: Option<String>,
}

#[derive(Deserialize)]
struct GeminiChunk {
    #[serde(default)]
    candidates: Option<Vec<GeminiCandidate>>,
}

#[derive(Deserialize)]
struct GeminiCandidate {
    #[serde(default)]
    index: Option<u64>,
    #[serde(default)]
    content: Option<GeminiContent>,
}

#[derive(Deserialize)]
struct GeminiContent {
    #[serde(default)]
    parts: Option<Vec<GeminiPart>>,
}

#[derive(Deserialize)]
struct GeminiPart {
    #[serde(default)]
    text: Option<String>,
    #[serde(default, rename = "functionCall")]
    function_call: Option<GeminiCall>,
}

#[derive(Deserialize)]
struct GeminiCall {
    #[serde(default)]
    args: Option<Value>,
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
