//! `chokepoint-config guardrails scan`: the built-in detectors (and an admin's own rules
//! file) over files on disk, one JSON line per finding with its file, line, rule and
//! category, never the value. Admins try a rules file on their own data with it; the
//! guardrails test layer measures accuracy with it.

use std::io::Write;
use std::path::PathBuf;

use chokepoint_guard::RuleSet;
use chokepoint_render::policy::guard_rules;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum GuardCommand {
    /// Print one JSON line per finding: {"file","line","rule","category"}. Exit 0 with or
    /// without findings, 1 on an error (a rules file that does not compile, an unreadable
    /// file).
    Scan {
        /// Rules added to the built-in ones, YAML as rules/builtin.yaml, checked as a
        /// policy's `guardrails.rules_file` is: ids must not clash, examples required.
        #[arg(long)]
        rules: Option<PathBuf>,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

pub fn run(command: GuardCommand) -> Result<(), String> {
    match command {
        GuardCommand::Scan { rules, files } => {
            let set = guard_rules::rule_set(rules.as_deref()).map_err(|e| e.to_string())?;
            let mut out = std::io::stdout().lock();
            for file in &files {
                let bytes = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
                let text = String::from_utf8_lossy(&bytes);
                for line in scan(&set, &text) {
                    let row = serde_json::json!({
                        "file": file.display().to_string(),
                        "line": line.0,
                        "rule": set.id(line.1),
                        "category": set.category(line.1).as_str(),
                    });
                    writeln!(out, "{row}").map_err(|e| e.to_string())?;
                }
            }
            Ok(())
        }
    }
}

/// (1-based line of the value's first byte, rule) of every finding in `text`.
fn scan(set: &RuleSet, text: &str) -> Vec<(usize, usize)> {
    let mut line = 1;
    let mut at = 0;
    set.scan(text)
        .into_iter()
        .map(|f| {
            line += text
                .get(at..f.start)
                .map_or(0, |s| s.bytes().filter(|&b| b == b'\n').count());
            at = f.start;
            (line, f.rule)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_count_from_one_across_findings() {
        let set = guard_rules::rule_set(None).unwrap();
        let text =
            "a\nkey AKIAIOSFODNN7EXAMPLE\n\nmail jane.doe@acme-corp.io and AKIAIOSFODNN7EXAMPLE\n";
        let got: Vec<(usize, &str)> = scan(&set, text)
            .into_iter()
            .map(|(l, r)| (l, set.id(r)))
            .collect();
        assert_eq!(
            got,
            vec![
                (2, "aws-access-key-id"),
                (4, "email-address"),
                (4, "aws-access-key-id")
            ]
        );
    }

    #[test]
    fn rules_file_errors_name_file_line_and_field() {
        let dir = std::env::temp_dir().join(format!("guard-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // The policy file's loader and its errors: the scan takes what a policy takes.
        let cases = [
            (
                "- id: a\n  category: secret\n  regex: x\n  keyword: [x]\n",
                ":4: [0].keyword:",
                "unknown field `keyword`",
            ),
            (
                "- id: aws-access-key-id\n  category: secret\n  regex: x\n  examples: {match: [x]}\n",
                ":1: [0].id:",
                "the id of a built-in rule",
            ),
            (
                "- id: b\n  category: secret\n  regex: '('\n  examples: {match: ['(']}\n",
                ":3: [0].regex:",
                "unclosed group",
            ),
            (
                "- id: d\n  category: secret\n  regex: zz\n  examples: {match: [yy]}\n",
                "[0].examples.match[0]:",
                "finds nothing in this example",
            ),
        ];
        for (i, (yaml, where_, what)) in cases.iter().enumerate() {
            let path = dir.join(format!("r{i}.yaml"));
            std::fs::write(&path, yaml).unwrap();
            let e = guard_rules::rule_set(Some(&path))
                .err()
                .unwrap()
                .to_string();
            let shown = path.display().to_string();
            assert!(
                e.starts_with(&shown) && e[shown.len()..].contains(where_) && e.contains(what),
                "{e}"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
