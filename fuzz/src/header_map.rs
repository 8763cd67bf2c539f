//! Envoy's serialized header maps as the filter reads them (`filter/src/wasm/header_pairs.rs`:
//! request headers a client sent, response headers a provider sent), from arbitrary bytes.
//!
//! Invariants: a map that parses serializes back to bytes that parse to the same pairs
//! (values that were not UTF-8 come back as their lossy text), and `text` keeps a value
//! that is UTF-8 exactly as it was.

use chokepoint_filter::wasm::header_pairs::{parse, serialize, text};

pub fn run(data: &[u8]) {
    if let Some(pairs) = parse(data) {
        let borrowed: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        assert_eq!(parse(&serialize(&borrowed)).as_ref(), Some(&pairs));
    }
    let value = text(data.to_vec());
    if let Ok(utf8) = std::str::from_utf8(data) {
        assert_eq!(value, utf8);
    }
}
