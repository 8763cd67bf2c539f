//! A policy with guardrails rendered into every target: the filter's `guardrails` object
//! in the shape the filter parses, and a service check's URL as an upstream the way an MCP
//! server's is (a cluster with TLS for the URL's host, an Istio ServiceEntry and
//! DestinationRule, an Envoy Gateway Backend and BackendTLSPolicy), its key's variable
//! wired as a provider key's. Parsed without the filter's judgement
//! ([`Policy::parse_unjudged`]) until the filter in this tree knows `guardrails`.

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::bundle::{self, Options};
use crate::plugin::{self, Target};
use crate::policy::Policy;

const GUARDRAILS: &str = "
guardrails:
  checks:
    - name: secrets
      detect: [secret]
      action: block
    - name: personal-data
      detect: [personal]
      action: flag
      on: [response, request]
    - name: cards
      detect: [payment-card]
      action: mask
      scope: {models: [\"claude-*\"], groups: [support], tenants: [acme]}
    - name: acme-dlp
      service:
        url: https://dlp.example.com/beta/litellm_basic_guardrail_api
        timeout_ms: 500
        failure_mode: closed
        api_key_env: ACME_DLP_KEY
      on: [request, response]
";

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../envoy/examples")
}

/// The mesh example, its own `guardrails` section (if any) replaced by `section`.
fn with(section: &str) -> Policy {
    let text = std::fs::read_to_string(examples().join("policy.yaml")).unwrap();
    let text = match text.find("\nguardrails:\n") {
        Some(i) => {
            let end = text[i + 1..]
                .find("\n\n")
                .map_or(text.len(), |j| i + 1 + j + 1);
            format!("{}{}", &text[..i], &text[end..])
        }
        None => text,
    };
    Policy::parse_unjudged(&format!("{text}{section}"), "policy.yaml", &examples())
        .unwrap_or_else(|e| panic!("{e}"))
}

fn policy() -> Policy {
    with(GUARDRAILS)
}

fn ids(rules: &Value) -> Vec<String> {
    rules
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

/// The checks exactly as the filter parses them; the rules those checks detect, without
/// their examples, compiled by the guard crate as the filter will.
#[test]
fn the_filter_gets_the_checks_and_the_rules_they_use() {
    let g = &plugin::plugin_config(&policy(), Target::Envoy)["guardrails"];
    let everyone = json!({"models": [], "groups": [], "tenants": []});
    assert_eq!(
        g["checks"],
        json!([
            {"name": "secrets", "on": ["request"], "scope": everyone,
             "detect": ["secret"], "action": "block"},
            {"name": "personal-data", "on": ["request", "response"], "scope": everyone,
             "detect": ["personal"], "action": "flag"},
            {"name": "cards", "on": ["request"],
             "scope": {"models": ["claude-*"], "groups": ["support"], "tenants": ["acme"]},
             "detect": ["payment-card"], "action": "mask"},
            {"name": "acme-dlp", "on": ["request", "response"], "scope": everyone,
             "service": {"cluster": "guardrail_acme-dlp", "authority": "dlp.example.com",
                         "path": "/beta/litellm_basic_guardrail_api", "timeout_ms": 500,
                         "failure_mode": "closed", "api_key_env": "ACME_DLP_KEY"}},
        ])
    );
    assert_eq!(
        g["mask_key_env"], "CHOKEPOINT_UUID_SALT",
        "the salt's by default"
    );
    assert_eq!(g["cache_entries"], 4096);
    assert_eq!(g["max_response_scan_bytes"], 4 << 20);
    // Secret and personal: every built-in rule, in the file's order.
    let doc = crate::yaml::load(chokepoint_guard::BUILTIN_YAML).unwrap();
    let builtin: Vec<chokepoint_guard::Rule> = serde_json::from_value(doc.value).unwrap();
    let all: Vec<String> = builtin.iter().map(|r| r.id.clone()).collect();
    assert!(all.len() > 1);
    assert_eq!(ids(&g["rules"]), all);
    let rules: Vec<chokepoint_guard::Rule> = serde_json::from_value(g["rules"].clone()).unwrap();
    for (sent, shipped) in rules.iter().zip(&builtin) {
        assert_eq!(sent.examples, None, "{}", sent.id);
        let mut shipped = shipped.clone();
        shipped.examples = None;
        assert_eq!(*sent, shipped, "the rule as written, less its examples");
    }
    chokepoint_guard::RuleSet::compile(rules).expect("the filter's rules compile");
}

/// Only what some check detects goes to the filter: by rule id, or by category.
#[test]
fn the_filter_gets_only_the_rules_some_check_detects() {
    let card =
        "\nguardrails:\n  checks:\n    - {name: cards, detect: [payment-card], action: mask}\n";
    let g = &plugin::plugin_config(&with(card), Target::Envoy)["guardrails"];
    assert_eq!(ids(&g["rules"]), ["payment-card"]);
    let personal = "\nguardrails:\n  checks:\n    - {name: pd, detect: [personal], action: flag}\n";
    let g = &plugin::plugin_config(&with(personal), Target::Envoy)["guardrails"];
    let cats: Vec<&Value> = g["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["category"])
        .collect();
    assert!(
        !cats.is_empty() && cats.iter().all(|c| *c == "personal"),
        "{cats:?}"
    );
    assert!(ids(&g["rules"]).contains(&"email-address".to_string()));
    let service = "\nguardrails:\n  mask_key_env: GUARD_MASK_KEY\n  checks:\n    - name: dlp\n      service: {url: http://10.0.0.9:8080/check}\n";
    let p = with(service);
    let g = &plugin::plugin_config(&p, Target::Envoy)["guardrails"];
    assert_eq!(g["rules"], json!([]));
    assert_eq!(g["mask_key_env"], "GUARD_MASK_KEY");
    assert_eq!(
        g["checks"][0]["service"],
        json!({"cluster": "guardrail_dlp", "authority": "10.0.0.9:8080", "path": "/check",
               "timeout_ms": 500, "failure_mode": "closed"})
    );
    // No section, no key.
    let plain = with("");
    assert!(plugin::plugin_config(&plain, Target::Envoy)
        .get("guardrails")
        .is_none());
}

fn render(policy: &Policy, target: &str) -> String {
    bundle::render(policy, target, &Options::default()).unwrap_or_else(|e| panic!("{target}: {e}"))
}

fn docs(policy: &Policy, target: &str) -> Vec<Value> {
    render(policy, target)
        .split("\n---\n")
        .filter_map(|d| crate::yaml::load(d).ok())
        .map(|d| d.value)
        .filter(|v| v.is_object())
        .collect()
}

fn find<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {list}"))
}

fn kind<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

/// The cluster a bootstrap (and Istio's EnvoyFilter) gives the service: its host and
/// port, TLS that names the host and verifies it against the system CAs.
fn assert_service_cluster(c: &Value) {
    assert_eq!(c["type"], "STRICT_DNS");
    assert_eq!(
        c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
            ["socket_address"],
        json!({"address": "dlp.example.com", "port_value": 443})
    );
    let tls = &c["transport_socket"]["typed_config"];
    assert_eq!(tls["sni"], "dlp.example.com");
    assert_eq!(
        tls["common_tls_context"]["validation_context"],
        json!({"trusted_ca": {"filename": crate::tls::SYSTEM_CA_BUNDLE},
               "match_typed_subject_alt_names": [{"san_type": "DNS", "matcher": {"exact": "dlp.example.com"}}]})
    );
    // Only the filter's callouts use it: nothing but the codec in front of it.
    assert!(c.get("typed_extension_protocol_options").is_none(), "{c}");
}

#[test]
fn envoy_and_istio_envoyfilter_add_the_services_cluster() {
    let p = policy();
    let boot = crate::yaml::load(&render(&p, "bootstrap")).unwrap().value;
    assert_service_cluster(find(
        &boot["static_resources"]["clusters"],
        "guardrail_acme-dlp",
    ));
    // No route names it: the filter's routing header never carries a guardrail cluster.
    let text = render(&p, "bootstrap");
    assert_eq!(text.matches("guardrail_acme-dlp").count(), 3, "{text}");
    let d = docs(&p, "istio-envoyfilter");
    let patches = d[0]["spec"]["configPatches"].as_array().unwrap();
    let cluster = patches
        .iter()
        .filter(|x| x["applyTo"] == "CLUSTER")
        .map(|x| &x["patch"]["value"])
        .find(|c| c["name"] == "guardrail_acme-dlp")
        .expect("the service's cluster");
    assert_service_cluster(cluster);
}

/// Istio's WasmPlugin and TrafficExtension reach the service through Istio's own cluster:
/// a ServiceEntry with TLS origination that verifies its name, and no route to it.
#[test]
fn istio_reaches_the_service_through_a_service_entry() {
    let p = policy();
    for target in ["istio-wasmplugin", "istio-trafficextension"] {
        let d = docs(&p, target);
        let spec = &d[0]["spec"];
        let (config, env) = if target == "istio-wasmplugin" {
            (&spec["pluginConfig"], &spec["vmConfig"]["env"])
        } else {
            (
                &spec["wasm"]["pluginConfig"],
                &spec["wasm"]["vmConfig"]["env"],
            )
        };
        assert_eq!(
            config["guardrails"]["checks"][3]["service"]["cluster"],
            "outbound|443||dlp.example.com",
            "{target}"
        );
        assert!(
            env.as_array()
                .unwrap()
                .contains(&json!({"name": "ACME_DLP_KEY", "valueFrom": "HOST"})),
            "{target}: {env}"
        );
        let se = kind(&d, "ServiceEntry", "dlp-example-com");
        assert_eq!(
            se["spec"]["ports"],
            json!([{"number": 443, "name": "http-guardrail", "protocol": "HTTP"}])
        );
        assert_eq!(se["spec"]["exportTo"], json!(["."]));
        let dr = kind(&d, "DestinationRule", "dlp-example-com");
        assert_eq!(
            dr["spec"]["trafficPolicy"]["tls"],
            json!({"mode": "SIMPLE", "sni": "dlp.example.com", "subjectAltNames": ["dlp.example.com"]})
        );
        let vs = kind(&d, "VirtualService", "chokepoint");
        assert!(
            !vs.to_string().contains("dlp.example.com"),
            "{target}: clients are never routed to the service: {vs}"
        );
    }
}

/// Envoy Gateway: a rule (how it makes the cluster) that the filter's callout names, a
/// Backend and a BackendTLSPolicy verifying the host, and the key from the gateway
/// Secret.
#[test]
fn envoy_gateway_reaches_the_service_through_a_backend() {
    let p = policy();
    let d = docs(&p, "envoy-gateway");
    let wasm = &kind(&d, "EnvoyExtensionPolicy", "chokepoint")["spec"]["wasm"][0];
    let cluster = wasm["config"]["guardrails"]["checks"][3]["service"]["cluster"]
        .as_str()
        .unwrap();
    assert!(
        cluster.starts_with("httproute/chokepoint/chokepoint/rule/"),
        "{cluster}"
    );
    let route = kind(&d, "HTTPRoute", "chokepoint");
    let rule = route["spec"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["matches"][0]["headers"][0]["value"] == cluster)
        .unwrap_or_else(|| panic!("no rule for {cluster}"));
    assert_eq!(
        rule["backendRefs"],
        json!([{"group": "gateway.envoyproxy.io", "kind": "Backend", "name": "dlp-example-com", "port": 443}])
    );
    // A callout names its own authority: no Host rewrite, as for JWKS hosts.
    assert_eq!(rule["filters"].as_array().unwrap().len(), 1, "{rule}");
    let backend = kind(&d, "Backend", "dlp-example-com");
    assert_eq!(
        backend["spec"]["endpoints"],
        json!([{"fqdn": {"hostname": "dlp.example.com", "port": 443}}])
    );
    assert_eq!(backend["spec"]["tls"]["sni"], "dlp.example.com");
    let policy = kind(&d, "BackendTLSPolicy", "dlp-example-com");
    assert_eq!(policy["spec"]["validation"]["hostname"], "dlp.example.com");
    assert!(wasm["env"]["hostKeys"]
        .as_array()
        .unwrap()
        .contains(&json!("ACME_DLP_KEY")));
    let proxy = kind(&d, "EnvoyProxy", "chokepoint");
    let env = &proxy["spec"]["provider"]["kubernetes"]["envoyDeployment"]["container"]["env"];
    assert!(
        env.as_array()
            .unwrap()
            .contains(&crate::kubernetes::secrets::env_from_secret(
                "ACME_DLP_KEY",
                "chokepoint-gateway-keys",
                "ACME_DLP_KEY"
            )),
        "{env}"
    );
}

/// The service's key and the mask key are variables of Envoy's environment, named
/// wherever provider keys are: the VM's host_env_keys, compose's environment, the
/// gateway Secret's keys. Never a value.
#[test]
fn the_keys_are_variables_of_envoys_environment() {
    let section = GUARDRAILS.replace(
        "\n  checks:\n",
        "\n  mask_key_env: GUARD_MASK_KEY\n  checks:\n",
    );
    let p = with(&section);
    let keys = plugin::env_keys(&p);
    for k in ["ACME_DLP_KEY", "GUARD_MASK_KEY", "CHOKEPOINT_UUID_SALT"] {
        assert!(keys.contains(&k.to_string()), "{k}: {keys:?}");
    }
    let boot = crate::yaml::load(&render(&p, "bootstrap")).unwrap().value;
    let hcm =
        &boot["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
    let wasm = find(&hcm["http_filters"], "chokepoint");
    let host_keys =
        &wasm["typed_config"]["config"]["vm_config"]["environment_variables"]["host_env_keys"];
    assert!(
        host_keys
            .as_array()
            .unwrap()
            .contains(&json!("ACME_DLP_KEY")),
        "{host_keys}"
    );
    assert!(
        host_keys
            .as_array()
            .unwrap()
            .contains(&json!("GUARD_MASK_KEY")),
        "{host_keys}"
    );
    let compose = crate::compose::compose_file(&p);
    assert!(
        compose.contains("ACME_DLP_KEY: ${ACME_DLP_KEY:?set ACME_DLP_KEY}"),
        "{compose}"
    );
    let secrets = crate::kubernetes::secrets::required(&p);
    let gateway = secrets.last().unwrap();
    assert!(gateway.keys.contains(&"ACME_DLP_KEY".to_string()));
}
