//! The `*` globs of routes, prices and issuer trust lists: `*` matches any run of
//! characters (including none), everything else is literal.

/// A `*` glob taken apart once, so that matching it costs a length check and a prefix
/// comparison for most names: a price table holds ninety of them, tried per request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    pub pattern: String,
    first: String,
    last: String,
    middles: Vec<String>,
    /// No shorter text can match.
    min_len: usize,
}

impl Glob {
    /// The glob of a pattern with at least one `*`.
    pub fn new(pattern: &str) -> Glob {
        let mut parts: Vec<String> = pattern.split('*').map(str::to_owned).collect();
        let last = if parts.len() > 1 {
            parts.pop().unwrap_or_default()
        } else {
            String::new()
        };
        let first = if parts.is_empty() {
            String::new()
        } else {
            parts.remove(0)
        };
        Glob {
            min_len: pattern.len() - pattern.matches('*').count(),
            pattern: pattern.to_string(),
            first,
            last,
            middles: parts,
        }
    }

    pub fn matches(&self, text: &str) -> bool {
        if text.len() < self.min_len {
            return false;
        }
        let Some(rest) = text.strip_prefix(self.first.as_str()) else {
            return false;
        };
        let Some(mut middle) = rest.strip_suffix(self.last.as_str()) else {
            return false;
        };
        for mid in &self.middles {
            match middle.find(mid.as_str()) {
                Some(at) => middle = middle.get(at + mid.len()..).unwrap_or(""),
                None => return false,
            }
        }
        true
    }

    /// Literal characters: the more, the more specific.
    pub fn literal_len(&self) -> usize {
        self.min_len
    }
}

pub use chokepoint_contract::glob::glob_match;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        for (p, t, want) in [
            ("claude-*", "claude-x", true),
            ("claude-*", "claude-", true),
            ("claude-*", "claud", false),
            ("*-mini", "gpt-4o-mini", true),
            ("gpt-*-mini", "gpt-4o-mini", true),
            ("gpt-*-mini", "gpt-mini", false),
            ("a*b*c", "abc", true),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "acb", false),
            ("*", "", true),
            ("exact", "exact", true),
            ("exact", "exactly", false),
            ("a*a", "a", false),
            ("ab*ba", "aba", false),
            ("ab*ba", "abba", true),
            ("claude-haiku-4-5*", "claude-haiku-4-5[1m]", true),
            ("gpt-5.6-sol*", "gpt-5.6-terra", false),
        ] {
            assert_eq!(glob_match(p, t), want, "{p} {t}");
            if p.contains('*') {
                assert_eq!(Glob::new(p).matches(t), want, "Glob {p} {t}");
            }
        }
    }
}
