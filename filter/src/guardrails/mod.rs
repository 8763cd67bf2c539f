//! Guardrails: secrets and personal data found in what a request sends and in what comes
//! back, then blocked, masked or flagged as each check of the policy says. The detectors
//! are `chokepoint_guard`'s rules; this module finds the texts of each API's body
//! ([`extract`]), judges them ([`judge`]) and writes the masks into the body ([`splice`]);
//! it calls an external guardrail service ([`service`], with its [`verdicts`] cache);
//! and on the response side it reads the texts of a whole answer ([`answer`]) and of a
//! stream as it passes ([`stream`]), which a stream is ended on when a check blocks,
//! judged by the checks on responses ([`respond`]).
//!
//! Pure logic, like the rest of the filter: no hostcalls; the flow calls these.

pub mod answer;
pub mod config;
pub mod extract;
pub mod judge;
pub mod respond;
pub mod service;
pub mod splice;
pub mod stream;
pub mod verdicts;
