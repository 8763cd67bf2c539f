//! Structured output: a request that asks for JSON of a schema (Gemini's
//! `generationConfig.responseMimeType: application/json` with
//! `responseJsonSchema` or `responseSchema`) gets the smallest instance of it,
//! so a client that parses the answer (Gemini CLI's model router and
//! next-speaker check) goes on instead of retrying prose it cannot parse.

use serde_json::{json, Map, Value};

/// The JSON text to answer with, when the request's generationConfig asks for
/// JSON output of a schema; `None` otherwise (the usual prose completion).
pub fn gemini_json_answer(body: &[u8]) -> Option<String> {
    let request: Value = serde_json::from_slice(body).ok()?;
    let config = request.get("generationConfig")?;
    if config.get("responseMimeType")?.as_str()? != "application/json" {
        return None;
    }
    let schema = config
        .get("responseJsonSchema")
        .or(config.get("responseSchema"))?;
    Some(instance(schema).to_string())
}

/// A value of the schema: objects with their required properties (all of
/// them when none is required), an enum's first value, one placeholder per
/// type. Types are read as both JSON Schema (`object`) and Gemini's OpenAPI
/// subset (`OBJECT`) spell them.
fn instance(schema: &Value) -> Value {
    if let Some(first) = schema.get("enum").and_then(|e| e.get(0)) {
        return first.clone();
    }
    let kind = schema
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("object")
        .to_ascii_lowercase();
    match kind.as_str() {
        "object" => {
            let props = schema.get("properties").and_then(Value::as_object);
            let required: Vec<&str> = schema
                .get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let mut out = Map::new();
            for (name, prop) in props.into_iter().flatten() {
                if required.is_empty() || required.contains(&name.as_str()) {
                    out.insert(name.clone(), instance(prop));
                }
            }
            Value::Object(out)
        }
        "array" => json!([]),
        "integer" => json!(1),
        "number" => json!(1.0),
        "boolean" => json!(true),
        "null" => Value::Null,
        _ => json!("mock"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_gemini_cli_router_schema() {
        let body = json!({"contents": [], "generationConfig": {
            "responseMimeType": "application/json",
            "responseJsonSchema": {"type": "OBJECT", "required": ["complexity_reasoning", "complexity_score"],
                "properties": {"complexity_reasoning": {"type": "STRING"}, "complexity_score": {"type": "INTEGER"},
                               "ignored": {"type": "STRING"}}}}});
        let answer = gemini_json_answer(body.to_string().as_bytes()).unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&answer).unwrap(),
            json!({"complexity_reasoning": "mock", "complexity_score": 1})
        );
    }

    #[test]
    fn enum_takes_its_first_value_and_prose_stays_prose() {
        let schema = json!({"type": "object", "properties": {"next_speaker": {"type": "string", "enum": ["user", "model"]}}});
        assert_eq!(instance(&schema), json!({"next_speaker": "user"}));
        let prose = json!({"contents": [], "generationConfig": {"maxOutputTokens": 5}});
        assert_eq!(gemini_json_answer(prose.to_string().as_bytes()), None);
    }
}
