//! The whole gateway on one machine: Redis, the policy service, the mock provider and
//! Envoy with the filter, each a real process on loopback. `chokepoint-dev` (behind
//! `scripts/run`) and the end-to-end tests both start it through [`Stack::start`], so the
//! tests exercise exactly what a user runs.

pub mod envoy;
pub mod process;
pub mod redis;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::devtoken::{DevKey, TokenSpec};
use envoy::{EnvoyParams, PluginParams, Upstream};
use process::Managed;
pub use redis::RedisMode;

/// Ports to listen on; 0 lets the OS choose (tests), fixed ones suit a dev machine.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ports {
    pub gateway: u16,
    pub admin: u16,
    pub policy: u16,
    pub mock: u16,
}

/// Where provider traffic goes.
pub enum Provider {
    /// Start the mock provider, which accepts only this key.
    Mock { api_key: String },
    /// The real OpenAI API, with the caller's key.
    OpenAi { api_key: String },
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
    pub provider: Provider,
    pub dev_key: DevKey,
    pub salt: String,
    pub requests_per_window: u64,
    pub window_secs: u64,
    pub policy_timeout_ms: u64,
    pub max_request_body_bytes: usize,
    pub envoy_concurrency: u32,
}

impl StackOptions {
    /// Defaults for the repository at `root`: binaries from `target/debug`, Envoy from the
    /// repo's venv, any port, Redis on a unix socket. Each can be overridden by the
    /// environment (`CHOKEPOINT_BIN_DIR`, `CHOKEPOINT_ENVOY`, `CHOKEPOINT_WASM`).
    pub fn defaults(root: &Path, run_dir: &Path, dev_key: DevKey) -> StackOptions {
        let env_path = |name: &str, default: PathBuf| {
            std::env::var_os(name).map(PathBuf::from).unwrap_or(default)
        };
        let mock_key = format!("sk-mock-{}", random_hex(16));
        StackOptions {
            idp: None,
            admin_token: format!("ck-admin-{}", random_hex(16)),
            backup_key: format!("sk-backup-{}", random_hex(16)),
            usage_flush_ms: 200,
            fail_open: false,
            root: root.to_path_buf(),
            run_dir: run_dir.to_path_buf(),
            bin_dir: env_path("CHOKEPOINT_BIN_DIR", root.join("target/debug")),
            envoy: env_path("CHOKEPOINT_ENVOY", root.join(".venv/bin/envoy")),
            wasm: env_path(
                "CHOKEPOINT_WASM",
                root.join("target/wasm32-wasip1/release/chokepoint_filter.wasm"),
            ),
            ports: Ports::default(),
            redis: RedisMode::UnixSocket,
            provider: Provider::Mock {
                api_key: mock_key.clone(),
            },
            mock_key,
            dev_key,
            salt: random_hex(32),
            requests_per_window: 60,
            window_secs: 60,
            policy_timeout_ms: 1000,
            max_request_body_bytes: 1024 * 1024,
            envoy_concurrency: 2,
        }
    }
}

pub struct Stack {
    pub opts: StackOptions,
    pub gateway_url: String,
    pub admin_url: String,
    pub policy_url: String,
    pub mock_url: Option<String>,
    pub backup_mock_url: String,
    pub idp_url: Option<String>,
    pub redis_url: String,
    policy_port: u16,
    idp_port: u16,
    upstream: Option<Upstream>,
    // Dropped in this order: Envoy first, so nothing is in flight when the rest stop.
    envoy: Option<Managed>,
    mock: Option<Managed>,
    backup_mock: Option<Managed>,
    idp: Option<Managed>,
    policy: Option<Managed>,
    redis: Option<redis::Redis>,
}

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
            opts.ports.mock,
        ] {
            check_port_free(p)?;
        }
        if let RedisMode::Tcp { port, .. } = &opts.redis {
            check_port_free(*port)?;
        }

        let redis = redis::Redis::start(&opts.redis, &opts.run_dir)?;
        let mut stack = Stack {
            gateway_url: String::new(),
            admin_url: String::new(),
            policy_url: String::new(),
            mock_url: None,
            backup_mock_url: String::new(),
            idp_url: None,
            redis_url: redis.url.clone(),
            policy_port: opts.ports.policy,
            idp_port: 0,
            upstream: None,
            envoy: None,
            mock: None,
            backup_mock: None,
            idp: None,
            policy: None,
            redis: Some(redis),
            opts,
        };
        stack.start_policy()?;

        // The mocks always run: the upstream of every provider without a real key.
        let key = stack.opts.mock_key.clone();
        let (proc, addr) = stack.spawn_mock("mock", "openai-mock", &key, stack.opts.ports.mock)?;
        stack.mock = Some(proc);
        stack.mock_url = Some(format!("http://{addr}"));
        let mock_port = port_of(&addr)?;
        let key = stack.opts.backup_key.clone();
        let (proc, addr) = stack.spawn_mock("backup-mock", "backup-mock", &key, 0)?;
        stack.backup_mock = Some(proc);
        stack.backup_mock_url = format!("http://{addr}");
        let backup_port = port_of(&addr)?;
        let upstream = match &stack.opts.provider {
            Provider::Mock { .. } => Upstream::Mock {
                port: mock_port,
                backup_port,
            },
            Provider::OpenAi { .. } => Upstream::OpenAi {
                mock_port,
                backup_port,
            },
        };

        if stack.opts.idp.is_some() {
            stack.start_idp()?;
        }
        stack.upstream = Some(upstream);
        stack.start_envoy().await?;
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

    /// Starts (or restarts) the policy service, on the same port when it ran before.
    pub fn start_policy(&mut self) -> Result<(), String> {
        let addr_file = self.opts.run_dir.join("policy.addr");
        let _ = std::fs::remove_file(&addr_file);
        let mut cmd = Command::new(self.opts.bin_dir.join("chokepoint-policy"));
        cmd.arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.policy_port))
            .arg("--addr-file")
            .arg(&addr_file)
            .arg("--requests-per-window")
            .arg(self.opts.requests_per_window.to_string())
            .arg("--window-secs")
            .arg(self.opts.window_secs.to_string())
            .env("CHOKEPOINT_REDIS_URL", &self.redis_url)
            .env("CHOKEPOINT_ADMIN_TOKEN", &self.opts.admin_token);
        let mut proc = Managed::spawn("policy service", cmd, &self.opts.run_dir.join("policy.log"))
            .map_err(|e| e.to_string())?;
        let addr = process::wait_for_file(&addr_file, &mut proc, Duration::from_secs(10))?;
        self.policy_port = port_of(&addr)?;
        self.policy_url = format!("http://{addr}");
        self.policy = Some(proc);
        Ok(())
    }

    /// Kills the policy service outright, as a crash would.
    pub fn kill_policy(&mut self) {
        if let Some(mut p) = self.policy.take() {
            p.kill();
        }
    }

    async fn start_envoy(&mut self) -> Result<(), String> {
        let o = &self.opts;
        let upstream = self.upstream.as_ref().ok_or("no upstream chosen")?;
        let (extra_issuers, extra_clusters) = match &o.idp {
            Some(idp) => (
                vec![serde_json::json!({
                    "issuer": idp.issuer,
                    "audiences": [crate::devtoken::DEFAULT_AUDIENCE],
                    "jwks_uri": {"cluster": "idp", "path": crate::idp::JWKS_PATH, "refresh_secs": idp.refresh_secs, "timeout_ms": 1000},
                })],
                envoy::loopback_cluster("idp", self.idp_port),
            ),
            None => (Vec::new(), String::new()),
        };
        let plugin = envoy::plugin_config(&PluginParams {
            extra_issuers,
            issuer: crate::devtoken::DEFAULT_ISSUER,
            audience: crate::devtoken::DEFAULT_AUDIENCE,
            jwks_json: &o.dev_key.jwks_json(),
            policy_timeout_ms: o.policy_timeout_ms,
            max_request_body_bytes: o.max_request_body_bytes,
            usage_flush_ms: o.usage_flush_ms,
            failure_mode: if o.fail_open { "open" } else { "closed" },
        })?;
        let wasm = o
            .wasm
            .canonicalize()
            .map_err(|e| format!("{}: {e}", o.wasm.display()))?;
        let yaml = envoy::bootstrap(&EnvoyParams {
            gateway_port: o.ports.gateway,
            admin_port: o.ports.admin,
            policy_port: self.policy_port,
            upstream,
            usage_log: &self.usage_log().to_string_lossy(),
            extra_clusters: &extra_clusters,
            wasm_path: &wasm.to_string_lossy(),
            plugin_config: &plugin,
            max_request_body_bytes: o.max_request_body_bytes,
        });
        let config_path = o.run_dir.join("envoy.yaml");
        std::fs::write(&config_path, yaml)
            .map_err(|e| format!("cannot write {}: {e}", config_path.display()))?;
        let admin_file = o.run_dir.join("envoy-admin.addr");
        let _ = std::fs::remove_file(&admin_file);

        let provider_key = match &o.provider {
            Provider::Mock { api_key } | Provider::OpenAi { api_key } => api_key,
        };
        let mut cmd = Command::new(&o.envoy);
        cmd.arg("-c")
            .arg(&config_path)
            .arg("--admin-address-path")
            .arg(&admin_file)
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
            // The secrets reach the filter only through Envoy's environment.
            .env("CHOKEPOINT_UUID_SALT", &o.salt)
            .env("OPENAI_API_KEY", provider_key)
            .env("OPENAI_BACKUP_API_KEY", &o.backup_key)
            .env("ANTHROPIC_API_KEY", &o.mock_key)
            .env("GEMINI_API_KEY", &o.mock_key)
            .env("AZURE_OPENAI_API_KEY", &o.mock_key);
        let mut proc = Managed::spawn("envoy", cmd, &o.run_dir.join("envoy.log"))
            .map_err(|e| e.to_string())?;
        let admin = process::wait_for_file(&admin_file, &mut proc, Duration::from_secs(30))?;
        self.admin_url = format!("http://{admin}");
        self.envoy = Some(proc);

        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        // 1. Envoy says it is ready (listeners up, wasm loaded).
        loop {
            let ready = client.get(format!("{}/ready", self.admin_url)).send().await;
            if matches!(&ready, Ok(r) if r.status().is_success()) {
                break;
            }
            self.check_alive("envoy", deadline)?;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let port = self.gateway_port(&client).await?;
        self.gateway_url = format!("http://127.0.0.1:{port}");

        // 2. One real request through every component.
        let token = self.token(&TokenSpec::new(READINESS_SUBJECT));
        loop {
            let r = client
                .post(format!("{}/v1/chat/completions", self.gateway_url))
                .bearer_auth(&token)
                .json(&serde_json::json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "ready?"}]}))
                .send()
                .await;
            match r {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) if Instant::now() > deadline => {
                    let status = r.status();
                    let body = r.text().await.unwrap_or_default();
                    return Err(format!(
                        "readiness request failed: {status} {body}\n{}",
                        self.logs()
                    ));
                }
                _ => {}
            }
            self.check_alive("envoy", deadline)?;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn gateway_port(&self, client: &reqwest::Client) -> Result<u16, String> {
        let v: serde_json::Value = client
            .get(format!("{}/listeners?format=json", self.admin_url))
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

    fn check_alive(&mut self, what: &str, deadline: Instant) -> Result<(), String> {
        let exited = self.envoy.as_mut().and_then(Managed::exited);
        if let Some(status) = exited {
            return Err(format!("{what} exited ({status})\n{}", self.logs()));
        }
        if Instant::now() > deadline {
            return Err(format!("{what} not ready in time\n{}", self.logs()));
        }
        Ok(())
    }

    /// A dev token for `spec`, signed with the stack's dev key.
    pub fn token(&self, spec: &TokenSpec) -> String {
        self.opts.dev_key.mint(spec)
    }

    pub fn provider_key(&self) -> &str {
        match &self.opts.provider {
            Provider::Mock { api_key } | Provider::OpenAi { api_key } => api_key,
        }
    }

    /// Envoy's PID (for CPU and memory measurements).
    pub fn envoy_pid(&self) -> Option<u32> {
        self.envoy.as_ref().and_then(Managed::pid)
    }

    /// The policy service's PID.
    pub fn policy_pid(&self) -> Option<u32> {
        self.policy.as_ref().and_then(Managed::pid)
    }

    /// The first child that has exited, if any: the supervisor stops everything then.
    pub fn exited_child(&mut self) -> Option<(String, String)> {
        for p in [
            self.envoy.as_mut(),
            self.mock.as_mut(),
            self.policy.as_mut(),
            self.redis.as_mut().map(|r| &mut r.proc),
        ]
        .into_iter()
        .flatten()
        {
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
            self.policy.as_ref(),
            self.redis.as_ref().map(|r| &r.proc),
        ]
        .into_iter()
        .flatten()
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
        for p in [
            self.envoy.as_mut(),
            self.mock.as_mut(),
            self.backup_mock.as_mut(),
            self.idp.as_mut(),
            self.policy.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            p.stop(Duration::from_secs(5));
        }
        if let Some(r) = self.redis.as_mut() {
            r.proc.stop(Duration::from_secs(5));
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

fn port_of(addr: &str) -> Result<u16, String> {
    addr.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| format!("not an address: {addr:?}"))
}

/// A clear message naming the port, instead of a child dying with EADDRINUSE.
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
