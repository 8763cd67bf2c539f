//! The aggregate endpoint `/mcp`: every configured server behind one MCP endpoint, their
//! tools named `<server>__<tool>`. The gateway is the MCP server its client sees: it
//! answers the handshake and `ping` itself, lists the tools of every server it can reach
//! (one that is down or slow is left out rather than failing the list), and sends each
//! call to its server under the tool's own name. What is here is the protocol's text;
//! the request path's part is `flow/steps/aggregate.rs`.

use serde_json::{json, Value};

/// Between a server's name and its tool's in the aggregate's tool names. Server names
/// cannot hold it (`[a-z0-9-]`); tool names may hold anything after it.
pub const SEPARATOR: &str = "__";

/// The revisions of the handshake the aggregate speaks (MCP's session-based ones).
pub const VERSIONS: [&str; 3] = ["2025-11-25", "2025-06-18", "2025-03-26"];

/// What the aggregate asks each server: the revision, and who it is.
pub const UPSTREAM_VERSION: &str = "2025-11-25";

/// Most pages of one server's tool list the aggregate follows.
pub const MAX_PAGES: usize = 10;

/// `everything__echo` -> (`everything`, `echo`).
pub fn split(name: &str) -> Option<(&str, &str)> {
    let (server, tool) = name.split_once(SEPARATOR)?;
    (!server.is_empty() && !tool.is_empty()).then_some((server, tool))
}

pub fn exposed(server: &str, tool: &str) -> String {
    format!("{server}{SEPARATOR}{tool}")
}

/// The answer to a client's `initialize`: the client's revision when the aggregate
/// speaks it, else its latest; tools only.
pub fn initialize_result(id: &str, asked: Option<&str>, version: &str) -> String {
    let protocol = asked
        .filter(|v| VERSIONS.contains(v))
        .unwrap_or(VERSIONS[0]);
    response(
        id,
        &json!({
            "protocolVersion": protocol,
            "capabilities": {"tools": {"listChanged": false}},
            "serverInfo": {"name": "chokepoint", "title": "chokepoint MCP gateway", "version": version},
            "instructions": "Tools of every MCP server this gateway serves, named <server>__<tool>.",
        }),
    )
}

/// A JSON-RPC result for request `id` (its JSON text).
pub fn response(id: &str, result: &Value) -> String {
    let id: Value = serde_json::from_str(id).unwrap_or(Value::Null);
    json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string()
}

/// The body of a request the aggregate sends a server itself.
pub fn request(id: u64, method: &str, params: Option<Value>) -> Vec<u8> {
    let v = match params {
        Some(p) => json!({"jsonrpc": "2.0", "id": id, "method": method, "params": p}),
        None => json!({"jsonrpc": "2.0", "id": id, "method": method}),
    };
    v.to_string().into_bytes()
}

pub fn initialize_request(id: u64, version: &str) -> Vec<u8> {
    request(
        id,
        "initialize",
        Some(json!({
            "protocolVersion": UPSTREAM_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "chokepoint", "version": version},
        })),
    )
}

pub fn initialized_notification() -> Vec<u8> {
    br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.to_vec()
}

pub fn list_request(id: u64, cursor: Option<&str>) -> Vec<u8> {
    request(id, "tools/list", cursor.map(|c| json!({"cursor": c})))
}

/// The JSON-RPC response to request `id` in a server's answer, JSON or SSE (the first
/// event carrying it).
pub fn response_in(body: &[u8], id: u64) -> Option<Value> {
    let wanted = |v: &Value| v.get("id").and_then(Value::as_u64) == Some(id);
    let text = std::str::from_utf8(body).ok()?;
    if text.trim_start().starts_with('{') {
        return serde_json::from_str::<Value>(text).ok().filter(wanted);
    }
    // SSE: events separated by a blank line, each `data:` line a line of its data.
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    text.split("\n\n").find_map(|event| {
        let data: Vec<&str> = event
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(|d| d.strip_prefix(' ').unwrap_or(d))
            .collect();
        serde_json::from_str::<Value>(&data.join("\n"))
            .ok()
            .filter(wanted)
    })
}

/// A page of a server's tool list: its tools, and the cursor of the next page.
pub fn tools_page(answer: &Value) -> Option<(Vec<Value>, Option<String>)> {
    let result = answer.get("result")?;
    let tools = result.get("tools")?.as_array()?.clone();
    let next = result
        .get("nextCursor")
        .and_then(Value::as_str)
        .map(str::to_owned);
    Some((tools, next))
}

/// The aggregate's tool list: each server's tools the caller may use, renamed
/// `<server>__<tool>`; private to the caller (MCP 2026-07-28 `cacheScope`).
pub fn merged(
    id: &str,
    lists: &[(String, Vec<Value>)],
    keep: &dyn Fn(&str, &str) -> bool,
) -> String {
    let mut tools = Vec::new();
    for (server, list) in lists {
        for tool in list {
            let Some(name) = tool.get("name").and_then(Value::as_str) else {
                continue;
            };
            if !keep(server, name) {
                continue;
            }
            let mut tool = tool.clone();
            if let Some(fields) = tool.as_object_mut() {
                fields.insert("name".into(), Value::String(exposed(server, name)));
                tools.push(tool);
            }
        }
    }
    response(id, &json!({"tools": tools}))
}

/// `params.name` of a request body replaced, every other byte as the client sent it;
/// `None` when the body has no string `params.name`.
pub fn renamed(body: &[u8], name: &str) -> Option<Vec<u8>> {
    #[derive(serde::Deserialize)]
    struct Top<'a> {
        #[serde(borrow)]
        params: Option<&'a serde_json::value::RawValue>,
    }
    #[derive(serde::Deserialize)]
    struct Params<'a> {
        #[serde(borrow)]
        name: Option<&'a serde_json::value::RawValue>,
    }
    let top: Top<'_> = serde_json::from_slice(body).ok()?;
    let params: Params<'_> = serde_json::from_str(top.params?.get()).ok()?;
    let raw = params.name?.get();
    if !raw.starts_with('"') {
        return None;
    }
    // The raw value borrows from `body`: its offset is where the bytes are.
    let start = (raw.as_ptr() as usize).checked_sub(body.as_ptr() as usize)?;
    let end = start.checked_add(raw.len())?;
    let mut out = body.get(..start)?.to_vec();
    out.extend(serde_json::to_string(name).ok()?.into_bytes());
    out.extend(body.get(end..)?);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_on_the_first_separator() {
        let cases = [
            ("everything__echo", Some(("everything", "echo"))),
            ("github__create__issue", Some(("github", "create__issue"))),
            ("a__", None),
            ("__echo", None),
            ("echo", None),
        ];
        for (name, want) in cases {
            assert_eq!(split(name), want, "{name}");
        }
    }

    #[test]
    fn a_renamed_call_keeps_every_other_byte() {
        let body = br#"{"jsonrpc":"2.0","id":4, "method":"tools/call","params":{"arguments":{"name":"x","n":1.50},"name" : "everything__echo"}}"#;
        let out = renamed(body, "echo").unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"jsonrpc":"2.0","id":4, "method":"tools/call","params":{"arguments":{"name":"x","n":1.50},"name" : "echo"}}"#
        );
        assert_eq!(renamed(br#"{"params":{"name":3}}"#, "x"), None);
        assert_eq!(renamed(b"not json", "x"), None);
    }

    #[test]
    fn answers_are_found_in_json_and_sse() {
        let sse = b"id: p\ndata: \n\nevent: message\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":3,\r\ndata: \"result\":{\"tools\":[{\"name\":\"echo\"}]}}\r\n\r\n";
        let found = response_in(sse, 3).unwrap();
        assert_eq!(tools_page(&found).unwrap().0.len(), 1);
        assert!(response_in(sse, 4).is_none());
        let json = br#"{"jsonrpc":"2.0","id":3,"result":{"tools":[],"nextCursor":"c2"}}"#;
        assert_eq!(
            tools_page(&response_in(json, 3).unwrap())
                .unwrap()
                .1
                .as_deref(),
            Some("c2")
        );
    }
}
