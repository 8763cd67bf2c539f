//! `/v1/admin/limits`: the limit sets operators manage.
//!
//! - `PUT /v1/admin/limits/<scope_kind>/<id>` replaces the scope's set with the body,
//!   `{"rpm","tpm","usd_micros","tokens","period"}`, each optional (at least one limit);
//!   `<id>` `*` is the kind's default set.
//! - `GET` the same path reads it (404 when there is none), `DELETE` removes it.
//! - `GET /v1/admin/limits[?scope_kind=…]` lists every set.
//!
//! Decisions read the sets on every request, so a change applies to the next one.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::error::ApiError;
use super::{admin_auth, json_body, AppState};
use crate::fields;
use crate::keys::{self, LIMITS_INDEX_KEY};
use crate::limit_set::LimitSet;
use crate::scope::Scope;

/// Decodes and validates a `PUT` body for a set of `scope`'s kind, naming the offending
/// field.
pub fn parse_body(
    scope: Scope,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<LimitSet, ApiError> {
    let object: Map<String, Value> = json_body::decode(content_type, body)?;
    Ok(LimitSet::from_body_for(scope, object)?)
}

fn scope_of(
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<(Scope, String), ApiError> {
    let Path((kind, id)) = path.map_err(|rejection| {
        ApiError::invalid_request("invalid_path", format!("path: {rejection}"))
    })?;
    let scope = fields::scope_kind("scope_kind", Some(kind))?;
    let id = fields::scope_id("id", scope, Some(id), true)?;
    Ok((scope, id))
}

fn described(
    scope: Scope,
    id: &str,
    set: &LimitSet,
    hash: &std::collections::HashMap<String, String>,
) -> Value {
    let mut body = json!({
        "scope_kind": scope.as_str(),
        "id": id,
        "limits": set.to_json(),
    });
    if let Some(updated) = hash.get("updated_ms").and_then(|v| v.parse::<u64>().ok()) {
        body["updated_ms"] = json!(updated);
    }
    body
}

pub async fn put_limits(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if let Err(err) = admin_auth::check(state.admin_token.as_deref(), &headers) {
        return err.into_response();
    }
    let parsed = scope_of(path).and_then(|scope| {
        let body = body.map_err(|rejection| ApiError::from_body_rejection(&rejection))?;
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let set = parse_body(scope.0, content_type, &body)?;
        Ok((scope, set))
    });
    let ((scope, id), set) = match parsed {
        Ok(parsed) => parsed,
        Err(err) => return err.into_response(),
    };
    let updated_ms = state.clock.now_ms();
    let mut stored = set.to_fields();
    stored.push(("updated_ms", updated_ms.to_string()));
    let written = state
        .store
        .replace_hash_indexed(
            &keys::limits_key(scope, &id),
            &stored,
            LIMITS_INDEX_KEY,
            &keys::limits_index_member(scope, &id),
        )
        .await;
    match written {
        Ok(()) => {
            log::info!(
                "limits for {}:{id} set to {}",
                scope.as_str(),
                set.to_json()
            );
            let mut body = described(scope, &id, &set, &Default::default());
            body["updated_ms"] = json!(updated_ms);
            Json(body).into_response()
        }
        Err(_) => ApiError::store_unavailable().into_response(),
    }
}

pub async fn get_limits(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Response {
    if let Err(err) = admin_auth::check(state.admin_token.as_deref(), &headers) {
        return err.into_response();
    }
    let (scope, id) = match scope_of(path) {
        Ok(parsed) => parsed,
        Err(err) => return err.into_response(),
    };
    let key = keys::limits_key(scope, &id);
    let hash = match state.store.hash(&key).await {
        Ok(hash) => hash,
        Err(_) => return ApiError::store_unavailable().into_response(),
    };
    match LimitSet::from_fields(&hash) {
        Ok(Some(set)) => Json(described(scope, &id, &set, &hash)).into_response(),
        Ok(None) => ApiError::missing_resource(
            "limits_not_found",
            format!("no limits are set for {}:{id}", scope.as_str()),
        )
        .into_response(),
        Err(why) => {
            ApiError::corrupt_data("invalid_stored_limits", format!("{key}: {why}")).into_response()
        }
    }
}

pub async fn delete_limits(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Response {
    if let Err(err) = admin_auth::check(state.admin_token.as_deref(), &headers) {
        return err.into_response();
    }
    let (scope, id) = match scope_of(path) {
        Ok(parsed) => parsed,
        Err(err) => return err.into_response(),
    };
    let deleted = state
        .store
        .delete_indexed(
            &keys::limits_key(scope, &id),
            LIMITS_INDEX_KEY,
            &keys::limits_index_member(scope, &id),
        )
        .await;
    match deleted {
        Ok(deleted) => {
            if deleted {
                log::info!("limits for {}:{id} deleted", scope.as_str());
            }
            Json(json!({"scope_kind": scope.as_str(), "id": id, "deleted": deleted}))
                .into_response()
        }
        Err(_) => ApiError::store_unavailable().into_response(),
    }
}

#[derive(Deserialize)]
pub struct ListQuery {
    scope_kind: Option<String>,
}

pub async fn list_limits(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    if let Err(err) = admin_auth::check(state.admin_token.as_deref(), &headers) {
        return err.into_response();
    }
    let only = match query
        .map_err(|rejection| {
            ApiError::invalid_request("invalid_query", format!("query string: {rejection}"))
        })
        .and_then(|Query(query)| {
            query
                .scope_kind
                .map(|kind| fields::scope_kind("scope_kind", Some(kind)))
                .transpose()
                .map_err(ApiError::from)
        }) {
        Ok(only) => only,
        Err(err) => return err.into_response(),
    };
    let listed = state
        .store
        .indexed_hashes(LIMITS_INDEX_KEY, |member| {
            let (scope, id) = index_entry(member)?;
            Some(keys::limits_key(scope, id))
        })
        .await;
    let listed = match listed {
        Ok(listed) => listed,
        Err(_) => return ApiError::store_unavailable().into_response(),
    };
    let mut entries: Vec<(usize, String, Value)> = Vec::new();
    for (member, hash) in listed {
        let Some((scope, id)) = index_entry(&member) else {
            continue;
        };
        if only.is_some_and(|only| only != scope) {
            continue;
        }
        let entry = match LimitSet::from_fields(&hash) {
            // Deleted between the two reads.
            Ok(None) => continue,
            Ok(Some(set)) => described(scope, id, &set, &hash),
            Err(why) => json!({"scope_kind": scope.as_str(), "id": id, "invalid": why}),
        };
        let order = Scope::ALL.iter().position(|&s| s == scope).unwrap_or(0);
        entries.push((order, id.to_owned(), entry));
    }
    entries.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let limits: Vec<Value> = entries.into_iter().map(|(_, _, entry)| entry).collect();
    Json(json!({ "limits": limits })).into_response()
}

/// `<kind>:<id>` from the index; members the service did not write are skipped.
fn index_entry(member: &str) -> Option<(Scope, &str)> {
    let (kind, id) = member.split_once(':')?;
    Some((Scope::parse(kind)?, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: Option<&str> = Some("application/json");

    #[test]
    fn accepts_limit_sets() {
        let cases = [
            (r#"{"rpm":60}"#, json!({"rpm": 60})),
            (
                r#"{"rpm":60,"tpm":100000,"usd_micros":500000000,"tokens":0,"period":"month"}"#,
                json!({"rpm": 60, "tpm": 100000, "usd_micros": 500000000, "tokens": 0, "period": "month"}),
            ),
            (
                r#"{"usd_micros":1,"period":"rolling:3600","rpm":null}"#,
                json!({"usd_micros": 1, "period": "rolling:3600"}),
            ),
            (
                r#"{"tokens":9007199254740992,"period":"day"}"#,
                json!({"tokens": 9007199254740992_u64, "period": "day"}),
            ),
        ];
        for (body, expected) in cases {
            let set = parse_body(Scope::User, JSON, body.as_bytes()).expect(body);
            assert_eq!(set.to_json(), expected, "{body}");
        }
    }

    #[test]
    fn rejects_bad_bodies_naming_the_field() {
        let cases = [
            ("", "invalid_json", "empty"),
            ("[]", "invalid_field", "JSON object"),
            ("{}", "invalid_field", "rpm or another limit is required"),
            (
                r#"{"rpm":null}"#,
                "invalid_field",
                "rpm or another limit is required",
            ),
            (
                r#"{"rpmm":5}"#,
                "unknown_field",
                "rpmm is not a limit field",
            ),
            (
                r#"{"rpm":5,"usd":5}"#,
                "unknown_field",
                "usd is not a limit field",
            ),
            (r#"{"rpm":-1}"#, "invalid_field", "rpm: invalid value"),
            (r#"{"tpm":1.5}"#, "invalid_field", "tpm: invalid type"),
            (r#"{"rpm":"60"}"#, "invalid_field", "rpm: invalid type"),
            (
                r#"{"rpm":9007199254740993}"#,
                "invalid_field",
                "rpm must be at most 2^53",
            ),
            (r#"{"usd_micros":5}"#, "invalid_field", "period is required"),
            (
                r#"{"rpm":5,"period":"day"}"#,
                "invalid_field",
                "period applies to a budget",
            ),
            (
                r#"{"tokens":5,"period":"week"}"#,
                "invalid_field",
                "period must be day, month or rolling",
            ),
            (
                r#"{"tokens":5,"period":"rolling:0"}"#,
                "invalid_field",
                "period must be day",
            ),
            (
                r#"{"tokens":5,"period":7}"#,
                "invalid_field",
                "period: invalid type",
            ),
        ];
        for (body, code, needle) in cases {
            let err = parse_body(Scope::User, JSON, body.as_bytes()).expect_err(body);
            assert_eq!(err.status, axum::http::StatusCode::BAD_REQUEST, "{body}");
            assert_eq!(err.code, code, "{body}: {}", err.message);
            assert!(
                err.message.contains(needle),
                "{body}: {:?} lacks {needle:?}",
                err.message
            );
        }
        let err =
            parse_body(Scope::User, Some("text/plain"), b"{\"rpm\":1}").expect_err("content type");
        assert_eq!(err.code, "unsupported_content_type");
    }

    #[test]
    fn reads_index_entries() {
        assert_eq!(index_entry("tenant:acme"), Some((Scope::Tenant, "acme")));
        assert_eq!(index_entry("model:a:b"), Some((Scope::Model, "a:b")));
        assert_eq!(index_entry("user:*"), Some((Scope::User, "*")));
        assert_eq!(index_entry("group:x"), None);
        assert_eq!(index_entry("tenant"), None);
    }
}
