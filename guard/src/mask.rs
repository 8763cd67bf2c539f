//! Deterministic placeholders: the same value under the same rule and key masks the same
//! way on every turn, so a provider's prompt cache still hits on a masked history, and
//! nobody without the key can test a guess against a placeholder.

use crate::set::{Finding, RuleSet};

pub struct Masker {
    key: Vec<u8>,
}

impl std::fmt::Debug for Masker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Masker")
    }
}

impl Masker {
    pub fn new(key: &[u8]) -> Masker {
        Masker { key: key.to_vec() }
    }

    /// `[<rule-id>:<8 hex of HMAC-SHA256(key, rule-id NUL value)>]`.
    pub fn placeholder(&self, rule_id: &str, value: &str) -> String {
        let mut msg = Vec::with_capacity(rule_id.len() + 1 + value.len());
        msg.extend_from_slice(rule_id.as_bytes());
        msg.push(0);
        msg.extend_from_slice(value.as_bytes());
        let mac = hmac_sha256::HMAC::mac(&msg, &self.key);
        let mut out = String::with_capacity(rule_id.len() + 11);
        out.push('[');
        out.push_str(rule_id);
        out.push(':');
        for b in mac.iter().take(4) {
            out.push_str(&format!("{b:02x}"));
        }
        out.push(']');
        out
    }
}

/// `text` with every finding's value replaced by its placeholder. Findings must be what
/// `set.scan(text)` returned (sorted, non-overlapping, on char boundaries); one that is
/// not is left unmasked rather than cutting a character in two.
pub fn mask(text: &str, findings: &[Finding], set: &RuleSet, masker: &Masker) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for f in findings {
        let (Some(before), Some(value)) = (text.get(at..f.start), text.get(f.start..f.end)) else {
            continue;
        };
        out.push_str(before);
        out.push_str(&masker.placeholder(set.id(f.rule), value));
        at = f.end;
    }
    out.push_str(text.get(at..).unwrap_or(""));
    out
}
