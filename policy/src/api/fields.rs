//! Field checks shared by every endpoint that names a request and a user, so authorize
//! and usage accept exactly the same ids: a `request_id` authorized is one the ledger
//! will book.
//!
//! `field` is the name reported in errors: `request_id` for authorize,
//! `records[3].request_id` for a record in a usage batch.

use super::error::ApiError;
use crate::user_id::UserId;

/// Longest accepted `request_id`. It becomes the idempotency key of usage records, so
/// it must stay small; Envoy's own ids are 36 characters.
pub const MAX_REQUEST_ID_BYTES: usize = 256;

pub fn missing(field: &str) -> ApiError {
    ApiError::invalid_request("missing_field", format!("{field} is required"))
}

pub fn invalid(field: &str, why: &str) -> ApiError {
    ApiError::invalid_request("invalid_field", format!("{field} {why}"))
}

pub fn request_id(field: &str, value: Option<String>) -> Result<String, ApiError> {
    let request_id = value.ok_or_else(|| missing(field))?;
    if request_id.trim().is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if request_id.len() > MAX_REQUEST_ID_BYTES {
        return Err(invalid(
            field,
            &format!("must be at most {MAX_REQUEST_ID_BYTES} bytes"),
        ));
    }
    if request_id.chars().any(char::is_control) {
        return Err(invalid(field, "must not contain control characters"));
    }
    Ok(request_id)
}

pub fn user(field: &str, value: Option<String>) -> Result<UserId, ApiError> {
    let user = value.ok_or_else(|| missing(field))?;
    UserId::parse(&user).ok_or_else(|| {
        invalid(
            field,
            "must be a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)",
        )
    })
}
