//! The upstream half of the filter: runs once per upstream attempt (an Envoy upstream HTTP
//! filter) and gives the attempt the key of the provider it is actually going to, read
//! from the chosen endpoint's metadata. A retry or a fallback to another provider thus
//! carries the right key, and no other provider's key header survives from an earlier
//! attempt (upstream filters edit the same header map on every attempt).

use serde::Deserialize;

use crate::config::error::ConfigError;
use crate::providers::registry::{self, Provider, RawProvider};

/// The endpoint metadata key (`filter_metadata.chokepoint.provider`) naming the provider.
pub const PROVIDER_METADATA: [&str; 5] = [
    "xds",
    "upstream_host_metadata",
    "filter_metadata",
    "chokepoint",
    "provider",
];

/// Response header naming the provider that served the request.
pub const PROVIDER_HEADER: &str = "x-chokepoint-provider";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInjector {
    inject_keys: RawInjectKeys,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInjectKeys {
    providers: Vec<RawProvider>,
}

pub struct Injector {
    providers: Vec<Provider>,
    /// Each provider's header edits (its key set, every other key header removed),
    /// built once at configuration: an attempt formats nothing.
    edits: Vec<Vec<(String, Option<String>)>>,
}

/// Never print keys.
impl std::fmt::Debug for Injector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Injector")
            .field(
                "providers",
                &self.providers.iter().map(|p| &p.name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Whether a plugin configuration is for the key injector (it has `inject_keys` at the
/// top) rather than the gateway filter. Chosen by that key, not by trial parsing, so a
/// typo in either shape is an error that names the field.
pub fn is_injector_config(bytes: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|v| v.as_object().map(|o| o.contains_key("inject_keys")))
        .unwrap_or(false)
}

impl Injector {
    pub fn parse(
        bytes: &[u8],
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Injector, ConfigError> {
        let raw: RawInjector = serde_json::from_slice(bytes).map_err(|e| ConfigError {
            field: "inject_keys".into(),
            message: e.to_string(),
        })?;
        let providers = registry::parse(raw.inject_keys.providers).map_err(|mut e| {
            e.field = format!("inject_keys.{}", e.field);
            e
        })?;
        let mut keys = Vec::with_capacity(providers.len());
        for (i, p) in providers.iter().enumerate() {
            let key = env(&p.key_env)
                .map(|k| k.trim().to_string())
                .unwrap_or_default();
            if key.is_empty() {
                return Err(ConfigError {
                    field: format!("inject_keys.providers[{i}].key_env"),
                    message: format!(
                        "environment variable {} must be set in the Envoy process",
                        p.key_env
                    ),
                });
            }
            keys.push(key);
        }
        let edits = providers
            .iter()
            .zip(&keys)
            .map(|(p, key)| edits_for(&providers, p, key))
            .collect();
        Ok(Injector { providers, edits })
    }

    /// The header edits for an attempt to `provider`: its key set, every other provider's
    /// key header removed. `None` when the provider is unknown.
    pub fn edits(&self, provider: &str) -> Option<&[(String, Option<String>)]> {
        let i = self.providers.iter().position(|p| p.name == provider)?;
        self.edits.get(i).map(Vec::as_slice)
    }

    /// [`Injector::edits`] as borrowed pairs.
    pub fn headers_for(&self, provider: &str) -> Option<Vec<(&str, Option<&str>)>> {
        let edits = self.edits(provider)?;
        Some(
            edits
                .iter()
                .map(|(h, v)| (h.as_str(), v.as_deref()))
                .collect(),
        )
    }
}

/// `p`'s header edits among `providers`, its key being `key`.
fn edits_for(providers: &[Provider], p: &Provider, key: &str) -> Vec<(String, Option<String>)> {
    let mut out: Vec<(String, Option<String>)> = Vec::with_capacity(providers.len());
    for other in providers {
        if other.key_header != p.key_header && !out.iter().any(|(h, _)| *h == other.key_header) {
            out.push((other.key_header.clone(), None));
        }
    }
    out.push((
        p.key_header.clone(),
        Some(format!("{}{}", p.key_prefix, key)),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"{"inject_keys": {"providers": [
        {"name": "openai", "api": "openai", "cluster": "c1", "key_env": "OPENAI_API_KEY"},
        {"name": "backup", "api": "openai", "cluster": "c2", "key_env": "BACKUP_KEY"},
        {"name": "anthropic", "api": "anthropic", "cluster": "c3", "key_env": "ANTHROPIC_API_KEY"}
    ]}}"#;

    fn env(k: &str) -> Option<String> {
        Some(format!("key-of-{k}"))
    }

    #[test]
    fn each_attempt_gets_its_providers_key_only() {
        assert!(is_injector_config(CONFIG.as_bytes()));
        assert!(!is_injector_config(br#"{"issuers": []}"#));
        let inj = Injector::parse(CONFIG.as_bytes(), env).unwrap();
        let edits = |p| inj.headers_for(p).unwrap();
        assert_eq!(
            edits("backup"),
            [
                ("x-api-key", None),
                ("authorization", Some("Bearer key-of-BACKUP_KEY"))
            ]
        );
        assert_eq!(
            edits("anthropic"),
            [
                ("authorization", None),
                ("x-api-key", Some("key-of-ANTHROPIC_API_KEY"))
            ]
        );
        assert!(inj.headers_for("nobody").is_none());
        assert!(!format!("{inj:?}").contains("key-of"));
    }

    #[test]
    fn errors_name_the_field() {
        let e = Injector::parse(CONFIG.as_bytes(), |_| None).unwrap_err();
        assert_eq!(e.field, "inject_keys.providers[0].key_env");
        let e = Injector::parse(br#"{"inject_keys": {"providers": [], "x": 1}}"#, env).unwrap_err();
        assert!(e.message.contains("unknown field `x`"), "{e}");
        let e = Injector::parse(br#"{"inject_keys": {"providers": []}}"#, env).unwrap_err();
        assert_eq!(e.field, "inject_keys.providers");
    }
}
