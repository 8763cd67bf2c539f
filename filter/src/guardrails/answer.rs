//! The texts of a whole (non-streamed) answer, each with the span of its JSON string
//! literal in the body, per wire format:
//!
//! - OpenAI chat: `choices[].message.content` (a string, or parts' `text`),
//!   `choices[].message.tool_calls[].function.arguments`, and legacy completions'
//!   `choices[].text`;
//! - OpenAI Responses: `output[]` messages' `output_text` parts' `text`,
//!   `function_call.arguments`;
//! - Anthropic: `content[]` `text` blocks' `text`, every string inside `tool_use.input`;
//! - Gemini (one object, or the JSON array a `streamGenerateContent` without `alt=sse`
//!   answers): `candidates[].content.parts[].text`, every string inside
//!   `functionCall.args`.
//!
//! The body is read as borrowed raw JSON values, so a span is a pointer difference and
//! nothing but the texts is copied. A body that is not JSON is an error (the check
//! could not be made); one of another shape (an error body) has no texts.

use std::borrow::Cow;
use std::ops::Range;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::service::Piece;
use crate::accounting::usage::report::Format;

/// A text found in a body: where its string literal lies (quotes included), decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub span: Range<usize>,
    pub text: String,
}

impl Found {
    pub fn piece(&self) -> Piece<'_> {
        Piece {
            span: self.span.clone(),
            text: &self.text,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerError {
    /// Not JSON (or not UTF-8).
    NotJson,
    /// Nested deeper than [`MAX_DEPTH`] inside a tool's input.
    TooDeep,
}

/// How deep a tool's input is followed for its strings. serde_json refuses documents
/// nested past 128 anyway; this keeps the walk's own recursion smaller still.
pub const MAX_DEPTH: usize = 64;

/// Every text of `body`, an answer in `format`, in body order.
pub fn texts(format: Format, body: &[u8]) -> Result<Vec<Found>, AnswerError> {
    let text = std::str::from_utf8(body).map_err(|_| AnswerError::NotJson)?;
    let root: &RawValue = serde_json::from_str(text).map_err(|_| AnswerError::NotJson)?;
    let mut out = Reader {
        base: text.as_ptr() as usize,
        found: Vec::new(),
    };
    match format {
        Format::OpenAiChat => out.chat(root)?,
        Format::OpenAiResponses => out.responses(root)?,
        Format::Anthropic => out.anthropic(root)?,
        Format::Gemini => match node(root) {
            Node::Array(items) => {
                for item in items {
                    out.gemini(item)?;
                }
            }
            _ => out.gemini(root)?,
        },
    }
    out.found.sort_by_key(|f| f.span.start);
    Ok(out.found)
}

/// A raw JSON value, one level deep.
enum Node<'a> {
    Object(Vec<(Cow<'a, str>, &'a RawValue)>),
    Array(Vec<&'a RawValue>),
    String(&'a RawValue),
    Other,
}

fn node(raw: &RawValue) -> Node<'_> {
    let json = raw.get();
    match json.as_bytes().first() {
        Some(b'{') => serde_json::from_str::<Members<'_>>(json)
            .map(|m| Node::Object(m.0))
            .unwrap_or(Node::Other),
        Some(b'[') => serde_json::from_str::<Vec<&RawValue>>(json)
            .map(Node::Array)
            .unwrap_or(Node::Other),
        Some(b'"') => Node::String(raw),
        _ => Node::Other,
    }
}

/// A member name, borrowed from the body unless it has escapes.
#[derive(Deserialize)]
struct Key<'a>(#[serde(borrow)] Cow<'a, str>);

/// An object's members in order, each value raw.
struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Object;
        impl<'de> Visitor<'de> for Object {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
                let mut out = Vec::new();
                while let Some(Key(k)) = map.next_key()? {
                    out.push((k, map.next_value()?));
                }
                Ok(Members(out))
            }
        }
        d.deserialize_map(Object)
    }
}

/// The members named `name` of an object (JSON allows repeats; each is read).
fn members<'a, 'n>(raw: &'a RawValue, name: &'n str) -> impl Iterator<Item = &'a RawValue> + 'n
where
    'a: 'n,
{
    let members = match node(raw) {
        Node::Object(m) => m,
        _ => Vec::new(),
    };
    members
        .into_iter()
        .filter(move |(k, _)| k == name)
        .map(|(_, v)| v)
}

fn items(raw: &RawValue) -> Vec<&RawValue> {
    match node(raw) {
        Node::Array(items) => items,
        _ => Vec::new(),
    }
}

/// Whether an object's `type` is `kind`.
fn is_type(raw: &RawValue, kind: &str) -> bool {
    members(raw, "type")
        .any(|t| t.get().strip_prefix('"').and_then(|t| t.strip_suffix('"')) == Some(kind))
}

struct Reader {
    base: usize,
    found: Vec<Found>,
}

impl Reader {
    /// Takes `raw` when it is a string.
    fn string(&mut self, raw: &RawValue) {
        let json = raw.get();
        if !json.starts_with('"') {
            return;
        }
        // A string serde_json read as valid JSON but cannot decode (an unpaired
        // surrogate escape) is taken as the lossy text: scanned, never copied back.
        let text = serde_json::from_str::<String>(json)
            .unwrap_or_else(|_| String::from_utf8_lossy(json.as_bytes()).into_owned());
        let start = (json.as_ptr() as usize).saturating_sub(self.base);
        self.found.push(Found {
            span: start..start + json.len(),
            text,
        });
    }

    /// Every string anywhere inside `raw` (a tool's input).
    fn strings(&mut self, raw: &RawValue, depth: usize) -> Result<(), AnswerError> {
        if depth > MAX_DEPTH {
            return Err(AnswerError::TooDeep);
        }
        match node(raw) {
            Node::String(s) => self.string(s),
            Node::Object(members) => {
                for (_, v) in members {
                    self.strings(v, depth + 1)?;
                }
            }
            Node::Array(items) => {
                for v in items {
                    self.strings(v, depth + 1)?;
                }
            }
            Node::Other => {}
        }
        Ok(())
    }

    fn chat(&mut self, root: &RawValue) -> Result<(), AnswerError> {
        for choice in members(root, "choices").flat_map(items) {
            for text in members(choice, "text") {
                self.string(text);
            }
            for message in members(choice, "message") {
                for content in members(message, "content") {
                    self.string(content);
                    for part in items(content) {
                        members(part, "text").for_each(|t| self.string(t));
                    }
                }
                for call in members(message, "tool_calls").flat_map(items) {
                    for f in members(call, "function") {
                        members(f, "arguments").for_each(|a| self.string(a));
                    }
                }
            }
        }
        Ok(())
    }

    fn responses(&mut self, root: &RawValue) -> Result<(), AnswerError> {
        for item in members(root, "output").flat_map(items) {
            if is_type(item, "message") {
                for part in members(item, "content").flat_map(items) {
                    if is_type(part, "output_text") {
                        members(part, "text").for_each(|t| self.string(t));
                    }
                }
            } else if is_type(item, "function_call") {
                members(item, "arguments").for_each(|a| self.string(a));
            }
        }
        Ok(())
    }

    fn anthropic(&mut self, root: &RawValue) -> Result<(), AnswerError> {
        for block in members(root, "content").flat_map(items) {
            if is_type(block, "text") {
                members(block, "text").for_each(|t| self.string(t));
            } else if is_type(block, "tool_use") {
                for input in members(block, "input") {
                    self.strings(input, 0)?;
                }
            }
        }
        Ok(())
    }

    fn gemini(&mut self, root: &RawValue) -> Result<(), AnswerError> {
        for candidate in members(root, "candidates").flat_map(items) {
            for content in members(candidate, "content") {
                for part in members(content, "parts").flat_map(items) {
                    members(part, "text").for_each(|t| self.string(t));
                    for call in members(part, "functionCall") {
                        for args in members(call, "args") {
                            self.strings(args, 0)?;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "answer_tests.rs"]
mod tests;
