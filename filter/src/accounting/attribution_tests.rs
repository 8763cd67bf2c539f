use super::*;

fn client_of(headers: &[(&str, &str)]) -> Option<String> {
    let mut seen = Seen::default();
    for (n, v) in headers {
        seen.header(n, v);
    }
    seen.client()
}

fn session_of(headers: &[(&str, &str)]) -> Option<String> {
    let mut seen = Seen::default();
    for (n, v) in headers {
        seen.header(n, v);
    }
    seen.session()
}

/// The user agents the tools and SDKs really send (captured from Claude Code 2.1.332,
/// Codex 0.171.0 and Gemini CLI 0.61.0; the SDKs' from their sources), and what the
/// record keeps of each.
#[test]
fn each_tool_is_named_with_its_version() {
    let long_name = format!("{}/1.0", "a".repeat(65));
    let long_version = format!("curl/{}", "9".repeat(70));
    let cases: [(&str, Option<&str>); 22] = [
        (
            "claude-cli/2.1.332 (external, sdk-cli)",
            Some("claude-code/2.1.332"),
        ),
        (
            "claude-cli/2.1.332 (external, cli)",
            Some("claude-code/2.1.332"),
        ),
        (
            "codex_exec/0.171.0 (Debian 12.0.0; x86_64) xterm (codex_exec; 0.171.0)",
            Some("codex/0.171.0"),
        ),
        (
            "codex_cli_rs/0.17.0 (Ubuntu 24.4.0; x86_64) WindowsTerminal",
            Some("codex/0.17.0"),
        ),
        (
            "GeminiCLI-tui/0.61.0/gemini-3.1-pro-preview (linux; x64; terminal)",
            Some("gemini-cli/0.61.0"),
        ),
        (
            "GeminiCLI/0.61.0/gemini-2.5-pro (darwin; arm64; terminal)",
            Some("gemini-cli/0.61.0"),
        ),
        ("OpenAI/Python 3.57.0", Some("openai-python/3.57.0")),
        ("AsyncOpenAI/Python 3.57.0", Some("openai-python/3.57.0")),
        ("OpenAI/JS 5.23.0", Some("openai-js/5.23.0")),
        ("Anthropic/Python 2.14.0", Some("anthropic-python/2.14.0")),
        (
            "AsyncAnthropic/Python 2.14.0",
            Some("anthropic-python/2.14.0"),
        ),
        (
            "google-genai-sdk/3.6.1 gl-python/3.11.2",
            Some("google-genai-python/3.6.1"),
        ),
        (
            "google-genai-sdk/1.30.0 gl-node/v20.20.2",
            Some("google-genai-js/1.30.0"),
        ),
        ("curl/8.5.0", Some("curl/8.5.0")),
        ("python-requests/2.32.3", Some("python-requests/2.32.3")),
        // Outside the grammar: normalised to what fits, or dropped.
        ("Mozilla/5.0 (X11; Linux x86_64)", Some("Mozilla/5.0")),
        ("tool/1.0\"; drop", Some("tool")),
        ("\"quoted\"/1.0", None),
        ("caf\u{e9}/1.0", None),
        ("", None),
        (long_name.as_str(), None),
        (long_version.as_str(), Some("curl")),
    ];
    for (ua, kept) in cases {
        assert_eq!(client_of(&[("user-agent", ua)]).as_deref(), kept, "{ua:?}");
    }
}

#[test]
fn hostile_user_agents_are_bounded_and_never_echoed() {
    let huge = "A".repeat(10 * 1024);
    let cases = [
        huge.clone(),
        format!("x/{huge}"),
        "a\u{0}b/1".to_owned(),
        "tool/1.0\r\nx-injected: yes".to_owned(),
        "tool/1\u{1b}[31m".to_owned(),
        "\u{202e}evil/1".to_owned(),
        "'single'/2".to_owned(),
        "tool/\"1\"".to_owned(),
    ];
    for ua in cases {
        let kept = client_of(&[("user-agent", &ua)]);
        if let Some(k) = &kept {
            assert!(k.len() <= MAX_CLIENT_BYTES, "{ua:?} -> {k:?}");
            assert!(
                k.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-+/".contains(&b)),
                "{ua:?} -> {k:?}"
            );
        }
    }
    // A control character or quote in the version drops the version, keeps the name.
    assert_eq!(
        client_of(&[("user-agent", "tool/1\u{1b}[31m")]).as_deref(),
        Some("tool")
    );
    assert_eq!(client_of(&[("user-agent", &huge)]), None);
}

#[test]
fn codex_without_a_user_agent_is_named_by_its_originator() {
    assert_eq!(
        client_of(&[("originator", "codex_exec")]).as_deref(),
        Some("codex")
    );
    assert_eq!(client_of(&[("originator", "someone_else")]), None);
    // The user agent, with its version, wins.
    assert_eq!(
        client_of(&[
            ("originator", "codex_exec"),
            ("user-agent", "codex_exec/0.171.0 (Debian 12.0.0; x86_64)")
        ])
        .as_deref(),
        Some("codex/0.171.0")
    );
}

/// A request's headers, and the session read from them.
type SessionCase<'a> = (&'a [(&'a str, &'a str)], Option<&'a str>);

#[test]
fn each_tool_s_session_header_is_read() {
    let claude = "1e6872d4-cb3a-4791-9ae1-32aa40e69098";
    let codex = "01a24e43-6b4c-7e82-b276-0ab1bd115bf8";
    let cases: [SessionCase; 6] = [
        (&[("x-claude-code-session-id", claude)], Some(claude)),
        (&[("session-id", codex), ("thread-id", codex)], Some(codex)),
        (&[("session_id", codex)], Some(codex)),
        (&[("conversation_id", codex)], Some(codex)),
        // Claude Code's own header wins over a generic one, whatever the order.
        (
            &[
                ("session-id", "other"),
                ("x-claude-code-session-id", claude),
            ],
            Some(claude),
        ),
        (&[("x-request-id", claude)], None),
    ];
    for (headers, kept) in cases {
        assert_eq!(session_of(headers).as_deref(), kept, "{headers:?}");
    }
}

#[test]
fn hostile_session_ids_are_dropped_whole() {
    let at_bound = "s".repeat(MAX_SESSION_BYTES);
    assert_eq!(
        session_of(&[("session-id", &at_bound)]).as_deref(),
        Some(at_bound.as_str())
    );
    let cases = [
        "s".repeat(MAX_SESSION_BYTES + 1),
        "x".repeat(10 * 1024),
        "has space".to_owned(),
        "quote\"d".to_owned(),
        "new\nline".to_owned(),
        "nul\u{0}".to_owned(),
        "caf\u{e9}".to_owned(),
        "-leading-dash".to_owned(),
        String::new(),
    ];
    for value in cases {
        assert_eq!(
            session_of(&[("x-claude-code-session-id", &value)]),
            None,
            "{value:?}"
        );
    }
}
