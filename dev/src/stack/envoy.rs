//! The local stack's Envoy configuration, rendered from the policy file by the same
//! renderer `chokepoint-config` uses: the stack only points the file at the processes it
//! started (overrides), so the tests run what a user deploys.
//!
//! The filter's configuration is delivered through an ECDS file: [`Rendered::write_ecds`]
//! re-renders it and renames it over the watched path, and the running Envoy switches
//! to it without a restart or a dropped request.

use std::path::{Path, PathBuf};

use chokepoint_render::bundle::{self, Options};
use chokepoint_render::overrides::Override;
use chokepoint_render::policy::Policy;
use serde_json::json;

/// Where one provider's traffic goes and the key it carries there.
#[derive(Debug, Clone)]
pub struct Route {
    pub base_url: Option<String>,
    pub key: String,
}

/// The SDK variable that moves a provider, from its key variable: `OPENAI_API_KEY` ->
/// `OPENAI_BASE_URL`; Azure's SDKs call it `AZURE_OPENAI_ENDPOINT`.
pub fn base_url_var(key_env: &str) -> String {
    if key_env == "AZURE_OPENAI_API_KEY" {
        return "AZURE_OPENAI_ENDPOINT".into();
    }
    match key_env.strip_suffix("_API_KEY") {
        Some(stem) => format!("{stem}_BASE_URL"),
        None => format!("{key_env}_BASE_URL"),
    }
}

/// Decides a provider's route from the environment (`env` looks a variable up):
/// a base URL variable sends it there with its key (or `none`, for servers that take
/// no key); a key alone keeps the file's base URL (the real provider); neither leaves
/// it on the mock at `mock_url` with `mock_key`.
pub fn route_for(
    key_env: &str,
    env: &dyn Fn(&str) -> Option<String>,
    mock_url: &str,
    mock_key: &str,
) -> Route {
    let key = env(key_env);
    match (env(&base_url_var(key_env)), key) {
        (Some(url), key) => Route {
            base_url: Some(url),
            key: key.unwrap_or_else(|| "none".into()),
        },
        (None, Some(key)) => Route {
            base_url: None,
            key,
        },
        (None, None) => Route {
            base_url: Some(mock_url.to_string()),
            key: mock_key.to_string(),
        },
    }
}

pub struct Inputs<'a> {
    pub policy_file: &'a Path,
    pub run_dir: &'a Path,
    pub overrides: Vec<Override>,
    pub gateway_port: u16,
    pub admin_port: u16,
    pub wasm_path: String,
}

/// The rendered stack configuration.
pub struct Rendered {
    pub policy: Policy,
    pub bootstrap_path: PathBuf,
    pub ecds_path: PathBuf,
    pub limits_path: PathBuf,
    pub wasm_path: String,
    /// The gateway's port, which the filter's configuration names (MCP's resource
    /// metadata URL) when the policy file gives no `mcp.public_url`.
    pub gateway_port: u16,
}

/// The overrides every stack applies: its dev issuer's keys, its policy service, its
/// usage log.
pub fn base_overrides(
    dev_issuer: &str,
    dev_jwks: serde_json::Value,
    policy_url: &str,
    usage_log: &Path,
) -> Vec<Override> {
    vec![
        Override::new(
            format!("issuers[issuer={dev_issuer}].jwks"),
            json!({"inline": dev_jwks}),
        ),
        Override::new("policy_service.url", policy_url),
        Override::new("audit.access_log", usage_log.to_string_lossy().to_string()),
    ]
}

pub fn render(i: &Inputs) -> Result<Rendered, String> {
    let policy = Policy::load_with(i.policy_file, &i.overrides).map_err(|e| e.to_string())?;
    let bootstrap_path = i.run_dir.join("envoy.yaml");
    // A directory of its own: Envoy watches the whole directory, and the logs written
    // next to it would wake the watcher on every line.
    let ecds_dir = i.run_dir.join("ecds");
    std::fs::create_dir_all(&ecds_dir).map_err(|e| format!("{}: {e}", ecds_dir.display()))?;
    let ecds_path = ecds_dir.join("chokepoint.yaml");
    let limits_path = i.run_dir.join("limits.json");
    let rendered = Rendered {
        policy,
        bootstrap_path,
        ecds_path,
        limits_path,
        wasm_path: i.wasm_path.clone(),
        gateway_port: i.gateway_port,
    };
    let o = Options {
        listen: "127.0.0.1".into(),
        port: i.gateway_port,
        admin_port: i.admin_port,
        wasm: i.wasm_path.clone(),
        ecds: Some(rendered.ecds_path.to_string_lossy().to_string()),
        ..Options::default()
    };
    rendered.write_ecds(1)?;
    let boot = bundle::render(&rendered.policy, "bootstrap", &o)?;
    bundle::write_atomically(&rendered.bootstrap_path, &boot)?;
    let limits = bundle::render(&rendered.policy, "limits", &o)?;
    bundle::write_atomically(&rendered.limits_path, &limits)?;
    Ok(rendered)
}

impl Rendered {
    /// Writes the filter's ECDS resource (atomically: Envoy notices only a rename).
    pub fn write_ecds(&self, version: u64) -> Result<(), String> {
        let o = Options {
            wasm: self.wasm_path.clone(),
            version: version.to_string(),
            port: self.gateway_port,
            ..Options::default()
        };
        let text = bundle::render(&self.policy, "ecds", &o)?;
        bundle::write_atomically(&self.ecds_path, &text)
    }
}
