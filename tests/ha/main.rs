//! High availability through the real stack (Envoy 1.40 with the built filter, the policy
//! service, Redis, the mock provider): a part dies under load, and the ledger still
//! equals the access log. Needs the binaries and the release `.wasm` built first
//! (`scripts/test ha` does both). On failure every component's log is printed.

mod reconcile;
