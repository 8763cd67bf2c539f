//! chokepoint's proxy-wasm filter.
//!
//! The request logic lives in host-free modules (config, jwks, jwt, identity, credentials,
//! request_body, authorize, reply, flow) that never import `proxy_wasm` and are unit-tested
//! natively; [`wasm`] is the thin layer of proxy-wasm contexts that drives them in Envoy.

// Tests may panic freely; the filter itself may not (see the clippy lints in Cargo.toml).
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

pub mod accounting;
pub mod api;
pub mod auth_state;
pub mod authorize;
pub mod config;
pub mod credentials;
pub mod delivery;
pub mod flow;
pub mod header_pairs;
pub mod host;
pub mod identity;
pub mod jwks;
pub mod jwks_sync;
pub mod jwt;
pub mod key_injection;
pub mod keystore;
pub mod lease;
pub mod outbox;
pub mod output_bound;
pub mod policy_callout;
pub mod pricing;
pub mod providers;
pub mod reply;
pub mod request_body;
pub mod routes;
pub mod rs256_key;
pub mod rsa;
pub mod runtime;
pub mod sse;
pub mod telemetry;
#[cfg(test)]
mod testing;
pub mod token_cache;
pub mod token_source;
pub mod usage;
pub mod usage_record;
pub mod wasm;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn proxy_wasm::traits::RootContext> {
        Box::<wasm::Root>::default()
    });
}}
