//! Every recorded client body, and crafted hostile ones.

use super::*;
use crate::mcp::fixtures;

type Want = (
    &'static str,
    Kind,
    Option<&'static str>,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
);

/// (exchange, kind, id text, method, name, _meta protocol version, client)
const RECORDED: [Want; 37] = {
    use Kind::{Notification as N, Request as R};
    const CR: Option<&str> = Some("chokepoint-record/1");
    const V: Option<&str> = Some("2026-07-28");
    [
        (
            "claude_code_mcp_list#0",
            R,
            Some(r#""server-discover-probe-1""#),
            "server/discover",
            None,
            V,
            Some("claude-code/2.1.332"),
        ),
        (
            "claude_code_mcp_list#1",
            R,
            Some("0"),
            "initialize",
            None,
            None,
            Some("claude-code/2.1.332"),
        ),
        (
            "claude_code_mcp_list#2",
            N,
            None,
            "notifications/initialized",
            None,
            None,
            None,
        ),
        (
            "claude_code_mcp_list#4",
            R,
            Some("1"),
            "tools/list",
            None,
            None,
            None,
        ),
        (
            "crafted_legacy_errors#0",
            R,
            Some("2"),
            "tools/list",
            None,
            None,
            None,
        ),
        (
            "crafted_legacy_errors#1",
            R,
            Some("1"),
            "initialize",
            None,
            None,
            CR,
        ),
        (
            "crafted_modern_errors#0",
            R,
            Some("1"),
            "tools/call",
            Some("add"),
            V,
            CR,
        ),
        (
            "crafted_modern_errors#1",
            R,
            Some("1"),
            "tools/call",
            Some("add"),
            V,
            CR,
        ),
        (
            "crafted_modern_errors#2",
            R,
            Some("1"),
            "tools/call",
            Some("add"),
            V,
            CR,
        ),
        (
            "crafted_modern_errors#3",
            R,
            Some("2"),
            "tools/list",
            None,
            V,
            CR,
        ),
        (
            "inspector_cli_tools_call#0",
            R,
            Some("0"),
            "initialize",
            None,
            None,
            Some("inspector-cli/1.0.3"),
        ),
        (
            "inspector_cli_tools_call#1",
            N,
            None,
            "notifications/initialized",
            None,
            None,
            None,
        ),
        (
            "inspector_cli_tools_call#3",
            R,
            Some("1"),
            "logging/setLevel",
            None,
            None,
            None,
        ),
        (
            "inspector_cli_tools_call#4",
            R,
            Some("2"),
            "tools/list",
            None,
            None,
            None,
        ),
        (
            "inspector_cli_tools_call#5",
            R,
            Some("3"),
            "tools/call",
            Some("get-sum"),
            None,
            None,
        ),
        (
            "inspector_cli_tools_list#0",
            R,
            Some("0"),
            "initialize",
            None,
            None,
            Some("inspector-cli/1.0.3"),
        ),
        (
            "inspector_cli_tools_list#1",
            N,
            None,
            "notifications/initialized",
            None,
            None,
            None,
        ),
        (
            "inspector_cli_tools_list#3",
            R,
            Some("1"),
            "logging/setLevel",
            None,
            None,
            None,
        ),
        (
            "inspector_cli_tools_list#4",
            R,
            Some("2"),
            "tools/list",
            None,
            None,
            None,
        ),
        (
            "python_sdk_everything#0",
            R,
            Some("1"),
            "server/discover",
            None,
            V,
            CR,
        ),
        (
            "python_sdk_everything#1",
            R,
            Some("2"),
            "initialize",
            None,
            None,
            CR,
        ),
        (
            "python_sdk_everything#2",
            N,
            None,
            "notifications/initialized",
            None,
            None,
            None,
        ),
        (
            "python_sdk_everything#4",
            R,
            Some("3"),
            "tools/list",
            None,
            None,
            None,
        ),
        (
            "python_sdk_everything#5",
            R,
            Some("4"),
            "tools/call",
            Some("echo"),
            None,
            None,
        ),
        (
            "python_sdk_everything#6",
            R,
            Some("5"),
            "tools/call",
            Some("trigger-long-running-operation"),
            None,
            None,
        ),
        (
            "python_sdk_everything#7",
            R,
            Some("6"),
            "resources/list",
            None,
            None,
            None,
        ),
        (
            "python_sdk_everything#8",
            R,
            Some("7"),
            "resources/read",
            Some("demo://resource/static/document/architecture.md"),
            None,
            None,
        ),
        (
            "python_sdk_everything#9",
            R,
            Some("8"),
            "prompts/list",
            None,
            None,
            None,
        ),
        (
            "python_sdk_everything#10",
            R,
            Some("9"),
            "prompts/get",
            Some("simple-prompt"),
            None,
            None,
        ),
        (
            "python_sdk_modern#0",
            R,
            Some("1"),
            "server/discover",
            None,
            V,
            CR,
        ),
        (
            "python_sdk_modern#1",
            R,
            Some("2"),
            "tools/list",
            None,
            V,
            CR,
        ),
        (
            "python_sdk_modern#2",
            R,
            Some("3"),
            "tools/call",
            Some("add"),
            V,
            CR,
        ),
        (
            "python_sdk_modern#3",
            R,
            Some("4"),
            "tools/call",
            Some("count_slowly"),
            V,
            CR,
        ),
        (
            "python_sdk_modern#4",
            R,
            Some("5"),
            "resources/list",
            None,
            V,
            CR,
        ),
        (
            "python_sdk_modern#5",
            R,
            Some("6"),
            "resources/read",
            Some("note://greeting"),
            V,
            CR,
        ),
        (
            "python_sdk_modern#6",
            R,
            Some("7"),
            "prompts/list",
            None,
            V,
            CR,
        ),
        (
            "python_sdk_modern#7",
            R,
            Some("8"),
            "prompts/get",
            Some("review"),
            V,
            CR,
        ),
    ]
};

#[test]
fn every_recorded_body_reads_as_its_client_meant_it() {
    let posts = fixtures::posts();
    let singles: Vec<_> = posts.iter().filter(|e| !e.body.starts_with('[')).collect();
    assert_eq!(
        singles.len(),
        RECORDED.len(),
        "a recorded body is missing from the table"
    );
    for (label, kind, id, method, name, version, client) in RECORDED {
        let exchange = fixtures::get(label);
        let got = parse(exchange.body.as_bytes())
            .unwrap_or_else(|e| panic!("{label}: {e:?}\nbody: {}", exchange.body));
        let want = Message {
            kind,
            id: id.map(str::to_owned),
            method: Some(method.to_owned()),
            name: name.map(str::to_owned),
            meta_protocol_version: version.map(str::to_owned),
            client: client.map(str::to_owned),
        };
        assert_eq!(got, want, "{label}\nbody: {}", exchange.body);
    }
}

#[test]
fn recorded_batches_are_refused_as_servers_of_2026_refuse_them() {
    for label in ["crafted_legacy_errors#2", "crafted_modern_errors#4"] {
        let exchange = fixtures::get(label);
        let err = parse(exchange.body.as_bytes()).unwrap_err();
        assert_eq!((err.code, err.id), (INVALID_REQUEST, None), "{label}");
    }
}

#[test]
fn hostile_and_odd_bodies() {
    // (body, Ok(kind, id, method, name) | Err(code, id))
    type Case = (
        &'static str,
        Result<
            (
                Kind,
                Option<&'static str>,
                Option<&'static str>,
                Option<&'static str>,
            ),
            (i64, Option<&'static str>),
        >,
    );
    let cases: Vec<Case> = vec![
        // Not JSON, or not one object.
        ("", Err((PARSE_ERROR, None))),
        ("{", Err((PARSE_ERROR, None))),
        ("{}x", Err((PARSE_ERROR, None))),
        ("\u{feff}{}", Err((PARSE_ERROR, None))),
        (
            "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}",
            Err((PARSE_ERROR, None)),
        ),
        ("[]", Err((INVALID_REQUEST, None))),
        (
            "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]",
            Err((INVALID_REQUEST, None)),
        ),
        // A derived struct would take an array's elements by position.
        (r#"["2.0",1,"tools/call"]"#, Err((INVALID_REQUEST, None))),
        ("\"2.0\"", Err((INVALID_REQUEST, None))),
        ("null", Err((INVALID_REQUEST, None))),
        // The envelope.
        (
            r#"{"id":1,"method":"ping"}"#,
            Err((INVALID_REQUEST, Some("1"))),
        ),
        (
            r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#,
            Err((INVALID_REQUEST, Some("1"))),
        ),
        (
            r#"{"jsonrpc":2.0,"id":1,"method":"ping"}"#,
            Err((INVALID_REQUEST, Some("1"))),
        ),
        (
            r#"{"jsonrpc":"2\u002e0","id":1,"method":"ping"}"#,
            Ok((Kind::Request, Some("1"), Some("ping"), None)),
        ),
        (
            r#"{"jsonrpc":"2.0","jsonrpc":"2.0","id":1,"method":"ping"}"#,
            Err((INVALID_REQUEST, None)),
        ),
        // Two methods: the gateway would check one and the server run the other.
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call"}"#,
            Err((INVALID_REQUEST, None)),
        ),
        // Ids.
        (
            r#"{"jsonrpc":"2.0","id":0,"method":"ping"}"#,
            Ok((Kind::Request, Some("0"), Some("ping"), None)),
        ),
        (
            r#"{"jsonrpc":"2.0","id":-7,"method":"ping"}"#,
            Ok((Kind::Request, Some("-7"), Some("ping"), None)),
        ),
        (
            r#"{"jsonrpc":"2.0","id":"a\"b","method":"ping"}"#,
            Ok((Kind::Request, Some(r#""a\"b""#), Some("ping"), None)),
        ),
        (
            r#"{"jsonrpc":"2.0","id":  "x" ,"method":"ping"}"#,
            Ok((Kind::Request, Some(r#""x""#), Some("ping"), None)),
        ),
        (
            r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#,
            Err((INVALID_REQUEST, None)),
        ),
        (
            r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#,
            Err((INVALID_REQUEST, None)),
        ),
        (
            r#"{"jsonrpc":"2.0","id":1e3,"method":"ping"}"#,
            Err((INVALID_REQUEST, None)),
        ),
        (
            r#"{"jsonrpc":"2.0","id":true,"method":"ping"}"#,
            Err((INVALID_REQUEST, None)),
        ),
        (
            r#"{"jsonrpc":"2.0","id":{},"method":"ping"}"#,
            Err((INVALID_REQUEST, None)),
        ),
        (
            r#"{"jsonrpc":"2.0","id":[1],"method":"ping"}"#,
            Err((INVALID_REQUEST, None)),
        ),
        // Methods.
        (
            r#"{"jsonrpc":"2.0","id":1,"method":7}"#,
            Err((INVALID_REQUEST, Some("1"))),
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":""}"#,
            Err((INVALID_REQUEST, Some("1"))),
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/ list"}"#,
            Err((INVALID_REQUEST, Some("1"))),
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list\n"}"#,
            Err((INVALID_REQUEST, Some("1"))),
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tööls/list"}"#,
            Err((INVALID_REQUEST, Some("1"))),
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools\/list"}"#,
            Ok((Kind::Request, Some("1"), Some("tools/list"), None)),
        ),
        (
            r#"{"jsonrpc":"2.0","id":1}"#,
            Err((INVALID_REQUEST, Some("1"))),
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","result":{}}"#,
            Err((INVALID_REQUEST, Some("1"))),
        ),
        // Responses (the client's answer to a server's request).
        (
            r#"{"jsonrpc":"2.0","id":"s-1","result":{"roots":[]}}"#,
            Ok((Kind::Response, Some(r#""s-1""#), None, None)),
        ),
        (
            r#"{"jsonrpc":"2.0","id":3,"error":{"code":-1,"message":"no"}}"#,
            Ok((Kind::Response, Some("3"), None, None)),
        ),
        (
            r#"{"jsonrpc":"2.0","result":{}}"#,
            Err((INVALID_REQUEST, None)),
        ),
        (
            r#"{"jsonrpc":"2.0","id":3,"result":{},"error":{}}"#,
            Err((INVALID_REQUEST, Some("3"))),
        ),
        // Names.
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get\u002denv"}}"#,
            Ok((
                Kind::Request,
                Some("1"),
                Some("tools/call"),
                Some("get-env"),
            )),
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":{"name":"x"},"name":"echo"}}"#,
            Ok((Kind::Request, Some("1"), Some("tools/call"), Some("echo"))),
        ),
        (
            r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"echo"}}"#,
            Ok((Kind::Notification, None, Some("tools/call"), Some("echo"))),
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","name":"get-env"}}"#,
            Err((INVALID_PARAMS, Some("1"))),
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":7}}"#,
            Err((INVALID_PARAMS, Some("1"))),
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":null}}"#,
            Err((INVALID_PARAMS, Some("1"))),
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":""}}"#,
            Err((INVALID_PARAMS, Some("1"))),
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":" \t"}}"#,
            Err((INVALID_PARAMS, Some("1"))),
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}"#,
            Err((INVALID_PARAMS, Some("1"))),
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#,
            Err((INVALID_PARAMS, Some("1"))),
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":["echo"]}"#,
            Err((INVALID_PARAMS, Some("1"))),
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":"echo"}"#,
            Err((INVALID_PARAMS, Some("1"))),
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":null}"#,
            Ok((Kind::Request, Some("1"), Some("tools/list"), None)),
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"name":"x"}}"#,
            Err((INVALID_PARAMS, Some("1"))),
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"resources/subscribe","params":{"uri":"file:///a"}}"#,
            Ok((
                Kind::Request,
                Some("1"),
                Some("resources/subscribe"),
                Some("file:///a"),
            )),
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"resources/unsubscribe","params":{"uri":"file:///a"}}"#,
            Ok((
                Kind::Request,
                Some("1"),
                Some("resources/unsubscribe"),
                Some("file:///a"),
            )),
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"résumé"}}"#,
            Ok((
                Kind::Request,
                Some("1"),
                Some("prompts/get"),
                Some("résumé"),
            )),
        ),
        // A method that names nothing ignores `name`, whatever it is.
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"name":7}}"#,
            Ok((Kind::Request, Some("1"), Some("tools/list"), None)),
        ),
        // _meta.
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":7}}}"#,
            Err((INVALID_PARAMS, Some("1"))),
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/protocolVersion":"2025-11-25"}}}"#,
            Err((INVALID_PARAMS, Some("1"))),
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":"x"}}"#,
            Ok((Kind::Request, Some("1"), Some("tools/list"), None)),
        ),
    ];
    for (body, want) in cases {
        let got = parse(body.as_bytes())
            .map(|m| (m.kind, m.id, m.method, m.name))
            .map_err(|e| (e.code, e.id));
        let want = want
            .map(|(k, i, m, n)| {
                (
                    k,
                    i.map(str::to_owned),
                    m.map(str::to_owned),
                    n.map(str::to_owned),
                )
            })
            .map_err(|(c, i)| (c, i.map(str::to_owned)));
        assert_eq!(got, want, "body: {body}");
    }
}

#[test]
fn bounds_are_exact() {
    let with_name = |method: &str, member: &str, len: usize| {
        let value = "a".repeat(len);
        format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{{"{member}":"{value}"}}}}"#
        )
    };
    let cases = [
        (with_name("tools/call", "name", MAX_NAME_BYTES), true),
        (with_name("tools/call", "name", MAX_NAME_BYTES + 1), false),
        (with_name("prompts/get", "name", MAX_NAME_BYTES + 1), false),
        (with_name("resources/read", "uri", MAX_URI_BYTES), true),
        (with_name("resources/read", "uri", MAX_URI_BYTES + 1), false),
        (
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"{}"}}"#,
                "m".repeat(MAX_METHOD_BYTES)
            ),
            true,
        ),
        (
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"{}"}}"#,
                "m".repeat(MAX_METHOD_BYTES + 1)
            ),
            false,
        ),
        (
            format!(
                r#"{{"jsonrpc":"2.0","id":"{}","method":"ping"}}"#,
                "i".repeat(MAX_ID_BYTES - 2)
            ),
            true,
        ),
        (
            format!(
                r#"{{"jsonrpc":"2.0","id":"{}","method":"ping"}}"#,
                "i".repeat(MAX_ID_BYTES - 1)
            ),
            false,
        ),
    ];
    for (body, ok) in cases {
        assert_eq!(
            parse(body.as_bytes()).is_ok(),
            ok,
            "{} bytes: {:.80}",
            body.len(),
            body
        );
    }
}

#[test]
fn the_client_is_kept_only_when_plain_and_short() {
    let initialize = |info: &str| {
        format!(
            r#"{{"jsonrpc":"2.0","id":0,"method":"initialize","params":{{"clientInfo":{info}}}}}"#
        )
    };
    let modern = |info: &str| {
        format!(
            r#"{{"jsonrpc":"2.0","id":0,"method":"tools/list","params":{{"_meta":{{"io.modelcontextprotocol/clientInfo":{info}}}}}}}"#
        )
    };
    let cases = [
        (initialize(r#"{"name":"claude-code","version":"2.1.332"}"#), Some("claude-code/2.1.332")),
        (modern(r#"{"name":"my_client+x","version":"1.0.0-rc.1"}"#), Some("my_client+x/1.0.0-rc.1")),
        (initialize(r#"{"name":"has space","version":"1"}"#), None),
        (initialize(r#"{"name":"a/b","version":"1"}"#), None),
        (initialize(r#"{"name":"ok","version":""}"#), None),
        (initialize(r#"{"name":"ok"}"#), None),
        (initialize(r#"{"name":"ok","version":1}"#), None),
        (initialize(r#""ok/1""#), None),
        (initialize(&format!(r#"{{"name":"{}","version":"1"}}"#, "n".repeat(62))), Some("nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn/1")),
        (initialize(&format!(r#"{{"name":"{}","version":"1"}}"#, "n".repeat(63))), None),
        // clientInfo in params counts only on initialize.
        (
            r#"{"jsonrpc":"2.0","id":0,"method":"tools/list","params":{"clientInfo":{"name":"x","version":"1"}}}"#.to_owned(),
            None,
        ),
    ];
    for (body, want) in cases {
        let got = parse(body.as_bytes()).unwrap_or_else(|e| panic!("{body}: {e:?}"));
        assert_eq!(got.client.as_deref(), want, "{body}");
    }
}

#[test]
fn large_arguments_and_deep_nesting_do_not_hurt() {
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"arguments":{{"text":"{}"}},"name":"echo"}}}}"#,
        "x".repeat(1 << 20)
    );
    assert_eq!(parse(big.as_bytes()).unwrap().name.as_deref(), Some("echo"));
    let deep = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"echo","arguments":{}1{}}}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    // Skipped arguments are scanned without recursion: no stack overflow, and the name
    // is read.
    assert_eq!(
        parse(deep.as_bytes()).unwrap().name.as_deref(),
        Some("echo")
    );
}
