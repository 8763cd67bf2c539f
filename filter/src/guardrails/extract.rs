//! The texts a request sends a model, per API, each as the JSON string it is in the body
//! and where: the messages and their content parts, system prompts and instructions,
//! tool calls' arguments and tool results, legacy prompts and embedding inputs. Never a
//! reasoning item's content (Anthropic's `thinking` and `redacted_thinking` blocks,
//! Responses' `reasoning` items, Gemini's `thought` parts) or any signature: the
//! provider checks those byte for byte, and they are its model's own words.
//!
//! The body is not built into a tree: each level is read as raw members borrowed from
//! the body, so a string's offset is its pointer's distance from the body's start, and
//! a mask changes those bytes and no others (see `splice`).

use std::borrow::Cow;

use serde_json::value::RawValue;

use crate::accounting::usage::report::Format;
use crate::providers::api::{Api, Endpoint, Op};
use crate::providers::request_body::{members, Body};

/// Which body an endpoint takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// OpenAI's and Azure's chat completions.
    Chat,
    /// OpenAI's Responses.
    Responses,
    /// Anthropic's Messages (and its token count).
    Anthropic,
    /// Gemini's generateContent (and its token count).
    Gemini,
    /// OpenAI's and Azure's legacy completions.
    Completions,
    /// OpenAI's and Azure's embeddings.
    Embeddings,
    /// Gemini's embedContent and batchEmbedContents.
    GeminiEmbeddings,
}

impl Shape {
    /// The body shape of an endpoint, `None` for one that sends no text (a model list).
    pub fn of(e: Endpoint) -> Option<Shape> {
        Some(match (e.api, e.op) {
            (_, Op::Models) => return None,
            (Api::Anthropic, _) => Shape::Anthropic,
            (Api::Gemini, Op::Embeddings) => Shape::GeminiEmbeddings,
            (Api::Gemini, _) => Shape::Gemini,
            (Api::OpenAi | Api::Azure, Op::Chat) => Shape::Chat,
            (Api::OpenAi | Api::Azure, Op::Completions) => Shape::Completions,
            (Api::OpenAi | Api::Azure, Op::Embeddings) => Shape::Embeddings,
            (Api::OpenAi | Api::Azure, Op::Generate | Op::CountTokens) => match e.format {
                Some(Format::OpenAiChat) => Shape::Chat,
                _ => Shape::Responses,
            },
        })
    }
}

/// One text: a JSON string of the body, quotes and escapes included, and its offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Text<'a> {
    pub raw: &'a str,
    pub at: usize,
}

impl<'a> Text<'a> {
    /// The string's value (borrowed from the body when it has no escapes).
    pub fn value(&self) -> Cow<'a, str> {
        decode(self.raw)
    }
}

/// Every text of `body` for an endpoint of this shape, in body order.
pub fn texts<'a>(shape: Shape, body: &Body<'a>) -> Vec<Text<'a>> {
    let mut out = Out {
        body: body.raw(),
        texts: Vec::new(),
    };
    let top = |name: &'static str| body.members_named(name);
    match shape {
        Shape::Chat => {
            for messages in top("messages") {
                for m in array(messages) {
                    out.chat_message(m);
                }
            }
        }
        Shape::Responses => {
            for v in top("instructions") {
                out.string(v);
            }
            for input in top("input") {
                out.string(input);
                for item in array(input) {
                    out.responses_item(item);
                }
            }
        }
        Shape::Anthropic => {
            for system in top("system") {
                out.text_or_blocks(system, &["text"]);
            }
            for messages in top("messages") {
                for m in array(messages) {
                    for content in field(m, "content") {
                        out.anthropic_content(content);
                    }
                }
            }
        }
        Shape::Gemini => {
            for name in ["systemInstruction", "system_instruction"] {
                for v in top(name) {
                    out.gemini_content(v);
                }
            }
            for contents in top("contents") {
                for c in array(contents) {
                    out.gemini_content(c);
                }
            }
            // countTokens may wrap a whole generateContent request.
            for name in ["generateContentRequest", "generate_content_request"] {
                for request in top(name) {
                    for (k, v) in members(request).unwrap_or_default() {
                        match k.as_ref() {
                            "contents" => array(v).into_iter().for_each(|c| out.gemini_content(c)),
                            "systemInstruction" | "system_instruction" => out.gemini_content(v),
                            _ => {}
                        }
                    }
                }
            }
        }
        Shape::Completions => {
            for prompt in top("prompt") {
                out.string_or_strings(prompt);
            }
        }
        Shape::Embeddings => {
            for input in top("input") {
                out.string_or_strings(input);
            }
        }
        Shape::GeminiEmbeddings => {
            for content in top("content") {
                out.gemini_content(content);
            }
            for requests in top("requests") {
                for r in array(requests) {
                    for content in field(r, "content") {
                        out.gemini_content(content);
                    }
                }
            }
        }
    }
    out.texts
}

struct Out<'a> {
    body: &'a [u8],
    texts: Vec<Text<'a>>,
}

impl<'a> Out<'a> {
    /// `v`, if it is a string.
    fn string(&mut self, v: &'a RawValue) {
        let raw = v.get();
        if raw.starts_with('"') {
            self.push(raw);
        }
    }

    fn push(&mut self, raw: &'a str) {
        // Every raw value borrows the body; one that did not could not be masked.
        let at = (raw.as_ptr() as usize).wrapping_sub(self.body.as_ptr() as usize);
        if at
            .checked_add(raw.len())
            .is_some_and(|end| end <= self.body.len())
        {
            self.texts.push(Text { raw, at });
        }
    }

    /// A string, or an array of strings (token arrays are numbers: skipped).
    fn string_or_strings(&mut self, v: &'a RawValue) {
        self.string(v);
        for item in array(v) {
            self.string(item);
        }
    }

    /// Every string value in `v`, however deep (object keys are names, not text): tool
    /// arguments and results as objects. One linear pass over the valid JSON text.
    fn strings(&mut self, v: &'a RawValue) {
        let raw = v.get();
        let bytes = raw.as_bytes();
        let mut i = 0;
        while let Some(&b) = bytes.get(i) {
            if b != b'"' {
                i += 1;
                continue;
            }
            let start = i;
            i += 1;
            while let Some(&c) = bytes.get(i) {
                i += match c {
                    b'\\' => 2,
                    b'"' => break,
                    _ => 1,
                };
            }
            i += 1;
            let end = i.min(bytes.len());
            // A key is followed by `:`.
            let next = bytes
                .get(end..)
                .unwrap_or_default()
                .iter()
                .find(|c| !c.is_ascii_whitespace());
            if next != Some(&b':') {
                if let Some(s) = raw.get(start..end) {
                    self.push(s);
                }
            }
        }
    }

    /// A string, or content blocks whose `text` is read when their type is one of `types`.
    fn text_or_blocks(&mut self, v: &'a RawValue, types: &[&str]) {
        self.string(v);
        for block in array(v) {
            let m = members(block).unwrap_or_default();
            if kind(&m).is_some_and(|t| types.contains(&t.as_ref())) {
                for (_, text) in m.iter().filter(|(k, _)| k == "text") {
                    self.string(text);
                }
            }
        }
    }

    /// A chat message: its content (a string or parts), its tool calls' arguments.
    fn chat_message(&mut self, m: &'a RawValue) {
        for (k, v) in members(m).unwrap_or_default() {
            match k.as_ref() {
                "content" => self.text_or_blocks(v, &["text", "input_text"]),
                "tool_calls" => {
                    for call in array(v) {
                        for function in field(call, "function") {
                            for args in field(function, "arguments") {
                                self.string(args);
                            }
                        }
                    }
                }
                "function_call" => {
                    for args in field(v, "arguments") {
                        self.string(args);
                    }
                }
                _ => {}
            }
        }
    }

    /// A Responses input item: a message, a tool call's arguments or input, a tool's
    /// output. Reasoning items are the model's own and go as they are.
    fn responses_item(&mut self, item: &'a RawValue) {
        let m = members(item).unwrap_or_default();
        let t = kind(&m);
        let t = t.as_deref().unwrap_or("message");
        for (k, v) in &m {
            match (t, k.as_ref()) {
                ("message", "content") => {
                    self.text_or_blocks(v, &["input_text", "output_text", "text"])
                }
                ("function_call", "arguments") | ("custom_tool_call", "input") => self.string(v),
                (t, "output") if t.ends_with("_call_output") => {
                    self.text_or_blocks(v, &["input_text", "output_text", "text"])
                }
                _ => {}
            }
        }
    }

    /// An Anthropic message's content: a string, or blocks. Thinking blocks and their
    /// signatures are never read.
    fn anthropic_content(&mut self, content: &'a RawValue) {
        self.string(content);
        for block in array(content) {
            let m = members(block).unwrap_or_default();
            match kind(&m).as_deref() {
                Some("text") => m
                    .iter()
                    .filter(|(k, _)| k == "text")
                    .for_each(|(_, v)| self.string(v)),
                Some("tool_use" | "server_tool_use") => m
                    .iter()
                    .filter(|(k, _)| k == "input")
                    .for_each(|(_, v)| self.strings(v)),
                // A plain-text document's text.
                Some("document") => {
                    for (_, source) in m.iter().filter(|(k, _)| k == "source") {
                        let s = members(source).unwrap_or_default();
                        if kind(&s).as_deref() == Some("text") {
                            s.iter()
                                .filter(|(k, _)| k == "data")
                                .for_each(|(_, v)| self.string(v));
                        }
                    }
                }
                Some("tool_result") => m
                    .iter()
                    .filter(|(k, _)| k == "content")
                    .for_each(|(_, v)| self.text_or_blocks(v, &["text"])),
                _ => {}
            }
        }
    }

    /// A Gemini content: its parts' text (not thoughts), function calls' arguments and
    /// function responses.
    fn gemini_content(&mut self, content: &'a RawValue) {
        for parts in field(content, "parts") {
            for part in array(parts) {
                let m = members(part).unwrap_or_default();
                let thought = m.iter().any(|(k, v)| k == "thought" && v.get() == "true");
                if thought {
                    continue;
                }
                for (k, v) in &m {
                    match k.as_ref() {
                        "text" => self.string(v),
                        "functionCall" | "function_call" => {
                            for args in field(v, "args") {
                                self.strings(args);
                            }
                        }
                        "functionResponse" | "function_response" => {
                            for response in field(v, "response") {
                                self.strings(response);
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}

/// The items of an array (none if `v` is not one).
fn array(v: &RawValue) -> Vec<&RawValue> {
    if !v.get().starts_with('[') {
        return Vec::new();
    }
    serde_json::from_str(v.get()).unwrap_or_default()
}

/// Every member `name` of an object (none if `v` is not one).
fn field<'a>(v: &'a RawValue, name: &'a str) -> impl Iterator<Item = &'a RawValue> + 'a {
    members(v)
        .unwrap_or_default()
        .into_iter()
        .filter(move |(k, _)| k == name)
        .map(|(_, v)| v)
}

/// An object's `type`.
fn kind<'a>(m: &[(Cow<'a, str>, &'a RawValue)]) -> Option<Cow<'a, str>> {
    m.iter()
        .find(|(k, _)| k == "type")
        .and_then(|(_, v)| v.get().starts_with('"').then(|| decode(v.get())))
}

/// A valid JSON string's value. An unpaired surrogate escape (which a provider may
/// accept) becomes U+FFFD rather than hiding the whole string from the scan.
pub fn decode(raw: &str) -> Cow<'_, str> {
    let inner = raw
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .unwrap_or(raw);
    if !inner.contains('\\') {
        return Cow::Borrowed(inner);
    }
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let unit = hex4(&mut chars);
                let c = match unit {
                    Some(hi @ 0xD800..=0xDBFF) => {
                        // A pair is `\uD8xx\uDCxx`; anything else leaves the high half alone.
                        let mut ahead = chars.clone();
                        let lo = (ahead.next() == Some('\\') && ahead.next() == Some('u'))
                            .then(|| hex4(&mut ahead))
                            .flatten()
                            .filter(|lo| (0xDC00..=0xDFFF).contains(lo));
                        match lo {
                            Some(lo) => {
                                chars = ahead;
                                char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
                            }
                            None => None,
                        }
                    }
                    Some(u) => char::from_u32(u),
                    None => None,
                };
                out.push(c.unwrap_or('\u{FFFD}'));
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    Cow::Owned(out)
}

fn hex4(chars: &mut std::str::Chars<'_>) -> Option<u32> {
    let mut n = 0;
    for _ in 0..4 {
        n = n * 16 + chars.next()?.to_digit(16)?;
    }
    Some(n)
}

#[cfg(test)]
#[path = "extract_tests.rs"]
mod tests;
