//! The performance tools' machinery: a bounded HTTP load and per-process CPU and memory
//! ([`bench`]), instruction counts from callgrind ([`callgrind`]), the configurations chokepoint is measured against ([`reference_envoy`],
//! [`peers`]) and the soak's traffic mix and verdicts ([`soak`]). Each starts the same
//! stack `scripts/run` does (`chokepoint_dev::stack`).

pub mod bench;
pub mod callgrind;
pub mod peers;
pub mod reference_envoy;
pub mod soak;
pub mod variants;
