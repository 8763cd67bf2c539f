//! Azure OpenAI's deployment routes,
//! `/openai/deployments/{deployment}/{chat/completions,embeddings}?api-version=…`:
//! `api-key` auth, a required `api-version`, and Azure's own envelope
//! (`{"error":{"code","message"}}`) for what its front door rejects. Bodies,
//! streams and request-validation errors are OpenAI's, with the deployment
//! name as the model.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;

use super::errors::ApiError;
use super::faults::Faults;
use super::{chat, embeddings, AppState, RecordId};

type QueryMap = Result<Query<HashMap<String, String>>, QueryRejection>;

pub async fn chat_completions(
    State(state): State<AppState>,
    Extension(RecordId(record_id)): Extension<RecordId>,
    Path(deployment): Path<String>,
    query: QueryMap,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match admit(&state, &headers, query, "ChatCompletions_Create").await {
        Ok(faults) => chat::complete(&state, record_id, &faults, &body, Some(&deployment)),
        Err(resp) => resp,
    }
}

pub async fn embeddings(
    State(state): State<AppState>,
    Path(deployment): Path<String>,
    query: QueryMap,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match admit(&state, &headers, query, "Embeddings_Create").await {
        Ok(_) => embeddings::embed(&body, Some(&deployment)),
        Err(resp) => resp,
    }
}

/// Azure's front door, in its order: the injected delay, the route (which
/// includes `api-version`), the key, then any injected status.
async fn admit(
    state: &AppState,
    headers: &HeaderMap,
    query: QueryMap,
    operation: &str,
) -> Result<Faults, Response> {
    let faults = Faults::from_headers(headers);
    faults.delay().await;
    let query = query.map(|Query(q)| q).unwrap_or_default();
    let Some(version) = query.get("api-version").filter(|v| valid_api_version(v)) else {
        return Err(AzureError::resource_not_found().into_response());
    };
    check_auth(headers, &state.config.api_key).map_err(IntoResponse::into_response)?;
    if let Some(status) = faults.status {
        return Err(injected(status, operation, version));
    }
    Ok(faults)
}

/// `YYYY-MM-DD` or `YYYY-MM-DD-preview`, the shapes Azure's versions take;
/// anything else routes nowhere.
fn valid_api_version(v: &str) -> bool {
    let date = v.strip_suffix("-preview").unwrap_or(v).as_bytes();
    date.len() == 10
        && date.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            _ => b.is_ascii_digit(),
        })
}

/// Azure's key scheme: `api-key: <key>`. A bearer token is taken for an
/// Entra ID token.
fn check_auth(headers: &HeaderMap, api_key: &str) -> Result<(), AzureError> {
    let presented = headers
        .get("api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty());
    match presented {
        Some(k) if k == api_key => Ok(()),
        None if headers.contains_key(header::AUTHORIZATION) => Err(AzureError::new(
            StatusCode::UNAUTHORIZED,
            "401",
            "Unauthorized. Access token is missing, invalid, audience is incorrect \
             (https://cognitiveservices.azure.com), or have expired.",
        )),
        _ => Err(AzureError::access_denied()),
    }
}

/// Statuses Azure's front door answers itself get its envelope; the rest
/// come from the model service behind it, in OpenAI's.
fn injected(status: StatusCode, operation: &str, version: &str) -> Response {
    let e = match status.as_u16() {
        401 => AzureError::access_denied(),
        403 => AzureError::new(
            status,
            "403",
            "Public access is disabled. Please configure private endpoint.",
        ),
        404 => AzureError::new(
            status,
            "DeploymentNotFound",
            "The API deployment for this resource does not exist. If you created the \
             deployment within the last 5 minutes, please wait a moment and try again.",
        ),
        429 => AzureError::new(
            status,
            "429",
            &format!(
                "Requests to the {operation} Operation under Azure OpenAI API version \
                 {version} have exceeded token rate limit of your current OpenAI S0 pricing \
                 tier. Please retry after 1 second. Please go here: \
                 https://aka.ms/oai/quotaincrease if you would like to further increase the \
                 default rate limit."
            ),
        ),
        _ => return ApiError::injected(status).into_response(),
    };
    e.into_response()
}

/// `{"error":{"code":"<string>","message"}}`.
#[derive(Debug, Clone)]
pub struct AzureError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Sent instead of the serialized envelope, for bodies whose exact bytes
    /// Azure is known for.
    verbatim: Option<&'static str>,
}

impl AzureError {
    fn new(status: StatusCode, code: &'static str, message: &str) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            verbatim: None,
        }
    }

    fn access_denied() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "401",
            "Access denied due to invalid subscription key or wrong API endpoint. Make sure \
             to provide a valid key for an active subscription and use a correct regional API \
             endpoint for your resource.",
        )
    }

    /// Unknown route, or missing or unknown `api-version`.
    pub fn resource_not_found() -> Self {
        Self {
            // Byte for byte, including the space after the second colon.
            verbatim: Some(r#"{"error":{"code":"404","message": "Resource not found"}}"#),
            ..Self::new(StatusCode::NOT_FOUND, "404", "Resource not found")
        }
    }
}

impl IntoResponse for AzureError {
    fn into_response(self) -> Response {
        let mut resp = match self.verbatim {
            Some(body) => {
                let mut r = (self.status, body).into_response();
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                r
            }
            None => (
                self.status,
                Json(json!({"error": {"code": self.code, "message": self.message}})),
            )
                .into_response(),
        };
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            resp.headers_mut()
                .insert("retry-after", HeaderValue::from_static("1"));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::valid_api_version;

    #[test]
    fn api_version_shapes() {
        for ok in ["2024-10-21", "2025-04-01-preview"] {
            assert!(valid_api_version(ok), "{ok}");
        }
        for bad in [
            "",
            "preview",
            "latest",
            "2024-1-21",
            "2024-10-21-beta",
            "2024/10/21",
        ] {
            assert!(!valid_api_version(bad), "{bad}");
        }
    }
}
