//! Plugin configuration, parsed in two steps: serde structs that reject unknown fields
//! (a typo must fail loudly, not be ignored), then a validated runtime form. Every error
//! names the field it is about, because the message ends up in Envoy's log at load time.

pub mod error;

use std::collections::HashSet;
use std::time::Duration;

use serde::Deserialize;

use crate::accounting::pricing::PriceTable;
use crate::config::error::ConfigError;
use crate::identity::jwks::KeySet;
pub use crate::providers::registry::Provider;
use crate::providers::registry::RawProvider;
use crate::providers::routes::{RawRoutes, RouteTable};
use chokepoint_contract::identity::claims::RawClaimRules;
pub use chokepoint_contract::identity::{ClaimRules, Patterns, Trust};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    issuers: Vec<RawIssuer>,
    #[serde(default)]
    token_sources: Option<Vec<RawTokenSource>>,
    #[serde(default)]
    token_cache: Option<RawTokenCache>,
    #[serde(default)]
    uuid_salt_env: Option<String>,
    policy: RawPolicy,
    providers: Vec<RawProvider>,
    #[serde(default)]
    models: Option<RawRoutes>,
    #[serde(default)]
    attribution: Option<bool>,
    #[serde(default)]
    key_injection: Option<String>,
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    hold_headers: Option<bool>,
    #[serde(default)]
    prices: Option<serde_json::Value>,
    #[serde(default)]
    usage: Option<RawUsage>,
    #[serde(default)]
    max_request_body_bytes: Option<usize>,
    #[serde(default)]
    default_max_output_tokens: Option<u64>,
    #[serde(default)]
    enforce_output_cap: Option<bool>,
    #[serde(default)]
    max_token_bytes: Option<usize>,
    #[serde(default)]
    clock_skew_secs: Option<u64>,
    #[serde(default)]
    mcp: Option<crate::mcp::config::RawMcp>,
    #[serde(default)]
    versions: Option<RawVersions>,
    #[serde(default)]
    otlp: Option<bool>,
    #[serde(default)]
    guardrails: Option<crate::guardrails::config::RawGuardrails>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVersions {
    #[serde(default)]
    policy: Option<String>,
    #[serde(default)]
    price: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIssuer {
    issuer: String,
    audiences: Vec<String>,
    #[serde(default)]
    jwks: Option<serde_json::Value>,
    #[serde(default)]
    jwks_uri: Option<RawJwksUri>,
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

/// What an issuer may assert: tenant, group and cost-centre values, each an exact name or
/// a `*` glob (`["*"]` for anything). All three are required, so none is open by omission.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrust {
    tenants: Vec<String>,
    groups: Vec<String>,
    cost_centers: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJwksUri {
    cluster: String,
    path: String,
    #[serde(default)]
    authority: Option<String>,
    #[serde(default)]
    refresh_secs: Option<u64>,
    #[serde(default)]
    timeout_ms: Option<u64>,
}

/// Exactly one of `header` or `cookie`; a tagged shape rather than an untagged enum, so
/// a typo is an error and not a silently different variant.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTokenSource {
    #[serde(default)]
    header: Option<String>,
    #[serde(default)]
    scheme: Option<String>,
    #[serde(default)]
    cookie: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTokenCache {
    #[serde(default)]
    max_entries: Option<usize>,
    #[serde(default)]
    ttl_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    cluster: String,
    #[serde(default)]
    authority: Option<String>,
    #[serde(default)]
    timeout_ms: Option<u64>,
    #[serde(default)]
    failure_mode: Option<String>,
    #[serde(default)]
    lease_slots: Option<u64>,
    #[serde(default)]
    lease_ttl_ms: Option<u64>,
    #[serde(default)]
    token_env: Option<String>,
}

/// Delivery of usage records to the policy service's ledger.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUsage {
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    batch_max: Option<usize>,
    #[serde(default)]
    batch_max_bytes: Option<usize>,
    #[serde(default)]
    flush_ms: Option<u64>,
    #[serde(default)]
    timeout_ms: Option<u64>,
}

/// The validated configuration the request path runs on.
#[derive(Debug)]
pub struct Config {
    pub issuers: Vec<Issuer>,
    pub token_sources: Vec<TokenSource>,
    pub token_cache: TokenCacheConfig,
    pub uuid_salt_env: String,
    pub policy: Policy,
    pub providers: Vec<Provider>,
    /// Model routing; without it, the request path alone picks the provider.
    pub routes: Option<RouteTable>,
    /// Write the user UUID into the provider's own end-user field.
    pub attribution: bool,
    /// Where provider keys are set: in this filter (`downstream`, works in any mesh) or
    /// per upstream attempt by the key injector (`upstream`, needed for fallback chains).
    pub inject_keys_downstream: bool,
    /// `mode: identity`: callers are authenticated, attributed and forwarded to the
    /// path's provider with its key, and nothing else (no body read, no decision, no
    /// usage record). `full` (the default) is the whole gateway.
    pub identity_only: bool,
    /// Envoy lets the filter hold a request's headers while it reads the body: the
    /// filter's `PluginConfig` sets `allow_on_headers_stop_iteration: true`, which the
    /// plain bootstrap and Istio's EnvoyFilter do. No field of Istio's WasmPlugin or
    /// TrafficExtension or of Envoy Gateway's EnvoyExtensionPolicy can, and there a paused
    /// header callback stops the body too, so a filter that waited would hang every
    /// POST. `false` (the default, safe anywhere): the headers go upstream before the
    /// body is read, with the provider the path and API name, its key and cluster, and
    /// no `content-length`; the body is then read, checked and decided on before a byte
    /// of it goes, and a refusal resets the upstream stream. Routing a body's model to
    /// another provider than its API's first, and fallback chains, need `true`.
    pub hold_headers: bool,
    pub prices: PriceTable,
    pub usage: UsageDelivery,
    pub max_request_body_bytes: usize,
    /// Output tokens reserved for a request that sets no cap of its own.
    pub default_max_output_tokens: u64,
    /// Write `default_max_output_tokens` into requests without a cap, making each
    /// budget reservation a hard bound.
    pub enforce_output_cap: bool,
    pub max_token_bytes: usize,
    pub clock_skew: Duration,
    /// The MCP servers served at `/mcp/<name>`; none without the section.
    pub mcp: Option<crate::mcp::config::McpConfig>,
    /// The policy and price versions every usage record names, as the renderer wrote
    /// them (digests of the policy file and the price table).
    pub versions: Versions,
    /// Write each field of the published record as its own filter state
    /// (`wasm.otlp.<name>`), which Envoy's OpenTelemetry access logger reads into a log
    /// record's attributes. Off (the default): no OTLP exporter reads them, and a request
    /// pays nothing for it.
    pub otlp: bool,
    /// The guardrails checks on requests and answers; none without the section.
    pub guardrails: Option<crate::guardrails::config::Guardrails>,
}

#[derive(Debug, Default)]
pub struct Versions {
    pub policy: Option<String>,
    pub price: Option<String>,
}

/// A version as records carry it: 1 to 64 ASCII letters, digits, `.`, `_`, `-`, `:`,
/// starting with a letter or digit.
fn version(field: &str, v: Option<String>) -> Result<Option<String>, ConfigError> {
    let Some(v) = v else { return Ok(None) };
    let ok = v.len() <= chokepoint_contract::bounds::MAX_VERSION_BYTES
        && v.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'));
    if ok {
        Ok(Some(v))
    } else {
        Err(err(
            field,
            "must be 1 to 64 ASCII letters, digits, '.', '_', '-' or ':', starting with a letter or digit",
        ))
    }
}

#[derive(Debug)]
pub struct Issuer {
    pub issuer: String,
    pub audiences: HashSet<String>,
    pub keys: KeySource,
    /// Algorithms a token of this issuer may use (`None`: those of its keys).
    pub algorithms: Option<HashSet<String>>,
    /// Environment variable with a shared secret; only then is HMAC accepted.
    pub hmac_secret_env: Option<String>,
    /// Tenant, groups and cost centre from the claims, and the values the issuer may
    /// assert: read by the shared `chokepoint_contract::identity`, as the policy service
    /// reads them.
    pub claims: ClaimRules,
}

/// Where an issuer's verification keys come from.
#[derive(Debug)]
pub enum KeySource {
    Inline(KeySet),
    Remote(JwksUri),
}

/// A JWKS fetched through an Envoy cluster, never from a URL the token names.
#[derive(Debug, Clone)]
pub struct JwksUri {
    pub cluster: String,
    pub path: String,
    pub authority: String,
    pub refresh: Duration,
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// A header; with a scheme (`Bearer`), the value must be `<scheme> <token>`.
    Header {
        name: String,
        scheme: Option<String>,
    },
    Cookie {
        name: String,
    },
}

#[derive(Debug, Clone, Copy)]
pub struct TokenCacheConfig {
    pub max_entries: usize,
    pub ttl: Duration,
}

#[derive(Debug)]
pub struct Policy {
    pub cluster: String,
    pub authority: String,
    pub timeout: Duration,
    /// When the policy service cannot answer: refuse (`closed`, 503) or let the request
    /// through (`open`), counted either way; its usage is recorded and queued all the same.
    pub fail_open: bool,
    /// Requests' worth to ask for per decision (see `lease`); below 2, one callout per
    /// request.
    pub lease_slots: u64,
    /// How long a lease's slots may be spent after it was granted.
    pub lease_ttl: Duration,
    /// The environment variable holding the secret sent as `authorization: Bearer` on
    /// every callout to the policy service (the name only; see `runtime`).
    pub token_env: String,
}

#[derive(Debug, Clone)]
pub struct UsageDelivery {
    pub path: String,
    pub batch_max: usize,
    /// Bytes per batch at most: well under the policy service's body limit (1 MiB by
    /// default), whatever the records carry.
    pub batch_max_bytes: usize,
    pub flush: Duration,
    pub timeout: Duration,
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
/// The variable the policy service reads its gateway token from too.
pub const DEFAULT_POLICY_TOKEN_ENV: &str = "CHOKEPOINT_POLICY_TOKEN";
pub const DEFAULT_LEASE_TTL_MS: u64 = 2000;
pub const DEFAULT_JWKS_REFRESH_SECS: u64 = 300;
pub const DEFAULT_JWKS_TIMEOUT_MS: u64 = 2000;
pub const DEFAULT_TOKEN_CACHE_ENTRIES: usize = 10_000;
pub const DEFAULT_TOKEN_CACHE_TTL_SECS: u64 = 300;
/// A quarter of the policy service's default body limit.
pub const DEFAULT_BATCH_MAX_BYTES: usize = 256 * 1024;

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
            let keys = match (ri.jwks, ri.jwks_uri) {
                (Some(jwks), None) => {
                    KeySource::Inline(KeySet::from_jwks(&jwks).map_err(|m| err(field("jwks"), m))?)
                }
                (None, Some(u)) => {
                    KeySource::Remote(jwks_uri(u, |n| field(&format!("jwks_uri.{n}")))?)
                }
                _ => {
                    return Err(err(
                        field("jwks"),
                        "set exactly one of jwks (inline) or jwks_uri",
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
                        if !crate::identity::jwks::ALGORITHMS.contains(&a.as_str()) {
                            return Err(err(
                                field("algorithms"),
                                format!(
                                    "unsupported algorithm {a:?}; supported: {}",
                                    crate::identity::jwks::ALGORITHMS.join(", ")
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
                if env.is_empty() || env.contains('=') {
                    return Err(err(
                        field("hmac_secret_env"),
                        "must name an environment variable of the Envoy process",
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
            // Two identity providers: unless each says which tenants, groups and cost
            // centres it speaks for, either could claim the other's.
            if let Some(i) = issuers.iter().position(|i| i.claims.trust.is_none()) {
                return Err(err(
                    format!("issuers[{i}].trust"),
                    "with more than one issuer, each must say which tenants, groups and cost \
                     centres it may assert ([\"*\"] for any)",
                ));
            }
        }
        let token_sources = token_sources(raw.token_sources)?;
        let token_cache = token_cache(raw.token_cache)?;
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
        let fail_open = match raw.policy.failure_mode.as_deref() {
            None | Some("closed") => false,
            Some("open") => true,
            Some(other) => {
                return Err(err(
                    "policy.failure_mode",
                    format!("{other:?} is not one of \"closed\", \"open\""),
                ))
            }
        };
        let lease_slots = raw.policy.lease_slots.unwrap_or(0);
        if lease_slots > 64 {
            return Err(err("policy.lease_slots", "must be between 0 and 64"));
        }
        let lease_ttl_ms = raw.policy.lease_ttl_ms.unwrap_or(DEFAULT_LEASE_TTL_MS);
        if !(100..=60_000).contains(&lease_ttl_ms) {
            return Err(err("policy.lease_ttl_ms", "must be between 100 and 60000"));
        }
        let policy = Policy {
            authority: non_empty_or(raw.policy.authority, "chokepoint-policy", || {
                "policy.authority".into()
            })?,
            cluster: raw.policy.cluster,
            timeout: Duration::from_millis(timeout_ms),
            fail_open,
            lease_slots,
            lease_ttl: Duration::from_millis(lease_ttl_ms),
            token_env: env_name(raw.policy.token_env, DEFAULT_POLICY_TOKEN_ENV, || {
                "policy.token_env".into()
            })?,
        };

        let providers = crate::providers::registry::parse(raw.providers)?;
        let routes = match raw.models {
            None => None,
            Some(r) => Some(RouteTable::parse(r, &providers)?),
        };
        let prices = match &raw.prices {
            None => PriceTable::default(),
            Some(v) => PriceTable::parse(v, "prices").map_err(|e| err(e.field, e.message))?,
        };
        let usage = usage_delivery(raw.usage)?;

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

        let default_max_output_tokens = raw.default_max_output_tokens.unwrap_or(4096);
        if !(1..=1_000_000).contains(&default_max_output_tokens) {
            return Err(err(
                "default_max_output_tokens",
                "must be between 1 and 1000000",
            ));
        }

        let mcp = raw
            .mcp
            .map(crate::mcp::config::McpConfig::validate)
            .transpose()?;
        let guardrails = raw
            .guardrails
            .map(|g| crate::guardrails::config::Guardrails::validate(g, &uuid_salt_env))
            .transpose()?;
        let versions = match raw.versions {
            Some(v) => Versions {
                policy: version("versions.policy", v.policy)?,
                price: version("versions.price", v.price)?,
            },
            None => Versions::default(),
        };
        Ok(Config {
            issuers,
            token_sources,
            token_cache,
            uuid_salt_env,
            policy,
            providers,
            routes,
            attribution: raw.attribution.unwrap_or(false),
            inject_keys_downstream: match raw.key_injection.as_deref() {
                None | Some("downstream") => true,
                Some("upstream") => false,
                Some(other) => {
                    return Err(err(
                        "key_injection",
                        format!("{other:?} is not one of \"downstream\", \"upstream\""),
                    ))
                }
            },
            identity_only: match raw.mode.as_deref() {
                None | Some("full") => false,
                Some("identity") => true,
                Some(other) => {
                    return Err(err(
                        "mode",
                        format!("{other:?} is not one of \"full\", \"identity\""),
                    ))
                }
            },
            hold_headers: raw.hold_headers.unwrap_or(false),
            prices,
            usage,
            max_request_body_bytes,
            default_max_output_tokens,
            enforce_output_cap: raw.enforce_output_cap.unwrap_or(false),
            max_token_bytes,
            clock_skew: Duration::from_secs(skew),
            mcp,
            versions,
            otlp: raw.otlp.unwrap_or(false),
            guardrails,
        })
    }
}

impl Config {
    /// The model's price, and what ledgers, limits and stats key it under: a name the
    /// configuration itself holds (its own price, the glob that prices it, or an exact
    /// route), else `other`. Clients choose model names freely; keys they could multiply
    /// without bound would fill Redis and the stats. One pass over the price table.
    pub fn price_and_key<'a>(
        &'a self,
        model: &'a str,
    ) -> (Option<&'a crate::accounting::pricing::Price>, &'a str) {
        match self.prices.entry(model) {
            Some((key, price)) => (Some(price), key),
            None => {
                let key = if self.routes.as_ref().is_some_and(|r| r.has_exact(model)) {
                    model
                } else {
                    OTHER_MODEL
                };
                (self.prices.default_price(), key)
            }
        }
    }
}

/// The model key of every model the configuration does not name.
pub const OTHER_MODEL: &str = "other";

fn jwks_uri(u: RawJwksUri, field: impl Fn(&str) -> String) -> Result<JwksUri, ConfigError> {
    if u.cluster.is_empty() {
        return Err(err(
            field("cluster"),
            "must name the Envoy cluster of the identity provider",
        ));
    }
    if !u.path.starts_with('/') {
        return Err(err(
            field("path"),
            "must be an absolute path such as /.well-known/jwks.json",
        ));
    }
    let refresh = u.refresh_secs.unwrap_or(DEFAULT_JWKS_REFRESH_SECS);
    if !(5..=86_400).contains(&refresh) {
        return Err(err(field("refresh_secs"), "must be between 5 and 86400"));
    }
    let timeout = u.timeout_ms.unwrap_or(DEFAULT_JWKS_TIMEOUT_MS);
    if !(1..=60_000).contains(&timeout) {
        return Err(err(field("timeout_ms"), "must be between 1 and 60000"));
    }
    Ok(JwksUri {
        authority: non_empty_or(u.authority, &u.cluster, || field("authority"))?,
        cluster: u.cluster,
        path: u.path,
        refresh: Duration::from_secs(refresh),
        timeout: Duration::from_millis(timeout),
    })
}

fn usage_delivery(raw: Option<RawUsage>) -> Result<UsageDelivery, ConfigError> {
    let raw = raw.unwrap_or(RawUsage {
        path: None,
        batch_max: None,
        batch_max_bytes: None,
        flush_ms: None,
        timeout_ms: None,
    });
    let path = non_empty_or(raw.path, chokepoint_contract::paths::USAGE_PATH, || {
        "usage.path".into()
    })?;
    if !path.starts_with('/') {
        return Err(err("usage.path", "must be an absolute path"));
    }
    // One batch is one chunk of the policy service's Redis booking (64 records per script
    // call): smaller batches keep its bursts of work short (p99 at a fixed 2,000 rps on
    // a shared 2-core box: 5.9 ms with 500, 3.0 with 64).
    let batch_max = raw.batch_max.unwrap_or(64);
    if !(1..=1000).contains(&batch_max) {
        return Err(err("usage.batch_max", "must be between 1 and 1000"));
    }
    let batch_max_bytes = raw.batch_max_bytes.unwrap_or(DEFAULT_BATCH_MAX_BYTES);
    if !(16 * 1024..=1024 * 1024).contains(&batch_max_bytes) {
        return Err(err(
            "usage.batch_max_bytes",
            "must be between 16384 and 1048576 (the policy service's body limit)",
        ));
    }
    let flush_ms = raw.flush_ms.unwrap_or(1000);
    if !(100..=60_000).contains(&flush_ms) {
        return Err(err("usage.flush_ms", "must be between 100 and 60000"));
    }
    let timeout_ms = raw.timeout_ms.unwrap_or(5000);
    if !(1..=60_000).contains(&timeout_ms) {
        return Err(err("usage.timeout_ms", "must be between 1 and 60000"));
    }
    Ok(UsageDelivery {
        path,
        batch_max,
        batch_max_bytes,
        flush: Duration::from_millis(flush_ms),
        timeout: Duration::from_millis(timeout_ms),
    })
}

/// Where each provider's own SDK puts its API key, so a client whose API key is set to
/// the company JWT works unchanged: OpenAI's `Authorization: Bearer`, Anthropic's
/// `x-api-key`, Gemini's `x-goog-api-key`, Azure OpenAI's `api-key`. The first present
/// wins; all of them are stripped whatever happens.
pub fn default_token_sources() -> Vec<TokenSource> {
    let header = |name: &str, scheme: Option<&str>| TokenSource::Header {
        name: name.into(),
        scheme: scheme.map(str::to_owned),
    };
    vec![
        header("authorization", Some("Bearer")),
        header("x-api-key", None),
        header("x-goog-api-key", None),
        header("api-key", None),
    ]
}

fn token_sources(raw: Option<Vec<RawTokenSource>>) -> Result<Vec<TokenSource>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(default_token_sources());
    };
    if raw.is_empty() {
        return Err(err(
            "token_sources",
            "at least one token source is required",
        ));
    }
    raw.into_iter()
        .enumerate()
        .map(|(i, s)| {
            let field = format!("token_sources[{i}]");
            match (s.header, s.cookie) {
                (Some(h), None) if !h.is_empty() => {
                    let name = h.to_ascii_lowercase();
                    // `authorization` defaults to the Bearer scheme, anything else to a raw token.
                    let scheme = match s.scheme {
                        Some(sc) if sc.is_empty() => None,
                        Some(sc) => Some(sc),
                        None if name == "authorization" => Some("Bearer".into()),
                        None => None,
                    };
                    Ok(TokenSource::Header { name, scheme })
                }
                (None, Some(c)) if !c.is_empty() => {
                    if s.scheme.is_some() {
                        return Err(err(
                            format!("{field}.scheme"),
                            "only applies to header sources",
                        ));
                    }
                    Ok(TokenSource::Cookie { name: c })
                }
                _ => Err(err(field, "set exactly one of header or cookie")),
            }
        })
        .collect()
}

fn token_cache(raw: Option<RawTokenCache>) -> Result<TokenCacheConfig, ConfigError> {
    let raw = raw.unwrap_or(RawTokenCache {
        max_entries: None,
        ttl_secs: None,
    });
    let max_entries = raw.max_entries.unwrap_or(DEFAULT_TOKEN_CACHE_ENTRIES);
    if max_entries > 1_000_000 {
        return Err(err(
            "token_cache.max_entries",
            "must be at most 1000000 (0 disables the cache)",
        ));
    }
    let ttl = raw.ttl_secs.unwrap_or(DEFAULT_TOKEN_CACHE_TTL_SECS);
    if !(1..=86_400).contains(&ttl) {
        return Err(err("token_cache.ttl_secs", "must be between 1 and 86400"));
    }
    Ok(TokenCacheConfig {
        max_entries,
        ttl: Duration::from_secs(ttl),
    })
}

/// The name of an environment variable; `=` in it means a value was pasted where only
/// the name belongs (and the config, unlike the environment, shows in `/config_dump`).
fn env_name(
    value: Option<String>,
    default: &str,
    field: impl Fn() -> String,
) -> Result<String, ConfigError> {
    let name = non_empty_or(value, default, &field)?;
    if name.contains('=') || name.chars().any(char::is_whitespace) {
        return Err(err(
            field(),
            "must name an environment variable of the Envoy process",
        ));
    }
    Ok(name)
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
mod tests;
