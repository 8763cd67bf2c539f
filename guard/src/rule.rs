//! One detector as written in a rules file (YAML for people, JSON inside the filter's
//! configuration): serde structs that refuse unknown fields, so a misspelt key is an
//! error rather than a rule that silently does less.

use serde::{Deserialize, Serialize};

/// What a finding is, for the checks that select rules by category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    Secret,
    Personal,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Secret => "secret",
            Category::Personal => "personal",
        }
    }
}

/// The check a candidate value must pass after the regex matched it: checksums for
/// numbers that carry one, randomness for generic secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Validator {
    /// Payment card numbers: 13 to 19 digits (separators ignored), Luhn mod 10.
    Luhn,
    /// IBAN: the country's length and the ISO 7064 mod-97 check.
    Iban,
    /// Shannon entropy of the value at least `min_entropy` bits per character.
    Entropy,
    /// Phone numbers: 8 to 15 digits in all (E.164), and a North American number (+1 or
    /// a national format) exactly 10 after the country code, area and exchange 2-9.
    Phone,
    /// US social security number: area, group and serial ranges the SSA never issues.
    UsSsn,
    /// UK national insurance number: the prefixes and letters HMRC never issues.
    UkNino,
    /// Dutch burgerservicenummer: the 11-check.
    NlBsn,
    /// Spanish DNI and NIE: the control letter (mod 23).
    EsDni,
    /// French NIR (social security number): the 2-digit key (97 - n mod 97).
    FrNir,
    /// Italian codice fiscale: the check character.
    ItCodiceFiscale,
    /// Brazilian CPF: the two mod-11 check digits.
    BrCpf,
    /// Indian Aadhaar: the Verhoeff check digit.
    InAadhaar,
}

/// Text a rule must find (exactly its own finding) and look-alikes it must not.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Examples {
    #[serde(rename = "match", default)]
    pub matches: Vec<String>,
    #[serde(default)]
    pub no_match: Vec<String>,
}

/// One detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// `[a-z0-9-]{1,64}`, unique in a rule set: it names findings, placeholders, records.
    pub id: String,
    pub category: Category,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The `regex` crate's syntax. Prefer `(?-u:\b)` to `\b`: the Unicode word boundary
    /// makes the lazy DFA give up on non-ASCII text.
    pub regex: String,
    /// The capture group that is the value (default 0, the whole match).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<usize>,
    /// Case-insensitive literals; the rule runs only on text containing one of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keywords: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validate: Option<Validator>,
    /// Bits per character, with `validate: entropy` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_entropy: Option<f64>,
    /// Regexes for values that look like a match but are placeholders (`changeme`,
    /// `${VAR}`, `<your-key>`...): a value any of them finds is no finding.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    /// Required in a rules file (the table test runs them), absent in the filter's
    /// configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub examples: Option<Examples>,
}
