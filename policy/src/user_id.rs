//! The anonymous per-user id the filter derives from the caller's JWT.

use std::fmt;

/// A user UUID in canonical lowercase form.
///
/// Canonicalising matters: the id becomes part of a Redis key, and `ABC…` and `abc…`
/// must share one counter or a caller could double their quota by changing case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserId(String);

impl UserId {
    /// Accepts the textual UUID form `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (any version,
    /// either case). Braced, URN and dash-less forms are rejected: the filter never sends
    /// them, and accepting several spellings would again split one user's counters.
    pub fn parse(text: &str) -> Option<Self> {
        const DASHES: [usize; 4] = [8, 13, 18, 23];
        let bytes = text.as_bytes();
        if bytes.len() != 36 {
            return None;
        }
        let well_formed = bytes.iter().enumerate().all(|(i, b)| {
            if DASHES.contains(&i) {
                *b == b'-'
            } else {
                b.is_ascii_hexdigit()
            }
        });
        well_formed.then(|| Self(text.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::UserId;

    #[test]
    fn parses_only_canonical_textual_uuids() {
        let cases = [
            (
                "0190a6f2-7c1e-8b3a-9f00-1234567890ab",
                Some("0190a6f2-7c1e-8b3a-9f00-1234567890ab"),
            ),
            (
                "0190A6F2-7C1E-8B3A-9F00-1234567890AB",
                Some("0190a6f2-7c1e-8b3a-9f00-1234567890ab"),
            ),
            (
                "00000000-0000-0000-0000-000000000000",
                Some("00000000-0000-0000-0000-000000000000"),
            ),
            ("", None),
            ("alice", None),
            ("0190a6f27c1e8b3a9f001234567890ab", None),
            ("{0190a6f2-7c1e-8b3a-9f00-1234567890a}", None),
            ("0190a6f2-7c1e-8b3a-9f00-1234567890ag", None),
            ("0190a6f2_7c1e-8b3a-9f00-1234567890ab", None),
            ("0190a6f2-7c1e-8b3a-9f001-234567890ab", None),
            ("0190a6f2-7c1e-8b3a-9f00-1234567890ab ", None),
            // 36 bytes, but not 36 ASCII characters.
            ("0190a6f2-7c1e-8b3a-9f00-1234567890é", None),
        ];
        for (input, expected) in cases {
            assert_eq!(
                UserId::parse(input).as_ref().map(UserId::as_str),
                expected,
                "input {input:?}"
            );
        }
    }
}
