//! A body with some of its strings replaced: each replacement is the new value encoded
//! as a JSON string, written where the old string was; every other byte is copied as it
//! came, so what the gateway did not mask reaches the provider exactly as sent (its
//! prompt cache still matches).

/// One string to replace: its offset and length in the body (quotes included), and the
/// new value (not yet encoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replace {
    pub at: usize,
    pub len: usize,
    pub value: String,
}

/// `body` with `edits` made. Edits must be in body order and not overlap (a text's span
/// is one string); one that does not fit is skipped rather than corrupting the body.
pub fn splice(body: &[u8], edits: &[Replace]) -> Vec<u8> {
    let grow: usize = edits.iter().map(|e| e.value.len() + 2).sum();
    let mut out = Vec::with_capacity(body.len() + grow);
    let mut copied = 0;
    for e in edits {
        let Some(end) = e.at.checked_add(e.len) else {
            continue;
        };
        let Some(before) = body.get(copied..e.at).filter(|_| end <= body.len()) else {
            continue;
        };
        out.extend_from_slice(before);
        // Encoding a string into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut out, &e.value);
        copied = end;
    }
    out.extend_from_slice(body.get(copied..).unwrap_or_default());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guardrails::extract::{texts, Shape};
    use crate::providers::request_body::scan;

    /// Replacing some texts of a real body: the result is JSON, those strings read as
    /// their new values, and every byte outside them is the body's own.
    #[test]
    fn only_the_replaced_strings_change() {
        let body = include_str!("../../fixtures/requests/claude_code_messages.json");
        let scanned = scan(body.as_bytes()).unwrap();
        let found = texts(Shape::Anthropic, &scanned);
        let picked: Vec<_> = found
            .iter()
            .filter(|t| t.value().contains("AKIA") || t.value().contains("café"))
            .collect();
        assert_eq!(picked.len(), 2);
        let edits: Vec<Replace> = picked
            .iter()
            .map(|t| Replace {
                at: t.at,
                len: t.raw.len(),
                value: t.value().replace("AKIAIOSFODNN7EXAMPLE", "[aws:1]") + "\"\n\u{1}é",
            })
            .collect();
        let out = splice(body.as_bytes(), &edits);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let results = &v["messages"][2]["content"];
        assert_eq!(
            results[0]["content"],
            "#!/bin/sh\nexport AWS_ACCESS_KEY_ID=[aws:1]\naws s3 cp build s3://releases --recursive\n\"\n\u{1}é"
        );
        assert_eq!(
            results[1]["content"][0]["text"],
            "exit code 1: café not found\"\n\u{1}é"
        );
        // Outside the replaced strings, byte for byte (the thinking block and its
        // signature too, AKIA and all).
        let (first, second) = (picked[0], picked[1]);
        let out_text = String::from_utf8(out.clone()).unwrap();
        assert!(out_text.starts_with(&body[..first.at]));
        assert!(out_text.ends_with(&body[second.at + second.raw.len()..]));
        let between = &body[first.at + first.raw.len()..second.at];
        assert_eq!(out_text.matches(between).count(), 1);
        assert!(out_text.contains(
            r#""signature": "EqQBCkYIBhgCKkDh3vJ2N5+sigAKIAIOSFODNN7EXAMPLE+Zm9vYmFy==""#
        ));
        assert_eq!(
            out.len(),
            body.len() - first.raw.len() - second.raw.len() + {
                let enc = |e: &Replace| serde_json::to_string(&e.value).unwrap().len();
                enc(&edits[0]) + enc(&edits[1])
            }
        );
    }

    #[test]
    fn no_edits_is_the_body_itself() {
        let body = br#"{"a": "b" , "c":[1, 2]}"#;
        assert_eq!(splice(body, &[]), body.to_vec());
        // Edits that do not fit are skipped, never cut the body.
        let wild = [
            Replace {
                at: 100,
                len: 3,
                value: "x".into(),
            },
            Replace {
                at: usize::MAX,
                len: 3,
                value: "x".into(),
            },
        ];
        assert_eq!(splice(body, &wild), body.to_vec());
    }
}
