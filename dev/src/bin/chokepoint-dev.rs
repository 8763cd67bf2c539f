//! `chokepoint-dev`: runs the whole gateway locally in the foreground (what `scripts/run`
//! starts). Ctrl-C or SIGTERM stops every process it started.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use chokepoint_dev::devtoken::{DevKey, TokenSpec};
use chokepoint_dev::stack::mcp::EVERYTHING;
use chokepoint_dev::stack::{Ports, RedisMode, Stack, StackOptions};
use clap::Parser;
use tokio::signal::unix::{signal, SignalKind};

/// Run chokepoint locally from the policy file: Redis, the policy service, mock providers
/// (for every provider whose key or base URL is not in the environment) and Envoy with
/// the chokepoint filter, all on 127.0.0.1. Edits to the policy file apply live.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Repository root (state lives in ROOT/.chokepoint).
    #[arg(long, default_value = ".")]
    root: PathBuf,
    #[arg(long, env = "CHOKEPOINT_GATEWAY_PORT", default_value_t = 10000)]
    gateway_port: u16,
    #[arg(long, env = "CHOKEPOINT_ADMIN_PORT", default_value_t = 9901)]
    admin_port: u16,
    /// The policy service's gateway listener (what Envoy calls).
    #[arg(long, env = "CHOKEPOINT_POLICY_PORT", default_value_t = 8081)]
    policy_port: u16,
    /// The policy service's admin listener (admin API, metrics; the CLI's address).
    #[arg(long, env = "CHOKEPOINT_POLICY_ADMIN_PORT", default_value_t = 8082)]
    policy_admin_port: u16,
    #[arg(long, env = "CHOKEPOINT_MOCK_PORT", default_value_t = 8090)]
    mock_port: u16,
    #[arg(long, env = "CHOKEPOINT_REDIS_PORT", default_value_t = 6390)]
    redis_port: u16,
    /// MCP's reference server (the policy file's `everything` server), on loopback.
    #[arg(long, env = "CHOKEPOINT_MCP_PORT", default_value_t = 3001)]
    mcp_port: u16,
    /// Requests each user may make per minute (the policy service's limit).
    #[arg(long, env = "CHOKEPOINT_REQUESTS_PER_MINUTE", default_value_t = 60)]
    requests_per_minute: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("chokepoint: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<ExitCode, String> {
    let root = args
        .root
        .canonicalize()
        .map_err(|e| format!("{}: {e}", args.root.display()))?;
    let state = root.join(".chokepoint");
    let run_dir = state.join("run");
    std::fs::create_dir_all(&run_dir)
        .map_err(|e| format!("cannot create {}: {e}", run_dir.display()))?;
    let env_file = state.join("dev.env");
    // A stale env file would point clients at a stack that is not up (yet).
    let _ = std::fs::remove_file(&env_file);

    let (dev_key, generated) = DevKey::load_or_generate_reporting(state.join("dev-key.json"))
        .map_err(|e| e.to_string())?;
    if generated {
        eprintln!("chokepoint: generated a new dev signing key in .chokepoint/dev-key.json");
    }
    // The public half, where envoy/chokepoint.yaml's dev issuer reads it: the policy
    // file then validates and renders with `chokepoint-config` too.
    write_private(&state.join("dev-jwks.json"), &dev_key.jwks_json())?;
    let salt = persistent_secret(&state.join("uuid-salt"))?;

    let mut opts = StackOptions::defaults(&root, &run_dir, dev_key);
    opts.ports = Ports {
        gateway: args.gateway_port,
        admin: args.admin_port,
        policy: args.policy_port,
        policy_admin: args.policy_admin_port,
        mock: args.mock_port,
    };
    opts.redis = RedisMode::Tcp {
        port: args.redis_port,
        data_dir: state.join("redis"),
    };
    // The providers' own SDK variables decide where each provider goes.
    opts.provider_env = std::env::vars()
        .filter(|(k, _)| {
            k.ends_with("_API_KEY") || k.ends_with("_BASE_URL") || k == "AZURE_OPENAI_ENDPOINT"
        })
        .collect();
    // CHOKEPOINT_MCP_<NAME>_URL moves an MCP server; a credential variable the policy
    // file names may be given here too (the rest are drawn per run).
    opts.mcp_env = std::env::vars()
        .filter(|(k, _)| k.starts_with("CHOKEPOINT_MCP_") && k != "CHOKEPOINT_MCP_PORT")
        .collect();
    opts.mcp_port = Some(args.mcp_port);
    opts.apply_limits = true;
    let policy_file = opts.policy_file.clone();
    opts.salt = salt;
    opts.requests_per_window = args.requests_per_minute;
    opts.window_secs = 60;

    eprintln!(
        "chokepoint: starting Redis, policy service, mock providers, an MCP server and Envoy from {}...",
        policy_file.display()
    );
    let mut stack = Stack::start(opts).await?;

    let token = stack.token(
        &TokenSpec::new("dev-user")
            .with_tenant("dev")
            .with_groups(["dev"])
            .with_ttl(Duration::from_secs(24 * 3600)),
    );
    let cli = format!(
        "env CHOKEPOINT_POLICY_ADMIN_URL={} CHOKEPOINT_ADMIN_TOKEN={} {}",
        stack.policy_admin_url,
        stack.opts.admin_token,
        stack.opts.bin_dir.join("chokepoint-policy").display()
    );
    // The policy service's gateway token stays out: only Envoy and the service hold it.
    let mcp_url = stack.mcp_gateway_url(EVERYTHING);
    let mut env = format!(
        "CHOKEPOINT_URL={}\nCHOKEPOINT_ADMIN_URL={}\nCHOKEPOINT_POLICY_URL={}\nCHOKEPOINT_POLICY_ADMIN_URL={}\nCHOKEPOINT_TOKEN={}\nCHOKEPOINT_ADMIN_TOKEN={}\nCHOKEPOINT_ACCESS_LOG={}\nCHOKEPOINT_POLICY_CLI=\"{}\"\n",
        stack.gateway_url,
        stack.admin_url,
        stack.policy_url,
        stack.policy_admin_url,
        token,
        stack.opts.admin_token,
        stack.usage_log().display(),
        cli
    );
    if let Some(url) = &mcp_url {
        env.push_str(&format!("CHOKEPOINT_MCP_URL={url}\n"));
    }
    write_private(&env_file, &env)?;
    print_banner(&stack, &token, mcp_url.as_deref());
    let mut policy_mtime = mtime(&policy_file);

    let mut sigint = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let code = loop {
        tokio::select! {
            _ = sigint.recv() => break ExitCode::SUCCESS,
            _ = sigterm.recv() => break ExitCode::SUCCESS,
            _ = tick.tick() => {
                // Live policy: a saved edit is validated, rendered and swapped in through
                // ECDS; an invalid file is reported and the running policy kept.
                let now = mtime(&policy_file);
                if now != policy_mtime {
                    policy_mtime = now;
                    match stack.reload_policy(&[]) {
                        Ok(v) => eprintln!("chokepoint: {} changed; policy version {v} applied", policy_file.display()),
                        Err(e) => eprintln!("chokepoint: {} changed but is invalid; keeping the running policy.\n  {e}", policy_file.display()),
                    }
                }
                if let Some((name, status)) = stack.exited_child() {
                    eprintln!("chokepoint: {name} exited unexpectedly ({status}); stopping everything.\n{}", stack.logs());
                    break ExitCode::FAILURE;
                }
            }
        }
    };
    eprintln!("chokepoint: stopping...");
    let _ = std::fs::remove_file(&env_file);
    stack.stop();
    eprintln!("chokepoint: stopped");
    Ok(code)
}

fn mtime(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn print_banner(stack: &Stack, token: &str, mcp_url: Option<&str>) {
    let upstream = stack
        .provider_targets()
        .iter()
        .map(|(name, url)| format!("{name} -> {url}"))
        .collect::<Vec<_>>()
        .join("\n               ");
    println!(
        r#"
chokepoint is running.
  gateway      {gw}   (OpenAI-compatible: POST /v1/chat/completions)
  envoy admin  {admin}
  policy       {policy}   (the gateway's; admin API and metrics on {policy_admin})
  providers    {upstream}
  config       {file} (edits apply live)
  usage log    {usage}
  logs         .chokepoint/run/*.log
  env          .chokepoint/dev.env  (CHOKEPOINT_URL, CHOKEPOINT_TOKEN, ...)

Try it from another terminal:

  curl -sS {gw}/v1/chat/completions \
    -H 'Authorization: Bearer {token}' \
    -H 'content-type: application/json' \
    -d '{{"model":"gpt-4o-mini","messages":[{{"role":"user","content":"Say hello"}}]}}'

{mcp}More tokens: scripts/token alice --tenant acme --groups ml
Press Ctrl-C to stop."#,
        mcp = mcp_url
            .map(|url| mcp_banner(url, token))
            .unwrap_or_default(),
        gw = stack.gateway_url,
        admin = stack.admin_url,
        policy = stack.policy_url,
        policy_admin = stack.policy_admin_url,
        file = stack.opts.policy_file.display(),
        usage = stack.usage_log().display(),
    );
}

/// A secret generated once and kept (git-ignored), so user UUIDs stay stable across runs.
fn persistent_secret(path: &Path) -> Result<String, String> {
    if let Ok(s) = std::fs::read_to_string(path) {
        if s.trim().len() >= 32 {
            return Ok(s.trim().to_string());
        }
    }
    let s = chokepoint_dev::stack::random_hex(32);
    write_private(path, &s)?;
    Ok(s)
}

fn write_private(path: &Path, contents: &str) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    f.write_all(contents.as_bytes())
        .map_err(|e| e.to_string())?;
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The MCP endpoint and a request that works against it (docs/mcp.md has the clients).
fn mcp_banner(url: &str, token: &str) -> String {
    format!(
        r#"MCP (server-everything through the gateway; docs/mcp.md connects each coding agent):

  curl -sS {url} \
    -H 'Authorization: Bearer {token}' \
    -H 'content-type: application/json' -H 'accept: application/json, text/event-stream' \
    -d '{{"jsonrpc":"2.0","id":1,"method":"initialize","params":{{"protocolVersion":"2025-11-25","capabilities":{{}},"clientInfo":{{"name":"curl","version":"1"}}}}}}'

"#
    )
}
