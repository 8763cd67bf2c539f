//! JSON request bodies: the content-type check and decoding into a typed wire struct,
//! with 400s that name the offending field rather than a line and column.

use serde::de::DeserializeOwned;

use super::error::ApiError;

/// Checks the content type, then decodes `body` into `T`.
pub fn decode<T: DeserializeOwned>(content_type: Option<&str>, body: &[u8]) -> Result<T, ApiError> {
    if !content_type.is_some_and(is_json) {
        return Err(ApiError::invalid_request(
            "unsupported_content_type",
            "content-type must be application/json",
        ));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid_request(
            "invalid_json",
            "request body is empty; expected a JSON object",
        ));
    }
    // Decoded plainly first: tracking the field path for an error message costs every
    // body, and only one that fails needs it (both accept exactly the same bodies).
    if let Ok(wire) = serde_json::from_slice(body) {
        return Ok(wire);
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let wire = serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_data() {
            // serde_json appends "at line L column C", which means nothing to whoever
            // reads this; the field path says where instead.
            let what = inner.to_string();
            let what = what.split(" at line ").next().unwrap_or_default();
            let message = if path == "." {
                format!("request body must be a JSON object: {what}")
            } else {
                format!("{path}: {what}")
            };
            ApiError::invalid_request("invalid_field", message)
        } else {
            ApiError::invalid_request(
                "invalid_json",
                format!("request body is not valid JSON: {inner}"),
            )
        }
    })?;
    // Trailing bytes after the object mean a framing bug in the caller; say so.
    deserializer.end().map_err(|err| {
        ApiError::invalid_request(
            "invalid_json",
            format!("request body is not valid JSON: {err}"),
        )
    })?;
    Ok(wire)
}

fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
}
