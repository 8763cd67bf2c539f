//! The few request-body fields the gateway needs. Everything else passes through untouched
//! and unread; prompt text is never copied out of the body.

use serde::Deserialize;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RequestFields {
    pub model: Option<String>,
    pub stream: bool,
}

#[derive(Deserialize)]
struct Raw {
    #[serde(default)]
    model: Option<serde_json::Value>,
    #[serde(default)]
    stream: Option<serde_json::Value>,
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
    Ok(RequestFields { model, stream })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let ok = |model: Option<&str>, stream| {
            Ok(RequestFields {
                model: model.map(str::to_owned),
                stream,
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
