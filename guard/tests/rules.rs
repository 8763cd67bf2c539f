//! The built-in rules' own examples, every one, against the whole compiled set.

// A test states its expectations by panicking.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use chokepoint_guard::RuleSet;

#[test]
fn every_example_of_every_builtin_rule() {
    let rules = common::builtin_rules();
    let set = RuleSet::compile(rules.clone()).unwrap();
    let mut failures = Vec::new();
    let mut ran = 0;
    for (i, rule) in rules.iter().enumerate() {
        let ex = rule
            .examples
            .as_ref()
            .unwrap_or_else(|| panic!("rule {} has no examples", rule.id));
        assert!(
            !ex.matches.is_empty() && !ex.no_match.is_empty(),
            "rule {} needs match and no_match examples",
            rule.id
        );
        for text in &ex.matches {
            ran += 1;
            let found = set.scan(text);
            let ids: Vec<&str> = found.iter().map(|f| set.id(f.rule)).collect();
            if found.len() != 1 || found[0].rule != i {
                failures.push(format!("{}: match {text:?} found {ids:?}", rule.id));
            }
        }
        for text in &ex.no_match {
            ran += 1;
            let found = set.scan(text);
            if !found.is_empty() {
                let what: Vec<String> = found
                    .iter()
                    .map(|f| format!("{} {:?}", set.id(f.rule), &text[f.start..f.end]))
                    .collect();
                failures.push(format!("{}: no_match {text:?} found {what:?}", rule.id));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {ran} examples failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("{ran} examples of {} rules passed", rules.len());
}
