//! Redis stream entry ids, `<ms>-<seq>`: the audit export's cursor and the names of its
//! files, compared as Redis orders them (by milliseconds, then sequence).

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    /// `<ms>-<seq>`, both decimal u64 without sign or padding beyond what Redis writes;
    /// nothing else (no `-`, `+`, `*` or a bare `<ms>`).
    pub fn parse(text: &str) -> Option<Self> {
        let (ms, seq) = text.split_once('-')?;
        let number = |part: &str| {
            if part.is_empty() || part.len() > 20 || !part.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            part.parse::<u64>().ok()
        };
        Some(Self {
            ms: number(ms)?,
            seq: number(seq)?,
        })
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_orders_ids() {
        let cases = [
            ("0-0", Some((0, 0))),
            ("1796637600000-0", Some((1_796_637_600_000, 0))),
            ("5-18446744073709551615", Some((5, u64::MAX))),
            ("", None),
            ("5", None),
            ("-", None),
            ("+", None),
            ("5-", None),
            ("-5", None),
            ("+5-1", None),
            ("5-1-2", None),
            ("18446744073709551616-0", None),
            ("5 -1", None),
        ];
        for (text, expected) in cases {
            let got = StreamId::parse(text).map(|id| (id.ms, id.seq));
            assert_eq!(got, expected, "{text:?}");
        }
        let id = |t| StreamId::parse(t).expect("id");
        assert!(id("9-10") > id("9-9"));
        assert!(id("10-0") > id("9-99"));
        assert_eq!(id("0012-3").to_string(), "12-3");
    }
}
