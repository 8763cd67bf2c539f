//! Model routing inside a request: resolve the requested model through the route table
//! (aliases, globs, allow-lists), pick the provider for this API, and answer `/v1/models`
//! from the table for this caller.

use super::{Caller, Flow};
use crate::reply::{self, Reply};
use crate::request_body::RequestFields;
use crate::routes::RouteError;

impl Flow {
    /// With a route table: the model to send upstream (`Some` when an alias changed it)
    /// and the provider, or the refusal. Without one, the path's provider stands.
    pub(super) fn route_model(
        &mut self,
        caller: &Caller,
        fields: &RequestFields,
    ) -> Result<Option<String>, Reply> {
        let rt = std::rc::Rc::clone(&self.rt);
        let Some(table) = &rt.config.routes else {
            return Ok(None);
        };
        let Some(endpoint) = self.facts.endpoint else {
            return Ok(None);
        };
        if endpoint.format.is_none() {
            // Listing models and the like carry no model.
            return Ok(None);
        }
        let requested = fields
            .model
            .clone()
            .or_else(|| self.facts.path_model.clone())
            .unwrap_or_default();
        let (model, route) = table
            .resolve(&requested, caller.tenant.as_deref(), &caller.groups)
            .map_err(|e| match e {
                RouteError::UnknownModel => reply::error(
                    404,
                    "invalid_request_error",
                    "model_not_found",
                    &format!(
                        "The model `{}` does not exist or you do not have access to it.",
                        clip(&requested)
                    ),
                ),
                RouteError::Forbidden => reply::error(
                    403,
                    "permission_error",
                    "model_not_allowed",
                    &format!(
                        "You are not allowed to use the model `{}`.",
                        clip(&requested)
                    ),
                ),
            })?;
        let chain: Vec<usize> = route
            .providers
            .iter()
            .copied()
            .filter(|i| {
                rt.config
                    .providers
                    .get(*i)
                    .is_some_and(|p| p.api == endpoint.api)
            })
            .collect();
        let provider = chain.first().copied().ok_or_else(|| {
            reply::error(
                400,
                "invalid_request_error",
                "wrong_api",
                &format!(
                    "The model `{}` is not served through the {} API on this gateway.",
                    clip(&requested),
                    endpoint.api.name()
                ),
            )
        })?;
        self.facts.provider = Some(provider);
        self.facts.chain = chain;
        self.facts.model = Some(model.to_string());
        Ok((model != requested).then(|| model.to_string()))
    }

    /// `GET /v1/models` (and `/v1/models/{id}`, Gemini's `/v1beta/models[/{id}]`) with a
    /// route table: the models this caller may use, answered here. OpenAI's, Anthropic's
    /// and Gemini's SDKs share these paths, so each entry carries every shape's fields
    /// (`object`/`owned_by`; `type`/`display_name`; `name`/`displayName`/
    /// `supportedGenerationMethods`), the list Anthropic's pagination fields and Gemini's
    /// `models`.
    pub(super) fn models_reply(&self, caller: &Caller) -> Option<Reply> {
        let table = self.rt.config.routes.as_ref()?;
        if self.facts.endpoint?.op != crate::api::Op::Models {
            return None;
        }
        let entry = |id: &str, provider: usize| {
            let owner = self
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
        let body = match self.facts.path_model.as_deref() {
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
}

/// What a Gemini client may call on a listed model through the gateway.
const GEMINI_METHODS: [&str; 3] = ["generateContent", "streamGenerateContent", "countTokens"];

/// Client input echoed in an error stays short and printable.
fn clip(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(128).collect()
}
