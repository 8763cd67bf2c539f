//! The detector rules the guardrails choose from: the built-in ones
//! (`guard/rules/builtin.yaml`, shipped inside the guard crate) and a policy's
//! `rules_file`. Each file is read with its lines, so an error points into the file it is
//! in; the whole set is compiled by the guard crate's own `RuleSet`, as the filter will
//! compile it, and a rules file's examples are run like the built-in ones' table test.

use std::path::Path;

use chokepoint_guard::{Rule as GuardRule, RuleSet};
use serde_json::Value;

use super::load::{split_line, Ctx, MAX_POLICY_FILE_BYTES};
use super::PolicyError;
use crate::files::read_bounded;
use crate::yaml;

/// How errors name the built-in rules' file.
pub const BUILTIN_FILE: &str = "guard/rules/builtin.yaml";

/// One rule as the checks select it and the filter receives it.
#[derive(Debug, Clone)]
pub(super) struct Rule {
    pub id: String,
    pub category: String,
    /// The rule in the filter's shape: without `examples`.
    pub filter: Value,
}

/// One file of rules and where its errors point.
struct Source {
    shown: String,
    doc: yaml::Document,
    rules: Vec<GuardRule>,
}

impl Source {
    fn err(&self, field: String, message: impl Into<String>) -> PolicyError {
        PolicyError {
            file: self.shown.clone(),
            line: self.doc.line_of(&field),
            field,
            message: message.into(),
        }
    }
}

/// The built-in rules and the rules file's, in that order, compiled once to prove the
/// filter will take them.
pub(super) fn load(
    cx: &Ctx,
    rules_file: Option<&str>,
    base_dir: &Path,
) -> Result<Vec<Rule>, PolicyError> {
    let own = match rules_file {
        Some(file) => {
            let path = base_dir.join(file);
            let text = read_bounded(&path, MAX_POLICY_FILE_BYTES)
                .map_err(|m| cx.err("guardrails.rules_file", m))?;
            Some((path.display().to_string(), text))
        }
        None => None,
    };
    let (sources, _) = compile(own)?;
    let mut out = Vec::new();
    for src in &sources {
        for r in &src.rules {
            let mut r = r.clone();
            r.examples = None;
            out.push(Rule {
                id: r.id.clone(),
                category: r.category.as_str().to_string(),
                filter: serde_json::to_value(&r).unwrap_or(Value::Null),
            });
        }
    }
    Ok(out)
}

/// The rule set a policy with `rules_file` would give its checks to choose from, for
/// `chokepoint-config guardrails scan`: the same parsing, examples and errors as the
/// policy file's, so a rules file the scan takes is one a policy takes.
pub fn rule_set(rules_file: Option<&Path>) -> Result<RuleSet, PolicyError> {
    let own = match rules_file {
        Some(path) => {
            let shown = path.display().to_string();
            let text =
                read_bounded(path, MAX_POLICY_FILE_BYTES).map_err(|message| PolicyError {
                    file: shown.clone(),
                    line: None,
                    field: String::new(),
                    message,
                })?;
            Some((shown, text))
        }
        None => None,
    };
    compile(own).map(|(_, set)| set)
}

/// The built-in rules and `own` (a rules file's name as errors show it, and its text):
/// parsed, an own rule's id checked against the built-in ones and its examples run, and
/// the whole set compiled as the filter compiles it.
fn compile(own: Option<(String, String)>) -> Result<(Vec<Source>, RuleSet), PolicyError> {
    let builtin = parse(BUILTIN_FILE.to_string(), chokepoint_guard::BUILTIN_YAML)?;
    let mut sources = vec![builtin];
    if let Some((shown, text)) = own {
        let own = parse(shown, &text)?;
        for (i, r) in own.rules.iter().enumerate() {
            if sources[0].rules.iter().any(|b| b.id == r.id) {
                return Err(own.err(
                    format!("[{i}].id"),
                    format!(
                        "rule `{}`: the id of a built-in rule; give yours another (the \
                         built-in one can be selected by its id)",
                        r.id
                    ),
                ));
            }
            examples(&own, i, r)?;
        }
        sources.push(own);
    }
    let all: Vec<(usize, usize)> = sources
        .iter()
        .enumerate()
        .flat_map(|(s, src)| (0..src.rules.len()).map(move |i| (s, i)))
        .collect();
    let set: Vec<GuardRule> = sources.iter().flat_map(|s| s.rules.clone()).collect();
    match RuleSet::compile(set) {
        Ok(set) => Ok((sources, set)),
        Err(e) => {
            // The position in the whole list back to its file and index there.
            let (s, i) = all.get(e.index).copied().unwrap_or((sources.len() - 1, 0));
            let src = &sources[s];
            Err(src.err(
                format!("[{i}].{}", e.field),
                format!("rule `{}`: {}", e.id, e.message),
            ))
        }
    }
}

/// A rules file: a YAML list of rules, each refusing unknown fields.
fn parse(shown: String, text: &str) -> Result<Source, PolicyError> {
    let doc = yaml::load(text).map_err(|message| {
        let (line, message) = split_line(&message);
        PolicyError {
            file: shown.clone(),
            line,
            field: String::new(),
            message,
        }
    })?;
    let rules: Vec<GuardRule> = match serde_path_to_error::deserialize(doc.value.clone()) {
        Ok(r) => r,
        Err(e) => {
            let path = e.path().to_string();
            let message = e.into_inner().to_string();
            let field = match message
                .strip_prefix("unknown field `")
                .and_then(|r| r.split('`').next())
            {
                Some(name) if !path.ends_with(name) => format!("{path}.{name}"),
                _ if path == "." => String::new(),
                _ => path,
            };
            let line = doc.line_of(&field);
            return Err(PolicyError {
                file: shown,
                line,
                field,
                message,
            });
        }
    };
    Ok(Source { shown, doc, rules })
}

/// An admin's rule carries examples, run as the built-in ones' table test runs them:
/// each `match` text must give the rule a finding, each `no_match` text none.
fn examples(src: &Source, i: usize, rule: &GuardRule) -> Result<(), PolicyError> {
    let field = |n: &str| format!("[{i}].examples{n}");
    let Some(ex) = rule.examples.as_ref().filter(|e| !e.matches.is_empty()) else {
        return Err(src.err(
            field(""),
            format!(
                "rule `{}` needs examples with at least one match (and no_match look-alikes): \
                 they are how a rule is known to find what it should",
                rule.id
            ),
        ));
    };
    // Compile errors are reported with the whole set's, with their field.
    let Ok(alone) = RuleSet::compile(vec![rule.clone()]) else {
        return Ok(());
    };
    for (k, text) in ex.matches.iter().enumerate() {
        if alone.scan(text).is_empty() {
            return Err(src.err(
                field(&format!(".match[{k}]")),
                format!("rule `{}` finds nothing in this example", rule.id),
            ));
        }
    }
    for (k, text) in ex.no_match.iter().enumerate() {
        if !alone.scan(text).is_empty() {
            return Err(src.err(
                field(&format!(".no_match[{k}]")),
                format!("rule `{}` finds something in this look-alike", rule.id),
            ));
        }
    }
    Ok(())
}
