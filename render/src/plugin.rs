//! The filter's two JSON configurations: the gateway filter's and the key injector's.
//! They name environment variables for every secret; no value ever appears here.

use serde_json::{json, Map, Value};

use crate::policy::{GuardCheck, Guardrails, Judge, Keys, McpRule, McpServer, Policy, Provider};
use crate::url::Url;

/// Which proxy the configuration is for: cluster names differ between a bootstrap
/// chokepoint renders and the clusters Istio generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// chokepoint's own cluster names (plain Envoy, compose, Istio EnvoyFilter patches,
    /// which add these clusters).
    Envoy,
    /// Istio's generated names (`outbound|443||api.openai.com`), for WasmPlugin and
    /// TrafficExtension, which cannot add clusters, routes or upstream filters.
    Istio,
}

pub const POLICY_CLUSTER: &str = "chokepoint_policy";

/// Istio's name for the cluster of a ServiceEntry / Service host and port.
pub fn istio_cluster(url: &Url) -> String {
    format!("outbound|{}||{}", url.port, url.host)
}

pub fn provider_cluster(p: &Provider, target: Target) -> String {
    match target {
        Target::Envoy => p.cluster(),
        Target::Istio => istio_cluster(&p.url),
    }
}

pub fn mcp_cluster(s: &McpServer, target: Target) -> String {
    match target {
        Target::Envoy => s.cluster(),
        Target::Istio => istio_cluster(&s.url),
    }
}

/// A guardrail service check's cluster (its `service`, which [`guardrails`] checks).
pub fn guardrail_cluster(c: &GuardCheck, target: Target) -> String {
    match (target, c.service()) {
        (Target::Istio, Some(s)) => istio_cluster(&s.url),
        _ => c.cluster(),
    }
}

/// Text blocks whose findings each worker remembers: an agent resends its whole history
/// every turn, and each block is scanned once.
const GUARD_CACHE_ENTRIES: u64 = 4096;
/// The largest non-streamed answer held for a response check; a larger one is passed on
/// and recorded `unchecked`.
const MAX_RESPONSE_SCAN_BYTES: u64 = 4 << 20;

/// The filter's `guardrails` section: the rules the checks use, and each check with its
/// scope and either its detectors and action or its service's cluster.
fn guardrails(g: &Guardrails, target: Target) -> Value {
    let checks: Vec<Value> = g
        .checks
        .iter()
        .map(|c| {
            let mut o = json!({
                "name": c.name,
                "on": c.on,
                "scope": {"models": c.scope.models, "groups": c.scope.groups, "tenants": c.scope.tenants},
            });
            match &c.judge {
                Judge::Detect { detect, action } => {
                    o["detect"] = json!(detect);
                    o["action"] = json!(action);
                }
                Judge::Service(s) => {
                    let mut svc = json!({
                        "cluster": guardrail_cluster(c, target),
                        "authority": s.url.authority(),
                        "path": s.url.path,
                        "timeout_ms": s.timeout_ms,
                        "failure_mode": if s.failure_open { "open" } else { "closed" },
                    });
                    if let Some(k) = &s.api_key_env {
                        svc["api_key_env"] = json!(k);
                    }
                    o["service"] = svc;
                }
            }
            o
        })
        .collect();
    json!({
        "rules": g.rules,
        "mask_key_env": g.mask_key_env,
        "checks": checks,
        "cache_entries": GUARD_CACHE_ENTRIES,
        "max_response_scan_bytes": MAX_RESPONSE_SCAN_BYTES,
    })
}

/// What a listener's render uses when the policy names no public URL (see
/// [`Policy::with_listener_url`]); the validation render has no listener.
const UNSET_PUBLIC_URL: &str = "http://127.0.0.1:10000";

fn mcp_rules(rules: &[McpRule]) -> Vec<Value> {
    rules
        .iter()
        .map(|r| {
            let mut o = json!({"match": r.pattern});
            if r.deny {
                o["deny"] = json!(true);
            }
            if let Some(g) = &r.allow_groups {
                o["allow_groups"] = json!(g);
            }
            if let Some(t) = &r.allow_tenants {
                o["allow_tenants"] = json!(t);
            }
            o
        })
        .collect()
}

/// The filter's `mcp` section: each server's cluster, upstream path, credential and rules.
fn mcp(policy: &Policy, target: Target) -> Option<Value> {
    let m = policy.mcp.as_ref()?;
    let servers: Vec<Value> = m
        .servers
        .iter()
        .map(|s| {
            let mut o = json!({
                "name": s.name,
                "cluster": mcp_cluster(s, target),
                "path": s.url.path,
                "authority": s.url.authority(),
                "tools": mcp_rules(&s.tools),
                "prompts": mcp_rules(&s.prompts),
                "resources": mcp_rules(&s.resources),
            });
            if let Some(c) = &s.credential {
                o["credential"] = json!({"header": c.header, "prefix": c.prefix(), "env": c.env});
            }
            o
        })
        .collect();
    let public_url = m
        .public_url
        .as_ref()
        .map_or_else(|| UNSET_PUBLIC_URL.to_string(), |u| u.origin());
    Some(json!({"public_url": public_url, "servers": servers}))
}

pub fn jwks_cluster(index: usize, url: &Url, target: Target) -> String {
    match target {
        Target::Envoy => format!("jwks_{index}"),
        Target::Istio => istio_cluster(url),
    }
}

fn providers(policy: &Policy, target: Target) -> Vec<Value> {
    policy
        .providers
        .iter()
        .map(|p| {
            let mut o = json!({
                "name": p.name,
                "api": p.kind,
                "cluster": provider_cluster(p, target),
                "key_env": p.key_env,
            });
            if let Some(h) = &p.key_header {
                o["key_header"] = json!(h);
            }
            if let Some(x) = &p.key_prefix {
                o["key_prefix"] = json!(x);
            }
            if let Some(d) = &p.deployments {
                o["deployments"] = json!(d);
            }
            if p.internal {
                o["internal"] = json!(true);
            }
            o
        })
        .collect()
}

/// The gateway filter's configuration.
pub fn plugin_config(policy: &Policy, target: Target) -> Value {
    let issuers: Vec<Value> = policy
        .issuers
        .iter()
        .enumerate()
        .map(|(i, iss)| {
            let mut o: Map<String, Value> = iss.fields.clone();
            match &iss.keys {
                Keys::Inline(v) => {
                    o.insert("jwks".into(), v.clone());
                }
                Keys::Uri {
                    url,
                    refresh_secs,
                    timeout_ms,
                    ..
                } => {
                    let mut u = json!({
                        "cluster": jwks_cluster(i, url, target),
                        "path": url.path,
                        "authority": url.authority(),
                    });
                    if let Some(r) = refresh_secs {
                        u["refresh_secs"] = json!(r);
                    }
                    if let Some(t) = timeout_ms {
                        u["timeout_ms"] = json!(t);
                    }
                    o.insert("jwks_uri".into(), u);
                }
            }
            Value::Object(o)
        })
        .collect();
    let g = &policy.gateway;
    let policy_cluster = match target {
        Target::Envoy => POLICY_CLUSTER.to_string(),
        Target::Istio => istio_cluster(&policy.policy_service.url),
    };
    let mut models = policy.models.clone();
    // Without aggregate clusters (Istio's WasmPlugin cannot add them) a fallback chain
    // cannot exist: each route keeps its first provider per API.
    if target == Target::Istio {
        first_provider_per_api(&mut models, policy);
    }
    let mut c = json!({
        "issuers": issuers,
        "uuid_salt_env": g.uuid_salt_env,
        "policy": {
            "cluster": policy_cluster,
            "authority": policy.policy_service.url.authority(),
            "timeout_ms": g.policy_timeout_ms,
            "failure_mode": if g.failure_open { "open" } else { "closed" },
            "lease_slots": policy.policy_service.lease_slots,
            "token_env": policy.policy_service.token_env,
        },
        "providers": providers(policy, target),
        "key_injection": if g.key_injection_upstream && target == Target::Envoy { "upstream" } else { "downstream" },
        "models": models,
        "max_request_body_bytes": g.max_request_body_bytes,
        // Only where the filter's PluginConfig also sets Envoy's
        // `allow_on_headers_stop_iteration` (see `envoy::wasm_filter_config`): no field of a
        // WasmPlugin, TrafficExtension or EnvoyExtensionPolicy can.
        "hold_headers": target == Target::Envoy,
    });
    if let Some(ttl) = policy.policy_service.lease_ttl_ms {
        c["policy"]["lease_ttl_ms"] = json!(ttl);
    }
    if let Some(p) = &policy.prices {
        c["prices"] = p.clone();
    }
    if let Some(u) = &policy.usage {
        c["usage"] = u.clone();
    }
    if let Some(m) = mcp(policy, target) {
        c["mcp"] = m;
    }
    if let Some(g) = &policy.guardrails {
        c["guardrails"] = guardrails(g, target);
    }
    if !policy.versions.policy.is_empty() {
        c["versions"] = json!({"policy": policy.versions.policy});
        if let Some(p) = &policy.versions.price {
            c["versions"]["price"] = json!(p);
        }
    }
    // Every target's access logger reads the published record from filter state.
    if policy.otlp.is_some() {
        c["otlp"] = json!(true);
    }
    if let Some(o) = c.as_object_mut() {
        for (k, v) in &g.passthrough {
            o.insert(k.clone(), v.clone());
        }
    }
    c
}

fn first_provider_per_api(models: &mut Value, policy: &Policy) {
    let kind = |name: &str| {
        policy
            .providers
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.kind.clone())
    };
    let Some(routes) = models.get_mut("routes").and_then(Value::as_array_mut) else {
        return;
    };
    for r in routes {
        let Some(ps) = r.get_mut("providers").and_then(Value::as_array_mut) else {
            continue;
        };
        let mut seen = Vec::new();
        ps.retain(|p| {
            let k = p.as_str().and_then(kind);
            if seen.contains(&k) {
                false
            } else {
                seen.push(k);
                true
            }
        });
    }
}

/// The key injector's configuration (the same .wasm as a router upstream filter).
pub fn injector_config(policy: &Policy) -> Value {
    json!({"inject_keys": {"providers": providers(policy, Target::Envoy)}})
}

/// Every environment variable the filter reads: the salt, the policy service's gateway
/// token, provider keys, MCP servers' credentials, HMAC secrets, the guardrails' mask key
/// and services' keys.
pub fn env_keys(policy: &Policy) -> Vec<String> {
    let mut keys = vec![
        policy.gateway.uuid_salt_env.clone(),
        policy.policy_service.token_env.clone(),
    ];
    for p in &policy.providers {
        keys.push(p.key_env.clone());
    }
    let servers = policy.mcp.iter().flat_map(|m| &m.servers);
    for c in servers.filter_map(|s| s.credential.as_ref()) {
        keys.push(c.env.clone());
    }
    for i in &policy.issuers {
        if let Some(Value::String(h)) = i.fields.get("hmac_secret_env") {
            keys.push(h.clone());
        }
    }
    if let Some(g) = &policy.guardrails {
        keys.push(g.mask_key_env.clone());
        keys.extend(g.services().filter_map(|(_, s)| s.api_key_env.clone()));
    }
    let mut seen = std::collections::HashSet::new();
    keys.retain(|k| seen.insert(k.clone()));
    keys
}

/// The fallback chains the route table implies: two or more providers of one API on a
/// route, in order. Each needs an aggregate cluster named as the filter expects.
pub fn chains(policy: &Policy) -> Vec<Vec<&Provider>> {
    let mut out: Vec<Vec<&Provider>> = Vec::new();
    let routes = policy.models.get("routes").and_then(Value::as_array);
    for route in routes.into_iter().flatten() {
        let names: Vec<&str> = route
            .get("providers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        for kind in ["openai", "anthropic", "gemini", "azure"] {
            let chain: Vec<&Provider> = names
                .iter()
                .filter_map(|n| policy.providers.iter().find(|p| p.name == *n))
                .filter(|p| p.kind == kind)
                .collect();
            let same = |c: &Vec<&Provider>| {
                c.len() == chain.len() && c.iter().zip(&chain).all(|(a, b)| a.name == b.name)
            };
            if chain.len() > 1 && !out.iter().any(same) {
                out.push(chain);
            }
        }
    }
    out
}

pub fn chain_cluster(chain: &[&Provider]) -> String {
    let names: Vec<&str> = chain.iter().map(|p| p.name.as_str()).collect();
    chokepoint_filter::flow::chain_cluster(&names)
}
