//! Redis CPU per booked usage record and per released lease slot: a benchmark, not a
//! test. Starts its own redis-server (unix socket, no persistence) and the service
//! in-process, then posts usage batches of one user with two scopes (user, tenant) and a
//! client tool (as coding agents' records name theirs), and measures what Redis spent on
//! them: EVALSHA time from `INFO commandstats` and the redis-server process's CPU from
//! /proc. Prints one JSON line per phase.
//!
//! Phases: `plain` books records nobody authorized; `reserved` books records whose
//! requests were authorized first (a tenant month budget, so each holds a reservation
//! and a rate-window count to commit); `rolling` is `reserved` with a rolling budget on
//! the user as well; `release` authorizes leases of 64 slots and releases the 63 spare
//! ones; `grant` is what those lease decisions cost per slot granted. Otherwise the
//! authorizations are not measured.
//!
//! Usage: usage_bench [BATCHES (default 200)] [RECORDS PER BATCH (default 50)]
//!
//! `BENCH_USAGE_AUDIT=off` runs the service with `--usage-audit-stream off`;
//! `BENCH_REDIS_LAYOUT=cluster` in the cluster key layout.
//!
//! CPU figures move with the machine's other load. `USAGE_BENCH_STATS=1` also prints
//! each command's calls and µs per unit. For counts that do not move, run redis-server
//! under callgrind through a wrapper named `redis-server` earlier in PATH, e.g.
//! `exec valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=/tmp/cg.%p
//! /usr/bin/redis-server "$@"`, with `USAGE_BENCH_CALLGRIND=1`: each phase is then one
//! dump whose `totals:` line is the instructions Redis executed for it.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chokepoint_policy::{run, Config, Listeners};
use redis::aio::MultiplexedConnection;
use serde_json::{json, Value};
use tokio::net::TcpListener;

const TENANT: &str = "bench";

/// The gateway's bearer token, as the filter sends it on every call.
const GATEWAY_TOKEN: &str = "bench-gateway-token-0123456789abcdef";

struct Bench {
    http: reqwest::Client,
    base: String,
    redis: MultiplexedConnection,
    redis_pid: u32,
    next: u64,
}

/// Redis-side cost so far: EVALSHA calls and µs, and the process's CPU µs.
#[derive(Clone, Copy)]
struct Cost {
    evalsha_calls: u64,
    evalsha_usec: u64,
    cpu_usec: u64,
}

impl Bench {
    async fn cost(&mut self) -> Cost {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut self.redis)
            .await
            .expect("INFO");
        let (mut calls, mut usec) = (0, 0);
        for line in info.lines() {
            if let Some(stats) = line.strip_prefix("cmdstat_evalsha:") {
                for part in stats.split(',') {
                    match part.split_once('=') {
                        Some(("calls", n)) => calls = n.parse().expect("calls"),
                        Some(("usec", n)) => usec = n.parse().expect("usec"),
                        _ => {}
                    }
                }
            }
        }
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.redis_pid)).expect("/proc stat");
        // Fields after the parenthesised command name: utime and stime are 14 and 15.
        let rest = &stat[stat.rfind(')').expect("comm") + 2..];
        let fields: Vec<&str> = rest.split(' ').collect();
        let ticks: u64 =
            fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
        // CLK_TCK is 100 on every Linux this runs on.
        Cost {
            evalsha_calls: calls,
            evalsha_usec: usec,
            cpu_usec: ticks * 10_000,
        }
    }

    /// With `USAGE_BENCH_STATS` set, the commands run since `reset_stats`, per unit: calls
    /// and µs of each (Redis counts a script's commands on their own too).
    async fn breakdown(&mut self, units: u64) {
        if std::env::var_os("USAGE_BENCH_STATS").is_none() {
            return;
        }
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut self.redis)
            .await
            .expect("INFO");
        let mut lines = Vec::new();
        for line in info.lines() {
            let Some((name, stats)) = line
                .strip_prefix("cmdstat_")
                .and_then(|l| l.split_once(':'))
            else {
                continue;
            };
            let field = |key: &str| -> f64 {
                stats
                    .split(',')
                    .find_map(|part| part.strip_prefix(key)?.strip_prefix('='))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0.0)
            };
            let per = units.max(1) as f64;
            lines.push(format!(
                "{name}: {:.2} calls {:.2} usec",
                field("calls") / per,
                field("usec") / per
            ));
        }
        eprintln!("  per unit: {}", lines.join("; "));
    }

    /// With `USAGE_BENCH_CALLGRIND` set (and redis-server run under
    /// `valgrind --tool=callgrind --collect-atstart=no`, e.g. by a wrapper earlier in
    /// PATH), collects instructions only while a phase is measured, one dump per phase:
    /// a count immune to the machine's other load.
    fn callgrind(&self, args: &[&str]) {
        if std::env::var_os("USAGE_BENCH_CALLGRIND").is_some() {
            let status = Command::new("callgrind_control")
                .args(args)
                .arg(self.redis_pid.to_string())
                .stdout(Stdio::null())
                .status()
                .expect("callgrind_control");
            assert!(status.success(), "callgrind_control {args:?}");
        }
    }

    async fn reset_stats(&mut self) {
        if std::env::var_os("USAGE_BENCH_STATS").is_some() {
            let () = redis::cmd("CONFIG")
                .arg("RESETSTAT")
                .query_async(&mut self.redis)
                .await
                .expect("RESETSTAT");
        }
    }

    fn id(&mut self) -> String {
        self.next += 1;
        format!("bench-{}", self.next)
    }

    async fn post(&self, path: &str, body: &Value) -> Value {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(GATEWAY_TOKEN)
            .json(body)
            .send()
            .await
            .expect("send");
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.expect("json")
    }

    async fn authorize(&mut self, user: &str, slots: u64) -> (String, u64) {
        let id = self.id();
        let body = json!({
            "request_id": id, "user": user, "tenant": TENANT, "provider": "openai",
            "reserve_tokens": 300, "reserve_cost_micros": 200, "lease_slots": slots,
        });
        let answer = self.post("/v1/authorize", &body).await;
        assert_eq!(answer["allow"], true, "{answer}");
        (id, answer["slots"].as_u64().unwrap_or(1))
    }

    /// Books `batches` batches of `size` records of `user`, authorized first or not,
    /// and prints Redis's cost per booked record.
    async fn records(&mut self, phase: &str, user: &str, batches: usize, size: usize, auth: bool) {
        let mut posts = Vec::with_capacity(batches);
        for _ in 0..batches {
            let mut records = Vec::with_capacity(size);
            for _ in 0..size {
                let id = if auth {
                    self.authorize(user, 0).await.0
                } else {
                    self.id()
                };
                records.push(json!({
                    "request_id": id, "user": user, "tenant": TENANT, "provider": "openai",
                    "client": "claude-code/2.1.332",
                    "input_tokens": 120, "output_tokens": 80, "cost_micros": 150,
                }));
            }
            posts.push(json!({ "records": records }));
        }
        self.reset_stats().await;
        let before = self.cost().await;
        self.callgrind(&["-z"]);
        self.callgrind(&["-i", "on"]);
        let started = Instant::now();
        let mut booked = 0;
        for body in &posts {
            let answer = self.post("/v1/usage", body).await;
            booked += answer["accepted"].as_u64().expect("accepted");
        }
        let elapsed = started.elapsed();
        self.callgrind(&["-i", "off"]);
        self.callgrind(&["-d", phase]);
        let after = self.cost().await;
        self.breakdown(booked).await;
        assert_eq!(booked, (batches * size) as u64, "every record booked");
        report(phase, "record", booked, before, after, elapsed);
    }

    async fn releases(&mut self, user: &str, leases: usize) {
        let mut posts = Vec::with_capacity(leases);
        self.reset_stats().await;
        let before = self.cost().await;
        let started = Instant::now();
        let mut granted = 0;
        for _ in 0..leases {
            let (id, slots) = self.authorize(user, 64).await;
            assert!(slots >= 2, "a lease: {slots}");
            granted += slots;
            let releases: Vec<String> = (2..=slots).map(|i| format!("{id}.{i}")).collect();
            posts.push(json!({ "records": [], "releases": releases }));
        }
        let elapsed = started.elapsed();
        let after = self.cost().await;
        report("grant", "slot", granted, before, after, elapsed);
        self.reset_stats().await;
        let before = self.cost().await;
        self.callgrind(&["-z"]);
        self.callgrind(&["-i", "on"]);
        let started = Instant::now();
        let mut released = 0;
        for body in &posts {
            let answer = self.post("/v1/usage", body).await;
            released += answer["released"].as_u64().expect("released");
        }
        let elapsed = started.elapsed();
        self.callgrind(&["-i", "off"]);
        self.callgrind(&["-d", "release"]);
        let after = self.cost().await;
        self.breakdown(released).await;
        report("release", "slot", released, before, after, elapsed);
    }
}

fn report(phase: &str, unit: &str, n: u64, before: Cost, after: Cost, elapsed: Duration) {
    let per = |a: u64, b: u64| (a - b) as f64 / n.max(1) as f64;
    println!(
        r#"{{"phase":"{phase}","{unit}s":{n},"evalsha_calls":{},"evalsha_usec_per_{unit}":{:.1},"redis_cpu_usec_per_{unit}":{:.1},"wall_ms":{}}}"#,
        after.evalsha_calls - before.evalsha_calls,
        per(after.evalsha_usec, before.evalsha_usec),
        per(after.cpu_usec, before.cpu_usec),
        elapsed.as_millis()
    );
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let batches: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let size: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(50);

    let dir = std::env::temp_dir().join(format!("chokepoint-usage-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let sock = dir.join("redis.sock");
    let redis = Command::new("redis-server")
        .args(["--port", "0", "--unixsocket"])
        .arg(&sock)
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server (apt-get install redis-server)");
    let redis = RedisGuard(redis, dir.clone());
    // Long enough for a redis-server started under valgrind.
    for _ in 0..3000 {
        if std::os::unix::net::UnixStream::connect(&sock).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let url = format!("unix://{}", sock.display());
    let mut connection = redis::Client::open(url.as_str())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    // Room for everything the bench reserves; a month budget makes every authorized
    // request hold a reservation its record (or release) gives back.
    let () = redis::cmd("HSET")
        .arg(format!("ck:limits:tenant:{{{TENANT}}}"))
        .arg(&["usd_micros", "1000000000000", "period", "month"])
        .query_async(&mut connection)
        .await
        .expect("HSET limits");

    let listeners = Listeners {
        gateway: TcpListener::bind("127.0.0.1:0").await.expect("bind"),
        admin: TcpListener::bind("127.0.0.1:0").await.expect("bind"),
    };
    let addr = listeners.gateway.local_addr().expect("addr");
    let config = Config {
        redis_url: url,
        requests_per_window: 1 << 40,
        gateway_token: Some(GATEWAY_TOKEN.to_owned()),
        // `BENCH_REDIS_LAYOUT=cluster`: a Redis Cluster's key layout (one hash tag per
        // script call), on this one Redis.
        redis_cluster_layout: std::env::var("BENCH_REDIS_LAYOUT").as_deref() == Ok("cluster"),
        usage_audit_stream: std::env::var("BENCH_USAGE_AUDIT").as_deref() != Ok("off"),
        ..Config::default()
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(run(listeners, config, async {
        let _ = stop_rx.await;
    }));

    let mut bench = Bench {
        http: reqwest::Client::new(),
        base: format!("http://{addr}"),
        redis: connection,
        redis_pid: redis.0.id(),
        next: 0,
    };
    let user = |n: u64| format!("00000000-0000-8000-8000-{n:012x}");
    // Warm-up: scripts loaded, connections made.
    bench.records("warmup", &user(0), 2, size, true).await;
    bench
        .post(
            "/v1/usage",
            &json!({"records": [], "releases": ["warm-up"]}),
        )
        .await;
    bench.records("plain", &user(1), batches, size, false).await;
    bench
        .records("reserved", &user(2), batches, size, true)
        .await;
    let () = redis::cmd("HSET")
        .arg(format!("ck:limits:user:{{{}}}", user(3)))
        .arg(&["usd_micros", "1000000000000", "period", "rolling:3600"])
        .query_async(&mut bench.redis)
        .await
        .expect("HSET limits");
    bench
        .records("rolling", &user(3), batches, size, true)
        .await;
    bench.releases(&user(4), batches).await;

    let _ = stop_tx.send(());
    let _ = server.await;
}

/// Stops the bench's redis-server however `main` ends, a failed assertion included.
struct RedisGuard(std::process::Child, std::path::PathBuf);

impl Drop for RedisGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}
