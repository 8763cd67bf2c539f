//! `POST /v1/authorize`: may this user make this request now? One script run checks
//! every limit of the request's user, tenant, cost centre and model, and reserves the
//! request's worst case against their budgets (see `decision`).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chokepoint_contract::bounds::{MAX_LEASE_RETURN_MS, MAX_LEASE_SLOTS, MAX_USAGE_COUNT};

use super::error::ApiError;
use super::{json_body, AppState};
use crate::decision::{deny_reason, Decision};
use crate::fields;
use crate::metrics::Outcome;
use crate::refusals;
use crate::validated::{AuthorizeRequest, McpScope};

/// The request as the contract has it. Its required fields read as `None` when absent,
/// so their absence gets our message and code rather than serde's; unknown fields are
/// ignored: a newer filter may send more.
type Wire = chokepoint_contract::AuthorizeRequest;

impl AuthorizeRequest {
    /// Checks the content type and decodes and validates the body.
    pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<Self, ApiError> {
        let wire: Wire = json_body::decode(content_type, body)?;
        let request_id = fields::request_id("request_id", wire.request_id.into_option())?;
        let user = fields::user("user", wire.user.into_option())?;
        // Clamped rather than refused: the filter derives these from the client's
        // max_tokens, and a refusal would hand the decision to its failure mode.
        let reserve = |value: u64| value.min(MAX_USAGE_COUNT);
        Ok(Self {
            request_id,
            user,
            tenant: fields::name("tenant", wire.tenant)?,
            groups: fields::groups("groups", wire.groups)?,
            cost_center: fields::name("cost_center", wire.cost_center)?,
            model: fields::name("model", wire.model)?,
            model_key: fields::model_key("model_key", wire.model_key)?,
            priced: wire.priced,
            provider: fields::name("provider", wire.provider)?,
            stream: wire.stream,
            reserve_tokens: reserve(wire.reserve_tokens),
            reserve_cost_micros: reserve(wire.reserve_cost_micros),
            lease_slots: wire.lease_slots.min(MAX_LEASE_SLOTS),
            lease_return_ms: wire.lease_return_ms.min(MAX_LEASE_RETURN_MS),
            mcp: wire.mcp.map(mcp_scope).transpose()?,
        })
    }
}

fn mcp_scope(wire: chokepoint_contract::McpScope) -> Result<McpScope, fields::Invalid> {
    fields::mcp_server("mcp.server", &wire.server)?;
    if let Some(tool) = &wire.tool {
        fields::mcp_tool("mcp.tool", tool)?;
    }
    Ok(McpScope {
        server: wire.server,
        tool: wire.tool,
    })
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

    let now_ms = state.clock.now_ms();
    match state.policy.decide(&state.store, &request, now_ms).await {
        Ok(decision) => {
            match &decision {
                Decision::Allow { .. } => state.metrics.record(Outcome::Allow),
                Decision::Deny { tripped, .. } => {
                    state.metrics.record(Outcome::Deny);
                    state.metrics.record_denial(tripped.scope, &tripped.state);
                    // The spend page's 429s by limit. Counting is best effort: a
                    // failure is the store's to log, and the denial stands as decided.
                    let day = crate::utc_date::Day::from_unix_ms(now_ms);
                    let _ = state
                        .store
                        .count(&refusals::refusals_key(day), &tripped.name)
                        .await;
                    log::debug!(
                        "denied {}: {} ({})",
                        request.request_id,
                        tripped.name,
                        deny_reason(&tripped.state)
                    );
                }
            }
            Json(decision.answer()).into_response()
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
    use chokepoint_contract::bounds::{MAX_GROUPS, MAX_NAME_BYTES, MAX_REQUEST_ID_BYTES};

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
                "cost_center":"cc-1","model":"gpt-4o","provider":"openai","stream":true,
                "reserve_tokens":1200,"reserve_cost_micros":18446744073709551615,
                "future_field":{{"x":1}}}}"#,
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
        assert_eq!(full.cost_center.as_deref(), Some("cc-1"));
        assert!(full.stream);
        assert_eq!(full.reserve_tokens, 1200);
        assert_eq!(
            full.reserve_cost_micros, MAX_USAGE_COUNT,
            "clamped to 2^53, not refused"
        );
        assert_eq!(
            (minimal.reserve_tokens, minimal.reserve_cost_micros),
            (0, 0)
        );

        let nulls = parse(&format!(
            r#"{{"request_id":"r3","user":"{USER}","tenant":null,"groups":null,"model":null,"provider":null,"stream":null}}"#
        ))
        .expect("nulls");
        assert_eq!(nulls.tenant, None);
        assert!(nulls.groups.is_empty());

        // Priced unless the filter says otherwise; the model key is optional.
        assert!(minimal.priced);
        assert_eq!(minimal.model_key, None);
        let keyed = parse(&format!(
            r#"{{"request_id":"r4","user":"{USER}","model":"made-up","model_key":"other","priced":false}}"#
        ))
        .expect("keyed");
        assert!(!keyed.priced);
        assert_eq!(
            (keyed.model.as_deref(), keyed.model_key.as_deref()),
            (Some("made-up"), Some("other"))
        );

        // Every bound is inclusive.
        let name = "n".repeat(MAX_NAME_BYTES);
        let groups = vec![name.clone(); MAX_GROUPS];
        let at_bounds = parse(
            &serde_json::json!({
                "request_id": "r5", "user": USER, "tenant": name, "cost_center": name,
                "model": name, "model_key": name, "provider": name, "groups": groups,
            })
            .to_string(),
        )
        .expect("at bounds");
        assert_eq!(at_bounds.groups.len(), MAX_GROUPS);
    }

    #[test]
    fn refuses_strings_past_their_bounds_naming_the_field() {
        let long = "x".repeat(MAX_NAME_BYTES + 1);
        let body = |field: &str, value: serde_json::Value| {
            let mut body = serde_json::json!({"request_id": "r", "user": USER});
            body[field] = value;
            body.to_string()
        };
        let cases = [
            (
                body("model", "m".repeat(64 * 1024).into()),
                "model must be at most 256 bytes (got 65536)",
            ),
            (
                body("model_key", long.clone().into()),
                "model_key must be at most 256 bytes (got 257)",
            ),
            (body("model_key", "".into()), "model_key must not be empty"),
            (body("model_key", " ".into()), "model_key must not be empty"),
            (
                body("tenant", long.clone().into()),
                "tenant must be at most 256 bytes",
            ),
            (
                body("cost_center", long.clone().into()),
                "cost_center must be at most 256 bytes",
            ),
            (
                body("provider", long.clone().into()),
                "provider must be at most 256 bytes",
            ),
            (
                body("groups", serde_json::json!(["eng", long])),
                "groups[1] must be at most 256 bytes",
            ),
            (
                body("groups", serde_json::json!(vec!["g"; MAX_GROUPS + 1])),
                "groups must hold at most 64 groups (got 65)",
            ),
            (body("priced", "no".into()), "priced: invalid type"),
        ];
        for (body, needle) in cases {
            let err = parse(&body).expect_err(needle);
            assert_eq!(err.status, axum::http::StatusCode::BAD_REQUEST, "{needle}");
            assert_eq!(err.code, "invalid_field", "{needle}");
            assert!(
                err.message.contains(needle),
                "{:?} lacks {needle:?}",
                err.message
            );
        }
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
                format!(r#"{{"request_id":"r","user":"{USER}","reserve_tokens":-1}}"#),
                "invalid_field",
                "reserve_tokens: invalid value",
            ),
            (
                format!(r#"{{"request_id":"r","user":"{USER}","reserve_cost_micros":1.5}}"#),
                "invalid_field",
                "reserve_cost_micros: invalid type",
            ),
            (
                format!(r#"{{"request_id":"r","user":"{USER}","cost_center":7}}"#),
                "invalid_field",
                "cost_center: invalid type",
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
