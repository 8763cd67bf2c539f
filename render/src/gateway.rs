//! Envoy Gateway: an `HTTPRoute` for the gateway's host names whose rules send a request
//! to the provider the filter chose (by the `x-chokepoint-cluster` header it sets), and
//! an `EnvoyExtensionPolicy` that loads the filter on that route from the OCI image.
//!
//! Envoy Gateway names a rule's cluster `httproute/<namespace>/<route>/rule/<index>`;
//! the filter's provider and policy clusters are those names. Like Istio's WasmPlugin,
//! this path has no router upstream filters or aggregate clusters: keys are set
//! downstream and a route keeps its first provider per API.

use serde_json::{json, Value};

use crate::envoy;
use crate::plugin::{self, Target};
use crate::policy::Policy;
use crate::url::Url;

const ROUTE: &str = "chokepoint";

fn rule_cluster(policy: &Policy, index: usize) -> String {
    format!("httproute/{}/{ROUTE}/rule/{index}", policy.deploy.namespace)
}

fn backend_name(url: &Url) -> String {
    url.host.replace('.', "-")
}

/// The upstream hosts, in rule order: each provider host, then the policy service.
fn hosts(policy: &Policy) -> Vec<&Url> {
    let mut hosts: Vec<&Url> = Vec::new();
    for p in &policy.providers {
        if !hosts
            .iter()
            .any(|h| h.host == p.url.host && h.port == p.url.port)
        {
            hosts.push(&p.url);
        }
    }
    hosts
}

/// The plugin configuration with Envoy Gateway's cluster names.
fn plugin_config(policy: &Policy) -> Value {
    let mut c = plugin::plugin_config(policy, Target::Istio);
    let hosts = hosts(policy);
    let index_of = |url: &Url| {
        hosts
            .iter()
            .position(|h| h.host == url.host && h.port == url.port)
            .unwrap_or(0)
    };
    if let Some(ps) = c.get_mut("providers").and_then(Value::as_array_mut) {
        for (p, cfg) in policy.providers.iter().zip(ps.iter_mut()) {
            cfg["cluster"] = json!(rule_cluster(policy, index_of(&p.url)));
        }
    }
    c["policy"]["cluster"] = json!(rule_cluster(policy, hosts.len()));
    c
}

pub fn manifests(policy: &Policy) -> Vec<Value> {
    let d = &policy.deploy;
    let ns = &d.namespace;
    let meta = |name: &str| json!({"name": name, "namespace": ns, "labels": {"app.kubernetes.io/part-of": "chokepoint"}});
    let hosts = hosts(policy);
    let mut rules: Vec<Value> = Vec::new();
    let mut out = Vec::new();
    for (i, url) in hosts.iter().enumerate() {
        rules.push(json!({
            "matches": [{"headers": [{"type": "Exact", "name": "x-chokepoint-cluster", "value": rule_cluster(policy, i)}]}],
            "backendRefs": [{"group": "gateway.envoyproxy.io", "kind": "Backend", "name": backend_name(url), "port": url.port}],
            "timeouts": {"request": "600s"},
        }));
        let mut backend = json!({
            "apiVersion": "gateway.envoyproxy.io/v1alpha1",
            "kind": "Backend",
            "metadata": meta(&backend_name(url)),
            "spec": {"endpoints": [{"fqdn": {"hostname": url.host, "port": url.port}}]},
        });
        if url.tls {
            backend["spec"]["tls"] = json!({"wellKnownCACertificates": "System", "sni": url.host});
        }
        out.push(backend);
    }
    // The policy service's rule: only the filter's own callouts use it (the route's
    // header match never sees a client's value: the filter replaces the header).
    let ps = &policy.policy_service.url;
    rules.push(json!({
        "matches": [{"headers": [{"type": "Exact", "name": "x-chokepoint-cluster", "value": rule_cluster(policy, hosts.len())}]}],
        "backendRefs": [{"name": ps.host.split('.').next().unwrap_or("chokepoint-policy"), "port": ps.port}],
    }));
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
    out
}
