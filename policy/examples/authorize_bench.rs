//! `POST /v1/authorize` throughput and latency against a real Redis: a benchmark, not a
//! test. Starts its own redis-server (unix socket, no persistence) and the service
//! in-process on 127.0.0.1:0, then runs a bounded closed-loop load over keep-alive
//! connections. Prints one JSON line. Run by `scripts/bench-authorize`.
//!
//! Usage: authorize_bench [SECONDS (default 10)] [CONNECTIONS (default 32)]

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chokepoint_policy::{run, Config, Listeners};
use tokio::net::TcpListener;

/// The gateway's bearer token, as the filter sends it on every call.
const GATEWAY_TOKEN: &str = "bench-gateway-token-0123456789abcdef";

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(10)
        .min(120);
    let connections: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(32)
        .clamp(1, 256);

    let dir =
        std::env::temp_dir().join(format!("chokepoint-authorize-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let sock = dir.join("redis.sock");
    let mut redis = Command::new("redis-server")
        .args(["--port", "0", "--unixsocket"])
        .arg(&sock)
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server (apt-get install redis-server)");
    for _ in 0..200 {
        if std::os::unix::net::UnixStream::connect(&sock).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }

    let listeners = Listeners {
        gateway: TcpListener::bind("127.0.0.1:0").await.expect("bind"),
        admin: TcpListener::bind("127.0.0.1:0").await.expect("bind"),
    };
    let addr = listeners.gateway.local_addr().expect("addr");
    let config = Config {
        redis_url: format!("unix://{}", sock.display()),
        requests_per_window: u64::MAX / 4,
        gateway_token: Some(GATEWAY_TOKEN.to_owned()),
        // `BENCH_REDIS_LAYOUT=cluster`: a Redis Cluster's key layout (one hash tag per
        // script call), on this one Redis.
        redis_cluster_layout: std::env::var("BENCH_REDIS_LAYOUT").as_deref() == Ok("cluster"),
        ..Config::default()
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(run(listeners, config, async {
        let _ = stop_rx.await;
    }));

    let url = Arc::new(format!("http://{addr}/v1/authorize"));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .build()
        .expect("client");
    // Warm-up: script loading, connections.
    for i in 0..100 {
        let _ = client
            .post(url.as_str())
            .bearer_auth(GATEWAY_TOKEN)
            .json(&body(i))
            .send()
            .await;
    }
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::with_capacity(connections);
    for c in 0..connections {
        let (client, url) = (client.clone(), Arc::clone(&url));
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            let mut i = c as u64 * 1_000_000;
            while Instant::now() < deadline {
                i += 1;
                let t = Instant::now();
                match client
                    .post(url.as_str())
                    .bearer_auth(GATEWAY_TOKEN)
                    .json(&body(i))
                    .send()
                    .await
                {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        latencies.push(t.elapsed().as_micros() as u64);
                    }
                    _ => errors += 1,
                }
            }
            (latencies, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.expect("task");
        all.extend(l);
        errors += e;
    }
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    println!(
        r#"{{"bench":"policy_authorize","seconds":{seconds},"connections":{connections},"decisions":{},"errors":{errors},"decisions_per_s":{:.0},"p50_ms":{:.2},"p90_ms":{:.2},"p99_ms":{:.2}}}"#,
        all.len(),
        all.len() as f64 / seconds as f64,
        pct(0.50),
        pct(0.90),
        pct(0.99)
    );
    let _ = stop_tx.send(());
    let _ = server.await;
    let _ = redis.kill();
    let _ = redis.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A request of one of 1,000 users, each with its own request id.
fn body(i: u64) -> serde_json::Value {
    serde_json::json!({
        "request_id": format!("bench-{i}"),
        "user": format!("00000000-0000-8000-8000-{:012x}", i % 1000),
        "tenant": "bench",
        "model": "gpt-4o-mini",
        "provider": "openai",
        "reserve_tokens": 300,
        "reserve_cost_micros": 200,
    })
}
