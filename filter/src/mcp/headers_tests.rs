//! The recorded requests (real clients' headers, and the crafted ones the Python SDK
//! server refused with -32020), the spec's encoding examples, and crafted lies.

use super::*;
use crate::mcp::error::HEADER_MISMATCH;
use crate::mcp::fixtures::{self, Exchange};
use crate::mcp::message::parse;

fn mirrored(e: &Exchange) -> Mirrored {
    Mirrored {
        protocol_version: e.header("mcp-protocol-version").map(str::to_owned),
        method: e.header("mcp-method").map(str::to_owned),
        name: e.header("mcp-name").map(str::to_owned),
    }
}

#[test]
fn recorded_requests_pass_and_the_ones_a_2026_server_refused_are_refused() {
    // The Python SDK server answered these 400 -32020 (crafted_modern_errors#0..3).
    let refused = [
        (
            "crafted_modern_errors#0",
            "Header mismatch: Mcp-Name header value 'count_slowly' does not match body value 'add'",
        ),
        (
            "crafted_modern_errors#1",
            "Header mismatch: required Mcp-Name header is missing",
        ),
        (
            "crafted_modern_errors#2",
            "Header mismatch: Mcp-Method header value 'tools/list' does not match body value 'tools/call'",
        ),
        (
            "crafted_modern_errors#3",
            "Header mismatch: MCP-Protocol-Version header value '2099-01-01' does not match body value '2026-07-28'",
        ),
    ];
    let mut checked = 0;
    for e in fixtures::posts() {
        let Ok(message) = parse(e.body.as_bytes()) else {
            continue; // the batches
        };
        checked += 1;
        let got = check(&mirrored(&e), &message);
        match refused.iter().find(|(label, _)| *label == e.label) {
            Some((_, text)) => {
                let err = got.expect_err(&e.label);
                assert_eq!(err.code, HEADER_MISMATCH, "{}", e.label);
                assert_eq!(err.message, *text, "{}", e.label);
                assert_eq!(err.id, message.id, "{}", e.label);
                assert_eq!(e.status, 400, "{}: the server refused it too", e.label);
                let answer: serde_json::Value = serde_json::from_str(&e.response()).unwrap();
                assert_eq!(answer["error"]["code"], HEADER_MISMATCH, "{}", e.label);
            }
            None => assert_eq!(got, Ok(()), "{}: {:?}", e.label, e.headers),
        }
    }
    assert_eq!(checked, 37);
}

#[test]
fn which_versions_require_mirroring() {
    let cases = [
        ("2026-07-28", true),
        ("2026-07-29", true),
        ("2026-12-01", true),
        ("2099-01-01", true),
        ("2026-07-27", false),
        ("2025-11-25", false),
        ("2025-06-18", false),
        ("2025-03-26", false),
        ("", false),
        ("2026-7-28", false),
        ("2026-07-28 ", false),
        (" 2026-07-28", false),
        ("2026-13-01", false),
        ("2026-00-10", false),
        ("2026-07-32", false),
        ("2026-07-00", false),
        ("2026/07/28", false),
        ("9999-99-99", false),
        ("DRAFT-2026-v1", false),
        ("2026-07-28x", false),
        ("２０２６-07-28", false),
    ];
    for (version, want) in cases {
        assert_eq!(requires_mirroring(version), want, "{version:?}");
    }
}

#[test]
fn values_decode_as_the_spec_encodes_them() {
    let cases = [
        // The spec's "Encoding examples".
        ("us-west1", Some("us-west1")),
        ("=?base64?SGVsbG8sIOS4lueVjA==?=", Some("Hello, 世界")),
        ("=?base64?IHBhZGRlZCA=?=", Some(" padded ")),
        ("=?base64?bGluZTEKbGluZTI=?=", Some("line1\nline2")),
        (
            "=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?=",
            Some("=?base64?literal?="),
        ),
        // Padding either way.
        ("=?base64?SGVsbG8sIOS4lueVjA?=", Some("Hello, 世界")),
        ("=?base64??=", Some("")),
        // The markers are exact and lowercase; a half sentinel is a plain value.
        ("=?BASE64?dXM=?=", Some("=?BASE64?dXM=?=")),
        ("=?base64?dXM=", Some("=?base64?dXM=")),
        ("a b\tc", Some("a b\tc")),
        // Invalid encodings.
        ("=?base64?!!!?=", None),
        ("=?base64?/w==?=", None),
        ("résumé", None),
        ("a\u{0}b", None),
        ("a\u{7f}", None),
    ];
    for (value, want) in cases {
        assert_eq!(decode(value).as_deref(), want, "{value:?}");
    }
}

#[test]
fn crafted_headers() {
    let call = r#"{"jsonrpc":"2.0","id":"c1","method":"tools/call","params":{"name":"get-env","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;
    let legacy_call =
        r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"get-env"}}"#;
    let unicode_call =
        r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"wetter-für-berlin"}}"#;
    let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    let note = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    let answer = r#"{"jsonrpc":"2.0","id":"s1","result":{}}"#;
    let modern_list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;
    let long = "x".repeat(300);
    let h = |v: Option<&str>, m: Option<&str>, n: Option<&str>| Mirrored {
        protocol_version: v.map(str::to_owned),
        method: m.map(str::to_owned),
        name: n.map(str::to_owned),
    };
    let modern = Some("2026-07-28");
    let legacy = Some("2025-11-25");
    // (headers, body, Ok or the error message after "Header mismatch: ")
    let cases: Vec<(Mirrored, &str, Result<(), String>)> = vec![
        (h(modern, Some("tools/call"), Some("get-env")), call, Ok(())),
        (h(modern, Some("tools/call"), Some("=?base64?Z2V0LWVudg==?=")), call, Ok(())),
        // A lie aimed at a router that trusts headers.
        (h(modern, Some("tools/call"), Some("echo")), call, Err("Mcp-Name header value 'echo' does not match body value 'get-env'".into())),
        (h(modern, Some("tools/list"), Some("get-env")), call, Err("Mcp-Method header value 'tools/list' does not match body value 'tools/call'".into())),
        (h(modern, None, Some("get-env")), call, Err("required Mcp-Method header is missing".into())),
        (h(modern, Some("tools/call"), None), call, Err("required Mcp-Name header is missing".into())),
        (h(None, Some("tools/call"), Some("get-env")), call, Err("required MCP-Protocol-Version header is missing".into())),
        (h(Some("2025-11-25"), Some("tools/call"), Some("get-env")), call, Err("MCP-Protocol-Version header value '2025-11-25' does not match body value '2026-07-28'".into())),
        // The method header has no encoded form.
        (h(modern, Some("=?base64?dG9vbHMvY2FsbA==?="), Some("get-env")), call, Err("Mcp-Method header value '=?base64?dG9vbHMvY2FsbA==?=' does not match body value 'tools/call'".into())),
        (h(modern, Some("tools/call"), Some("=?base64?####?=")), call, Err("Mcp-Name header value '=?base64?####?=' is neither plain visible ASCII nor valid =?base64?...?= UTF-8".into())),
        // Older revisions need no headers, but one that is sent must be true.
        (h(legacy, None, None), legacy_call, Ok(())),
        (h(None, None, None), legacy_call, Ok(())),
        (h(legacy, Some("tools/call"), None), legacy_call, Ok(())),
        (h(legacy, None, Some("echo")), legacy_call, Err("Mcp-Name header value 'echo' does not match body value 'get-env'".into())),
        (h(legacy, Some("tools/list"), None), legacy_call, Err("Mcp-Method header value 'tools/list' does not match body value 'tools/call'".into())),
        (h(Some("garbage"), Some("ping"), None), legacy_call, Err("Mcp-Method header value 'ping' does not match body value 'tools/call'".into())),
        (h(Some("garbage"), None, None), legacy_call, Ok(())),
        (h(legacy, None, Some("=?base64?d2V0dGVyLWbDvHItYmVybGlu?=")), unicode_call, Ok(())),
        (h(legacy, None, Some("wetter-fxr-berlin")), unicode_call, Err("Mcp-Name header value 'wetter-fxr-berlin' does not match body value 'wetter-fr-berlin'".into())),
        // A name header on a method that names nothing.
        (h(modern, Some("tools/list"), Some("get-env")), list, Err("Mcp-Name header value 'get-env' but tools/list names nothing".into())),
        (h(modern, Some("tools/list"), None), list, Ok(())),
        (h(modern, None, None), list, Err("required Mcp-Method header is missing".into())),
        (h(modern, Some("tools/list"), None), modern_list, Ok(())),
        (h(Some("2026-08-01"), Some("tools/list"), None), modern_list, Err("MCP-Protocol-Version header value '2026-08-01' does not match body value '2026-07-28'".into())),
        (h(modern, None, None), note, Err("required Mcp-Method header is missing".into())),
        (h(modern, Some("notifications/initialized"), None), note, Ok(())),
        // A response (legacy clients answering a server's request) has no method.
        (h(legacy, None, None), answer, Ok(())),
        (h(modern, None, None), answer, Ok(())),
        (h(legacy, Some("ping"), None), answer, Err("Mcp-Method header value 'ping' but the body is a response".into())),
        // Quoted values are clipped and printable.
        (h(legacy, Some(&long), None), list, Err(format!("Mcp-Method header value '{}' does not match body value 'tools/list'", "x".repeat(64)))),
        (h(legacy, None, Some("=?base64?YQpi?=")), legacy_call, Err("Mcp-Name header value 'ab' does not match body value 'get-env'".into())),
    ];
    for (headers, body, want) in cases {
        let message = parse(body.as_bytes()).unwrap();
        let got = check(&headers, &message).map_err(|e| {
            assert_eq!(e.code, HEADER_MISMATCH);
            assert_eq!(e.id, message.id, "the request's id rides along");
            e.message
                .strip_prefix("Header mismatch: ")
                .unwrap_or(&e.message)
                .to_owned()
        });
        assert_eq!(got, want, "{headers:?} {body}");
    }
}
