//! Istio manifests. Three ways in, from least to most control:
//! - `WasmPlugin` (and its 1.30 successor `TrafficExtension`): istio-agent pulls the
//!   OCI image; the plugin routes through Istio's own clusters (ServiceEntry +
//!   DestinationRule + VirtualService rendered alongside). Istio cannot add aggregate
//!   clusters or router upstream filters this way, so keys are set downstream and a
//!   route keeps only its first provider per API (no cross-provider fallback).
//! - `EnvoyFilter`: patches in exactly what the local bootstrap runs (the same clusters,
//!   filter, route, retry policy and per-attempt key injector), fallback chains included.
//!
//! Secrets never appear: keys and the UUID salt come from the proxy's own environment
//! (`valueFrom: HOST`), set from a Kubernetes Secret on the gateway Deployment.

use serde_json::{json, Value};

use crate::envoy::{self, Code};
use crate::otlp;
use crate::plugin::{self, Target};
use crate::policy::{Policy, Role};
use crate::tls;
use crate::url::Url;

/// Where the EnvoyFilter variant expects the .wasm inside istio-proxy (mounted with the
/// `sidecar.istio.io/userVolume*` annotations or a gateway Deployment volume).
pub const PROXY_WASM_PATH: &str = "/var/lib/chokepoint/chokepoint.wasm";

fn meta(name: &str, namespace: &str) -> Value {
    json!({"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/part-of": "chokepoint"}})
}

fn env(policy: &Policy) -> Vec<Value> {
    plugin::env_keys(policy)
        .into_iter()
        .map(|k| json!({"name": k, "valueFrom": "HOST"}))
        .collect()
}

fn wasm_fields(policy: &Policy) -> serde_json::Map<String, Value> {
    let d = &policy.deploy;
    let mut m = serde_json::Map::new();
    m.insert("url".into(), json!(d.wasm_image));
    if let Some(sha) = &d.wasm_sha256 {
        m.insert("sha256".into(), json!(sha));
    }
    m.insert("imagePullPolicy".into(), json!("IfNotPresent"));
    m.insert("pluginName".into(), json!(envoy::FILTER));
    m.insert("failStrategy".into(), json!(d.fail_strategy));
    m.insert(
        "pluginConfig".into(),
        plugin::plugin_config(policy, Target::Istio),
    );
    m.insert("vmConfig".into(), json!({"env": env(policy)}));
    m.insert("type".into(), json!("HTTP"));
    m
}

pub fn wasm_plugin(policy: &Policy) -> Value {
    let d = &policy.deploy;
    let mut spec = json!({
        "selector": {"matchLabels": d.istio_selector},
        // Before Istio's own authn: the filter authenticates, and strips the client's
        // credentials before anything else sees them.
        "phase": "AUTHN",
        "priority": 1000,
    });
    if let Some(o) = spec.as_object_mut() {
        o.extend(wasm_fields(policy));
    }
    json!({
        "apiVersion": "extensions.istio.io/v1alpha1",
        "kind": "WasmPlugin",
        "metadata": meta("chokepoint", &d.istio_namespace),
        "spec": spec,
    })
}

pub fn traffic_extension(policy: &Policy) -> Value {
    let d = &policy.deploy;
    // The same module fields as WasmPlugin's, nested under spec.wasm.
    let wasm = wasm_fields(policy);
    json!({
        "apiVersion": "extensions.istio.io/v1alpha1",
        "kind": "TrafficExtension",
        "metadata": meta("chokepoint", &d.istio_namespace),
        "spec": {
            "selector": {"matchLabels": d.istio_selector},
            "phase": "AUTHN",
            "priority": 1000,
            "wasm": wasm,
        }
    })
}

/// The Kubernetes name of the resources for one upstream host and port.
fn upstream_name(url: &Url) -> String {
    let name = url.host.replace(['.', '_'], "-");
    if url.port == url.default_port() {
        name
    } else {
        format!("{name}-{}", url.port)
    }
}

/// The Istio resources WasmPlugin routing needs: each provider, MCP server, JWKS and
/// guardrail service host as a ServiceEntry with TLS origination that verifies the host's
/// name, and a VirtualService on the gateway that sends a request to the cluster the
/// filter chose (the `x-chokepoint-cluster` header it sets). JWKS and guardrail hosts get
/// no route: only the filter's own callouts reach their clusters.
///
/// The ServiceEntries and DestinationRules are exported to their own namespace, the
/// gateway's, only (`exportTo: ["."]`): exported mesh-wide, they would put the provider
/// hosts into every sidecar's registry, a way to the providers that bypasses the gateway
/// even under `REGISTRY_ONLY` (the lockdown, [`crate::lockdown::istio`]), and their
/// TLS settings would apply to other workloads' traffic to those hosts. The lockdown
/// adds no ServiceEntry of its own: two for one host in one namespace would conflict.
pub fn routing(policy: &Policy) -> Vec<Value> {
    let d = &policy.deploy;
    let mut out = Vec::new();
    let upstreams = policy.upstreams();
    for u in &upstreams {
        let url = u.url;
        let name = upstream_name(url);
        let port_name = match u.role {
            Role::Provider => "http-provider",
            Role::Mcp => "http-mcp",
            Role::Jwks => "http-jwks",
            Role::Guardrail => "http-guardrail",
        };
        out.push(json!({
            "apiVersion": "networking.istio.io/v1",
            "kind": "ServiceEntry",
            "metadata": meta(&name, &d.istio_namespace),
            "spec": {
                "hosts": [url.host],
                "exportTo": ["."],
                "location": "MESH_EXTERNAL",
                "resolution": "DNS",
                // HTTP inside the gateway, TLS on the wire (the DestinationRule below).
                "ports": [{"number": url.port, "name": port_name, "protocol": "HTTP"}],
            }
        }));
        if url.tls {
            // SNI and the names the certificate must carry, fixed: left out, Istio would
            // take both from the request's Host, which is the client's.
            let mut tls = json!({"mode": "SIMPLE", "sni": url.host, "subjectAltNames": [url.host]});
            if let Some(ca) = u.ca {
                // A gateway reads the CAs from a Secret in its own namespace (key
                // `cacert`); without one it verifies against the OS bundle.
                let secret = tls::ca_object_name("chokepoint-ca-", &name);
                tls["credentialName"] = json!(secret);
                out.push(json!({
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": meta(&secret, &d.istio_namespace),
                    "type": "Opaque",
                    "stringData": {"cacert": ca.pem},
                }));
            }
            out.push(json!({
                "apiVersion": "networking.istio.io/v1",
                "kind": "DestinationRule",
                "metadata": meta(&name, &d.istio_namespace),
                "spec": {
                    "host": url.host,
                    "exportTo": ["."],
                    "trafficPolicy": {"tls": tls},
                }
            }));
        }
    }
    let mut http: Vec<Value> = upstreams
        .iter()
        .filter(|u| u.routed())
        .map(|u| {
            let url = u.url;
            let mut route = json!({
                "match": [{"headers": {"x-chokepoint-cluster": {"exact": plugin::istio_cluster(url)}}}],
                "headers": {"request": {"remove": ["x-chokepoint-cluster"]}},
                // The upstream's own name as Host: Istio keeps the client's (the
                // gateway's hostname) unless the route rewrites it, and a provider serves
                // its API only on its own name.
                "rewrite": {"authority": url.authority()},
                "route": [{"destination": {"host": url.host, "port": {"number": url.port}}}],
            });
            if u.role == Role::Mcp {
                // No retries (a tools/call is not idempotent; Istio retries twice unless
                // told 0 attempts) and no timeout (an SSE answer lasts as long as the
                // tool runs; left out, the VirtualService's timeout is disabled, and
                // its schema refuses 0s).
                route["retries"] = json!({"attempts": 0});
            } else {
                route["timeout"] = json!("600s");
                route["retries"] = json!({"attempts": 2, "retryOn": "5xx,reset,connect-failure,retriable-status-codes"});
            }
            route
        })
        .collect();
    // Before the filter has chosen (or when it answered itself), nothing goes upstream.
    http.push(json!({"directResponse": {"status": 404}}));
    out.push(json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": meta("chokepoint", &d.istio_namespace),
        "spec": {
            "hosts": d.hostnames,
            "gateways": ["chokepoint-gateway"],
            "http": http,
        }
    }));
    out
}

/// The name of the mesh's access-log provider that writes the usage records.
pub const USAGE_LOG_PROVIDER: &str = "chokepoint-usage";
/// The name of the mesh's provider that exports them to the collector (`telemetry.otlp`).
pub const OTLP_LOG_PROVIDER: &str = "chokepoint-otlp";

/// What the gateway's Telemetry logs: the usage records to the file, and with
/// `telemetry.otlp` to the collector too, only for requests the filter recorded.
fn access_logging(policy: &Policy) -> Vec<Value> {
    let mut logging = vec![json!({"providers": [{"name": USAGE_LOG_PROVIDER}]})];
    if policy.otlp.is_some() {
        logging.push(json!({
            "providers": [{"name": OTLP_LOG_PROVIDER}],
            "filter": {"expression": otlp::recorded()},
        }));
    }
    logging
}

/// The audit trail on Istio: the gateway's access logs, through the Telemetry API, go to
/// the provider [`mesh_config`] declares. A Telemetry for a workload replaces the
/// providers it would inherit from its namespace or the mesh, so a gateway that logs
/// elsewhere too lists those here as well.
pub fn telemetry(policy: &Policy) -> Value {
    let d = &policy.deploy;
    json!({
        "apiVersion": "telemetry.istio.io/v1",
        "kind": "Telemetry",
        "metadata": meta("chokepoint", &d.istio_namespace),
        "spec": {
            "selector": {"matchLabels": d.istio_selector},
            "accessLogging": access_logging(policy),
        }
    })
}

/// The mesh config entry the Telemetry names: an Envoy file access log of the usage
/// record (the bootstrap's format) at `audit.access_log`. It goes into istiod's mesh
/// config (Helm `meshConfig`, IstioOperator `spec.meshConfig`, or the `istio` ConfigMap's
/// `mesh` key), added to any `extensionProviders` already there. With `telemetry.otlp`,
/// a second provider exports the records to the collector (`otlp::istio_provider`).
pub fn mesh_config(policy: &Policy) -> Value {
    let mut providers = vec![json!({
        "name": USAGE_LOG_PROVIDER,
        "envoyFileAccessLog": {
            "path": policy.access_log,
            "logFormat": {"text": envoy::USAGE_LOG_FORMAT},
        },
    })];
    if let Some(o) = &policy.otlp {
        providers.push(otlp::istio_provider(OTLP_LOG_PROVIDER, o));
    }
    json!({"meshConfig": {"extensionProviders": providers}})
}

/// The EnvoyFilter variant: the same Envoy configuration as the local bootstrap.
pub fn envoy_filter(policy: &Policy) -> Value {
    let d = &policy.deploy;
    let code = Code::Local(PROXY_WASM_PATH.into());
    let gateway = |extra: Value| {
        let mut m = json!({"context": "GATEWAY"});
        if let (Some(o), Some(e)) = (m.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        m
    };
    let hcm = json!({"filterChain": {"filter": {
        "name": "envoy.filters.network.http_connection_manager",
        "subFilter": {"name": "envoy.filters.http.router"},
    }}});
    let mut patches: Vec<Value> = envoy::clusters(policy)
        .into_iter()
        .map(|c| {
            json!({
                "applyTo": "CLUSTER",
                "match": gateway(json!({})),
                "patch": {"operation": "ADD", "value": c},
            })
        })
        .collect();
    patches.push(json!({
        "applyTo": "HTTP_FILTER",
        "match": gateway(json!({"listener": hcm.clone()})),
        "patch": {"operation": "INSERT_BEFORE", "value": {
            "name": envoy::FILTER,
            "typed_config": envoy::wasm_filter_config(policy, &code, Target::Envoy),
        }},
    }));
    // Also before the router, so after the filter: an upstream's gzip is inflated before
    // the filter counts it, as in the bootstrap.
    patches.push(json!({
        "applyTo": "HTTP_FILTER",
        "match": gateway(json!({"listener": hcm})),
        "patch": {"operation": "INSERT_BEFORE", "value": envoy::response_decompressor()},
    }));
    if policy.gateway.key_injection_upstream {
        patches.push(json!({
            "applyTo": "HTTP_FILTER",
            "match": gateway(json!({"listener": {"filterChain": {"filter": {
                "name": "envoy.filters.network.http_connection_manager",
                "subFilter": {"name": "envoy.filters.http.router"},
            }}}})),
            "patch": {"operation": "MERGE", "value": {
                "typed_config": envoy::router_filter(policy, &code)["typed_config"].clone(),
            }},
        }));
    }
    patches.push(json!({
        "applyTo": "VIRTUAL_HOST",
        "match": gateway(json!({})),
        "patch": {"operation": "ADD", "value": {
            "name": "chokepoint",
            "domains": d.hostnames,
            "routes": envoy::routes(policy),
        }},
    }));
    json!({
        "apiVersion": "networking.istio.io/v1alpha3",
        "kind": "EnvoyFilter",
        "metadata": meta("chokepoint", &d.istio_namespace),
        "spec": {
            "workloadSelector": {"labels": d.istio_selector},
            "configPatches": patches,
        }
    })
}
