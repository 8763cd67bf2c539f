//! Route: the model the provider will bill (named in the body or, for some APIs, in the
//! path), and with a route table the route it takes: the model name sent upstream and the
//! providers, in fallback order, that serve it through this API.

use super::super::step::{Cx, Go, Step};
use crate::accounting::pricing::MAX_MODEL_NAME_BYTES;
use crate::providers::api::{Endpoint, ModelSource};
use crate::providers::reply::{self, Reply};
use crate::providers::request_body::RequestFields;
use crate::providers::routes::RouteError;

pub struct Route;

impl Step for Route {
    fn name(&self) -> &'static str {
        "route"
    }

    fn reads_body(&self) -> bool {
        true
    }

    fn run(&self, cx: &mut Cx<'_>) -> Result<Go, Reply> {
        if cx.facts.mcp.is_some() {
            // No model: an MCP server is its own route.
            return Ok(Go::Next);
        }
        // Headers that left before the body (see `await_body`) went to one provider.
        let sent_to = cx.facts.provider.filter(|_| cx.facts.headers_gone);
        cx.facts.rewrite_model = route_model(cx)?;
        rewrite_path_model(cx)?;
        if let Some(sent_to) = sent_to {
            if cx.facts.provider != Some(sent_to) {
                return Err(not_routable(cx, sent_to));
            }
            cx.facts.chain.truncate(1);
        }
        Ok(Go::Next)
    }
}

/// The model the provider will bill, which is what the gateway routes, prices and
/// allows: Gemini's model and Azure's deployment (through its provider's deployment
/// map) are in the path, and a body naming another model is not trusted for any of
/// them; every other API takes the body's `model`. A name longer than any real
/// model's is refused before any decision, so it can neither swell a callout past
/// the policy service's limit (and into the failure mode) nor a usage record.
fn billed_model(
    cx: &Cx<'_>,
    endpoint: Endpoint,
    fields: &RequestFields,
) -> Result<Option<String>, Reply> {
    let model = match endpoint.api.spec().model_source() {
        ModelSource::Path => cx.facts.path_model.clone(),
        ModelSource::Deployment => match cx.facts.path_model.as_deref() {
            Some(deployment) => {
                match crate::providers::registry::deployment_model(
                    &cx.rt.config.providers,
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

/// The model billed (see [`billed_model`]) and, with a route table, the model
/// to send upstream (`Some` when an alias changed a model named in the body) and the
/// provider, or the refusal. Without a table, the path's provider stands.
pub(super) fn route_model(cx: &mut Cx<'_>) -> Result<Option<String>, Reply> {
    let rt = std::rc::Rc::clone(cx.rt);
    let Some(endpoint) = cx.facts.endpoint else {
        return Ok(None);
    };
    let Some(caller) = cx.facts.caller.clone() else {
        return Ok(None);
    };
    cx.facts.model = billed_model(cx, endpoint, cx.fields())?;
    let Some(table) = &rt.config.routes else {
        return Ok(None);
    };
    if endpoint.format.is_none() {
        // Listing models and the like carry no model.
        return Ok(None);
    }
    let requested = cx.facts.model.clone().unwrap_or_default();
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
    let deployment = cx.facts.path_model.as_deref().unwrap_or_default();
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
    cx.facts.provider = Some(provider);
    cx.facts.chain = chain;
    cx.facts.model = Some(model.to_string());
    // Only a model named in the body is rewritten; a path's model stays in the path.
    let in_body = endpoint.api.spec().model_source() == ModelSource::Body;
    Ok((in_body && model != requested).then(|| model.to_string()))
}

/// A Gemini model named in the path by a policy alias goes upstream as the model the alias
/// names (the one routed and priced), while the headers are still held; once they have
/// left (headers not held), the path stays as the client sent it.
fn rewrite_path_model(cx: &mut Cx<'_>) -> Result<(), Reply> {
    let Some(endpoint) = cx.facts.endpoint else {
        return Ok(());
    };
    if endpoint.api.spec().model_source() != ModelSource::Path || cx.facts.headers_gone {
        return Ok(());
    }
    let (Some(asked), Some(routed)) = (cx.facts.path_model.as_deref(), cx.facts.model.as_deref())
    else {
        return Ok(());
    };
    if asked == routed {
        return Ok(());
    }
    if let Some(path) = with_path_model(&cx.facts.upstream_path, asked, routed) {
        cx.host
            .set_request_header(":path", Some(&path))
            .map_err(|e| cx.host_failed(e))?;
        cx.facts.upstream_path = path;
    }
    Ok(())
}

/// `path` with its `models/{from}:` segment naming `to` instead; `None` when it has none.
fn with_path_model(path: &str, from: &str, to: &str) -> Option<String> {
    let needle = format!("/models/{from}:");
    let at = path.find(&needle)?;
    let rest = path.get(at + needle.len()..)?;
    Some(format!("{}/models/{to}:{rest}", path.get(..at)?))
}

/// The body's model routes to another provider than the one its headers already went to:
/// without Envoy holding headers, a model named in the body reaches only its API's first
/// provider.
fn not_routable(cx: &Cx<'_>, sent_to: usize) -> Reply {
    let model = cx.facts.model.as_deref().unwrap_or_default();
    let provider = cx
        .rt
        .config
        .providers
        .get(sent_to)
        .map_or("", |p| p.name.as_str());
    reply::error(
        400,
        "invalid_request_error",
        "model_not_routable",
        &format!(
            "The model `{}` is served by another provider than `{provider}`, and this \
             gateway's deployment routes each API to one provider.",
            clip(model)
        ),
    )
}

/// Client input echoed in an error stays short and printable.
pub(super) fn clip(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(128).collect()
}

#[cfg(test)]
mod tests {
    use super::with_path_model;

    #[test]
    fn the_path_model_is_replaced_and_the_rest_kept() {
        let cases = [
            (
                "/v1beta/models/gemini-main:streamGenerateContent?alt=sse",
                Some("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"),
            ),
            (
                "/v1/models/gemini-main:countTokens",
                Some("/v1/models/gemini-2.5-flash:countTokens"),
            ),
            // Only the whole segment, before the method.
            ("/v1beta/models/gemini-main-2:generateContent", None),
            ("/v1beta/models/gemini-main", None),
        ];
        for (path, want) in cases {
            assert_eq!(
                with_path_model(path, "gemini-main", "gemini-2.5-flash").as_deref(),
                want,
                "{path}"
            );
        }
    }
}
