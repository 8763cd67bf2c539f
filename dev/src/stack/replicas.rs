//! Several gateway Envoys behind a plain Envoy balancing them, as a deployment runs
//! replicas behind its load balancer. Each replica renders the same policy file with the
//! same overrides, but for its own access log, and listens on its own gateway and admin
//! ports; all share the policy service and Redis. Replica 0 is the stack's own Envoy
//! (its files in the run directory, as with one replica); replica `i` keeps its files in
//! `replica-<i>/`.
//!
//! The balancer sends each request to the next replica (round robin), checks each one's
//! admin `/ready` every second and ejects one it cannot connect to; it retries only a
//! request that could not connect, which never reached a replica (a retry of anything
//! else could charge twice).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use chokepoint_render::overrides::Override;
use serde_json::{json, Value};

use super::process::{self, Managed};
use super::{
    await_admin_ready, await_request, envoy, gateway_port, port_of, Stack, READINESS_SUBJECT,
};
use crate::devtoken::TokenSpec;

/// A gateway replica past the first.
pub struct Replica {
    pub dir: PathBuf,
    pub gateway_url: String,
    pub admin_url: String,
    pub(super) rendered: envoy::Rendered,
    pub(super) proc: Option<Managed>,
}

/// The balancer in front of the replicas.
pub struct Front {
    pub admin_url: String,
    /// Replica 0's own gateway listener (the stack's `gateway_url` is the balancer's).
    pub first_replica_url: String,
    pub(super) proc: Managed,
}

impl Stack {
    /// Starts replicas 1.. and the balancer in front of them all, which becomes the
    /// stack's gateway.
    pub(super) async fn start_replicas(&mut self) -> Result<(), String> {
        for i in 1..self.opts.gateway_replicas {
            let r = self.start_replica(i).await?;
            self.replicas.push(r);
        }
        self.start_front().await
    }

    async fn start_replica(&self, index: usize) -> Result<Replica, String> {
        let dir = self.opts.run_dir.join(format!("replica-{index}"));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let (mut overrides, env) = self.overrides()?;
        overrides.push(Override::new(
            "audit.access_log",
            dir.join("usage.log").to_string_lossy().to_string(),
        ));
        let o = &self.opts;
        let wasm = o
            .wasm
            .canonicalize()
            .map_err(|e| format!("{}: {e}", o.wasm.display()))?;
        let rendered = envoy::render(&envoy::Inputs {
            policy_file: &o.policy_file,
            run_dir: &dir,
            overrides,
            gateway_port: 0,
            admin_port: 0,
            wasm_path: wasm.to_string_lossy().to_string(),
        })?;
        let token_env = rendered.policy.policy_service.token_env.clone();
        let admin_file = dir.join("envoy-admin.addr");
        let _ = std::fs::remove_file(&admin_file);
        let cmd = self.envoy_command(&rendered.bootstrap_path, &admin_file, &token_env, env);
        let name = format!("envoy replica {index}");
        let (proc, admin_url, gateway_url) = self
            .spawn_until_serving(&name, cmd, &dir, &admin_file)
            .await?;
        Ok(Replica {
            dir,
            gateway_url,
            admin_url,
            rendered,
            proc: Some(proc),
        })
    }

    /// Starts an Envoy (`cmd`, logging to `dir/envoy.log`, its admin address written to
    /// `admin_file`) and waits, for at most 30 s, until it serves a real request through
    /// its listener; its process, admin URL and listener URL.
    async fn spawn_until_serving(
        &self,
        name: &str,
        cmd: Command,
        dir: &Path,
        admin_file: &Path,
    ) -> Result<(Managed, String, String), String> {
        let mut proc =
            Managed::spawn(name, cmd, &dir.join("envoy.log")).map_err(|e| e.to_string())?;
        let admin = process::wait_for_file(admin_file, &mut proc, Duration::from_secs(30))?;
        let admin_url = format!("http://{admin}");
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        await_admin_ready(&client, &admin_url, &mut || alive(&mut proc, deadline)).await?;
        let port = gateway_port(&client, &admin_url).await?;
        let url = format!("http://127.0.0.1:{port}");
        let token = self.token(&TokenSpec::new(READINESS_SUBJECT));
        let ready = await_request(&client, &url, &token, deadline, &mut || {
            alive(&mut proc, deadline)
        })
        .await;
        ready.map_err(|e| format!("{name}: {e}\n{}", proc.log_tail(6000)))?;
        Ok((proc, admin_url, url))
    }

    async fn start_front(&mut self) -> Result<(), String> {
        let dir = self.opts.run_dir.join("front");
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut members = vec![(port_of(&self.gateway_url)?, port_of(&self.admin_url)?)];
        for r in &self.replicas {
            members.push((port_of(&r.gateway_url)?, port_of(&r.admin_url)?));
        }
        let config = dir.join("front.json");
        let text =
            serde_json::to_string_pretty(&front_bootstrap(self.opts.ports.gateway, &members))
                .map_err(|e| e.to_string())?;
        chokepoint_render::bundle::write_atomically(&config, &text)?;
        let admin_file = dir.join("envoy-admin.addr");
        let _ = std::fs::remove_file(&admin_file);
        let mut cmd = Command::new(&self.opts.envoy);
        cmd.arg("-c")
            .arg(&config)
            .arg("--admin-address-path")
            .arg(&admin_file)
            .arg("--use-dynamic-base-id")
            .args(["--concurrency", "1", "--log-level", "warn"]);
        let (proc, admin_url, front_url) = self
            .spawn_until_serving("front balancer", cmd, &dir, &admin_file)
            .await?;
        self.front = Some(Front {
            admin_url,
            first_replica_url: std::mem::replace(&mut self.gateway_url, front_url),
            proc,
        });
        Ok(())
    }

    /// How many gateway replicas run (1 without a balancer).
    pub fn replica_count(&self) -> usize {
        1 + self.replicas.len()
    }

    /// Replica `index`'s own gateway listener (0 is the stack's first Envoy).
    pub fn replica_url(&self, index: usize) -> Option<String> {
        match (index, &self.front) {
            (0, Some(f)) => Some(f.first_replica_url.clone()),
            (0, None) => Some(self.gateway_url.clone()),
            (i, _) => self.replicas.get(i - 1).map(|r| r.gateway_url.clone()),
        }
    }

    /// Every replica's access log (one JSON usage record per line), replica 0's first.
    pub fn usage_logs(&self) -> Vec<PathBuf> {
        std::iter::once(self.usage_log())
            .chain(self.replicas.iter().map(|r| r.dir.join("usage.log")))
            .collect()
    }

    /// Kills replica `index` outright (SIGKILL), as a crash would: what its filter
    /// held in memory (leases, queued records) is lost.
    pub fn kill_replica(&mut self, index: usize) {
        let proc = match index {
            0 => self.envoy.as_mut(),
            i => self.replicas.get_mut(i - 1).and_then(|r| r.proc.as_mut()),
        };
        if let Some(p) = proc {
            p.kill();
        }
    }
}

/// Why to stop waiting for a process to be ready: it exited, or time is up.
fn alive(proc: &mut Managed, deadline: Instant) -> Result<(), String> {
    if let Some(status) = proc.exited() {
        return Err(format!(
            "{} exited ({status})\n{}",
            proc.name,
            proc.log_tail(6000)
        ));
    }
    if Instant::now() > deadline {
        return Err(format!(
            "{} not ready in time\n{}",
            proc.name,
            proc.log_tail(6000)
        ));
    }
    Ok(())
}

/// A plain Envoy on `port` (0: any) balancing the replicas, each `(gateway port, admin
/// port)`, round robin, health-checked on their admin `/ready`.
fn front_bootstrap(port: u16, members: &[(u16, u16)]) -> Value {
    let endpoints: Vec<Value> = members
        .iter()
        .map(|(gateway, admin)| {
            json!({"endpoint": {
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": gateway}},
                "health_check_config": {"port_value": admin},
            }})
        })
        .collect();
    let hcm = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "front",
        "codec_type": "AUTO",
        "route_config": {"name": "front", "virtual_hosts": [{
            "name": "replicas", "domains": ["*"],
            "routes": [{"match": {"prefix": "/"}, "route": {
                "cluster": "replicas",
                // Streams run as long as the provider's; the replicas bound them.
                "timeout": "0s",
                "retry_policy": {"retry_on": "connect-failure", "num_retries": 1},
            }}],
        }]},
        "http_filters": [{
            "name": "envoy.filters.http.router",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
        }],
    });
    json!({
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {
            "listeners": [{
                "name": "gateway",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": hcm,
                }]}],
            }],
            "clusters": [{
                "name": "replicas",
                "type": "STATIC",
                "connect_timeout": "1s",
                "lb_policy": "ROUND_ROBIN",
                // A replica taken out leaves the host set at once (Envoy merges host
                // updates for 1 s by default).
                "common_lb_config": {"update_merge_window": "0s"},
                "load_assignment": {"cluster_name": "replicas", "endpoints": [{"lb_endpoints": endpoints}]},
                "health_checks": [{
                    "timeout": "1s",
                    "interval": "1s",
                    "no_traffic_interval": "1s",
                    "unhealthy_threshold": 2,
                    "healthy_threshold": 1,
                    "http_health_check": {"path": "/ready"},
                }],
                "outlier_detection": {
                    "split_external_local_origin_errors": true,
                    "consecutive_local_origin_failure": 1,
                    "interval": "1s",
                    "base_ejection_time": "5s",
                    "max_ejection_percent": 50,
                },
            }],
        },
    })
}
