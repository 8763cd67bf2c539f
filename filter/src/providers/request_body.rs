//! The few request-body fields the gateway needs, and its edits. The body is scanned
//! once at its top level: each member's value is kept as the raw text it arrived as
//! (validated, not built into a tree), so reading `model` or `stream` costs no copy of
//! the prompt, and an edit re-emits only the top-level members it changes; every other
//! member, messages included, is copied through byte for byte. Prompt text is never
//! parsed into values or copied out of the body. The scan checks JSON syntax everywhere
//! but builds strings only for the members it reads, so an unpaired surrogate escape
//! (`\ud800`) in a prompt passes through as the client sent it, as Python-based
//! providers accept it; in `model` it is refused.

use std::borrow::Cow;

use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RequestFields {
    pub model: Option<String>,
    pub stream: bool,
    /// Every output cap the body names, under each API's name for it: which one the
    /// provider honours depends on the endpoint (see `output_bound`).
    pub caps: Caps,
    /// How many outputs the body asks for, under each API's name for it.
    pub choices: Choices,
    /// OpenAI's `background: true`: the answer (and its usage) is fetched later, out of
    /// the gateway's sight.
    pub background: bool,
}

/// Output caps, as named in the body.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    pub max_completion_tokens: Option<u64>,
    pub max_tokens: Option<u64>,
    pub max_output_tokens: Option<u64>,
    /// Gemini's `generationConfig.maxOutputTokens`.
    pub gemini_max_output_tokens: Option<u64>,
}

/// Outputs per request, as named in the body.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Choices {
    pub n: Option<u64>,
    pub best_of: Option<u64>,
    /// Gemini's `generationConfig.candidateCount`.
    pub candidate_count: Option<u64>,
}

/// More outputs than this per request are refused here (OpenAI's own bound on `n`), so a
/// reservation can always be computed.
pub const MAX_CHOICES: u64 = 128;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    NotJson,
    NotAnObject,
    BadField(&'static str),
    /// A member the gateway reads or edits appears twice: which one the provider would
    /// take is its parser's choice, so the body is ambiguous.
    Duplicate(&'static str),
}

impl BodyError {
    pub fn message(&self) -> String {
        match self {
            BodyError::NotJson => "The request body is not valid JSON.".into(),
            BodyError::NotAnObject => "The request body must be a JSON object.".into(),
            BodyError::BadField(f) => format!("The request body field '{f}' has the wrong type."),
            BodyError::Duplicate(f) => {
                format!("The request body names the field '{f}' more than once.")
            }
        }
    }
}

/// The top-level members the gateway reads or edits: each may appear once.
const KNOWN: [&str; 13] = [
    "model",
    "stream",
    "max_tokens",
    "max_completion_tokens",
    "max_output_tokens",
    "generationConfig",
    "stream_options",
    "user",
    "safety_identifier",
    "metadata",
    "n",
    "best_of",
    "background",
];

/// A member name, borrowed from the body unless it has escapes.
#[derive(Deserialize)]
struct Key<'a>(#[serde(borrow)] Cow<'a, str>);

/// A JSON object's members in order, each value as its raw text.
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
                    let v: &'de RawValue = map.next_value()?;
                    out.push((k, v));
                }
                Ok(Members(out))
            }
        }
        d.deserialize_map(Object)
    }
}

/// A JSON request body, scanned: its top-level members and the fields read from them.
pub struct Body<'a> {
    /// The body as read: every member's raw value points into it.
    raw: &'a [u8],
    members: Vec<(Cow<'a, str>, &'a RawValue)>,
    /// No body at all: nothing to edit either.
    blank: bool,
    pub fields: RequestFields,
}

/// Scans a JSON request body. An empty body has no members and no fields.
pub fn scan(body: &[u8]) -> Result<Body<'_>, BodyError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Body {
            raw: body,
            members: Vec::new(),
            blank: true,
            fields: RequestFields::default(),
        });
    }
    let members = match serde_json::from_slice::<Members>(body) {
        Ok(m) => m.0,
        // Valid JSON that is not an object, or no JSON at all.
        Err(_) if serde_json::from_slice::<IgnoredAny>(body).is_ok() => {
            return Err(BodyError::NotAnObject)
        }
        Err(_) => return Err(BodyError::NotJson),
    };
    for name in KNOWN {
        if members.iter().filter(|(k, _)| k == name).count() > 1 {
            return Err(BodyError::Duplicate(name));
        }
    }
    let fields = fields(&members)?;
    Ok(Body {
        raw: body,
        members,
        blank: false,
        fields,
    })
}

/// Reads `model`, `stream` and the output cap from a JSON request body.
pub fn parse(body: &[u8]) -> Result<RequestFields, BodyError> {
    scan(body).map(|b| b.fields)
}

fn member<'a>(members: &[(Cow<'_, str>, &'a RawValue)], name: &str) -> Option<&'a RawValue> {
    members.iter().find(|(k, _)| k == name).map(|(_, v)| *v)
}

/// A small member's value (never a prompt: only the members named here are built).
fn value(raw: Option<&RawValue>) -> Option<Value> {
    raw.and_then(|r| serde_json::from_str(r.get()).ok())
}

/// A member the gateway reads, built: one the scan passed but no value can be built from
/// (an unpaired surrogate escape) is refused, never read as absent.
fn read(
    members: &[(Cow<'_, str>, &RawValue)],
    name: &'static str,
) -> Result<Option<Value>, BodyError> {
    match member(members, name) {
        None => Ok(None),
        Some(raw) => serde_json::from_str(raw.get())
            .map(Some)
            .map_err(|_| BodyError::BadField(name)),
    }
}

fn fields(members: &[(Cow<'_, str>, &RawValue)]) -> Result<RequestFields, BodyError> {
    let model = match read(members, "model")? {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => return Err(BodyError::BadField("model")),
    };
    let stream = match read(members, "stream")? {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(_) => return Err(BodyError::BadField("stream")),
    };
    let background = match read(members, "background")? {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(_) => return Err(BodyError::BadField("background")),
    };
    // Every API's cap and count fields are read whatever the endpoint: `output_bound`
    // decides which of them the provider honours.
    let config = read(members, "generationConfig")?;
    let in_config = |name: &str| config.as_ref().and_then(|g| g.get(name)).cloned();
    let count = |name: &'static str, v: Option<Value>| match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or(BodyError::BadField(name)),
    };
    let caps = Caps {
        max_completion_tokens: count(
            "max_completion_tokens",
            read(members, "max_completion_tokens")?,
        )?,
        max_tokens: count("max_tokens", read(members, "max_tokens")?)?,
        max_output_tokens: count("max_output_tokens", read(members, "max_output_tokens")?)?,
        gemini_max_output_tokens: count(
            "generationConfig.maxOutputTokens",
            in_config("maxOutputTokens"),
        )?,
    };
    let choice = |name: &'static str, v: Option<Value>| match count(name, v)? {
        Some(n) if !(1..=MAX_CHOICES).contains(&n) => Err(BodyError::BadField(name)),
        n => Ok(n),
    };
    let choices = Choices {
        n: choice("n", read(members, "n")?)?,
        best_of: choice("best_of", read(members, "best_of")?)?,
        candidate_count: choice(
            "generationConfig.candidateCount",
            in_config("candidateCount"),
        )?,
    };
    Ok(RequestFields {
        model,
        stream,
        caps,
        choices,
        background,
    })
}

/// Where the provider keeps its end-user id, for pseudonymous attribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserField {
    /// OpenAI and Azure: `safety_identifier` (and `user`, its older name, if the client set it).
    OpenAi,
    /// Anthropic: `metadata.user_id`.
    Anthropic,
    /// OpenAI's legacy completions and embeddings (and Azure's): `user`, all they know.
    User,
}

/// Changes the gateway makes to a request body before it goes upstream.
#[derive(Debug, Default, Clone, Copy)]
pub struct Edits<'a> {
    /// Replace `model` (an alias resolved to its target).
    pub model: Option<&'a str>,
    /// Add `stream_options.include_usage: true` to a streaming request (OpenAI chat), so
    /// the provider reports usage at the end of the stream.
    pub include_usage: bool,
    /// Write the anonymous user id into the provider's end-user field, replacing the client's.
    pub user: Option<(UserField, &'a str)>,
    /// Write this output cap into a request that has none, so the budget reservation
    /// (input estimate plus cap) is a hard bound rather than a guess.
    pub output_cap: Option<(CapField, u64)>,
}

/// Where an API takes its output cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapField {
    /// OpenAI and Azure chat completions: `max_completion_tokens` (reasoning models refuse
    /// the older `max_tokens`).
    Chat,
    /// OpenAI's legacy completions: `max_tokens` (default 16 there).
    Completions,
    /// OpenAI Responses: `max_output_tokens`.
    Responses,
    /// Anthropic: `max_tokens`.
    Anthropic,
    /// Gemini: `generationConfig.maxOutputTokens`.
    Gemini,
}

/// The edited body, or `None` when nothing needed to change (or it is not a JSON object
/// the gateway accepts).
pub fn edit(body: &[u8], edits: Edits<'_>) -> Option<Vec<u8>> {
    scan(body).ok()?.edit(edits)
}

/// An object member's value as an object to add to (a new one if it is none).
fn object_of(raw: Option<&RawValue>) -> serde_json::Map<String, Value> {
    match value(raw) {
        Some(Value::Object(o)) => o,
        _ => serde_json::Map::new(),
    }
}

/// A JSON object's members in order, each value as its raw text borrowed from `raw`
/// (`None`: not an object).
pub fn members(raw: &RawValue) -> Option<Vec<(Cow<'_, str>, &RawValue)>> {
    serde_json::from_str::<Members>(raw.get()).ok().map(|m| m.0)
}

impl<'a> Body<'a> {
    /// The body as read.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// Every top-level member called `name`, raw (a name may repeat: which one the
    /// provider takes is its parser's choice).
    pub fn members_named<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'a RawValue> + 's {
        self.members
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| *v)
    }
}

impl Body<'_> {
    /// The body with `edits` made, or `None` when nothing needed to change.
    pub fn edit(&self, edits: Edits<'_>) -> Option<Vec<u8>> {
        // The members to set, each as its new value's JSON.
        let mut set: Vec<(&'static str, Value)> = Vec::new();
        let get = |name| member(&self.members, name);
        if let Some(model) = edits.model {
            if self.fields.model.as_deref() != Some(model) {
                set.push(("model", model.into()));
            }
        }
        if edits.include_usage && self.fields.stream {
            let mut options = object_of(get("stream_options"));
            if options.get("include_usage") != Some(&Value::Bool(true)) {
                options.insert("include_usage".into(), Value::Bool(true));
                set.push(("stream_options", Value::Object(options)));
            }
        }
        if let Some((field, cap)) = edits.output_cap {
            match field {
                CapField::Chat => set.push(("max_completion_tokens", cap.into())),
                CapField::Completions => set.push(("max_tokens", cap.into())),
                CapField::Responses => set.push(("max_output_tokens", cap.into())),
                CapField::Anthropic => set.push(("max_tokens", cap.into())),
                CapField::Gemini => {
                    let mut config = object_of(get("generationConfig"));
                    config.insert("maxOutputTokens".into(), cap.into());
                    set.push(("generationConfig", Value::Object(config)));
                }
            }
        }
        match edits.user {
            Some((UserField::OpenAi, id)) => {
                set.push(("safety_identifier", id.into()));
                if get("user").is_some() {
                    set.push(("user", id.into()));
                }
            }
            Some((UserField::User, id)) => set.push(("user", id.into())),
            Some((UserField::Anthropic, id)) => {
                let mut meta = object_of(get("metadata"));
                meta.insert("user_id".into(), id.into());
                set.push(("metadata", Value::Object(meta)));
            }
            None => {}
        }
        if set.is_empty() || self.blank {
            return None;
        }
        // Members keep their order and their bytes; a set member takes its old place, or
        // goes at the end.
        let size = self
            .members
            .iter()
            .map(|(k, v)| k.len() + v.get().len() + 4)
            .sum::<usize>();
        let mut out = Vec::with_capacity(size + 64 * set.len() + 2);
        out.push(b'{');
        let key = |out: &mut Vec<u8>, key: &str| {
            if out.len() > 1 {
                out.push(b',');
            }
            // Writing JSON into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut *out, key);
            out.push(b':');
        };
        let mut placed = vec![false; set.len()];
        for (k, v) in &self.members {
            match set.iter().position(|(name, _)| k == name) {
                Some(i) => {
                    if let (Some((name, new)), Some(p)) = (set.get(i), placed.get_mut(i)) {
                        key(&mut out, name);
                        let _ = serde_json::to_writer(&mut out, new);
                        *p = true;
                    }
                }
                None => {
                    key(&mut out, k);
                    out.extend_from_slice(v.get().as_bytes());
                }
            }
        }
        for ((name, new), p) in set.iter().zip(&placed) {
            if !p {
                key(&mut out, name);
                let _ = serde_json::to_writer(&mut out, new);
            }
        }
        out.push(b'}');
        Some(out)
    }
}

/// Whether a `content-type` value is JSON (`application/json`, `...+json`, any params).
pub fn is_json_content_type(value: &str) -> bool {
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Whether a request body with this `content-encoding` can be read as is. Compressed
/// bodies are refused rather than inflated: Envoy 1.40's request decompressor in front of
/// a filter that holds the body never delivered end-of-stream to it (seen in the e2e
/// suite), and no provider SDK compresses requests.
pub fn is_identity_encoding(value: &str) -> bool {
    value
        .split(',')
        .all(|c| c.trim().is_empty() || c.trim().eq_ignore_ascii_case("identity"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings() {
        for (v, ok) in [
            ("identity", true),
            ("", true),
            ("Identity", true),
            ("gzip", false),
            ("br", false),
            ("identity, zstd", false),
        ] {
            assert_eq!(is_identity_encoding(v), ok, "{v}");
        }
    }

    #[test]
    fn table() {
        let ok = |model: Option<&str>, stream| {
            Ok(RequestFields {
                model: model.map(str::to_owned),
                stream,
                ..RequestFields::default()
            })
        };
        let table: Vec<(&str, Result<RequestFields, BodyError>)> = vec![
            (
                r#"{"model":"gpt-4o-mini","messages":[]}"#,
                ok(Some("gpt-4o-mini"), false),
            ),
            (r#"{"model":"m","stream":true}"#, ok(Some("m"), true)),
            (
                r#"{"model":"m\u0041","stream":false}"#,
                ok(Some("mA"), false),
            ),
            (r#"{"stream":null}"#, ok(None, false)),
            ("", ok(None, false)),
            ("  \n", ok(None, false)),
            ("{", Err(BodyError::NotJson)),
            ("not json", Err(BodyError::NotJson)),
            ("[1,2]", Err(BodyError::NotAnObject)),
            (r#""str""#, Err(BodyError::NotAnObject)),
            (r#"{"model":5}"#, Err(BodyError::BadField("model"))),
            (
                r#"{"model":"m","stream":"yes"}"#,
                Err(BodyError::BadField("stream")),
            ),
        ];
        for (body, want) in table {
            assert_eq!(parse(body.as_bytes()), want, "{body}");
        }
    }

    #[test]
    fn every_api_s_caps_and_counts_are_read() {
        let fields = |b: &str| parse(b.as_bytes()).map(|f| (f.caps, f.choices, f.background));
        let caps = |c: Caps| Ok((c, Choices::default(), false));
        type Read = Result<(Caps, Choices, bool), BodyError>;
        let cases: Vec<(&str, Read)> = vec![
            (
                r#"{"max_tokens":100}"#,
                caps(Caps {
                    max_tokens: Some(100),
                    ..Caps::default()
                }),
            ),
            (
                r#"{"max_completion_tokens":50,"max_tokens":100,"max_output_tokens":1}"#,
                caps(Caps {
                    max_completion_tokens: Some(50),
                    max_tokens: Some(100),
                    max_output_tokens: Some(1),
                    gemini_max_output_tokens: None,
                }),
            ),
            (
                r#"{"generationConfig":{"maxOutputTokens":30,"candidateCount":2}}"#,
                Ok((
                    Caps {
                        gemini_max_output_tokens: Some(30),
                        ..Caps::default()
                    },
                    Choices {
                        candidate_count: Some(2),
                        ..Choices::default()
                    },
                    false,
                )),
            ),
            (
                r#"{"n":4,"best_of":5,"background":true}"#,
                Ok((
                    Caps::default(),
                    Choices {
                        n: Some(4),
                        best_of: Some(5),
                        candidate_count: None,
                    },
                    true,
                )),
            ),
            (r#"{"model":"m","n":null}"#, caps(Caps::default())),
            (
                r#"{"max_tokens":-1}"#,
                Err(BodyError::BadField("max_tokens")),
            ),
            (
                r#"{"max_tokens":"10"}"#,
                Err(BodyError::BadField("max_tokens")),
            ),
            (r#"{"n":0}"#, Err(BodyError::BadField("n"))),
            (r#"{"n":129}"#, Err(BodyError::BadField("n"))),
            (r#"{"n":2.5}"#, Err(BodyError::BadField("n"))),
            (r#"{"best_of":"2"}"#, Err(BodyError::BadField("best_of"))),
            (
                r#"{"generationConfig":{"candidateCount":1000}}"#,
                Err(BodyError::BadField("generationConfig.candidateCount")),
            ),
            (
                r#"{"background":"yes"}"#,
                Err(BodyError::BadField("background")),
            ),
            (r#"{"n":1,"n":8}"#, Err(BodyError::Duplicate("n"))),
        ];
        for (body, want) in cases {
            assert_eq!(fields(body), want, "{body}");
        }
    }

    #[test]
    fn include_usage_is_added_once() {
        let add = |b: &str| {
            let e = Edits {
                include_usage: true,
                ..Edits::default()
            };
            edit(b.as_bytes(), e).map(|v| serde_json::from_slice::<serde_json::Value>(&v).unwrap())
        };
        let got = add(r#"{"model":"m","stream":true,"messages":[]}"#).unwrap();
        assert_eq!(got["stream_options"]["include_usage"], true);
        assert_eq!(got["model"], "m");
        let got = add(r#"{"stream":true,"stream_options":{"include_obfuscation":false}}"#).unwrap();
        assert_eq!(
            got["stream_options"],
            serde_json::json!({"include_obfuscation":false,"include_usage":true})
        );
        assert!(add(r#"{"stream":true,"stream_options":{"include_usage":true}}"#).is_none());
        assert!(add(r#"{"stream":false}"#).is_none());
        assert!(add(r#"{"model":"m"}"#).is_none());
        assert!(add("not json").is_none());
    }

    #[test]
    fn output_caps_are_written_where_each_api_reads_them() {
        let cases = [
            (CapField::Chat, "max_completion_tokens"),
            (CapField::Completions, "max_tokens"),
            (CapField::Responses, "max_output_tokens"),
            (CapField::Anthropic, "max_tokens"),
        ];
        for (field, name) in cases {
            let e = Edits {
                output_cap: Some((field, 77)),
                ..Edits::default()
            };
            let v: serde_json::Value =
                serde_json::from_slice(&edit(br#"{"model":"m"}"#, e).unwrap()).unwrap();
            assert_eq!(v[name], 77, "{name}");
            let caps = parse(v.to_string().as_bytes()).unwrap().caps;
            let read = match field {
                CapField::Chat => caps.max_completion_tokens,
                CapField::Responses => caps.max_output_tokens,
                _ => caps.max_tokens,
            };
            assert_eq!(read, Some(77), "{name}");
        }
        let e = Edits {
            output_cap: Some((CapField::Gemini, 9)),
            ..Edits::default()
        };
        let v: serde_json::Value =
            serde_json::from_slice(&edit(br#"{"generationConfig":{"temperature":0}}"#, e).unwrap())
                .unwrap();
        assert_eq!(
            v["generationConfig"],
            serde_json::json!({"temperature":0,"maxOutputTokens":9})
        );
    }

    #[test]
    fn model_and_user_edits() {
        let run = |b: &str, e: Edits| {
            edit(b.as_bytes(), e).map(|v| serde_json::from_slice::<serde_json::Value>(&v).unwrap())
        };
        let got = run(
            r#"{"model":"default"}"#,
            Edits {
                model: Some("gpt-4.1-mini"),
                ..Edits::default()
            },
        )
        .unwrap();
        assert_eq!(got["model"], "gpt-4.1-mini");
        assert!(run(
            r#"{"model":"m"}"#,
            Edits {
                model: Some("m"),
                ..Edits::default()
            }
        )
        .is_none());
        let openai = Edits {
            user: Some((UserField::OpenAi, "uuid-1")),
            ..Edits::default()
        };
        let got = run(r#"{"model":"m","user":"alice@corp.example"}"#, openai).unwrap();
        assert_eq!(got["user"], "uuid-1", "the client's value is replaced");
        assert_eq!(got["safety_identifier"], "uuid-1");
        let got = run(r#"{"model":"m"}"#, openai).unwrap();
        assert!(got.get("user").is_none());
        let legacy = Edits {
            user: Some((UserField::User, "uuid-3")),
            ..Edits::default()
        };
        for body in [r#"{"model":"m"}"#, r#"{"model":"m","user":"alice"}"#] {
            let got = run(body, legacy).unwrap();
            assert_eq!(got["user"], "uuid-3", "{body}");
            assert!(got.get("safety_identifier").is_none(), "{body}");
        }
        let anthropic = Edits {
            user: Some((UserField::Anthropic, "uuid-2")),
            ..Edits::default()
        };
        let got = run(r#"{"metadata":{"user_id":"bob","x":1}}"#, anthropic).unwrap();
        assert_eq!(
            got["metadata"],
            serde_json::json!({"user_id":"uuid-2","x":1})
        );
    }

    #[test]
    fn edits_copy_every_other_member_byte_for_byte() {
        let body = br#"{ "model" : "default", "temperature": 0.70, "seed": 18446744073709551616,
            "messages": [{"role": "user", "content": "caf\u00e9 \"quoted\""}], "n\u0061me": 1 }"#;
        let e = Edits {
            model: Some("gpt-4.1-mini"),
            output_cap: Some((CapField::Chat, 64)),
            ..Edits::default()
        };
        let got = String::from_utf8(edit(body, e).unwrap()).unwrap();
        assert_eq!(
            got,
            r#"{"model":"gpt-4.1-mini","temperature":0.70,"seed":18446744073709551616,"messages":[{"role": "user", "content": "caf\u00e9 \"quoted\""}],"name":1,"max_completion_tokens":64}"#
        );
        assert_eq!(
            parse(got.as_bytes()).unwrap().caps.max_completion_tokens,
            Some(64)
        );
        assert!(edit(b"", e).is_none(), "no body is not given one");
        assert!(edit(b"  ", e).is_none());
    }

    #[test]
    fn members_read_or_edited_may_not_repeat() {
        for (body, name) in [
            (r#"{"model":"a","model":"b"}"#, "model"),
            (r#"{"stream":false,"x":1,"stream":true}"#, "stream"),
            (r#"{"user":"a","user":"b"}"#, "user"),
        ] {
            assert_eq!(
                parse(body.as_bytes()),
                Err(BodyError::Duplicate(name)),
                "{body}"
            );
            assert!(BodyError::Duplicate(name).message().contains(name));
        }
        // Members the gateway never looks at are the provider's business.
        assert!(parse(br#"{"messages":[],"messages":[]}"#).is_ok());
        // One it reads but cannot build is refused, never taken as absent (a model the
        // gateway did not see would go unpriced).
        assert_eq!(
            parse(br#"{"model":"gpt-4o\ud800"}"#),
            Err(BodyError::BadField("model"))
        );
        assert!(parse(br#"{"messages":[{"content":"\ud800"}]}"#).is_ok());
    }

    #[test]
    fn content_types() {
        for (v, want) in [
            ("application/json", true),
            ("application/json; charset=utf-8", true),
            ("Application/JSON", true),
            ("application/merge-patch+json", true),
            ("text/plain", false),
            ("application/x-www-form-urlencoded", false),
            ("", false),
        ] {
            assert_eq!(is_json_content_type(v), want, "{v}");
        }
    }
}
