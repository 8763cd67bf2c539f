//! The choke point's other half: keeping workloads from reaching the providers any way
//! but through the gateway. Rendered for the namespaces `deploy.lockdown.namespaces`
//! lists (docs/security.md says what each part covers and what it does not):
//! - Istio ([`istio`]): a `Sidecar` per namespace with `REGISTRY_ONLY` outbound traffic
//!   (the provider ServiceEntries of [`crate::istio::routing`] are exported to the
//!   gateway's namespace only, so no other sidecar has them in its registry), and an
//!   AuthorizationPolicy on the egress gateway that refuses provider hosts to every
//!   identity but the gateway's.
//! - Kubernetes ([`network_policy`]): default-deny egress for those namespaces, except
//!   DNS and the gateway's pods, for clusters without Istio (Envoy Gateway).

pub mod istio;
pub mod network_policy;

use crate::policy::Policy;

/// The namespaces to lock down, or the error a lockdown target gives when there are none.
fn namespaces(policy: &Policy) -> Result<&[String], String> {
    let ns = &policy.deploy.lockdown.namespaces;
    if ns.is_empty() {
        return Err(
            "deploy.lockdown.namespaces lists no namespace: there is nothing to lock down".into(),
        );
    }
    Ok(ns)
}

/// The name of every resource the lockdown renders, in whichever namespace.
const NAME: &str = "chokepoint-lockdown";

fn meta(namespace: &str) -> serde_json::Value {
    serde_json::json!({
        "name": NAME,
        "namespace": namespace,
        "labels": {"app.kubernetes.io/part-of": "chokepoint"},
    })
}
