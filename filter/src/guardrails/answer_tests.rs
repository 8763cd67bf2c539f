//! Real provider answers (filter/fixtures) and tool-calling answers in each API's shape:
//! the texts found, and that each span is exactly the string literal of its text.

use super::*;
use crate::guardrails::service::{apply, Edit};

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!("../../fixtures/", $name))
    };
}

const CHAT_TOOLS: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"deploy","arguments":"{\"token\":\"ghp_abc\"}"}}]},"finish_reason":"tool_calls"},{"index":1,"message":{"role":"assistant","content":[{"type":"text","text":"part one"}]}}]}"#;

const COMPLETION: &str = r#"{"id":"cmpl-1","object":"text_completion","choices":[{"text":"\n\nThis is a test","index":0,"finish_reason":"length"}]}"#;

const ANTHROPIC_TOOLS: &str = r#"{"id":"msg_1","type":"message","role":"assistant","content":[{"type":"thinking","thinking":"secret thoughts","signature":"c2ln"},{"type":"text","text":"Deploying."},{"type":"tool_use","id":"toolu_1","name":"deploy","input":{"env":"prod","args":["--key","AKIAIOSFODNN7EXAMPLE"],"n":3,"nested":{"x":{"y":"deep"}}}}],"usage":{"input_tokens":1,"output_tokens":2}}"#;

const GEMINI_TOOLS: &str = r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"Calling."},{"functionCall":{"name":"deploy","args":{"key":"sk-live-1","count":2}}}]}}]}"#;

#[test]
fn texts_of_each_api() {
    use Format::*;
    let cases: &[(&str, Format, &str, &[&str])] = &[
        (
            "openai_chat.json",
            OpenAiChat,
            fixture!("openai_chat.json"),
            &["Hello! How can I assist you today?"],
        ),
        (
            "chat with tools",
            OpenAiChat,
            CHAT_TOOLS,
            &["{\"token\":\"ghp_abc\"}", "part one"],
        ),
        (
            "legacy completion",
            OpenAiChat,
            COMPLETION,
            &["\n\nThis is a test"],
        ),
        (
            "openai_response.json",
            OpenAiResponses,
            fixture!("openai_response.json"),
            // The reasoning summary is not the answer's text; the call's arguments are.
            &[
                "{\"location\":\"Paris, France\"}",
                "Checking the weather in Paris.",
            ],
        ),
        (
            "anthropic_message.json",
            Anthropic,
            fixture!("anthropic_message.json"),
            // Never the thinking block or its signature.
            &["Paris is the capital of France."],
        ),
        (
            "anthropic tools",
            Anthropic,
            ANTHROPIC_TOOLS,
            &[
                "Deploying.",
                "prod",
                "--key",
                "AKIAIOSFODNN7EXAMPLE",
                "deep",
            ],
        ),
        (
            "gemini_response.json",
            Gemini,
            fixture!("gemini_response.json"),
            &["AI learns patterns from data to make predictions."],
        ),
        (
            "gemini stream array",
            Gemini,
            fixture!("gemini_stream_array.json"),
            &["Once upon", " a time, a fox."],
        ),
        (
            "gemini tools",
            Gemini,
            GEMINI_TOOLS,
            &["Calling.", "sk-live-1"],
        ),
        (
            "an error body has no texts",
            OpenAiChat,
            fixture!("openai_chat_error.json"),
            &[],
        ),
        (
            "anthropic error",
            Anthropic,
            fixture!("anthropic_error.json"),
            &[],
        ),
        ("gemini error", Gemini, fixture!("gemini_error.json"), &[]),
    ];
    for (name, format, body, want) in cases {
        let found = texts(*format, body.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let got: Vec<&str> = found.iter().map(|f| f.text.as_str()).collect();
        assert_eq!(&got, want, "{name}");
        for f in &found {
            let literal = &body[f.span.clone()];
            assert_eq!(
                serde_json::from_str::<String>(literal).ok().as_deref(),
                Some(&*f.text),
                "{name}: span {:?}",
                f.span
            );
        }
    }
}

#[test]
fn broken_bodies() {
    assert_eq!(
        texts(Format::OpenAiChat, b"{\"choices\":["),
        Err(AnswerError::NotJson)
    );
    assert_eq!(
        texts(Format::Anthropic, b"\xff\xfe"),
        Err(AnswerError::NotJson)
    );
    assert_eq!(
        texts(Format::Gemini, b"").map(|t| t.len()),
        Err(AnswerError::NotJson)
    );
    // Shapes that are JSON but not an answer have nothing to scan.
    for body in [
        &b"[]"[..],
        b"null",
        b"\"text\"",
        b"{\"choices\":\"x\"}",
        b"{\"content\":[{\"type\":\"text\",\"text\":1}]}",
    ] {
        for format in [
            Format::OpenAiChat,
            Format::OpenAiResponses,
            Format::Anthropic,
            Format::Gemini,
        ] {
            assert_eq!(
                texts(format, body),
                Ok(vec![]),
                "{format:?} {}",
                String::from_utf8_lossy(body)
            );
        }
    }
    // A tool input nested past the walk's depth cannot be scanned whole.
    let deep = format!(
        r#"{{"content":[{{"type":"tool_use","input":{}"x"{}}}]}}"#,
        "[".repeat(MAX_DEPTH + 1),
        "]".repeat(MAX_DEPTH + 1)
    );
    assert_eq!(
        texts(Format::Anthropic, deep.as_bytes()),
        Err(AnswerError::TooDeep)
    );
}

#[test]
fn found_spans_take_edits_in_place() {
    let found = texts(Format::Anthropic, ANTHROPIC_TOOLS.as_bytes()).unwrap();
    let edits: Vec<Edit> = found
        .iter()
        .filter(|f| f.text.starts_with("AKIA"))
        .map(|f| Edit {
            span: f.piece().span,
            text: "[aws-access-key-id:0123abcd]".into(),
        })
        .collect();
    let out = String::from_utf8(apply(ANTHROPIC_TOOLS.as_bytes(), &edits)).unwrap();
    assert_eq!(
        out,
        ANTHROPIC_TOOLS.replace("AKIAIOSFODNN7EXAMPLE", "[aws-access-key-id:0123abcd]")
    );
}
