//! A guardrail service speaking LiteLLM's Generic Guardrail API
//! (`POST {base}/beta/litellm_basic_guardrail_api`), served at
//! [`GUARDRAIL_PATH`], so the gateway's external guardrail call-out is tested against
//! the wire contract real services implement. Its verdicts are chosen by markers in
//! the texts it is sent, so a test picks the behaviour by what it puts in a prompt or
//! an answer:
//!
//! | marker in a text   | answer                                                        |
//! |--------------------|---------------------------------------------------------------|
//! | `GUARD-500`        | HTTP 500                                                      |
//! | `GUARD-GARBAGE`    | HTTP 200 with a body that is not JSON                         |
//! | `GUARD-SLOW`       | the verdict after [`SLOW_MS`] (checked after the markers above) |
//! | `GUARD-BLOCK`      | `BLOCKED`, with a `blocked_reason` quoting the text           |
//! | `GUARD-MASK:<word>`| `GUARDRAIL_INTERVENED`, every text with `<word>` replaced by `[MASKED]` |
//! | none               | `NONE`                                                        |
//!
//! The `blocked_reason` deliberately quotes the text, as real services may: the gateway
//! must never pass it on. Every request is recorded (see `record_and_log`), so a test
//! can assert which texts were sent and that texts judged before were not sent again.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::AppState;

/// Where the mock serves the guardrail API: LiteLLM appends
/// `/beta/litellm_basic_guardrail_api` to a service's base URL, here `/guardrail`.
pub const GUARDRAIL_PATH: &str = "/guardrail/beta/litellm_basic_guardrail_api";

/// How long `GUARD-SLOW` makes the verdict wait: longer than any timeout a test gives
/// the call-out.
pub const SLOW_MS: u64 = 2_000;

const MASK_MARKER: &str = "GUARD-MASK:";
const MASKED: &str = "[MASKED]";

pub async fn judge(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(key) = &state.config.guardrail_key {
        let presented = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if presented != Some(key.as_str()) {
            return detail(StatusCode::UNAUTHORIZED, "missing or wrong bearer key");
        }
    }
    let texts = match parse(&body) {
        Ok(texts) => texts,
        Err(why) => return detail(StatusCode::UNPROCESSABLE_ENTITY, why),
    };
    let has = |marker: &str| texts.iter().any(|t| t.contains(marker));
    if has("GUARD-500") {
        return detail(StatusCode::INTERNAL_SERVER_ERROR, "mock guardrail failure");
    }
    if has("GUARD-GARBAGE") {
        return (StatusCode::OK, "<html>not a verdict</html>").into_response();
    }
    if has("GUARD-SLOW") {
        tokio::time::sleep(Duration::from_millis(SLOW_MS)).await;
    }
    Json(verdict(&texts)).into_response()
}

/// The request's `texts`, after checking the fields LiteLLM always sends (a FastAPI
/// service written from LiteLLM's example declares them required).
fn parse(body: &[u8]) -> Result<Vec<String>, &'static str> {
    let v: Value = serde_json::from_slice(body).map_err(|_| "body is not JSON")?;
    match v.get("input_type").and_then(Value::as_str) {
        Some("request" | "response") => {}
        _ => return Err("input_type must be \"request\" or \"response\""),
    }
    if !v.get("request_data").is_some_and(Value::is_object) {
        return Err("request_data must be an object");
    }
    if !v
        .get("additional_provider_specific_params")
        .is_some_and(Value::is_object)
    {
        return Err("additional_provider_specific_params must be an object");
    }
    let Some(Value::Array(items)) = v.get("texts") else {
        return Err("texts must be an array");
    };
    items
        .iter()
        .map(|t| t.as_str().map(str::to_owned).ok_or("texts must be strings"))
        .collect()
}

fn verdict(texts: &[String]) -> Value {
    if let Some(i) = texts.iter().position(|t| t.contains("GUARD-BLOCK")) {
        let quoted: String = texts
            .get(i)
            .map_or("", String::as_str)
            .chars()
            .take(80)
            .collect();
        return json!({"action": "BLOCKED", "blocked_reason": format!("text {i} is not allowed: {quoted}")});
    }
    let words: Vec<&str> = texts.iter().flat_map(|t| mask_words(t)).collect();
    if words.is_empty() {
        return json!({"action": "NONE"});
    }
    let masked: Vec<String> = texts
        .iter()
        .map(|t| words.iter().fold(t.clone(), |t, w| t.replace(w, MASKED)))
        .collect();
    json!({"action": "GUARDRAIL_INTERVENED", "texts": masked})
}

/// The words named by `GUARD-MASK:<word>` markers: up to the next character that is
/// not alphanumeric, `-` or `_`.
fn mask_words(text: &str) -> impl Iterator<Item = &str> {
    text.match_indices(MASK_MARKER).filter_map(move |(at, _)| {
        let rest = text.get(at + MASK_MARKER.len()..)?;
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '-' || c == '_'))
            .unwrap_or(rest.len());
        rest.get(..end).filter(|w| !w.is_empty())
    })
}

/// FastAPI's error shape, which the Python services LiteLLM's docs show answer in.
fn detail(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"detail": message}))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(t: &[&str]) -> Vec<String> {
        t.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn verdicts_follow_the_markers() {
        let cases: &[(&[&str], Value)] = &[
            (&["hello", "world"], json!({"action": "NONE"})),
            (
                &["fine", "GUARD-BLOCK here"],
                json!({"action": "BLOCKED", "blocked_reason": "text 1 is not allowed: GUARD-BLOCK here"}),
            ),
            (
                &[
                    "GUARD-MASK:hunter2 the password is hunter2.",
                    "also hunter2",
                ],
                json!({"action": "GUARDRAIL_INTERVENED", "texts": [
                    "GUARD-MASK:[MASKED] the password is [MASKED].", "also [MASKED]"]}),
            ),
            (&["GUARD-MASK: nothing named"], json!({"action": "NONE"})),
        ];
        for (input, want) in cases {
            assert_eq!(&verdict(&texts(input)), want, "{input:?}");
        }
    }

    #[test]
    fn requests_without_litellm_fields_are_refused() {
        let ok = br#"{"texts":["a"],"input_type":"request","request_data":{},"additional_provider_specific_params":{}}"#;
        assert_eq!(parse(ok), Ok(texts(&["a"])));
        // An answer's texts, as the gateway sends them for checks on responses.
        let answer = br#"{"texts":["b"],"input_type":"response","request_data":{},"additional_provider_specific_params":{}}"#;
        assert_eq!(parse(answer), Ok(texts(&["b"])));
        for bad in [
            &br#"not json"#[..],
            br#"{"texts":["a"],"input_type":"other","request_data":{},"additional_provider_specific_params":{}}"#,
            br#"{"texts":["a"],"input_type":"request","additional_provider_specific_params":{}}"#,
            br#"{"texts":["a"],"input_type":"request","request_data":{}}"#,
            br#"{"texts":[1],"input_type":"request","request_data":{},"additional_provider_specific_params":{}}"#,
            br#"{"input_type":"request","request_data":{},"additional_provider_specific_params":{}}"#,
        ] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
