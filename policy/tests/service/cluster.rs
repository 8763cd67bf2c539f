//! The service tests against a Redis Cluster: with `CHOKEPOINT_TEST_REDIS=cluster` every
//! `RedisServer::start` is a private three-node cluster (three `redis-server
//! --cluster-enabled yes` on random 127.0.0.1 ports, joined by `redis-cli --cluster
//! create`, no replicas), and the tests' own Redis connections are cluster clients.
//! Also here: the cluster flags' validation, which needs no cluster.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};
use reqwest::StatusCode;

use crate::support::{json_of, new_user, usage_config, RedisServer, Service};

/// Whether this run's Redis is a cluster (`CHOKEPOINT_TEST_REDIS=cluster`).
pub fn on_cluster() -> bool {
    match std::env::var("CHOKEPOINT_TEST_REDIS").as_deref() {
        Ok("cluster") => true,
        Ok("" | "single") | Err(_) => false,
        Ok(other) => panic!("CHOKEPOINT_TEST_REDIS={other:?}: expected single or cluster"),
    }
}

/// In cluster mode, says on stderr that `test` is skipped and why, and returns true (the
/// test then returns). Only for what a cluster cannot do the way the test needs.
pub fn skip_on_cluster(test: &str, why: &str) -> bool {
    if on_cluster() {
        say(&format!("SKIPPED in cluster mode: {test}: {why}"));
        return true;
    }
    false
}

/// A line on the process's stderr, past libtest's capture (which would show it only for
/// a failing test), so every run lists what it skipped.
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// A test's own connection to Redis: one server's, or the cluster client (which routes
/// each command by its key, and fans KEYS, DBSIZE, FLUSHALL, SCRIPT and CONFIG SET out to
/// every node).
#[derive(Clone)]
pub enum RedisConnection {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConnection::Single(c) => c.req_packed_command(cmd),
            RedisConnection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConnection::Single(c) => c.req_packed_commands(pipeline, offset, count),
            RedisConnection::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConnection::Single(c) => c.get_db(),
            RedisConnection::Cluster(c) => c.get_db(),
        }
    }
}

/// How many primaries a test cluster has (the fewest `redis-cli --cluster create` takes).
const NODES: usize = 3;

/// Three cluster nodes in the test's temp dir, stopped by PID on drop; their logs are
/// printed when the test failed (or the cluster did not come up).
pub struct Cluster {
    nodes: Vec<Node>,
}

struct Node {
    port: u16,
    bus_port: u16,
    child: Option<Child>,
    /// Holds `nodes.conf`, so a restarted node rejoins with its slots.
    dir: PathBuf,
    log: PathBuf,
}

impl Node {
    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--cluster-port", &self.bus_port.to_string()])
            .args(["--bind", "127.0.0.1", "--cluster-enabled", "yes"])
            .args(["--cluster-config-file", "nodes.conf"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(&self.log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (is it installed?)");
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Cluster {
    /// The port of a node whose process has exited, if any.
    fn exited_node(&mut self) -> Option<u16> {
        self.nodes.iter_mut().find_map(|node| {
            let exited = node
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            exited.map(|_| node.port)
        })
    }

    pub fn start(dir: &Path) -> Self {
        // A port found free can be taken before the node binds it; try again then.
        for attempt in 0..5 {
            let ports: Vec<(u16, u16)> = (0..NODES).map(|_| (free_port(), free_port())).collect();
            if let Some(cluster) = Self::try_start(dir, attempt, &ports) {
                return cluster;
            }
        }
        panic!("no Redis Cluster came up in 5 attempts (logs above)");
    }

    /// A cluster on these (port, bus port) pairs, found free earlier by the caller.
    pub fn start_on(dir: &Path, ports: &[(u16, u16)]) -> Self {
        Self::try_start(dir, 0, ports).expect("the cluster came up on its ports (logs above)")
    }

    fn try_start(dir: &Path, attempt: usize, ports: &[(u16, u16)]) -> Option<Self> {
        let mut cluster = Cluster { nodes: Vec::new() };
        for (i, &(port, bus_port)) in ports.iter().enumerate() {
            let dir = dir.join(format!("cluster-{attempt}-{i}"));
            std::fs::create_dir_all(&dir).expect("node dir");
            let log = dir.join("redis.log");
            let mut node = Node {
                port,
                bus_port,
                child: None,
                dir,
                log,
            };
            node.spawn();
            cluster.nodes.push(node);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for node in &mut cluster.nodes {
            while std::net::TcpStream::connect(("127.0.0.1", node.port)).is_err() {
                let exited = node
                    .child
                    .as_mut()
                    .and_then(|c| c.try_wait().ok().flatten());
                if let Some(status) = exited {
                    eprintln!("cluster node on port {} exited: {status}", node.port);
                    cluster.show_logs();
                    return None;
                }
                assert!(Instant::now() < deadline, "cluster node did not come up");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(
                cluster
                    .nodes
                    .iter()
                    .map(|n| format!("127.0.0.1:{}", n.port)),
            )
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli (is redis-tools installed?)");
        if !created.status.success() {
            cluster.show_logs();
            // A port found free can be taken by another test's server before the node
            // binds it: the connect above then reached that server, and the node has
            // exited. Another attempt on other ports, as for any node that exited.
            if let Some(port) = cluster.exited_node() {
                eprintln!("cluster node on port {port} exited (port taken?); trying other ports");
                return None;
            }
            panic!(
                "redis-cli --cluster create failed: {}\n{}",
                String::from_utf8_lossy(&created.stdout),
                String::from_utf8_lossy(&created.stderr)
            );
        }
        // A new primary reports `cluster_state:ok` only once every node knows every
        // slot's owner (gossip), and not before it has been up for two seconds.
        let deadline = Instant::now() + Duration::from_secs(20);
        for node in &cluster.nodes {
            loop {
                let info = Command::new("redis-cli")
                    .args(["-p", &node.port.to_string(), "cluster", "info"])
                    .output()
                    .expect("run redis-cli");
                if String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok") {
                    break;
                }
                if Instant::now() > deadline {
                    cluster.show_logs();
                    panic!(
                        "node {} never said cluster_state:ok:\n{}",
                        node.port,
                        String::from_utf8_lossy(&info.stdout)
                    );
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Some(cluster)
    }

    pub fn nodes(&self) -> Vec<(String, u16)> {
        self.nodes
            .iter()
            .map(|n| ("127.0.0.1".to_owned(), n.port))
            .collect()
    }

    pub fn nodes_shown(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub async fn connection(&self) -> RedisConnection {
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port))
            .collect();
        RedisConnection::Cluster(
            redis::cluster::ClusterClient::new(nodes)
                .expect("cluster client")
                .get_async_connection()
                .await
                .expect("connect to the test cluster"),
        )
    }

    pub fn kill_node(&mut self, index: usize) {
        self.nodes[index].kill();
    }

    /// Starts a killed node again on its ports and `nodes.conf`: it rejoins with its slots.
    pub fn restart_node(&mut self, index: usize) {
        self.nodes[index].kill();
        self.nodes[index].spawn();
    }

    fn show_logs(&self) {
        for node in &self.nodes {
            let log = std::fs::read_to_string(&node.log).unwrap_or_default();
            eprintln!("--- cluster node 127.0.0.1:{} log ---\n{log}", node.port);
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.show_logs();
        }
        for node in &mut self.nodes {
            node.kill();
        }
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("bind a free port")
        .port()
}

#[tokio::test]
async fn refuses_cluster_flags_that_do_not_fit_naming_the_flag() {
    if skip_on_cluster(
        "refuses_cluster_flags_that_do_not_fit_naming_the_flag",
        "checks flags only; the single-Redis run covers it",
    ) {
        return;
    }
    // (arguments after `serve`, what the error must name)
    let cases: &[(&[&str], &str)] = &[
        (
            &["--redis-cluster-nodes", "127.0.0.1"],
            "--redis-cluster-nodes[0]",
        ),
        (
            &["--redis-cluster-nodes", "127.0.0.1:7000,x:0"],
            "--redis-cluster-nodes[1]",
        ),
        (
            &[
                "--redis-cluster-nodes",
                "127.0.0.1:7000",
                "--redis",
                "redis://127.0.0.1:1",
            ],
            "--redis (CHOKEPOINT_REDIS_URL) and --redis-cluster-nodes",
        ),
        (
            &[
                "--redis-cluster-nodes",
                "127.0.0.1:7000",
                "--redis-sentinels",
                "127.0.0.1:26379",
            ],
            "--redis-sentinels (CHOKEPOINT_REDIS_SENTINELS) and --redis-cluster-nodes",
        ),
        (
            &[
                "--redis-cluster-nodes",
                "127.0.0.1:7000",
                "--redis-wait-replicas",
                "1",
            ],
            "--redis-wait-replicas: not with --redis-cluster-nodes",
        ),
        (
            &["--redis-cluster-nodes", "127.0.0.1:7000,bad host:7001"],
            "redis_cluster.nodes[1]",
        ),
        (
            &["--redis-username", "gateway"],
            "--redis-username needs --redis-sentinels or --redis-cluster-nodes",
        ),
    ];
    let binary = env!("CARGO_BIN_EXE_chokepoint-policy");
    for (args, needle) in cases {
        let out = Command::new(binary)
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .args(*args)
            .env("CHOKEPOINT_POLICY_TOKEN", "t".repeat(32))
            .env_remove("CHOKEPOINT_REDIS_URL")
            .env_remove("CHOKEPOINT_REDIS_CLUSTER_NODES")
            .env("CHOKEPOINT_REDIS_PASSWORD", "hunter2-secret")
            .output()
            .expect("run chokepoint-policy");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}: started");
        assert!(
            stderr.contains(needle),
            "{args:?}: {stderr:?} lacks {needle:?}"
        );
        assert!(!stderr.contains("hunter2"), "{args:?}: {stderr:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_node_down_answers_503() {
    if !on_cluster() {
        say(
            "SKIPPED outside cluster mode: a_cluster_node_down_answers_503: needs \
             CHOKEPOINT_TEST_REDIS=cluster",
        );
        return;
    }
    let mut redis = RedisServer::start();
    let service = Service::start(usage_config(&redis)).await;
    let (status, body) = json_of(service.get_admin("/healthz").await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["redis"], "cluster", "{body}");

    redis.kill_cluster_node(1);
    // PING goes to every primary, so the first health check after the kill fails: no
    // polling, and no retry that could hide it.
    let (status, body) = json_of(service.get_admin("/healthz").await).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["status"], "unavailable", "{body}");
    assert_eq!(body["redis"], "cluster", "{body}");
    let metrics = service.metrics().await;
    assert!(
        metrics.lines().any(|l| l == "chokepoint_policy_redis_up 0"),
        "{metrics}"
    );
}

/// The admin reads that pipeline many keys (the top spenders' ledger totals), the audit
/// export's page and the dead-letter stream, on data written straight into Redis (or by
/// the dead-letter call alone), so they hold on a cluster without the decision scripts.
/// On a cluster the twenty ledger keys land on every node: the pipeline must be split
/// per slot and its replies put back in rank order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_spanning_slots_come_back_in_order() {
    let redis = RedisServer::start();
    let service = Service::start(usage_config(&redis)).await;
    let mut conn = redis.connection().await;
    let users = seed_top_spenders(&mut conn).await;
    let (status, top) = service.admin(reqwest::Method::GET, TOP_QUERY, None).await;
    assert_eq!(status, StatusCode::OK, "{top}");
    let listed: Vec<(String, u64, u64)> = top["top"]
        .as_array()
        .expect("top")
        .iter()
        .map(|e| {
            (
                e["id"].as_str().expect("id").to_owned(),
                e["cost_micros"].as_u64().expect("cost"),
                e["requests"].as_u64().expect("requests"),
            )
        })
        .collect();
    let expected: Vec<(String, u64, u64)> = users
        .iter()
        .enumerate()
        .rev()
        .map(|(i, user)| (user.clone(), (i as u64 + 1) * 100, i as u64 + 1))
        .collect();
    assert_eq!(listed, expected, "{top}");

    for day in ["2026-01-01", "2026-01-02"] {
        let () = redis::cmd("XADD")
            .arg("ck:usage:log")
            .arg("*")
            .arg("record")
            .arg(r#"{"request_id":"r"}"#)
            .arg("day")
            .arg(day)
            .query_async::<String>(&mut conn)
            .await
            .map(drop)
            .expect("XADD");
    }
    let (status, page) = service
        .admin(reqwest::Method::GET, "/v1/admin/audit?limit=1", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(
        (page["length"].as_u64(), page["entries_added"].as_u64()),
        (Some(2), Some(2)),
        "{page}"
    );
    assert_eq!(page["entries"][0]["day"], "2026-01-01", "{page}");

    // A batch of invalid records only: nothing to book, each record dead-lettered.
    let (status, body) = service
        .post_usage(&[serde_json::json!({"request_id": "dead-1"})])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["dead_lettered"], 1, "{body}");
    let dead: u64 = redis::cmd("XLEN")
        .arg("ck:usage:dead")
        .query_async(&mut conn)
        .await
        .expect("XLEN");
    assert_eq!(dead, 1);
}

/// The cluster counterpart of `redis_outage`'s tests: the service starts while no node
/// is up (503, no busy loop), serves once the cluster is there, answers 503 while a node
/// is down and serves again once it is back, all without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_before_the_cluster_and_rides_out_a_node_restart() {
    if !on_cluster() {
        say("SKIPPED outside cluster mode: starts_before_the_cluster_and_rides_out_a_node_restart: \
             needs CHOKEPOINT_TEST_REDIS=cluster");
        return;
    }
    let ports: Vec<(u16, u16)> = (0..NODES).map(|_| (free_port(), free_port())).collect();
    let mut redis = RedisServer::cluster_not_started(ports);
    let service = Service::start(usage_config(&redis)).await;
    let (status, body) = json_of(service.get_admin("/healthz").await).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");

    redis.start_cluster();
    // Ledger keys on every node: a read of them all works only once the service's client
    // knows every primary (it may first have read the slot map of a cluster still
    // forming, and learns the rest from the first key it cannot place).
    seed_top_spenders(&mut redis.connection().await).await;
    serving_within(&service, Duration::from_secs(30)).await;

    redis.kill_cluster_node(2);
    let (status, body) = json_of(service.get_admin("/healthz").await).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let (status, body) = service.admin(reqwest::Method::GET, TOP_QUERY, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");

    // Back on its ports and nodes.conf (its keys gone: no persistence), it serves after
    // its two seconds of `cluster_state:fail`, which `/healthz` reports until then.
    redis.restart_cluster_node(2);
    serving_within(&service, Duration::from_secs(30)).await;
}

const TOP_QUERY: &str = "/v1/admin/top?scope_kind=user&by=cost_micros&period=2026-01&limit=20";

/// Twenty users ranked by cost in 2026-01 (the first cheapest), each with its ledger
/// hash: twenty hash tags, so keys on every node of a three-node cluster.
async fn seed_top_spenders(conn: &mut RedisConnection) -> Vec<String> {
    let users: Vec<String> = (0..20).map(|_| new_user()).collect();
    for (i, user) in users.iter().enumerate() {
        let cost = (i as u64 + 1) * 100;
        let _: u64 = redis::cmd("ZADD")
            .arg("ck:top:user:cost_micros:2026-01")
            .arg(cost)
            .arg(user)
            .query_async(conn)
            .await
            .expect("ZADD");
        let _: u64 = redis::cmd("HSET")
            .arg(format!("ck:ledger:user:{{{user}}}:2026-01"))
            .arg("cost_micros")
            .arg(cost)
            .arg("requests")
            .arg(i + 1)
            .query_async(conn)
            .await
            .expect("HSET");
    }
    users
}

/// Polls `/healthz` and the top spenders' read until both answer 200; fails after
/// `within`.
async fn serving_within(service: &Service, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let (health, body) = json_of(service.get_admin("/healthz").await).await;
        let (read, top) = service.admin(reqwest::Method::GET, TOP_QUERY, None).await;
        if health == StatusCode::OK && read == StatusCode::OK {
            assert_eq!(body["redis"], "cluster", "{body}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not serving within {within:?}: {body} {top}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The nodes' password (`--redis-password-file` / `CHOKEPOINT_REDIS_PASSWORD`) reaches
/// every node the client learns of, not only the seeds; without it the service answers
/// 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_with_a_password_needs_it() {
    if !on_cluster() {
        say(
            "SKIPPED outside cluster mode: a_cluster_with_a_password_needs_it: needs \
             CHOKEPOINT_TEST_REDIS=cluster",
        );
        return;
    }
    const PASSWORD: &str = "cluster-test-s3cret";
    let redis = RedisServer::start();
    let mut conn = redis.connection().await;
    seed_top_spenders(&mut conn).await;
    // CONFIG SET goes to every node; this connection stays signed in.
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg(PASSWORD)
        .query_async(&mut conn)
        .await
        .expect("CONFIG SET requirepass");

    let refused = Service::start(usage_config(&redis)).await;
    let (status, body) = json_of(refused.get_admin("/healthz").await).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");

    let mut with = usage_config(&redis);
    if let Some(cluster) = with.redis_cluster.as_mut() {
        cluster.password = Some(PASSWORD.to_owned());
    }
    let service = Service::start(with).await;
    // Seed by the first node, twenty keys on all three: each needed the password.
    serving_within(&service, Duration::from_secs(10)).await;
}
