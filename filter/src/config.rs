//! Plugin configuration, parsed in two steps: serde structs that reject unknown fields
//! (a typo must fail loudly, not be ignored), then a validated runtime form. Every error
//! names the field it is about, because the message ends up in Envoy's log at load time.

use std::collections::HashSet;
use std::time::Duration;

use serde::Deserialize;

use crate::jwks::KeySet;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    issuers: Vec<RawIssuer>,
    #[serde(default)]
    token_header: Option<String>,
    #[serde(default)]
    uuid_salt_env: Option<String>,
    policy: RawPolicy,
    provider: RawProvider,
    #[serde(default)]
    max_request_body_bytes: Option<usize>,
    #[serde(default)]
    max_token_bytes: Option<usize>,
    #[serde(default)]
    clock_skew_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIssuer {
    issuer: String,
    audiences: Vec<String>,
    jwks: serde_json::Value,
    #[serde(default)]
    tenant_claim: Option<String>,
    #[serde(default)]
    groups_claim: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    cluster: String,
    #[serde(default)]
    authority: Option<String>,
    #[serde(default)]
    timeout_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    name: String,
    key_env: String,
    #[serde(default)]
    key_header: Option<String>,
    #[serde(default)]
    key_prefix: Option<String>,
}

/// The validated configuration the request path runs on.
#[derive(Debug)]
pub struct Config {
    pub issuers: Vec<Issuer>,
    pub token_header: String,
    pub uuid_salt_env: String,
    pub policy: Policy,
    pub provider: Provider,
    pub max_request_body_bytes: usize,
    pub max_token_bytes: usize,
    pub clock_skew: Duration,
}

#[derive(Debug)]
pub struct Issuer {
    pub issuer: String,
    pub audiences: HashSet<String>,
    pub keys: KeySet,
    pub tenant_claim: String,
    pub groups_claim: String,
}

#[derive(Debug)]
pub struct Policy {
    pub cluster: String,
    pub authority: String,
    pub timeout: Duration,
}

/// Names where the provider key lives, never the key itself: the plugin configuration
/// is visible in Envoy's `/config_dump`.
#[derive(Debug)]
pub struct Provider {
    pub name: String,
    pub key_env: String,
    pub key_header: String,
    pub key_prefix: String,
}

/// A configuration error that names the offending field.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "invalid plugin configuration: {}: {}",
            self.field, self.message
        )
    }
}

fn err(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.into(),
        message: message.into(),
    }
}

pub const DEFAULT_MAX_REQUEST_BODY_BYTES: usize = 1024 * 1024;
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;
pub const DEFAULT_CLOCK_SKEW_SECS: u64 = 60;
pub const DEFAULT_POLICY_TIMEOUT_MS: u64 = 1000;

impl Config {
    pub fn parse(bytes: &[u8]) -> Result<Config, ConfigError> {
        let raw: RawConfig = serde_json::from_slice(bytes).map_err(|e| {
            // serde's message already names the unknown or missing field and the column.
            err("(root)", e.to_string())
        })?;
        Self::validate(raw)
    }

    fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
        if raw.issuers.is_empty() {
            return Err(err("issuers", "at least one issuer is required"));
        }
        let mut seen = HashSet::new();
        let mut issuers = Vec::with_capacity(raw.issuers.len());
        for (i, ri) in raw.issuers.into_iter().enumerate() {
            let field = |name: &str| format!("issuers[{i}].{name}");
            if ri.issuer.trim().is_empty() {
                return Err(err(field("issuer"), "must not be empty"));
            }
            if !seen.insert(ri.issuer.clone()) {
                return Err(err(
                    field("issuer"),
                    format!("duplicate issuer {:?}", ri.issuer),
                ));
            }
            if ri.audiences.is_empty() || ri.audiences.iter().any(|a| a.is_empty()) {
                return Err(err(
                    field("audiences"),
                    "at least one non-empty audience is required",
                ));
            }
            let keys = KeySet::from_jwks(&ri.jwks).map_err(|m| err(field("jwks"), m))?;
            issuers.push(Issuer {
                issuer: ri.issuer,
                audiences: ri.audiences.into_iter().collect(),
                keys,
                tenant_claim: non_empty_or(ri.tenant_claim, "tenant", || field("tenant_claim"))?,
                groups_claim: non_empty_or(ri.groups_claim, "groups", || field("groups_claim"))?,
            });
        }

        let token_header =
            non_empty_or(raw.token_header, "authorization", || "token_header".into())?
                .to_ascii_lowercase();
        let uuid_salt_env = non_empty_or(raw.uuid_salt_env, "CHOKEPOINT_UUID_SALT", || {
            "uuid_salt_env".into()
        })?;

        if raw.policy.cluster.is_empty() {
            return Err(err(
                "policy.cluster",
                "must name the Envoy cluster of the policy service",
            ));
        }
        let timeout_ms = raw.policy.timeout_ms.unwrap_or(DEFAULT_POLICY_TIMEOUT_MS);
        if !(1..=60_000).contains(&timeout_ms) {
            return Err(err("policy.timeout_ms", "must be between 1 and 60000"));
        }
        let policy = Policy {
            authority: non_empty_or(raw.policy.authority, "chokepoint-policy", || {
                "policy.authority".into()
            })?,
            cluster: raw.policy.cluster,
            timeout: Duration::from_millis(timeout_ms),
        };

        let rp = raw.provider;
        if rp.name.is_empty() {
            return Err(err("provider.name", "must not be empty"));
        }
        if rp.key_env.is_empty() || rp.key_env.contains('=') {
            return Err(err(
                "provider.key_env",
                "must name an environment variable of the Envoy process",
            ));
        }
        let key_header = non_empty_or(rp.key_header, "authorization", || {
            "provider.key_header".into()
        })?
        .to_ascii_lowercase();
        let key_prefix = match rp.key_prefix {
            Some(p) => p,
            None if key_header == "authorization" => "Bearer ".to_string(),
            None => String::new(),
        };
        let provider = Provider {
            name: rp.name,
            key_env: rp.key_env,
            key_header,
            key_prefix,
        };

        let max_request_body_bytes = raw
            .max_request_body_bytes
            .unwrap_or(DEFAULT_MAX_REQUEST_BODY_BYTES);
        if max_request_body_bytes == 0 {
            return Err(err("max_request_body_bytes", "must be greater than 0"));
        }
        let max_token_bytes = raw.max_token_bytes.unwrap_or(DEFAULT_MAX_TOKEN_BYTES);
        if !(256..=64 * 1024).contains(&max_token_bytes) {
            return Err(err("max_token_bytes", "must be between 256 and 65536"));
        }
        let skew = raw.clock_skew_secs.unwrap_or(DEFAULT_CLOCK_SKEW_SECS);
        if skew > 600 {
            return Err(err("clock_skew_secs", "must be at most 600"));
        }

        Ok(Config {
            issuers,
            token_header,
            uuid_salt_env,
            policy,
            provider,
            max_request_body_bytes,
            max_token_bytes,
            clock_skew: Duration::from_secs(skew),
        })
    }
}

fn non_empty_or(
    value: Option<String>,
    default: &str,
    field: impl FnOnce() -> String,
) -> Result<String, ConfigError> {
    match value {
        None => Ok(default.to_string()),
        Some(v) if v.trim().is_empty() => Err(err(field(), "must not be empty")),
        Some(v) => Ok(v),
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
