//! The bodies of the fuzz targets, one module each, each a `run(data: &[u8])` that must
//! never panic, hang or allocate without bound whatever `data` is. The thin wrappers in
//! `fuzz_targets/` hand them to libFuzzer; `tests/replay.rs` runs them over the committed
//! seed corpus and every regression input with plain `cargo test`.
//!
//! Where an invariant is cheap it is asserted, so a wrong answer is a crash too: the SSE
//! parser must give the same events however the stream is cut, and so on (see each
//! module).

pub mod chunks;
pub mod fixtures;
pub mod header_map;
pub mod jwks;
pub mod jwt;
pub mod mcp;
pub mod plugin_config;
pub mod policy_file;
pub mod policy_reply;
pub mod policy_requests;
pub mod request_body;
pub mod routing;
pub mod sse;
pub mod usage;

/// A target's body.
pub type Run = fn(&[u8]);

/// Every target, by the name of its fuzz binary and its corpus directory.
pub const TARGETS: [(&str, Run); 12] = [
    ("jwt", jwt::run),
    ("jwks", jwks::run),
    ("sse", sse::run),
    ("usage", usage::run),
    ("request_body", request_body::run),
    ("routing", routing::run),
    ("plugin_config", plugin_config::run),
    ("policy_file", policy_file::run),
    ("policy_requests", policy_requests::run),
    ("policy_reply", policy_reply::run),
    ("header_map", header_map::run),
    ("mcp", mcp::run),
];

/// Splits `data` at its first `sep`: (before, after). Without one, all of it is `before`.
pub fn split_once(data: &[u8], sep: u8) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == sep) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

/// The text of `data`, invalid UTF-8 replaced (the hosts hand the parsers `&str`).
pub fn text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}
