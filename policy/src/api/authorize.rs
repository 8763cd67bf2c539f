//! `POST /v1/authorize`: may this user make this request now?

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::error::ApiError;
use super::{fields, json_body, AppState};
use crate::metrics::Outcome;
use crate::rate_limit::Decision;
use crate::user_id::UserId;

/// A validated authorize request.
///
/// Only `user` drives the decision in this version; the other fields are part of the
/// contract with the filter and are type-checked now so a filter bug shows up as a 400
/// today rather than as a surprise when budgets start reading them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizeRequest {
    pub request_id: String,
    pub user: UserId,
    pub tenant: Option<String>,
    pub groups: Vec<String>,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub stream: bool,
}

/// The wire shape. Required fields are `Option` so their absence gets our message and
/// code rather than serde's. Unknown fields are ignored: a newer filter may send more.
#[derive(Deserialize)]
struct Wire {
    request_id: Option<String>,
    user: Option<String>,
    tenant: Option<String>,
    groups: Option<Vec<String>>,
    model: Option<String>,
    provider: Option<String>,
    stream: Option<bool>,
}

impl AuthorizeRequest {
    /// Checks the content type and decodes and validates the body.
    pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<Self, ApiError> {
        let wire: Wire = json_body::decode(content_type, body)?;
        let request_id = fields::request_id("request_id", wire.request_id)?;
        let user = fields::user("user", wire.user)?;
        Ok(Self {
            request_id,
            user,
            tenant: wire.tenant,
            groups: wire.groups.unwrap_or_default(),
            model: wire.model,
            provider: wire.provider,
            stream: wire.stream.unwrap_or(false),
        })
    }
}

pub async fn authorize(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let parsed = body
        .map_err(|rejection| ApiError::from_body_rejection(&rejection))
        .and_then(|body| {
            let content_type = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok());
            AuthorizeRequest::parse(content_type, &body)
        });
    let request = match parsed {
        Ok(request) => request,
        Err(err) => {
            state.metrics.record(Outcome::Invalid);
            return err.into_response();
        }
    };

    match state.rate_limit.check(&state.store, &request.user).await {
        Ok(Decision::Allow {
            limit,
            remaining,
            reset_after_ms,
        }) => {
            state.metrics.record(Outcome::Allow);
            Json(json!({
                "allow": true,
                "limit": limit,
                "remaining": remaining,
                "reset_after_ms": reset_after_ms,
            }))
            .into_response()
        }
        Ok(Decision::Deny {
            limit,
            retry_after_ms,
            message,
        }) => {
            state.metrics.record(Outcome::Deny);
            Json(json!({
                "allow": false,
                "reason": "rate_limited",
                "message": message,
                "limit": limit,
                "remaining": 0,
                "retry_after_ms": retry_after_ms,
            }))
            .into_response()
        }
        // The store logs outages on its own (once per transition, not per request).
        Err(_) => {
            state.metrics.record(Outcome::Error);
            ApiError::store_unavailable().into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::fields::MAX_REQUEST_ID_BYTES;

    const USER: &str = "0190a6f2-7c1e-8b3a-9f00-1234567890ab";
    const JSON: Option<&str> = Some("application/json");

    fn parse(body: &str) -> Result<AuthorizeRequest, ApiError> {
        AuthorizeRequest::parse(JSON, body.as_bytes())
    }

    #[test]
    fn accepts_minimal_and_full_requests() {
        let minimal = parse(&format!(r#"{{"request_id":"r1","user":"{USER}"}}"#)).expect("minimal");
        assert_eq!(minimal.request_id, "r1");
        assert_eq!(minimal.user.as_str(), USER);
        assert_eq!(minimal.tenant, None);
        assert!(minimal.groups.is_empty());
        assert!(!minimal.stream);

        let full = parse(&format!(
            r#"{{"request_id":"r2","user":"{}","tenant":"acme","groups":["eng","ml"],
                "model":"gpt-4o","provider":"openai","stream":true,"future_field":{{"x":1}}}}"#,
            USER.to_uppercase()
        ))
        .expect("full");
        assert_eq!(
            full.user.as_str(),
            USER,
            "user is canonicalised to lowercase"
        );
        assert_eq!(full.tenant.as_deref(), Some("acme"));
        assert_eq!(full.groups, ["eng", "ml"]);
        assert_eq!(full.model.as_deref(), Some("gpt-4o"));
        assert_eq!(full.provider.as_deref(), Some("openai"));
        assert!(full.stream);

        let nulls = parse(&format!(
            r#"{{"request_id":"r3","user":"{USER}","tenant":null,"groups":null,"model":null,"provider":null,"stream":null}}"#
        ))
        .expect("nulls");
        assert_eq!(nulls.tenant, None);
        assert!(nulls.groups.is_empty());
    }

    #[test]
    fn rejects_bad_bodies_with_a_code_and_a_message_naming_the_problem() {
        let long_id = "x".repeat(MAX_REQUEST_ID_BYTES + 1);
        let cases: Vec<(String, &str, &str)> = vec![
            ("".into(), "invalid_json", "empty"),
            (" \n".into(), "invalid_json", "empty"),
            ("{".into(), "invalid_json", "not valid JSON"),
            ("not json".into(), "invalid_json", "not valid JSON"),
            (
                format!(r#"{{"request_id":"r","user":"{USER}"}} trailing"#),
                "invalid_json",
                "not valid JSON",
            ),
            ("[]".into(), "invalid_field", "JSON object"),
            ("\"str\"".into(), "invalid_field", "JSON object"),
            (
                format!(r#"{{"user":"{USER}"}}"#),
                "missing_field",
                "request_id is required",
            ),
            (
                r#"{"request_id":"r"}"#.into(),
                "missing_field",
                "user is required",
            ),
            (
                r#"{"request_id":"r","user":null}"#.into(),
                "missing_field",
                "user is required",
            ),
            (
                format!(r#"{{"request_id":"","user":"{USER}"}}"#),
                "invalid_field",
                "request_id must not be empty",
            ),
            (
                format!(r#"{{"request_id":"  ","user":"{USER}"}}"#),
                "invalid_field",
                "request_id must not be empty",
            ),
            (
                format!(r#"{{"request_id":"{long_id}","user":"{USER}"}}"#),
                "invalid_field",
                "at most 256 bytes",
            ),
            (
                format!(r#"{{"request_id":"a\nb","user":"{USER}"}}"#),
                "invalid_field",
                "control characters",
            ),
            (
                r#"{"request_id":"r","user":""}"#.into(),
                "invalid_field",
                "user must be a UUID",
            ),
            (
                r#"{"request_id":"r","user":"alice"}"#.into(),
                "invalid_field",
                "user must be a UUID",
            ),
            (
                r#"{"request_id":"r","user":42}"#.into(),
                "invalid_field",
                "user: invalid type",
            ),
            (
                format!(r#"{{"request_id":7,"user":"{USER}"}}"#),
                "invalid_field",
                "request_id: invalid type",
            ),
            (
                format!(r#"{{"request_id":"r","user":"{USER}","stream":"yes"}}"#),
                "invalid_field",
                "stream: invalid type",
            ),
            (
                format!(r#"{{"request_id":"r","user":"{USER}","groups":"eng"}}"#),
                "invalid_field",
                "groups: invalid type",
            ),
            (
                format!(r#"{{"request_id":"r","user":"{USER}","groups":["eng",3]}}"#),
                "invalid_field",
                "groups[1]: invalid type",
            ),
        ];
        for (body, code, needle) in cases {
            let err = parse(&body).expect_err(&body);
            assert_eq!(
                err.status,
                axum::http::StatusCode::BAD_REQUEST,
                "body {body:?}"
            );
            assert_eq!(err.kind, "invalid_request_error", "body {body:?}");
            assert_eq!(err.code, code, "body {body:?}: {}", err.message);
            assert!(
                err.message.contains(needle),
                "body {body:?}: message {:?} lacks {needle:?}",
                err.message
            );
            // Positions help with syntax errors only; data errors name the field instead.
            assert!(
                code != "invalid_field" || !err.message.contains(" at line "),
                "body {body:?}: {}",
                err.message
            );
        }
    }

    #[test]
    fn requires_a_json_content_type() {
        let body = format!(r#"{{"request_id":"r","user":"{USER}"}}"#);
        let cases = [
            (Some("application/json"), true),
            (Some("application/json; charset=utf-8"), true),
            (Some("Application/JSON"), true),
            (None, false),
            (Some("text/plain"), false),
            (Some("application/x-www-form-urlencoded"), false),
            (Some("application/jsonx"), false),
        ];
        for (content_type, ok) in cases {
            let result = AuthorizeRequest::parse(content_type, body.as_bytes());
            assert_eq!(result.is_ok(), ok, "content-type {content_type:?}");
            if let Err(err) = result {
                assert_eq!(err.code, "unsupported_content_type");
            }
        }
    }
}
