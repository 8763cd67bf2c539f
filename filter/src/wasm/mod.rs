//! The thin proxy-wasm layer: Context impls that move bytes between Envoy and the
//! host-free request logic in [`crate::flow`]. No decisions are made here.

mod abi;
pub mod header_pairs;
mod http;
mod metrics;
mod proxy_host;
mod root;
mod shared;
mod upstream;

pub use root::Root;
