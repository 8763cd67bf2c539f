//! Named render targets, and the set of example files committed under `envoy/examples/`.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::emit;
use crate::envoy::{self, BootstrapParams, Code, Delivery};
use crate::plugin::{self, Target};
use crate::policy::Policy;

pub const TARGETS: [&str; 9] = [
    "plugin-config",
    "injector-config",
    "bootstrap",
    "ecds",
    "limits",
    "istio-wasmplugin",
    "istio-trafficextension",
    "istio-envoyfilter",
    "envoy-gateway",
];

/// Options only some targets use.
#[derive(Debug, Clone)]
pub struct Options {
    pub listen: String,
    pub port: u16,
    pub admin_port: u16,
    pub wasm: String,
    /// With `bootstrap`: deliver the filter through this ECDS file instead of inline.
    pub ecds: Option<String>,
    /// `version_info` of an ECDS file.
    pub version: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            listen: "127.0.0.1".into(),
            port: 10000,
            admin_port: 9901,
            wasm: "/etc/chokepoint/chokepoint.wasm".into(),
            ecds: None,
            version: "1".into(),
        }
    }
}

const HEADER: &str =
    "# Rendered by `chokepoint-config` from the policy file; edit that, not this.\n";

pub fn render(policy: &Policy, target: &str, o: &Options) -> Result<String, String> {
    let code = Code::Local(o.wasm.clone());
    let json = |v: Value| format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or_default());
    Ok(match target {
        "plugin-config" => json(plugin::plugin_config(policy, Target::Envoy)),
        "injector-config" => json(plugin::injector_config(policy)),
        "limits" => json(Value::Object(policy.limits.clone().into_iter().collect())),
        "bootstrap" => {
            let params = BootstrapParams {
                listen_address: o.listen.clone(),
                gateway_port: o.port,
                admin_address: o.listen.clone(),
                admin_port: o.admin_port,
                code,
                delivery: match &o.ecds {
                    Some(p) => Delivery::EcdsFile(p.clone()),
                    None => Delivery::Inline,
                },
            };
            format!("{HEADER}{}", emit::yaml(&envoy::bootstrap(policy, &params)))
        }
        "ecds" => format!(
            "{HEADER}{}",
            emit::yaml(&envoy::ecds_file(policy, &code, &o.version))
        ),
        "istio-wasmplugin" => {
            let mut docs = vec![crate::istio::wasm_plugin(policy)];
            docs.extend(crate::istio::routing(policy));
            emit::documents(HEADER, &docs)
        }
        "istio-trafficextension" => {
            let mut docs = vec![crate::istio::traffic_extension(policy)];
            docs.extend(crate::istio::routing(policy));
            emit::documents(HEADER, &docs)
        }
        "istio-envoyfilter" => emit::documents(HEADER, &[crate::istio::envoy_filter(policy)]),
        "envoy-gateway" => emit::documents(HEADER, &crate::gateway::manifests(policy)),
        other => {
            return Err(format!(
                "unknown target {other:?}; one of {}",
                TARGETS.join(", ")
            ))
        }
    })
}

/// The committed examples: (path under the examples directory, target).
pub const EXAMPLES: [(&str, &str); 7] = [
    ("envoy/bootstrap.yaml", "bootstrap"),
    ("envoy/plugin-config.json", "plugin-config"),
    ("policy/limits.json", "limits"),
    ("istio/wasmplugin.yaml", "istio-wasmplugin"),
    ("istio/trafficextension.yaml", "istio-trafficextension"),
    ("istio/envoyfilter.yaml", "istio-envoyfilter"),
    ("envoy-gateway/chokepoint.yaml", "envoy-gateway"),
];

/// Renders every example into `dir`, or with `check`, lists the files that differ.
pub fn examples(policy: &Policy, dir: &Path, check: bool) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for (rel, target) in EXAMPLES {
        files.push((dir.join(rel), render(policy, target, &Options::default())?));
    }
    write_or_check(files, check)
}

/// Writes each file, or with `check`, returns the ones whose content differs.
pub fn write_or_check(files: Vec<(PathBuf, String)>, check: bool) -> Result<Vec<PathBuf>, String> {
    let mut drift = Vec::new();
    for (path, text) in files {
        if !check {
            write_atomically(&path, &text)?;
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            drift.push(path);
        }
    }
    Ok(drift)
}

/// Write then rename: Envoy's file watchers (ECDS) see only whole files, and only a
/// rename is noticed at all.
pub fn write_atomically(path: &Path, text: &str) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, text).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}
