//! The model list (`GET /v1/models` and the like) with a route table: answered by the
//! gateway itself, as `classify` decides.

use super::route::clip;
use crate::flow::step::Cx;
use crate::providers::reply::{self, Reply};

/// `GET /v1/models` (and `/v1/models/{id}`, Gemini's `/v1beta/models[/{id}]`) with a
/// route table: the models this caller may use, answered here. OpenAI's, Anthropic's
/// and Gemini's SDKs share these paths, so each entry carries every shape's fields
/// (`object`/`owned_by`; `type`/`display_name`; `name`/`displayName`/
/// `supportedGenerationMethods`), the list Anthropic's pagination fields and Gemini's
/// `models`.
pub fn reply(cx: &Cx<'_>) -> Option<Reply> {
    let caller = cx.facts.caller.as_ref()?;
    let table = cx.rt.config.routes.as_ref()?;
    if cx.facts.endpoint?.op != crate::providers::api::Op::Models {
        return None;
    }
    let entry = |id: &str, provider: usize| {
        let owner = cx
            .rt
            .config
            .providers
            .get(provider)
            .map_or("", |p| p.name.as_str());
        serde_json::json!({"id": id, "object": "model", "created": 0, "owned_by": owner,
                           "type": "model", "display_name": id,
                           "created_at": "1970-01-01T00:00:00Z",
                           "name": format!("models/{id}"), "displayName": id,
                           "supportedGenerationMethods": GEMINI_METHODS})
    };
    let (tenant, groups) = (caller.tenant.as_deref(), &caller.groups);
    let body = match cx.facts.path_model.as_deref() {
        Some(id) => match table.resolve(id, tenant, groups) {
            Ok((_, route)) => entry(id, route.providers.first().copied().unwrap_or(0)),
            Err(_) => {
                return Some(reply::error(
                    404,
                    "invalid_request_error",
                    "model_not_found",
                    &format!(
                        "The model `{}` does not exist or you do not have access to it.",
                        clip(id)
                    ),
                ))
            }
        },
        None => {
            let data: Vec<serde_json::Value> = table
                .visible_models(tenant, groups)
                .into_iter()
                .map(|(id, provider)| entry(id, provider))
                .collect();
            let first = data.first().map(|m| m["id"].clone());
            let last = data.last().map(|m| m["id"].clone());
            serde_json::json!({"object": "list", "data": data, "has_more": false,
                               "first_id": first, "last_id": last, "models": data})
        }
    };
    Some(Reply {
        status: 200,
        headers: vec![("content-type", "application/json".into())],
        body: body.to_string(),
        error: None,
    })
}

/// What a Gemini client may call on a listed model through the gateway.
const GEMINI_METHODS: [&str; 3] = ["generateContent", "streamGenerateContent", "countTokens"];
