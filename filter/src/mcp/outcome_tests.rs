//! Outcomes of the recorded answers, JSON and SSE, chunk by chunk as they came, and
//! crafted ones.

use super::*;
use crate::mcp::fixtures;
use crate::mcp::message::parse;

#[test]
fn recorded_answers() {
    // (exchange, outcome)
    let ok = Outcome {
        answered: true,
        rpc_error: None,
        tool_error: false,
    };
    let err = |code| Outcome {
        answered: true,
        rpc_error: Some(code),
        tool_error: false,
    };
    let cases = [
        ("claude_code_mcp_list#0", err(-32000)), // id null: the server could not read it
        ("claude_code_mcp_list#1", ok),
        ("claude_code_mcp_list#4", ok),
        ("crafted_legacy_errors#0", err(-32000)),
        ("crafted_legacy_errors#1", err(-32000)),
        ("crafted_modern_errors#0", err(-32020)),
        ("crafted_modern_errors#3", err(-32020)),
        ("inspector_cli_tools_call#3", ok),
        ("inspector_cli_tools_call#5", ok),
        ("python_sdk_everything#5", ok),
        ("python_sdk_everything#6", ok), // after four progress notifications
        ("python_sdk_everything#8", ok),
        ("python_sdk_modern#2", ok),
        ("python_sdk_modern#3", ok), // SSE with CRLF
        ("python_sdk_modern#7", ok),
    ];
    for (label, want) in cases {
        let e = fixtures::get(label);
        let id = parse(e.body.as_bytes()).unwrap().id.unwrap();
        let mut watch = Watch::new(e.is_sse(), id.clone(), 1 << 20);
        for chunk in &e.chunks {
            watch.push(chunk.as_bytes());
        }
        assert_eq!(watch.finish(), want, "{label}");
        // The same, whatever the chunking: byte by byte.
        let mut watch = Watch::new(e.is_sse(), id.clone(), 1 << 20);
        for b in e.response().as_bytes() {
            watch.push(std::slice::from_ref(b));
        }
        assert_eq!(watch.finish(), want, "{label}, byte by byte");
        // Another id is not answered (unless the server could not read any).
        let mut watch = Watch::new(e.is_sse(), "\"other\"".into(), 1 << 20);
        watch.push(e.response().as_bytes());
        let unread = e.response().contains("\"id\":null");
        assert_eq!(watch.finish().answered, unread, "{label}, another id");
    }
}

#[test]
fn answers_without_a_response() {
    // A notification's 202 and the GET stream are empty; an SSE answer cut before the
    // response has only progress.
    let mut watch = Watch::new(false, "1".into(), 1024);
    watch.finish();
    assert_eq!(
        Watch::new(false, "1".into(), 1024).finish(),
        Outcome::default()
    );
    let e = fixtures::get("python_sdk_everything#6");
    let mut watch = Watch::new(true, "5".into(), 1 << 20);
    for chunk in e.chunks.iter().take(e.chunks.len() - 1) {
        watch.push(chunk.as_bytes());
    }
    assert_eq!(watch.finish(), Outcome::default());
}

#[test]
fn bounds() {
    let body = br#"{"jsonrpc":"2.0","id":1,"result":{"isError":true}}"#;
    let answered = Outcome {
        answered: true,
        rpc_error: None,
        tool_error: true,
    };
    for (max, want) in [(body.len(), answered), (body.len() - 1, Outcome::default())] {
        let mut watch = Watch::new(false, "1".into(), max);
        watch.push(&body[..10]);
        watch.push(&body[10..]);
        assert_eq!(watch.finish(), want, "JSON, bound {max}");
    }
    // SSE: an oversized event is skipped, the next one still read.
    let big = format!("data: {{\"pad\":\"{}\"}}\n\n", "x".repeat(200));
    let stream = format!("{big}data: {}\n\n", std::str::from_utf8(body).unwrap());
    let mut watch = Watch::new(true, "1".into(), 100);
    watch.push(stream.as_bytes());
    assert_eq!(watch.finish(), answered);
}

#[test]
fn messages() {
    let cases: [(&str, &str, Option<Outcome>); 22] = [
        (
            r#"{"jsonrpc":"2.0","id":1,"result":{}}"#,
            "1",
            Some(Outcome {
                answered: true,
                ..Outcome::default()
            }),
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"result":{"isError":true,"content":[]}}"#,
            "1",
            Some(Outcome {
                answered: true,
                rpc_error: None,
                tool_error: true,
            }),
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"result":{"isError":false}}"#,
            "1",
            Some(Outcome {
                answered: true,
                ..Outcome::default()
            }),
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"result":{"isError":"true"}}"#,
            "1",
            Some(Outcome {
                answered: true,
                ..Outcome::default()
            }),
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"isError":true}]}}"#,
            "1",
            Some(Outcome {
                answered: true,
                ..Outcome::default()
            }),
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"Unknown tool"}}"#,
            "1",
            Some(Outcome {
                answered: true,
                rpc_error: Some(-32602),
                tool_error: false,
            }),
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601.0,"message":"m"}}"#,
            "1",
            Some(Outcome {
                answered: true,
                rpc_error: Some(-32601),
                tool_error: false,
            }),
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"error":{"message":"m"}}"#,
            "1",
            Some(Outcome {
                answered: true,
                rpc_error: Some(INTERNAL_ERROR),
                tool_error: false,
            }),
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"error":"m"}"#,
            "1",
            Some(Outcome {
                answered: true,
                rpc_error: Some(INTERNAL_ERROR),
                tool_error: false,
            }),
        ),
        (
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"m"}}"#,
            "7",
            Some(Outcome {
                answered: true,
                rpc_error: Some(-32600),
                tool_error: false,
            }),
        ),
        // Ids compared as JSON values.
        (
            r#"{"jsonrpc":"2.0","id":"a","result":{}}"#,
            "\"a\"",
            Some(Outcome {
                answered: true,
                ..Outcome::default()
            }),
        ),
        (
            r#"{"jsonrpc":"2.0","id":"\u0061","result":{}}"#,
            "\"a\"",
            Some(Outcome {
                answered: true,
                ..Outcome::default()
            }),
        ),
        (
            r#"{"jsonrpc":"2.0","id":1.0,"result":{}}"#,
            "1",
            Some(Outcome {
                answered: true,
                ..Outcome::default()
            }),
        ),
        (r#"{"jsonrpc":"2.0","id":"1","result":{}}"#, "1", None),
        (r#"{"jsonrpc":"2.0","id":2,"result":{}}"#, "1", None),
        (
            r#"{"jsonrpc":"2.0","id":9007199254740993,"result":{}}"#,
            "9007199254740992",
            None,
        ),
        // Not responses.
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"sampling/createMessage","params":{}}"#,
            "1",
            None,
        ),
        (
            r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1}}"#,
            "1",
            None,
        ),
        (r#"{"jsonrpc":"2.0","id":null,"result":{}}"#, "1", None),
        ("", "1", None),
        ("[{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}]", "1", None),
        ("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}", "1", None),
    ];
    for (message, id, want) in cases {
        assert_eq!(
            of_message(message.as_bytes(), id),
            want,
            "{message} for {id}"
        );
    }
}
