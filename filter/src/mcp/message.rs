// STUB (lead's local placeholder until mcp-logic lands)
use super::error::{RpcError, INVALID_REQUEST, PARSE_ERROR};
pub const MAX_METHOD_BYTES: usize = 128;
pub const MAX_NAME_BYTES: usize = 256;
pub const MAX_URI_BYTES: usize = 2048;
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kind {
    #[default]
    Request,
    Notification,
    Response,
}
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    pub kind: Kind,
    pub id: Option<String>,
    pub method: Option<String>,
    pub name: Option<String>,
    pub meta_protocol_version: Option<String>,
    pub client: Option<String>,
}
pub fn parse(body: &[u8]) -> Result<Message, RpcError> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| RpcError::new(PARSE_ERROR, "Parse error"))?;
    let o = v
        .as_object()
        .ok_or_else(|| RpcError::new(INVALID_REQUEST, "batch"))?;
    let id = o.get("id").map(|i| i.to_string());
    let method = o.get("method").and_then(|m| m.as_str()).map(str::to_owned);
    let kind = match (&id, &method) {
        (Some(_), Some(_)) => Kind::Request,
        (None, Some(_)) => Kind::Notification,
        _ => Kind::Response,
    };
    let p = o.get("params");
    let name = p
        .and_then(|p| p.get("name").or(p.get("uri")))
        .and_then(|n| n.as_str())
        .map(str::to_owned);
    Ok(Message {
        kind,
        id,
        method,
        name,
        meta_protocol_version: None,
        client: None,
    })
}
