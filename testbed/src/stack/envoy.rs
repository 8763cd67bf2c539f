//! The Envoy bootstrap and the filter's plugin configuration, rendered from
//! `envoy/bootstrap.yaml.tmpl` so that the local stack and the tests run the same file.

use serde_json::json;

const TEMPLATE: &str = include_str!("../../../envoy/bootstrap.yaml.tmpl");

/// Where the provider traffic goes.
pub enum Upstream {
    /// The mock provider on loopback.
    Mock { port: u16 },
    /// The real OpenAI API over TLS (the mock serves the other providers).
    OpenAi { mock_port: u16 },
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
    pub extra_issuers: Vec<serde_json::Value>,
    pub issuer: &'a str,
    pub audience: &'a str,
    pub jwks_json: &'a str,
    pub policy_timeout_ms: u64,
    pub max_request_body_bytes: usize,
    pub usage_flush_ms: u64,
}

/// The filter's JSON configuration. It names the environment variables that hold the
/// secrets; the values never appear here.
pub fn plugin_config(p: &PluginParams) -> Result<String, String> {
    let jwks: serde_json::Value =
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
        "policy": {"cluster": "chokepoint_policy", "timeout_ms": p.policy_timeout_ms},
        "providers": [
            {"name": "openai", "api": "openai", "cluster": "provider_openai", "key_env": "OPENAI_API_KEY"},
            {"name": "anthropic", "api": "anthropic", "cluster": "provider_anthropic", "key_env": "ANTHROPIC_API_KEY"},
            {"name": "gemini", "api": "gemini", "cluster": "provider_gemini", "key_env": "GEMINI_API_KEY"},
            {"name": "azure", "api": "azure", "cluster": "provider_azure", "key_env": "AZURE_OPENAI_API_KEY"},
        ],
        "prices": {"models": {
            "gpt-4o-mini": {"input_per_mtok_usd": "0.15", "cached_input_per_mtok_usd": "0.075", "output_per_mtok_usd": "0.60"},
            "gpt-4.1-mini": {"input_per_mtok_usd": "0.40", "cached_input_per_mtok_usd": "0.10", "output_per_mtok_usd": "1.60"},
            "claude-sonnet-4-5": {"input_per_mtok_usd": "3", "cached_input_per_mtok_usd": "0.30", "cache_write_per_mtok_usd": "3.75", "output_per_mtok_usd": "15"},
            "gemini-2.5-flash": {"input_per_mtok_usd": "0.30", "cached_input_per_mtok_usd": "0.075", "output_per_mtok_usd": "2.50"},
        }},
        "usage": {"flush_ms": p.usage_flush_ms},
        "attribution": true,
        "models": {
            "aliases": {"default": "gpt-4.1-mini"},
            "routes": [
                {"model": "claude-opus-*", "providers": ["anthropic"], "allow_groups": ["research"]},
                {"model": "claude-*", "providers": ["anthropic"]},
                {"model": "gpt-*", "providers": ["openai", "azure"]},
                {"model": "text-embedding-*", "providers": ["openai", "azure"]},
                {"model": "gemini-*", "providers": ["gemini"]},
                {"model": "gpt-4.1-mini", "providers": ["openai", "azure"]},
                {"model": "gpt-4o-mini", "providers": ["openai", "azure"]},
            ],
        },
        "max_request_body_bytes": p.max_request_body_bytes,
    })
    .to_string())
}

pub fn bootstrap(p: &EnvoyParams) -> String {
    let (cluster, route_extra) = match p.upstream {
        Upstream::Mock { port } => (mock_clusters(*port), String::new()),
        // The real OpenAI API; the other providers stay on the mock until configured.
        Upstream::OpenAi { mock_port } => (
            format!(
                "{}\n{}",
                tls_cluster("provider_openai", "api.openai.com"),
                ["provider_anthropic", "provider_gemini", "provider_azure"]
                    .map(|c| loopback_cluster(c, *mock_port))
                    .join("\n")
            ),
            "                  auto_host_rewrite: true".to_string(),
        ),
    };
    // YAML single-quoted scalar: the only escape is a doubled quote.
    let plugin = p.plugin_config.replace('\'', "''");
    TEMPLATE
        .replace("{{ADMIN_PORT}}", &p.admin_port.to_string())
        .replace("{{GATEWAY_PORT}}", &p.gateway_port.to_string())
        .replace("{{POLICY_PORT}}", &p.policy_port.to_string())
        .replace(
            "{{BUFFER_LIMIT}}",
            &(p.max_request_body_bytes * 2).to_string(),
        )
        .replace("{{WASM_PATH}}", p.wasm_path)
        .replace("{{PROVIDER_CLUSTER}}", &cluster)
        .replace("{{EXTRA_CLUSTERS}}", p.extra_clusters)
        .replace("{{PROVIDER_ROUTE_EXTRA}}", &route_extra)
        .replace("{{PLUGIN_CONFIG}}", &plugin)
        .replace("{{USAGE_LOG}}", p.usage_log)
}

/// Every provider's cluster on the mock, which speaks all four APIs.
fn mock_clusters(port: u16) -> String {
    [
        "provider_openai",
        "provider_anthropic",
        "provider_gemini",
        "provider_azure",
    ]
    .map(|c| loopback_cluster(c, port))
    .join("\n")
}

/// A plain-HTTP cluster on a loopback port.
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

fn tls_cluster(name: &str, host: &str) -> String {
    format!(
        r#"  - name: {name}
    type: LOGICAL_DNS
    dns_lookup_family: V4_PREFERRED
    connect_timeout: 5s
    load_assignment:
      cluster_name: {name}
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: {host}, port_value: 443}}}}}}
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        sni: {host}
        common_tls_context:
          validation_context:
            trusted_ca: {{filename: /etc/ssl/certs/ca-certificates.crt}}"#
    )
}
