//! Scan cost, printed, never asserted: compiling the built-in rules, scanning a 64 KB
//! coding-agent request (source code and terminal output), and a 200-turn session that
//! resends its whole history every turn, with and without the ScanCache.
//!
//! `cargo run --release -p chokepoint-guard --example scan_bench` (the guardrails test
//! layer runs it too, on its optimised dependencies, so it cannot rot).

// The tests' rules-file loader states its expectations by panicking.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use std::time::{Duration, Instant};

use chokepoint_guard::{RuleSet, ScanCache};

#[path = "../tests/common/mod.rs"]
mod common;

/// Source code of this crate plus terminal output, cut to `len` bytes on a char boundary.
fn agent_text(len: usize, salt: usize) -> String {
    let mut s = format!("turn {salt}: ");
    let code = [
        include_str!("../src/set.rs"),
        include_str!("../src/validate.rs"),
        include_str!("../src/cache.rs"),
        include_str!("../src/mask.rs"),
    ];
    let mut i = 0;
    while s.len() < len {
        s.push_str(code[(i + salt) % code.len()]);
        s.push_str(&format!(
            "\n$ cargo test -p app 2>&1 | tail\n   Compiling app v0.{salt}.{i} (/home/dev/app)\n    \
             Finished `test` profile [unoptimized + debuginfo] target(s) in 4.{i}2s\n     \
             Running unittests src/lib.rs (target/debug/deps/app-{salt:08x}{i:08x})\n\
             test result: ok. {i} passed; 0 failed; 0 ignored; finished in 0.0{i}s\n\
             $ git log --oneline -3\n{:040x} fix retry\n{:040x} bump deps\n",
            salt * 7919 + i,
            salt * 104729 + i
        ));
        i += 1;
    }
    let mut end = len.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s
}

fn per_second(bytes: usize, d: Duration) -> String {
    format!("{:.1} MB/s", bytes as f64 / d.as_secs_f64() / 1e6)
}

fn main() -> Result<(), String> {
    let rules = common::builtin_rules();
    let t = Instant::now();
    let set = RuleSet::compile(rules).map_err(|e| e.to_string())?;
    println!(
        "compile {} rules: {:.1} ms",
        set.len(),
        t.elapsed().as_secs_f64() * 1e3
    );

    let text = agent_text(64 * 1024, 1);
    let findings = set.scan(&text).len();
    let rounds = 50;
    let t = Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(set.scan(std::hint::black_box(&text)));
    }
    let d = t.elapsed();
    println!(
        "scan 64 KB agent request: {:.2} ms each, {} ({findings} findings)",
        d.as_secs_f64() * 1e3 / f64::from(rounds),
        per_second(text.len() * rounds as usize, d)
    );

    // Where the time goes: each rule alone over the same text.
    let mut alone: Vec<(Duration, String)> = common::builtin_rules()
        .into_iter()
        .map(|r| {
            let id = r.id.clone();
            let one = RuleSet::compile(vec![r]).unwrap();
            let t = Instant::now();
            for _ in 0..5 {
                std::hint::black_box(one.scan(&text));
            }
            (t.elapsed() / 5, id)
        })
        .collect();
    alone.sort();
    let slowest: Vec<String> = alone
        .iter()
        .rev()
        .take(6)
        .map(|(d, id)| format!("{id} {:.2} ms", d.as_secs_f64() * 1e3))
        .collect();
    println!("slowest rules alone: {}", slowest.join(", "));

    // 200 turns, each adding a 2 KB block (a prompt and a tool's output) to the history
    // the client resends whole.
    let blocks: Vec<String> = (0..200).map(|i| agent_text(2048, i + 2)).collect();
    let (mut bytes, t) = (0usize, Instant::now());
    for turn in 1..=blocks.len() {
        for b in &blocks[..turn] {
            bytes += b.len();
            std::hint::black_box(set.scan(b));
        }
    }
    let uncached = t.elapsed();
    let mut cache = ScanCache::new([42; 16], 4096, 16 << 20);
    let t = Instant::now();
    for turn in 1..=blocks.len() {
        for b in &blocks[..turn] {
            std::hint::black_box(cache.scan(&set, b));
        }
    }
    let cached = t.elapsed();
    println!(
        "200-turn session ({:.1} MB resent in all): {:.0} ms scanning every turn, {:.0} ms with the cache ({} scans, {} hits)",
        bytes as f64 / 1e6,
        uncached.as_secs_f64() * 1e3,
        cached.as_secs_f64() * 1e3,
        cache.misses(),
        cache.hits()
    );
    Ok(())
}
