//! What the renderer gives plain Envoy loads in the real Envoy 1.40: the example bootstrap
//! (every provider's real API over TLS) and the ECDS variant. The mesh deliveries are
//! assembled as each mesh builds them and carry traffic in the `mesh` layer
//! (tests/mesh/). The command-line flags the Envoy Gateway rendering adds to its proxies
//! are taken by the real Envoy beside Envoy Gateway's own.

use std::path::{Path, PathBuf};
use std::process::Command;

use chokepoint_render::bundle::{self, Options};
use chokepoint_render::overrides::Override;
use chokepoint_render::policy::Policy;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn wasm() -> String {
    let wasm = root().join("target/wasm/chokepoint_filter.wasm");
    assert!(
        wasm.exists(),
        "needs the built .wasm (scripts/test builds it)"
    );
    wasm.canonicalize().unwrap().to_string_lossy().to_string()
}

/// `envoy --mode validate -c <text> <flags>`; `flags` as a control plane would start it.
fn validate_with(dir: &Path, name: &str, text: &str, flags: &[String]) {
    let envoy = std::env::var_os("CHOKEPOINT_ENVOY")
        .map_or_else(|| root().join(".venv/bin/envoy"), PathBuf::from);
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    let out = Command::new(&envoy)
        .args(["--mode", "validate", "-c"])
        .arg(&path)
        .arg("--use-dynamic-base-id")
        .args(flags)
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
        .env("CHOKEPOINT_MCP_EVERYTHING_TOKEN", "mcp-validate")
        // The example policy's guardrail service key (`acme-dlp`).
        .env("ACME_DLP_KEY", "dlp-validate")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "envoy --mode validate rejected {name}:\n{}\n{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn validate(dir: &Path, name: &str, text: &str) {
    validate_with(dir, name, text, &["-l".into(), "warn".into()]);
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

/// The local policy file, with its MCP server: the route ahead of the catch-all and the
/// server's cluster, its credential set natively (`key_injection: upstream`) or by the
/// filter (`downstream`).
#[test]
fn mcp_bootstraps_pass_envoy_validate() {
    let dir = tmp("mcp");
    for injection in ["upstream", "downstream"] {
        let ov = [
            // The dev JWKS file exists once scripts/run has run; a fetched one renders alike.
            Override::new(
                "issuers[issuer=https://dev.chokepoint.local].jwks",
                serde_json::json!({"uri": "https://dev.chokepoint.local/jwks.json"}),
            ),
            Override::new("gateway.key_injection", injection),
        ];
        let policy = Policy::load_with(&root().join("envoy/chokepoint.yaml"), &ov)
            .unwrap_or_else(|e| panic!("{e}"));
        let o = Options {
            wasm: wasm(),
            port: 0,
            admin_port: 0,
            ..Options::default()
        };
        let boot = bundle::render(&policy, "bootstrap", &o).unwrap();
        assert!(boot.contains("name: mcp_everything"), "{boot}");
        assert_eq!(
            boot.contains("%ENVIRONMENT(CHOKEPOINT_MCP_EVERYTHING_TOKEN)%"),
            injection == "upstream",
            "{boot}"
        );
        validate(&dir, &format!("mcp-{injection}.yaml"), &boot);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Envoy Gateway starts its proxies with its own flags (`BuildProxyArgs` in
/// internal/infrastructure/common/proxy_args.go, v1.9.0: one argument per flag and value)
/// followed by the EnvoyProxy's `extraArgs`; the rendered ones (the access log's flush
/// interval) must be flags Envoy takes, and none Envoy Gateway already gave (Envoy
/// refuses a flag given twice).
#[test]
fn envoy_gateway_extra_args_pass_envoy_validate() {
    let dir = tmp("envoy-gateway-args");
    let mut policy = example();
    policy.access_log = dir.join("usage.log").to_string_lossy().to_string();
    let proxy = chokepoint_render::gateway::manifests(&policy)
        .into_iter()
        .find(|d| d["kind"] == "EnvoyProxy")
        .expect("an EnvoyProxy");
    let extra: Vec<String> = proxy["spec"]["extraArgs"]
        .as_array()
        .expect("extraArgs")
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    assert!(
        extra.iter().any(|a| a == "--file-flush-interval-msec"),
        "{extra:?}"
    );
    let mut flags: Vec<String> = [
        "--service-cluster default",
        "--service-node envoy-default-0",
        "--log-level warn",
        "--cpuset-threads",
        "--drain-strategy immediate",
        "--drain-time-s 60",
    ]
    .map(String::from)
    .to_vec();
    flags.extend(extra);
    let o = Options {
        wasm: wasm(),
        port: 0,
        admin_port: 0,
        ..Options::default()
    };
    let boot = bundle::render(&policy, "bootstrap", &o).unwrap();
    validate_with(&dir, "envoy-gateway-flags.yaml", &boot, &flags);
    let _ = std::fs::remove_dir_all(&dir);
}
