//! Anthropic's Messages API: `/v1/messages` and token counting, the key in `x-api-key`,
//! errors as `{"type":"error","error":{...}}`.

pub mod usage;

use serde_json::json;

use crate::accounting::usage::report::Format;
use crate::providers::api::{endpoint, Api, Endpoint, Op, ProviderApi};
use crate::providers::reply::ErrorInfo;
use crate::providers::request_body::{CapField, RequestFields, UserField};

pub struct Anthropic;

impl ProviderApi for Anthropic {
    fn name(&self) -> &'static str {
        "anthropic"
    }

    fn key_header(&self) -> (&'static str, &'static str) {
        ("x-api-key", "")
    }

    fn classify(&self, path: &str) -> Option<Endpoint> {
        match path {
            "/v1/messages" => Some(endpoint(
                Api::Anthropic,
                Some(Format::Anthropic),
                Op::Generate,
            )),
            "/v1/messages/count_tokens" => Some(endpoint(Api::Anthropic, None, Op::CountTokens)),
            _ => None,
        }
    }

    /// `max_tokens`, which Anthropic requires.
    fn output_cap(&self, _op: Op, fields: &RequestFields) -> Option<u64> {
        fields.caps.max_tokens
    }

    fn cap_field(&self, _op: Op) -> Option<CapField> {
        Some(CapField::Anthropic)
    }

    fn user_field(&self, _op: Op) -> Option<UserField> {
        Some(UserField::Anthropic)
    }

    fn error_body(&self, status: u32, error: &ErrorInfo) -> Option<String> {
        let body = json!({
            "type": "error",
            "error": {"type": error_type(status), "message": error.message, "code": error.code},
        });
        Some(body.to_string())
    }
}

/// Anthropic's error `type` for an HTTP status (its API's table).
fn error_type(status: u32) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        500..=599 => "api_error",
        _ => "invalid_request_error",
    }
}
