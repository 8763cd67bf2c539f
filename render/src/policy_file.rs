//! The policy file as written: serde structs that refuse unknown fields, so a typo is an
//! error with a line number instead of a setting that silently does nothing.
//!
//! Sections the filter also reads (`models`, `prices`, token sources) keep the filter's
//! own shape and field names, so one vocabulary covers both and the filter's validation
//! errors point at the same paths.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    pub version: u32,
    #[serde(default)]
    pub gateway: RawGateway,
    pub issuers: Vec<RawIssuer>,
    pub providers: Vec<RawProvider>,
    pub models: Value,
    #[serde(default)]
    pub prices: Option<Value>,
    #[serde(default)]
    pub limits: Vec<RawLimit>,
    /// MCP servers reached through the gateway at `/mcp/<name>`.
    #[serde(default)]
    pub mcp: Option<RawMcp>,
    pub policy_service: RawPolicyService,
    #[serde(default)]
    pub audit: RawAudit,
    /// Where the records go besides the access log and the ledger.
    #[serde(default)]
    pub telemetry: RawTelemetry,
    /// The policy service's pages.
    #[serde(default)]
    pub ui: RawUi,
    /// Detectors and external services that judge request and response text.
    #[serde(default)]
    pub guardrails: Option<RawGuardrails>,
    #[serde(default)]
    pub deploy: RawDeploy,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGateway {
    /// `closed` (refuse) or `open` (let through) when the policy service cannot answer.
    #[serde(default)]
    pub failure_mode: Option<String>,
    #[serde(default)]
    pub policy_timeout_ms: Option<u64>,
    /// How long a client has to send its whole request (headers within a fifth of it);
    /// a stalled client is cut with 408. Responses may stream for longer.
    #[serde(default)]
    pub request_timeout_ms: Option<u64>,
    #[serde(default)]
    pub max_request_body_bytes: Option<usize>,
    #[serde(default)]
    pub default_max_output_tokens: Option<u64>,
    #[serde(default)]
    pub enforce_output_cap: Option<bool>,
    #[serde(default)]
    pub attribution: Option<bool>,
    /// `upstream` (per attempt, needed for fallback chains) or `downstream`.
    #[serde(default)]
    pub key_injection: Option<String>,
    /// `full` (default) or `identity`: authenticate, attribute and forward only.
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(default)]
    pub uuid_salt_env: Option<String>,
    #[serde(default)]
    pub token_sources: Option<Value>,
    #[serde(default)]
    pub token_cache: Option<Value>,
    #[serde(default)]
    pub max_token_bytes: Option<usize>,
    #[serde(default)]
    pub clock_skew_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIssuer {
    pub issuer: String,
    pub audiences: Vec<String>,
    pub jwks: RawJwks,
    #[serde(default)]
    pub algorithms: Option<Vec<String>>,
    #[serde(default)]
    pub hmac_secret_env: Option<String>,
    #[serde(default)]
    pub required_claims: Vec<String>,
    #[serde(default)]
    pub claims: RawClaims,
    /// The tenants, groups and cost centres this issuer may assert (names or `*` globs);
    /// required for each issuer once there are two.
    #[serde(default)]
    pub trust: Option<RawTrust>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTrust {
    pub tenants: Vec<String>,
    pub groups: Vec<String>,
    pub cost_centers: Vec<String>,
}

/// Exactly one of `file`, `uri` or `inline`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJwks {
    /// A JWKS file, read at render time (relative to the policy file).
    #[serde(default)]
    pub file: Option<String>,
    /// An `https://` URL the gateway fetches through its own cluster (`http://` only
    /// with `insecure_http`).
    #[serde(default)]
    pub uri: Option<String>,
    #[serde(default)]
    pub inline: Option<Value>,
    #[serde(default)]
    pub refresh_secs: Option<u64>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// A PEM bundle of the CAs an https `uri` is verified against (relative to the
    /// policy file); the system bundle when absent.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// Allows an `http://` uri (local development only: whoever can alter the keys in
    /// transit can mint any identity).
    #[serde(default)]
    pub insecure_http: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClaims {
    #[serde(default)]
    pub tenant: Option<String>,
    #[serde(default)]
    pub groups: Option<String>,
    #[serde(default)]
    pub cost_center: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    pub name: String,
    /// The API it speaks: `openai`, `anthropic`, `gemini` or `azure`.
    pub kind: String,
    pub base_url: String,
    /// The environment variable of Envoy's process that holds the key.
    pub key_env: String,
    #[serde(default)]
    pub key_header: Option<String>,
    #[serde(default)]
    pub key_prefix: Option<String>,
    /// Azure: the model behind each deployment name (what the deployment bills).
    #[serde(default)]
    pub deployments: Option<BTreeMap<String, String>>,
    /// Run by the organisation itself: only such upstreams receive the caller's identity
    /// headers.
    #[serde(default)]
    pub internal: Option<bool>,
    /// A PEM bundle of the CAs an https `base_url` is verified against (relative to the
    /// policy file); the system bundle when absent.
    #[serde(default)]
    pub ca_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMcp {
    /// The gateway's URL as clients reach it (`https://host[:port]`), named by the
    /// protected resource metadata; the local listener's when absent (Envoy, compose).
    #[serde(default)]
    pub public_url: Option<String>,
    pub servers: Vec<RawMcpServer>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMcpServer {
    /// Served at `/mcp/<name>`.
    pub name: String,
    /// The server's Streamable HTTP endpoint, `http(s)://host[:port]/path`.
    pub url: String,
    /// A PEM bundle of the CAs an https `url` is verified against (relative to the
    /// policy file); the system bundle when absent.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// What the gateway sends the server in place of the client's token.
    #[serde(default)]
    pub credential: Option<RawMcpCredential>,
    #[serde(default)]
    pub tools: Vec<RawMcpRule>,
    #[serde(default)]
    pub prompts: Vec<RawMcpRule>,
    #[serde(default)]
    pub resources: Vec<RawMcpRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMcpCredential {
    pub header: String,
    /// Written before the value with a space (`Bearer`); none when absent.
    #[serde(default)]
    pub scheme: Option<String>,
    /// The environment variable of Envoy's process that holds the credential.
    pub env: String,
}

/// First match wins; `deny: true` refuses everyone, allow lists admit a caller in any
/// listed group or tenant, neither admits all.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMcpRule {
    /// A name, or a `*` glob.
    #[serde(rename = "match")]
    pub pattern: String,
    #[serde(default)]
    pub deny: Option<bool>,
    #[serde(default)]
    pub allow_groups: Option<Vec<String>>,
    #[serde(default)]
    pub allow_tenants: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimit {
    /// `<kind>:<id>`, kind one of user, tenant, cost_center, model, mcp_server, mcp_tool;
    /// id `*` for defaults (`mcp_tool:<server>/*` for a server's tools).
    pub scope: String,
    #[serde(default)]
    pub rpm: Option<u64>,
    #[serde(default)]
    pub tpm: Option<u64>,
    #[serde(default)]
    pub budget: Option<RawBudget>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBudget {
    /// US dollars, as a decimal string or number (`"25"`, `"0.50"`).
    #[serde(default)]
    pub usd: Option<Value>,
    #[serde(default)]
    pub tokens: Option<u64>,
    /// `day`, `month` or `rolling:<secs>`.
    pub period: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicyService {
    /// Where Envoy reaches it, `http://host:port`.
    pub url: String,
    /// Several instances of the service, `http://host:port` each: Envoy balances the
    /// filter's callouts over them, checks each one's `/healthz` and takes out at once
    /// one that fails. `url` still names the service (its host is the callouts'
    /// authority and, with https, the name the certificate must carry).
    #[serde(default)]
    pub endpoints: Option<Vec<String>>,
    #[serde(default)]
    pub window_secs: Option<u64>,
    #[serde(default)]
    pub requests_per_window: Option<u64>,
    #[serde(default)]
    pub reservation_ttl_secs: Option<u64>,
    /// Requests' worth the gateway asks for per decision (0 or 1: one callout per
    /// request); the service grants at most a quarter of what a limit has left.
    #[serde(default)]
    pub lease_slots: Option<u64>,
    /// How long a lease's slots may be spent, in ms.
    #[serde(default)]
    pub lease_ttl_ms: Option<u64>,
    /// The environment variable holding the gateway token the filter sends and the
    /// service checks (the name only; both processes need it set).
    #[serde(default)]
    pub token_env: Option<String>,
    /// Whether the service logs every booked record in its audit stream in Redis
    /// (default true); false leaves the gateway's access log as the audit trail.
    #[serde(default)]
    pub audit_stream: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUi {
    /// Groups (as the issuers' tokens name them) whose members see everyone's spend; any
    /// other token holder sees their own.
    #[serde(default)]
    pub admin_groups: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGuardrails {
    /// More detector rules (relative to the policy file), added to the built-in ones;
    /// their ids must not clash with a built-in's.
    #[serde(default)]
    pub rules_file: Option<String>,
    /// The environment variable holding the key of the mask placeholders' HMAC; the
    /// gateway's `uuid_salt_env` when absent.
    #[serde(default)]
    pub mask_key_env: Option<String>,
    pub checks: Vec<RawGuardCheck>,
}

/// Either `detect` and `action` (the built-in detectors) or `service` (an external
/// guardrail, LiteLLM's Generic Guardrail API).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGuardCheck {
    /// `[a-z0-9-]{1,64}`: in records and error codes.
    pub name: String,
    /// Categories (`secret`, `personal`) or rule ids.
    #[serde(default)]
    pub detect: Option<Vec<String>>,
    /// `block`, `mask` (requests only) or `flag`.
    #[serde(default)]
    pub action: Option<String>,
    #[serde(default)]
    pub service: Option<RawGuardService>,
    /// `request` (the default), `response`, or both.
    #[serde(default)]
    pub on: Option<Vec<String>>,
    /// Who the check applies to; everyone when absent.
    #[serde(default)]
    pub scope: RawGuardScope,
}

/// Each list ANDed with the others; an empty one matches everyone.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGuardScope {
    /// Names or `*` globs of the requested model.
    #[serde(default)]
    pub models: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub tenants: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGuardService {
    /// The service's endpoint, `http(s)://host[:port]/path`.
    pub url: String,
    /// A PEM bundle of the CAs an https `url` is verified against (relative to the
    /// policy file); the system bundle when absent.
    #[serde(default)]
    pub ca_file: Option<String>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// `closed` (cannot check: block) or `open` (cannot check: allow and record).
    #[serde(default)]
    pub failure_mode: Option<String>,
    /// The environment variable of Envoy's process whose value is sent as
    /// `Authorization: Bearer`.
    #[serde(default)]
    pub api_key_env: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAudit {
    /// The file Envoy writes one usage record (JSON) per request to.
    #[serde(default)]
    pub access_log: Option<String>,
    /// Delivery of records to the ledger: `batch_max`, `flush_ms`, `timeout_ms`.
    #[serde(default)]
    pub usage: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTelemetry {
    /// Every usage record as an OpenTelemetry log record, by Envoy's own OpenTelemetry
    /// access logger, to a collector.
    #[serde(default)]
    pub otlp: Option<RawOtlp>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOtlp {
    /// The collector's OTLP/HTTP base URL (`http://collector:4318`); logs go to
    /// `<endpoint>/v1/logs`. The Envoy bootstrap and compose send there.
    pub endpoint: String,
    /// The collector's OTLP/gRPC port on the same host (default 4317): Istio's and Envoy
    /// Gateway's OpenTelemetry access-log providers speak gRPC only.
    #[serde(default)]
    pub grpc_port: Option<u16>,
    /// The `service.name` resource attribute (default `chokepoint`).
    #[serde(default)]
    pub service_name: Option<String>,
    /// How often Envoy sends what it holds, in ms (default 1000).
    #[serde(default)]
    pub flush_ms: Option<u64>,
    /// How many bytes of records Envoy holds before it sends them sooner (default 16384).
    #[serde(default)]
    pub buffer_bytes: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDeploy {
    #[serde(default)]
    pub namespace: Option<String>,
    /// `oci://registry/repo:tag` (or `@sha256:`), where meshes pull the filter from.
    #[serde(default)]
    pub wasm_image: Option<String>,
    /// The image manifest digest (`scripts/oci-image` prints it), 64 hex characters.
    #[serde(default)]
    pub wasm_sha256: Option<String>,
    /// Host names clients use to reach the gateway in a mesh.
    #[serde(default)]
    pub hostnames: Option<Vec<String>>,
    #[serde(default)]
    pub istio: RawIstio,
    #[serde(default)]
    pub envoy_gateway: RawEnvoyGateway,
    /// The workload namespaces whose pods may reach the providers only through the
    /// gateway, and what the mesh needs to enforce it (`chokepoint-config render ...
    /// istio-lockdown | envoy-gateway-lockdown`).
    #[serde(default)]
    pub lockdown: RawLockdown,
    /// How the policy service runs in Kubernetes (`kubernetes-policy`).
    #[serde(default)]
    pub policy_service: RawPolicyDeploy,
    /// Its Redis: a StatefulSet in the namespace, or `external`.
    #[serde(default)]
    pub redis: RawRedis,
    /// The names of the Secrets a mesh admin creates; their values are never rendered.
    #[serde(default)]
    pub secrets: RawSecretNames,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicyDeploy {
    /// The image holding `chokepoint-policy` on its PATH, with a tag or a digest.
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub replicas: Option<u32>,
    #[serde(default)]
    pub resources: RawResources,
}

/// Kubernetes quantities (`100m`, `256Mi`); each one left out keeps its default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawResources {
    #[serde(default)]
    pub requests: RawCpuMemory,
    #[serde(default)]
    pub limits: RawCpuMemory,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCpuMemory {
    #[serde(default)]
    pub cpu: Option<String>,
    #[serde(default)]
    pub memory: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedis {
    /// In the cluster: the Redis image, with a tag or a digest.
    #[serde(default)]
    pub image: Option<String>,
    /// In the cluster: the size of its volume (a quantity, `1Gi`).
    #[serde(default)]
    pub storage: Option<String>,
    /// In the cluster: the volume's StorageClass; the cluster's default when absent.
    #[serde(default)]
    pub storage_class: Option<String>,
    #[serde(default)]
    pub resources: RawResources,
    /// A Redis the organisation runs: nothing is rendered for it but the connection.
    #[serde(default)]
    pub external: Option<RawExternalRedis>,
}

/// Exactly one of `url`, `url_secret`, `sentinels` and `cluster_nodes`; the rest go
/// with `sentinels` (`username` and `password_secret` also with `cluster_nodes`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExternalRedis {
    /// `redis://host:port[/db]` without a password.
    #[serde(default)]
    pub url: Option<String>,
    /// A Secret in the policy service's namespace whose key `CHOKEPOINT_REDIS_URL` holds
    /// the URL (for one that carries a password).
    #[serde(default)]
    pub url_secret: Option<String>,
    /// Redis Sentinel: `host:port` of each sentinel; the service follows the primary
    /// they name.
    #[serde(default)]
    pub sentinels: Option<Vec<String>>,
    /// Redis Cluster: `host:port` of each seed node; the service learns the rest from
    /// the first that answers.
    #[serde(default)]
    pub cluster_nodes: Option<Vec<String>>,
    /// The name the sentinels monitor the primary under (`sentinel monitor NAME ...`).
    #[serde(default)]
    pub master_name: Option<String>,
    /// The primary's (or every cluster node's) ACL user, when not the default user.
    #[serde(default)]
    pub username: Option<String>,
    /// A Secret in the policy service's namespace whose key `CHOKEPOINT_REDIS_PASSWORD`
    /// holds the primary's (or the cluster nodes') password.
    #[serde(default)]
    pub password_secret: Option<String>,
    /// A Secret in the policy service's namespace whose key
    /// `CHOKEPOINT_REDIS_SENTINEL_PASSWORD` holds the sentinels' password.
    #[serde(default)]
    pub sentinel_password_secret: Option<String>,
    /// Replicas that must hold each usage batch (Redis WAIT) before the service answers.
    #[serde(default)]
    pub wait_replicas: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSecretNames {
    /// In the policy service's namespace: the gateway token, under the key
    /// `policy_service.token_env` names.
    #[serde(default)]
    pub policy_token: Option<String>,
    /// In the policy service's namespace: the admin API's token, key `CHOKEPOINT_ADMIN_TOKEN`.
    #[serde(default)]
    pub admin_token: Option<String>,
    /// In the gateway's namespace: every variable the filter reads from the gateway's
    /// environment (provider keys, UUID salt, gateway token), one key each.
    #[serde(default)]
    pub gateway_keys: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIstio {
    /// The namespace of the gateway workload (where the WasmPlugin lives).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Labels of the gateway workload the filter loads into.
    #[serde(default)]
    pub selector: Option<BTreeMap<String, String>>,
    /// `FAIL_CLOSE` or `FAIL_OPEN` when the module cannot load or crashes.
    #[serde(default)]
    pub fail_strategy: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEnvoyGateway {
    /// The Gateway the chokepoint HTTPRoute attaches to.
    #[serde(default)]
    pub gateway: Option<String>,
    /// Where Envoy Gateway runs that Gateway's proxy pods: its controller's namespace,
    /// or the Gateway's own in Gateway Namespace mode.
    #[serde(default)]
    pub proxy_namespace: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLockdown {
    /// Namespaces that opt in: their workloads reach no host outside the mesh's registry
    /// (Istio) or nothing but DNS and the gateway (NetworkPolicy).
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Istio: the service account of the gateway pods (in `deploy.istio.namespace`), the
    /// one identity the egress gateway lets through to the providers.
    #[serde(default)]
    pub gateway_service_account: Option<String>,
    /// Istio: the egress gateway the AuthorizationPolicy applies to.
    #[serde(default)]
    pub egress_gateway: RawEgressGateway,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEgressGateway {
    #[serde(default)]
    pub namespace: Option<String>,
    /// Labels of the egress gateway's pods.
    #[serde(default)]
    pub selector: Option<BTreeMap<String, String>>,
}
