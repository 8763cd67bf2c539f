//! Every committed input, replayed through its target's body without libFuzzer, so plain
//! `cargo test` in fuzz/ checks them:
//!
//! - `regressions/<target>/`: each a crash, hang or OOM the fuzzer (or a review) once
//!   found, minimised. Each runs in a child process with the fuzzer's bounds (see
//!   `common`), so an input that still blows up fails its test instead of taking the
//!   machine's memory or hanging the suite.
//! - `corpus/<target>/`: the committed seed corpus, in process.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A seed slower than this in process is a hang waiting to happen under libFuzzer.
const SLOW_SEED: Duration = Duration::from_secs(2);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn target_fn(target: &str) -> fn(&[u8]) {
    chokepoint_fuzz::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .map(|(_, run)| *run)
        .unwrap_or_else(|| panic!("unknown target {target}"))
}

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    files.sort();
    files
}

/// The child's side: one regression input, under the memory cap, within the RSS bound.
#[test]
fn replay_one() {
    let Some(spec) = common::child_payload() else {
        return; // Not a child: nothing to do.
    };
    let (target, path) = spec.split_once('\t').expect("target<TAB>path");
    let data = std::fs::read(path).expect("readable input");
    target_fn(target)(&data);
    common::check_peak_rss();
}

fn replay_regressions(target: &str) {
    let files = inputs(&root().join("regressions").join(target));
    let failures: Vec<String> = files
        .iter()
        .filter_map(|path| {
            common::run_child("replay_one", &format!("{target}\t{}", path.display()))
                .err()
                .map(|why| format!("{}: {why}", path.display()))
        })
        .collect();
    assert!(failures.is_empty(), "{target}:\n{}", failures.join("\n"));
}

fn replay_corpus(target: &str) {
    let run = target_fn(target);
    let files = inputs(&root().join("corpus").join(target));
    assert!(!files.is_empty(), "{target}: no seed corpus");
    let mut failures = Vec::new();
    for path in &files {
        let data = std::fs::read(path).expect("readable input");
        let started = Instant::now();
        let outcome = std::panic::catch_unwind(|| run(&data));
        let took = started.elapsed();
        match outcome {
            Err(_) => failures.push(format!("{}: panicked", path.display())),
            Ok(()) if took > SLOW_SEED => {
                failures.push(format!("{}: took {took:?}", path.display()))
            }
            Ok(()) => {}
        }
    }
    assert!(failures.is_empty(), "{target}:\n{}", failures.join("\n"));
}

macro_rules! targets {
    ($($name:ident),* $(,)?) => {
        mod regressions {
            $(
                #[test]
                fn $name() {
                    super::replay_regressions(stringify!($name));
                }
            )*
        }
        mod corpus {
            $(
                #[test]
                fn $name() {
                    super::replay_corpus(stringify!($name));
                }
            )*
        }
        #[test]
        fn every_target_is_replayed() {
            let known: Vec<&str> = chokepoint_fuzz::TARGETS.iter().map(|(n, _)| *n).collect();
            assert_eq!(known, [$(stringify!($name)),*]);
        }
    };
}

targets!(
    jwt,
    jwks,
    sse,
    usage,
    request_body,
    routing,
    plugin_config,
    policy_file,
    policy_requests,
    policy_reply,
    header_map,
    mcp,
);
