//! The policy service end to end, against a real redis-server each test starts itself.
//!
//! One test binary with modules, rather than one binary per file, so the crate's heavy
//! dependencies are linked once.

mod admin_limits;
mod attribution;
mod authorize;
mod bad_requests;
mod budgets;
mod cli;
mod cluster;
mod dead_letters;
mod export;
mod gateway_auth;
mod health;
mod leases;
mod limits;
mod mcp;
mod model_keys;
mod persistence;
mod reconcile;
mod redis_outage;
mod sentinel;
mod spend_page;
mod stream_retention;
mod support;
mod unpriced;
mod usage;
mod usage_chunks;
mod viewer;
