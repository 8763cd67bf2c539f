//! `chokepoint-dev`: runs the whole gateway locally in the foreground (what `scripts/run`
//! starts). Ctrl-C or SIGTERM stops every process it started.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use chokepoint_testbed::devtoken::{DevKey, TokenSpec};
use chokepoint_testbed::stack::{Ports, Provider, RedisMode, Stack, StackOptions};
use clap::Parser;
use tokio::signal::unix::{signal, SignalKind};

/// Run chokepoint locally: Redis, the policy service, a mock OpenAI provider (unless
/// OPENAI_API_KEY is set) and Envoy with the chokepoint filter, all on 127.0.0.1.
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
    #[arg(long, env = "CHOKEPOINT_POLICY_PORT", default_value_t = 8081)]
    policy_port: u16,
    #[arg(long, env = "CHOKEPOINT_MOCK_PORT", default_value_t = 8090)]
    mock_port: u16,
    #[arg(long, env = "CHOKEPOINT_REDIS_PORT", default_value_t = 6390)]
    redis_port: u16,
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
    let salt = persistent_secret(&state.join("uuid-salt"))?;

    let real_key = std::env::var("OPENAI_API_KEY")
        .ok()
        .map(|k| k.trim().to_string())
        .filter(|k| !k.is_empty());
    let real = real_key.is_some();

    let mut opts = StackOptions::defaults(&root, &run_dir, dev_key);
    opts.ports = Ports {
        gateway: args.gateway_port,
        admin: args.admin_port,
        policy: args.policy_port,
        mock: args.mock_port,
    };
    opts.redis = RedisMode::Tcp {
        port: args.redis_port,
        data_dir: state.join("redis"),
    };
    if let Some(api_key) = real_key {
        opts.provider = Provider::OpenAi { api_key };
    }
    opts.salt = salt;
    opts.requests_per_window = args.requests_per_minute;
    opts.window_secs = 60;

    eprintln!(
        "chokepoint: starting Redis, policy service, {} and Envoy...",
        if real {
            "OpenAI upstream"
        } else {
            "mock provider"
        }
    );
    let mut stack = Stack::start(opts).await?;

    let token = stack.token(
        &TokenSpec::new("dev-user")
            .with_tenant("dev")
            .with_groups(["dev"])
            .with_ttl(Duration::from_secs(24 * 3600)),
    );
    let env = format!(
        "CHOKEPOINT_URL={}\nCHOKEPOINT_ADMIN_URL={}\nCHOKEPOINT_POLICY_URL={}\nCHOKEPOINT_TOKEN={}\nCHOKEPOINT_ADMIN_TOKEN={}\n",
        stack.gateway_url, stack.admin_url, stack.policy_url, token, stack.opts.admin_token
    );
    write_private(&env_file, &env)?;
    print_banner(&stack, &token, real);

    let mut sigint = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let code = loop {
        tokio::select! {
            _ = sigint.recv() => break ExitCode::SUCCESS,
            _ = sigterm.recv() => break ExitCode::SUCCESS,
            _ = tick.tick() => {
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

fn print_banner(stack: &Stack, token: &str, real: bool) {
    let upstream = match &stack.mock_url {
        Some(url) if !real => {
            format!("mock OpenAI provider at {url} (set OPENAI_API_KEY to use the real API)")
        }
        _ => "https://api.openai.com (OPENAI_API_KEY from your environment)".to_string(),
    };
    println!(
        r#"
chokepoint is running.
  gateway      {gw}   (OpenAI-compatible: POST /v1/chat/completions)
  envoy admin  {admin}
  policy       {policy}
  upstream     {upstream}
  logs         .chokepoint/run/*.log
  env          .chokepoint/dev.env  (CHOKEPOINT_URL, CHOKEPOINT_TOKEN, ...)

Try it from another terminal:

  curl -sS {gw}/v1/chat/completions \
    -H 'Authorization: Bearer {token}' \
    -H 'content-type: application/json' \
    -d '{{"model":"gpt-4o-mini","messages":[{{"role":"user","content":"Say hello"}}]}}'

More tokens: scripts/token alice --tenant acme --groups ml
Press Ctrl-C to stop."#,
        gw = stack.gateway_url,
        admin = stack.admin_url,
        policy = stack.policy_url,
    );
}

/// A secret generated once and kept (git-ignored), so user UUIDs stay stable across runs.
fn persistent_secret(path: &Path) -> Result<String, String> {
    if let Ok(s) = std::fs::read_to_string(path) {
        if s.trim().len() >= 32 {
            return Ok(s.trim().to_string());
        }
    }
    let s = chokepoint_testbed::stack::random_hex(32);
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
