//! The Envoy Gateway rendering holds to Envoy Gateway's own naming and filter placement
//! (envoyproxy/gateway v1.9.0; tests/mesh/envoy_gateway.py reproduces it and carries
//! traffic through it): every cluster the filter calls is the cluster of a rule with a
//! backend, the rule the filter's header selects; a last rule enables the filter, which
//! Envoy Gateway adds disabled, for every other request; the usage record reaches the
//! EnvoyProxy's access log, and its gateway pods get each of the filter's variables from
//! the gateway Secret.

use std::path::PathBuf;

use chokepoint_render::envoy::USAGE_LOG_FORMAT;
use chokepoint_render::gateway;
use chokepoint_render::plugin;
use chokepoint_render::policy::Policy;
use serde_json::{json, Value};

fn example() -> Policy {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    Policy::load(&root.join("envoy/examples/policy.yaml")).unwrap_or_else(|e| panic!("{e}"))
}

fn manifests() -> Vec<Value> {
    gateway::manifests(&example())
}

fn one<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let of_kind: Vec<&Value> = docs.iter().filter(|d| d["kind"] == kind).collect();
    assert_eq!(of_kind.len(), 1, "one {kind}");
    of_kind[0]
}

/// Every `cluster` value anywhere in the plugin configuration.
fn clusters_called(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("cluster", Value::String(s)) => out.push(s.clone()),
                    _ => clusters_called(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| clusters_called(x, out)),
        _ => {}
    }
}

#[test]
fn the_filter_calls_only_clusters_envoy_gateway_creates_for_the_route() {
    let docs = manifests();
    let route = one(&docs, "HTTPRoute");
    let ns = route["metadata"]["namespace"].as_str().unwrap();
    let name = route["metadata"]["name"].as_str().unwrap();
    let rules = route["spec"]["rules"].as_array().unwrap();
    // internal/gatewayapi/helpers.go: irRouteDestinationName, one cluster per rule.
    let created: Vec<String> = rules
        .iter()
        .enumerate()
        .filter(|(_, r)| r.get("backendRefs").is_some())
        .map(|(i, _)| format!("httproute/{ns}/{name}/rule/{i}"))
        .collect();
    for (i, r) in rules.iter().enumerate() {
        if r.get("backendRefs").is_some() {
            // The header the filter sets selects the rule whose cluster it names.
            let h = &r["matches"][0]["headers"][0];
            assert_eq!(h["name"], "x-chokepoint-cluster");
            assert_eq!(h["value"], created[i].as_str(), "rule {i}");
        }
    }
    let mut called = Vec::new();
    clusters_called(
        &one(&docs, "EnvoyExtensionPolicy")["spec"]["wasm"][0]["config"],
        &mut called,
    );
    assert!(called.len() >= 3, "providers, JWKS and policy: {called:?}");
    for c in called {
        assert!(
            created.contains(&c),
            "{c} is not a cluster Envoy Gateway creates: {created:?}"
        );
    }
}

#[test]
fn the_last_rule_runs_the_filter_for_every_other_request() {
    let docs = manifests();
    let rules = one(&docs, "HTTPRoute")["spec"]["rules"]
        .as_array()
        .unwrap()
        .clone();
    let last = rules.last().unwrap();
    assert_eq!(last["matches"][0]["path"]["type"], "PathPrefix");
    assert_eq!(last["matches"][0]["path"]["value"], "/");
    assert!(
        last.get("backendRefs").is_none(),
        "no way around the filter: {last}"
    );
    assert!(last["matches"][0].get("headers").is_none());
}

#[test]
fn provider_rules_send_the_providers_own_host_and_drop_the_routing_header() {
    let docs = manifests();
    let rules = one(&docs, "HTTPRoute")["spec"]["rules"]
        .as_array()
        .unwrap()
        .clone();
    let openai = rules
        .iter()
        .find(|r| r["backendRefs"][0]["name"] == "api-openai-com")
        .expect("the OpenAI rule");
    let filters = openai["filters"].as_array().unwrap();
    assert!(filters
        .iter()
        .any(|f| f["urlRewrite"]["hostname"] == "api.openai.com"));
    for r in rules.iter().filter(|r| r.get("backendRefs").is_some()) {
        let removes = r["filters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["requestHeaderModifier"]["remove"][0] == "x-chokepoint-cluster");
        assert!(removes, "{r}");
    }
}

#[test]
fn the_envoy_proxy_writes_the_usage_record() {
    let docs = manifests();
    let settings = one(&docs, "EnvoyProxy")["spec"]["telemetry"]["accessLog"]["settings"].clone();
    let usage = &settings[0];
    assert_eq!(usage["format"]["type"], "Text");
    assert_eq!(usage["format"]["text"], USAGE_LOG_FORMAT);
    assert_eq!(usage["type"], "Route");
    assert_eq!(usage["sinks"][0]["file"]["path"], "/dev/stdout");
}

/// A provider named by host gets an `fqdn` Backend, one named by address an `ip` one
/// (Envoy Gateway refuses an address as an fqdn).
#[test]
fn backends_are_fqdn_or_ip_as_the_provider_is_named() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut policy =
        Policy::load(&root.join("envoy/examples/policy.yaml")).unwrap_or_else(|e| panic!("{e}"));
    let mut ip = policy.providers[0].clone();
    ip.name = "vllm".into();
    ip.url = chokepoint_render::url::Url::parse("http://10.0.0.5:8000/v1").unwrap();
    ip.ca = None;
    policy.providers.push(ip);
    let docs = gateway::manifests(&policy);
    let endpoint = |name: &str| {
        docs.iter()
            .find(|d| d["kind"] == "Backend" && d["metadata"]["name"] == name)
            .map(|d| d["spec"]["endpoints"][0].clone())
            .unwrap_or_else(|| panic!("no Backend {name}"))
    };
    assert_eq!(
        endpoint("10-0-0-5-8000"),
        serde_json::json!({"ip": {"address": "10.0.0.5", "port": 8000}})
    );
    assert_eq!(
        endpoint("api-openai-com"),
        serde_json::json!({"fqdn": {"hostname": "api.openai.com", "port": 443}})
    );
}

/// Envoy Gateway generates the gateway's Deployment: the EnvoyProxy's container `env` is
/// the only way the filter's variables reach it, one `secretKeyRef` each, from the
/// Secret the policy file names.
#[test]
fn the_gateway_pods_read_every_filter_variable_from_the_gateway_secret() {
    for secret in ["chokepoint-gateway-keys", "ai-gateway-env"] {
        let mut policy = example();
        policy.deploy.secrets.gateway_keys = secret.into();
        let docs = gateway::manifests(&policy);
        let provider = &one(&docs, "EnvoyProxy")["spec"]["provider"];
        assert_eq!(provider["type"], "Kubernetes");
        let env = &provider["kubernetes"]["envoyDeployment"]["container"]["env"];
        let want: Vec<Value> = plugin::env_keys(&policy)
            .iter()
            .map(|k| json!({"name": k, "valueFrom": {"secretKeyRef": {"name": secret, "key": k}}}))
            .collect();
        assert_eq!(env, &json!(want), "{secret}");
        let names: Vec<&str> = want.iter().filter_map(|e| e["name"].as_str()).collect();
        for key in [
            "CHOKEPOINT_UUID_SALT",
            "CHOKEPOINT_POLICY_TOKEN",
            "OPENAI_API_KEY",
        ] {
            assert!(names.contains(&key), "{key} in {names:?}");
        }
    }
}

/// Envoy writes its file access logs every `--file-flush-interval-msec`, a flag only (no
/// bootstrap or logger field in Envoy 1.40): the EnvoyProxy's `extraArgs`, which Envoy
/// Gateway appends to its own flags, set it once, whatever the access log is, and set
/// none of the flags Envoy Gateway passes itself (`BuildProxyArgs`), which Envoy would
/// refuse as given twice ("Argument already set!"). tests/envoy_validate.rs runs them
/// through the real Envoy.
#[test]
fn the_envoy_proxy_sets_the_access_log_flush_interval() {
    const ENVOY_GATEWAY_FLAGS: [&str; 9] = [
        "--service-cluster",
        "--service-node",
        "--config-yaml",
        "--log-level",
        "--cpuset-threads",
        "--drain-strategy",
        "--drain-time-s",
        "--concurrency",
        "--component-log-level",
    ];
    for log in ["/dev/stdout", "/var/log/chokepoint/usage.log"] {
        let mut policy = example();
        policy.access_log = log.into();
        let docs = gateway::manifests(&policy);
        let args: Vec<&str> = one(&docs, "EnvoyProxy")["spec"]["extraArgs"]
            .as_array()
            .unwrap_or_else(|| panic!("{log}: no extraArgs"))
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(
            args,
            [
                "--file-flush-interval-msec",
                &chokepoint_render::envoy::FILE_FLUSH_INTERVAL_MSEC.to_string()
            ],
            "{log}"
        );
        assert_eq!(chokepoint_render::envoy::FILE_FLUSH_INTERVAL_MSEC, 200);
        for flag in args.iter().filter(|a| a.starts_with('-')) {
            assert!(
                !ENVOY_GATEWAY_FLAGS.iter().any(|f| flag.starts_with(f)),
                "{log}: {flag} is Envoy Gateway's own"
            );
        }
    }
}
