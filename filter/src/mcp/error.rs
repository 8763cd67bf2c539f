//! JSON-RPC errors, as MCP clients read them: the request's id echoed verbatim (its JSON
//! text), a code, a message, and `data` where the gateway has more to say (the policy
//! that refused a tool). Codes are JSON-RPC's and MCP's own; the gateway's one code of
//! its own, [`RATE_LIMITED`], lies outside the range JSON-RPC reserves.

use serde::Serialize;

/// The body is not JSON.
pub const PARSE_ERROR: i64 = -32700;
/// Not a single JSON-RPC 2.0 request, notification or response (a batch, `id: null`).
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
/// MCP's code for an unknown tool, prompt or resource; a tool the caller may not use is
/// one that does not exist for them.
pub const INVALID_PARAMS: i64 = -32602;
pub const INTERNAL_ERROR: i64 = -32603;
/// MCP 2026-07-28: an `Mcp-Method`, `Mcp-Name` or `MCP-Protocol-Version` header missing
/// or disagreeing with the body.
pub const HEADER_MISMATCH: i64 = -32020;
/// The caller's rate limit for this server or tool is reached: the gateway's own code,
/// outside JSON-RPC's reserved -32768..-32000 (which MCP forbids implementations to
/// extend).
pub const RATE_LIMITED: i64 = -31429;

/// Longest request id echoed in an error, in bytes of its JSON text: a longer one is
/// refused by the parser, so every echoed id is one the gateway read.
pub const MAX_ID_BYTES: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    /// The request's id as its JSON text (`7`, `"probe-1"`); `None` answers with `null`.
    pub id: Option<String>,
    /// A JSON object with more detail, as its text.
    pub data: Option<String>,
}

impl RpcError {
    pub fn new(code: i64, message: impl Into<String>) -> RpcError {
        RpcError {
            code,
            message: message.into(),
            id: None,
            data: None,
        }
    }

    pub fn with_id(mut self, id: Option<&str>) -> RpcError {
        self.id = id.map(str::to_owned);
        self
    }

    /// `{"jsonrpc":"2.0","id":<id>,"error":{"code":…,"message":…[,"data":…]}}`.
    pub fn body(&self) -> String {
        #[derive(Serialize)]
        struct Fields<'a> {
            code: i64,
            message: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            data: Option<&'a serde_json::value::RawValue>,
        }
        let data = self
            .data
            .as_deref()
            .and_then(|d| serde_json::value::RawValue::from_string(d.to_owned()).ok());
        let error = serde_json::to_string(&Fields {
            code: self.code,
            message: &self.message,
            data: data.as_deref(),
        })
        .unwrap_or_else(|_| format!(r#"{{"code":{},"message":"error"}}"#, self.code));
        let id = self
            .id
            .as_deref()
            .filter(|id| is_json_id(id))
            .unwrap_or("null");
        format!(r#"{{"jsonrpc":"2.0","id":{id},"error":{error}}}"#)
    }
}

/// An id's JSON text is one the body may carry as it is: a JSON string or integer, short.
fn is_json_id(text: &str) -> bool {
    text.len() <= MAX_ID_BYTES
        && matches!(
            serde_json::from_str::<serde_json::Value>(text),
            Ok(serde_json::Value::String(_) | serde_json::Value::Number(_))
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_echo_the_id_as_sent() {
        let cases = [
            (
                Some("7"),
                r#"{"jsonrpc":"2.0","id":7,"error":{"code":-32602,"message":"m"}}"#,
            ),
            (
                Some("0"),
                r#"{"jsonrpc":"2.0","id":0,"error":{"code":-32602,"message":"m"}}"#,
            ),
            (
                Some(r#""server-discover-probe-1""#),
                r#"{"jsonrpc":"2.0","id":"server-discover-probe-1","error":{"code":-32602,"message":"m"}}"#,
            ),
            (
                None,
                r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32602,"message":"m"}}"#,
            ),
            // Never anything but an id the parser could have read.
            (
                Some("{}"),
                r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32602,"message":"m"}}"#,
            ),
        ];
        for (id, want) in cases {
            assert_eq!(RpcError::new(INVALID_PARAMS, "m").with_id(id).body(), want);
        }
    }

    #[test]
    fn data_rides_along_when_it_is_json() {
        let mut e = RpcError::new(RATE_LIMITED, "slow down").with_id(Some("1"));
        e.data = Some(r#"{"retry_after_ms":1000}"#.into());
        assert_eq!(
            e.body(),
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-31429,"message":"slow down","data":{"retry_after_ms":1000}}}"#
        );
        e.data = Some("not json".into());
        assert!(!e.body().contains("data"));
    }
}
