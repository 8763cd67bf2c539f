//! The few request-body fields the gateway needs. Everything else passes through untouched
//! and unread; prompt text is never copied out of the body.

use serde::Deserialize;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RequestFields {
    pub model: Option<String>,
    pub stream: bool,
    /// The client's cap on output tokens, whatever the API calls it.
    pub max_output_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct Raw {
    #[serde(default)]
    model: Option<serde_json::Value>,
    #[serde(default)]
    stream: Option<serde_json::Value>,
    #[serde(default)]
    max_tokens: Option<serde_json::Value>,
    #[serde(default)]
    max_completion_tokens: Option<serde_json::Value>,
    #[serde(default)]
    max_output_tokens: Option<serde_json::Value>,
    #[serde(default, rename = "generationConfig")]
    generation_config: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    NotJson,
    NotAnObject,
    BadField(&'static str),
}

impl BodyError {
    pub fn message(&self) -> String {
        match self {
            BodyError::NotJson => "The request body is not valid JSON.".into(),
            BodyError::NotAnObject => "The request body must be a JSON object.".into(),
            BodyError::BadField(f) => format!("The request body field '{f}' has the wrong type."),
        }
    }
}

/// Reads `model` and `stream` from a JSON request body. An empty body has no fields.
pub fn parse(body: &[u8]) -> Result<RequestFields, BodyError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(RequestFields::default());
    }
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|_| BodyError::NotJson)?;
    if !value.is_object() {
        return Err(BodyError::NotAnObject);
    }
    let raw: Raw = serde_json::from_value(value).map_err(|_| BodyError::NotAnObject)?;
    let model = match raw.model {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s),
        Some(_) => return Err(BodyError::BadField("model")),
    };
    let stream = match raw.stream {
        None | Some(serde_json::Value::Null) => false,
        Some(serde_json::Value::Bool(b)) => b,
        Some(_) => return Err(BodyError::BadField("stream")),
    };
    // OpenAI chat: max_completion_tokens (max_tokens is its older name); Responses:
    // max_output_tokens; Anthropic: max_tokens; Gemini: generationConfig.maxOutputTokens.
    let gemini_max = raw
        .generation_config
        .as_ref()
        .and_then(|g| g.get("maxOutputTokens"))
        .cloned();
    let mut max_output_tokens = None;
    for (name, v) in [
        ("max_completion_tokens", raw.max_completion_tokens),
        ("max_tokens", raw.max_tokens),
        ("max_output_tokens", raw.max_output_tokens),
        ("generationConfig.maxOutputTokens", gemini_max),
    ] {
        match v {
            None | Some(serde_json::Value::Null) => {}
            Some(v) => {
                let n = v.as_u64().ok_or(BodyError::BadField(name))?;
                max_output_tokens = Some(max_output_tokens.map_or(n, |m: u64| m.min(n)));
            }
        }
    }
    Ok(RequestFields {
        model,
        stream,
        max_output_tokens,
    })
}

/// Where the provider keeps its end-user id, for pseudonymous attribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserField {
    /// OpenAI and Azure: `safety_identifier` (and `user`, its older name, if the client set it).
    OpenAi,
    /// Anthropic: `metadata.user_id`.
    Anthropic,
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
    /// OpenAI Responses: `max_output_tokens`.
    Responses,
    /// Anthropic: `max_tokens`.
    Anthropic,
    /// Gemini: `generationConfig.maxOutputTokens`.
    Gemini,
}

/// The edited body, or `None` when nothing needed to change.
pub fn edit(body: &[u8], edits: Edits<'_>) -> Option<Vec<u8>> {
    let mut value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let obj = value.as_object_mut()?;
    let mut changed = false;
    if let Some(model) = edits.model {
        if obj.get("model").and_then(|m| m.as_str()) != Some(model) {
            obj.insert("model".into(), model.into());
            changed = true;
        }
    }
    if edits.include_usage && obj.get("stream") == Some(&serde_json::Value::Bool(true)) {
        let options = obj
            .entry("stream_options")
            .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
        if !options.is_object() {
            *options = serde_json::Value::Object(serde_json::Map::new());
        }
        if let Some(options) = options.as_object_mut() {
            if options.get("include_usage") != Some(&serde_json::Value::Bool(true)) {
                options.insert("include_usage".into(), serde_json::Value::Bool(true));
                changed = true;
            }
        }
    }
    if let Some((field, cap)) = edits.output_cap {
        match field {
            CapField::Chat => {
                obj.insert("max_completion_tokens".into(), cap.into());
            }
            CapField::Responses => {
                obj.insert("max_output_tokens".into(), cap.into());
            }
            CapField::Anthropic => {
                obj.insert("max_tokens".into(), cap.into());
            }
            CapField::Gemini => {
                let config = obj
                    .entry("generationConfig")
                    .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
                if !config.is_object() {
                    *config = serde_json::Value::Object(serde_json::Map::new());
                }
                if let Some(config) = config.as_object_mut() {
                    config.insert("maxOutputTokens".into(), cap.into());
                }
            }
        }
        changed = true;
    }
    match edits.user {
        Some((UserField::OpenAi, id)) => {
            for field in ["safety_identifier", "user"] {
                if field == "safety_identifier" || obj.contains_key(field) {
                    obj.insert(field.into(), id.into());
                }
            }
            changed = true;
        }
        Some((UserField::Anthropic, id)) => {
            let meta = obj
                .entry("metadata")
                .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
            if !meta.is_object() {
                *meta = serde_json::Value::Object(serde_json::Map::new());
            }
            if let Some(meta) = meta.as_object_mut() {
                meta.insert("user_id".into(), id.into());
            }
            changed = true;
        }
        None => {}
    }
    if !changed {
        return None;
    }
    serde_json::to_vec(&value).ok()
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
                max_output_tokens: None,
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
    fn output_caps_by_api() {
        let cap = |b: &str| parse(b.as_bytes()).map(|f| f.max_output_tokens);
        assert_eq!(cap(r#"{"max_tokens":100}"#), Ok(Some(100)));
        assert_eq!(
            cap(r#"{"max_completion_tokens":50,"max_tokens":100}"#),
            Ok(Some(50))
        );
        assert_eq!(cap(r#"{"max_output_tokens":70}"#), Ok(Some(70)));
        assert_eq!(
            cap(r#"{"generationConfig":{"maxOutputTokens":30}}"#),
            Ok(Some(30))
        );
        assert_eq!(cap(r#"{"model":"m"}"#), Ok(None));
        assert_eq!(
            cap(r#"{"max_tokens":-1}"#),
            Err(BodyError::BadField("max_tokens"))
        );
        assert_eq!(
            cap(r#"{"max_tokens":"10"}"#),
            Err(BodyError::BadField("max_tokens"))
        );
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
            assert_eq!(
                parse(v.to_string().as_bytes()).unwrap().max_output_tokens,
                Some(77)
            );
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
