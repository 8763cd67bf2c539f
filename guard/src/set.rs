//! A compiled rule set and its scan: one Aho-Corasick pass over the text finds which
//! rules' keywords occur; only those rules, and the rules without keywords, run their
//! own regex. (A RegexSet pass gating the keyword-less rules too was measured and
//! dropped: it doubled compile time natively, added a quarter in V8, and saved no scan
//! time, as those rules look for digits, which every code or log text has.)

use std::fmt;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::bytes::{Regex, RegexBuilder};

use crate::rule::{Category, Rule, Validator};
use crate::validate;

/// Compiled regexes are bounded so a rules file cannot make a worker allocate without
/// limit (the default is 10 MiB per regex; the built-in rules need far less).
const REGEX_SIZE_LIMIT: usize = 2 << 20;
const MAX_ID_LEN: usize = 64;

/// One value found: byte offsets into the scanned text and the index of its rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Finding {
    pub rule: usize,
    pub start: usize,
    pub end: usize,
}

/// Why a rule set does not compile: the rule (id and position in the list) and field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub index: usize,
    pub id: String,
    pub field: &'static str,
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rules[{}] (`{}`): {}: {}",
            self.index, self.id, self.field, self.message
        )
    }
}

impl std::error::Error for RuleError {}

struct Compiled {
    rule: Rule,
    regex: Regex,
    group: usize,
    allow: Vec<Regex>,
}

/// Rules ready to scan.
pub struct RuleSet {
    rules: Vec<Compiled>,
    /// Every keyword of every rule, and the rule each belongs to.
    keywords: Option<AhoCorasick>,
    keyword_rule: Vec<usize>,
}

impl fmt::Debug for RuleSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuleSet")
            .field("rules", &self.rules.len())
            .finish()
    }
}

/// ASCII semantics (`\w`, `\b`, `(?i)` on ASCII only): every secret format and personal
/// datum the rules look for is ASCII, the Unicode tables would weigh 164 KB in the
/// filter, and a Unicode `\b` makes the lazy DFA give up on the first non-ASCII byte
/// (box-drawing characters in terminal output) and fall back to a slower engine. Over
/// bytes, since an ASCII negated class may match inside a multibyte character; a
/// finding's bounds are widened to whole characters (`char_bounds`).
fn build(pattern: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .unicode(false)
        .build()
}

/// `start..end` widened to the nearest character boundaries of `text`.
fn char_bounds(text: &str, mut start: usize, mut end: usize) -> (usize, usize) {
    while start > 0 && !text.is_char_boundary(start) {
        start -= 1;
    }
    while end < text.len() && !text.is_char_boundary(end) {
        end += 1;
    }
    (start, end.min(text.len()))
}

impl RuleSet {
    pub fn compile(rules: Vec<Rule>) -> Result<RuleSet, RuleError> {
        let mut compiled: Vec<Compiled> = Vec::with_capacity(rules.len());
        let mut kw: Vec<String> = Vec::new();
        let mut keyword_rule = Vec::new();
        for (index, rule) in rules.into_iter().enumerate() {
            let err = |field: &'static str, message: String| RuleError {
                index,
                id: rule.id.clone(),
                field,
                message,
            };
            if rule.id.is_empty()
                || rule.id.len() > MAX_ID_LEN
                || !rule
                    .id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                return Err(err("id", "must be 1 to 64 of [a-z0-9-]".into()));
            }
            if compiled.iter().any(|c| c.rule.id == rule.id) {
                return Err(err("id", "duplicate id".into()));
            }
            let regex = build(&rule.regex).map_err(|e| err("regex", e.to_string()))?;
            let group = rule.group.unwrap_or(0);
            if group >= regex.captures_len() {
                return Err(err(
                    "group",
                    format!("the regex has {} capture groups", regex.captures_len() - 1),
                ));
            }
            match (rule.validate, rule.min_entropy) {
                (Some(Validator::Entropy), Some(e)) if e.is_finite() && e > 0.0 && e <= 8.0 => {}
                (Some(Validator::Entropy), _) => {
                    return Err(err(
                        "min_entropy",
                        "validate: entropy needs min_entropy in (0, 8]".into(),
                    ))
                }
                (_, Some(_)) => {
                    return Err(err("min_entropy", "only with validate: entropy".into()))
                }
                _ => {}
            }
            let mut allow = Vec::with_capacity(rule.allow.len());
            for a in &rule.allow {
                allow.push(build(a).map_err(|e| err("allow", e.to_string()))?);
            }
            if rule.keywords.iter().any(String::is_empty) {
                return Err(err("keywords", "a keyword cannot be empty".into()));
            }
            for k in &rule.keywords {
                kw.push(k.clone());
                keyword_rule.push(compiled.len());
            }
            compiled.push(Compiled {
                rule,
                regex,
                group,
                allow,
            });
        }
        let keywords = if kw.is_empty() {
            None
        } else {
            Some(
                AhoCorasickBuilder::new()
                    .ascii_case_insensitive(true)
                    .match_kind(MatchKind::Standard)
                    .build(&kw)
                    .map_err(|e| RuleError {
                        index: 0,
                        id: String::new(),
                        field: "keywords",
                        message: e.to_string(),
                    })?,
            )
        };
        Ok(RuleSet {
            rules: compiled,
            keywords,
            keyword_rule,
        })
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rule's id; "" for an index out of range.
    pub fn id(&self, rule: usize) -> &str {
        self.rules.get(rule).map_or("", |c| c.rule.id.as_str())
    }

    /// The rule's category (Secret for an index out of range: the stricter one).
    pub fn category(&self, rule: usize) -> Category {
        self.rules
            .get(rule)
            .map_or(Category::Secret, |c| c.rule.category)
    }

    /// The index of the rule named `id`.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.rules.iter().position(|c| c.rule.id == id)
    }

    /// The rules as compiled (examples included when they were given).
    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter().map(|c| &c.rule)
    }

    /// Every value the rules find in `text`: sorted by start, never overlapping. Where
    /// two findings overlap, the one starting first wins, then the rule listed first
    /// (specific rules precede generic ones), then the longer.
    pub fn scan(&self, text: &str) -> Vec<Finding> {
        let mut run: Vec<bool> = self
            .rules
            .iter()
            .map(|c| c.rule.keywords.is_empty())
            .collect();
        if let Some(ac) = &self.keywords {
            for m in ac.find_overlapping_iter(text) {
                if let Some(&r) = self.keyword_rule.get(m.pattern().as_usize()) {
                    if let Some(slot) = run.get_mut(r) {
                        *slot = true;
                    }
                }
            }
        }
        let mut found = Vec::new();
        for (i, c) in self.rules.iter().enumerate() {
            if !run.get(i).copied().unwrap_or(false) {
                continue;
            }
            // A rule without a group needs only where each match is, which the lazy DFA
            // finds alone; captures cost a slower engine's pass per match.
            let spans: Vec<(usize, usize)> = if c.group == 0 {
                c.regex
                    .find_iter(text.as_bytes())
                    .map(|m| (m.start(), m.end()))
                    .collect()
            } else {
                c.regex
                    .captures_iter(text.as_bytes())
                    .filter_map(|caps| caps.get(c.group).map(|m| (m.start(), m.end())))
                    .collect()
            };
            for (start, end) in spans {
                let (start, end) = char_bounds(text, start, end);
                let Some(value) = text.get(start..end) else {
                    continue;
                };
                if value.is_empty() || !c.accepts(value) {
                    continue;
                }
                found.push(Finding {
                    rule: i,
                    start,
                    end,
                });
            }
        }
        resolve(found)
    }
}

impl Compiled {
    fn accepts(&self, value: &str) -> bool {
        if self.allow.iter().any(|a| a.is_match(value.as_bytes())) {
            return false;
        }
        match self.rule.validate {
            Some(v) => validate::check(v, value, self.rule.min_entropy.unwrap_or(0.0)),
            None => true,
        }
    }
}

/// Sorted, non-overlapping: first start, then the earlier rule, then the longer.
fn resolve(mut found: Vec<Finding>) -> Vec<Finding> {
    found.sort_by(|a, b| {
        a.start
            .cmp(&b.start)
            .then(a.rule.cmp(&b.rule))
            .then(b.end.cmp(&a.end))
    });
    let mut out: Vec<Finding> = Vec::with_capacity(found.len());
    for f in found {
        if out.last().is_none_or(|last| f.start >= last.end) {
            out.push(f);
        }
    }
    out
}
