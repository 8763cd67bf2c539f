//! The MCP server the local stack runs as an upstream: MCP's reference server
//! (`@modelcontextprotocol/server-everything`, pinned and installed into `.mcp/` by
//! scripts/lib.sh's `ensure_mcp`) in its Streamable HTTP mode, as the policy file's
//! `everything` server.
//!
//! It listens on 127.0.0.1 only: the server binds every interface and has no setting for
//! the address, so `dev/mcp/loopback.cjs` (built in, written to the run folder) is
//! preloaded to bind loopback. Its environment
//! is emptied but for `PATH` and `PORT`: the server has a `get-env` tool that returns its
//! whole environment, and the stack's secrets must not be in it.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::process::Managed;

/// The policy file's name for the server the stack runs.
pub const EVERYTHING: &str = "everything";
/// Its Streamable HTTP endpoint's path.
const ENDPOINT: &str = "/mcp";
/// The server's entry point in the npm folder (`.mcp/`).
const PACKAGE: &str = "node_modules/@modelcontextprotocol/server-everything/dist/index.js";
const PRELOAD: &str = include_str!("../../mcp/loopback.cjs");

/// Starts server-everything from the npm folder `mcp_dir` on `port` (0: a free one) and
/// waits until it accepts connections; the process and its endpoint URL.
pub fn start_everything(
    mcp_dir: &Path,
    run_dir: &Path,
    port: u16,
) -> Result<(Managed, String), String> {
    let entry = mcp_dir.join(PACKAGE);
    if !entry.exists() {
        return Err(format!(
            "MCP reference server not found at {} (scripts/run installs it: scripts/lib.sh ensure_mcp)",
            entry.display()
        ));
    }
    let preload = run_dir.join("mcp-loopback.cjs");
    std::fs::write(&preload, PRELOAD).map_err(|e| format!("{}: {e}", preload.display()))?;
    let port = if port == 0 { free_port()? } else { port };
    let mut cmd = Command::new("node");
    cmd.arg("--require")
        .arg(&preload)
        .arg(&entry)
        .arg("streamableHttp")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("PORT", port.to_string());
    let log = run_dir.join("mcp-everything.log");
    let mut proc = Managed::spawn("mcp server everything", cmd, &log).map_err(|e| e.to_string())?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if let Some(status) = proc.exited() {
            return Err(format!(
                "{} exited ({status}) before it listened; its log ({}):\n{}",
                proc.name,
                log.display(),
                proc.log_tail(4000)
            ));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{} does not listen on {addr} after 30 s; its log:\n{}",
                proc.name,
                proc.log_tail(4000)
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((proc, format!("http://{addr}{ENDPOINT}")))
}

/// The variable that sends the gateway's server NAME elsewhere (a recording proxy, a
/// server of one's own): `everything` -> `CHOKEPOINT_MCP_EVERYTHING_URL`.
pub fn url_var(name: &str) -> String {
    format!(
        "CHOKEPOINT_MCP_{}_URL",
        name.to_ascii_uppercase().replace('-', "_")
    )
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port on 127.0.0.1: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_var_names_the_server() {
        for (name, var) in [
            ("everything", "CHOKEPOINT_MCP_EVERYTHING_URL"),
            ("jira-cloud", "CHOKEPOINT_MCP_JIRA_CLOUD_URL"),
            ("gh2", "CHOKEPOINT_MCP_GH2_URL"),
        ] {
            assert_eq!(url_var(name), var);
        }
    }
}
