//! `chokepoint-config guardrails scan`: the built-in detectors (and an admin's own rules
//! file) over files on disk, one JSON line per finding with its file, line, rule and
//! category, never the value. Admins try a rules file on their own data with it; the
//! guardrails test layer measures accuracy with it.

use std::io::Write;
use std::path::{Path, PathBuf};

use chokepoint_guard::{Rule, RuleSet};
use clap::Subcommand;

use chokepoint_render::yaml;

#[derive(Subcommand)]
pub enum GuardCommand {
    /// Print one JSON line per finding: {"file","line","rule","category"}. Exit 0 with or
    /// without findings, 1 on an error (a rules file that does not compile, an unreadable
    /// file).
    Scan {
        /// Rules added to the built-in ones (ids must not clash), YAML as rules/builtin.yaml.
        #[arg(long)]
        rules: Option<PathBuf>,
        /// Only these rules: the built-in ones are not loaded.
        #[arg(long)]
        no_builtin: bool,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

pub fn run(command: GuardCommand) -> Result<(), String> {
    match command {
        GuardCommand::Scan {
            rules,
            no_builtin,
            files,
        } => {
            let set = rule_set(rules.as_deref(), no_builtin)?;
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

fn rule_set(extra: Option<&Path>, no_builtin: bool) -> Result<RuleSet, String> {
    let mut rules = if no_builtin {
        Vec::new()
    } else {
        parse("built-in rules", chokepoint_guard::BUILTIN_YAML)?.0
    };
    let builtin = rules.len();
    let mut doc = None;
    if let Some(path) = extra {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let (more, d) = parse(&path.display().to_string(), &text)?;
        rules.extend(more);
        doc = Some(d);
    }
    RuleSet::compile(rules).map_err(|e| match (extra, doc) {
        // The admin's file: its own index, and the line of the field.
        (Some(path), Some(doc)) if e.index >= builtin => {
            let i = e.index - builtin;
            let line = doc
                .line_of(&format!("[{i}].{}", e.field))
                .map_or(String::new(), |l| format!(" line {l}:"));
            format!(
                "{}:{line} [{i}].{} (rule `{}`): {}",
                path.display(),
                e.field,
                e.id,
                e.message
            )
        }
        _ => format!("built-in rules: {e}"),
    })
}

/// A rules file's YAML into rules; errors name the file, line and field.
fn parse(name: &str, text: &str) -> Result<(Vec<Rule>, yaml::Document), String> {
    let doc = yaml::load(text).map_err(|e| format!("{name}: {e}"))?;
    let rules = serde_path_to_error::deserialize(doc.value.clone()).map_err(|e| {
        let path = e.path().to_string();
        let line = doc
            .line_of(&path)
            .map_or(String::new(), |l| format!(" line {l}:"));
        format!("{name}:{line} {path}: {}", e.into_inner())
    })?;
    Ok((rules, doc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_count_from_one_across_findings() {
        let set = rule_set(None, false).unwrap();
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
        let cases = [
            (
                "- id: a\n  category: secret\n  regex: x\n  keyword: [x]\n",
                "line 4: [0]",
                "unknown field `keyword`",
            ),
            (
                "- id: mine\n  category: secret\n  regex: x\n- id: aws-access-key-id\n  category: secret\n  regex: x\n",
                "line 4: [1].id",
                "duplicate id",
            ),
            (
                "- id: b\n  category: secret\n  regex: '('\n",
                "line 3: [0].regex (rule `b`)",
                "unclosed group",
            ),
        ];
        for (i, (yaml, where_, what)) in cases.iter().enumerate() {
            let path = dir.join(format!("r{i}.yaml"));
            std::fs::write(&path, yaml).unwrap();
            let e = rule_set(Some(&path), false).err().unwrap();
            assert!(
                e.starts_with(&path.display().to_string())
                    && e.contains(where_)
                    && e.contains(what),
                "{e}"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
