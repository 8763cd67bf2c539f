//! The validated policy: what every renderer works from. Loading it ([`load`]) checks the
//! file's shape (unknown fields, types), then the meaning (URLs, references, limits), then
//! runs the rendered plugin configuration through the filter's own parser, and reports
//! the first problem with the field's path and its line in the file.

mod cluster;
pub mod guard_rules;
mod guardrails;
mod kubernetes;
mod load;
mod lockdown;
mod mcp;
mod redis_nodes;
mod sentinel;
mod telemetry;

pub(crate) use load::dns_label;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde_json::Value;

use crate::tls::CaBundle;
use crate::url::Url;

/// A problem in the policy file, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    pub file: String,
    pub line: Option<usize>,
    /// The field's path, e.g. `providers[1].base_url`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{l}: ", self.file)?,
            None => write!(f, "{}: ", self.file)?,
        }
        if self.field.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

impl std::error::Error for PolicyError {}

#[derive(Debug, Clone)]
pub struct Policy {
    /// The directory relative paths in the file are resolved against.
    pub base_dir: PathBuf,
    pub gateway: Gateway,
    pub issuers: Vec<Issuer>,
    pub providers: Vec<Provider>,
    /// The filter's `models` section, as written.
    pub models: Value,
    pub prices: Option<Value>,
    /// Limit sets by scope (`user:*`), in the policy service's admin-API shape.
    pub limits: BTreeMap<String, Value>,
    pub mcp: Option<Mcp>,
    pub policy_service: PolicyService,
    pub access_log: String,
    pub usage: Option<Value>,
    /// Every record as an OpenTelemetry log record to this collector, when set.
    pub otlp: Option<Otlp>,
    pub ui: Ui,
    pub guardrails: Option<Guardrails>,
    pub deploy: Deploy,
    pub versions: Versions,
}

/// The guardrails: the checks that judge request and response text, and the detector
/// rules they use.
#[derive(Debug, Clone)]
pub struct Guardrails {
    /// The rules some check detects, in the filter's shape (as written, minus their
    /// `examples`), in file order: the built-in ones, then the rules file's.
    pub rules: Vec<Value>,
    /// The variable of Envoy's environment holding the placeholders' HMAC key.
    pub mask_key_env: String,
    pub checks: Vec<GuardCheck>,
}

#[derive(Debug, Clone)]
pub struct GuardCheck {
    /// In records and error codes.
    pub name: String,
    /// `request` and/or `response`, in that order.
    pub on: Vec<String>,
    pub scope: GuardScope,
    pub judge: Judge,
}

/// Who a check applies to: each list ANDed, an empty one matching everyone.
#[derive(Debug, Clone, Default)]
pub struct GuardScope {
    pub models: Vec<String>,
    pub groups: Vec<String>,
    pub tenants: Vec<String>,
}

/// What judges the text of a check.
#[derive(Debug, Clone)]
pub enum Judge {
    /// The built-in detectors: categories or rule ids, and what a finding does.
    Detect { detect: Vec<String>, action: String },
    /// An external guardrail (LiteLLM's Generic Guardrail API).
    Service(GuardService),
}

#[derive(Debug, Clone)]
pub struct GuardService {
    pub url: Url,
    /// The private CA its https URL is verified against; the system bundle if none.
    pub ca: Option<CaBundle>,
    pub timeout_ms: u64,
    /// Whether a request the service could not judge goes on (recorded `unchecked`).
    pub failure_open: bool,
    /// The variable of Envoy's environment whose value is sent as a bearer token.
    pub api_key_env: Option<String>,
}

impl GuardCheck {
    /// The Envoy cluster of a service check in a chokepoint-rendered bootstrap.
    pub fn cluster(&self) -> String {
        format!("guardrail_{}", self.name)
    }

    pub fn service(&self) -> Option<&GuardService> {
        match &self.judge {
            Judge::Service(s) => Some(s),
            Judge::Detect { .. } => None,
        }
    }
}

impl Guardrails {
    /// The checks that call a service, with their service.
    pub fn services(&self) -> impl Iterator<Item = (&GuardCheck, &GuardService)> {
        self.checks
            .iter()
            .filter_map(|c| c.service().map(|s| (c, s)))
    }
}

/// The collector the records go to (`telemetry.otlp`).
#[derive(Debug, Clone)]
pub struct Otlp {
    /// OTLP/HTTP base URL: the Envoy bootstrap and compose send to `<url>/v1/logs`.
    pub url: Url,
    /// OTLP/gRPC on the same host, for the meshes' providers.
    pub grpc_port: u16,
    pub service_name: String,
    pub flush_ms: u64,
    pub buffer_bytes: u32,
}

/// What each usage record names as the policy and the prices it was decided and priced
/// by (`chokepoint.policy_version`, `chokepoint.price_version`): digests, so that the
/// same policy renders the same versions in every target and any change makes new ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Versions {
    /// The policy as validated (overrides applied, the prices file read in).
    pub policy: String,
    /// The price table; none without one.
    pub price: Option<String>,
}

impl Versions {
    pub fn of(document: &Value, prices: Option<&Value>) -> Versions {
        let price = prices.map(|p| digest(p.to_string().as_bytes()));
        let mut all = document.to_string();
        if let Some(p) = prices {
            all.push('\n');
            all.push_str(&p.to_string());
        }
        Versions {
            policy: digest(all.as_bytes()),
            price,
        }
    }
}

/// `sha256:` and the first 16 hex digits of the bytes' SHA-256: short enough for every
/// record, long enough that two versions of one policy never share it by chance.
fn digest(bytes: &[u8]) -> String {
    let hash = hmac_sha256::Hash::hash(bytes);
    let mut out = String::from("sha256:");
    for b in hash.iter().take(8) {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The policy service's pages: who sees everything.
#[derive(Debug, Clone, Default)]
pub struct Ui {
    /// Members of these groups (in a verified company token) see everyone's spend.
    pub admin_groups: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Gateway {
    pub failure_open: bool,
    pub policy_timeout_ms: u64,
    pub request_timeout_ms: u64,
    pub max_request_body_bytes: usize,
    pub key_injection_upstream: bool,
    pub uuid_salt_env: String,
    /// Options passed to the filter as written (defaults are the filter's).
    pub passthrough: serde_json::Map<String, Value>,
}

#[derive(Debug, Clone)]
pub struct Issuer {
    pub issuer: String,
    /// The issuer's entry in the filter's config, minus the key source.
    pub fields: serde_json::Map<String, Value>,
    pub keys: Keys,
}

#[derive(Debug, Clone)]
pub enum Keys {
    Inline(Value),
    Uri {
        url: Url,
        refresh_secs: Option<u64>,
        timeout_ms: Option<u64>,
        /// The private CA its https URL is verified against; the system bundle if none.
        ca: Option<CaBundle>,
    },
}

#[derive(Debug, Clone)]
pub struct Provider {
    pub name: String,
    pub kind: String,
    pub url: Url,
    pub key_env: String,
    pub key_header: Option<String>,
    pub key_prefix: Option<String>,
    pub deployments: Option<BTreeMap<String, String>>,
    pub internal: bool,
    /// The private CA its https URL is verified against; the system bundle if none.
    pub ca: Option<CaBundle>,
}

/// The MCP servers behind the gateway.
#[derive(Debug, Clone)]
pub struct Mcp {
    /// The gateway's origin as clients reach it; the renders of a local listener fill
    /// in their own when absent ([`Policy::with_listener_url`]).
    pub public_url: Option<Url>,
    pub servers: Vec<McpServer>,
}

#[derive(Debug, Clone)]
pub struct McpServer {
    pub name: String,
    pub url: Url,
    /// The private CA its https URL is verified against; the system bundle if none.
    pub ca: Option<CaBundle>,
    pub credential: Option<McpCredential>,
    pub tools: Vec<McpRule>,
    pub prompts: Vec<McpRule>,
    pub resources: Vec<McpRule>,
}

/// What the gateway sends an MCP server in place of the client's token.
#[derive(Debug, Clone)]
pub struct McpCredential {
    pub header: String,
    pub scheme: Option<String>,
    /// The variable of Envoy's environment holding the value.
    pub env: String,
}

impl McpCredential {
    /// Written before the value: the scheme and a space, or nothing.
    pub fn prefix(&self) -> String {
        self.scheme
            .as_ref()
            .map(|s| format!("{s} "))
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone)]
pub struct McpRule {
    pub pattern: String,
    pub deny: bool,
    pub allow_groups: Option<Vec<String>>,
    pub allow_tenants: Option<Vec<String>>,
}

impl McpServer {
    /// The Envoy cluster of this server in a chokepoint-rendered bootstrap (the filter
    /// routes `/mcp/<name>` to it; the route for MCP matches the `mcp_` prefix).
    pub fn cluster(&self) -> String {
        format!("mcp_{}", self.name)
    }
}

/// One host and port the gateway reaches outside the mesh, with how it trusts it.
#[derive(Debug, Clone, Copy)]
pub struct Upstream<'a> {
    pub url: &'a Url,
    pub ca: Option<&'a CaBundle>,
    pub role: Role,
}

/// What the gateway sends an upstream host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A provider's API: requests are routed to it, and retried.
    Provider,
    /// An MCP server's endpoint: requests are routed to it, never retried.
    Mcp,
    /// Only the filter's own JWKS callouts reach it.
    Jwks,
    /// Only the filter's guardrail callouts reach it.
    Guardrail,
}

impl Upstream<'_> {
    /// Whether client requests are routed to it (not only the filter's callouts).
    pub fn routed(&self) -> bool {
        matches!(self.role, Role::Provider | Role::Mcp)
    }
}

impl Policy {
    /// Every provider, MCP server, JWKS and guardrail service host and port once, in that
    /// order and file order: meshes configure routing and TLS per host, not per provider.
    pub fn upstreams(&self) -> Vec<Upstream<'_>> {
        let mut out: Vec<Upstream> = Vec::new();
        let providers = self.providers.iter().map(|p| Upstream {
            url: &p.url,
            ca: p.ca.as_ref(),
            role: Role::Provider,
        });
        let mcp = self.mcp.iter().flat_map(|m| &m.servers).map(|s| Upstream {
            url: &s.url,
            ca: s.ca.as_ref(),
            role: Role::Mcp,
        });
        let jwks = self.issuers.iter().filter_map(|i| match &i.keys {
            Keys::Uri { url, ca, .. } => Some(Upstream {
                url,
                ca: ca.as_ref(),
                role: Role::Jwks,
            }),
            Keys::Inline(_) => None,
        });
        let guardrails = self
            .guardrails
            .iter()
            .flat_map(|g| g.services())
            .map(|(_, s)| Upstream {
                url: &s.url,
                ca: s.ca.as_ref(),
                role: Role::Guardrail,
            });
        for u in providers.chain(mcp).chain(jwks).chain(guardrails) {
            let known = out
                .iter()
                .any(|o| o.url.host == u.url.host && o.url.port == u.url.port);
            if !known {
                out.push(u);
            }
        }
        out
    }

    /// A mesh routes by host and port, with one route's retries and timeouts per host:
    /// an MCP server on a provider's host and port would get the provider's retries.
    /// The error for the mesh renders when one does.
    pub fn mcp_hosts_apart(&self, target: &str) -> Result<(), String> {
        for s in self.mcp.iter().flat_map(|m| &m.servers) {
            let shared = self
                .providers
                .iter()
                .find(|p| p.url.host == s.url.host && p.url.port == s.url.port);
            if let Some(p) = shared {
                return Err(format!(
                    "{target}: mcp server {:?} is on provider {:?}'s host and port ({}); \
                     the mesh routes per host, and a provider's route retries, which a \
                     tools/call must never be: give the server a host or port of its own",
                    s.name,
                    p.name,
                    s.url.authority()
                ));
            }
        }
        Ok(())
    }
}

impl Policy {
    /// The policy as rendered for a gateway listening on loopback `port`: an `mcp`
    /// section without `public_url` gets the listener's own URL (the local stack and
    /// compose, whose clients reach the gateway there).
    pub fn with_listener_url(&self, port: u16) -> Policy {
        let mut p = self.clone();
        if let Some(m) = p.mcp.as_mut() {
            if m.public_url.is_none() {
                m.public_url = Some(Url {
                    tls: false,
                    host: "127.0.0.1".into(),
                    port,
                    path: String::new(),
                });
            }
        }
        p
    }
}

impl Provider {
    /// The Envoy cluster of this provider in a chokepoint-rendered bootstrap.
    pub fn cluster(&self) -> String {
        format!("provider_{}", self.name.replace('-', "_"))
    }
}

#[derive(Debug, Clone)]
pub struct PolicyService {
    pub url: Url,
    /// The instances Envoy balances over, health-checks and retries on (empty: `url`
    /// alone, as one endpoint).
    pub endpoints: Vec<Url>,
    pub window_secs: u64,
    pub requests_per_window: u64,
    pub reservation_ttl_secs: u64,
    pub lease_slots: u64,
    pub lease_ttl_ms: Option<u64>,
    /// The variable (of Envoy and of the service) holding the gateway token.
    pub token_env: String,
    /// Whether booked records are logged in the service's audit stream
    /// (`--usage-audit-stream`).
    pub audit_stream: bool,
}

#[derive(Debug, Clone)]
pub struct Deploy {
    pub namespace: String,
    pub wasm_image: String,
    pub wasm_sha256: Option<String>,
    pub istio_namespace: String,
    pub istio_selector: BTreeMap<String, String>,
    pub fail_strategy: String,
    pub eg_gateway: String,
    pub eg_proxy_namespace: String,
    pub hostnames: Vec<String>,
    pub lockdown: Lockdown,
    pub policy: PolicyDeploy,
    pub redis: Redis,
    pub secrets: SecretNames,
}

/// Who may not go around the gateway, and the mesh identities that enforce it.
#[derive(Debug, Clone)]
pub struct Lockdown {
    /// Workload namespaces that opt in; empty renders no lockdown.
    pub namespaces: Vec<String>,
    /// Istio: the gateway pods' service account, in `Deploy::istio_namespace`.
    pub gateway_service_account: String,
    pub egress_namespace: String,
    pub egress_selector: BTreeMap<String, String>,
}

/// The policy service's Deployment.
#[derive(Debug, Clone)]
pub struct PolicyDeploy {
    pub image: String,
    pub replicas: u32,
    pub resources: Resources,
}

/// A container's requests and limits, as Kubernetes quantities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resources {
    pub requests: CpuMemory,
    pub limits: CpuMemory,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuMemory {
    pub cpu: String,
    pub memory: String,
}

/// Where the policy service's Redis runs.
#[derive(Debug, Clone)]
pub enum Redis {
    /// A StatefulSet of one in the policy service's namespace.
    InCluster {
        image: String,
        storage: String,
        storage_class: Option<String>,
        resources: Resources,
    },
    /// Run by the organisation: only the connection is rendered.
    External(RedisConnection),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisConnection {
    /// A URL without a password, written into the Deployment.
    Url(String),
    /// The Secret whose key `CHOKEPOINT_REDIS_URL` holds the URL.
    Secret(String),
    /// The primary Redis Sentinel names, followed across failovers.
    Sentinel(Sentinel),
    /// A Redis Cluster, found from its seed nodes.
    Cluster(Cluster),
}

/// `serve --redis-cluster-nodes` and its companions (policy/src/main.rs): the password
/// only as the name of the Secret that holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// `host:port` each, the seed nodes in the order they are tried.
    pub nodes: Vec<String>,
    /// The ACL user on every node; the default user when absent.
    pub username: Option<String>,
    /// The Secret whose key `CHOKEPOINT_REDIS_PASSWORD` holds the nodes' password.
    pub password_secret: Option<String>,
}

/// `serve --redis-sentinels` and its companions (policy/src/main.rs): the passwords only
/// as the names of the Secrets that hold them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sentinel {
    /// `host:port` each, in the order they are asked.
    pub addresses: Vec<String>,
    /// The name the sentinels monitor the primary under.
    pub master_name: String,
    /// The primary's ACL user; the default user when absent.
    pub username: Option<String>,
    /// The Secret whose key `CHOKEPOINT_REDIS_PASSWORD` holds the primary's password.
    pub password_secret: Option<String>,
    /// The Secret whose key `CHOKEPOINT_REDIS_SENTINEL_PASSWORD` holds the sentinels'.
    pub sentinel_password_secret: Option<String>,
    /// Replicas that must hold each usage batch before it counts (`--redis-wait-replicas`).
    pub wait_replicas: Option<u32>,
}

/// The Secrets the rendered manifests reference by name.
#[derive(Debug, Clone)]
pub struct SecretNames {
    pub policy_token: String,
    pub admin_token: String,
    pub gateway_keys: String,
}

/// The mesh example, `envoy/examples/policy.yaml`, which the renderers' tests work from.
#[cfg(test)]
pub fn example() -> Policy {
    let file =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../envoy/examples/policy.yaml");
    Policy::load(&file).unwrap_or_else(|e| panic!("{e}"))
}
