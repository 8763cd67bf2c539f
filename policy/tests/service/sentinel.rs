//! Sentinel mode against real redis-server and redis-sentinel processes: the service
//! follows the primary through a failover (ordered with `SENTINEL FAILOVER`, or the
//! primary killed), takes a demoted primary's `READONLY` as a reason to ask again, holds
//! a usage batch back with 503 when `WAIT` finds too few replicas, and refuses a
//! malformed Sentinel configuration naming the flag.

use std::time::{Duration, Instant};

use chokepoint_dev::stack::sentinel::{cli, SentinelGroup, MASTER_NAME};
use chokepoint_policy::{Config, RedisWait, SentinelConfig};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use crate::support::{assert_unavailable, marker, new_user, Service, TempDir, ADMIN_TOKEN};

/// Short, so a killed primary is counted down quickly.
const DOWN_AFTER_MS: u64 = 500;

/// Every round trip's bound in these tests; an answer slower than this plus a margin
/// would be a request held past it.
const REDIS_TIMEOUT: Duration = Duration::from_millis(500);

fn sentinel_config(addresses: Vec<(String, u16)>, wait: Option<RedisWait>) -> Config {
    Config {
        redis_sentinel: Some(SentinelConfig {
            addresses,
            master_name: MASTER_NAME.to_owned(),
            sentinel_password: None,
            redis_username: None,
            redis_password: None,
        }),
        redis_wait: wait,
        redis_timeout: REDIS_TIMEOUT,
        redis_probe_interval: Duration::from_millis(100),
        admin_token: Some(ADMIN_TOKEN.to_owned()),
        requests_per_window: 1_000_000,
        ..Config::default()
    }
}

fn addresses_of(group: &SentinelGroup) -> Vec<(String, u16)> {
    SentinelConfig::parse_addresses(&group.sentinel_addresses()).expect("addresses")
}

fn record(request_id: &str, user: &str) -> Value {
    json!({
        "request_id": request_id,
        "user": user,
        "tenant": "acme",
        "groups": ["eng"],
        "cost_center": "cc-1",
        "model": "gpt-4o",
        "provider": "openai",
        "format": "openai_chat",
        "stream": false,
        "input_tokens": 10,
        "output_tokens": 5,
        "cached_input_tokens": 0,
        "reasoning_tokens": 0,
        "cache_creation_input_tokens": 0,
        "cost_micros": 100,
        "estimated": false,
        "status": 200,
        "decision": "allow",
        "latency_ms": 420,
        "ttft_ms": null,
        "completed": true,
        "ts_ms": 1_764_000_000_000u64,
    })
}

/// Whether the Redis on `port` holds the dedupe marker of `request_id`: the record
/// was booked there (or replicated to it).
fn holds_record(port: u16, request_id: &str) -> bool {
    cli(port, &["EXISTS", &marker(request_id)])
        .map(|reply| reply.trim() == "1")
        .unwrap_or(false)
}

/// Authorizes until the service answers 200 with the primary on a port other than
/// `old`; every answer meanwhile must be the store's 503, none slower than the round
/// trip's bound allows. Returns (time to the first 200, 503s meanwhile).
async fn until_admitted_elsewhere(
    service: &Service,
    user: &str,
    group: &SentinelGroup,
    old: u16,
) -> (Duration, u32) {
    let started = Instant::now();
    let mut unavailable = 0;
    loop {
        let asked = Instant::now();
        let (status, body) = service.authorize(user).await;
        let took = asked.elapsed();
        // A lookup and the round trip share one bound; the margin is for the test's
        // own HTTP hop on a busy machine.
        assert!(
            took < REDIS_TIMEOUT * 4,
            "an authorize took {took:?}: {body}"
        );
        if status == StatusCode::OK {
            if group.primary_port().is_some_and(|port| port != old) {
                return (started.elapsed(), unavailable);
            }
        } else {
            assert_unavailable(status, &body);
            unavailable += 1;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no failover within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_the_primary_through_a_failover() {
    if crate::support::skip_on_cluster(
        "follows_the_primary_through_a_failover",
        "starts its own Sentinel group; the single-Redis run covers it",
    ) {
        return;
    }
    // (how the primary goes, whether it is killed)
    for (how, kill) in [("SENTINEL FAILOVER", false), ("kill -9", true)] {
        let dir = TempDir::new();
        let mut group = SentinelGroup::start(dir.path(), DOWN_AFTER_MS).expect("sentinel group");
        let service = Service::start(sentinel_config(addresses_of(&group), None)).await;
        let user = new_user();
        let (status, body) = service.authorize(&user).await;
        assert_eq!(status, StatusCode::OK, "{how}: {body}");
        let old = group.primary_port().expect("a primary");

        if kill {
            group.kill_primary().expect("kill the primary");
        } else {
            let sentinel = addresses_of(&group)[0].1;
            let reply = cli(sentinel, &["SENTINEL", "FAILOVER", MASTER_NAME]).expect("failover");
            assert_eq!(reply.trim(), "OK", "{how}: {reply}");
        }
        let (took, unavailable) = until_admitted_elsewhere(&service, &user, &group, old).await;
        let new = group.primary_port().expect("a primary");
        eprintln!(
            "{how}: admitted again {} ms after, {unavailable} × 503 meanwhile; primary {old} -> {new}",
            took.as_millis()
        );

        // Sentinel demotes a live old primary (and drops its clients) only when it next
        // polls it, seconds after naming the new one; the service must not wait for
        // that: its probe asks the sentinels every tick. Each record goes where the
        // service sends it; count those the old primary took.
        let mut on_old = 0;
        let request_id = loop {
            let request_id = format!("req-after-{on_old}-{}", new_user());
            let (status, body) = service.post_usage(&[record(&request_id, &user)]).await;
            if status == StatusCode::OK && holds_record(new, &request_id) {
                break request_id;
            }
            on_old += 1;
            assert!(on_old <= 20, "{how}: {on_old} records not on {new}: {body}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        eprintln!("{how}: {on_old} usage batch(es) went elsewhere before the new primary");
        assert!(holds_record(new, &request_id), "{how}: not on {new}");
        let metrics = service.metrics().await;
        assert!(
            metrics.lines().any(|l| l == "chokepoint_policy_redis_up 1"),
            "{how}: {metrics}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_keeps_what_an_ordered_failover_loses_on_the_old_primary() {
    if crate::support::skip_on_cluster(
        "wait_keeps_what_an_ordered_failover_loses_on_the_old_primary",
        "starts its own Sentinel group; the single-Redis run covers it",
    ) {
        return;
    }
    // (WAIT's replicas; None: off)
    for wait in [None, Some(1)] {
        ordered_failover(wait).await;
    }
}

/// `SENTINEL FAILOVER` while records flow; with `wait`, none acknowledged may be lost.
async fn ordered_failover(wait: Option<u32>) {
    {
        let dir = TempDir::new();
        let group = SentinelGroup::start(dir.path(), DOWN_AFTER_MS).expect("sentinel group");
        let config = sentinel_config(
            addresses_of(&group),
            wait.map(|replicas| RedisWait {
                replicas,
                timeout: Duration::from_millis(100),
            }),
        );
        let service = Service::start(config).await;
        let user = new_user();
        let old = group.primary_port().expect("a primary");
        let sentinel = addresses_of(&group)[0].1;
        cli(sentinel, &["SENTINEL", "FAILOVER", MASTER_NAME]).expect("failover");

        // Records for a second and a half, each sent again on a 503 as the filter does,
        // until the service acknowledges it.
        let started = Instant::now();
        let mut acknowledged = Vec::new();
        let mut refused = 0;
        while started.elapsed() < Duration::from_millis(1500) {
            let request_id = format!("req-ordered-{}-{user}", acknowledged.len());
            loop {
                let (status, body) = service.post_usage(&[record(&request_id, &user)]).await;
                if status == StatusCode::OK {
                    break;
                }
                assert_unavailable(status, &body);
                refused += 1;
                assert!(
                    started.elapsed() < Duration::from_secs(40),
                    "{wait:?}: never acknowledged"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            acknowledged.push(request_id);
        }
        // What the new primary lacks is lost: the old one, once Sentinel demotes it,
        // resyncs from the new one and drops what only it held.
        let new = group.primary_port().expect("a primary");
        assert_ne!(new, old, "{wait:?}: no failover");
        let lost = acknowledged
            .iter()
            .filter(|id| !holds_record(new, id))
            .count();
        eprintln!(
            "SENTINEL FAILOVER, WAIT {wait:?}: {} records acknowledged ({refused} × 503 first), {lost} lost",
            acknowledged.len()
        );
        if wait.is_some() {
            assert_eq!(lost, 0, "WAIT acknowledged records the failover lost");
        }
    }
}

/// A sentinel that names whichever primary the test tells it, so the service can be
/// left talking to a primary that was demoted behind Sentinel's back (a real Sentinel
/// kills the demoted primary's clients, so its `READONLY` is only seen by a client that
/// reconnects there in time).
struct ScriptedSentinel {
    port: u16,
    primary: std::sync::Arc<std::sync::atomic::AtomicU16>,
    task: tokio::task::JoinHandle<()>,
}

impl ScriptedSentinel {
    async fn start(primary: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let named = std::sync::Arc::new(std::sync::atomic::AtomicU16::new(primary));
        let shared = named.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let named = shared.clone();
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut read = BufReader::new(read);
                    while let Some(command) = read_command(&mut read).await {
                        let primary = named.load(std::sync::atomic::Ordering::SeqCst);
                        let reply = match command.first().map(|c| c.to_ascii_uppercase()) {
                            Some(c) if c == "SENTINEL" => masters_reply(primary),
                            // What a sentinel answers: its role and the masters it watches.
                            Some(c) if c == "ROLE" => format!(
                                "*2\r\n$8\r\nsentinel\r\n*1\r\n${}\r\n{MASTER_NAME}\r\n",
                                MASTER_NAME.len()
                            ),
                            _ => "+OK\r\n".to_owned(),
                        };
                        if write.write_all(reply.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Self {
            port,
            primary: named,
            task,
        }
    }

    fn name(&self, primary: u16) {
        self.primary
            .store(primary, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for ScriptedSentinel {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `SENTINEL MASTERS` as Sentinel answers it: one master, as a flat field list.
fn masters_reply(port: u16) -> String {
    let fields = [
        ("name", MASTER_NAME.to_owned()),
        ("ip", "127.0.0.1".to_owned()),
        ("port", port.to_string()),
        ("flags", "master".to_owned()),
    ];
    let mut out = format!("*1\r\n*{}\r\n", fields.len() * 2);
    for (key, value) in fields {
        for text in [key, value.as_str()] {
            out.push_str(&format!("${}\r\n{text}\r\n", text.len()));
        }
    }
    out
}

/// One RESP command (an array of bulk strings); `None` at end of stream.
async fn read_command(read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> Option<Vec<String>> {
    let mut line = String::new();
    read.read_line(&mut line).await.ok()?;
    let count: usize = line.trim().strip_prefix('*')?.parse().ok()?;
    let mut parts = Vec::with_capacity(count);
    for _ in 0..count {
        line.clear();
        read.read_line(&mut line).await.ok()?;
        let len: usize = line.trim().strip_prefix('$')?.parse().ok()?;
        let mut bytes = vec![0; len + 2];
        read.read_exact(&mut bytes).await.ok()?;
        bytes.truncate(len);
        parts.push(String::from_utf8(bytes).ok()?);
    }
    Some(parts)
}

/// A redis-server on a loopback TCP port (the sentinels name primaries by host and
/// port), nothing persisted; killed by PID on drop.
struct TcpRedis {
    child: std::process::Child,
    port: u16,
    _dir: TempDir,
}

impl TcpRedis {
    fn start() -> Self {
        let dir = TempDir::new();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server");
        let deadline = Instant::now() + Duration::from_secs(10);
        while cli(port, &["PING"])
            .map(|r| r.trim() != "PONG")
            .unwrap_or(true)
        {
            assert!(Instant::now() < deadline, "redis on {port} not up");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for TcpRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demoted_primarys_readonly_sends_the_service_back_to_the_sentinels() {
    if crate::support::skip_on_cluster(
        "a_demoted_primarys_readonly_sends_the_service_back_to_the_sentinels",
        "starts its own Sentinel group; the single-Redis run covers it",
    ) {
        return;
    }
    let a = TcpRedis::start();
    let b = TcpRedis::start();
    let sentinel = ScriptedSentinel::start(a.port).await;
    let service = Service::start(sentinel_config(
        vec![("127.0.0.1".to_owned(), sentinel.port)],
        None,
    ))
    .await;
    let user = new_user();
    let (status, body) = service.post_usage(&[record("req-on-a", &user)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(holds_record(a.port, "req-on-a"));

    // B takes over and A follows it, without closing the service's connection to A.
    cli(b.port, &["REPLICAOF", "NO", "ONE"]).expect("promote b");
    cli(a.port, &["REPLICAOF", "127.0.0.1", &b.port.to_string()]).expect("demote a");
    sentinel.name(b.port);

    // (what is sent, through which path, 503s before B answers): the first write meets
    // A's READONLY, after which the service is on B.
    for (what, path, expected) in [("usage", "/v1/usage", 1), ("authorize", "/v1/authorize", 0)] {
        let started = Instant::now();
        let mut refusals = 0;
        loop {
            let (status, body) = match path {
                "/v1/usage" => {
                    service
                        .post_usage(&[record(&format!("req-on-b-{refusals}"), &user)])
                        .await
                }
                _ => service.authorize(&user).await,
            };
            if status == StatusCode::OK {
                break;
            }
            assert_unavailable(status, &body);
            refusals += 1;
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{what}: still refused after {refusals} tries"
            );
        }
        assert_eq!(refusals, expected, "{what}: 503s before B answered");
    }
    let last = (0..2)
        .map(|n| format!("req-on-b-{n}"))
        .find(|id| holds_record(b.port, id));
    assert!(last.is_some(), "no record of the READONLY test on B");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_holds_a_batch_back_until_enough_replicas_have_it() {
    if crate::support::skip_on_cluster(
        "wait_holds_a_batch_back_until_enough_replicas_have_it",
        "starts its own Sentinel group; the single-Redis run covers it",
    ) {
        return;
    }
    let dir = TempDir::new();
    let group = SentinelGroup::start(dir.path(), 5_000).expect("sentinel group");
    // (replicas WAIT asks for, expected status, accepted in the answer) with the one
    // replica up; then the replica killed.
    let wait = |replicas| {
        Some(RedisWait {
            replicas,
            timeout: Duration::from_millis(100),
        })
    };
    for (replicas, expected) in [(1, StatusCode::OK), (2, StatusCode::SERVICE_UNAVAILABLE)] {
        let service = Service::start(sentinel_config(addresses_of(&group), wait(replicas))).await;
        let user = new_user();
        let request_id = format!("req-wait-{replicas}-{user}");
        let (status, body) = service.post_usage(&[record(&request_id, &user)]).await;
        assert_eq!(status, expected, "WAIT {replicas}: {body}");
        if expected != StatusCode::OK {
            assert_unavailable(status, &body);
            // Booked on the primary all the same: a retry is answered as a duplicate
            // once the replicas catch up.
            let primary = group.primary_port().expect("primary");
            assert!(holds_record(primary, &request_id));
            // Redis answered: too few replicas is no outage of Redis.
            let metrics = service.metrics().await;
            assert!(
                metrics.lines().any(|l| l == "chokepoint_policy_redis_up 1"),
                "{metrics}"
            );
        }
    }
    // What WAIT costs: the same batches (64 records, as the service books them per
    // script call) without it and with WAIT 1, on one primary with one replica.
    for (label, wait) in [("off", None), ("WAIT 1", wait(1))] {
        let service = Service::start(sentinel_config(addresses_of(&group), wait)).await;
        let user = new_user();
        let batches = 50;
        let cpu_before = process_cpu();
        let started = Instant::now();
        for batch in 0..batches {
            let records: Vec<Value> = (0..64)
                .map(|n| record(&format!("req-cost-{batch}-{n}-{user}"), &user))
                .collect();
            let (status, body) = service.post_usage(&records).await;
            assert_eq!(status, StatusCode::OK, "{label}: {body}");
            assert_eq!(body["accepted"], 64, "{label}: {body}");
        }
        let wall = started.elapsed() / batches;
        let cpu = (process_cpu() - cpu_before) / batches;
        eprintln!(
            "usage batch of 64 records, {label}: {:.2} ms wall, {:.2} ms CPU (test process: service and client)",
            wall.as_secs_f64() * 1e3,
            cpu.as_secs_f64() * 1e3
        );
    }

    // The replica gone: WAIT 1 can no longer be met.
    let primary = group.primary_port().expect("primary");
    let info = cli(primary, &["INFO", "replication"]).expect("info");
    let replica: u16 = info
        .lines()
        .find_map(|l| l.strip_prefix("slave0:"))
        .and_then(|l| l.split(',').find_map(|kv| kv.strip_prefix("port=")))
        .and_then(|p| p.parse().ok())
        .expect("replica port");
    let service = Service::start(sentinel_config(addresses_of(&group), wait(1))).await;
    cli(replica, &["SHUTDOWN", "NOSAVE"]).ok();
    let user = new_user();
    let started = Instant::now();
    let (status, body) = service.post_usage(&[record("req-no-replica", &user)]).await;
    assert_unavailable(status, &body);
    assert!(
        started.elapsed() < REDIS_TIMEOUT * 4,
        "{:?}",
        started.elapsed()
    );
    drop(group);
}

#[tokio::test]
async fn refuses_a_malformed_sentinel_configuration_naming_the_flag() {
    if crate::support::skip_on_cluster(
        "refuses_a_malformed_sentinel_configuration_naming_the_flag",
        "checks flags only; the single-Redis run covers it",
    ) {
        return;
    }
    // (arguments after `serve`, environment, what the error must name)
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        (
            &["--redis-sentinels", "127.0.0.1"],
            &[],
            "--redis-sentinels[0]",
        ),
        (
            &["--redis-sentinels", "127.0.0.1:0"],
            &[],
            "--redis-sentinels[0]",
        ),
        (
            &["--redis-sentinels", "127.0.0.1:26379,x:99999"],
            &[],
            "--redis-sentinels[1]",
        ),
        (
            &["--redis-sentinels", "127.0.0.1:26379"],
            &[],
            "--redis-master-name",
        ),
        (
            &["--redis-master-name", "m"],
            &[],
            "--redis-master-name needs --redis-sentinels",
        ),
        (
            &[
                "--redis-sentinels",
                "127.0.0.1:26379",
                "--redis-master-name",
                "m",
                "--redis",
                "redis://127.0.0.1:1",
            ],
            &[],
            "set one of them",
        ),
        (
            &[
                "--redis-sentinels",
                "127.0.0.1:26379",
                "--redis-master-name",
                "two words",
            ],
            &[],
            "redis_sentinel.master_name",
        ),
        (
            &[
                "--redis-sentinels",
                "127.0.0.1:26379",
                "--redis-master-name",
                "m",
            ],
            &[("CHOKEPOINT_REDIS_PASSWORD", "")],
            "redis_sentinel.redis_password",
        ),
        (
            &[
                "--redis-sentinels",
                "127.0.0.1:26379",
                "--redis-master-name",
                "m",
                "--redis-wait-replicas",
                "1",
                "--redis-wait-timeout-ms",
                "1000",
            ],
            &[],
            "redis_wait.timeout",
        ),
    ];
    let binary = env!("CARGO_BIN_EXE_chokepoint-policy");
    for (args, env, needle) in cases {
        let out = std::process::Command::new(binary)
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .args(*args)
            .env("CHOKEPOINT_POLICY_TOKEN", "t".repeat(32))
            .env_remove("CHOKEPOINT_REDIS_URL")
            .env_remove("CHOKEPOINT_REDIS_PASSWORD")
            .envs(env.iter().copied())
            .output()
            .expect("run chokepoint-policy");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}: started");
        assert!(
            stderr.contains(needle),
            "{args:?}: {stderr:?} lacks {needle:?}"
        );
    }
    // A password never appears in what the service says about its configuration.
    let out = std::process::Command::new(binary)
        .arg("serve")
        .args([
            "--redis-sentinels",
            "127.0.0.1:26379",
            "--redis-master-name",
            "bad name",
        ])
        .env("CHOKEPOINT_POLICY_TOKEN", "t".repeat(32))
        .env("CHOKEPOINT_REDIS_PASSWORD", "hunter2-secret")
        .output()
        .expect("run chokepoint-policy");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("hunter2"));
}

/// CPU time this process has used (user and system), from /proc (clock ticks of 10 ms).
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the command name (which may hold spaces), from field 3 on.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    Duration::from_millis(ticks * 10)
}
