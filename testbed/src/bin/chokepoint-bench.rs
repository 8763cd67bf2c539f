//! `chokepoint-bench` (behind `scripts/bench`): the same mock upstream, the same load,
//! measured back to back in one run: the upstream alone, bare Envoy, and Envoy with
//! chokepoint's full path (JWT with a warm cache, routing, authorize callout to the policy
//! service and Redis, per-attempt key injection, accounting, usage delivery). Reports
//! requests/s, latency percentiles, CPU per request of Envoy and the policy service, and
//! ratios to bare Envoy. A benchmark, not a test: bounded, loopback only.

use std::process::Command;
use std::time::Duration;

use chokepoint_testbed::bench::{self, Load};
use chokepoint_testbed::devtoken::{DevKey, TokenSpec};
use chokepoint_testbed::stack::process::{self, Managed};
use chokepoint_testbed::stack::{Stack, StackOptions};
use clap::Parser;
use serde_json::json;

#[derive(Parser)]
#[command(
    version,
    about = "Benchmark chokepoint against bare Envoy and the upstream alone"
)]
struct Args {
    /// Seconds per configuration and load level.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Connection counts to run.
    #[arg(long, value_delimiter = ',', default_value = "16,64")]
    connections: Vec<usize>,
    /// Where to write the results (JSON).
    #[arg(long, default_value = "bench/results.json")]
    out: String,
}

struct Row {
    config: &'static str,
    connections: usize,
    load: Load,
    envoy_cpu_us_per_req: Option<f64>,
    policy_cpu_us_per_req: Option<f64>,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let root = std::env::current_dir().unwrap_or_default();
    let run_dir = std::env::temp_dir().join(format!("chokepoint-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&run_dir);
    let mut opts = StackOptions::defaults(&root, &run_dir, DevKey::generate_with_derived_kid());
    opts.requests_per_window = u64::MAX / 4;
    opts.usage_flush_ms = 1000;
    let mut stack = match Stack::start(opts).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("chokepoint-bench: {e}");
            std::process::exit(1);
        }
    };
    let bare = match bare_envoy(&stack, &run_dir).await {
        Ok(b) => b,
        Err(e) => {
            eprintln!("chokepoint-bench: bare Envoy: {e}");
            std::process::exit(1);
        }
    };
    let body = serde_json::to_vec(&json!({"model": "gpt-4o-mini", "max_tokens": 64,
        "messages": [{"role": "user", "content": "Benchmark me."}]}))
    .unwrap_or_default();
    let mock_auth = vec![
        (
            "authorization".to_string(),
            format!("Bearer {}", stack.opts.mock_key),
        ),
        ("content-type".to_string(), "application/json".to_string()),
    ];
    let jwt = stack.token(&TokenSpec::new("bench-user").with_ttl(Duration::from_secs(3600)));
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
    let rss_full_before = bench::rss_kib(stack.envoy_pid().unwrap_or(0));

    let mut rows = Vec::new();
    for &c in &args.connections {
        let c = c.clamp(1, 256);
        for (config, url, headers, envoy_pid, policy_pid) in [
            ("upstream alone", mock.clone(), &mock_auth, None, None),
            (
                "bare envoy",
                format!("{}/v1/chat/completions", bare.0),
                &mock_auth,
                bare.1.pid(),
                None,
            ),
            (
                "envoy + chokepoint (full path, leases)",
                format!("{}/v1/chat/completions", stack.gateway_url),
                &gateway_auth,
                stack.envoy_pid(),
                stack.policy_pid(),
            ),
            (
                "envoy + chokepoint (full path, callout per request)",
                format!("{}/v1/chat/completions", stack.gateway_url),
                &gateway_auth,
                stack.envoy_pid(),
                stack.policy_pid(),
            ),
        ] {
            // The same running Envoy in both modes: the lease setting changes live (ECDS).
            let slots = if config.ends_with("callout per request)") { 0 } else { 16 };
            if config.starts_with("envoy + chokepoint") {
                if let Err(e) = set_lease_slots(&mut stack, slots).await {
                    eprintln!("chokepoint-bench: {e}");
                    std::process::exit(1);
                }
            }
            // A short warm-up: connections, token cache, scripts.
            bench::run(&url, headers, &body, c, Duration::from_millis(500)).await;
            let (e0, p0) = (envoy_pid.map(bench::cpu_us), policy_pid.map(bench::cpu_us));
            let load = bench::run(&url, headers, &body, c, duration).await;
            let per = |before: Option<u64>, pid: Option<u32>| {
                Some((bench::cpu_us(pid?) - before?) as f64 / load.requests.max(1) as f64)
            };
            let row = Row {
                config,
                connections: c,
                envoy_cpu_us_per_req: per(e0, envoy_pid),
                policy_cpu_us_per_req: per(p0, policy_pid),
                load,
            };
            eprintln!(
                "{:<32} c={:<3} {:>8.0} rps  p50 {:.2} ms  p99 {:.2} ms  errors {}",
                row.config,
                row.connections,
                row.load.rps(),
                row.load.p50_ms,
                row.load.p99_ms,
                row.load.errors
            );
            rows.push(row);
        }
    }
    let rss_full = bench::rss_kib(stack.envoy_pid().unwrap_or(0));

    let results: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            let bare_rps = rows
                .iter()
                .find(|b| b.config == "bare envoy" && b.connections == r.connections)
                .map_or(0.0, |b| b.load.rps());
            json!({
                "config": r.config, "connections": r.connections, "seconds": r.load.seconds,
                "requests": r.load.requests, "errors": r.load.errors, "rps": r.load.rps(),
                "p50_ms": r.load.p50_ms, "p90_ms": r.load.p90_ms, "p99_ms": r.load.p99_ms,
                "ratio_vs_envoy": if bare_rps > 0.0 { r.load.rps() / bare_rps } else { 0.0 },
                "cpu_us_per_req": {"envoy": r.envoy_cpu_us_per_req, "policy": r.policy_cpu_us_per_req},
            })
        })
        .collect();
    let doc = json!({
        "machine": {"cores": std::thread::available_parallelism().map_or(0, |n| n.get())},
        "envoy_rss_kib": {"bare": rss_bare, "chokepoint_idle": rss_full_before, "chokepoint_after_load": rss_full},
        "results": results,
    });
    if let Some(dir) = std::path::Path::new(&args.out).parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    if let Err(e) = std::fs::write(&args.out, &text) {
        eprintln!("chokepoint-bench: cannot write {}: {e}", args.out);
    }
    println!("{text}");
    drop(bare);
    drop(stack);
    let _ = std::fs::remove_dir_all(&run_dir);
}

/// Switches the running gateway between leases and one callout per request, and waits
/// until Envoy has taken the new filter configuration.
async fn set_lease_slots(stack: &mut Stack, slots: u64) -> Result<(), String> {
    let before = stack.ecds_updates().await?;
    stack.reload_policy(&[chokepoint_render::overrides::Override::new(
        "policy_service.lease_slots",
        slots,
    )])?;
    for _ in 0..200 {
        if stack.ecds_updates().await? > before {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Err("Envoy did not take the new lease setting".into())
}

/// The same Envoy, same upstream, no filters: the reference.
async fn bare_envoy(stack: &Stack, dir: &std::path::Path) -> Result<(String, Managed), String> {
    let mock_port = stack
        .mock_url
        .as_deref()
        .and_then(|u| u.rsplit(':').next())
        .and_then(|p| p.parse::<u16>().ok())
        .ok_or("no mock")?;
    let yaml = format!(
        r#"node: {{id: bare, cluster: bare}}
admin: {{address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}}}
static_resources:
  listeners:
  - name: gateway
    address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: bare
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{prefix: "/"}}
                route: {{cluster: upstream, timeout: 600s}}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
  clusters:
  - name: upstream
    type: STATIC
    connect_timeout: 2s
    load_assignment: {{cluster_name: upstream, endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {mock_port}}}}}}}}}]}}]}}
"#
    );
    let cfg = dir.join("bare-envoy.yaml");
    std::fs::write(&cfg, yaml).map_err(|e| e.to_string())?;
    let admin_file = dir.join("bare-admin.addr");
    let mut cmd = Command::new(&stack.opts.envoy);
    cmd.arg("-c")
        .arg(&cfg)
        .arg("--admin-address-path")
        .arg(&admin_file)
        .args(["--use-dynamic-base-id", "--concurrency"])
        .arg(stack.opts.envoy_concurrency.to_string())
        .args(["-l", "warn"]);
    let mut proc = Managed::spawn("bare envoy", cmd, &dir.join("bare-envoy.log"))
        .map_err(|e| e.to_string())?;
    let admin = process::wait_for_file(&admin_file, &mut proc, Duration::from_secs(30))?;
    let client = reqwest::Client::new();
    for _ in 0..100 {
        if let Ok(r) = client
            .get(format!("http://{admin}/listeners?format=json"))
            .send()
            .await
        {
            if let Ok(v) = r.json::<serde_json::Value>().await {
                if let Some(port) = v["listener_statuses"][0]["local_address"]["socket_address"]
                    ["port_value"]
                    .as_u64()
                {
                    return Ok((format!("http://127.0.0.1:{port}"), proc));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err("bare Envoy's listener never came up".into())
}
