//! Dead letters: usage records (and lease releases) of an accepted batch that the
//! ledger refuses as invalid. A filter retries a batch until it gets a 200, so one
//! record nobody can book must not fail its batch: that would hold back every record
//! behind it for good. Each one is kept instead, with the error that names its field,
//! in a capped Redis stream ([`DEAD_LETTER_KEY`], written by
//! `scripts/dead_letter.lua`), and counted in `/metrics`, for an operator to look at.
//!
//! An entry keeps the raw text cut to [`MAX_DEAD_RECORD_BYTES`] and its full length,
//! and the error cut to [`MAX_DEAD_ERROR_BYTES`] (a parse error may quote the offending
//! value), so what one entry holds is bounded however large the record was.

/// The dead-letter stream: fields `error`, `record`, `record_bytes`, `ts_ms`.
pub const DEAD_LETTER_KEY: &str = "ck:usage:dead";

/// Most bytes of a refused record's text kept (4 KiB: a real record is under 1 KiB
/// unless it names many groups).
pub const MAX_DEAD_RECORD_BYTES: usize = 4096;

/// Most bytes of the error kept.
pub const MAX_DEAD_ERROR_BYTES: usize = 512;

/// One refused record or release, ready to keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Why, naming the field: `records[3].model must be at most 256 bytes (got 65536)`.
    pub error: String,
    /// The record as sent, cut to [`MAX_DEAD_RECORD_BYTES`].
    pub record: String,
    /// The record's full length in bytes, so a cut is visible.
    pub record_bytes: usize,
}

impl DeadLetter {
    pub fn new(error: &str, record: &str) -> Self {
        Self {
            error: cut(error, MAX_DEAD_ERROR_BYTES).to_owned(),
            record: cut(record, MAX_DEAD_RECORD_BYTES).to_owned(),
            record_bytes: record.len(),
        }
    }
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character.
fn cut(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_at_most_the_bounds_cut_on_a_character() {
        // (record, kept bytes)
        let cases = [
            (String::new(), 0),
            ("7".to_owned(), 1),
            ("x".repeat(MAX_DEAD_RECORD_BYTES), MAX_DEAD_RECORD_BYTES),
            ("x".repeat(64 * 1024), MAX_DEAD_RECORD_BYTES),
            // A two-byte character across the bound is left out whole.
            (
                format!("{}é", "x".repeat(MAX_DEAD_RECORD_BYTES - 1)),
                MAX_DEAD_RECORD_BYTES - 1,
            ),
        ];
        for (record, kept) in cases {
            let letter = DeadLetter::new("e", &record);
            assert_eq!(letter.record.len(), kept, "{} bytes", record.len());
            assert!(record.starts_with(&letter.record));
            assert_eq!(letter.record_bytes, record.len());
        }
        let letter = DeadLetter::new(&"é".repeat(1000), "{}");
        assert_eq!(letter.error.len(), MAX_DEAD_ERROR_BYTES);
    }
}
