//! The policy service end to end, against a real redis-server each test starts itself.
//!
//! One test binary with modules, rather than one binary per file, so the crate's heavy
//! dependencies are linked once.

mod authorize;
mod bad_requests;
mod health;
mod redis_outage;
mod support;
mod usage;
