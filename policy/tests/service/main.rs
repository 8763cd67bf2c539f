//! The policy service end to end, against a real redis-server each test starts itself.
//!
//! One test binary with modules, rather than one binary per file, so the crate's heavy
//! dependencies are linked once.

mod admin_limits;
mod authorize;
mod bad_requests;
mod budgets;
mod cli;
mod gateway_auth;
mod health;
mod leases;
mod limits;
mod persistence;
mod redis_outage;
mod support;
mod usage;
mod usage_chunks;
