//! chokepoint's policy file and everything rendered from it.
//!
//! One YAML file is the admin's source of truth; [`policy::Policy::load`] validates it
//! (errors name the field and line), and the renderers turn it into the filter's plugin
//! configuration, an Envoy bootstrap, Istio and Envoy Gateway manifests, the policy
//! service's limits and the compose file. `scripts/run`, the tests and the committed
//! examples all go through these functions.

pub mod bundle;
pub mod compose;
pub mod delivery;
pub mod emit;
pub mod envoy;
pub mod files;
pub mod gateway;
pub mod identity;
pub mod istio;
pub mod kubernetes;
pub mod lockdown;
pub mod network_policy;
pub mod otlp;
pub mod overrides;
pub mod plugin;
pub mod policy;
pub mod policy_cluster;
pub mod policy_file;
pub mod tls;
pub mod url;
pub mod yaml;

#[cfg(test)]
mod guardrails_tests;
