//! Peer gateways for the benchmark (`chokepoint-bench --peers`): other AI gateways run in
//! front of the same mock provider, so their overhead can be compared with chokepoint's.
//! Bench only: nothing here is part of the stack or the default test suite.
//!
//! LiteLLM (the `litellm[proxy]` PyPI package, installed into `.venv-bench` by
//! `scripts/bench --peers`) runs as its own CLI would in a plain deployment: one config
//! file with the model list and a master key, no database, uvicorn with `N` workers.
//!
//! Portkey's open-source gateway (npm `@portkey-ai/gateway`, installed into `.portkey` by
//! `scripts/bench --peers`) runs as its `npx` start does: one Node process, headless,
//! told per request which provider and host to use (`x-portkey-provider`,
//! `x-portkey-custom-host`) and passing the client's key through.

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use chokepoint_dev::stack::process::Managed;

/// The admin key LiteLLM's proxy accepts (`Authorization: Bearer ...`).
pub const LITELLM_MASTER_KEY: &str = "sk-bench-master";
/// The model name clients ask LiteLLM for; it routes to `openai/gpt-4o-mini` upstream.
pub const LITELLM_MODEL: &str = "gpt-4o-mini";
/// How long [`start_litellm`] waits for every worker to serve a real request.
pub const LITELLM_READY_TIMEOUT: Duration = Duration::from_secs(120);
/// Grace for a clean stop: uvicorn drains, then each worker runs LiteLLM's shutdown hooks,
/// which takes a few seconds on a busy machine. Use `proc.stop(LITELLM_STOP_GRACE)`
/// rather than `Managed`'s drop (3 s), after which the supervisor is killed.
pub const LITELLM_STOP_GRACE: Duration = Duration::from_secs(15);

/// How long [`start_portkey`] waits for a real request to be served.
pub const PORTKEY_READY_TIMEOUT: Duration = Duration::from_secs(30);

const READINESS_BODY: &str = r#"{"model":"gpt-4o-mini","max_tokens":64,"messages":[{"role":"user","content":"Benchmark me."}]}"#;

/// Starts LiteLLM's proxy on a free loopback port with `workers` uvicorn workers, routing
/// `gpt-4o-mini` to the OpenAI-compatible `upstream_base_url` (ending in `/v1`) with
/// `upstream_key`. Its config, log (`litellm.log`) and helper files go in `dir`.
/// Returns once `/health/liveliness` answers, a real chat completion returns 200 and all
/// `workers` have finished their startup; within [`LITELLM_READY_TIMEOUT`], else an error
/// with the log's tail.
pub async fn start_litellm(
    litellm_bin: &Path,
    dir: &Path,
    upstream_base_url: &str,
    upstream_key: &str,
    workers: usize,
) -> Result<(String, Managed), String> {
    if !litellm_bin.exists() {
        return Err(format!(
            "litellm not found at {} (scripts/bench --peers installs it into .venv-bench)",
            litellm_bin.display()
        ));
    }
    let workers = workers.max(1);
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let config = dir.join("litellm.yaml");
    write(&config, &litellm_config(upstream_base_url, upstream_key))?;
    let log_config = dir.join("litellm-uvicorn-log.json");
    write(&log_config, UVICORN_LOG_CONFIG)?;
    let site = dir.join("litellm-site");
    std::fs::create_dir_all(&site).map_err(|e| format!("cannot create {}: {e}", site.display()))?;
    write(&site.join("sitecustomize.py"), SITECUSTOMIZE)?;

    let port = free_port()?;
    let mut cmd = Command::new(litellm_bin);
    cmd.arg("--config")
        .arg(&config)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--num_workers", &workers.to_string()])
        // Lifecycle lines ("Application startup complete.") in the log, which tell when
        // every worker serves; access logs stay off, as LITELLM_LOG=ERROR has them.
        .arg("--log_config")
        .arg(&log_config)
        // uvicorn kills a worker that does not answer its supervisor's ping within this
        // (default 5 s); a worker cannot answer while it imports LiteLLM, which takes
        // longer than 5 s when several start at once on a busy machine.
        .args(["--timeout_worker_healthcheck", "60"])
        .current_dir(dir);
    // A clean environment: nothing from the caller's (a DATABASE_URL, REDIS_HOST,
    // DEBUG, proxy variables, provider keys) changes what LiteLLM does.
    cmd.env_clear();
    for name in ["PATH", "HOME", "TMPDIR", "LANG", "LC_ALL"] {
        if let Some(v) = std::env::var_os(name) {
            cmd.env(name, v);
        }
    }
    cmd.env("LITELLM_LOG", "ERROR")
        // No .env from the working directory.
        .env("LITELLM_MODE", "PRODUCTION")
        // The data LiteLLM would otherwise fetch from the internet at start: use the
        // copies the package ships.
        .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        .env("LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS", "True")
        .env("LITELLM_LOCAL_BLOG_POSTS", "True")
        .env("LITELLM_LOCAL_POLICY_TEMPLATES", "True")
        .env("LITELLM_LOCAL_AUTOROUTER_PRESETS", "True")
        .env("NO_PROXY", "127.0.0.1,localhost")
        // Fits LITELLM_STOP_GRACE: uvicorn waits this long for open requests.
        .env("GRACEFUL_SHUTDOWN_TIMEOUT", "5")
        // sitecustomize.py: workers die with their supervisor.
        .env("PYTHONPATH", &site)
        .env("PYTHONUNBUFFERED", "1");

    let log = dir.join("litellm.log");
    // The log is appended to across starts: count only what this start writes.
    let log_start = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
    let mut proc = Managed::spawn("litellm", cmd, &log).map_err(|e| e.to_string())?;
    let base_url = format!("http://127.0.0.1:{port}");
    wait_ready(&mut proc, &base_url, log_start, workers).await?;
    Ok((base_url, proc))
}

/// Starts Portkey's gateway (`server_js`, the package's `build/start-server.js`) with
/// `node` on a free loopback port, its preload and log (`portkey.log`) in `dir`. Returns
/// its base URL once a real chat completion through it to `upstream_base_url` (ending in
/// `/v1`) returns 200, within [`PORTKEY_READY_TIMEOUT`], else an error with the log's tail.
pub async fn start_portkey(
    server_js: &Path,
    dir: &Path,
    upstream_base_url: &str,
    upstream_key: &str,
) -> Result<(String, Managed), String> {
    if !server_js.exists() {
        return Err(format!(
            "Portkey's gateway not found at {} (scripts/bench --peers installs it into .portkey)",
            server_js.display()
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let preload = dir.join("portkey-preload.mjs");
    write(&preload, PORTKEY_PRELOAD)?;
    let port = free_port()?;
    let mut cmd = Command::new("node");
    cmd.arg("--import")
        .arg(&preload)
        .arg(server_js)
        .arg(format!("--port={port}"))
        .arg("--headless")
        .current_dir(dir);
    // A clean environment, as for LiteLLM: no Redis, proxy or provider settings of the
    // caller's reach it. NODE_ENV=production: no log-viewer UI and its log stream.
    cmd.env_clear();
    for name in ["PATH", "HOME", "TMPDIR", "LANG", "LC_ALL"] {
        if let Some(v) = std::env::var_os(name) {
            cmd.env(name, v);
        }
    }
    cmd.env("NODE_ENV", "production");
    let log = dir.join("portkey.log");
    let mut proc = Managed::spawn("portkey", cmd, &log).map_err(|e| e.to_string())?;
    let base_url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + PORTKEY_READY_TIMEOUT;
    let mut last = String::from("no answer yet");
    loop {
        if let Some(status) = proc.exited() {
            return Err(format!(
                "portkey exited ({status}) before it was ready; its log ({}):\n{}",
                proc.log.display(),
                proc.log_tail(4000)
            ));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "portkey was not ready after {PORTKEY_READY_TIMEOUT:?} ({last}); its log ({}):\n{}",
                proc.log.display(),
                proc.log_tail(4000)
            ));
        }
        let mut request = client
            .post(format!("{base_url}/v1/chat/completions"))
            .body(READINESS_BODY);
        for (name, value) in portkey_headers(upstream_base_url, upstream_key) {
            request = request.header(name, value);
        }
        match request.send().await {
            Ok(r) if r.status() == reqwest::StatusCode::OK => return Ok((base_url, proc)),
            Ok(r) => {
                let status = r.status();
                let body = r.text().await.unwrap_or_default();
                last = format!("POST /v1/chat/completions: {status} {body:.300}");
            }
            Err(e) => last = format!("POST /v1/chat/completions: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What a client of Portkey's gateway sends for the OpenAI-compatible `upstream_base_url`:
/// the provider and its host per request, and the provider key, which Portkey passes on.
pub fn portkey_headers(upstream_base_url: &str, upstream_key: &str) -> Vec<(String, String)> {
    vec![
        ("authorization".into(), format!("Bearer {upstream_key}")),
        ("x-portkey-provider".into(), "openai".into()),
        ("x-portkey-custom-host".into(), upstream_base_url.into()),
        ("content-type".into(), "application/json".into()),
    ]
}

/// Loaded before Portkey's gateway (`node --import`):
/// - its server binds every interface and has no option to bind one; every listen here
///   is held to 127.0.0.1, as everything the benchmark starts is;
/// - on Node, Portkey 1.15.2 adds its `x-portkey-*` headers to the upstream's own fetch
///   response, whose headers are immutable, so every stream fails with `TypeError:
///   immutable` (Portkey-AI/gateway issues 1389 and 1550). Each fetch response is re-made
///   with mutable headers around the same body (not read or buffered here), as the fix
///   proposed upstream does; it costs Portkey one object per request.
const PORTKEY_PRELOAD: &str = r#"// Written by chokepoint's benchmark (perf/src/peers.rs).
import net from 'node:net';

const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === 'object' && args[0] !== null) {
    args[0] = { ...args[0], host: '127.0.0.1' };
  } else if (typeof args[0] === 'number') {
    if (typeof args[1] === 'string') args[1] = '127.0.0.1';
    else args.splice(1, 0, '127.0.0.1');
  }
  return listen.apply(this, args);
};

const upstreamFetch = globalThis.fetch;
globalThis.fetch = async (...args) => {
  const r = await upstreamFetch(...args);
  return new Response(r.body, { status: r.status, statusText: r.statusText, headers: new Headers(r.headers) });
};
"#;

/// LiteLLM's proxy config: one model, a master key, no database (none configured), no
/// callbacks. Client `x-` headers go upstream (`forward_client_headers_to_llm_api`), as
/// they do through Envoy, so the mock's `x-mock-*` controls work through LiteLLM too.
pub fn litellm_config(upstream_base_url: &str, upstream_key: &str) -> String {
    // JSON strings are valid YAML double-quoted scalars.
    let q = |s: &str| serde_json::Value::from(s).to_string();
    format!(
        "model_list:
  - model_name: {model}
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: {base}
      api_key: {key}
general_settings:
  master_key: {master}
  forward_client_headers_to_llm_api: true
litellm_settings:
  request_timeout: 600
  set_verbose: false
",
        model = q(LITELLM_MODEL),
        base = q(upstream_base_url),
        key = q(upstream_key),
        master = q(LITELLM_MASTER_KEY),
    )
}

/// uvicorn's logging: lifecycle at INFO (a few lines per worker start and stop), access
/// log off.
const UVICORN_LOG_CONFIG: &str = r#"{
  "version": 1,
  "disable_existing_loggers": false,
  "formatters": {
    "default": {"()": "uvicorn.logging.DefaultFormatter", "fmt": "%(levelprefix)s %(message)s", "use_colors": false}
  },
  "handlers": {
    "default": {"class": "logging.StreamHandler", "formatter": "default", "stream": "ext://sys.stderr"}
  },
  "loggers": {
    "uvicorn": {"handlers": ["default"], "level": "INFO", "propagate": false},
    "uvicorn.error": {"level": "INFO"},
    "uvicorn.access": {"handlers": ["default"], "level": "WARNING", "propagate": false}
  }
}
"#;

/// Every Python process of this LiteLLM (the uvicorn supervisor, its workers and the
/// multiprocessing resource tracker) asks the kernel for SIGTERM when its parent dies:
/// `Managed` kills only the supervisor, and uvicorn's workers would otherwise outlive a
/// supervisor killed with SIGKILL.
const SITECUSTOMIZE: &str = r#"# Written by chokepoint's benchmark (perf/src/peers.rs).
import ctypes
import signal

try:
    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
except Exception:
    pass
"#;

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// A port free on loopback now (bound, read, released). Never 4000: LiteLLM's CLI
/// quietly moves to a random port when 4000, its default, looks busy.
fn free_port() -> Result<u16, String> {
    loop {
        let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("cannot bind: {e}"))?;
        let port = l.local_addr().map_err(|e| e.to_string())?.port();
        if port != 4000 {
            return Ok(port);
        }
    }
}

async fn wait_ready(
    proc: &mut Managed,
    base_url: &str,
    log_start: u64,
    workers: usize,
) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let start = Instant::now();
    let deadline = start + LITELLM_READY_TIMEOUT;
    let mut live = false;
    let mut answered = false;
    let mut last = String::from("no answer yet");
    loop {
        if let Some(status) = proc.exited() {
            return Err(format!(
                "litellm exited ({status}) before it was ready; its log ({}):\n{}",
                proc.log.display(),
                proc.log_tail(4000)
            ));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "litellm was not ready after {LITELLM_READY_TIMEOUT:?} ({last}); its log ({}):\n{}",
                proc.log.display(),
                proc.log_tail(4000)
            ));
        }
        if !live {
            match client
                .get(format!("{base_url}/health/liveliness"))
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => live = true,
                Ok(r) => last = format!("GET /health/liveliness: {}", r.status()),
                Err(e) => last = format!("GET /health/liveliness: {e}"),
            }
        }
        if live && !answered {
            let r = client
                .post(format!("{base_url}/v1/chat/completions"))
                .bearer_auth(LITELLM_MASTER_KEY)
                .header("content-type", "application/json")
                .body(READINESS_BODY)
                .send()
                .await;
            match r {
                Ok(r) if r.status() == reqwest::StatusCode::OK => answered = true,
                Ok(r) => {
                    let status = r.status();
                    let body = r.text().await.unwrap_or_default();
                    last = format!("POST /v1/chat/completions: {status} {body:.300}");
                }
                Err(e) => last = format!("POST /v1/chat/completions: {e}"),
            }
        }
        if answered {
            // One worker serving is not all of them: wait for each worker's startup line.
            let started = started_workers(proc, log_start);
            if started >= workers {
                return Ok(());
            }
            last = format!("{started} of {workers} workers started");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// uvicorn workers that finished their startup since the log was `log_start` bytes long.
fn started_workers(proc: &Managed, log_start: u64) -> usize {
    let Ok(bytes) = std::fs::read(&proc.log) else {
        return 0;
    };
    let from = (log_start as usize).min(bytes.len());
    String::from_utf8_lossy(&bytes[from..])
        .matches("Application startup complete.")
        .count()
}
