//! The providers the gateway fronts: which API each speaks, which Envoy cluster reaches
//! it, and which environment variable holds its key (the name only: the plugin
//! configuration is visible in `/config_dump`).

use serde::Deserialize;

use crate::api::Api;
use crate::config::ConfigError;

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
}

#[derive(Debug, Clone)]
pub struct Provider {
    pub name: String,
    pub api: Api,
    pub cluster: String,
    pub key_env: String,
    pub key_header: String,
    pub key_prefix: String,
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
        out.push(Provider {
            name: p.name,
            api,
            cluster: p.cluster,
            key_env: p.key_env,
            key_header,
            key_prefix: p.key_prefix.unwrap_or_else(|| default_prefix.to_string()),
        });
    }
    Ok(out)
}

/// The provider serving an API: the first configured for it.
pub fn for_api(providers: &[Provider], api: Api) -> Option<(usize, &Provider)> {
    providers.iter().enumerate().find(|(_, p)| p.api == api)
}
