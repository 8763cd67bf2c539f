//! Agent-loop turns, driven by `x-mock-tool-call: <tool> <arguments>` (see faults.rs):
//! when the request offers that tool and its conversation does not end in a tool's
//! result, the model calls the tool with those arguments; when it ends in a tool's
//! result, the model answers with text quoting the result, so a test sees the result
//! make the round trip. Without the header every turn is the usual completion. Each format shapes the call its own way (anthropic.rs,
//! responses.rs, gemini.rs); what they share is here.

use serde_json::{json, Value};

/// How much of a tool's result the answer quotes: enough for a test's marker, bounded
/// whatever the tool printed.
pub const QUOTE_BYTES: usize = 200;

/// `x-mock-tool-call`: the tool's name, then its arguments (a JSON object for a
/// function tool; a custom (freeform) tool's raw input).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    pub name: String,
    pub arguments: String,
}

impl ToolCall {
    pub fn from_header(value: &str) -> Option<Self> {
        let value = value.trim();
        let (name, arguments) = value
            .split_once(' ')
            .map_or((value, ""), |(n, a)| (n, a.trim()));
        (!name.is_empty()).then(|| Self {
            name: name.into(),
            arguments: arguments.into(),
        })
    }

    /// The arguments as a JSON object (`{}` when none were given); `None` when they are
    /// not one, and then a function tool is not called.
    pub fn object(&self) -> Option<Value> {
        if self.arguments.is_empty() {
            return Some(json!({}));
        }
        serde_json::from_str::<Value>(&self.arguments)
            .ok()
            .filter(Value::is_object)
    }
}

/// What the model does this turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Turn {
    /// The usual completion text.
    Text,
    /// Calls the tool.
    Call(ToolCall),
    /// Answers after a tool's result, with this text quoting it.
    Quote(String),
}

impl Turn {
    /// The reasoning the model keeps to itself on the way: fixed words, never the
    /// prompt's, so no log or signature ever carries a user's text.
    pub fn thought(&self) -> String {
        match self {
            Turn::Text => "The request needs no tool; answering directly.".into(),
            Turn::Call(c) => format!("The request needs the {} tool; calling it.", c.name),
            Turn::Quote(_) => "The tool has answered; reporting what it returned.".into(),
        }
    }
}

/// The answer after a tool's result.
pub fn quote(result: &str) -> String {
    format!("The tool returned: {}", head(result.trim(), QUOTE_BYTES))
}

/// At most `max` bytes of `s`, cut at a character boundary.
pub fn head(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `s` in pieces of at most `n` bytes (at character boundaries), as streamed deltas.
pub fn pieces(s: &str, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        let mut end = rest.len().min(n.max(4));
        while !rest.is_char_boundary(end) {
            end += 1;
        }
        out.push(rest[..end].to_string());
        rest = &rest[end..];
    }
    out
}

/// The text of a tool's result in any format: a string; text blocks or parts (Anthropic
/// `tool_result` content, Responses `input_text` items); Gemini's `functionResponse`
/// object, whose strings (its `output`, say) are joined.
pub fn result_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(result_text)
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join("\n"),
        Value::Object(o) => match o.get("text").or(o.get("content")).or(o.get("output")) {
            Some(inner) => result_text(inner),
            None => o
                .values()
                .map(result_text)
                .filter(|t| !t.is_empty())
                .collect::<Vec<_>>()
                .join("\n"),
        },
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_the_tool_then_its_arguments() {
        let c = ToolCall::from_header(" Bash {\"command\": \"cat x\"} ").unwrap();
        assert_eq!(c.name, "Bash");
        assert_eq!(c.object(), Some(json!({"command": "cat x"})));
        assert_eq!(
            ToolCall::from_header("Read").unwrap().object(),
            Some(json!({}))
        );
        assert_eq!(
            ToolCall::from_header("exec text(1)").unwrap().object(),
            None
        );
        assert_eq!(ToolCall::from_header("  "), None);
    }

    #[test]
    fn quotes_are_bounded_at_a_character() {
        let long = "é".repeat(300);
        let q = quote(&long);
        assert!(q.len() <= "The tool returned: ".len() + QUOTE_BYTES);
        assert_eq!(pieces("abcdefghij", 4).concat(), "abcdefghij");
        assert_eq!(pieces("ééééé", 5).concat(), "ééééé");
    }

    #[test]
    fn reads_results_in_every_format() {
        assert_eq!(result_text(&json!("x")), "x");
        assert_eq!(
            result_text(&json!([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}])),
            "a\nb"
        );
        assert_eq!(result_text(&json!({"output": "out"})), "out");
        assert_eq!(result_text(&json!({"stdout": "s", "code": 0})), "s");
    }
}
