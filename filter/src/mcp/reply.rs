//! The gateway's own answers to an MCP client, in MCP's terms: JSON-RPC errors carrying
//! the request's id. The steps refuse as for any API (a status and a failure class); this
//! turns each refusal into what MCP clients expect of it:
//!
//! - a tool, prompt or resource the caller may not use: HTTP 200 and `-32602`, what MCP
//!   answers for one that does not exist (it is absent from the caller's lists), naming
//!   the rule so an admin can find it;
//! - a rate limit: HTTP 200 and the gateway's `-31429` with `data.retry_after_ms`, which
//!   clients hand to the model as the call's error rather than as a broken transport;
//! - a missing or invalid token: 401 with `WWW-Authenticate` pointing at the server's
//!   protected resource metadata (MCP authorization, RFC 9728 section 5.1);
//! - everything else keeps its HTTP status, with a JSON-RPC error body.

use super::error::{RpcError, INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND};
use super::error::{HEADER_MISMATCH, PARSE_ERROR, RATE_LIMITED};
use crate::providers::reply::Reply;

/// Failure classes the MCP steps refuse with (a reply's `error.code`).
pub const TOOL_DENIED: &str = "tool_denied";
pub const HEADER_MISMATCH_CODE: &str = "header_mismatch";
pub const INVALID_MESSAGE: &str = "invalid_message";
pub const UNPARSABLE_MESSAGE: &str = "parse_error";
pub const SESSION_NOT_FOUND: &str = "session_not_found";

/// What the refusal `r` becomes for an MCP client. `id` is the request's JSON-RPC id (its
/// JSON text) when the body was read; `metadata_url` the server's metadata document.
/// With the reply, the JSON-RPC error code it carries (none: it was no error).
pub fn shape(
    r: &Reply,
    id: Option<&str>,
    metadata_url: &str,
    data: Option<String>,
) -> (Reply, Option<i64>) {
    let Some(e) = &r.error else {
        return (r.clone(), None);
    };
    let (status, code) = match (r.status, e.code.as_str()) {
        (_, TOOL_DENIED) => (200, INVALID_PARAMS),
        (429, _) => (200, RATE_LIMITED),
        (_, HEADER_MISMATCH_CODE) => (400, HEADER_MISMATCH),
        (_, UNPARSABLE_MESSAGE) => (400, PARSE_ERROR),
        (_, SESSION_NOT_FOUND) => (404, INVALID_REQUEST),
        (404 | 405, _) => (r.status, METHOD_NOT_FOUND),
        (400 | 401 | 403 | 413 | 415, _) => (r.status, INVALID_REQUEST),
        (status, _) => (status, INTERNAL_ERROR),
    };
    let mut error = RpcError::new(code, e.message.clone()).with_id(id);
    error.data = match (data, e.retry_after_secs) {
        (Some(d), _) => Some(d),
        (None, Some(secs)) if r.status == 429 => Some(format!(
            r#"{{"reason":"{}","retry_after_ms":{}}}"#,
            json_safe(&e.code),
            secs.saturating_mul(1000)
        )),
        _ => None,
    };
    let mut headers: Vec<(&'static str, String)> = r
        .headers
        .iter()
        .filter(|(k, _)| *k != "content-type" && *k != "www-authenticate")
        .filter(|(k, _)| status != 200 || *k != "retry-after")
        .cloned()
        .collect();
    headers.push(("content-type", "application/json".into()));
    if r.status == 401 {
        // RFC 6750 section 3.1: no error code when the request carried no token.
        let error = if e.code == "missing" {
            String::new()
        } else {
            format!(
                ", error=\"invalid_token\", error_description=\"{}\"",
                json_safe(&e.code)
            )
        };
        headers.push((
            "www-authenticate",
            format!("Bearer resource_metadata=\"{metadata_url}\"{error}"),
        ));
    }
    let shaped = Reply {
        status,
        headers,
        body: error.body(),
        error: r.error.clone(),
    };
    (shaped, Some(code))
}

/// A failure class or header value is the gateway's own ASCII; kept so, whatever it is.
fn json_safe(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::reply;

    const META: &str = "https://gw.example/.well-known/oauth-protected-resource/mcp/everything";

    #[test]
    fn refusals_become_json_rpc_errors_with_the_request_id() {
        let denied = reply::error(
            403,
            "permission_error",
            TOOL_DENIED,
            "Tool 'get-env' is not allowed by policy mcp.servers[everything].tools[0]",
        );
        let limited = reply::rate_limited("rate_limited", "Rate limit mcp_tool:rpm reached.", 12);
        let mismatch = reply::error(
            400,
            "invalid_request_error",
            HEADER_MISMATCH_CODE,
            "Header mismatch",
        );
        let missing = reply::unauthorized("missing", "No bearer token was provided.");
        let expired = reply::unauthorized("expired", "The token has expired.");
        let down = reply::policy_unavailable();
        let cases: [(&Reply, Option<&str>, u32, i64); 6] = [
            (&denied, Some("3"), 200, INVALID_PARAMS),
            (&limited, Some("\"a\""), 200, RATE_LIMITED),
            (&mismatch, Some("4"), 400, HEADER_MISMATCH),
            (&missing, None, 401, INVALID_REQUEST),
            (&expired, None, 401, INVALID_REQUEST),
            (&down, Some("5"), 503, INTERNAL_ERROR),
        ];
        for (r, id, status, code) in cases {
            let (shaped, _) = shape(r, id, META, None);
            assert_eq!(shaped.status, status, "{r:?}");
            let body: serde_json::Value = serde_json::from_str(&shaped.body).unwrap_or_default();
            assert_eq!(body["jsonrpc"], "2.0");
            assert_eq!(body["error"]["code"], code, "{r:?}");
            let want_id: serde_json::Value = id.map_or(serde_json::Value::Null, |i| {
                serde_json::from_str(i).unwrap_or_default()
            });
            assert_eq!(body["id"], want_id);
            let header = |n: &str| {
                shaped
                    .headers
                    .iter()
                    .find(|(k, _)| *k == n)
                    .map(|(_, v)| v.clone())
            };
            assert_eq!(header("content-type").as_deref(), Some("application/json"));
            if status == 200 {
                assert_eq!(header("retry-after"), None, "a 200 carries no retry-after");
            }
        }
        let body: serde_json::Value =
            serde_json::from_str(&shape(&limited, Some("1"), META, None).0.body)
                .unwrap_or_default();
        assert_eq!(body["error"]["data"]["retry_after_ms"], 12_000);
        let www = |r: &Reply| {
            shape(r, None, META, None)
                .0
                .headers
                .into_iter()
                .find(|(k, _)| *k == "www-authenticate")
                .map(|(_, v)| v)
        };
        assert_eq!(
            www(&missing).as_deref(),
            Some(format!("Bearer resource_metadata=\"{META}\"").as_str())
        );
        assert_eq!(
            www(&expired).as_deref(),
            Some(format!("Bearer resource_metadata=\"{META}\", error=\"invalid_token\", error_description=\"expired\"").as_str())
        );
    }
}
