//! Completion text, token estimates and ids shared by every wire format, so
//! a test can predict content and usage whichever provider it talks to.

use std::ops::Range;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::record::now_ms;

/// Cycled to build completions; fixed so token counts and content are
/// predictable across runs.
const WORDS: &[&str] = &[
    "The", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog", "while", "the",
    "gateway", "keeps", "every", "key", "safe",
];

pub fn word(i: usize) -> &'static str {
    WORDS[i % WORDS.len()]
}

/// The whole completion: `words` words joined by single spaces. One word is
/// one completion token in every format.
pub fn completion_text(words: usize) -> String {
    (0..words).map(word).collect::<Vec<_>>().join(" ")
}

/// Word `i` as a stream delta: a leading space on all but the first, as
/// tokenizers do, so the deltas concatenate to [`completion_text`].
pub fn word_delta(i: usize) -> String {
    if i == 0 {
        word(0).to_string()
    } else {
        format!(" {}", word(i))
    }
}

/// Several consecutive words as one delta, for formats whose stream events
/// carry more than a token each.
pub fn words_delta(range: Range<usize>) -> String {
    range.map(word_delta).collect()
}

/// Prompt tokens for `chars` characters of prompt text: chars / 4, never
/// below 1, so tests can compute the number the gateway must account.
pub fn estimate_tokens(chars: usize) -> u64 {
    (chars as u64 / 4).max(1)
}

/// Characters of prompt text in a request fragment, in any of the formats:
/// a string counts whole; arrays add up their items; objects count their
/// `text`, `content` and `parts` (OpenAI and Anthropic messages and content
/// blocks, Responses input items, Gemini contents and parts). Roles, types,
/// images and tool definitions count nothing.
pub fn text_chars(v: &Value) -> usize {
    match v {
        Value::String(s) => s.chars().count(),
        Value::Array(items) => items.iter().map(text_chars).sum(),
        Value::Object(o) => ["text", "content", "parts"]
            .iter()
            .filter_map(|k| o.get(*k))
            .map(text_chars)
            .sum(),
        _ => 0,
    }
}

/// Unique per request: the record id keeps it unique within a server, the
/// clock across restarts.
pub fn mock_id(prefix: &str, record_id: u64) -> String {
    format!("{prefix}mock{record_id}x{}", now_ms())
}

pub fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deltas_concatenate_to_the_completion() {
        let joined: String = (0..20).map(word_delta).collect();
        assert_eq!(joined, completion_text(20));
        assert_eq!(words_delta(0..3) + &words_delta(3..20), completion_text(20));
        assert_eq!(completion_text(0), "");
    }

    #[test]
    fn counts_text_in_every_format() {
        let openai = json!([{"role": "user", "content": "abcd"},
            {"role": "user", "content": [{"type": "text", "text": "ef"}, {"type": "image_url", "image_url": {"url": "x"}}]}]);
        assert_eq!(text_chars(&openai), 6);
        let gemini =
            json!([{"role": "user", "parts": [{"text": "abc"}, {"inlineData": {"data": "zzzz"}}]}]);
        assert_eq!(text_chars(&gemini), 3);
        assert_eq!(text_chars(&json!(null)), 0);
        assert_eq!(estimate_tokens(0), 1);
        assert_eq!(estimate_tokens(18), 4);
    }
}
