use super::*;
use crate::providers::request_body::scan;

fn values(shape: Shape, body: &str) -> Vec<String> {
    let scanned = scan(body.as_bytes()).unwrap();
    let texts = texts(shape, &scanned);
    for t in &texts {
        // Each text is the body's own bytes at its offset: a JSON string.
        assert_eq!(&body[t.at..t.at + t.raw.len()], t.raw);
        assert!(t.raw.starts_with('"') && t.raw.ends_with('"'), "{}", t.raw);
        let parsed: Result<String, _> = serde_json::from_str(t.raw);
        if let Ok(p) = parsed {
            assert_eq!(t.value(), p);
        }
    }
    texts.iter().map(|t| t.value().into_owned()).collect()
}

/// What the coding agents send, every text of it and nothing of the model's own
/// reasoning: (fixture, shape, texts in body order).
#[test]
fn each_api_s_texts_of_a_real_agent_turn() {
    let cases: [(&str, Shape, Vec<&str>); 4] = [
        (
            include_str!("../../fixtures/requests/claude_code_messages.json"),
            Shape::Anthropic,
            vec![
                "You are Claude Code, Anthropic's official CLI for Claude.",
                "Working directory: /home/dev/payments\nIs a git repo: true",
                "<system-reminder>\nAs you answer the user's questions, you can use the following context.\n</system-reminder>",
                "Why does deploy.sh fail? Contact me at dev.lead@payments.example if unsure.",
                "Let me read the script.",
                "cat deploy.sh",
                "Show \"deploy.sh\"",
                "#!/bin/sh\nexport AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\naws s3 cp build s3://releases --recursive\n",
                "exit code 1: café not found",
            ],
        ),
        (
            include_str!("../../fixtures/requests/codex_responses.json"),
            Shape::Responses,
            vec![
                "You are Codex, based on GPT-5. You are running as a coding agent in the Codex CLI.",
                "<permissions instructions>\nFilesystem sandboxing: workspace-write\n</permissions instructions>",
                "<environment_context>\n  <cwd>/home/dev/payments</cwd>\n</environment_context>",
                "fix the deploy script; my token is ghp_0123456789abcdefABCDEF0123456789abcd",
                r#"{"command":["bash","-lc","cat deploy.sh"],"workdir":"/home/dev/payments"}"#,
                r#"{"output":"export AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\n","metadata":{"exit_code":0,"duration_seconds":0.1}}"#,
                "*** Begin Patch\n*** Update File: deploy.sh\n-export AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\n*** End Patch",
                "Success. Updated the following files:\nM deploy.sh",
                "Removed the key.",
            ],
        ),
        (
            include_str!("../../fixtures/requests/gemini_cli_generate.json"),
            Shape::Gemini,
            vec![
                "You are an interactive CLI agent specializing in software engineering tasks.",
                "This is the Gemini CLI. We are setting up the context for our chat.\nToday's date is Monday, December 7, 2026.",
                "who owns deploy.sh? mail ops@payments.example",
                "git log -1 --format=%ae deploy.sh",
                "Find the author",
                "Command: git log -1\nStdout: ops@payments.example\nExit Code: 0",
                "AKIAIOSFODNN7EXAMPLE",
            ],
        ),
        (
            include_str!("../../fixtures/requests/openai_chat_tools.json"),
            Shape::Chat,
            vec![
                "You are a helpful assistant.",
                "What is in this file?",
                r#"{"path":"deploy.sh"}"#,
                "export AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE",
                "It exports an AWS key — rotate it.",
            ],
        ),
    ];
    for (body, shape, want) in cases {
        assert_eq!(values(shape, body), want, "{shape:?}");
    }
}

/// Thinking, redacted thinking, reasoning items, thought parts and every signature are
/// never read: the fixtures hide a key in each, and no text holds one of those.
#[test]
fn reasoning_and_signatures_are_never_read() {
    for (body, shape) in [
        (
            include_str!("../../fixtures/requests/claude_code_messages.json"),
            Shape::Anthropic,
        ),
        (
            include_str!("../../fixtures/requests/codex_responses.json"),
            Shape::Responses,
        ),
        (
            include_str!("../../fixtures/requests/gemini_cli_generate.json"),
            Shape::Gemini,
        ),
        (
            include_str!("../../fixtures/requests/openai_chat_tools.json"),
            Shape::Chat,
        ),
    ] {
        let scanned = scan(body.as_bytes()).unwrap();
        for t in texts(shape, &scanned) {
            for never in [
                "signature",
                "Signature",
                "encrypted",
                "redacted",
                "Reading the script",
                "may be in it",
                "Checking the owner",
                "base64",
            ] {
                let around = &body[t.at.saturating_sub(40)..t.at];
                assert!(
                    !t.raw.contains(never) && !around.contains(&format!("\"{never}\"")),
                    "{shape:?}: {never} in {}",
                    t.raw
                );
            }
        }
    }
}

/// The other bodies: (shape, body, texts).
#[test]
fn the_other_endpoints_and_shapes() {
    let cases: Vec<(Shape, &str, Vec<&str>)> = vec![
        (
            Shape::Completions,
            r#"{"model":"m","prompt":"a\tb"}"#,
            vec!["a\tb"],
        ),
        (
            Shape::Completions,
            r#"{"prompt":["one","two"]}"#,
            vec!["one", "two"],
        ),
        (Shape::Completions, r#"{"prompt":[[1,2,3]]}"#, vec![]),
        (Shape::Embeddings, r#"{"input":"x"}"#, vec!["x"]),
        (Shape::Embeddings, r#"{"input":["x","y"]}"#, vec!["x", "y"]),
        (Shape::Embeddings, r#"{"input":[101,102]}"#, vec![]),
        (
            Shape::GeminiEmbeddings,
            r#"{"content":{"parts":[{"text":"e1"}]}}"#,
            vec!["e1"],
        ),
        (
            Shape::GeminiEmbeddings,
            r#"{"requests":[{"model":"models/m","content":{"parts":[{"text":"e2"}]}}]}"#,
            vec!["e2"],
        ),
        (
            Shape::Gemini,
            r#"{"generateContentRequest":{"model":"models/m","contents":[{"parts":[{"text":"counted"}]}]}}"#,
            vec!["counted"],
        ),
        (
            Shape::Gemini,
            r#"{"system_instruction":{"parts":[{"text":"snake"}]},"contents":[{"parts":[{"function_response":{"name":"f","response":{"r":"v"}}}]}]}"#,
            vec!["snake", "v"],
        ),
        (
            Shape::Responses,
            r#"{"input":"just text"}"#,
            vec!["just text"],
        ),
        (
            Shape::Responses,
            r#"{"input":[{"role":"user","content":"no type"}]}"#,
            vec!["no type"],
        ),
        (
            Shape::Anthropic,
            r#"{"system":"plain","messages":[{"role":"user","content":"hi"}]}"#,
            vec!["plain", "hi"],
        ),
        (
            Shape::Anthropic,
            r#"{"messages":[{"role":"user","content":[{"type":"document","source":{"type":"text","media_type":"text/plain","data":"doc"}},{"type":"image","source":{"type":"base64","data":"AAAA"}}]}]}"#,
            vec!["doc"],
        ),
        // A member repeated is read every time: the provider's parser picks one.
        (
            Shape::Chat,
            r#"{"messages":[{"role":"user","content":"first"}],"messages":[{"role":"user","content":"second"}]}"#,
            vec!["first", "second"],
        ),
        // Shapes the API would refuse carry no text to find.
        (Shape::Chat, r#"{"messages":{"content":"x"}}"#, vec![]),
        (Shape::Chat, r#"{"messages":[5,"x",null]}"#, vec![]),
        (Shape::Anthropic, r#"{"messages":[{"content":7}]}"#, vec![]),
        (Shape::Chat, "", vec![]),
    ];
    for (shape, body, want) in cases {
        assert_eq!(values(shape, body), want, "{body}");
    }
}

/// Every endpoint that sends text has a shape; the model list none.
#[test]
fn shapes_of_endpoints() {
    use crate::providers::api::{Api, Endpoint, Op};
    let e = |api, op, format| Endpoint {
        api,
        op,
        format,
        streams_by_path: false,
    };
    let cases = [
        (
            e(Api::OpenAi, Op::Chat, Some(Format::OpenAiChat)),
            Some(Shape::Chat),
        ),
        (
            e(Api::Azure, Op::Chat, Some(Format::OpenAiChat)),
            Some(Shape::Chat),
        ),
        (
            e(Api::OpenAi, Op::Generate, Some(Format::OpenAiResponses)),
            Some(Shape::Responses),
        ),
        (
            e(Api::Azure, Op::Generate, Some(Format::OpenAiResponses)),
            Some(Shape::Responses),
        ),
        (
            e(Api::Anthropic, Op::Generate, Some(Format::Anthropic)),
            Some(Shape::Anthropic),
        ),
        (
            e(Api::Anthropic, Op::CountTokens, None),
            Some(Shape::Anthropic),
        ),
        (
            e(Api::Gemini, Op::Generate, Some(Format::Gemini)),
            Some(Shape::Gemini),
        ),
        (e(Api::Gemini, Op::CountTokens, None), Some(Shape::Gemini)),
        (
            e(Api::Gemini, Op::Embeddings, Some(Format::Gemini)),
            Some(Shape::GeminiEmbeddings),
        ),
        (
            e(Api::OpenAi, Op::Completions, None),
            Some(Shape::Completions),
        ),
        (
            e(Api::OpenAi, Op::Embeddings, None),
            Some(Shape::Embeddings),
        ),
        (e(Api::OpenAi, Op::Models, None), None),
        (e(Api::Gemini, Op::Models, None), None),
    ];
    for (endpoint, want) in cases {
        assert_eq!(Shape::of(endpoint), want, "{endpoint:?}");
    }
}

#[test]
fn strings_decode_as_json_reads_them() {
    let cases = [
        (r#""plain""#, "plain"),
        (r#""""#, ""),
        (r#""a\"b\\c\/d""#, "a\"b\\c/d"),
        (r#""\n\t\r\b\f""#, "\n\t\r\u{8}\u{c}"),
        (r#""caf\u00e9 \u00E9""#, "café é"),
        (r#""\ud83d\ude00!""#, "😀!"),
        // Unpaired halves are read as U+FFFD, the rest of the string kept.
        (r#""x\ud800y""#, "x\u{FFFD}y"),
        (r#""x\udc00""#, "x\u{FFFD}"),
        (r#""\ud800\u0041""#, "\u{FFFD}A"),
        (r#""AKIA\u0049OSFODNN7EXAMPLE""#, "AKIAIOSFODNN7EXAMPLE"),
    ];
    for (raw, want) in cases {
        assert_eq!(decode(raw), want, "{raw}");
        if let Ok(serde) = serde_json::from_str::<String>(raw) {
            assert_eq!(serde, want, "{raw}: as serde_json reads it");
        }
    }
    assert!(matches!(decode(r#""no escapes""#), Cow::Borrowed(_)));
}
