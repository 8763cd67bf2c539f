//! The identity file `chokepoint-policy serve --identity` reads: the issuers whose company
//! JWTs the service accepts from a viewer of its pages, with the same claim mapping the
//! gateway's filter uses, the groups whose members see everything, and the name of the
//! variable holding the pseudonym salt (the gateway's). `chokepoint-config render` writes
//! it from the policy file; serde refuses unknown fields, then every value is checked and
//! a problem named by its field.

use std::collections::HashSet;
use std::time::Duration;

use chokepoint_contract::identity::claims::RawClaimRules;
use chokepoint_contract::identity::ClaimRules;
use serde::Deserialize;
use serde_json::Value;

use chokepoint_filter::identity::jwks::{KeySet, ALGORITHMS};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    issuers: Vec<RawIssuer>,
    #[serde(default)]
    admin_groups: Vec<String>,
    #[serde(default)]
    uuid_salt_env: Option<String>,
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
    #[serde(default)]
    jwks: Option<Value>,
    #[serde(default)]
    jwks_url: Option<RawJwksUrl>,
    #[serde(default)]
    algorithms: Option<Vec<String>>,
    #[serde(default)]
    hmac_secret_env: Option<String>,
    #[serde(default)]
    required_claims: Vec<String>,
    #[serde(default)]
    tenant_claim: Option<String>,
    #[serde(default)]
    groups_claim: Option<String>,
    #[serde(default)]
    cost_center_claim: Option<String>,
    #[serde(default)]
    trust: Option<RawTrust>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrust {
    tenants: Vec<String>,
    groups: Vec<String>,
    cost_centers: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJwksUrl {
    url: String,
    #[serde(default)]
    refresh_secs: Option<u64>,
    #[serde(default)]
    timeout_ms: Option<u64>,
    /// The PEM certificates of the CAs an https URL is verified against (the webpki roots
    /// if none): inline, so the rendered file carries them to any delivery target.
    #[serde(default)]
    ca_pem: Option<String>,
}

/// The validated identity settings.
#[derive(Debug, Clone)]
pub struct ViewerConfig {
    pub issuers: Vec<Issuer>,
    /// A viewer whose verified token names one of these groups sees everything.
    pub admin_groups: Vec<String>,
    /// The environment variable holding the pseudonym salt (the gateway's
    /// `uuid_salt_env`): the name only, never the value.
    pub uuid_salt_env: String,
    pub max_token_bytes: usize,
    pub clock_skew: Duration,
}

#[derive(Debug, Clone)]
pub struct Issuer {
    pub issuer: String,
    pub audiences: HashSet<String>,
    pub keys: KeySource,
    /// Algorithms a token of this issuer may use (`None`: those of its keys).
    pub algorithms: Option<HashSet<String>>,
    /// The environment variable holding a shared secret; only then is HMAC accepted.
    pub hmac_secret_env: Option<String>,
    pub claims: ClaimRules,
}

#[derive(Debug, Clone)]
pub enum KeySource {
    Inline(KeySet),
    Remote(JwksUrl),
}

/// A JWKS the service fetches itself (it has no Envoy in front of it).
#[derive(Debug, Clone)]
pub struct JwksUrl {
    pub url: String,
    pub refresh: Duration,
    pub timeout: Duration,
    pub ca_pem: Option<String>,
}

/// As the filter's: a token longer than this is refused unread.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;
pub const DEFAULT_CLOCK_SKEW_SECS: u64 = 60;
pub const DEFAULT_JWKS_REFRESH_SECS: u64 = 300;
pub const DEFAULT_JWKS_TIMEOUT_MS: u64 = 2000;
pub const DEFAULT_UUID_SALT_ENV: &str = "CHOKEPOINT_UUID_SALT";
/// More admin groups than this is a misconfiguration; each is a name of the token's.
pub const MAX_ADMIN_GROUPS: usize = 64;

/// A setting that cannot be taken: its path in the file and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

fn err(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.into(),
        message: message.into(),
    }
}

impl ViewerConfig {
    /// No issuers: only the admin token is a viewer.
    pub fn admin_token_only() -> ViewerConfig {
        ViewerConfig {
            issuers: Vec::new(),
            admin_groups: Vec::new(),
            uuid_salt_env: DEFAULT_UUID_SALT_ENV.into(),
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
            clock_skew: Duration::from_secs(DEFAULT_CLOCK_SKEW_SECS),
        }
    }

    pub fn parse(text: &str) -> Result<ViewerConfig, ConfigError> {
        let raw: RawFile = serde_json::from_str(text).map_err(|e| {
            // serde's message names the unknown or missing field, its line and column.
            err("(root)", e.to_string())
        })?;
        validate(raw)
    }
}

fn validate(raw: RawFile) -> Result<ViewerConfig, ConfigError> {
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
        if ri.audiences.is_empty() || ri.audiences.iter().any(String::is_empty) {
            return Err(err(
                field("audiences"),
                "at least one non-empty audience is required",
            ));
        }
        let keys = match (ri.jwks, ri.jwks_url) {
            (Some(jwks), None) => {
                KeySource::Inline(KeySet::from_jwks(&jwks).map_err(|m| err(field("jwks"), m))?)
            }
            (None, Some(u)) => KeySource::Remote(jwks_url(u, |n| field(&format!("jwks_url.{n}")))?),
            _ => {
                return Err(err(
                    field("jwks"),
                    "set exactly one of jwks (inline) or jwks_url",
                ))
            }
        };
        let algorithms = match ri.algorithms {
            None => None,
            Some(list) => {
                if list.is_empty() {
                    return Err(err(field("algorithms"), "must list at least one algorithm"));
                }
                for a in &list {
                    if !ALGORITHMS.contains(&a.as_str()) {
                        return Err(err(
                            field("algorithms"),
                            format!(
                                "unsupported algorithm {a:?}; supported: {}",
                                ALGORITHMS.join(", ")
                            ),
                        ));
                    }
                    if a.starts_with("HS") && ri.hmac_secret_env.is_none() {
                        return Err(err(
                            field("algorithms"),
                            format!("{a} needs hmac_secret_env for this issuer"),
                        ));
                    }
                }
                Some(list.into_iter().collect())
            }
        };
        if let Some(env) = &ri.hmac_secret_env {
            if !is_env_name(env) {
                return Err(err(
                    field("hmac_secret_env"),
                    "must name an environment variable of the service",
                ));
            }
        }
        let claims = ClaimRules::new(RawClaimRules {
            required_claims: ri.required_claims,
            tenant_claim: ri.tenant_claim,
            groups_claim: ri.groups_claim,
            cost_center_claim: ri.cost_center_claim,
            trust: ri.trust.map(|t| (t.tenants, t.groups, t.cost_centers)),
        })
        .map_err(|e| err(field(&e.field), e.message))?;
        issuers.push(Issuer {
            issuer: ri.issuer,
            audiences: ri.audiences.into_iter().collect(),
            keys,
            algorithms,
            hmac_secret_env: ri.hmac_secret_env,
            claims,
        });
    }
    if issuers.len() > 1 {
        // As the filter: with two identity providers, either could otherwise claim the
        // other's groups, admin groups included.
        if let Some(i) = issuers.iter().position(|i| i.claims.trust.is_none()) {
            return Err(err(
                format!("issuers[{i}].trust"),
                "with more than one issuer, each must say which tenants, groups and cost \
                 centres it may assert ([\"*\"] for any)",
            ));
        }
    }
    if raw.admin_groups.len() > MAX_ADMIN_GROUPS {
        return Err(err(
            "admin_groups",
            format!("at most {MAX_ADMIN_GROUPS} groups"),
        ));
    }
    for (i, g) in raw.admin_groups.iter().enumerate() {
        if g.trim().is_empty()
            || g.len() > chokepoint_contract::bounds::MAX_NAME_BYTES
            || g.chars().any(char::is_control)
            || g.contains(',')
        {
            return Err(err(
                format!("admin_groups[{i}]"),
                "must be a group name as tokens carry it (non-empty, at most 256 bytes, no \
                 comma or control character)",
            ));
        }
    }
    let uuid_salt_env = raw
        .uuid_salt_env
        .unwrap_or_else(|| DEFAULT_UUID_SALT_ENV.into());
    if !is_env_name(&uuid_salt_env) {
        return Err(err(
            "uuid_salt_env",
            "must name an environment variable of the service",
        ));
    }
    let max_token_bytes = raw.max_token_bytes.unwrap_or(DEFAULT_MAX_TOKEN_BYTES);
    if !(256..=64 * 1024).contains(&max_token_bytes) {
        return Err(err("max_token_bytes", "must be between 256 and 65536"));
    }
    let skew = raw.clock_skew_secs.unwrap_or(DEFAULT_CLOCK_SKEW_SECS);
    if skew > 600 {
        return Err(err("clock_skew_secs", "must be at most 600"));
    }
    Ok(ViewerConfig {
        issuers,
        admin_groups: raw.admin_groups,
        uuid_salt_env,
        max_token_bytes,
        clock_skew: Duration::from_secs(skew),
    })
}

fn jwks_url(u: RawJwksUrl, field: impl Fn(&str) -> String) -> Result<JwksUrl, ConfigError> {
    if !(u.url.starts_with("https://") || u.url.starts_with("http://")) {
        return Err(err(field("url"), "must be an http(s):// URL"));
    }
    if u.url.parse::<reqwest::Url>().is_err() {
        return Err(err(field("url"), "is not a valid URL"));
    }
    let refresh = u.refresh_secs.unwrap_or(DEFAULT_JWKS_REFRESH_SECS);
    if !(5..=86_400).contains(&refresh) {
        return Err(err(field("refresh_secs"), "must be between 5 and 86400"));
    }
    let timeout = u.timeout_ms.unwrap_or(DEFAULT_JWKS_TIMEOUT_MS);
    if !(1..=60_000).contains(&timeout) {
        return Err(err(field("timeout_ms"), "must be between 1 and 60000"));
    }
    // Its certificates are decoded when the service starts (a bad one stops it there).
    if u.ca_pem
        .as_deref()
        .is_some_and(|pem| !pem.contains("-----BEGIN CERTIFICATE-----"))
    {
        return Err(err(field("ca_pem"), "holds no PEM certificate"));
    }
    Ok(JwksUrl {
        url: u.url,
        refresh: Duration::from_secs(refresh),
        timeout: Duration::from_millis(timeout),
        ca_pem: u.ca_pem,
    })
}

/// The name of an environment variable; `=` or whitespace in it means a value was pasted
/// where only the name belongs.
fn is_env_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('=') && !name.chars().any(char::is_whitespace)
}
