//! The aggregate endpoint's own calls to an MCP server: the session it keeps with each
//! (per worker), and the headers its calls carry.

use super::config::McpServer;
use super::session;

/// A session the gateway opened with a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamSession {
    /// The server's `Mcp-Session-Id`; none for a server without sessions.
    pub id: Option<String>,
    /// The revision the server agreed to.
    pub version: String,
}

/// How long one call of the aggregate to a server may take: a server slower than this
/// is left out of the list.
pub const CALL_TIMEOUT_MS: u64 = 3000;

/// The headers of a call to `server`: its path, the gateway's credential for it where
/// the filter holds it, and the session once there is one.
pub fn headers(
    server: &McpServer,
    credential: Option<&str>,
    session: Option<&UpstreamSession>,
) -> Vec<(String, String)> {
    let mut h: Vec<(String, String)> = vec![
        (":method".into(), "POST".into()),
        (":path".into(), server.path.clone()),
        (":authority".into(), server.authority.clone()),
        ("content-type".into(), "application/json".into()),
        (
            "accept".into(),
            "application/json, text/event-stream".into(),
        ),
        ("accept-encoding".into(), "identity".into()),
    ];
    if let (Some(c), Some(value)) = (&server.credential, credential) {
        h.push((c.header.clone(), value.to_string()));
    }
    if let Some(s) = session {
        if let Some(id) = s.id.as_ref().filter(|id| session::valid(id)) {
            h.push(("mcp-session-id".into(), id.clone()));
        }
        h.push(("mcp-protocol-version".into(), s.version.clone()));
    }
    h
}
