//! The recorded list answers filtered with real policies, crafted layouts and hostile
//! entries, and a property: whatever is removed, the answer stays the same JSON minus
//! those entries.

use proptest::prelude::*;
use serde_json::Value;

use super::*;
use crate::accounting::sse::SseParser;
use crate::mcp::fixtures;

/// The JSON-RPC messages of a recorded answer: the body, or each SSE event's data.
fn messages(label: &str) -> Vec<Vec<u8>> {
    let e = fixtures::get(label);
    if !e.is_sse() {
        return vec![e.response().into_bytes()];
    }
    let mut parser = SseParser::default();
    let mut out = Vec::new();
    parser.feed(e.response().as_bytes(), |event| {
        out.push(event.data.to_vec())
    });
    out
}

/// The list answer of a recorded exchange (the one event with a result).
fn answer(label: &str) -> Vec<u8> {
    messages(label)
        .into_iter()
        .find(|m| m.starts_with(b"{"))
        .unwrap_or_else(|| panic!("{label} has no answer"))
}

fn keys(body: &[u8], kind: ListKind) -> Vec<String> {
    let v: Value = serde_json::from_slice(body).unwrap();
    let (list, key) = match kind {
        ListKind::Tools => ("tools", "name"),
        ListKind::Prompts => ("prompts", "name"),
        ListKind::Resources => ("resources", "uri"),
    };
    v["result"][list]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e[key].as_str().unwrap().to_owned())
        .collect()
}

/// `body` as JSON with the refused entries taken out and cacheScope private, built from
/// the parsed value: what the byte splice must amount to.
fn expected(body: &[u8], kind: ListKind, keep: &dyn Fn(&str) -> bool) -> Value {
    let mut v: Value = serde_json::from_slice(body).unwrap();
    let (list, key) = match kind {
        ListKind::Tools => ("tools", "name"),
        ListKind::Prompts => ("prompts", "name"),
        ListKind::Resources => ("resources", "uri"),
    };
    let result = v["result"].as_object_mut().unwrap();
    if result.contains_key("cacheScope") {
        result.insert("cacheScope".into(), "private".into());
    }
    result[list]
        .as_array_mut()
        .unwrap()
        .retain(|e| e[key].as_str().is_some_and(keep));
    v
}

#[test]
fn recorded_lists_lose_exactly_the_refused_entries() {
    // (exchange, kind, refused keys, entries before)
    let cases: [(&str, ListKind, &[&str], usize); 8] = [
        (
            "python_sdk_everything#4",
            ListKind::Tools,
            &["get-env", "trigger-long-running-operation"],
            13,
        ),
        (
            "claude_code_mcp_list#4",
            ListKind::Tools,
            &[
                "get-env",
                "trigger-elicitation-request",
                "trigger-url-elicitation",
            ],
            16,
        ),
        ("inspector_cli_tools_list#4", ListKind::Tools, &["echo"], 13),
        ("python_sdk_modern#1", ListKind::Tools, &["add"], 2),
        (
            "python_sdk_everything#9",
            ListKind::Prompts,
            &["simple-prompt"],
            4,
        ),
        ("python_sdk_modern#6", ListKind::Prompts, &["review"], 1),
        (
            "python_sdk_everything#7",
            ListKind::Resources,
            &["demo://resource/static/document/architecture.md"],
            7,
        ),
        ("python_sdk_modern#4", ListKind::Resources, &[], 1),
    ];
    for (label, kind, refused, before) in cases {
        let body = answer(label);
        let all = keys(&body, kind);
        assert_eq!(all.len(), before, "{label}: {all:?}");
        for name in refused {
            assert!(all.iter().any(|k| k == name), "{label} lists no {name}");
        }
        let keep = |k: &str| !refused.contains(&k);
        let got = filter(&body, kind, &keep)
            .unwrap_or_else(|()| panic!("{label} did not parse"))
            .unwrap_or_else(|| panic!("{label} is not a list answer"));
        assert_eq!(got.removed, refused.len(), "{label}");
        let parsed: Value = serde_json::from_slice(&got.body)
            .unwrap_or_else(|e| panic!("{label}: {e}\n{}", String::from_utf8_lossy(&got.body)));
        assert_eq!(parsed, expected(&body, kind, &keep), "{label}");
        let left = keys(&got.body, kind);
        assert_eq!(left.len(), before - refused.len(), "{label}");
        // Nothing refused and no cacheScope to change: not a byte differs.
        let all_kept = filter(&body, kind, &|_| true).unwrap().unwrap();
        assert_eq!(all_kept.removed, 0);
        if !String::from_utf8_lossy(&body).contains("cacheScope") {
            assert_eq!(all_kept.body, body, "{label}");
        }
        // The other kinds' lists are not in this answer.
        for other in [ListKind::Tools, ListKind::Prompts, ListKind::Resources] {
            if other != kind {
                assert_eq!(
                    filter(&body, other, &|_| false),
                    Ok(None),
                    "{label} {other:?}"
                );
            }
        }
    }
}

#[test]
fn other_recorded_messages_pass_as_they_are() {
    // Priming events, progress, results of calls, errors, the initialize result.
    let labels = [
        "python_sdk_everything#1",
        "python_sdk_everything#5",
        "python_sdk_everything#6",
        "python_sdk_everything#8",
        "python_sdk_everything#10",
        "python_sdk_modern#0",
        "python_sdk_modern#3",
        "crafted_modern_errors#0",
        "crafted_legacy_errors#0",
        "claude_code_mcp_list#0",
    ];
    let mut seen = 0;
    for label in labels {
        for message in messages(label) {
            for kind in [ListKind::Tools, ListKind::Prompts, ListKind::Resources] {
                seen += 1;
                assert_eq!(
                    filter(&message, kind, &|_| false),
                    Ok(None),
                    "{label}: {}",
                    String::from_utf8_lossy(&message)
                );
            }
        }
    }
    assert!(seen > 40);
}

#[test]
fn splices_keep_every_other_byte() {
    let keep = |k: &str| !k.starts_with('x');
    // (message, kind, Ok(Some(body, removed)) | Ok(None) | Err)
    type Want = Result<Option<(&'static str, usize)>, ()>;
    let cases: Vec<(&str, ListKind, Want)> = vec![
        (r#"{"result":{"tools":[{"name":"a"},{"name":"x1"},{"name":"b"}]}}"#, ListKind::Tools,
         Ok(Some((r#"{"result":{"tools":[{"name":"a"},{"name":"b"}]}}"#, 1)))),
        (r#"{"result":{"tools":[{"name":"x1"},{"name":"a"}]}}"#, ListKind::Tools,
         Ok(Some((r#"{"result":{"tools":[{"name":"a"}]}}"#, 1)))),
        (r#"{"result":{"tools":[{"name":"a"},{"name":"x1"}]}}"#, ListKind::Tools,
         Ok(Some((r#"{"result":{"tools":[{"name":"a"}]}}"#, 1)))),
        (r#"{"result":{"tools":[{"name":"x1"},{"name":"x2"}]}}"#, ListKind::Tools,
         Ok(Some((r#"{"result":{"tools":[]}}"#, 2)))),
        (r#"{"result":{"tools":[]}}"#, ListKind::Tools, Ok(Some((r#"{"result":{"tools":[]}}"#, 0)))),
        // Pretty-printed: the server's whitespace around what stays is kept.
        ("{\n  \"result\": {\n    \"tools\": [\n      {\"name\": \"x0\"},\n      {\"name\": \"a\"} ,\n      {\"name\": \"x1\"},\n      {\"name\": \"b\"}\n    ]\n  }\n}", ListKind::Tools,
         Ok(Some(("{\n  \"result\": {\n    \"tools\": [\n      {\"name\": \"a\"},\n      {\"name\": \"b\"}\n    ]\n  }\n}", 2)))),
        ("{\"result\":{\"tools\":[ {\"name\":\"x\"} ]}}", ListKind::Tools, Ok(Some(("{\"result\":{\"tools\":[  ]}}", 1)))),
        // Escapes are compared unescaped and kept as sent.
        (r#"{"result":{"tools":[{"name":"\u0078y"},{"name":"\u0061"}]}}"#, ListKind::Tools,
         Ok(Some((r#"{"result":{"tools":[{"name":"\u0061"}]}}"#, 1)))),
        // Member order is free; nested names are not the entry's.
        (r#"{"id":1,"result":{"nextCursor":"c","tools":[{"inputSchema":{"name":"a"},"name":"xz"}]},"jsonrpc":"2.0"}"#, ListKind::Tools,
         Ok(Some((r#"{"id":1,"result":{"nextCursor":"c","tools":[]},"jsonrpc":"2.0"}"#, 1)))),
        // cacheScope becomes private, before or after the list.
        (r#"{"result":{"cacheScope":"public","ttlMs":60000,"tools":[{"name":"a"}]}}"#, ListKind::Tools,
         Ok(Some((r#"{"result":{"cacheScope":"private","ttlMs":60000,"tools":[{"name":"a"}]}}"#, 0)))),
        (r#"{"result":{"tools":[{"name":"x"},{"name":"a"}], "cacheScope" : "public" }}"#, ListKind::Tools,
         Ok(Some((r#"{"result":{"tools":[{"name":"a"}], "cacheScope" : "private" }}"#, 1)))),
        // Resources go by uri, not name.
        (r#"{"result":{"resources":[{"name":"a","uri":"x://1"},{"name":"x","uri":"a://2"}]}}"#, ListKind::Resources,
         Ok(Some((r#"{"result":{"resources":[{"name":"x","uri":"a://2"}]}}"#, 1)))),
        (r#"{"result":{"prompts":[{"name":"x"},{"name":"p"}]}}"#, ListKind::Prompts,
         Ok(Some((r#"{"result":{"prompts":[{"name":"p"}]}}"#, 1)))),
        // Entries policy cannot name are removed.
        (r#"{"result":{"tools":[{"name":"a","name":"get-env"},{"title":"t"},{"name":7},"a",null,{"name":"b"}]}}"#, ListKind::Tools,
         Ok(Some((r#"{"result":{"tools":[{"name":"b"}]}}"#, 5)))),
        // Not a list answer.
        (r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"no"}}"#, ListKind::Tools, Ok(None)),
        (r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"tools":[]}}"#, ListKind::Tools, Ok(None)),
        (r#"{"jsonrpc":"2.0","id":1,"result":{}}"#, ListKind::Tools, Ok(None)),
        (r#"{"jsonrpc":"2.0","id":1,"result":null}"#, ListKind::Tools, Ok(None)),
        ("", ListKind::Tools, Ok(None)),
        (" \r\n", ListKind::Tools, Ok(None)),
        // What cannot be read fails closed.
        ("not json", ListKind::Tools, Err(())),
        (r#"[{"result":{"tools":[{"name":"x"}]}}]"#, ListKind::Tools, Err(())),
        (r#"{"result":{"tools":[{"name":"x"}]}"#, ListKind::Tools, Err(())),
        (r#"{"result":{"tools":[{"name":"x"}]}} {}"#, ListKind::Tools, Err(())),
        (r#"{"result":{"tools":{"name":"x"}}}"#, ListKind::Tools, Err(())),
        (r#"{"result":{"tools":null}}"#, ListKind::Tools, Err(())),
        (r#"{"result":["tools"]}"#, ListKind::Tools, Err(())),
        (r#"{"result":{"tools":[],"tools":[{"name":"x"}]}}"#, ListKind::Tools, Err(())),
        (r#"{"result":{"tools":[]},"result":{"tools":[{"name":"x"}]}}"#, ListKind::Tools, Err(())),
    ];
    for (message, kind, want) in cases {
        let got = filter(message.as_bytes(), kind, &keep)
            .map(|f| f.map(|f| (String::from_utf8(f.body).unwrap(), f.removed)));
        let want = want.map(|w| w.map(|(b, n)| (b.to_owned(), n)));
        assert_eq!(got, want, "{message}");
    }
}

#[test]
fn of_method() {
    let cases = [
        ("tools/list", Some(ListKind::Tools)),
        ("prompts/list", Some(ListKind::Prompts)),
        ("resources/list", Some(ListKind::Resources)),
        ("resources/templates/list", None),
        ("tools/call", None),
        ("Tools/list", None),
    ];
    for (method, want) in cases {
        assert_eq!(ListKind::of_method(method), want, "{method}");
    }
}

fn whitespace() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![Just(" "), Just("\n"), Just("\r\n"), Just("\t")],
        0..3,
    )
    .prop_map(|v| v.concat())
}

proptest! {
    #[test]
    fn any_removal_leaves_the_same_json_minus_the_entries(
        entries in proptest::collection::vec(("[a-c]{1,2}", whitespace(), whitespace(), any::<bool>()), 0..12),
        ws in whitespace(),
        scope in any::<bool>(),
    ) {
        let mut list = String::from("[");
        list.push_str(&ws);
        for (i, (name, before, after, _)) in entries.iter().enumerate() {
            if i > 0 {
                list.push_str(before);
                list.push(',');
            }
            list.push_str(after);
            list.push_str(&format!(r#"{{"name":{}}}"#, serde_json::to_string(name).unwrap()));
        }
        list.push_str(&ws);
        list.push(']');
        let scope = if scope { r#""cacheScope":"public","# } else { "" };
        let message = format!(r#"{{"jsonrpc":"2.0","id":1,"result":{{{scope}"tools":{list}}}}}"#);
        // Which entries go is decided per position, whatever the names.
        let refused: std::collections::HashSet<String> = entries
            .iter()
            .filter(|e| e.3)
            .map(|e| e.0.clone())
            .collect();
        let keep = |k: &str| !refused.contains(k);
        let got = filter(message.as_bytes(), ListKind::Tools, &keep).unwrap().unwrap();
        let parsed: Value = serde_json::from_slice(&got.body)
            .map_err(|e| TestCaseError::fail(format!("{e}: {}", String::from_utf8_lossy(&got.body))))?;
        prop_assert_eq!(parsed, expected(message.as_bytes(), ListKind::Tools, &keep));
        prop_assert_eq!(got.removed, entries.iter().filter(|e| refused.contains(&e.0)).count());
    }
}
