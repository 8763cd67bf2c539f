//! The validated configuration plus the secrets it names, resolved once per VM.

use crate::config::error::ConfigError;
use crate::config::Config;

pub struct Runtime {
    pub config: Config,
    pub salt: Vec<u8>,
    /// Each provider's key, by its index in `config.providers`.
    pub provider_keys: Vec<String>,
    /// Issuer -> shared secret, for issuers that explicitly allow HMAC.
    pub hmac_secrets: std::collections::HashMap<String, Vec<u8>>,
    /// `Bearer <token>`, the `authorization` of every callout to the policy service (see
    /// `policy_callout`). `None` only in identity mode, which never calls it.
    pub policy_authorization: Option<String>,
    /// Each MCP server's credential header value (`<prefix><secret>`), by its index in
    /// `config.mcp.servers`, where the filter sets it (downstream key injection).
    pub mcp_credentials: Vec<Option<String>>,
    /// The guardrails' masks, keyed by the variable `guardrails.mask_key_env` names;
    /// `None` when no check masks.
    pub masker: Option<chokepoint_guard::Masker>,
    /// `Bearer <key>` for each guardrail check's service, by its index in
    /// `config.guardrails.checks`, where it names an `api_key_env`.
    pub guard_service_authorizations: Vec<Option<String>>,
}

/// Never print secrets, not even in a debug log.
impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("config", &self.config)
            .field("salt", &"<redacted>")
            .field("provider_keys", &"<redacted>")
            .field("hmac_secrets", &"<redacted>")
            .field("policy_authorization", &"<redacted>")
            .field("mcp_credentials", &"<redacted>")
            .field("masker", &"<redacted>")
            .field("guard_service_authorizations", &"<redacted>")
            .finish()
    }
}

pub use chokepoint_contract::identity::pseudonym::MIN_SALT_BYTES;

/// The shortest policy-service token accepted (the service refuses shorter ones too).
pub const MIN_POLICY_TOKEN_BYTES: usize = 32;

impl Runtime {
    /// Resolves the secrets the configuration names from the Envoy process environment
    /// (`env` is `std::env::var` in Envoy, a map in tests).
    pub fn new(
        config: Config,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Runtime, ConfigError> {
        let salt = env(&config.uuid_salt_env).unwrap_or_default();
        if salt.len() < MIN_SALT_BYTES {
            return Err(ConfigError {
                field: "uuid_salt_env".into(),
                message: format!(
                    "environment variable {} must be set in the Envoy process (and listed in vm_config.environment_variables.host_env_keys) with at least {MIN_SALT_BYTES} bytes",
                    config.uuid_salt_env
                ),
            });
        }
        let mut provider_keys = Vec::with_capacity(config.providers.len());
        for (i, p) in config.providers.iter().enumerate() {
            let key = env(&p.key_env).unwrap_or_default();
            if key.trim().is_empty() {
                return Err(ConfigError {
                    field: format!("providers[{i}].key_env"),
                    message: format!(
                        "environment variable {} must be set in the Envoy process (and listed in vm_config.environment_variables.host_env_keys)",
                        p.key_env
                    ),
                });
            }
            provider_keys.push(key.trim().to_string());
        }
        let mut hmac_secrets = std::collections::HashMap::new();
        for (i, issuer) in config.issuers.iter().enumerate() {
            let Some(name) = &issuer.hmac_secret_env else {
                continue;
            };
            let secret = env(name).unwrap_or_default();
            // Short HMAC secrets can be brute-forced from a single token.
            if secret.len() < 32 {
                return Err(ConfigError {
                    field: format!("issuers[{i}].hmac_secret_env"),
                    message: format!(
                        "environment variable {name} must hold a secret of at least 32 bytes"
                    ),
                });
            }
            hmac_secrets.insert(issuer.issuer.clone(), secret.into_bytes());
        }
        let policy_authorization = if config.identity_only {
            None
        } else {
            Some(policy_authorization(&config.policy.token_env, &env)?)
        };
        let mcp_credentials = mcp_credentials(&config, &env)?;
        let (masker, guard_service_authorizations) = guard_secrets(&config, &env)?;
        Ok(Runtime {
            masker,
            guard_service_authorizations,
            mcp_credentials,
            config,
            salt: salt.into_bytes(),
            provider_keys,
            hmac_secrets,
            policy_authorization,
        })
    }
}

/// The credential of each MCP server the filter injects (in downstream key injection;
/// upstream, Envoy sets it per cluster): a server whose variable is unset would get
/// every call refused, so the filter refuses to load instead.
fn mcp_credentials(
    config: &Config,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Vec<Option<String>>, ConfigError> {
    let Some(mcp) = &config.mcp else {
        return Ok(Vec::new());
    };
    mcp.servers
        .iter()
        .enumerate()
        .map(|(i, s)| match &s.credential {
            Some(c) if config.inject_keys_downstream => {
                let secret = env(&c.env).unwrap_or_default();
                let secret = secret.trim();
                if secret.is_empty() || secret.chars().any(|ch| ch.is_control()) {
                    return Err(ConfigError {
                        field: format!("mcp.servers[{i}].credential.env"),
                        message: format!(
                            "environment variable {} must be set in the Envoy process (and listed in vm_config.environment_variables.host_env_keys), without control characters",
                            c.env
                        ),
                    });
                }
                Ok(Some(format!("{}{secret}", c.prefix)))
            }
            _ => Ok(None),
        })
        .collect()
}

/// The masks' keyed HMAC, and each check's service authorization.
type GuardSecrets = (Option<chokepoint_guard::Masker>, Vec<Option<String>>);

/// The guardrails' mask key and service keys. A key shorter than the salt's minimum
/// would let anyone test guesses against a placeholder; a service key unset would have
/// every request refused (or let through unchecked), so the filter refuses to load.
fn guard_secrets(
    config: &Config,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<GuardSecrets, ConfigError> {
    let Some(g) = &config.guardrails else {
        return Ok((None, Vec::new()));
    };
    let masker = if g.masks() {
        let key = env(&g.mask_key_env).unwrap_or_default();
        if key.len() < MIN_SALT_BYTES {
            return Err(ConfigError {
                field: "guardrails.mask_key_env".into(),
                message: format!(
                    "environment variable {} must be set in the Envoy process (and listed in vm_config.environment_variables.host_env_keys) with at least {MIN_SALT_BYTES} bytes: the key of the guardrails' masks",
                    g.mask_key_env
                ),
            });
        }
        Some(chokepoint_guard::Masker::new(key.as_bytes()))
    } else {
        None
    };
    let mut keys = Vec::with_capacity(g.checks.len());
    for (i, c) in g.checks.iter().enumerate() {
        let name = match &c.kind {
            crate::guardrails::config::CheckKind::Service(s) => s.api_key_env.as_ref(),
            crate::guardrails::config::CheckKind::Detect { .. } => None,
        };
        let Some(name) = name else {
            keys.push(None);
            continue;
        };
        let key = env(name).unwrap_or_default();
        let key = key.trim();
        if key.is_empty() || key.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ConfigError {
                field: format!("guardrails.checks[{i}].service.api_key_env"),
                message: format!(
                    "environment variable {name} must be set in the Envoy process (and listed in vm_config.environment_variables.host_env_keys), without white space"
                ),
            });
        }
        keys.push(Some(format!("Bearer {key}")));
    }
    Ok((masker, keys))
}

/// The gateway's credential at the policy service, from the variable `name`: without it
/// the service refuses every decision and usage batch, so the filter refuses to load
/// rather than fail every request.
fn policy_authorization(
    name: &str,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    let token = env(name).unwrap_or_default();
    let problem = if token.is_empty() {
        "is not set".to_owned()
    } else if token.len() < MIN_POLICY_TOKEN_BYTES {
        format!("must hold a secret of at least {MIN_POLICY_TOKEN_BYTES} bytes")
    } else if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        "must not contain whitespace or control characters (it is sent as a bearer token)".into()
    } else {
        return Ok(format!("Bearer {token}"));
    };
    Err(ConfigError {
        field: "policy.token_env".into(),
        message: format!(
            "environment variable {name} {problem}: the policy service's gateway token, set in the \
             Envoy process (and listed in vm_config.environment_variables.host_env_keys) and in \
             the policy service's environment"
        ),
    })
}
