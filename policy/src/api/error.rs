//! Error responses. Every non-2xx answer is JSON in the OpenAI error shape, so the
//! filter can relay it to a client SDK and nothing ever sees axum's plain-text bodies.

use axum::extract::rejection::BytesRejection;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::fields::Invalid;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn invalid_request(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            kind: "invalid_request_error",
            code,
            message: message.into(),
        }
    }

    pub fn store_unavailable() -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            kind: "unavailable",
            code: "redis_unavailable",
            message: "policy store unavailable".to_owned(),
        }
    }

    pub fn not_found() -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            kind: "invalid_request_error",
            code: "not_found",
            message: "no such endpoint".to_owned(),
        }
    }

    /// A named thing the caller asked for does not exist (a limit set).
    pub fn missing_resource(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            kind: "invalid_request_error",
            code,
            message: message.into(),
        }
    }

    /// What the caller asked for is read from the audit stream, which this service was
    /// started without (`--usage-audit-stream off`): asking again will not help.
    pub fn audit_stream_off() -> Self {
        Self {
            status: StatusCode::CONFLICT,
            kind: "invalid_request_error",
            code: "audit_stream_off",
            message: "the audit stream is off (--usage-audit-stream off): booked records are \
                      not logged in Redis; the gateway's access log is the audit trail"
                .to_owned(),
        }
    }

    /// Redis holds something the service never writes (a hand edit).
    pub fn corrupt_data(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            kind: "server_error",
            code,
            message: message.into(),
        }
    }

    pub fn method_not_allowed() -> Self {
        Self {
            status: StatusCode::METHOD_NOT_ALLOWED,
            kind: "invalid_request_error",
            code: "method_not_allowed",
            message: "method not allowed on this endpoint".to_owned(),
        }
    }

    /// Admin endpoints are off because no admin token is configured.
    pub fn admin_disabled() -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            kind: "permission_error",
            code: "admin_disabled",
            message: "admin endpoints are disabled: no admin token is configured \
                      (set --admin-token or CHOKEPOINT_ADMIN_TOKEN)"
                .to_owned(),
        }
    }

    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            kind: "authentication_error",
            code,
            message: message.into(),
        }
    }

    /// The body could not be read: too large (413) or cut off mid-stream (400).
    pub fn from_body_rejection(rejection: &BytesRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Self {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                kind: "invalid_request_error",
                code: "body_too_large",
                message: "request body is too large".to_owned(),
            }
        } else {
            Self::invalid_request("unreadable_body", "request body could not be read")
        }
    }

    pub fn body(&self) -> serde_json::Value {
        json!({
            "error": {
                "message": self.message,
                "type": self.kind,
                "code": self.code,
            }
        })
    }
}

/// A field the caller sent that cannot be taken: a 400 naming it.
impl From<Invalid> for ApiError {
    fn from(invalid: Invalid) -> Self {
        Self::invalid_request(invalid.code, invalid.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        // RFC 9110: a 401 names the scheme the client should use.
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

pub async fn not_found() -> ApiError {
    ApiError::not_found()
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}
