//! One JSON-RPC 2.0 message from a client's POST body, read as far as the gateway decides
//! on it: its kind, id, method, the tool, prompt or resource it names, the protocol
//! version it claims and the client it says it is. Everything else, tool arguments
//! above all, is skipped without being materialised.
//!
//! Since 2025-06-18 a POST body is a single request, notification or response (batching
//! was removed: https://modelcontextprotocol.io/specification/2025-06-18/changelog item 1).
//! Anything the gateway and the server could read differently is refused: a batch, a
//! duplicate member, an `id` that is not a string or integer, a method that is also a
//! response.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::error::{RpcError, INVALID_PARAMS, INVALID_REQUEST, MAX_ID_BYTES, PARSE_ERROR};
use super::json::{first_byte, object, present, string};

pub const MAX_METHOD_BYTES: usize = 128;
/// Tool and prompt names (the contract's bound for `McpScope.tool`).
pub const MAX_NAME_BYTES: usize = 256;
/// Resource URIs.
pub const MAX_URI_BYTES: usize = 2048;
/// `MCP-Protocol-Version` values are dates (`2026-07-28`); anything much longer is not one.
const MAX_VERSION_BYTES: usize = 64;
/// `name/version` of the client, as the usage record carries it.
const MAX_CLIENT_BYTES: usize = 64;

const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";

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
    /// The id's JSON text as sent (`7`, `"probe-1"`), echoed verbatim in errors; None for a notification.
    pub id: Option<String>,
    /// None only for a Response.
    pub method: Option<String>,
    /// tools/call and prompts/get: params.name; resources/read, resources/subscribe, resources/unsubscribe: params.uri
    pub name: Option<String>,
    /// params._meta["io.modelcontextprotocol/protocolVersion"] (2026-07-28 requests)
    pub meta_protocol_version: Option<String>,
    /// `name/version` from initialize's params.clientInfo or params._meta["io.modelcontextprotocol/clientInfo"], only if both are short printable ASCII (<=64 B total, chars [A-Za-z0-9._+-] in each part; otherwise None)
    pub client: Option<String>,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default, borrow, deserialize_with = "present")]
    jsonrpc: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    method: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    params: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    result: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    error: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Params<'a> {
    #[serde(default, borrow, deserialize_with = "present")]
    name: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    uri: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present", rename = "_meta")]
    meta: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present", rename = "clientInfo")]
    client_info: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Meta<'a> {
    #[serde(
        default,
        borrow,
        deserialize_with = "present",
        rename = "io.modelcontextprotocol/protocolVersion"
    )]
    protocol_version: Option<&'a RawValue>,
    #[serde(
        default,
        borrow,
        deserialize_with = "present",
        rename = "io.modelcontextprotocol/clientInfo"
    )]
    client_info: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ClientInfo<'a> {
    #[serde(default, borrow, deserialize_with = "present")]
    name: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    version: Option<&'a RawValue>,
}

/// The member of `params` that names what a method acts on, and its bound.
fn named_by(method: &str) -> Option<(&'static str, usize)> {
    match method {
        "tools/call" | "prompts/get" => Some(("name", MAX_NAME_BYTES)),
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
            Some(("uri", MAX_URI_BYTES))
        }
        _ => None,
    }
}

/// One JSON-RPC 2.0 message from a client's POST body. Errors: not JSON -> PARSE_ERROR; a
/// JSON array (batch; MCP removed batching in 2025-06-18) / not an object / jsonrpc != "2.0"
/// / id null, a float, bool, object or longer than error::MAX_ID_BYTES of JSON text / method
/// not a string or too long or not printable ASCII / neither method nor result/error ->
/// INVALID_REQUEST; a name or uri of the wrong type or over its bound -> INVALID_PARAMS.
/// Errors carry the id when it could be read. Member order is free ("jsonrpc" last in
/// Claude Code's initialize), `"id":0` is an id. Do not materialise params.arguments (tool
/// arguments can be large): serde_json RawValue / IgnoredAny is fine.
pub fn parse(body: &[u8]) -> Result<Message, RpcError> {
    let envelope = envelope(body)?;
    let id = match envelope.id {
        None => None,
        Some(raw) if is_id(raw.get()) => Some(raw.get().to_owned()),
        Some(_) => {
            return Err(RpcError::new(
                INVALID_REQUEST,
                "id must be a string or an integer",
            ))
        }
    };
    let fail = |code: i64, message: &str| RpcError::new(code, message).with_id(id.as_deref());
    if envelope.jsonrpc.and_then(string).as_deref() != Some("2.0") {
        return Err(fail(INVALID_REQUEST, "jsonrpc must be \"2.0\""));
    }
    let Some(method) = envelope.method else {
        return match (envelope.result, envelope.error, &id) {
            (Some(_), None, Some(_)) | (None, Some(_), Some(_)) => Ok(Message {
                kind: Kind::Response,
                id,
                ..Message::default()
            }),
            (Some(_), Some(_), _) => Err(fail(
                INVALID_REQUEST,
                "a response has a result or an error, not both",
            )),
            (None, None, _) => Err(fail(
                INVALID_REQUEST,
                "neither a method nor a result or error",
            )),
            (_, _, None) => Err(fail(INVALID_REQUEST, "a response needs an id")),
        };
    };
    let method = string(method).filter(|m| is_method(m)).ok_or_else(|| {
        fail(
            INVALID_REQUEST,
            "method must be a short printable ASCII string",
        )
    })?;
    if envelope.result.is_some() || envelope.error.is_some() {
        return Err(fail(
            INVALID_REQUEST,
            "a request or notification has no result or error",
        ));
    }
    let params =
        match envelope.params {
            None => None,
            Some(raw) if raw.get() == "null" => None,
            Some(raw) => Some(object::<Params>(raw.get().as_bytes()).ok_or_else(|| {
                fail(INVALID_PARAMS, "params must be an object, each member once")
            })?),
        };
    let meta = match params.as_ref().and_then(|p| p.meta) {
        Some(raw) if first_byte(raw.get().as_bytes()) == Some(b'{') => Some(
            object::<Meta>(raw.get().as_bytes())
                .ok_or_else(|| fail(INVALID_PARAMS, "params._meta has a member twice"))?,
        ),
        _ => None,
    };
    let name = match named_by(&method) {
        None => None,
        Some((member, bound)) => {
            let raw = params.as_ref().and_then(|p| match member {
                "name" => p.name,
                _ => p.uri,
            });
            let value = raw
                .and_then(string)
                .filter(|v| v.len() <= bound && v.chars().any(|c| !c.is_whitespace()));
            let Some(value) = value else {
                return Err(fail(
                    INVALID_PARAMS,
                    &format!(
                        "{method} needs params.{member}: a string of 1 to {bound} bytes, not blank"
                    ),
                ));
            };
            Some(value)
        }
    };
    let meta_protocol_version = match meta.as_ref().and_then(|m| m.protocol_version) {
        None => None,
        Some(raw) => Some(
            string(raw)
                .filter(|v| v.len() <= MAX_VERSION_BYTES)
                .ok_or_else(|| {
                    fail(
                        INVALID_PARAMS,
                        &format!(
                            "params._meta[\"{META_PROTOCOL_VERSION}\"] must be a short string"
                        ),
                    )
                })?,
        ),
    };
    let client_info = match method.as_str() {
        "initialize" => params.as_ref().and_then(|p| p.client_info),
        _ => None,
    }
    .or_else(|| meta.as_ref().and_then(|m| m.client_info));
    let kind = if id.is_some() {
        Kind::Request
    } else {
        Kind::Notification
    };
    Ok(Message {
        kind,
        id,
        method: Some(method),
        name,
        meta_protocol_version,
        client: client_info.and_then(client),
    })
}

/// The top-level members, after telling a parse error, a batch and a non-object apart.
fn envelope(body: &[u8]) -> Result<Envelope<'_>, RpcError> {
    let first = first_byte(body);
    if first != Some(b'{') {
        if serde_json::from_slice::<serde::de::IgnoredAny>(body).is_err() {
            return Err(RpcError::new(PARSE_ERROR, "the body is not JSON"));
        }
        return Err(RpcError::new(
            INVALID_REQUEST,
            if first == Some(b'[') {
                "Body must be a single JSON-RPC request or notification object (batches were removed in MCP 2025-06-18)"
            } else {
                "Body must be a single JSON-RPC request or notification object"
            },
        ));
    }
    serde_json::from_slice::<Envelope>(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => {
            RpcError::new(INVALID_REQUEST, "a member appears twice")
        }
        _ => RpcError::new(PARSE_ERROR, "the body is not JSON"),
    })
}

/// A JSON string or integer, short: what the gateway may echo back as it is.
fn is_id(text: &str) -> bool {
    if text.len() > MAX_ID_BYTES {
        return false;
    }
    let digits = text.strip_prefix('-').unwrap_or(text);
    text.starts_with('"') || (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
}

/// Visible ASCII, no spaces: every MCP method is, and it must travel in `Mcp-Method` as
/// it is (that header has no encoded form).
fn is_method(method: &str) -> bool {
    !method.is_empty()
        && method.len() <= MAX_METHOD_BYTES
        && method.bytes().all(|b| b.is_ascii_graphic())
}

/// `name/version` when both are short and plain; attribution only, so anything odd is
/// dropped rather than refused.
fn client(raw: &RawValue) -> Option<String> {
    let info = object::<ClientInfo>(raw.get().as_bytes())?;
    let name = info.name.and_then(string)?;
    let version = info.version.and_then(string)?;
    let plain = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'-'))
    };
    (plain(&name) && plain(&version) && name.len() + 1 + version.len() <= MAX_CLIENT_BYTES)
        .then(|| format!("{name}/{version}"))
}

#[cfg(test)]
#[path = "message_tests.rs"]
mod tests;
