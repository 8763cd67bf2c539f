//! What the renderer gives meshes loads in the real Envoy 1.40: the example bootstrap
//! (every provider's real API over TLS), the ECDS variant, and an Envoy configuration
//! assembled from the Istio EnvoyFilter's patches exactly as Istio would insert them.

use std::path::{Path, PathBuf};
use std::process::Command;

use chokepoint_render::bundle::{self, Options};
use chokepoint_render::policy::Policy;
use serde_json::{json, Value};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn wasm() -> String {
    let wasm = root().join("target/wasm32-wasip1/release/chokepoint_filter.wasm");
    assert!(
        wasm.exists(),
        "needs the built .wasm (scripts/test builds it)"
    );
    wasm.canonicalize().unwrap().to_string_lossy().to_string()
}

fn validate(dir: &Path, name: &str, text: &str) {
    let envoy = std::env::var_os("CHOKEPOINT_ENVOY")
        .map_or_else(|| root().join(".venv/bin/envoy"), PathBuf::from);
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    let out = Command::new(&envoy)
        .args(["--mode", "validate", "-c"])
        .arg(&path)
        .args(["--use-dynamic-base-id", "-l", "warn"])
        .env("CHOKEPOINT_UUID_SALT", "validate-salt-0123456789")
        .env(
            "CHOKEPOINT_POLICY_TOKEN",
            "validate-gateway-token-0123456789abcdef",
        )
        .env("OPENAI_API_KEY", "sk-validate")
        .env("OPENAI_BACKUP_API_KEY", "sk-validate")
        .env("ANTHROPIC_API_KEY", "sk-validate")
        .env("GEMINI_API_KEY", "sk-validate")
        .env("AZURE_OPENAI_API_KEY", "sk-validate")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "envoy --mode validate rejected {name}:\n{}\n{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn tmp(test: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("chokepoint-validate-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn example() -> Policy {
    Policy::load(&root().join("envoy/examples/policy.yaml")).unwrap()
}

#[test]
fn example_bootstraps_pass_envoy_validate() {
    let dir = tmp("bootstrap");
    let policy = example();
    let o = Options {
        wasm: wasm(),
        port: 0,
        admin_port: 0,
        ..Options::default()
    };
    let boot = bundle::render(&policy, "bootstrap", &o).unwrap();
    for host in [
        "api.openai.com",
        "api.anthropic.com",
        "generativelanguage.googleapis.com",
        "example-resource.openai.azure.com",
        "login.example.com",
    ] {
        // SNI, and the certificate must name the host (render/tests/upstream_tls.rs
        // checks every target in detail; here Envoy must accept the fields).
        assert!(
            boot.contains(&format!("sni: {host}")) && boot.contains(&format!("exact: {host}")),
            "TLS with SNI and a SAN match for {host}"
        );
    }
    assert!(boot.contains("name: chain_openai__openai-backup"));
    validate(&dir, "inline.yaml", &boot);

    let ecds = dir.join("ecds.yaml");
    std::fs::write(&ecds, bundle::render(&policy, "ecds", &o).unwrap()).unwrap();
    let o = Options {
        ecds: Some(ecds.to_string_lossy().to_string()),
        ..o
    };
    validate(
        &dir,
        "ecds-bootstrap.yaml",
        &bundle::render(&policy, "bootstrap", &o).unwrap(),
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Istio applies each patch to its own generated gateway config; here the same patches
/// go into a minimal gateway, which must load.
#[test]
fn envoy_filter_patches_load_in_envoy() {
    let dir = tmp("envoyfilter");
    let text =
        std::fs::read_to_string(root().join("envoy/examples/istio/envoyfilter.yaml")).unwrap();
    let doc = chokepoint_render::yaml::load(&text).unwrap().value;
    let wasm = wasm();
    let with_wasm = |mut v: Value| {
        let s = v
            .to_string()
            .replace(chokepoint_render::istio::PROXY_WASM_PATH, &wasm);
        v = serde_json::from_str(&s).unwrap();
        v
    };
    let mut clusters = Vec::new();
    let mut filters = Vec::new();
    let mut router = json!({"name": "envoy.filters.http.router", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}});
    let mut vhosts = Vec::new();
    for p in doc["spec"]["configPatches"].as_array().unwrap() {
        let value = with_wasm(p["patch"]["value"].clone());
        match (
            p["applyTo"].as_str().unwrap(),
            p["patch"]["operation"].as_str().unwrap(),
        ) {
            ("CLUSTER", "ADD") => clusters.push(value),
            ("HTTP_FILTER", "INSERT_BEFORE") => filters.push(value),
            ("HTTP_FILTER", "MERGE") => router["typed_config"] = value["typed_config"].clone(),
            ("VIRTUAL_HOST", "ADD") => vhosts.push(value),
            other => panic!("unexpected patch {other:?}"),
        }
    }
    assert!(!clusters.is_empty() && vhosts.len() == 1);
    // Each inserted before the router in turn: the filter, then the response
    // decompressor between it and the router.
    let names: Vec<&str> = filters.iter().filter_map(|f| f["name"].as_str()).collect();
    assert_eq!(
        names,
        [
            chokepoint_render::envoy::FILTER,
            "envoy.filters.http.decompressor"
        ]
    );
    filters.push(router);
    let boot = json!({
        "node": {"id": "istio-gateway", "cluster": "istio"},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {
            "listeners": [{
                "name": "gateway",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "gateway",
                        "route_config": {"name": "gateway", "virtual_hosts": vhosts},
                        "http_filters": filters,
                    }
                }]}],
            }],
            "clusters": clusters,
        }
    });
    validate(&dir, "envoyfilter.json", &boot.to_string());
    let _ = std::fs::remove_dir_all(&dir);
}
