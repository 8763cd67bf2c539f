//! `GET /v1/viewer`: who the service takes the caller for (the admin token, an admin
//! group's member, or one user by their pseudonymous UUID), so a page or a script can
//! check a credential before it asks for anything.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Value};

use super::error::ApiError;
use super::AppState;
use crate::viewer::Viewer;

pub async fn read_viewer(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let now_secs = state.clock.now_ms() / 1000;
    Ok(Json(
        match state.viewers.resolve(&headers, now_secs).await? {
            Viewer::Admin => json!({"viewer": "admin"}),
            Viewer::User {
                user,
                groups,
                tenant,
            } => json!({"viewer": "user", "user": user, "groups": groups, "tenant": tenant}),
        },
    ))
}
