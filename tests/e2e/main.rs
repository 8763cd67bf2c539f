//! End to end through the real stack: Envoy 1.40 with the built filter, the policy
//! service, Redis and the mock provider, each a real process on loopback ports chosen at
//! run time. Needs `cargo build` of the binaries and the release `.wasm` first
//! (`scripts/test` does both). On failure every component's log is printed.

mod accounting;
mod budgets;
mod fallback;
mod guardrail_answers;
mod guardrail_service;
mod guardrails;
mod identity;
mod leases;
mod outage;
mod policy_auth;
mod policy_file;
mod protocol;
mod request_path;
mod routing;
mod security;
mod support;
mod tls_fixtures;
mod upstream_tls;
