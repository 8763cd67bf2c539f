//! JSON value readers shared by the formats. They are total — any JSON type is accepted and
//! the wrong one reads as "nothing" — so one odd field never costs an event its usage.

use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// The length in bytes of a JSON string. The text itself is measured where the parser
/// holds it and never copied out, so generated text cannot leak into gateway memory.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TextLen(pub u64);

impl<'de> Deserialize<'de> for TextLen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TextLenVisitor)
    }
}

struct TextLenVisitor;

impl<'de> Visitor<'de> for TextLenVisitor {
    type Value = TextLen;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<TextLen, E> {
        Ok(TextLen(v.len() as u64))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<TextLen, E> {
        Ok(TextLen(0))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<TextLen, E> {
        Ok(TextLen(0))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<TextLen, E> {
        Ok(TextLen(0))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<TextLen, E> {
        Ok(TextLen(0))
    }

    fn visit_unit<E: de::Error>(self) -> Result<TextLen, E> {
        Ok(TextLen(0))
    }

    fn visit_none<E: de::Error>(self) -> Result<TextLen, E> {
        Ok(TextLen(0))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TextLen, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(TextLen(0))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TextLen, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(TextLen(0))
    }
}

/// Longest error label kept: codes are short identifiers, anything longer is not one.
const MAX_LABEL: usize = 64;

/// A provider's error type, code or status: a short identifier safe to log and to put in
/// a usage record. Strings are cut to a bounded length and restricted to identifier
/// characters (a provider-controlled string must not inject into a log line); numbers
/// (Gemini's HTTP-like `code`) are kept as digits; anything else reads as absent.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Label(pub Option<String>);

impl<'de> Deserialize<'de> for Label {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LabelVisitor)
    }
}

struct LabelVisitor;

impl<'de> Visitor<'de> for LabelVisitor {
    type Value = Label;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Label, E> {
        let clean: String = v
            .chars()
            .take(MAX_LABEL)
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '/') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        Ok(Label((!clean.is_empty()).then_some(clean)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Label, E> {
        Ok(Label(Some(v.to_string())))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Label, E> {
        Ok(Label(Some(v.to_string())))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Label, E> {
        Ok(Label(None))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Label, E> {
        Ok(Label(None))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Label, E> {
        Ok(Label(None))
    }

    fn visit_none<E: de::Error>(self) -> Result<Label, E> {
        Ok(Label(None))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Label, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Label(None))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Label, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Label(None))
    }
}

/// A token count. Anything but a non-negative integer (null, a float, a string) reads as
/// absent, which keeps the count seen before it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Count(pub Option<u64>);

impl Count {
    pub fn or_zero(self) -> u64 {
        self.0.unwrap_or(0)
    }
}

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CountVisitor)
    }
}

struct CountVisitor;

impl<'de> Visitor<'de> for CountVisitor {
    type Value = Count;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Count, E> {
        Ok(Count(Some(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Count, E> {
        Ok(Count(u64::try_from(v).ok()))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Count, E> {
        Ok(Count(None))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Count, E> {
        Ok(Count(None))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Count, E> {
        Ok(Count(None))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Count, E> {
        Ok(Count(None))
    }

    fn visit_none<E: de::Error>(self) -> Result<Count, E> {
        Ok(Count(None))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Count, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Count(None))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Count, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Count(None))
    }
}

/// The error object OpenAI and Anthropic send, in a body or an event: `{"type", "code",
/// "message", ...}`. Only the identifiers are read.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ApiError {
    #[serde(rename = "type")]
    pub kind: Label,
    pub code: Label,
    /// Gemini's `{"code": 429, "status": "RESOURCE_EXHAUSTED"}`.
    pub status: Label,
}

impl ApiError {
    /// The most specific identifier the provider gave, or a generic one: an error object
    /// without any still is an error.
    pub fn label(self) -> String {
        self.status
            .0
            .or(self.code.0)
            .or(self.kind.0)
            .unwrap_or_else(|| "error".to_string())
    }
}
