//! High availability against real processes: several gateway replicas behind a
//! balancer, several policy service instances, parts killed under load. Each test ends
//! with the soak's check, ledger = the access logs of every replica added.

mod replicas;
mod support;
