//! Field checks shared by every endpoint that names a request and a user, so authorize
//! and usage accept exactly the same ids: a `request_id` authorized is one the ledger
//! will book.
//!
//! `field` is the name reported in errors: `request_id` for authorize,
//! `records[3].request_id` for a record in a usage batch.

use super::error::ApiError;
use crate::keys::DEFAULT_ID;
use crate::ledger::Scope;
use crate::user_id::UserId;

/// Longest accepted `request_id`. It becomes the idempotency key of usage records, so
/// it must stay small; Envoy's own ids are 36 characters.
pub const MAX_REQUEST_ID_BYTES: usize = 256;

/// Longest tenant, cost centre or model id an operator may set limits for or ask about.
pub const MAX_SCOPE_ID_BYTES: usize = 256;

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

/// `scope_kind` as the admin API names it: `user`, `tenant`, `cost_center` or `model`.
pub fn scope_kind(field: &str, value: Option<String>) -> Result<Scope, ApiError> {
    let kind = value.ok_or_else(|| missing(field))?;
    Scope::parse(&kind)
        .ok_or_else(|| invalid(field, "must be one of user, tenant, cost_center, model"))
}

/// A scope id an operator names: a user's UUID (canonicalised, as the counters hold
/// it), or a tenant, cost centre or model name; `*`, the kind's default, only where
/// `default_allowed`.
pub fn scope_id(
    field: &str,
    scope: Scope,
    value: Option<String>,
    default_allowed: bool,
) -> Result<String, ApiError> {
    let id = value.ok_or_else(|| missing(field))?;
    if id == DEFAULT_ID {
        return if default_allowed {
            Ok(id)
        } else {
            Err(invalid(
                field,
                "must name one scope; `*` (the default limit set) has no spend of its own",
            ))
        };
    }
    if scope == Scope::User {
        let hint = if default_allowed {
            "must be a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx) or * for every user"
        } else {
            "must be a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)"
        };
        return UserId::parse(&id)
            .map(|user| user.as_str().to_owned())
            .ok_or_else(|| invalid(field, hint));
    }
    if id.trim().is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if id.len() > MAX_SCOPE_ID_BYTES {
        return Err(invalid(
            field,
            &format!("must be at most {MAX_SCOPE_ID_BYTES} bytes"),
        ));
    }
    if id.chars().any(char::is_control) {
        return Err(invalid(field, "must not contain control characters"));
    }
    Ok(id)
}
