//! Guardrails beyond the request's own scan: the call-out to an external guardrail
//! service ([`service`], with its [`verdicts`] cache), and the response side: the texts
//! of a whole answer ([`answer`]) and of a stream as it passes ([`stream`]), which a
//! stream is ended on when a check blocks.
//!
//! Pure logic, like the rest of the filter: no hostcalls; the flow calls these.

pub mod answer;
pub mod service;
pub mod stream;
pub mod verdicts;
