//! chokepoint's proxy-wasm filter.
//!
//! One folder per concern: [`identity`] (who is calling), [`providers`] (where the call
//! goes and in which API's terms), [`admission`] (whether it may go), [`accounting`]
//! (what it cost, and the record of it), [`guardrails`] (what the request may not
//! carry out), driven by [`flow`], one state machine per
//! request. All of it is host-free, never imports `proxy_wasm` and is unit-tested
//! natively against the [`host::Host`] trait; [`wasm`] is the thin layer of proxy-wasm
//! contexts that drives it in Envoy.

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
pub mod admission;
pub mod auth_state;
pub mod background;
pub mod config;
pub mod flow;
pub mod guardrails;
pub mod host;
pub mod identity;
pub mod mcp;
pub mod providers;
pub mod runtime;
#[cfg(test)]
mod testing;
pub mod wasm;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn proxy_wasm::traits::RootContext> {
        Box::<wasm::Root>::default()
    });
}}
