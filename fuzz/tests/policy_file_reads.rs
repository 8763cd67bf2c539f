//! The policy file names files the renderer reads (`issuers[*].jwks.file`). The fuzz
//! target keeps those inside a scratch directory, so these two inputs, found by review,
//! are checked here instead: a path to an endless file and one to a FIFO must be refused
//! quickly and within the fuzzer's memory bound, not read without limit or waited on
//! forever. Each runs in a child process with the fuzzer's bounds (see `common`).

mod common;

use std::path::{Path, PathBuf};

use chokepoint_render::policy::Policy;

/// A policy that is valid but for the file its issuer's keys are read from.
fn policy_naming(file: &str) -> String {
    format!(
        "version: 1\n\
         issuers:\n  - issuer: https://idp.test\n    audiences: [chokepoint]\n    jwks: {{file: '{file}'}}\n\
         providers:\n  - {{name: openai, kind: openai, base_url: 'https://api.openai.com/v1', key_env: OPENAI_API_KEY}}\n\
         models:\n  routes:\n    - {{model: 'gpt-*', providers: [openai]}}\n\
         policy_service: {{url: 'http://127.0.0.1:8081'}}\n"
    )
}

#[test]
fn parse_one() {
    let Some(file) = common::child_payload() else {
        return; // Not a child: nothing to do.
    };
    let result = Policy::parse(&policy_naming(&file), "policy.yaml", Path::new("/"));
    let err = result
        .map(|_| ())
        .expect_err("an unreadable key file is an error");
    assert_eq!(err.field, "issuers[0].jwks.file");
    common::check_peak_rss();
}

fn scratch() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("policy-file-reads");
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

#[test]
fn an_endless_key_file_is_refused_within_bounds() {
    if let Err(why) = common::run_child("parse_one", "/dev/zero") {
        panic!("jwks.file: /dev/zero: {why}");
    }
}

#[test]
fn a_fifo_key_file_is_refused_without_waiting() {
    let fifo = scratch().join("jwks.fifo");
    let _ = std::fs::remove_file(&fifo);
    let c = std::ffi::CString::new(fifo.to_string_lossy().as_bytes()).expect("no NUL");
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    let outcome = common::run_child("parse_one", &fifo.to_string_lossy());
    let _ = std::fs::remove_file(&fifo);
    if let Err(why) = outcome {
        panic!("jwks.file: a FIFO: {why}");
    }
}
