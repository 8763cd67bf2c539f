//! Redis for the stack: on a unix socket for tests (no port to race for), or on a
//! loopback TCP port with append-only persistence for the local stack.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::process::Managed;

pub enum RedisMode {
    /// `redis-server --port 0 --unixsocket ...`, nothing persisted.
    UnixSocket,
    /// `redis-server --port PORT` with an append-only file under `data_dir`.
    Tcp { port: u16, data_dir: PathBuf },
    /// A primary, a replica and three sentinels ([`super::sentinel::SentinelGroup`]),
    /// the policy service following the primary through them. `down_after_ms`: how long
    /// the primary may be silent before a sentinel counts it down; `wait_replicas`: the
    /// policy service's `--redis-wait-replicas` (0: off).
    Sentinel {
        down_after_ms: u64,
        wait_replicas: u32,
    },
}

pub struct Redis {
    pub proc: Managed,
    pub url: String,
    endpoint: Endpoint,
}

enum Endpoint {
    Unix(PathBuf),
    Tcp(u16),
}

impl Redis {
    pub fn start(mode: &RedisMode, run_dir: &Path) -> Result<Redis, String> {
        let mut cmd = Command::new("redis-server");
        let endpoint = match mode {
            RedisMode::UnixSocket => {
                let sock = run_dir.join("redis.sock");
                let _ = std::fs::remove_file(&sock);
                cmd.args(["--port", "0", "--unixsocket"])
                    .arg(&sock)
                    .args([
                        "--unixsocketperm",
                        "700",
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                        "--dir",
                    ])
                    .arg(run_dir);
                Endpoint::Unix(sock)
            }
            RedisMode::Tcp { port, data_dir } => {
                std::fs::create_dir_all(data_dir)
                    .map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
                cmd.args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "yes",
                ])
                .args(["--appendfsync", "everysec", "--dir"])
                .arg(data_dir);
                Endpoint::Tcp(*port)
            }
            RedisMode::Sentinel { .. } => {
                return Err("a Sentinel group is started by SentinelGroup::start".to_owned())
            }
        };
        let url = match &endpoint {
            Endpoint::Unix(p) => format!("unix://{}", p.display()),
            Endpoint::Tcp(port) => format!("redis://127.0.0.1:{port}"),
        };
        let proc = Managed::spawn("redis", cmd, &run_dir.join("redis.log")).map_err(|e| {
            format!("{e}\nredis-server is installed by scripts/run and scripts/test (apt-get install redis-server)")
        })?;
        let mut redis = Redis {
            proc,
            url,
            endpoint,
        };
        redis.wait_ready(Duration::from_secs(10))?;
        Ok(redis)
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.ping() {
                return Ok(());
            }
            if let Some(status) = self.proc.exited() {
                return Err(format!(
                    "redis exited ({status}); its log:\n{}",
                    self.proc.log_tail(3000)
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "redis not ready after {timeout:?}; its log:\n{}",
                    self.proc.log_tail(3000)
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn ping(&self) -> bool {
        fn exchange(mut s: impl Read + Write) -> bool {
            let mut buf = [0u8; 7];
            s.write_all(b"PING\r\n").is_ok()
                && s.read_exact(&mut buf).is_ok()
                && &buf == b"+PONG\r\n"
        }
        match &self.endpoint {
            Endpoint::Unix(p) => std::os::unix::net::UnixStream::connect(p)
                .map(exchange)
                .unwrap_or(false),
            Endpoint::Tcp(port) => std::net::TcpStream::connect(("127.0.0.1", *port))
                .map(exchange)
                .unwrap_or(false),
        }
    }
}
