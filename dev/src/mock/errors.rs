//! OpenAI's error envelope, with the messages OpenAI itself sends, so the
//! gateway's error handling is tested against realistic bodies. (Used by the
//! OpenAI endpoints and for the request errors Azure passes through; the
//! other providers' envelopes live with their handlers.)

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub kind: &'static str,
    pub param: Option<&'static str>,
    pub code: Option<&'static str>,
}

impl ApiError {
    pub fn missing_key() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            message: "You didn't provide an API key. You need to provide your API key in an \
                      Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), \
                      or as the password field (with blank username) if you're accessing the API \
                      from your browser and are prompted for a username and password. You can \
                      obtain an API key from https://platform.openai.com/account/api-keys."
                .into(),
            kind: "invalid_request_error",
            param: None,
            code: None,
        }
    }

    pub fn wrong_key(presented: &str) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            message: format!(
                "Incorrect API key provided: {}. You can find your API key at \
                 https://platform.openai.com/account/api-keys.",
                redact(presented)
            ),
            kind: "invalid_request_error",
            param: None,
            code: Some("invalid_api_key"),
        }
    }

    pub fn bad_json() -> Self {
        Self::invalid_request(
            "We could not parse the JSON body of your request. (HINT: This likely means you \
             aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but \
             what was sent was not valid JSON. If you have trouble figuring out how to fix this, \
             please contact us through our help center at help.openai.com.)",
            None,
            None,
        )
    }

    pub fn missing_param(param: &'static str) -> Self {
        Self::invalid_request(
            &format!("Missing required parameter: '{param}'."),
            Some(param),
            Some("missing_required_parameter"),
        )
    }

    /// OpenAI words this one differently from other missing parameters.
    pub fn missing_model() -> Self {
        Self::invalid_request("you must provide a model parameter", None, None)
    }

    pub fn too_short(param: &'static str) -> Self {
        Self::invalid_request(&format!("[] is too short - '{param}'"), Some(param), None)
    }

    pub fn invalid_type(param: &'static str, expected: &str) -> Self {
        Self::invalid_request(
            &format!("Invalid type for '{param}': expected {expected}."),
            Some(param),
            Some("invalid_type"),
        )
    }

    /// What OpenAI says to an empty or malformed embeddings `input`.
    pub fn invalid_input() -> Self {
        Self::invalid_request(
            "'$.input' is invalid. Please check the API reference: \
             https://platform.openai.com/docs/api-reference.",
            None,
            None,
        )
    }

    /// An enum parameter with an unsupported value; `supported` is already
    /// quoted, e.g. `'float' and 'base64'`.
    pub fn invalid_value(param: &'static str, value: &str, supported: &str) -> Self {
        Self::invalid_request(
            &format!("Invalid value: '{value}'. Supported values are: {supported}."),
            Some(param),
            Some("invalid_value"),
        )
    }

    pub fn below_minimum(param: &'static str, min: i64, got: i64) -> Self {
        Self::invalid_request(
            &format!(
                "Invalid '{param}': integer below minimum value. Expected a value >= {min}, \
                 but got {got} instead."
            ),
            Some(param),
            Some("integer_below_min_value"),
        )
    }

    pub fn invalid_url(method: &str, path: &str) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            ..Self::invalid_request(&format!("Invalid URL ({method} {path})"), None, None)
        }
    }

    /// The error OpenAI sends for a given injected status.
    pub fn injected(status: StatusCode) -> Self {
        let (message, kind, code): (&str, &'static str, Option<&'static str>) =
            match status.as_u16() {
                400 => ("Injected bad request.", "invalid_request_error", None),
                401 => (
                    "Injected authentication failure.",
                    "invalid_request_error",
                    Some("invalid_api_key"),
                ),
                403 => (
                    "Country, region, or territory not supported",
                    "invalid_request_error",
                    Some("unsupported_country_region_territory"),
                ),
                404 => (
                    "The model does not exist or you do not have access to it.",
                    "invalid_request_error",
                    Some("model_not_found"),
                ),
                429 => (
                    "Rate limit reached for requests. Please try again in 1s.",
                    "requests",
                    Some("rate_limit_exceeded"),
                ),
                503 => (
                    "The engine is currently overloaded, please try again later.",
                    "server_error",
                    None,
                ),
                s if s >= 500 => (
                    "The server had an error while processing your request. Sorry about that!",
                    "server_error",
                    None,
                ),
                _ => ("Injected error.", "invalid_request_error", None),
            };
        Self {
            status,
            message: message.into(),
            kind,
            param: None,
            code,
        }
    }

    /// What OpenAI's strict endpoints (embeddings, legacy completions) answer a body
    /// member they do not know.
    pub fn unrecognized_argument(name: &str) -> Self {
        Self::invalid_request(
            &format!("Unrecognized request argument supplied: {name}"),
            None,
            None,
        )
    }

    fn invalid_request(
        message: &str,
        param: Option<&'static str>,
        code: Option<&'static str>,
    ) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            param,
            code,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        });
        let mut resp = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            resp.headers_mut()
                .insert("retry-after", HeaderValue::from_static("1"));
        }
        resp
    }
}

/// Keeps only the last four characters, like OpenAI does, so a leaked
/// response never reveals a usable key.
pub fn redact(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    let keep = if chars.len() > 4 { 4 } else { 0 };
    let hidden = chars.len() - keep;
    let tail: String = chars[hidden..].iter().collect();
    format!("{}{}", "*".repeat(hidden), tail)
}
