//! Model routing inside a request: resolve the requested model through the route table
//! (aliases, globs, allow-lists), pick the provider for this API, and answer `/v1/models`
//! from the table for this caller.

use super::{Caller, Flow};
use crate::accounting::pricing::MAX_MODEL_NAME_BYTES;
use crate::providers::api::{Endpoint, ModelSource};
use crate::providers::reply::{self, Reply};
use crate::providers::request_body::RequestFields;
use crate::providers::routes::RouteError;

impl Flow {
    /// The model the provider will bill, which is what the gateway routes, prices and
    /// allows: Gemini's model and Azure's deployment (through its provider's deployment
    /// map) are in the path, and a body naming another model is not trusted for any of
    /// them; every other API takes the body's `model`. A name longer than any real
    /// model's is refused before any decision, so it can neither swell a callout past
    /// the policy service's limit (and into the failure mode) nor a usage record.
    fn billed_model(
        &self,
        endpoint: Endpoint,
        fields: &RequestFields,
    ) -> Result<Option<String>, Reply> {
        let model = match endpoint.api.spec().model_source() {
            ModelSource::Path => self.facts.path_model.clone(),
            ModelSource::Deployment => match self.facts.path_model.as_deref() {
                Some(deployment) => {
                    match crate::providers::registry::deployment_model(
                        &self.rt.config.providers,
                        deployment,
                    ) {
                        Ok(mapped) => Some(mapped.unwrap_or(deployment).to_string()),
                        Err(crate::providers::registry::UnknownDeployment) => {
                            return Err(reply::error(
                                404,
                                "invalid_request_error",
                                "deployment_not_found",
                                &format!(
                                    "The deployment `{}` does not exist on this gateway.",
                                    clip(deployment)
                                ),
                            ))
                        }
                    }
                }
                None => None,
            },
            ModelSource::Body => fields.model.clone(),
        };
        if model
            .as_ref()
            .is_some_and(|m| m.len() > MAX_MODEL_NAME_BYTES)
        {
            return Err(reply::bad_request(
                "model_too_long",
                &format!("The model name is longer than {MAX_MODEL_NAME_BYTES} bytes."),
            ));
        }
        Ok(model)
    }

    /// The model billed (see [`Flow::billed_model`]) and, with a route table, the model
    /// to send upstream (`Some` when an alias changed a model named in the body) and the
    /// provider, or the refusal. Without a table, the path's provider stands.
    pub(super) fn route_model(
        &mut self,
        caller: &Caller,
        fields: &RequestFields,
    ) -> Result<Option<String>, Reply> {
        let rt = std::rc::Rc::clone(&self.rt);
        let Some(endpoint) = self.facts.endpoint else {
            return Ok(None);
        };
        self.facts.model = self.billed_model(endpoint, fields)?;
        let Some(table) = &rt.config.routes else {
            return Ok(None);
        };
        if endpoint.format.is_none() {
            // Listing models and the like carry no model.
            return Ok(None);
        }
        let requested = self.facts.model.clone().unwrap_or_default();
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
        let deployment = self.facts.path_model.as_deref().unwrap_or_default();
        let by_deployment = endpoint.api.spec().model_source() == ModelSource::Deployment;
        let chain: Vec<usize> = route
            .providers
            .iter()
            .copied()
            .filter(|i| {
                rt.config.providers.get(*i).is_some_and(|p| {
                    p.api == endpoint.api && (!by_deployment || p.serves_deployment(deployment))
                })
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
        // Only a model named in the body is rewritten; a path's model stays in the path.
        let in_body = endpoint.api.spec().model_source() == ModelSource::Body;
        Ok((in_body && model != requested).then(|| model.to_string()))
    }

    /// `GET /v1/models` (and `/v1/models/{id}`, Gemini's `/v1beta/models[/{id}]`) with a
    /// route table: the models this caller may use, answered here. OpenAI's, Anthropic's
    /// and Gemini's SDKs share these paths, so each entry carries every shape's fields
    /// (`object`/`owned_by`; `type`/`display_name`; `name`/`displayName`/
    /// `supportedGenerationMethods`), the list Anthropic's pagination fields and Gemini's
    /// `models`.
    pub(super) fn models_reply(&self, caller: &Caller) -> Option<Reply> {
        let table = self.rt.config.routes.as_ref()?;
        if self.facts.endpoint?.op != crate::providers::api::Op::Models {
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
