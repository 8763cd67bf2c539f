//! High availability against the real stack (Envoy 1.40 with the built filter, the policy
//! service, Redis, the mock provider): several gateway replicas behind a balancer, several
//! policy service instances, a Redis failover with Sentinel, parts killed under load. Each
//! test ends with the soak's check, the ledger held to the access logs of every replica.
//! Needs the binaries and the release `.wasm` built first (`scripts/test ha` does both).
//! On failure every component's log is printed.

mod reconcile;
mod replicas;
mod sentinel;
mod support;
