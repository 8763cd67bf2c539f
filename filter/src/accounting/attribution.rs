//! Which tool made the request, and in which of its sessions: the record's `client` and
//! `session`. Both come from headers the client chooses, so they are attribution only
//! (nothing is priced, routed or limited by them), bounded, and kept only in a small
//! grammar: a value outside it is normalised or dropped, never echoed.
//!
//! The header shapes below are the tools' own, read from what each sends (Claude Code
//! 2.1, Codex 0.171, Gemini CLI 0.61 against a header-dumping server) and from the SDKs'
//! sources (`openai/_base_client.py` and `anthropic/_base_client.py`, `user_agent`:
//! `f"{self.__class__.__name__}/Python {self._version}"`; `google/genai/_api_client.py`:
//! `google-genai-sdk/<v> gl-python/<v>`).

use chokepoint_contract::bounds::{MAX_CLIENT_BYTES, MAX_SESSION_BYTES};

/// The headers a tool names itself or its session in, as the request carried them.
#[derive(Debug, Default, Clone, Copy)]
pub struct Seen<'a> {
    pub user_agent: Option<&'a str>,
    /// Codex's own name for its surface (`codex_exec`, `codex_cli_rs`, `codex_vscode`).
    pub originator: Option<&'a str>,
    /// The first session header met, in [`SESSION_HEADERS`] order of precedence.
    pub session: Option<(usize, &'a str)>,
}

/// Headers that carry an agent's session id, most specific first: Claude Code's, then
/// Codex's (`session-id` since 0.1xx; `session_id` and `conversation_id` before). Gemini
/// CLI sends none with API-key auth.
pub const SESSION_HEADERS: [&str; 4] = [
    "x-claude-code-session-id",
    "session-id",
    "session_id",
    "conversation_id",
];

impl<'a> Seen<'a> {
    /// Notes one request header, if it is one of ours (names arrive lowercased).
    pub fn header(&mut self, name: &str, value: &'a str) {
        match name {
            "user-agent" => self.user_agent = Some(value),
            "originator" => self.originator = Some(value),
            _ => {
                if let Some(rank) = SESSION_HEADERS.iter().position(|h| *h == name) {
                    if self.session.is_none_or(|(r, _)| rank < r) {
                        self.session = Some((rank, value));
                    }
                }
            }
        }
    }

    pub fn client(&self) -> Option<String> {
        let from_agent = self.user_agent.and_then(client_of_user_agent);
        from_agent.or_else(|| {
            // A Codex build that sent no user agent still names itself.
            self.originator
                .filter(|o| o.starts_with("codex"))
                .map(|_| "codex".to_owned())
        })
    }

    pub fn session(&self) -> Option<String> {
        self.session.and_then(|(_, v)| session(v))
    }
}

/// Known tools by the first product token of their user agent: (token prefix, the name
/// the record keeps). A token ending in `-` matches as a prefix, any other exactly.
const TOOLS: [(&str, &str); 12] = [
    // `claude-cli/2.1.332 (external, sdk-cli)`
    ("claude-cli", "claude-code"),
    // `codex_exec/0.171.0 (Debian 12.0.0; x86_64) xterm (codex_exec; 0.171.0)`
    ("codex_exec", "codex"),
    ("codex_cli_rs", "codex"),
    ("codex-tui", "codex"),
    ("codex_vscode", "codex"),
    // `GeminiCLI-tui/0.61.0/gemini-3.1-pro-preview (linux; x64; terminal)`
    ("GeminiCLI", "gemini-cli"),
    ("GeminiCLI-", "gemini-cli"),
    // The SDKs: `OpenAI/Python 3.57.0`, `AsyncOpenAI/Python ...`, `Anthropic/JS 0.x`.
    ("OpenAI", "openai"),
    ("AsyncOpenAI", "openai"),
    ("AzureOpenAI", "openai"),
    ("Anthropic", "anthropic"),
    ("AsyncAnthropic", "anthropic"),
];

/// `<name>/<version>` from a user agent: a known tool under its own name, the SDKs as
/// `<sdk>-<language>`, anything else its first product token if that fits the grammar.
fn client_of_user_agent(ua: &str) -> Option<String> {
    let mut words = ua.split(' ');
    let first = words.next()?;
    let (token, rest) = first.split_once('/').unwrap_or((first, ""));
    // The first segment after the name is the version (Gemini CLI adds `/<model>`).
    let version = rest.split('/').next().unwrap_or("");
    let known = TOOLS.iter().find(|(t, _)| {
        if t.ends_with('-') {
            token.starts_with(t)
        } else {
            token == *t
        }
    });
    let named = match known {
        // The Stainless SDKs put the language after the slash and the version next.
        Some((_, sdk @ ("openai" | "anthropic"))) => {
            let language = version.to_ascii_lowercase();
            let v = words.next().unwrap_or("");
            (format!("{sdk}-{language}"), v)
        }
        Some((_, name)) => ((*name).to_owned(), version),
        // `google-genai-sdk/1.30.0 gl-node/v20.20.2`: the language is the next token.
        None if token == "google-genai-sdk" => {
            let language = match words.next().and_then(|w| w.split_once('/')) {
                Some(("gl-python", _)) => "python",
                Some(("gl-node", _)) => "js",
                _ => "other",
            };
            (format!("google-genai-{language}"), version)
        }
        None => (token.to_owned(), version),
    };
    normalise(&named.0, named.1)
}

/// `name/version` when both fit the grammar and the bound, `name` when only it does,
/// nothing when the name does not.
fn normalise(name: &str, version: &str) -> Option<String> {
    if !word(name) || name.len() > MAX_CLIENT_BYTES {
        return None;
    }
    if word(version) && name.len() + 1 + version.len() <= MAX_CLIENT_BYTES {
        Some(format!("{name}/{version}"))
    } else {
        Some(name.to_owned())
    }
}

/// The client grammar's word: an ASCII letter or digit, then those and `.`, `_`, `-`, `+`.
fn word(s: &str) -> bool {
    s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+'))
}

/// A session id the record can keep: ASCII letters, digits, `.`, `_`, `-`, `:`, starting
/// with a letter or digit, at most [`MAX_SESSION_BYTES`]. Anything else is dropped: a
/// cut or cleaned id would sum unrelated sessions together.
fn session(value: &str) -> Option<String> {
    let ok = value.len() <= MAX_SESSION_BYTES
        && value
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'));
    ok.then(|| value.to_owned())
}

#[cfg(test)]
#[path = "attribution_tests.rs"]
mod tests;
