//! chokepoint's guardrail detectors. Rules are data (`rules/builtin.yaml`, plus an
//! admin's own file): a regex, optional keywords that gate it, an optional validator
//! (checksums, entropy) and examples the table test runs. A [`RuleSet`] scans a text in
//! one pass per prefilter; a [`Masker`] turns findings into deterministic placeholders;
//! a [`ScanCache`] remembers findings per text block under a keyed hash.
//!
//! No proxy-wasm here: the filter, the renderer and the CLI share this crate.

mod cache;
mod mask;
mod rule;
mod set;
pub mod validate;

pub use cache::{ScanCache, MIN_CACHED_BYTES};
pub use mask::{mask, Masker};
pub use rule::{Category, Examples, Rule, Validator};
pub use set::{Finding, RuleError, RuleSet};

/// The built-in rules file, YAML as shipped (the renderer parses it with its own
/// line-aware loader).
pub const BUILTIN_YAML: &str = include_str!("../rules/builtin.yaml");
