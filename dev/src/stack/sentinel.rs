//! Redis with Sentinel for the stack: a primary, one replica and three sentinels
//! (quorum two), each on its own loopback port, nothing persisted. The failover tests
//! kill the primary and watch a sentinel promote the replica.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::process::Managed;

/// The name the sentinels monitor the primary under.
pub const MASTER_NAME: &str = "chokepoint";

pub struct SentinelGroup {
    /// Two data nodes; which one is the primary changes with a failover.
    nodes: Vec<Node>,
    sentinels: Vec<Managed>,
    sentinel_ports: Vec<u16>,
    run_dir: PathBuf,
}

struct Node {
    port: u16,
    proc: Option<Managed>,
}

impl SentinelGroup {
    /// Starts the primary, the replica and the sentinels, and returns once every
    /// sentinel knows the replica and the other two sentinels, so a failover can be
    /// agreed on from then on. `down_after_ms`: how long the primary may be silent
    /// before a sentinel counts it down.
    pub fn start(run_dir: &Path, down_after_ms: u64) -> Result<SentinelGroup, String> {
        let ports = free_ports(5)?;
        let mut group = SentinelGroup {
            nodes: vec![
                Node {
                    port: ports[0],
                    proc: None,
                },
                Node {
                    port: ports[1],
                    proc: None,
                },
            ],
            sentinels: Vec::new(),
            sentinel_ports: ports[2..].to_vec(),
            run_dir: run_dir.to_path_buf(),
        };
        group.start_node(0, None)?;
        group.start_node(1, Some(ports[0]))?;
        for (i, port) in group.sentinel_ports.clone().into_iter().enumerate() {
            let dir = run_dir.join(format!("sentinel-{i}"));
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            let conf = dir.join("sentinel.conf");
            // Sentinel rewrites its file as it learns the topology, so each has its own.
            let text = format!(
                "port {port}\nbind 127.0.0.1\ndaemonize no\ndir {dir}\n\
                 sentinel monitor {MASTER_NAME} 127.0.0.1 {primary} 2\n\
                 sentinel down-after-milliseconds {MASTER_NAME} {down_after_ms}\n\
                 sentinel failover-timeout {MASTER_NAME} 5000\n\
                 sentinel parallel-syncs {MASTER_NAME} 1\n",
                dir = dir.display(),
                primary = ports[0],
            );
            std::fs::write(&conf, text)
                .map_err(|e| format!("cannot write {}: {e}", conf.display()))?;
            let mut cmd = Command::new("redis-sentinel");
            cmd.arg(&conf);
            let proc = Managed::spawn(
                &format!("sentinel {i}"),
                cmd,
                &run_dir.join(format!("sentinel-{i}.log")),
            )
            .map_err(|e| {
                format!("{e}\nredis-sentinel is installed by scripts/test's ha layer (scripts/lib.sh ensure_sentinel)")
            })?;
            group.sentinels.push(proc);
        }
        group.wait_agreed(Duration::from_secs(20))?;
        Ok(group)
    }

    /// `127.0.0.1:PORT,...`: what the policy service's `--redis-sentinels` takes.
    pub fn sentinel_addresses(&self) -> String {
        self.sentinel_ports
            .iter()
            .map(|port| format!("127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The primary's port as the first sentinel that answers names it.
    pub fn primary_port(&self) -> Option<u16> {
        self.sentinel_ports.iter().find_map(|port| {
            let reply = cli(*port, &["SENTINEL", "get-master-addr-by-name", MASTER_NAME]).ok()?;
            reply.lines().nth(1)?.trim().parse().ok()
        })
    }

    /// A `redis://` URL of the primary the sentinels name now.
    pub fn primary_url(&self) -> Option<String> {
        self.primary_port()
            .map(|port| format!("redis://127.0.0.1:{port}"))
    }

    /// SIGKILLs the primary, as a crash would; returns its port.
    pub fn kill_primary(&mut self) -> Result<u16, String> {
        let port = self.primary_port().ok_or("no sentinel names a primary")?;
        let node = self
            .nodes
            .iter_mut()
            .find(|node| node.port == port)
            .ok_or_else(|| format!("the sentinels name port {port}, not one of the group's"))?;
        if let Some(mut proc) = node.proc.take() {
            proc.kill();
        }
        Ok(port)
    }

    /// Starts the node on `port` again, as a replica of the primary the sentinels name
    /// now (as Sentinel would reconfigure it), and waits until it has synced.
    pub fn restart_as_replica(&mut self, port: u16) -> Result<(), String> {
        let primary = self.primary_port().ok_or("no sentinel names a primary")?;
        let i = self
            .nodes
            .iter()
            .position(|node| node.port == port)
            .ok_or_else(|| format!("port {port} is not one of the group's"))?;
        self.start_node(i, Some(primary))?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while !cli(port, &["INFO", "replication"])
            .map(|info| info.contains("master_link_status:up"))
            .unwrap_or(false)
        {
            if Instant::now() > deadline {
                return Err(format!("the restarted node on {port} never synced"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Every process of the group, for logs and exit checks.
    pub fn procs(&self) -> Vec<&Managed> {
        self.nodes
            .iter()
            .filter_map(|node| node.proc.as_ref())
            .chain(&self.sentinels)
            .collect()
    }

    pub fn procs_mut(&mut self) -> Vec<&mut Managed> {
        self.nodes
            .iter_mut()
            .filter_map(|node| node.proc.as_mut())
            .chain(self.sentinels.iter_mut())
            .collect()
    }

    pub fn stop(&mut self) {
        // Sentinels first, so none reacts to the data nodes going.
        for proc in &mut self.sentinels {
            proc.stop(Duration::from_secs(3));
        }
        for node in &mut self.nodes {
            if let Some(mut proc) = node.proc.take() {
                proc.stop(Duration::from_secs(3));
            }
        }
    }

    fn start_node(&mut self, i: usize, replica_of: Option<u16>) -> Result<(), String> {
        let port = self.nodes[i].port;
        let dir = self.run_dir.join(format!("redis-{port}"));
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(&dir);
        if let Some(primary) = replica_of {
            cmd.args(["--replicaof", "127.0.0.1", &primary.to_string()]);
        }
        let mut proc = Managed::spawn(
            &format!("redis {port}"),
            cmd,
            &self.run_dir.join(format!("redis-{port}.log")),
        )
        .map_err(|e| e.to_string())?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while cli(port, &["PING"])
            .map(|r| r.trim() != "PONG")
            .unwrap_or(true)
        {
            if let Some(status) = proc.exited() {
                return Err(format!(
                    "redis on {port} exited ({status}):\n{}",
                    proc.log_tail(3000)
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "redis on {port} not ready:\n{}",
                    proc.log_tail(3000)
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.nodes[i].proc = Some(proc);
        Ok(())
    }

    /// Until every sentinel counts one replica and two other sentinels, and the replica
    /// has synced.
    fn wait_agreed(&self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let count = |port: u16, what: &str| {
            cli(port, &["SENTINEL", "master", MASTER_NAME])
                .ok()
                .and_then(|reply| {
                    let lines: Vec<&str> = reply.lines().collect();
                    let at = lines.iter().position(|line| *line == what)?;
                    lines.get(at + 1)?.trim().parse::<u32>().ok()
                })
                .unwrap_or(0)
        };
        loop {
            let replica_synced = cli(self.nodes[1].port, &["INFO", "replication"])
                .map(|info| info.contains("master_link_status:up"))
                .unwrap_or(false);
            let agreed = self.sentinel_ports.iter().all(|port| {
                count(*port, "num-slaves") >= 1 && count(*port, "num-other-sentinels") >= 2
            });
            if replica_synced && agreed {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the sentinels did not agree on the group within {timeout:?} (replica synced: {replica_synced})"
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for SentinelGroup {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `redis-cli -p PORT ARGS...` on loopback: its raw output, one value per line.
pub fn cli(port: u16, args: &[&str]) -> Result<String, String> {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .map_err(|e| format!("redis-cli: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `n` distinct loopback ports free now (bound, read and released: Redis and Sentinel
/// must be told their port, as replicas and sentinels announce it to each other).
fn free_ports(n: usize) -> Result<Vec<u16>, String> {
    let listeners = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("no free loopback port: {e}"))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()).map_err(|e| e.to_string()))
        .collect()
}
