//! The bootstrap with every provider's real API (TLS with SNI and the system CAs) is a
//! configuration Envoy 1.40 accepts, even though nothing here can reach the internet.

use std::path::PathBuf;
use std::process::Command;

use chokepoint_testbed::devtoken::{DevKey, DEFAULT_AUDIENCE, DEFAULT_ISSUER};
use chokepoint_testbed::stack::envoy::{
    bootstrap, plugin_config, EnvoyParams, PluginParams, Upstream,
};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn real_provider_bootstrap_passes_envoy_validate() {
    let envoy = std::env::var_os("CHOKEPOINT_ENVOY")
        .map_or_else(|| root().join(".venv/bin/envoy"), PathBuf::from);
    let wasm = root().join("target/wasm32-wasip1/release/chokepoint_filter.wasm");
    assert!(
        envoy.exists() && wasm.exists(),
        "needs Envoy and the built .wasm (scripts/test builds both)"
    );
    let key = DevKey::generate("validate");
    let plugin = plugin_config(&PluginParams {
        extra_issuers: vec![],
        issuer: DEFAULT_ISSUER,
        audience: DEFAULT_AUDIENCE,
        jwks_json: &key.jwks_json(),
        policy_timeout_ms: 1000,
        max_request_body_bytes: 1 << 20,
        usage_flush_ms: 1000,
        failure_mode: "closed",
    })
    .unwrap();
    let upstream = Upstream::Real {
        azure_host: "example-resource.openai.azure.com".into(),
    };
    let dir = std::env::temp_dir().join(format!("chokepoint-validate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let yaml = bootstrap(&EnvoyParams {
        usage_log: &dir.join("usage.log").to_string_lossy(),
        extra_clusters: "",
        gateway_port: 0,
        admin_port: 0,
        policy_port: 8081,
        upstream: &upstream,
        wasm_path: &wasm.canonicalize().unwrap().to_string_lossy(),
        plugin_config: &plugin,
        max_request_body_bytes: 1 << 20,
    });
    for host in [
        "api.openai.com",
        "api.anthropic.com",
        "generativelanguage.googleapis.com",
        "example-resource.openai.azure.com",
    ] {
        assert!(
            yaml.contains(&format!("sni: {host}")),
            "TLS with SNI for {host}"
        );
    }
    assert!(yaml.contains("trusted_ca: {filename: /etc/ssl/certs/ca-certificates.crt}"));
    assert!(
        yaml.contains("name: chain_openai__openai-backup"),
        "the fallback chain's aggregate cluster"
    );
    let path = dir.join("real.yaml");
    std::fs::write(&path, &yaml).unwrap();
    let out = Command::new(&envoy)
        .args(["--mode", "validate", "-c"])
        .arg(&path)
        .args(["--use-dynamic-base-id", "-l", "warn"])
        .env("CHOKEPOINT_UUID_SALT", "validate-salt-0123456789")
        .env("OPENAI_API_KEY", "sk-validate")
        .env("OPENAI_BACKUP_API_KEY", "sk-validate")
        .env("ANTHROPIC_API_KEY", "sk-validate")
        .env("GEMINI_API_KEY", "sk-validate")
        .env("AZURE_OPENAI_API_KEY", "sk-validate")
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "envoy --mode validate failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
