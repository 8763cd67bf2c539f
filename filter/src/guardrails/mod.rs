//! Guardrails: secrets and personal data found in what a request sends (and, with the
//! response side, in what comes back), then blocked, masked or flagged as each check of
//! the policy says. The detectors are `chokepoint_guard`'s rules; this module finds the
//! texts of each API's body ([`extract`]), judges them ([`judge`]) and writes the masks
//! into the body ([`splice`]). The `guard` step runs them.

pub mod config;
pub mod extract;
pub mod judge;
pub mod splice;
