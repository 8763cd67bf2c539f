//! The providers the gateway fronts: which API each speaks, which Envoy cluster reaches
//! it, and which environment variable holds its key (the name only: the plugin
//! configuration is visible in `/config_dump`).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::accounting::pricing::MAX_MODEL_NAME_BYTES;
use crate::config::error::ConfigError;
use crate::providers::api::{Api, ModelSource};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    name: String,
    api: String,
    cluster: String,
    key_env: String,
    #[serde(default)]
    key_header: Option<String>,
    #[serde(default)]
    key_prefix: Option<String>,
    #[serde(default)]
    deployments: Option<BTreeMap<String, String>>,
    #[serde(default)]
    internal: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct Provider {
    pub name: String,
    pub api: Api,
    pub cluster: String,
    pub key_env: String,
    pub key_header: String,
    pub key_prefix: String,
    /// Azure: the model behind each deployment name. Azure bills the deployment in the
    /// path whatever the body's `model` says, so routing, prices and allow-lists follow
    /// this map; `None` takes the deployment's name as its model.
    pub deployments: Option<BTreeMap<String, String>>,
    /// Run by the organisation itself: the only kind of upstream that receives the
    /// caller's identity headers (`x-chokepoint-user`, `-tenant`, `-groups`,
    /// `-cost-center`). An outside provider sees no more than the pseudonymous UUID in its
    /// own end-user field.
    pub internal: bool,
}

impl Provider {
    /// Whether a request naming this Azure deployment may go to this provider.
    pub fn serves_deployment(&self, deployment: &str) -> bool {
        self.deployments
            .as_ref()
            .is_none_or(|d| d.contains_key(deployment))
    }
}

pub fn parse(raw: Vec<RawProvider>) -> Result<Vec<Provider>, ConfigError> {
    let err = |field: String, message: String| ConfigError { field, message };
    if raw.is_empty() {
        return Err(err(
            "providers".into(),
            "at least one provider is required".into(),
        ));
    }
    let mut out: Vec<Provider> = Vec::with_capacity(raw.len());
    for (i, p) in raw.into_iter().enumerate() {
        let field = |f: &str| format!("providers[{i}].{f}");
        if p.name.is_empty() || out.iter().any(|o| o.name == p.name) {
            return Err(err(field("name"), "must be non-empty and unique".into()));
        }
        let api = Api::parse(&p.api).ok_or_else(|| {
            err(
                field("api"),
                format!(
                    "unknown API {:?}; one of openai, anthropic, gemini, azure",
                    p.api
                ),
            )
        })?;
        if p.cluster.is_empty() {
            return Err(err(field("cluster"), "must name an Envoy cluster".into()));
        }
        if p.key_env.is_empty() || p.key_env.contains('=') {
            return Err(err(
                field("key_env"),
                "must name an environment variable of the Envoy process".into(),
            ));
        }
        let (default_header, default_prefix) = api.key_header();
        let key_header = match p.key_header {
            Some(h) if h.is_empty() => {
                return Err(err(field("key_header"), "must not be empty".into()))
            }
            Some(h) => h.to_ascii_lowercase(),
            None => default_header.to_string(),
        };
        if let Some(map) = &p.deployments {
            if api.spec().model_source() != ModelSource::Deployment {
                return Err(err(
                    field("deployments"),
                    "only Azure names its models by deployment".into(),
                ));
            }
            let bad = |s: &str| {
                s.is_empty()
                    || s.len() > MAX_MODEL_NAME_BYTES
                    || s.chars().any(|c| c.is_control() || c == '/' || c == '*')
            };
            if let Some((d, m)) = map.iter().find(|(d, m)| bad(d) || bad(m)) {
                return Err(err(
                    field("deployments"),
                    format!(
                        "{d:?} -> {m:?}: deployment and model names are 1-{MAX_MODEL_NAME_BYTES} bytes, without `/`, `*` or control characters"
                    ),
                ));
            }
        }
        out.push(Provider {
            name: p.name,
            api,
            cluster: p.cluster,
            key_env: p.key_env,
            key_header,
            key_prefix: p.key_prefix.unwrap_or_else(|| default_prefix.to_string()),
            deployments: p.deployments,
            internal: p.internal.unwrap_or(false),
        });
    }
    Ok(out)
}

/// An Azure deployment no configured deployment map names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownDeployment;

/// The model an Azure deployment serves, from the first provider that maps it: `Ok(None)`
/// when no Azure provider has a map (the deployment's name is its model), an error when
/// some do and none knows this deployment.
pub fn deployment_model<'a>(
    providers: &'a [Provider],
    deployment: &str,
) -> Result<Option<&'a str>, UnknownDeployment> {
    let mut maps = providers
        .iter()
        .filter(|p| p.api.spec().model_source() == ModelSource::Deployment)
        .filter_map(|p| p.deployments.as_ref())
        .peekable();
    if maps.peek().is_none() {
        return Ok(None);
    }
    maps.find_map(|m| m.get(deployment))
        .map(|m| Some(m.as_str()))
        .ok_or(UnknownDeployment)
}

/// The provider serving an API: the first configured for it.
pub fn for_api(providers: &[Provider], api: Api) -> Option<(usize, &Provider)> {
    providers.iter().enumerate().find(|(_, p)| p.api == api)
}
