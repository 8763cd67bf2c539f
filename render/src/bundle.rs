//! Named render targets, and the set of example files committed under `envoy/examples/`.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::emit;
use crate::envoy::{self, BootstrapParams, Code, Delivery};
use crate::plugin::{self, Target};
use crate::policy::Policy;

pub const TARGETS: [&str; 18] = [
    "plugin-config",
    "injector-config",
    "bootstrap",
    "ecds",
    "limits",
    "policy-identity",
    "istio-wasmplugin",
    "istio-trafficextension",
    "istio-envoyfilter",
    "istio-meshconfig",
    "istio-networkpolicy",
    "istio-gateway-keys",
    "envoy-gateway",
    "envoy-gateway-networkpolicy",
    "istio-lockdown",
    "envoy-gateway-lockdown",
    "kubernetes-policy",
    "kubernetes-redis",
];

/// The targets for a mesh's gateway, which clients reach at a URL the render cannot
/// know.
const MESH_TARGETS: [&str; 4] = [
    "istio-wasmplugin",
    "istio-trafficextension",
    "istio-envoyfilter",
    "envoy-gateway",
];

/// A mesh gateway's MCP servers need `mcp.public_url`: the protected resource metadata
/// and every 401's `WWW-Authenticate` name it, and a guess would send clients elsewhere.
fn mcp_public_url_set(policy: &Policy, target: &str) -> Result<(), String> {
    match &policy.mcp {
        Some(m) if m.public_url.is_none() => Err(format!(
            "{target}: mcp.public_url is required: the MCP servers' protected resource \
             metadata (RFC 9728) and 401 answers name the gateway's URL as clients reach \
             it (e.g. https://{})",
            policy
                .deploy
                .hostnames
                .first()
                .map_or("gateway.example.com", String::as_str)
        )),
        _ => Ok(()),
    }
}

/// Options only some targets use.
#[derive(Debug, Clone)]
pub struct Options {
    /// The gateway listener's address.
    pub listen: String,
    pub port: u16,
    pub admin_port: u16,
    /// Where Envoy's admin interface listens (`IP` or `IP:PORT`); loopback when unset,
    /// whatever `listen` says.
    pub admin_listen: Option<String>,
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
            admin_listen: None,
            wasm: "/etc/chokepoint/chokepoint.wasm".into(),
            ecds: None,
            version: "1".into(),
        }
    }
}

/// Where Envoy's admin interface listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminAddress {
    pub ip: std::net::IpAddr,
    pub port: u16,
}

impl Options {
    /// The admin interface's address: `admin_listen` (an IP, with `admin_port`, or
    /// `IP:PORT`), else loopback. Never taken from `listen`: the admin interface can shut
    /// Envoy down, change its runtime and turn on debug logs that show tokens.
    pub fn admin(&self) -> Result<AdminAddress, String> {
        let loopback = std::net::IpAddr::from([127, 0, 0, 1]);
        let Some(given) = &self.admin_listen else {
            return Ok(AdminAddress {
                ip: loopback,
                port: self.admin_port,
            });
        };
        if let Ok(addr) = given.parse::<std::net::SocketAddr>() {
            return Ok(AdminAddress {
                ip: addr.ip(),
                port: addr.port(),
            });
        }
        given
            .parse::<std::net::IpAddr>()
            .map(|ip| AdminAddress {
                ip,
                port: self.admin_port,
            })
            .map_err(|_| format!("--admin-listen {given:?}: not an IP address or IP:PORT"))
    }
}

impl AdminAddress {
    /// What to tell the operator when the admin interface is reachable from elsewhere.
    pub fn warning(&self) -> Option<String> {
        (!self.ip.is_loopback()).then(|| {
            format!(
                "Envoy's admin interface will listen on {}:{}, reachable from other hosts: \
                 anyone who reaches it can shut Envoy down, change its runtime and turn on \
                 debug logs that show tokens. Keep it on loopback unless a firewall guards it.",
                self.ip, self.port
            )
        })
    }
}

const HEADER: &str =
    "# Rendered by `chokepoint-config` from the policy file; edit that, not this.\n";

pub fn render(policy: &Policy, target: &str, o: &Options) -> Result<String, String> {
    let listener = policy.with_listener_url(o.port);
    let policy = if MESH_TARGETS.contains(&target) {
        mcp_public_url_set(policy, target)?;
        // The EnvoyFilter variant adds a cluster per server, as the bootstrap does; the
        // others route through the mesh's per-host ones.
        if target != "istio-envoyfilter" {
            policy.mcp_hosts_apart(target)?;
        }
        policy
    } else {
        &listener
    };
    let code = Code::Local(o.wasm.clone());
    let json = |v: Value| format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or_default());
    Ok(match target {
        "plugin-config" => json(plugin::plugin_config(policy, Target::Envoy)),
        "injector-config" => json(plugin::injector_config(policy)),
        "limits" => json(Value::Object(policy.limits.clone().into_iter().collect())),
        "policy-identity" => json(crate::identity::identity_file(policy)),
        "bootstrap" => {
            let admin = o.admin()?;
            let params = BootstrapParams {
                listen_address: o.listen.clone(),
                gateway_port: o.port,
                admin_address: admin.ip.to_string(),
                admin_port: admin.port,
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
            docs.push(crate::istio::telemetry(policy));
            emit::documents(HEADER, &docs)
        }
        "istio-trafficextension" => {
            let mut docs = vec![crate::istio::traffic_extension(policy)];
            docs.extend(crate::istio::routing(policy));
            docs.push(crate::istio::telemetry(policy));
            emit::documents(HEADER, &docs)
        }
        "istio-envoyfilter" => emit::documents(
            HEADER,
            &[
                crate::istio::envoy_filter(policy),
                crate::istio::telemetry(policy),
            ],
        ),
        "istio-meshconfig" => emit::documents(HEADER, &[crate::istio::mesh_config(policy)]),
        "istio-networkpolicy" => {
            emit::documents(HEADER, &[crate::network_policy::for_istio(policy)])
        }
        // One patch, not a manifest: no `---`, which `kubectl patch --patch-file` reads.
        "istio-gateway-keys" => {
            use crate::kubernetes::secrets;
            format!(
                "{HEADER}{}{}",
                secrets::istio_gateway_patch_header(policy),
                emit::yaml(&secrets::istio_gateway_patch(policy))
            )
        }
        "envoy-gateway" => emit::documents(HEADER, &crate::gateway::manifests(policy)),
        "envoy-gateway-networkpolicy" => {
            emit::documents(HEADER, &[crate::network_policy::for_envoy_gateway(policy)])
        }
        "istio-lockdown" => emit::documents(HEADER, &crate::lockdown::istio::manifests(policy)?),
        "envoy-gateway-lockdown" => emit::documents(
            HEADER,
            &crate::lockdown::network_policy::for_envoy_gateway(policy)?,
        ),
        "kubernetes-policy" => emit::documents(
            &format!("{HEADER}{}", crate::kubernetes::secrets::header(policy)),
            &crate::kubernetes::policy_service::manifests(policy)?,
        ),
        "kubernetes-redis" => {
            let docs = crate::kubernetes::redis::manifests(policy);
            let header = if docs.is_empty() {
                format!("{HEADER}{EXTERNAL_REDIS}")
            } else {
                HEADER.to_string()
            };
            emit::documents(&header, &docs)
        }
        other => {
            return Err(format!(
                "unknown target {other:?}; one of {}",
                TARGETS.join(", ")
            ))
        }
    })
}

const EXTERNAL_REDIS: &str =
    "# deploy.redis.external: Redis is yours, so nothing is rendered for it; the\n\
     # policy service's Deployment (kubernetes-policy) carries the connection.\n";

/// The committed examples: (path under the examples directory, target).
pub const EXAMPLES: [(&str, &str); 16] = [
    ("envoy/bootstrap.yaml", "bootstrap"),
    ("envoy/plugin-config.json", "plugin-config"),
    ("policy/limits.json", "limits"),
    ("policy/identity.json", "policy-identity"),
    ("istio/wasmplugin.yaml", "istio-wasmplugin"),
    ("istio/trafficextension.yaml", "istio-trafficextension"),
    ("istio/envoyfilter.yaml", "istio-envoyfilter"),
    ("istio/meshconfig.yaml", "istio-meshconfig"),
    ("istio/networkpolicy.yaml", "istio-networkpolicy"),
    ("istio/gateway-keys-patch.yaml", "istio-gateway-keys"),
    ("envoy-gateway/chokepoint.yaml", "envoy-gateway"),
    (
        "envoy-gateway/networkpolicy.yaml",
        "envoy-gateway-networkpolicy",
    ),
    ("istio/lockdown.yaml", "istio-lockdown"),
    ("envoy-gateway/lockdown.yaml", "envoy-gateway-lockdown"),
    ("kubernetes/policy-service.yaml", "kubernetes-policy"),
    ("kubernetes/redis.yaml", "kubernetes-redis"),
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

#[cfg(test)]
mod tests {
    use super::*;

    use crate::policy::example;

    /// Envoy's admin interface stays on loopback whatever the gateway listens on, unless
    /// `admin_listen` says otherwise; then a non-loopback address is warned about.
    #[test]
    fn the_admin_interface_stays_on_loopback_unless_told() {
        let policy = example();
        // (listen, admin_listen, the admin address rendered, warned)
        let cases = [
            ("0.0.0.0", None, Ok(("127.0.0.1", 9901)), false),
            ("127.0.0.1", None, Ok(("127.0.0.1", 9901)), false),
            ("0.0.0.0", Some("0.0.0.0:9901"), Ok(("0.0.0.0", 9901)), true),
            ("0.0.0.0", Some("10.0.0.5"), Ok(("10.0.0.5", 9901)), true),
            (
                "0.0.0.0",
                Some("127.0.0.1:9902"),
                Ok(("127.0.0.1", 9902)),
                false,
            ),
            ("::", Some("[::1]:9901"), Ok(("::1", 9901)), false),
            ("::", Some("[::]:9901"), Ok(("::", 9901)), true),
            (
                "0.0.0.0",
                Some("localhost:9901"),
                Err("not an IP address"),
                false,
            ),
            (
                "0.0.0.0",
                Some("0.0.0.0:99999"),
                Err("not an IP address"),
                false,
            ),
        ];
        for (listen, admin_listen, want, warned) in cases {
            let o = Options {
                listen: listen.into(),
                admin_listen: admin_listen.map(str::to_owned),
                ..Options::default()
            };
            let what = format!("--listen {listen} --admin-listen {admin_listen:?}");
            let rendered = render(&policy, "bootstrap", &o);
            match want {
                Ok((ip, port)) => {
                    let text = rendered.unwrap();
                    let doc = crate::yaml::load(&text).unwrap().value;
                    let admin = &doc["admin"]["address"]["socket_address"];
                    assert_eq!(admin["address"], ip, "{what}");
                    assert_eq!(admin["port_value"], port, "{what}");
                    let gateway = &doc["static_resources"]["listeners"][0]["address"];
                    assert_eq!(gateway["socket_address"]["address"], listen, "{what}");
                    let warning = o.admin().unwrap().warning();
                    assert_eq!(warning.is_some(), warned, "{what}: {warning:?}");
                    if let Some(w) = warning {
                        assert!(
                            w.contains(&format!("{ip}:{port}")) && w.contains("tokens"),
                            "{w}"
                        );
                    }
                }
                Err(message) => {
                    let err = rendered.unwrap_err();
                    assert!(err.contains(message), "{what}: {err}");
                }
            }
        }
    }
}
