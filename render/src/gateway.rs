//! Envoy Gateway: an `HTTPRoute` for the gateway's host names whose rules send a request
//! to the provider the filter chose (by the `x-chokepoint-cluster` header it sets), a
//! `Backend` per provider, MCP server, JWKS and guardrail service host with a
//! `BackendTLSPolicy` that verifies its name, an `EnvoyExtensionPolicy` that loads the
//! filter on that route from the OCI image, and an `EnvoyProxy` whose access log writes
//! the usage records.
//!
//! Envoy Gateway (v1.9, envoyproxy/gateway) names a rule's cluster after the rule:
//! `irRouteDestinationName` in `internal/gatewayapi/helpers.go` gives
//! `httproute/<namespace>/<route>/rule/<index>`, and `addRouteToRouteConfig` in
//! `internal/xds/translator/translator.go` creates one cluster of that name per rule
//! (one per backendRef, `.../backend/<i>`, only for zone-aware or backendRef-filtered
//! rules, which these are not; the shared `backend/...` clusters only when an
//! EnvoyProxy sets `mergeBackends`, which this one does not). The filter's provider,
//! JWKS and policy clusters are those names. Like Istio's WasmPlugin, this path has no
//! router upstream filters or aggregate clusters: keys are set downstream and a route
//! keeps its first provider per API.
//!
//! Envoy Gateway adds the Wasm filter to the listener disabled and enables it in the
//! `typed_per_filter_config` of each route of the targeted HTTPRoute (`wasm.go`,
//! `patchHCM` and `patchRoute`): a request runs the filter only if some rule of this
//! route matches it before the filter has run. The last rule therefore matches every
//! path with no backend (Gateway API: a 500 if the filter ever lets such a request
//! through); the filter then names the provider's rule in the header and Envoy
//! resolves the route again.

use serde_json::{json, Value};

use crate::envoy;
use crate::kubernetes::secrets;
use crate::otlp;
use crate::plugin::{self, Target};
use crate::policy::{Keys, Policy, Role};
use crate::tls::{self, CaBundle};
use crate::url::Url;

const ROUTE: &str = "chokepoint";
/// The `EnvoyProxy` the Gateway names in `spec.infrastructure.parametersRef`.
pub const ENVOY_PROXY: &str = "chokepoint";
const CLUSTER_HEADER: &str = "x-chokepoint-cluster";

fn rule_cluster(policy: &Policy, index: usize) -> String {
    format!("httproute/{}/{ROUTE}/rule/{index}", policy.deploy.namespace)
}

fn backend_name(url: &Url) -> String {
    let name = url.host.replace(['.', '_'], "-");
    if url.port == url.default_port() {
        name
    } else {
        format!("{name}-{}", url.port)
    }
}

/// The plugin configuration with Envoy Gateway's cluster names.
fn plugin_config(policy: &Policy) -> Value {
    let mut c = plugin::plugin_config(policy, Target::Istio);
    // Rules in this order: providers', MCP servers', JWKS and guardrail services' hosts,
    // then the policy service.
    let hosts = policy.upstreams();
    let index_of = |url: &Url| {
        hosts
            .iter()
            .position(|h| h.url.host == url.host && h.url.port == url.port)
            .unwrap_or(0)
    };
    if let Some(ps) = c.get_mut("providers").and_then(Value::as_array_mut) {
        for (p, cfg) in policy.providers.iter().zip(ps.iter_mut()) {
            cfg["cluster"] = json!(rule_cluster(policy, index_of(&p.url)));
        }
    }
    let servers = policy.mcp.iter().flat_map(|m| &m.servers);
    let configs = c
        .get_mut("mcp")
        .and_then(|m| m.get_mut("servers"))
        .and_then(Value::as_array_mut);
    for (s, cfg) in servers.zip(configs.into_iter().flatten()) {
        cfg["cluster"] = json!(rule_cluster(policy, index_of(&s.url)));
    }
    if let Some(is) = c.get_mut("issuers").and_then(Value::as_array_mut) {
        for (iss, cfg) in policy.issuers.iter().zip(is.iter_mut()) {
            if let Keys::Uri { url, .. } = &iss.keys {
                cfg["jwks_uri"]["cluster"] = json!(rule_cluster(policy, index_of(url)));
            }
        }
    }
    let services = policy.guardrails.iter().flat_map(|g| &g.checks);
    let configs = c
        .get_mut("guardrails")
        .and_then(|g| g.get_mut("checks"))
        .and_then(Value::as_array_mut);
    for (check, cfg) in services.zip(configs.into_iter().flatten()) {
        if let Some(s) = check.service() {
            cfg["service"]["cluster"] = json!(rule_cluster(policy, index_of(&s.url)));
        }
    }
    c["policy"]["cluster"] = json!(rule_cluster(policy, hosts.len()));
    c
}

/// TLS to one upstream host: the Backend's own settings (system or private CAs, SNI)
/// and a BackendTLSPolicy whose `validation.hostname` Gateway API defines as the name
/// the certificate MUST match (Envoy Gateway 1.9 also checks a Backend's `sni` alone;
/// the policy makes it the API's promise rather than an implementation's habit), plus
/// the private CA's ConfigMap (`ca.crt`) when there is one.
fn backend_tls(
    policy: &Policy,
    url: &Url,
    ca: Option<&CaBundle>,
    backend: &mut Value,
) -> Vec<Value> {
    let ns = &policy.deploy.namespace;
    let name = backend_name(url);
    let meta = |name: &str| json!({"name": name, "namespace": ns, "labels": {"app.kubernetes.io/part-of": "chokepoint"}});
    let mut out = Vec::new();
    let mut trust = serde_json::Map::new();
    match ca {
        Some(ca) => {
            let cm = tls::ca_object_name("chokepoint-ca-", &name);
            trust.insert(
                "caCertificateRefs".into(),
                json!([{"group": "", "kind": "ConfigMap", "name": cm}]),
            );
            out.push(json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": meta(&cm),
                "data": {"ca.crt": ca.pem},
            }));
        }
        None => {
            trust.insert("wellKnownCACertificates".into(), json!("System"));
        }
    }
    let mut backend_tls = trust.clone();
    backend_tls.insert("sni".into(), json!(url.host));
    backend["spec"]["tls"] = Value::Object(backend_tls);
    let mut validation = trust;
    validation.insert("hostname".into(), json!(url.host));
    out.push(json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "BackendTLSPolicy",
        "metadata": meta(&name),
        "spec": {
            "targetRefs": [{"group": "gateway.envoyproxy.io", "kind": "Backend", "name": name}],
            "validation": validation,
        }
    }));
    out
}

/// A Backend's endpoint: Envoy Gateway validates an `fqdn` as a host name
/// (`validateBackend`), so an address is an `ip` endpoint.
fn endpoint(url: &Url) -> Value {
    if url.is_ip() {
        json!({"ip": {"address": url.host, "port": url.port}})
    } else {
        json!({"fqdn": {"hostname": url.host, "port": url.port}})
    }
}

pub fn manifests(policy: &Policy) -> Vec<Value> {
    let d = &policy.deploy;
    let ns = &d.namespace;
    let meta = |name: &str| json!({"name": name, "namespace": ns, "labels": {"app.kubernetes.io/part-of": "chokepoint"}});
    // Rules in this order: providers', MCP servers', JWKS and guardrail services' hosts,
    // then the policy service.
    let hosts = policy.upstreams();
    let mut rules: Vec<Value> = Vec::new();
    let mut out = Vec::new();
    for (i, u) in hosts.iter().enumerate() {
        let url = u.url;
        // JWKS and guardrail hosts get a rule too: it is how Envoy Gateway makes their
        // cluster, which only the filter's callouts use (it replaces any client's header).
        let mut filters = vec![drop_cluster_header()];
        if u.routed() {
            // Envoy Gateway forwards the client's Host (ai.example.com) unless a rule
            // rewrites it (`buildXdsURLRewriteAction`: `host_rewrite_literal`); a
            // provider's front end routes by its own name.
            filters.push(json!({"type": "URLRewrite", "urlRewrite": {"hostname": url.host}}));
        }
        // No rule retries (Envoy Gateway adds none without a BackendTrafficPolicy); an
        // MCP server's has no timeout either: an SSE answer lasts as long as the tool.
        let timeout = if u.role == Role::Mcp { "0s" } else { "600s" };
        rules.push(json!({
            "matches": [{"headers": [{"type": "Exact", "name": CLUSTER_HEADER, "value": rule_cluster(policy, i)}]}],
            "filters": filters,
            "backendRefs": [{"group": "gateway.envoyproxy.io", "kind": "Backend", "name": backend_name(url), "port": url.port}],
            "timeouts": {"request": timeout},
        }));
        let mut backend = json!({
            "apiVersion": "gateway.envoyproxy.io/v1alpha1",
            "kind": "Backend",
            "metadata": meta(&backend_name(url)),
            "spec": {"endpoints": [endpoint(url)]},
        });
        let extra = if url.tls {
            backend_tls(policy, url, u.ca, &mut backend)
        } else {
            Vec::new()
        };
        out.push(backend);
        out.extend(extra);
    }
    // The policy service's rule: only the filter's own callouts use it (the route's
    // header match never sees a client's value: the filter replaces the header).
    let ps = &policy.policy_service.url;
    rules.push(json!({
        "matches": [{"headers": [{"type": "Exact", "name": CLUSTER_HEADER, "value": rule_cluster(policy, hosts.len())}]}],
        "filters": [drop_cluster_header()],
        "backendRefs": [{"name": ps.host.split('.').next().unwrap_or("chokepoint-policy"), "port": ps.port}],
    }));
    // Every other request: this rule enables the filter for it (see the module's
    // comment); with no backendRefs Envoy Gateway answers it 500 itself.
    rules.push(json!({"matches": [{"path": {"type": "PathPrefix", "value": "/"}}]}));
    out.push(json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": meta(ROUTE),
        "spec": {
            "parentRefs": [{"name": d.eg_gateway}],
            "hostnames": d.hostnames,
            "rules": rules,
        }
    }));
    let mut image = json!({"url": d.wasm_image});
    if let Some(sha) = &d.wasm_sha256 {
        image["sha256"] = json!(sha);
    }
    out.push(json!({
        "apiVersion": "gateway.envoyproxy.io/v1alpha1",
        "kind": "EnvoyExtensionPolicy",
        "metadata": meta("chokepoint"),
        "spec": {
            "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": ROUTE}],
            "wasm": [{
                "name": envoy::FILTER,
                "rootID": envoy::FILTER,
                "code": {"type": "Image", "image": image},
                "config": plugin_config(policy),
                "env": {"hostKeys": plugin::env_keys(policy)},
                "failOpen": d.fail_strategy == "FAIL_OPEN",
            }],
        }
    }));
    out.push(envoy_proxy(policy));
    out.push(client_traffic(policy));
    out
}

/// Room for a whole request body: the filter reads it before it decides, and Envoy
/// Gateway holds a connection to 32 KiB by default (`buildPerConnectionBufferLimitBytes`
/// in `internal/xds/translator/listener.go`), past which Envoy answers 413 to a coding
/// agent's request long before `max_request_body_bytes`. Twice that limit, as the
/// bootstrap's listener, through the Gateway's ClientTrafficPolicy
/// (`connection.bufferLimit`, `internal/gatewayapi/clienttrafficpolicy.go`).
fn client_traffic(policy: &Policy) -> Value {
    let d = &policy.deploy;
    json!({
        "apiVersion": "gateway.envoyproxy.io/v1alpha1",
        "kind": "ClientTrafficPolicy",
        "metadata": {"name": ENVOY_PROXY, "namespace": d.namespace, "labels": {"app.kubernetes.io/part-of": "chokepoint"}},
        "spec": {
            "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": d.eg_gateway}],
            "connection": {"bufferLimit": policy.gateway.max_request_body_bytes * 2},
        },
    })
}

/// Removes the routing header before the request goes upstream, as the bootstrap's
/// route does: it names an internal cluster.
fn drop_cluster_header() -> Value {
    json!({"type": "RequestHeaderModifier", "requestHeaderModifier": {"remove": [CLUSTER_HEADER]}})
}

/// The audit log: Envoy Gateway writes access logs only as an `EnvoyProxy`'s
/// `spec.telemetry.accessLog` says (`processAccessLog` in
/// `internal/gatewayapi/listener.go`; a Text format with a File sink becomes Envoy's
/// file access logger with that format, `buildXdsAccessLog` in
/// `internal/xds/translator/accesslog.go`). The usage record is the same line the
/// bootstrap writes; `type: Route` puts it on the HTTP connection manager only. Any
/// settings list replaces Envoy Gateway's default JSON log to stdout, so the second
/// entry keeps it. The Gateway applies it through `spec.infrastructure.parametersRef`
/// (group `gateway.envoyproxy.io`, kind `EnvoyProxy`, this name).
///
/// The same resource gives the gateway's pods the filter's variables: Envoy Gateway
/// generates their Deployment and appends `provider.kubernetes.envoyDeployment.container.env`
/// to its Envoy container's environment (`expectedContainerEnv` in
/// `internal/infrastructure/kubernetes/proxy/resource.go`), so each variable of
/// `plugin::env_keys` reads its key of the gateway Secret, as Istio's gateway patch
/// (`kubernetes::secrets::istio_gateway_patch`) gives its proxy the whole Secret.
fn access_log_settings(policy: &Policy) -> Vec<Value> {
    let mut settings = vec![json!({
        "type": "Route",
        "format": {"type": "Text", "text": envoy::USAGE_LOG_FORMAT},
        "sinks": [{"type": "File", "file": {"path": policy.access_log}}],
    })];
    // With `telemetry.otlp`, the records to the collector too.
    if let Some(o) = &policy.otlp {
        settings.push(otlp::envoy_gateway_setting(o));
    }
    settings.push(json!({"sinks": [{"type": "File", "file": {"path": "/dev/stdout"}}]}));
    settings
}

fn envoy_proxy(policy: &Policy) -> Value {
    let secret = &policy.deploy.secrets.gateway_keys;
    let env: Vec<Value> = plugin::env_keys(policy)
        .iter()
        .map(|key| secrets::env_from_secret(key, secret, key))
        .collect();
    let mut deployment = json!({"container": {"env": env}});
    // With the access log in a file, the reconciler's sidecar reads it from a volume the
    // proxy writes it to (`kubernetes::reconciler`).
    if let Some(sidecar) = crate::kubernetes::reconciler::sidecar(policy) {
        deployment["container"]["volumeMounts"] = json!([sidecar.proxy_mount]);
        deployment["pod"] = json!({"volumes": sidecar.volumes});
        deployment["initContainers"] = json!([sidecar.container]);
    }
    json!({
        "apiVersion": "gateway.envoyproxy.io/v1alpha1",
        "kind": "EnvoyProxy",
        "metadata": {"name": ENVOY_PROXY, "namespace": policy.deploy.namespace, "labels": {"app.kubernetes.io/part-of": "chokepoint"}},
        "spec": {
        "provider": {"type": "Kubernetes", "kubernetes": {"envoyDeployment": deployment}},
        "telemetry": {"accessLog": {"settings": access_log_settings(policy)}},
        "extraArgs": extra_args()},
    })
}

/// Envoy's file access logs are written every `--file-flush-interval-msec`, a flag only
/// (`envoy::FILE_FLUSH_INTERVAL_MSEC`): Envoy Gateway appends `spec.extraArgs` to the
/// flags it starts its proxies with (`BuildProxyArgs` in
/// `internal/infrastructure/common/proxy_args.go`), none of which sets it, so a killed
/// proxy loses 200 ms of records at most instead of Envoy's default 10 s. Two arguments,
/// as Envoy's own command line takes them.
fn extra_args() -> Vec<String> {
    vec![
        "--file-flush-interval-msec".into(),
        envoy::FILE_FLUSH_INTERVAL_MSEC.to_string(),
    ]
}
