//! The whole gateway on one machine: Redis, the policy service, the mock provider and
//! Envoy with the filter, each a real process on loopback. `chokepoint-dev` (behind
//! `scripts/run`) and the end-to-end tests both start it through [`Stack::start`], so the
//! tests exercise exactly what a user runs.

pub mod envoy;
pub mod mcp;
pub mod process;
pub mod redis;
pub mod replicas;
pub mod sentinel;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::devtoken::{DevKey, TokenSpec};
use chokepoint_render::overrides::Override;
use process::Managed;
pub use redis::RedisMode;

/// Ports to listen on; 0 lets the OS choose (tests), fixed ones suit a dev machine.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ports {
    pub gateway: u16,
    /// Envoy's admin interface.
    pub admin: u16,
    /// The policy service's gateway listener (authorize, usage).
    pub policy: u16,
    /// The policy service's admin listener (admin API, metrics).
    pub policy_admin: u16,
    pub mock: u16,
}

/// A second issuer whose keys the gateway fetches from a mock identity provider.
#[derive(Debug, Clone)]
pub struct IdpSetup {
    pub issuer: String,
    pub refresh_secs: u64,
}

pub struct StackOptions {
    pub idp: Option<IdpSetup>,
    /// The key the mock provider accepts (for every provider API it serves).
    pub mock_key: String,
    /// The key of the backup OpenAI-compatible mock (second in the fallback chain).
    pub backup_key: String,
    /// Bearer token for the policy service's admin API.
    pub admin_token: String,
    /// The gateway token the policy service demands on authorize and usage calls,
    /// generated per run.
    pub policy_token: String,
    /// What Envoy's environment holds under the filter's token variable: the policy
    /// service's token (the default), nothing (the filter must refuse to load) or
    /// another value (the service must refuse the gateway).
    pub envoy_policy_token: Option<String>,
    pub usage_flush_ms: u64,
    /// Let requests through when the policy service cannot answer.
    pub fail_open: bool,
    pub root: PathBuf,
    pub run_dir: PathBuf,
    pub bin_dir: PathBuf,
    pub envoy: PathBuf,
    pub wasm: PathBuf,
    pub ports: Ports,
    pub redis: RedisMode,
    /// The policy file the stack renders (`envoy/chokepoint.yaml` unless
    /// `CHOKEPOINT_CONFIG` says otherwise).
    pub policy_file: PathBuf,
    /// The providers' SDK variables (`OPENAI_API_KEY`, `OPENAI_BASE_URL`, ...) as the
    /// environment would give them: a provider without any stays on the mock.
    pub provider_env: Vec<(String, String)>,
    /// Write the policy file's limit sets to Redis at start (scripts/run); the tests
    /// set their own.
    pub apply_limits: bool,
    /// Run MCP's reference server as the policy file's `everything` server, on this
    /// loopback port (0: any); `None` runs none.
    pub mcp_port: Option<u16>,
    /// The npm folder holding it (`.mcp/`, scripts/lib.sh's `ensure_mcp`).
    pub mcp_dir: PathBuf,
    /// `CHOKEPOINT_MCP_<NAME>_URL` (where the gateway sends server NAME instead) and the
    /// values of the servers' credential variables, as the environment would give them;
    /// a credential not given is a random secret of this run.
    pub mcp_env: Vec<(String, String)>,
    /// Further changes to the policy document (tests).
    pub overrides: Vec<Override>,
    pub dev_key: DevKey,
    pub salt: String,
    pub requests_per_window: u64,
    pub window_secs: u64,
    /// Whether the policy service logs booked records in its audit stream
    /// (`--usage-audit-stream`).
    pub usage_audit_stream: bool,
    pub policy_timeout_ms: u64,
    pub max_request_body_bytes: usize,
    pub envoy_concurrency: u32,
    /// The bearer key the main mock's guardrail service requires, also in Envoy's
    /// environment as [`MOCK_GUARDRAIL_KEY_ENV`] for a check's `api_key_env`.
    pub guardrail_key: Option<String>,
    /// Gateway Envoys (same configuration, own ports, admin and access log); past one,
    /// a plain Envoy in front balances them round robin and is the stack's gateway.
    pub gateway_replicas: usize,
    /// Policy service instances on one Redis; past one, the policy file names them all
    /// (`policy_service.endpoints`) and Envoy balances and health-checks them.
    pub policy_instances: usize,
    /// The policy service's reservation lifetime (`--reservation-ttl-secs`), when not
    /// its default: how long a dead replica's lease slots stay reserved.
    pub reservation_ttl_secs: Option<u64>,
}

impl StackOptions {
    /// Defaults for the repository at `root`: binaries from `target/debug`, Envoy from the
    /// repo's venv, any port, Redis on a unix socket. Each can be overridden by the
    /// environment (`CHOKEPOINT_BIN_DIR`, `CHOKEPOINT_ENVOY`, `CHOKEPOINT_WASM`,
    /// `CHOKEPOINT_MCP_DIR`).
    pub fn defaults(root: &Path, run_dir: &Path, dev_key: DevKey) -> StackOptions {
        let env_path = |name: &str, default: PathBuf| {
            std::env::var_os(name).map(PathBuf::from).unwrap_or(default)
        };
        let mock_key = format!("sk-mock-{}", random_hex(16));
        let policy_token = random_hex(32);
        StackOptions {
            idp: None,
            admin_token: format!("ck-admin-{}", random_hex(16)),
            envoy_policy_token: Some(policy_token.clone()),
            policy_token,
            backup_key: format!("sk-backup-{}", random_hex(16)),
            usage_flush_ms: 200,
            fail_open: false,
            root: root.to_path_buf(),
            run_dir: run_dir.to_path_buf(),
            bin_dir: env_path("CHOKEPOINT_BIN_DIR", root.join("target/debug")),
            envoy: env_path("CHOKEPOINT_ENVOY", root.join(".venv/bin/envoy")),
            wasm: env_path(
                "CHOKEPOINT_WASM",
                root.join("target/wasm/chokepoint_filter.wasm"),
            ),
            ports: Ports::default(),
            redis: RedisMode::UnixSocket,
            policy_file: env_path("CHOKEPOINT_CONFIG", root.join("envoy/chokepoint.yaml")),
            provider_env: Vec::new(),
            apply_limits: false,
            mcp_port: None,
            mcp_dir: env_path("CHOKEPOINT_MCP_DIR", root.join(".mcp")),
            mcp_env: Vec::new(),
            overrides: Vec::new(),
            mock_key,
            dev_key,
            salt: random_hex(32),
            requests_per_window: 60,
            usage_audit_stream: true,
            window_secs: 60,
            policy_timeout_ms: 1000,
            max_request_body_bytes: 1024 * 1024,
            envoy_concurrency: 2,
            guardrail_key: None,
            gateway_replicas: 1,
            policy_instances: 1,
            reservation_ttl_secs: None,
        }
    }
}

/// The variable holding the mock guardrail service's key (see `chokepoint-mock`).
pub const MOCK_GUARDRAIL_KEY_ENV: &str = "CHOKEPOINT_MOCK_GUARDRAIL_KEY";

pub struct Stack {
    pub opts: StackOptions,
    pub gateway_url: String,
    /// Envoy's admin interface.
    pub admin_url: String,
    /// The policy service's gateway listener: what Envoy calls, with the token.
    pub policy_url: String,
    /// The policy service's admin listener: the admin API and metrics.
    pub policy_admin_url: String,
    /// Every policy service instance's gateway listener, the first being `policy_url`.
    pub policy_urls: Vec<String>,
    pub mock_url: Option<String>,
    pub backup_mock_url: String,
    pub idp_url: Option<String>,
    /// The endpoint of the MCP reference server the stack runs, straight (not through
    /// the gateway).
    pub mcp_url: Option<String>,
    pub redis_url: String,
    policy_port: u16,
    policy_admin_port: u16,
    idp_port: u16,
    mock_port: u16,
    backup_port: u16,
    rendered: Option<envoy::Rendered>,
    ecds_version: u64,
    /// The value of each MCP credential variable in Envoy's environment.
    mcp_credentials: BTreeMap<String, String>,
    // Dropped in this order: Envoy first, so nothing is in flight when the rest stop.
    envoy: Option<Managed>,
    mock: Option<Managed>,
    backup_mock: Option<Managed>,
    idp: Option<Managed>,
    mcp: Option<Managed>,
    policy: Option<Managed>,
    /// Policy service instances past the first, by index - 1.
    more_policies: Vec<Option<Managed>>,
    /// Gateway replicas past the first (which is `envoy`), and the balancer in front.
    replicas: Vec<replicas::Replica>,
    front: Option<replicas::Front>,
    redis: Option<redis::Redis>,
    sentinel: Option<sentinel::SentinelGroup>,
}

/// Variables for Envoy's environment: the provider keys, the UUID salt and the policy
/// service's token.
type EnvVars = Vec<(String, String)>;

/// Subject of the token the readiness probe uses, so it never eats a real user's quota.
pub const READINESS_SUBJECT: &str = "chokepoint-readiness-probe";

impl Stack {
    pub async fn start(opts: StackOptions) -> Result<Stack, String> {
        std::fs::create_dir_all(&opts.run_dir)
            .map_err(|e| format!("cannot create {}: {e}", opts.run_dir.display()))?;
        for (what, path) in [("envoy", &opts.envoy), ("filter .wasm", &opts.wasm)] {
            if !path.exists() {
                return Err(format!(
                    "{what} not found at {} (scripts/run and scripts/test build and install it)",
                    path.display()
                ));
            }
        }
        for p in [
            opts.ports.gateway,
            opts.ports.admin,
            opts.ports.policy,
            opts.ports.policy_admin,
            opts.ports.mock,
            opts.mcp_port.unwrap_or(0),
        ] {
            check_port_free(p)?;
        }
        if let RedisMode::Tcp { port, .. } = &opts.redis {
            check_port_free(*port)?;
        }

        let (redis, sentinel, redis_url) = match &opts.redis {
            RedisMode::Sentinel { down_after_ms, .. } => {
                let group = sentinel::SentinelGroup::start(&opts.run_dir, *down_after_ms)?;
                let url = group.primary_url().unwrap_or_default();
                (None, Some(group), url)
            }
            mode => {
                let redis = redis::Redis::start(mode, &opts.run_dir)?;
                let url = redis.url.clone();
                (Some(redis), None, url)
            }
        };
        let mut stack = Stack {
            gateway_url: String::new(),
            admin_url: String::new(),
            policy_url: String::new(),
            policy_admin_url: String::new(),
            policy_urls: Vec::new(),
            mock_url: None,
            backup_mock_url: String::new(),
            idp_url: None,
            mcp_url: None,
            redis_url,
            policy_port: opts.ports.policy,
            policy_admin_port: opts.ports.policy_admin,
            idp_port: 0,
            mock_port: 0,
            backup_port: 0,
            rendered: None,
            ecds_version: 1,
            mcp_credentials: BTreeMap::new(),
            envoy: None,
            mock: None,
            backup_mock: None,
            idp: None,
            mcp: None,
            policy: None,
            more_policies: Vec::new(),
            replicas: Vec::new(),
            front: None,
            redis,
            sentinel,
            opts,
        };
        stack.start_policy()?;
        for i in 1..stack.opts.policy_instances.max(1) {
            stack.start_policy_instance(i)?;
        }

        // The mocks always run: the upstream of every provider without a real key.
        let key = stack.opts.mock_key.clone();
        let (proc, addr) = stack.spawn_mock("mock", "openai-mock", &key, stack.opts.ports.mock)?;
        stack.mock = Some(proc);
        stack.mock_url = Some(format!("http://{addr}"));
        stack.mock_port = port_of(&addr)?;
        let key = stack.opts.backup_key.clone();
        let (proc, addr) = stack.spawn_mock("backup-mock", "backup-mock", &key, 0)?;
        stack.backup_mock = Some(proc);
        stack.backup_mock_url = format!("http://{addr}");
        stack.backup_port = port_of(&addr)?;

        if stack.opts.idp.is_some() {
            stack.start_idp()?;
        }
        let names_everything = stack
            .policy()?
            .mcp
            .is_some_and(|m| m.servers.iter().any(|s| s.name == mcp::EVERYTHING));
        if let (Some(port), true) = (stack.opts.mcp_port, names_everything) {
            let (proc, url) =
                mcp::start_everything(&stack.opts.mcp_dir, &stack.opts.run_dir, port)?;
            stack.mcp = Some(proc);
            stack.mcp_url = Some(url);
        }
        stack.start_envoy().await?;
        if stack.opts.gateway_replicas > 1 {
            stack.start_replicas().await?;
        }
        Ok(stack)
    }

    fn spawn_mock(
        &self,
        file: &str,
        name: &str,
        key: &str,
        port: u16,
    ) -> Result<(Managed, String), String> {
        let addr_file = self.opts.run_dir.join(format!("{file}.addr"));
        let _ = std::fs::remove_file(&addr_file);
        let mut cmd = Command::new(self.opts.bin_dir.join("chokepoint-mock"));
        cmd.arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--name")
            .arg(name)
            .arg("--addr-file")
            .arg(&addr_file)
            .env("CHOKEPOINT_MOCK_API_KEY", key);
        if let (Some(guard_key), "mock") = (&self.opts.guardrail_key, file) {
            cmd.env(MOCK_GUARDRAIL_KEY_ENV, guard_key);
        }
        let log = self.opts.run_dir.join(format!("{file}.log"));
        let mut proc = Managed::spawn(name, cmd, &log).map_err(|e| e.to_string())?;
        let addr = process::wait_for_file(&addr_file, &mut proc, Duration::from_secs(10))?;
        Ok((proc, addr))
    }

    /// Kills the main mock provider, as a provider outage would.
    pub fn kill_mock(&mut self) {
        if let Some(mut m) = self.mock.take() {
            m.kill();
        }
    }

    /// One JSON usage record per line, as Envoy's access log writes them.
    pub fn usage_log(&self) -> PathBuf {
        self.opts.run_dir.join("usage.log")
    }

    /// The JWKS file the mock identity provider serves (rewrite it to rotate keys).
    pub fn idp_jwks_file(&self) -> PathBuf {
        self.opts.run_dir.join("idp-jwks.json")
    }

    /// Starts (or restarts, on the same port) the mock identity provider.
    pub fn start_idp(&mut self) -> Result<(), String> {
        let addr_file = self.opts.run_dir.join("idp.addr");
        let _ = std::fs::remove_file(&addr_file);
        let mut cmd = Command::new(self.opts.bin_dir.join("chokepoint-idp"));
        cmd.arg("--listen")
            .arg(format!("127.0.0.1:{}", self.idp_port))
            .arg("--jwks-file")
            .arg(self.idp_jwks_file())
            .arg("--addr-file")
            .arg(&addr_file);
        let mut proc = Managed::spawn("identity provider", cmd, &self.opts.run_dir.join("idp.log"))
            .map_err(|e| e.to_string())?;
        let addr = process::wait_for_file(&addr_file, &mut proc, Duration::from_secs(10))?;
        self.idp_port = port_of(&addr)?;
        self.idp_url = Some(format!("http://{addr}"));
        self.idp = Some(proc);
        Ok(())
    }

    pub fn stop_idp(&mut self) {
        if let Some(mut p) = self.idp.take() {
            p.stop(Duration::from_secs(3));
        }
    }

    /// Stops Envoy and starts it again with the same configuration (a new gateway port).
    pub async fn restart_envoy(&mut self) -> Result<(), String> {
        if let Some(mut e) = self.envoy.take() {
            e.stop(Duration::from_secs(5));
        }
        self.start_envoy().await
    }

    /// Starts (or restarts) the policy service, on the same ports when it ran before.
    pub fn start_policy(&mut self) -> Result<(), String> {
        let (proc, addr, admin) =
            self.spawn_policy("policy", self.policy_port, self.policy_admin_port)?;
        self.policy_port = port_of(&addr)?;
        self.policy_url = format!("http://{addr}");
        self.policy_admin_port = port_of(&admin)?;
        self.policy_admin_url = format!("http://{admin}");
        self.policy = Some(proc);
        match self.policy_urls.first_mut() {
            Some(first) => first.clone_from(&self.policy_url),
            None => self.policy_urls.push(self.policy_url.clone()),
        }
        Ok(())
    }

    /// Starts (or restarts, on the same port) policy service instance `index` (>= 1),
    /// another process on the same Redis.
    pub fn start_policy_instance(&mut self, index: usize) -> Result<(), String> {
        let port = self
            .policy_urls
            .get(index)
            .map(|u| port_of(u))
            .transpose()?
            .unwrap_or(0);
        let (proc, addr, _) = self.spawn_policy(&format!("policy-{index}"), port, 0)?;
        let url = format!("http://{addr}");
        if index < self.policy_urls.len() {
            self.policy_urls[index] = url;
        } else {
            self.policy_urls.push(url);
        }
        if self.more_policies.len() < index {
            self.more_policies.resize_with(index, || None);
        }
        self.more_policies[index - 1] = Some(proc);
        Ok(())
    }

    /// Kills policy service instance `index` (0 is the first) outright, as a crash would.
    pub fn kill_policy_instance(&mut self, index: usize) {
        let proc = match index {
            0 => self.policy.as_mut(),
            i => self.more_policies.get_mut(i - 1).and_then(Option::as_mut),
        };
        if let Some(p) = proc {
            p.kill();
        }
    }

    /// Stops policy service instance `index` as an orchestrator would (SIGTERM: it stops
    /// accepting and finishes what it has in flight).
    pub fn stop_policy_instance(&mut self, index: usize) {
        let proc = match index {
            0 => self.policy.as_mut(),
            i => self.more_policies.get_mut(i - 1).and_then(Option::as_mut),
        };
        if let Some(p) = proc {
            p.stop(Duration::from_secs(10));
        }
    }

    /// One policy service process named `file` (its log and address files), its
    /// gateway and admin addresses.
    fn spawn_policy(
        &self,
        file: &str,
        port: u16,
        admin_port: u16,
    ) -> Result<(Managed, String, String), String> {
        let addr_file = self.opts.run_dir.join(format!("{file}.addr"));
        let admin_addr_file = self.opts.run_dir.join(format!("{file}-admin.addr"));
        let _ = std::fs::remove_file(&addr_file);
        let _ = std::fs::remove_file(&admin_addr_file);
        let mut cmd = Command::new(self.opts.bin_dir.join("chokepoint-policy"));
        cmd.arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--addr-file")
            .arg(&addr_file)
            .arg("--admin-listen")
            .arg(format!("127.0.0.1:{admin_port}"))
            .arg("--admin-addr-file")
            .arg(&admin_addr_file)
            .env("CHOKEPOINT_POLICY_TOKEN", &self.opts.policy_token)
            .arg("--requests-per-window")
            .arg(self.opts.requests_per_window.to_string())
            .arg("--window-secs")
            .arg(self.opts.window_secs.to_string())
            .args(self.limits_args()?)
            .env("CHOKEPOINT_ADMIN_TOKEN", &self.opts.admin_token);
        if let Some(ttl) = self.opts.reservation_ttl_secs {
            cmd.arg("--reservation-ttl-secs").arg(ttl.to_string());
        }
        if !self.opts.usage_audit_stream {
            cmd.arg("--usage-audit-stream").arg("off");
        }
        match (&self.sentinel, &self.opts.redis) {
            (
                Some(group),
                RedisMode::Sentinel {
                    wait_replicas: wait,
                    ..
                },
            ) => {
                cmd.env("CHOKEPOINT_REDIS_SENTINELS", group.sentinel_addresses())
                    .env("CHOKEPOINT_REDIS_MASTER_NAME", sentinel::MASTER_NAME)
                    .arg("--redis-wait-replicas")
                    .arg(wait.to_string());
            }
            _ => {
                cmd.env("CHOKEPOINT_REDIS_URL", &self.redis_url);
            }
        }
        let (identity_args, salt_env) = self.identity_args()?;
        cmd.args(identity_args).env(salt_env, &self.opts.salt);
        let name = match file {
            "policy" => "policy service".to_string(),
            other => format!("policy service {}", other.trim_start_matches("policy-")),
        };
        let log = self.opts.run_dir.join(format!("{file}.log"));
        let mut proc = Managed::spawn(&name, cmd, &log).map_err(|e| e.to_string())?;
        let addr = process::wait_for_file(&addr_file, &mut proc, Duration::from_secs(10))?;
        let admin = process::wait_for_file(&admin_addr_file, &mut proc, Duration::from_secs(10))?;
        Ok((proc, addr, admin))
    }

    /// `--limits FILE` with the policy file's limit sets, when the stack applies them.
    fn limits_args(&self) -> Result<Vec<String>, String> {
        if !self.opts.apply_limits {
            return Ok(Vec::new());
        }
        let jwks: serde_json::Value = serde_json::from_str(&self.opts.dev_key.jwks_json())
            .map_err(|e| format!("dev JWKS: {e}"))?;
        let ov = [Override::new(
            format!("issuers[issuer={}].jwks", crate::devtoken::DEFAULT_ISSUER),
            serde_json::json!({"inline": jwks}),
        )];
        let policy = chokepoint_render::policy::Policy::load_with(&self.opts.policy_file, &ov)
            .map_err(|e| e.to_string())?;
        let text = chokepoint_render::bundle::render(
            &policy,
            "limits",
            &chokepoint_render::bundle::Options::default(),
        )?;
        let path = self.opts.run_dir.join("limits.json");
        chokepoint_render::bundle::write_atomically(&path, &text)?;
        Ok(vec!["--limits".into(), path.to_string_lossy().to_string()])
    }

    /// `--identity FILE` with the policy file's issuers (the dev key's inline, as Envoy
    /// gets them) and `ui.admin_groups`, and the name of the variable the service reads
    /// the gateway's UUID salt from: a dev token's user on the service's pages is the
    /// user the gateway records.
    fn identity_args(&self) -> Result<(Vec<String>, String), String> {
        let jwks: serde_json::Value = serde_json::from_str(&self.opts.dev_key.jwks_json())
            .map_err(|e| format!("dev JWKS: {e}"))?;
        let mut ov = vec![Override::new(
            format!("issuers[issuer={}].jwks", crate::devtoken::DEFAULT_ISSUER),
            serde_json::json!({"inline": jwks}),
        )];
        // A test's own overrides of what the file holds (its issuers, `ui`, the gateway's
        // salt variable and token bounds); the rest point providers and servers at this
        // stack's processes, which are not running yet.
        ov.extend(
            self.opts
                .overrides
                .iter()
                .filter(|o| {
                    ["issuers", "ui", "gateway"]
                        .iter()
                        .any(|s| o.selector.starts_with(s))
                })
                .cloned(),
        );
        let policy = chokepoint_render::policy::Policy::load_with(&self.opts.policy_file, &ov)
            .map_err(|e| e.to_string())?;
        let text = chokepoint_render::bundle::render(
            &policy,
            "policy-identity",
            &chokepoint_render::bundle::Options::default(),
        )?;
        let path = self.opts.run_dir.join("identity.json");
        chokepoint_render::bundle::write_atomically(&path, &text)?;
        Ok((
            vec!["--identity".into(), path.to_string_lossy().to_string()],
            policy.gateway.uuid_salt_env.clone(),
        ))
    }

    /// Kills the policy service outright, as a crash would.
    pub fn kill_policy(&mut self) {
        if let Some(mut p) = self.policy.take() {
            p.kill();
        }
    }

    /// Stops Redis (SIGTERM, so it writes its append-only file), as a Redis restart or
    /// outage would: the policy service answers 503 until [`Stack::start_redis`].
    pub fn stop_redis(&mut self) {
        if let Some(mut r) = self.redis.take() {
            r.proc.stop(Duration::from_secs(5));
        }
    }

    /// Starts Redis again on the same endpoint. With [`RedisMode::Tcp`] its data comes
    /// back from the append-only file; a unix-socket Redis starts empty.
    pub fn start_redis(&mut self) -> Result<(), String> {
        let redis = redis::Redis::start(&self.opts.redis, &self.opts.run_dir)?;
        self.redis_url = redis.url.clone();
        self.redis = Some(redis);
        Ok(())
    }

    /// The overrides that point the policy file at this stack's processes.
    fn overrides(&self) -> Result<(Vec<Override>, EnvVars), String> {
        let o = &self.opts;
        let mut ov = self.base_overrides()?;
        if self.policy_urls.len() > 1 {
            ov.push(Override::new(
                "policy_service.endpoints",
                serde_json::json!(self.policy_urls),
            ));
        }
        ov.push(Override::new("audit.usage.flush_ms", o.usage_flush_ms));
        ov.push(Override::new(
            "gateway.failure_mode",
            if o.fail_open { "open" } else { "closed" },
        ));
        ov.push(Override::new(
            "gateway.policy_timeout_ms",
            o.policy_timeout_ms,
        ));
        ov.push(Override::new(
            "gateway.max_request_body_bytes",
            o.max_request_body_bytes,
        ));
        if let Some(idp) = &o.idp {
            let url = format!(
                "http://127.0.0.1:{}{}",
                self.idp_port,
                crate::idp::JWKS_PATH
            );
            ov.push(Override::new(
                "issuers[+]",
                serde_json::json!({
                    "issuer": idp.issuer,
                    "audiences": [crate::devtoken::DEFAULT_AUDIENCE],
                    // The mock IdP speaks plain http on loopback; said explicitly, as
                    // the policy file requires (a real IdP's JWKS is https).
                    "jwks": {"uri": url, "insecure_http": true, "refresh_secs": idp.refresh_secs, "timeout_ms": 1000},
                    // A second issuer says what it may assert; the tests' IdP, anything.
                    "trust": {"tenants": ["*"], "groups": ["*"], "cost_centers": ["*"]},
                }),
            ));
        }
        // Each provider goes where the environment says, else to a mock: the backup
        // provider to the second mock, the rest to the main one.
        let file_only = chokepoint_render::policy::Policy::load_with(&o.policy_file, &ov)
            .map_err(|e| e.to_string())?;
        let env = |name: &str| {
            o.provider_env
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let mut keys = Vec::new();
        for p in &file_only.providers {
            let (port, key) = if p.name.ends_with("-backup") {
                (self.backup_port, &o.backup_key)
            } else {
                (self.mock_port, &o.mock_key)
            };
            let route =
                envoy::route_for(&p.key_env, &env, &format!("http://127.0.0.1:{port}"), key);
            if let Some(url) = route.base_url {
                ov.push(Override::new(
                    format!("providers[name={}].base_url", p.name),
                    url,
                ));
            }
            keys.push((p.key_env.clone(), route.key));
        }
        // Each MCP server goes where CHOKEPOINT_MCP_<NAME>_URL says, else `everything` to
        // the reference server the stack runs; its credential is the environment's or a
        // secret of this run.
        let mcp_env = |name: &str| {
            o.mcp_env
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        for s in file_only.mcp.iter().flat_map(|m| &m.servers) {
            let url = mcp_env(&mcp::url_var(&s.name)).or_else(|| {
                (s.name == mcp::EVERYTHING)
                    .then(|| self.mcp_url.clone())
                    .flatten()
            });
            if let Some(url) = url {
                ov.push(Override::new(
                    format!("mcp.servers[name={}].url", s.name),
                    url,
                ));
            }
            if let Some(c) = &s.credential {
                // Drawn before Envoy starts (draw_mcp_credentials), which asks these
                // overrides first.
                let value = mcp_env(&c.env)
                    .or_else(|| self.mcp_credentials.get(&c.env).cloned())
                    .unwrap_or_default();
                keys.push((c.env.clone(), value));
            }
        }
        keys.push((file_only.gateway.uuid_salt_env.clone(), o.salt.clone()));
        if let Some(token) = &o.envoy_policy_token {
            keys.push((file_only.policy_service.token_env.clone(), token.clone()));
        }
        ov.extend(o.overrides.iter().cloned());
        Ok((ov, keys))
    }

    /// Re-renders the filter's configuration from the policy file (which may have
    /// changed on disk) plus `extra` overrides, and hands it to the running Envoy through
    /// ECDS. The new configuration applies to requests that start after the swap.
    pub fn reload_policy(&mut self, extra: &[Override]) -> Result<u64, String> {
        let (mut ov, _) = self.overrides()?;
        ov.extend(extra.iter().cloned());
        let policy = chokepoint_render::policy::Policy::load_with(&self.opts.policy_file, &ov)
            .map_err(|e| e.to_string())?;
        let rendered = self.rendered.as_mut().ok_or("Envoy is not running")?;
        rendered.policy = policy;
        self.ecds_version += 1;
        rendered.write_ecds(self.ecds_version)?;
        for r in &mut self.replicas {
            r.rendered.policy = rendered.policy.clone();
            r.rendered.write_ecds(self.ecds_version)?;
        }
        Ok(self.ecds_version)
    }

    async fn start_envoy(&mut self) -> Result<(), String> {
        self.draw_mcp_credentials()?;
        let (overrides, env) = self.overrides()?;
        let o = &self.opts;
        let wasm = o
            .wasm
            .canonicalize()
            .map_err(|e| format!("{}: {e}", o.wasm.display()))?;
        // With replicas, the balancer in front takes the gateway's port.
        let listen_port = if o.gateway_replicas > 1 {
            0
        } else {
            o.ports.gateway
        };
        let rendered = envoy::render(&envoy::Inputs {
            policy_file: &o.policy_file,
            run_dir: &o.run_dir,
            overrides,
            gateway_port: listen_port,
            admin_port: o.ports.admin,
            wasm_path: wasm.to_string_lossy().to_string(),
        })?;
        let config_path = rendered.bootstrap_path.clone();
        let token_env = rendered.policy.policy_service.token_env.clone();
        self.ecds_version = 1;
        self.rendered = Some(rendered);
        let o = &self.opts;
        let admin_file = o.run_dir.join("envoy-admin.addr");
        let _ = std::fs::remove_file(&admin_file);

        let cmd = self.envoy_command(&config_path, &admin_file, &token_env, env);
        let mut proc = Managed::spawn("envoy", cmd, &o.run_dir.join("envoy.log"))
            .map_err(|e| e.to_string())?;
        let admin = process::wait_for_file(&admin_file, &mut proc, Duration::from_secs(30))?;
        self.admin_url = format!("http://{admin}");
        self.envoy = Some(proc);

        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        // 1. Envoy says it is ready (listeners up, wasm loaded).
        let admin_url = self.admin_url.clone();
        await_admin_ready(&client, &admin_url, &mut || {
            self.check_alive("envoy", deadline)
        })
        .await?;
        let port = gateway_port(&client, &self.admin_url).await?;
        self.gateway_url = format!("http://127.0.0.1:{port}");
        self.name_gateway_port(port).await?;

        // 2. One real request through every component.
        let token = self.token(&TokenSpec::new(READINESS_SUBJECT));
        let gateway_url = self.gateway_url.clone();
        let result = await_request(&client, &gateway_url, &token, deadline, &mut || {
            self.check_alive("envoy", deadline)
        })
        .await;
        result.map_err(|e| format!("{e}\n{}", self.logs()))
    }

    /// Envoy's command for the bootstrap at `config`, its admin address reported in
    /// `admin_file`, the filter's secrets (`env`) in its environment.
    fn envoy_command(
        &self,
        config: &Path,
        admin_file: &Path,
        token_env: &str,
        env: EnvVars,
    ) -> Command {
        let o = &self.opts;
        let mut cmd = Command::new(&o.envoy);
        cmd.arg("-c")
            .arg(config)
            .arg("--admin-address-path")
            .arg(admin_file)
            // Each instance gets its own shared-memory id, so several stacks can run at once.
            .arg("--use-dynamic-base-id")
            .arg("--concurrency")
            .arg(o.envoy_concurrency.to_string())
            .args([
                "--file-flush-interval-msec",
                "200",
                "--log-level",
                "warn",
                "--component-log-level",
                "wasm:info",
            ])
            // The secrets reach the filter only through Envoy's environment (and never
            // from this process's own, whatever it holds).
            .env_remove(token_env)
            .envs(env);
        if let Some(guard_key) = &o.guardrail_key {
            cmd.env(MOCK_GUARDRAIL_KEY_ENV, guard_key);
        }
        cmd
    }

    /// A random secret for each MCP credential variable the policy file names, once per
    /// stack (a restarted Envoy keeps them).
    fn draw_mcp_credentials(&mut self) -> Result<(), String> {
        for s in self.policy()?.mcp.iter().flat_map(|m| &m.servers) {
            if let Some(c) = &s.credential {
                self.mcp_credentials
                    .entry(c.env.clone())
                    .or_insert_with(|| random_hex(24));
            }
        }
        Ok(())
    }

    /// The policy file as the stack renders it, with its overrides.
    fn policy(&self) -> Result<chokepoint_render::policy::Policy, String> {
        let (ov, _) = self.overrides()?;
        chokepoint_render::policy::Policy::load_with(&self.opts.policy_file, &ov)
            .map_err(|e| e.to_string())
    }

    /// The overrides that point the policy file at this stack's dev issuer, policy
    /// service and usage log.
    fn base_overrides(&self) -> Result<Vec<Override>, String> {
        let jwks: serde_json::Value = serde_json::from_str(&self.opts.dev_key.jwks_json())
            .map_err(|e| format!("dev JWKS: {e}"))?;
        Ok(envoy::base_overrides(
            crate::devtoken::DEFAULT_ISSUER,
            jwks,
            &self.policy_url,
            &self.usage_log(),
        ))
    }

    /// The gateway's URL for MCP server `name` (`<gateway>/mcp/<name>`) when the
    /// running policy has it.
    pub fn mcp_gateway_url(&self, name: &str) -> Option<String> {
        let policy = &self.rendered.as_ref()?.policy;
        policy
            .mcp
            .iter()
            .flat_map(|m| &m.servers)
            .any(|s| s.name == name)
            .then(|| format!("{}/mcp/{name}", self.gateway_url))
    }

    /// On a port Envoy chose, the filter's configuration is rendered again naming it (MCP's
    /// resource metadata URL is the gateway's own when the policy file gives none), and
    /// taken by Envoy before the stack is ready.
    async fn name_gateway_port(&mut self, port: u16) -> Result<(), String> {
        let Some(rendered) = self.rendered.as_mut() else {
            return Ok(());
        };
        let needs = rendered
            .policy
            .mcp
            .as_ref()
            .is_some_and(|m| m.public_url.is_none());
        if rendered.gateway_port == port || !needs {
            return Ok(());
        }
        rendered.gateway_port = port;
        let before = self.ecds_updates().await?;
        self.ecds_version += 1;
        if let Some(rendered) = &self.rendered {
            rendered.write_ecds(self.ecds_version)?;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.ecds_updates().await? <= before {
            self.check_alive("envoy", deadline)?;
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Ok(())
    }

    fn check_alive(&mut self, what: &str, deadline: Instant) -> Result<(), String> {
        let exited = self.envoy.as_mut().and_then(Managed::exited);
        if let Some(status) = exited {
            return Err(format!("{what} exited ({status})\n{}", self.logs()));
        }
        // No point waiting out the deadline: Envoy keeps running without the filter.
        if let Some(refusal) = self.filter_refusal() {
            return Err(format!(
                "the filter refused its configuration: {refusal}\n{}",
                self.logs()
            ));
        }
        if Instant::now() > deadline {
            return Err(format!("{what} not ready in time\n{}", self.logs()));
        }
        Ok(())
    }

    /// The filter's own line in Envoy's log when it refused its configuration at load
    /// (a missing secret, an invalid field), which it names.
    pub fn filter_refusal(&self) -> Option<String> {
        let log = std::fs::read_to_string(self.opts.run_dir.join("envoy.log")).ok()?;
        log.lines()
            .find(|l| l.contains("invalid plugin configuration"))
            .map(str::to_owned)
    }

    /// A dev token for `spec`, signed with the stack's dev key.
    pub fn token(&self, spec: &TokenSpec) -> String {
        self.opts.dev_key.mint(spec)
    }

    /// Each provider's name and where its traffic goes.
    pub fn provider_targets(&self) -> Vec<(String, String)> {
        self.rendered
            .as_ref()
            .map(|r| {
                r.policy
                    .providers
                    .iter()
                    .map(|p| {
                        let scheme = if p.url.tls { "https" } else { "http" };
                        (p.name.clone(), format!("{scheme}://{}", p.url.authority()))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The key the main mock provider accepts.
    pub fn provider_key(&self) -> &str {
        &self.opts.mock_key
    }

    /// How many ECDS updates of the filter Envoy has taken.
    pub async fn ecds_updates(&self) -> Result<u64, String> {
        self.stat_sum("extension_config_discovery.http_filter.chokepoint.update_success")
            .await
    }

    /// The sum of Envoy's stats whose names contain `filter`.
    async fn stat_sum(&self, filter: &str) -> Result<u64, String> {
        stat_sum_at(&self.admin_url, filter).await
    }

    /// Envoy's PID (for CPU and memory measurements).
    pub fn envoy_pid(&self) -> Option<u32> {
        self.envoy.as_ref().and_then(Managed::pid)
    }

    /// The MCP reference server's PID.
    pub fn mcp_pid(&self) -> Option<u32> {
        self.mcp.as_ref().and_then(Managed::pid)
    }

    /// The policy service's PID.
    pub fn policy_pid(&self) -> Option<u32> {
        self.policy.as_ref().and_then(Managed::pid)
    }

    /// The Sentinel group, in [`RedisMode::Sentinel`].
    pub fn sentinel_group(&mut self) -> Option<&mut sentinel::SentinelGroup> {
        self.sentinel.as_mut()
    }

    /// Redis's PID.
    pub fn redis_pid(&self) -> Option<u32> {
        self.redis.as_ref().and_then(|r| r.proc.pid())
    }

    /// The sum of Envoy's stats whose names contain `filter` (0 when unreachable).
    pub async fn envoy_stat(&self, filter: &str) -> u64 {
        self.stat_sum(filter).await.unwrap_or(0)
    }

    /// The first child that has exited, if any: the supervisor stops everything then.
    pub fn exited_child(&mut self) -> Option<(String, String)> {
        for p in [
            self.envoy.as_mut(),
            self.mock.as_mut(),
            self.mcp.as_mut(),
            self.policy.as_mut(),
            self.redis.as_mut().map(|r| &mut r.proc),
        ]
        .into_iter()
        .chain(self.more_policies.iter_mut().map(Option::as_mut))
        .chain(self.replicas.iter_mut().map(|r| r.proc.as_mut()))
        .chain([self.front.as_mut().map(|f| &mut f.proc)])
        .flatten()
        // A Sentinel group's nodes are killed on purpose; only its sentinels count.
        .chain(
            self.sentinel
                .iter_mut()
                .flat_map(|g| g.procs_mut())
                .filter(|p| p.name.starts_with("sentinel")),
        ) {
            if let Some(status) = p.exited() {
                return Some((p.name.clone(), status));
            }
        }
        None
    }

    /// The tail of every component's log.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for p in [
            self.envoy.as_ref(),
            self.mock.as_ref(),
            self.backup_mock.as_ref(),
            self.idp.as_ref(),
            self.mcp.as_ref(),
            self.policy.as_ref(),
            self.redis.as_ref().map(|r| &r.proc),
        ]
        .into_iter()
        .chain(self.more_policies.iter().map(Option::as_ref))
        .chain(self.replicas.iter().map(|r| r.proc.as_ref()))
        .chain([self.front.as_ref().map(|f| &f.proc)])
        .flatten()
        .chain(self.sentinel.iter().flat_map(|g| g.procs()))
        {
            out.push_str(&format!(
                "----- {} ({}) -----\n{}\n",
                p.name,
                p.log.display(),
                p.log_tail(6000)
            ));
        }
        out
    }

    /// Stops every process, Envoy first.
    pub fn stop(&mut self) {
        for p in [self.front.as_mut().map(|f| &mut f.proc)]
            .into_iter()
            .chain(self.replicas.iter_mut().map(|r| r.proc.as_mut()))
            .flatten()
        {
            p.stop(Duration::from_secs(5));
        }
        for p in [
            self.envoy.as_mut(),
            self.mock.as_mut(),
            self.backup_mock.as_mut(),
            self.idp.as_mut(),
            self.mcp.as_mut(),
            self.policy.as_mut(),
        ]
        .into_iter()
        .chain(self.more_policies.iter_mut().map(Option::as_mut))
        .flatten()
        {
            p.stop(Duration::from_secs(5));
        }
        if let Some(r) = self.redis.as_mut() {
            r.proc.stop(Duration::from_secs(5));
        }
        if let Some(g) = self.sentinel.as_mut() {
            g.stop();
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "\n===== chokepoint stack logs (test failed) =====\n{}",
                self.logs()
            );
        }
        self.stop();
    }
}

/// Polls Envoy's `/ready` at `admin_url` (listeners up, wasm loaded); `alive` says why
/// to stop waiting.
async fn await_admin_ready(
    client: &reqwest::Client,
    admin_url: &str,
    alive: &mut (dyn FnMut() -> Result<(), String> + Send),
) -> Result<(), String> {
    loop {
        let ready = client.get(format!("{admin_url}/ready")).send().await;
        if matches!(&ready, Ok(r) if r.status().is_success()) {
            return Ok(());
        }
        alive()?;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends the readiness probe's chat request through `gateway_url` until one succeeds
/// (through every component); `alive` says why to stop waiting.
async fn await_request(
    client: &reqwest::Client,
    gateway_url: &str,
    token: &str,
    deadline: Instant,
    alive: &mut (dyn FnMut() -> Result<(), String> + Send),
) -> Result<(), String> {
    loop {
        let r = client
            .post(format!("{gateway_url}/v1/chat/completions"))
            .bearer_auth(token)
            .json(&serde_json::json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "ready?"}]}))
            .send()
            .await;
        match r {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) if Instant::now() > deadline => {
                let status = r.status();
                let body = r.text().await.unwrap_or_default();
                return Err(format!("readiness request failed: {status} {body}"));
            }
            _ => {}
        }
        alive()?;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The sum of the stats whose names contain `filter`, of the Envoy whose admin
/// interface is at `admin_url`.
pub async fn stat_sum_at(admin_url: &str, filter: &str) -> Result<u64, String> {
    let text = reqwest::get(format!("{admin_url}/stats?filter={filter}"))
        .await
        .map_err(|e| e.to_string())?
        .text()
        .await
        .map_err(|e| e.to_string())?;
    Ok(text
        .lines()
        .filter_map(|l| l.rsplit(": ").next()?.trim().parse::<u64>().ok())
        .sum())
}

fn port_of(addr: &str) -> Result<u16, String> {
    addr.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| format!("not an address: {addr:?}"))
}

/// A clear message naming the port, instead of a child dying with EADDRINUSE.
/// The port of the listener named `gateway` of the Envoy whose admin interface is at
/// `admin_url`: the stack's, and the benchmark's reference Envoys'.
pub async fn gateway_port(client: &reqwest::Client, admin_url: &str) -> Result<u16, String> {
    let v: serde_json::Value = client
        .get(format!("{admin_url}/listeners?format=json"))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    v["listener_statuses"]
        .as_array()
        .and_then(|ls| ls.iter().find(|l| l["name"] == "gateway"))
        .and_then(|l| l["local_address"]["socket_address"]["port_value"].as_u64())
        .and_then(|p| u16::try_from(p).ok())
        .ok_or_else(|| format!("no gateway listener in Envoy's /listeners: {v}"))
}

pub fn check_port_free(port: u16) -> Result<(), String> {
    if port == 0 {
        return Ok(());
    }
    std::net::TcpListener::bind(("127.0.0.1", port))
        .map(drop)
        .map_err(|e| format!("port {port} on 127.0.0.1 is already in use ({e}); stop whatever listens there or choose another port"))
}

/// Hex from the kernel's CSPRNG.
pub fn random_hex(bytes: usize) -> String {
    use std::io::Read;
    let mut buf = vec![0u8; bytes];
    let ok = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .is_ok();
    assert!(ok, "cannot read /dev/urandom");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}
