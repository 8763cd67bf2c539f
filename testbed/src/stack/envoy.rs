//! The Envoy bootstrap and the filter's plugin configurations, rendered from
//! `envoy/bootstrap.yaml.tmpl` so that the local stack and the tests run the same file.

use serde_json::{json, Value};

const TEMPLATE: &str = include_str!("../../../envoy/bootstrap.yaml.tmpl");

/// Where the provider traffic goes.
pub enum Upstream {
    /// The mock providers on loopback: the main one speaks all four APIs, the backup
    /// is the second OpenAI-compatible provider of the fallback chain.
    Mock { port: u16, backup_port: u16 },
    /// The real OpenAI API over TLS (the mocks serve the other providers).
    OpenAi { mock_port: u16, backup_port: u16 },
    /// Every provider's real API over TLS (SNI, system CAs): what a deployment runs.
    /// `openai-backup` is the same API with a second organisation's key.
    Real { azure_host: String },
}

/// Where a provider's cluster points.
enum Target {
    Loopback(u16),
    Tls(String),
}

struct ProviderDef {
    name: &'static str,
    api: &'static str,
    cluster: &'static str,
    key_env: &'static str,
    target: Target,
}

fn providers(upstream: &Upstream) -> Vec<ProviderDef> {
    let (openai, mock, backup) = match upstream {
        Upstream::Mock { port, backup_port } => (Target::Loopback(*port), *port, *backup_port),
        Upstream::OpenAi {
            mock_port,
            backup_port,
        } => (
            Target::Tls("api.openai.com".into()),
            *mock_port,
            *backup_port,
        ),
        Upstream::Real { azure_host } => return real_providers(azure_host),
    };
    let def = |name, api, cluster, key_env, target| ProviderDef {
        name,
        api,
        cluster,
        key_env,
        target,
    };
    vec![
        def(
            "openai",
            "openai",
            "provider_openai",
            "OPENAI_API_KEY",
            openai,
        ),
        def(
            "openai-backup",
            "openai",
            "provider_openai_backup",
            "OPENAI_BACKUP_API_KEY",
            Target::Loopback(backup),
        ),
        def(
            "anthropic",
            "anthropic",
            "provider_anthropic",
            "ANTHROPIC_API_KEY",
            Target::Loopback(mock),
        ),
        def(
            "gemini",
            "gemini",
            "provider_gemini",
            "GEMINI_API_KEY",
            Target::Loopback(mock),
        ),
        def(
            "azure",
            "azure",
            "provider_azure",
            "AZURE_OPENAI_API_KEY",
            Target::Loopback(mock),
        ),
    ]
}

fn real_providers(azure_host: &str) -> Vec<ProviderDef> {
    let tls = |h: &str| Target::Tls(h.to_string());
    let def = |name, api, cluster, key_env, target| ProviderDef {
        name,
        api,
        cluster,
        key_env,
        target,
    };
    vec![
        def(
            "openai",
            "openai",
            "provider_openai",
            "OPENAI_API_KEY",
            tls("api.openai.com"),
        ),
        def(
            "openai-backup",
            "openai",
            "provider_openai_backup",
            "OPENAI_BACKUP_API_KEY",
            tls("api.openai.com"),
        ),
        def(
            "anthropic",
            "anthropic",
            "provider_anthropic",
            "ANTHROPIC_API_KEY",
            tls("api.anthropic.com"),
        ),
        def(
            "gemini",
            "gemini",
            "provider_gemini",
            "GEMINI_API_KEY",
            tls("generativelanguage.googleapis.com"),
        ),
        def(
            "azure",
            "azure",
            "provider_azure",
            "AZURE_OPENAI_API_KEY",
            tls(azure_host),
        ),
    ]
}

/// The model route table: the chains here decide which aggregate clusters exist.
fn routes() -> Value {
    json!({
        "aliases": {"default": "gpt-4.1-mini"},
        "routes": [
            {"model": "claude-opus-*", "providers": ["anthropic"], "allow_groups": ["research"]},
            {"model": "claude-*", "providers": ["anthropic"]},
            {"model": "gpt-4o-mini", "providers": ["openai", "openai-backup", "azure"]},
            {"model": "gpt-*", "providers": ["openai", "azure"]},
            {"model": "text-embedding-*", "providers": ["openai", "azure"]},
            {"model": "gemini-*", "providers": ["gemini"]},
        ],
    })
}

pub struct EnvoyParams<'a> {
    /// Where the usage records (one JSON line per request) are written.
    pub usage_log: &'a str,
    /// More clusters (YAML list items), e.g. the identity provider's.
    pub extra_clusters: &'a str,
    pub gateway_port: u16,
    pub admin_port: u16,
    pub policy_port: u16,
    pub upstream: &'a Upstream,
    pub wasm_path: &'a str,
    pub plugin_config: &'a str,
    pub max_request_body_bytes: usize,
}

pub struct PluginParams<'a> {
    /// Further issuers, as plugin-config JSON objects.
    pub extra_issuers: Vec<Value>,
    pub issuer: &'a str,
    pub audience: &'a str,
    pub jwks_json: &'a str,
    pub policy_timeout_ms: u64,
    pub max_request_body_bytes: usize,
    pub usage_flush_ms: u64,
    /// `policy.failure_mode`: `closed` or `open`.
    pub failure_mode: &'a str,
}

fn provider_configs() -> Vec<Value> {
    // The provider list does not depend on where the clusters point.
    providers(&Upstream::Mock {
        port: 0,
        backup_port: 0,
    })
    .iter()
    .map(|p| json!({"name": p.name, "api": p.api, "cluster": p.cluster, "key_env": p.key_env}))
    .collect()
}

/// The gateway filter's JSON configuration. It names the environment variables that
/// hold the secrets; the values never appear here.
pub fn plugin_config(p: &PluginParams) -> Result<String, String> {
    let jwks: Value =
        serde_json::from_str(p.jwks_json).map_err(|e| format!("dev JWKS is not JSON: {e}"))?;
    let mut issuers = vec![json!({"issuer": p.issuer, "audiences": [p.audience], "jwks": jwks})];
    issuers.extend(p.extra_issuers.iter().cloned());
    Ok(json!({
        "issuers": issuers,
        "token_sources": [
            {"header": "authorization", "scheme": "Bearer"},
            {"header": "cf-access-jwt-assertion"},
        ],
        "uuid_salt_env": "CHOKEPOINT_UUID_SALT",
        "policy": {"cluster": "chokepoint_policy", "timeout_ms": p.policy_timeout_ms, "failure_mode": p.failure_mode},
        "providers": provider_configs(),
        "key_injection": "upstream",
        "prices": {"models": {
            "gpt-4o-mini": {"input_per_mtok_usd": "0.15", "cached_input_per_mtok_usd": "0.075", "output_per_mtok_usd": "0.60"},
            "gpt-4.1-mini": {"input_per_mtok_usd": "0.40", "cached_input_per_mtok_usd": "0.10", "output_per_mtok_usd": "1.60"},
            "claude-sonnet-4-5": {"input_per_mtok_usd": "3", "cached_input_per_mtok_usd": "0.30", "cache_write_per_mtok_usd": "3.75", "output_per_mtok_usd": "15"},
            "gemini-2.5-flash": {"input_per_mtok_usd": "0.30", "cached_input_per_mtok_usd": "0.075", "output_per_mtok_usd": "2.50"},
        }},
        "usage": {"flush_ms": p.usage_flush_ms},
        "attribution": true,
        "enforce_output_cap": true,
        "default_max_output_tokens": 256,
        "models": routes(),
        "max_request_body_bytes": p.max_request_body_bytes,
    })
    .to_string())
}

/// The key injector's configuration (the upstream filter, one run per attempt).
fn injector_config() -> String {
    json!({"inject_keys": {"providers": provider_configs()}}).to_string()
}

pub fn bootstrap(p: &EnvoyParams) -> String {
    let defs = providers(p.upstream);
    let mut clusters: Vec<String> = defs.iter().map(provider_cluster).collect();
    clusters.extend(chain_clusters(&defs));
    let route_extra = match p.upstream {
        Upstream::OpenAi { .. } | Upstream::Real { .. } => {
            "                  auto_host_rewrite: true".to_string()
        }
        Upstream::Mock { .. } => String::new(),
    };
    // YAML single-quoted scalars: the only escape is a doubled quote.
    let quote = |s: &str| s.replace('\'', "''");
    TEMPLATE
        .replace("{{ADMIN_PORT}}", &p.admin_port.to_string())
        .replace("{{GATEWAY_PORT}}", &p.gateway_port.to_string())
        .replace("{{POLICY_PORT}}", &p.policy_port.to_string())
        .replace(
            "{{BUFFER_LIMIT}}",
            &(p.max_request_body_bytes * 2).to_string(),
        )
        .replace("{{WASM_PATH}}", p.wasm_path)
        .replace("{{PROVIDER_CLUSTER}}", &clusters.join("\n"))
        .replace("{{EXTRA_CLUSTERS}}", p.extra_clusters)
        .replace("{{PROVIDER_ROUTE_EXTRA}}", &route_extra)
        .replace("{{PLUGIN_CONFIG}}", &quote(p.plugin_config))
        .replace("{{INJECTOR_CONFIG}}", &quote(&injector_config()))
        .replace("{{USAGE_LOG}}", p.usage_log)
}

/// One aggregate cluster per fallback chain (two or more providers of one API on a
/// route), named as the filter expects: `chain_<p1>__<p2>...`.
fn chain_clusters(defs: &[ProviderDef]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let routes = routes();
    for route in routes["routes"].as_array().into_iter().flatten() {
        let names: Vec<&str> = route["providers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        for api in ["openai", "anthropic", "gemini", "azure"] {
            let chain: Vec<&ProviderDef> = names
                .iter()
                .filter_map(|n| defs.iter().find(|d| d.name == *n))
                .filter(|d| d.api == api)
                .collect();
            if chain.len() < 2 {
                continue;
            }
            let name = format!(
                "chain_{}",
                chain.iter().map(|d| d.name).collect::<Vec<_>>().join("__")
            );
            let members = chain
                .iter()
                .map(|d| d.cluster)
                .collect::<Vec<_>>()
                .join(", ");
            let yaml = format!(
                r#"  - name: {name}
    connect_timeout: 2s
    lb_policy: CLUSTER_PROVIDED
    cluster_type:
      name: envoy.clusters.aggregate
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.clusters.aggregate.v3.ClusterConfig
        clusters: [{members}]"#
            );
            if !out.contains(&yaml) {
                out.push(yaml);
            }
        }
    }
    out
}

/// A provider's cluster, its endpoint tagged with the provider's name for the key injector.
fn provider_cluster(d: &ProviderDef) -> String {
    let metadata = format!(
        "metadata: {{filter_metadata: {{chokepoint: {{provider: {}}}}}}}",
        d.name
    );
    match &d.target {
        Target::Loopback(port) => format!(
            r#"  - name: {name}
    type: STATIC
    connect_timeout: 2s
    load_assignment:
      cluster_name: {name}
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}}}
          {metadata}"#,
            name = d.cluster
        ),
        Target::Tls(host) => format!(
            r#"  - name: {name}
    type: LOGICAL_DNS
    dns_lookup_family: V4_PREFERRED
    connect_timeout: 5s
    load_assignment:
      cluster_name: {name}
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: {host}, port_value: 443}}}}}}
          {metadata}
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        sni: {host}
        common_tls_context:
          validation_context:
            trusted_ca: {{filename: /etc/ssl/certs/ca-certificates.crt}}"#,
            name = d.cluster
        ),
    }
}

/// A plain-HTTP cluster on a loopback port (the identity provider's).
pub fn loopback_cluster(name: &str, port: u16) -> String {
    format!(
        r#"  - name: {name}
    type: STATIC
    connect_timeout: 2s
    load_assignment:
      cluster_name: {name}
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}}}"#
    )
}
