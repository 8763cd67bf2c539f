//! The recorded MCP sessions (`filter/fixtures/mcp/`, format in `tests/mcp/record.py`),
//! for the tests: what real clients sent and real servers answered.

use serde_json::Value;

const FILES: [(&str, &str); 7] = [
    (
        "claude_code_mcp_list",
        include_str!("../../fixtures/mcp/claude_code_mcp_list.json"),
    ),
    (
        "crafted_legacy_errors",
        include_str!("../../fixtures/mcp/crafted_legacy_errors.json"),
    ),
    (
        "crafted_modern_errors",
        include_str!("../../fixtures/mcp/crafted_modern_errors.json"),
    ),
    (
        "inspector_cli_tools_call",
        include_str!("../../fixtures/mcp/inspector_cli_tools_call.json"),
    ),
    (
        "inspector_cli_tools_list",
        include_str!("../../fixtures/mcp/inspector_cli_tools_list.json"),
    ),
    (
        "python_sdk_everything",
        include_str!("../../fixtures/mcp/python_sdk_everything.json"),
    ),
    (
        "python_sdk_modern",
        include_str!("../../fixtures/mcp/python_sdk_modern.json"),
    ),
];

#[derive(Debug, Clone)]
pub struct Exchange {
    /// `<session>#<seq>`, for failure messages.
    pub label: String,
    /// The HTTP method.
    pub method: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub status: u64,
    pub response_headers: Vec<(String, String)>,
    /// The response body as the client read it, chunk by chunk.
    pub chunks: Vec<String>,
}

impl Exchange {
    /// A request header (names compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        find(&self.headers, name)
    }

    pub fn response_header(&self, name: &str) -> Option<&str> {
        find(&self.response_headers, name)
    }

    pub fn is_sse(&self) -> bool {
        self.response_header("content-type")
            .is_some_and(|t| t.starts_with("text/event-stream"))
    }

    pub fn response(&self) -> String {
        self.chunks.concat()
    }
}

fn find<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn pairs(v: &Value) -> Vec<(String, String)> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            (
                p[0].as_str().unwrap().to_owned(),
                p[1].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Every recorded exchange of every session.
pub fn all() -> Vec<Exchange> {
    let mut out = Vec::new();
    for (session, text) in FILES {
        let doc: Value = serde_json::from_str(text).unwrap();
        for e in doc["exchanges"].as_array().unwrap() {
            let request = &e["request"];
            let response = &e["response"];
            out.push(Exchange {
                label: format!("{session}#{}", e["seq"]),
                method: request["method"].as_str().unwrap().to_owned(),
                headers: pairs(&request["headers"]),
                body: request["body"]["text"].as_str().unwrap_or("").to_owned(),
                status: response["status"].as_u64().unwrap(),
                response_headers: pairs(&response["headers"]),
                chunks: response["chunks"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c["text"].as_str().unwrap().to_owned())
                    .collect(),
            });
        }
    }
    assert_eq!(out.len(), 45, "the recordings hold 45 exchanges");
    out
}

/// The exchange `<session>#<seq>`.
pub fn get(label: &str) -> Exchange {
    all()
        .into_iter()
        .find(|e| e.label == label)
        .unwrap_or_else(|| panic!("no exchange {label}"))
}

/// The POSTs that carry a JSON-RPC body.
pub fn posts() -> Vec<Exchange> {
    all()
        .into_iter()
        .filter(|e| e.method == "POST" && !e.body.is_empty())
        .collect()
}
