//! `chokepoint-bench` (behind `scripts/bench`): the same mock upstream, the same load,
//! measured back to back in one run: the upstream alone, bare Envoy, Envoy with its native
//! `jwt_authn` (the same key, its JWT cache on), and Envoy with chokepoint's full path
//! (JWT with a warm cache, routing, per-attempt key injection, accounting, usage
//! delivery), once with leases and once with one authorize callout per request, switched
//! live in the same Envoy. Non-streaming POSTs at each connection count, then streams of
//! 40 SSE events (time to first byte and total). Reports requests/s, latency percentiles,
//! CPU per request of Envoy and the policy service, and ratios to bare Envoy; each
//! configuration runs `--repeat` times (in rounds) and the spread is reported. A benchmark, not a
//! test: bounded, loopback only.

use std::process::Command;
use std::time::Duration;

use chokepoint_dev::devtoken::{DevKey, TokenSpec};
use chokepoint_dev::stack::{Stack, StackOptions};
use chokepoint_perf::bench::{self, Load};
use chokepoint_perf::peers;
use chokepoint_perf::reference_envoy::{self, bare_envoy, Extra};
use clap::Parser;
use serde_json::json;

#[derive(Parser)]
#[command(
    version,
    about = "Benchmark chokepoint against bare Envoy, Envoy's jwt_authn and the upstream alone"
)]
struct Args {
    /// Seconds per configuration and load level.
    #[arg(long, default_value_t = 8)]
    seconds: u64,
    /// Connection counts to run.
    #[arg(long, value_delimiter = ',', default_value = "16,64")]
    connections: Vec<usize>,
    /// Runs of each configuration (the spread between them is reported).
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Run only these configurations (upstream, bare, jwt_authn, leases, callout, mcp); all
    /// when empty. For profiling one of them.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Slots per lease decision in the leases configuration (the policy file's
    /// `policy_service.lease_slots`, at most 64). One caller at thousands of requests a
    /// second, as here, needs the most.
    #[arg(long, default_value_t = 64)]
    lease_slots: u64,
    /// Also measure LiteLLM's proxy (2 workers, a master key) and Portkey's gateway (one
    /// Node process) in front of the same upstream; from CHOKEPOINT_LITELLM and
    /// CHOKEPOINT_PORTKEY (scripts/bench --peers installs both).
    #[arg(long)]
    peers: bool,
    /// The offered rate (requests/s, 16 connections) of the fixed-rate load, which shows
    /// the latency each configuration adds when the machine is not saturated; 0 skips it.
    #[arg(long, default_value_t = 2000.0)]
    rate: f64,
    /// The offered rate (streams/s, 16 connections) of the fixed-rate streaming load,
    /// for time to first byte on a machine that is not saturated; 0 skips it.
    #[arg(long, default_value_t = 500.0)]
    stream_rate: f64,
    /// Usage records per delivery batch (the policy file's `audit.usage.batch_max`);
    /// the file's own when absent.
    #[arg(long)]
    usage_batch_max: Option<u64>,
    /// Skip the streaming load.
    #[arg(long)]
    no_stream: bool,
    /// Run the policy service with `--usage-audit-stream off` (booked records not logged
    /// in Redis): what the ledger costs without the per-record audit entry.
    #[arg(long)]
    no_audit_stream: bool,
    /// Profiling aid: load this URL only (with `--header`s and the plain body), report
    /// rps and the CPU per request of each `--pid`, and exit.
    #[arg(long)]
    load: Option<String>,
    /// A header for `--load`, as `name: value`.
    #[arg(long)]
    header: Vec<String>,
    /// `--load` at this fixed rate (requests/s) rather than a closed loop.
    #[arg(long)]
    load_rate: Option<f64>,
    /// A process whose CPU per request `--load` reports.
    #[arg(long)]
    pid: Vec<u32>,
    /// Profiling aid: start the stack, print its addresses and a token, keep it up this
    /// many seconds, and exit.
    #[arg(long)]
    hold: Option<u64>,
    /// Where to write the results (JSON).
    #[arg(long, default_value = "bench/results.json")]
    out: String,
}

struct Row {
    config: &'static str,
    mode: &'static str,
    connections: usize,
    runs: Vec<Run>,
}

struct Run {
    load: Load,
    envoy_cpu_us_per_req: Option<f64>,
    policy_cpu_us_per_req: Option<f64>,
    redis_cpu_us_per_req: Option<f64>,
    /// Callouts to the policy service per request: decisions asked by requests, lease
    /// renewals, and usage batches.
    callouts_per_req: Option<f64>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    Upstream,
    Bare,
    EmptyWasm,
    JwtAuthn,
    Identity,
    Leases,
    Callout,
    LiteLlm,
    Portkey,
}

/// (report name, `--only` name, target)
const CASES: [(&str, &str, Target); 9] = [
    ("upstream alone", "upstream", Target::Upstream),
    ("bare envoy", "bare", Target::Bare),
    ("envoy + empty wasm filter", "empty", Target::EmptyWasm),
    ("envoy + jwt_authn (native)", "jwt_authn", Target::JwtAuthn),
    (
        "envoy + chokepoint (identity only)",
        "identity",
        Target::Identity,
    ),
    ("envoy + chokepoint (leases)", "leases", Target::Leases),
    (
        "envoy + chokepoint (callout per request)",
        "callout",
        Target::Callout,
    ),
    ("litellm proxy (2 workers)", "litellm", Target::LiteLlm),
    ("portkey gateway (node)", "portkey", Target::Portkey),
];

/// A load shape: its name, the request body, extra headers, connection counts, and a
/// fixed offered rate (requests/s) or none for a closed loop.
type Mode<'a> = (
    &'static str,
    &'a [u8],
    &'a [(String, String)],
    Vec<usize>,
    Option<f64>,
);

/// Worker counts at which idle RSS is read, with and without the filter.
const RSS_WORKERS: [u32; 3] = [1, 2, 4];

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let plain = serde_json::to_vec(&json!({"model": "gpt-4o-mini", "max_tokens": 64,
        "messages": [{"role": "user", "content": "Benchmark me."}]}))
    .unwrap_or_default();
    if let Some(url) = &args.load {
        load_only(&args, url, &plain).await;
        return;
    }
    let root = std::env::current_dir().unwrap_or_default();
    let run_dir = std::env::temp_dir().join(format!("chokepoint-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&run_dir);
    let mut opts = StackOptions::defaults(&root, &run_dir, DevKey::generate_with_derived_kid());
    opts.requests_per_window = u64::MAX / 4;
    // MCP's reference server, for the MCP row.
    opts.mcp_port = Some(0);
    opts.usage_flush_ms = 1000;
    opts.usage_audit_stream = !args.no_audit_stream;
    let mut stack = match Stack::start(opts).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("chokepoint-bench: {e}");
            std::process::exit(1);
        }
    };
    let fail = |what: &str, e: String| -> ! {
        eprintln!("chokepoint-bench: {what}: {e}");
        std::process::exit(1)
    };
    let workers = stack.opts.envoy_concurrency;
    let bare = bare_envoy(&stack, &run_dir, "bare", Extra::None, workers)
        .await
        .unwrap_or_else(|e| fail("bare Envoy", e));
    let jwks = stack.opts.dev_key.jwks_json();
    let jwt_envoy = bare_envoy(
        &stack,
        &run_dir,
        "jwt-authn",
        Extra::JwtAuthn(&jwks),
        workers,
    )
    .await
    .unwrap_or_else(|e| fail("jwt_authn Envoy", e));
    let empty_wasm = reference_envoy::empty_filter_wasm(&root);
    let empty_envoy = bare_envoy(
        &stack,
        &run_dir,
        "empty-wasm",
        Extra::EmptyWasm(&empty_wasm),
        workers,
    )
    .await
    .unwrap_or_else(|e| fail("empty-filter Envoy", e));
    // A peer runs only when measured: with --peers, unless --only leaves it out.
    let wanted =
        |short: &str| args.peers && (args.only.is_empty() || args.only.iter().any(|o| o == short));
    let mut litellm = match (wanted("litellm"), std::env::var_os("CHOKEPOINT_LITELLM")) {
        (false, _) => None,
        (true, None) => fail("--peers", "CHOKEPOINT_LITELLM is not set".into()),
        (true, Some(bin)) => {
            let upstream = stack.mock_url.clone().unwrap_or_default();
            let started = peers::start_litellm(
                std::path::Path::new(&bin),
                &run_dir.join("litellm"),
                &format!("{upstream}/v1"),
                &stack.opts.mock_key,
                2,
            )
            .await;
            Some(started.unwrap_or_else(|e| fail("LiteLLM", e)))
        }
    };
    let portkey = match (wanted("portkey"), std::env::var_os("CHOKEPOINT_PORTKEY")) {
        (false, _) => None,
        (true, None) => fail("--peers", "CHOKEPOINT_PORTKEY is not set".into()),
        (true, Some(server_js)) => {
            let upstream = stack.mock_url.clone().unwrap_or_default();
            let started = peers::start_portkey(
                std::path::Path::new(&server_js),
                &run_dir.join("portkey"),
                &format!("{upstream}/v1"),
                &stack.opts.mock_key,
            )
            .await;
            Some(started.unwrap_or_else(|e| fail("Portkey", e)))
        }
    };
    let portkey_headers = peers::portkey_headers(
        &format!("{}/v1", stack.mock_url.clone().unwrap_or_default()),
        &stack.opts.mock_key,
    );
    let litellm_headers = vec![
        (
            "authorization".to_string(),
            format!("Bearer {}", peers::LITELLM_MASTER_KEY),
        ),
        ("content-type".to_string(), "application/json".to_string()),
    ];
    let jwt = stack.token(&TokenSpec::new("bench-user").with_ttl(Duration::from_secs(3600)));
    let mock_auth = vec![
        (
            "authorization".to_string(),
            format!("Bearer {}", stack.opts.mock_key),
        ),
        ("content-type".to_string(), "application/json".to_string()),
    ];
    let mut jwt_authn_headers = mock_auth.clone();
    jwt_authn_headers.push(("x-jwt".to_string(), jwt.clone()));
    let gateway_auth = vec![
        ("authorization".to_string(), format!("Bearer {jwt}")),
        ("content-type".to_string(), "application/json".to_string()),
    ];
    let mock = format!(
        "{}/v1/chat/completions",
        stack.mock_url.clone().unwrap_or_default()
    );
    let duration = Duration::from_secs(args.seconds.clamp(1, 120));
    let rss_bare = bench::rss_kib(bare.1.pid().unwrap_or(0));
    let rss_empty = bench::rss_kib(empty_envoy.1.pid().unwrap_or(0));
    let rss_full_before = bench::rss_kib(stack.envoy_pid().unwrap_or(0));

    if let Some(secs) = args.hold {
        eprintln!(
            "gateway {}\nmock {}\nenvoy pid {:?}\npolicy pid {:?}\nrun dir {}\nbare {}\ntoken {jwt}",
            stack.gateway_url,
            mock,
            stack.envoy_pid(),
            stack.policy_pid(),
            run_dir.display(),
            bare.0,
        );
        tokio::time::sleep(Duration::from_secs(secs.min(3600))).await;
        return;
    }
    let streamed = serde_json::to_vec(
        &json!({"model": "gpt-4o-mini", "max_tokens": 64, "stream": true,
        "messages": [{"role": "user", "content": "Benchmark me."}]}),
    )
    .unwrap_or_default();
    // (mode, body, extra headers, connection counts)
    let stream_headers = [("x-mock-words".to_string(), "40".to_string())];
    let mut modes: Vec<Mode> = vec![("json", &plain, &[], args.connections.clone(), None)];
    if args.rate > 0.0 {
        modes.push((
            "json at a fixed rate",
            &plain,
            &[],
            vec![16],
            Some(args.rate),
        ));
    }
    if !args.no_stream {
        modes.push((
            "stream (40 events)",
            &streamed,
            &stream_headers,
            vec![16],
            None,
        ));
        if args.stream_rate > 0.0 {
            modes.push((
                "stream (40 events) at a fixed rate",
                &streamed,
                &stream_headers,
                vec![16],
                Some(args.stream_rate),
            ));
        }
    }

    // Rounds, not repeats in a row: each round measures every configuration once, so a
    // slow spell of this shared VM falls on all of them rather than on one.
    let mut rows: Vec<Row> = Vec::new();
    for round in 0..args.repeat.clamp(1, 5) {
        for (mode, body, extra, conns, rate) in &modes {
            for &c in conns {
                let c = c.clamp(1, 256);
                for (config, short, target) in CASES {
                    if !args.only.is_empty() && !args.only.iter().any(|o| o == short) {
                        continue;
                    }
                    let peer = matches!(target, Target::LiteLlm | Target::Portkey);
                    if peer && rate.is_some() {
                        // The peers serve a few hundred requests/s: a fixed rate chokepoint
                        // is measured at would only queue them.
                        continue;
                    }
                    let (url, headers, envoy_pid, policy_pid) = match target {
                        Target::Upstream => (mock.clone(), &mock_auth, None, None),
                        Target::Bare => (
                            format!("{}/v1/chat/completions", bare.0),
                            &mock_auth,
                            bare.1.pid(),
                            None,
                        ),
                        Target::EmptyWasm => (
                            format!("{}/v1/chat/completions", empty_envoy.0),
                            &mock_auth,
                            empty_envoy.1.pid(),
                            None,
                        ),
                        Target::JwtAuthn => (
                            format!("{}/v1/chat/completions", jwt_envoy.0),
                            &jwt_authn_headers,
                            jwt_envoy.1.pid(),
                            None,
                        ),
                        Target::LiteLlm => {
                            let Some((base, proc)) = &litellm else {
                                continue;
                            };
                            (
                                format!("{base}/v1/chat/completions"),
                                &litellm_headers,
                                proc.pid(),
                                None,
                            )
                        }
                        Target::Portkey => {
                            let Some((base, proc)) = &portkey else {
                                continue;
                            };
                            (
                                format!("{base}/v1/chat/completions"),
                                &portkey_headers,
                                proc.pid(),
                                None,
                            )
                        }
                        Target::Identity | Target::Leases | Target::Callout => {
                            // The same running Envoy in every mode: the setting changes live.
                            let (mode, slots) = match target {
                                Target::Identity => ("identity", 0),
                                Target::Leases => ("full", args.lease_slots.min(64)),
                                _ => ("full", 0),
                            };
                            if let Err(e) =
                                configure(&mut stack, mode, slots, args.usage_batch_max).await
                            {
                                fail("filter setting", e);
                            }
                            (
                                format!("{}/v1/chat/completions", stack.gateway_url),
                                &gateway_auth,
                                stack.envoy_pid(),
                                stack.policy_pid(),
                            )
                        }
                    };
                    let mut headers = headers.clone();
                    headers.extend(extra.iter().cloned());
                    {
                        // A short warm-up: connections, token cache, scripts, a lease (and
                        // the peers: every LiteLLM worker and Portkey's JIT, whose first
                        // requests are slow).
                        let warm = if peer { 3_000 } else { 500 };
                        bench::run(&url, &headers, body, c, Duration::from_millis(warm)).await;
                        let redis_pid = policy_pid.and(stack.redis_pid());
                        // LiteLLM is a supervisor and its workers: count them all.
                        let cpu = |pid: u32| {
                            if target == Target::LiteLlm {
                                bench::tree_cpu_us(pid)
                            } else {
                                bench::cpu_us(pid)
                            }
                        };
                        let (e0, p0) = (envoy_pid.map(cpu), policy_pid.map(bench::cpu_us));
                        let r0 = redis_pid.map(bench::cpu_us);
                        let callouts = "cluster.chokepoint_policy.upstream_rq_total";
                        let c0 = stack.envoy_stat(callouts).await;
                        let load = bench::run_at(&url, &headers, body, c, duration, *rate).await;
                        let c1 = stack.envoy_stat(callouts).await;
                        let per_with =
                            |f: &dyn Fn(u32) -> u64, before: Option<u64>, pid: Option<u32>| {
                                Some(
                                    (f(pid?).saturating_sub(before?)) as f64
                                        / load.requests.max(1) as f64,
                                )
                            };
                        let per = |before: Option<u64>, pid: Option<u32>| {
                            per_with(&bench::cpu_us, before, pid)
                        };
                        eprintln!(
                        "{:<42} {:<18} c={:<3} {:>8.0} rps  p50 {:.2} ms  p99 {:.2} ms  ttfb p50 {:.2} ms  errors {}",
                        config, mode, c, load.rps(), load.p50_ms, load.p99_ms, load.ttfb_p50_ms, load.errors
                    );
                        let run = Run {
                            envoy_cpu_us_per_req: per_with(&cpu, e0, envoy_pid),
                            policy_cpu_us_per_req: per(p0, policy_pid),
                            redis_cpu_us_per_req: per(r0, redis_pid),
                            callouts_per_req: policy_pid
                                .map(|_| (c1 - c0.min(c1)) as f64 / load.requests.max(1) as f64),
                            load,
                        };
                        let same = |r: &&mut Row| {
                            r.config == config && r.mode == *mode && r.connections == c
                        };
                        match rows.iter_mut().find(same) {
                            Some(row) => row.runs.push(run),
                            None => rows.push(Row {
                                config,
                                mode,
                                connections: c,
                                runs: vec![run],
                            }),
                        }
                    }
                }
            }
        }
        eprintln!("round {} of {} done", round + 1, args.repeat.clamp(1, 5));
    }
    let mcp = if args.only.is_empty() || args.only.iter().any(|o| o == "mcp") {
        if let Err(e) = configure(
            &mut stack,
            "full",
            args.lease_slots.min(64),
            args.usage_batch_max,
        )
        .await
        {
            fail("filter setting", e);
        }
        Some(
            mcp_row(&stack, &jwt, duration)
                .await
                .unwrap_or_else(|e| fail("MCP", e)),
        )
    } else {
        None
    };
    let rss_full = bench::rss_kib(stack.envoy_pid().unwrap_or(0));
    // The filter's memory is mostly per process (one compile of the module), so RSS is
    // read at several worker counts and split into a fixed and a per-worker part.
    let rss_points = reference_envoy::rss_by_workers(&mut stack, &run_dir, &RSS_WORKERS)
        .await
        .unwrap_or_else(|e| fail("RSS by worker count", e));
    let rss_fit = reference_envoy::added_rss_fit(&rss_points);

    let summary = |r: &Row| {
        let mut rps: Vec<f64> = r.runs.iter().map(|x| x.load.rps()).collect();
        let spread =
            rps.iter().cloned().fold(0.0, f64::max) - rps.iter().cloned().fold(f64::MAX, f64::min);
        let med = |f: &dyn Fn(&Run) -> f64| median(&mut r.runs.iter().map(f).collect::<Vec<_>>());
        let cpu = |f: &dyn Fn(&Run) -> Option<f64>| {
            let mut v: Vec<f64> = r.runs.iter().filter_map(f).collect();
            (!v.is_empty()).then(|| median(&mut v))
        };
        (
            median(&mut rps),
            spread,
            med(&|x| x.load.p50_ms),
            med(&|x| x.load.p90_ms),
            med(&|x| x.load.p99_ms),
            med(&|x| x.load.ttfb_p50_ms),
            med(&|x| x.load.ttfb_p99_ms),
            cpu(&|x| x.envoy_cpu_us_per_req),
            cpu(&|x| x.policy_cpu_us_per_req),
            r.runs.iter().map(|x| x.load.errors).sum::<u64>(),
            cpu(&|x| x.redis_cpu_us_per_req),
            cpu(&|x| x.callouts_per_req),
        )
    };
    let results: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            let (rps, spread, p50, p90, p99, t50, t99, ecpu, pcpu, errors, rcpu, callouts) =
                summary(r);
            let bare_row = rows.iter().find(|b| {
                b.config == "bare envoy" && b.connections == r.connections && b.mode == r.mode
            });
            let (bare_rps, bare_p50, bare_p99, bare_t50, bare_cpu) =
                bare_row.map_or((0.0, 0.0, 0.0, 0.0, None), |b| {
                    let s = summary(b);
                    (s.0, s.2, s.4, s.5, s.7)
                });
            json!({
                "config": r.config, "mode": r.mode, "connections": r.connections,
                "runs": r.runs.len(), "seconds_per_run": duration.as_secs(),
                "rps": rps, "rps_spread": spread, "errors": errors,
                "p50_ms": p50, "p90_ms": p90, "p99_ms": p99,
                "ttfb_p50_ms": t50, "ttfb_p99_ms": t99,
                "added_p50_ms": p50 - bare_p50, "added_p99_ms": p99 - bare_p99,
                "added_ttfb_p50_ms": t50 - bare_t50,
                "ratio_vs_envoy": if bare_rps > 0.0 { rps / bare_rps } else { 0.0 },
                "cpu_us_per_req": {"envoy": ecpu, "policy": pcpu, "redis": rcpu},
                "added_cpu_us_per_req": match (ecpu, bare_cpu) {
                    (Some(e), Some(b)) => Some(e - b + pcpu.unwrap_or(0.0) + rcpu.unwrap_or(0.0)),
                    _ => None,
                },
                "policy_callouts_per_req": callouts,
            })
        })
        .collect();
    let envoy_version = Command::new(&stack.opts.envoy)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let wasm_bytes = std::fs::metadata(&stack.opts.wasm).map_or(0, |m| m.len());
    let doc = json!({
        "lease_slots": args.lease_slots.min(64),
        "machine": {
            "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
            "envoy_workers": workers,
        },
        "versions": {"envoy": envoy_version, "chokepoint": env!("CARGO_PKG_VERSION")},
        "wasm_bytes": wasm_bytes,
        "envoy_rss_kib": {
            "bare": rss_bare, "empty_wasm_filter": rss_empty,
            "chokepoint_idle": rss_full_before, "chokepoint_after_load": rss_full,
            "by_workers": rss_points,
            "added_fixed": rss_fit.map(|f| f.0), "added_per_worker": rss_fit.map(|f| f.1),
        },
        "results": results,
        "mcp": mcp,
    });
    if let Some(dir) = std::path::Path::new(&args.out).parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    if let Err(e) = std::fs::write(&args.out, &text) {
        eprintln!("chokepoint-bench: cannot write {}: {e}", args.out);
    }
    println!("{text}");
    if let Some((_, mut proc)) = litellm.take() {
        proc.stop(peers::LITELLM_STOP_GRACE);
    }
    drop(portkey);
    drop(bare);
    drop(jwt_envoy);
    drop(empty_envoy);
    drop(stack);
    let _ = std::fs::remove_dir_all(&run_dir);
}

/// Switches the running gateway's mode (full or identity) and lease slots (0: one
/// callout per request), and waits until Envoy has taken the new filter configuration.
async fn configure(
    stack: &mut Stack,
    mode: &str,
    slots: u64,
    usage_batch_max: Option<u64>,
) -> Result<(), String> {
    use chokepoint_render::overrides::Override;
    let before = stack.ecds_updates().await?;
    let mut overrides = vec![
        Override::new("gateway.mode", mode),
        Override::new("policy_service.lease_slots", slots),
    ];
    if let Some(n) = usage_batch_max {
        overrides.push(Override::new("audit.usage.batch_max", n));
    }
    stack.reload_policy(&overrides)?;
    for _ in 0..200 {
        if stack.ecds_updates().await? > before {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Err("Envoy did not take the new lease setting".into())
}

/// `--load`: one configuration someone started by hand, for profiling.
async fn load_only(args: &Args, url: &str, body: &[u8]) {
    let headers: Vec<(String, String)> = args
        .header
        .iter()
        .filter_map(|h| h.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let c = args
        .connections
        .first()
        .copied()
        .unwrap_or(16)
        .clamp(1, 256);
    bench::run(url, &headers, body, c, Duration::from_millis(500)).await;
    let before: Vec<u64> = args.pid.iter().map(|p| bench::cpu_us(*p)).collect();
    let load = bench::run_at(
        url,
        &headers,
        body,
        c,
        Duration::from_secs(args.seconds.clamp(1, 120)),
        args.load_rate,
    )
    .await;
    let per: Vec<String> = args
        .pid
        .iter()
        .zip(before)
        .map(|(p, b)| {
            let us = (bench::cpu_us(*p) - b) as f64 / load.requests.max(1) as f64;
            format!("pid {p}: {us:.0} us/req")
        })
        .collect();
    println!(
        "{:.0} rps  p50 {:.2} ms  p99 {:.2} ms  errors {}  {}",
        load.rps(),
        load.p50_ms,
        load.p99_ms,
        load.errors,
        per.join("  ")
    );
}

/// Connections of the MCP row: the reference server is one Node.js process.
const MCP_CONNECTIONS: usize = 4;

/// The MCP row: the same `tools/call` (server-everything's `echo`) straight to the server
/// and through the gateway (JWT, the tool rules, a lease of the server and tool limits,
/// the gateway's credential, the record), each in a session of its own, back to back;
/// latency, and CPU per call of each process, with what the gateway adds as differences
/// and ratios.
async fn mcp_row(
    stack: &Stack,
    jwt: &str,
    duration: Duration,
) -> Result<serde_json::Value, String> {
    use chokepoint_dev::stack::mcp::EVERYTHING;
    let direct = stack
        .mcp_url
        .clone()
        .ok_or("the stack runs no MCP server")?;
    let through = stack
        .mcp_gateway_url(EVERYTHING)
        .ok_or("the policy file has no `everything` MCP server")?;
    let body = serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"message": "Benchmark me."}}}))
    .unwrap_or_default();
    let mut rows = Vec::new();
    for (config, url, token, via_gateway) in [
        ("mcp server alone", direct, None, false),
        ("envoy + chokepoint -> mcp server", through, Some(jwt), true),
    ] {
        let headers = mcp_session(&url, token).await?;
        bench::run(
            &url,
            &headers,
            &body,
            MCP_CONNECTIONS,
            Duration::from_millis(500),
        )
        .await;
        let pids = [
            ("server", stack.mcp_pid()),
            ("envoy", stack.envoy_pid().filter(|_| via_gateway)),
            ("policy", stack.policy_pid().filter(|_| via_gateway)),
            ("redis", stack.redis_pid().filter(|_| via_gateway)),
        ];
        let before: Vec<Option<u64>> = pids.iter().map(|(_, p)| p.map(bench::cpu_us)).collect();
        let load = bench::run_at(&url, &headers, &body, MCP_CONNECTIONS, duration, None).await;
        let mut cpu = serde_json::Map::new();
        for ((name, pid), b) in pids.iter().zip(before) {
            if let (Some(pid), Some(b)) = (pid, b) {
                let us = bench::cpu_us(*pid).saturating_sub(b) as f64 / load.requests.max(1) as f64;
                cpu.insert((*name).into(), json!(us));
            }
        }
        eprintln!(
            "{:<42} {:<18} c={:<3} {:>8.0} rps  p50 {:.2} ms  p99 {:.2} ms  errors {}",
            config,
            "mcp tools/call",
            MCP_CONNECTIONS,
            load.rps(),
            load.p50_ms,
            load.p99_ms,
            load.errors
        );
        rows.push(json!({
            "config": config, "mode": "mcp tools/call", "connections": MCP_CONNECTIONS,
            "rps": load.rps(), "errors": load.errors,
            "p50_ms": load.p50_ms, "p99_ms": load.p99_ms, "cpu_us_per_req": cpu,
        }));
    }
    let f = |i: usize, k: &str| rows.get(i).and_then(|r| r[k].as_f64()).unwrap_or(0.0);
    let cpu = |i: usize, k: &str| {
        rows.get(i)
            .and_then(|r| r["cpu_us_per_req"][k].as_f64())
            .unwrap_or(0.0)
    };
    let added_cpu = cpu(1, "envoy") + cpu(1, "policy") + cpu(1, "redis");
    Ok(json!({
        "rows": rows,
        "added_p50_ms": f(1, "p50_ms") - f(0, "p50_ms"),
        "added_p99_ms": f(1, "p99_ms") - f(0, "p99_ms"),
        "p50_ratio": if f(0, "p50_ms") > 0.0 { f(1, "p50_ms") / f(0, "p50_ms") } else { 0.0 },
        "rps_ratio": if f(0, "rps") > 0.0 { f(1, "rps") / f(0, "rps") } else { 0.0 },
        "added_cpu_us_per_call": added_cpu,
        "cpu_ratio_to_server": if cpu(0, "server") > 0.0 { added_cpu / cpu(0, "server") } else { 0.0 },
    }))
}

/// A 2025-11-25 session at `url` (initialize, then notifications/initialized), with the
/// JWT when `token` is given: the headers each call of the session carries.
async fn mcp_session(url: &str, token: Option<&str>) -> Result<Vec<(String, String)>, String> {
    let mut headers = vec![
        ("content-type".to_string(), "application/json".to_string()),
        (
            "accept".to_string(),
            "application/json, text/event-stream".to_string(),
        ),
    ];
    if let Some(t) = token {
        headers.push(("authorization".into(), format!("Bearer {t}")));
    }
    let client = reqwest::Client::new();
    let send = |body: serde_json::Value, headers: Vec<(String, String)>| {
        let mut req = client.post(url).body(body.to_string());
        for (k, v) in &headers {
            req = req.header(k, v);
        }
        req.send()
    };
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "chokepoint-bench", "version": "1"}}});
    let resp = send(init, headers.clone())
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    let session = resp
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = resp.text().await.unwrap_or_default();
    let session = session.ok_or_else(|| format!("initialize at {url}: {status} {text:.300}"))?;
    headers.push(("mcp-session-id".into(), session));
    headers.push(("mcp-protocol-version".into(), "2025-11-25".into()));
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let resp = send(note, headers.clone())
        .await
        .map_err(|e| e.to_string())?;
    if resp.status().as_u16() != 202 {
        return Err(format!(
            "notifications/initialized at {url}: {}",
            resp.status()
        ));
    }
    Ok(headers)
}
