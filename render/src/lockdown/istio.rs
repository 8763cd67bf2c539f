//! The Istio lockdown: the opted-in namespaces' sidecars reach only what the mesh's
//! registry holds, and the egress gateway serves the provider hosts to the gateway alone.

use serde_json::{json, Value};

use super::{meta, namespaces};
use crate::policy::Policy;

/// A `Sidecar` per opted-in namespace, then the egress gateway's AuthorizationPolicy.
pub fn manifests(policy: &Policy) -> Result<Vec<Value>, String> {
    let mut out: Vec<Value> = namespaces(policy)?.iter().map(|ns| sidecar(ns)).collect();
    out.push(authorization_policy(policy));
    Ok(out)
}

/// The namespace's default `Sidecar` (no `workloadSelector`): `REGISTRY_ONLY` makes its
/// proxies send a request for a host that no ServiceEntry or Service they can see
/// declares to the BlackHoleCluster (a 502 for HTTP, a reset for TLS) instead of
/// passing it through. The provider ServiceEntries are exported to the gateway's
/// namespace only (`crate::istio::routing`), so the provider hosts are not in these
/// proxies' registry; the gateway's own host name is a mesh Service, so it stays
/// reachable. (istio/api `networking/v1alpha3/sidecar.proto`, OutboundTrafficPolicy.)
fn sidecar(namespace: &str) -> Value {
    json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "Sidecar",
        "metadata": meta(namespace),
        "spec": {"outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}},
    })
}

/// Istio enforces an AuthorizationPolicy in the proxy that receives the traffic; a
/// provider outside the mesh has none, so the one proxy that can refuse provider egress
/// by caller identity is an egress gateway that mesh traffic to those hosts goes through
/// (over mTLS, so the caller's identity is known). On it: DENY a request for a provider
/// or MCP server host from any service account but the gateway's. DENY rather than
/// ALLOW, so the egress gateway's other traffic is untouched (an ALLOW policy on a
/// workload refuses everything it does not match).
///
/// `hosts` is an HTTP field: it applies where the egress gateway terminates the mTLS and
/// sees the request (TLS origination at the egress gateway). On a TCP filter chain (TLS
/// passed through by SNI), istiod drops an HTTP-only field from a DENY rule, which makes
/// the rule wider, not narrower: there it refuses every other service account
/// (istio/istio `pilot/pkg/security/authz/model/model.go`, `rule.checkError`). A
/// `targetRefs` policy on the provider ServiceEntry would instead need an ambient
/// waypoint serving it, which the gateway (a sidecar-mode deployment) does not use
/// (istio/api `security/v1beta1/authorization_policy.proto`, `targetRefs`).
fn authorization_policy(policy: &Policy) -> Value {
    let d = &policy.deploy;
    let l = &d.lockdown;
    let mut hosts: Vec<String> = Vec::new();
    // MCP servers too: a workload must not reach a tool server around the gateway's
    // rules either.
    let routed = policy.upstreams().into_iter().filter(|u| u.routed());
    for u in routed {
        // The Host header may carry the port; `host:*` matches it by prefix
        // (istio/istio `pilot/pkg/security/authz/matcher/header.go`, HostMatcher).
        for h in [u.url.host.clone(), format!("{}:*", u.url.host)] {
            if !hosts.contains(&h) {
                hosts.push(h);
            }
        }
    }
    json!({
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": meta(&l.egress_namespace),
        "spec": {
            "selector": {"matchLabels": l.egress_selector},
            "action": "DENY",
            "rules": [{
                // `<namespace>/<service account>`: the gateway's, whatever the trust domain.
                "from": [{"source": {"notServiceAccounts": [
                    format!("{}/{}", d.istio_namespace, l.gateway_service_account)
                ]}}],
                "to": [{"operation": {"hosts": hosts}}],
            }],
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::policy::example;

    /// One REGISTRY_ONLY Sidecar per opted-in namespace, none elsewhere, and one DENY
    /// policy on the egress gateway naming every provider host and only the gateway's
    /// account as the exception.
    #[test]
    fn sidecars_per_namespace_and_one_deny_on_the_egress_gateway() {
        let policy = example();
        let docs = manifests(&policy).unwrap();
        let namespaces = &policy.deploy.lockdown.namespaces;
        assert!(!namespaces.is_empty());
        let sidecars: Vec<&Value> = docs.iter().filter(|d| d["kind"] == "Sidecar").collect();
        assert_eq!(sidecars.len(), namespaces.len());
        for (s, ns) in sidecars.iter().zip(namespaces) {
            assert_eq!(s["metadata"]["namespace"], ns.as_str());
            assert_eq!(s["spec"]["outboundTrafficPolicy"]["mode"], "REGISTRY_ONLY");
            assert!(s["spec"].get("workloadSelector").is_none(), "{s}");
        }
        let ap = docs.last().unwrap();
        assert_eq!(ap["kind"], "AuthorizationPolicy");
        assert_eq!(ap["metadata"]["namespace"], "istio-system");
        assert_eq!(
            ap["spec"]["selector"]["matchLabels"],
            json!({"istio": "egressgateway"})
        );
        assert_eq!(ap["spec"]["action"], "DENY");
        assert_eq!(
            ap["spec"]["rules"][0]["from"],
            json!([{"source": {"notServiceAccounts": ["istio-system/istio-ingressgateway-service-account"]}}])
        );
        let hosts = ap["spec"]["rules"][0]["to"][0]["operation"]["hosts"]
            .as_array()
            .unwrap();
        for p in &policy.providers {
            assert!(hosts.contains(&json!(p.url.host)), "{}", p.url.host);
            assert!(hosts.contains(&json!(format!("{}:*", p.url.host))));
        }
        // openai and openai-backup share a host: listed once.
        assert_eq!(hosts.len(), 2 * 4, "{hosts:?}");
    }

    /// The provider hosts reach no other namespace's registry: every ServiceEntry and
    /// DestinationRule the routing renders is exported to the gateway's namespace only,
    /// and routing plus lockdown hold one ServiceEntry per host.
    #[test]
    fn provider_hosts_stay_in_the_gateways_namespace() {
        let policy = example();
        let mut docs = crate::istio::routing(&policy);
        docs.extend(manifests(&policy).unwrap());
        let mut hosts = Vec::new();
        for d in &docs {
            if d["kind"] == "ServiceEntry" || d["kind"] == "DestinationRule" {
                assert_eq!(d["spec"]["exportTo"], json!(["."]), "{d}");
                assert_eq!(d["metadata"]["namespace"], "istio-system");
            }
            if d["kind"] == "ServiceEntry" {
                hosts.extend(d["spec"]["hosts"].as_array().unwrap().clone());
            }
        }
        let mut unique = hosts.clone();
        unique.sort_by_key(|h| h.to_string());
        unique.dedup();
        assert_eq!(hosts.len(), unique.len(), "{hosts:?}");
        for p in &policy.providers {
            assert!(hosts.contains(&json!(p.url.host)), "{}", p.url.host);
        }
    }

    #[test]
    fn no_namespace_no_lockdown() {
        let mut policy = example();
        policy.deploy.lockdown.namespaces.clear();
        let err = manifests(&policy).unwrap_err();
        assert!(err.contains("deploy.lockdown.namespaces"), "{err}");
    }
}
