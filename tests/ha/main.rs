//! High availability against the real stack (Envoy 1.40 with the built filter, the policy
//! service, Redis, the mock provider): several gateway replicas behind a balancer, several
//! policy service instances, parts killed under load. Each test ends with the soak's check,
//! the ledger equal to the access logs of every replica added. Needs the binaries and the
//! release `.wasm` built first (`scripts/test ha` does both). On failure every
//! component's log is printed.

mod reconcile;
mod replicas;
mod support;
