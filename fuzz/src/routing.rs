//! What the filter reads from the request line and the model name: the endpoint
//! (`filter/src/providers/api.rs`), the model in a Gemini or Azure path, and the model route table
//! with its `*` globs (`filter/src/providers/routes.rs`).
//!
//! Layout: byte 0 picks the caller's tenant and groups; the rest is
//! `path \n model \n glob-pattern \n text`.
//!
//! Invariants: `glob_match` agrees with a reference matcher (dynamic programming over
//! bytes); the model found in a path is a piece of that path; a resolved route's
//! model matches its pattern, and a visible model resolves.

use chokepoint_filter::config::Config;
use chokepoint_filter::providers::apis::{classify, model_in_path};
use chokepoint_filter::providers::glob::glob_match;
use chokepoint_filter::providers::routes::RouteTable;

use crate::fixtures;

thread_local! {
    static TABLE: RouteTable = Config::parse(fixtures::config_json().to_string().as_bytes())
        .expect("the fuzz configuration is valid")
        .routes
        .expect("it has routes");
}

/// `*` matches any run of bytes, everything else itself.
pub fn reference_glob(pattern: &[u8], text: &[u8]) -> bool {
    // row[j]: pattern[..i] matches text[..j]
    let mut row = vec![false; text.len() + 1];
    row[0] = true;
    for &p in pattern {
        let mut next = vec![false; text.len() + 1];
        if p == b'*' {
            let mut any = false;
            for j in 0..=text.len() {
                any |= row[j];
                next[j] = any;
            }
        } else {
            for j in 1..=text.len() {
                next[j] = row[j - 1] && text[j - 1] == p;
            }
        }
        row = next;
    }
    row[text.len()]
}

const TENANTS: [Option<&str>; 4] = [None, Some("acme"), Some("other"), Some("")];

pub fn run(data: &[u8]) {
    let Some((&who, rest)) = data.split_first() else {
        return;
    };
    let text = crate::text(rest);
    let mut parts = text.splitn(4, '\n');
    let path = parts.next().unwrap_or("");
    let model = parts.next().unwrap_or("");
    let pattern = parts.next().unwrap_or("");
    let subject = parts.next().unwrap_or("");

    let _ = classify(path);
    if let Some(m) = model_in_path(path) {
        assert!(!m.is_empty() && path.contains(m));
    }

    // Bounded so the reference matcher stays cheap.
    if pattern.len() <= 256 && subject.len() <= 1024 {
        assert_eq!(
            glob_match(pattern, subject),
            reference_glob(pattern.as_bytes(), subject.as_bytes()),
            "glob_match({pattern:?}, {subject:?})"
        );
    }

    let tenant = TENANTS[usize::from(who % 4)];
    let groups: Vec<String> = ["research", "admins", "ml"]
        .iter()
        .enumerate()
        .filter(|(i, _)| who >> (2 + i) & 1 == 1)
        .map(|(_, g)| g.to_string())
        .collect();
    TABLE.with(|table| {
        if let Ok((resolved, route)) = table.resolve(model, tenant, &groups) {
            assert!(!route.providers.is_empty());
            if route.glob {
                assert!(glob_match(&route.pattern, resolved));
            } else {
                assert_eq!(route.pattern, resolved);
            }
        }
        for (name, _) in table.visible_models(tenant, &groups) {
            assert!(
                table.resolve(name, tenant, &groups).is_ok(),
                "{name} visible"
            );
        }
    });
}
