//! The Kubernetes lockdown, for clusters without Istio: each opted-in namespace's pods may
//! open connections to DNS and to the gateway's proxy pods, nothing else.
//!
//! NetworkPolicies add up: any other policy that selects these pods and allows more
//! egress (to the internet, say) opens that too. The CNI must enforce NetworkPolicy.

use serde_json::{json, Value};

use super::{meta, namespaces};
use crate::network_policy::envoy_gateway_proxy_labels;
use crate::policy::Policy;

/// Where cluster DNS runs: kube-system's pods labelled as CoreDNS and kube-dns label
/// themselves in the upstream manifests (kubernetes `cluster/addons/dns/coredns`).
pub const DNS_NAMESPACE: &str = "kube-system";
pub const DNS_POD_LABEL: (&str, &str) = ("k8s-app", "kube-dns");

/// One NetworkPolicy per opted-in namespace, for Envoy Gateway's proxy pods.
pub fn for_envoy_gateway(policy: &Policy) -> Result<Vec<Value>, String> {
    let gateway_namespace = &policy.deploy.eg_proxy_namespace;
    let gateway_pods = envoy_gateway_proxy_labels(policy);
    Ok(namespaces(policy)?
        .iter()
        .map(|ns| network_policy(ns, gateway_namespace, &gateway_pods))
        .collect())
}

fn network_policy(namespace: &str, gateway_namespace: &str, gateway_pods: &Value) -> Value {
    let (dns_key, dns_value) = DNS_POD_LABEL;
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta(namespace),
        "spec": {
            // Every pod of the namespace, egress only: with Egress in policyTypes, what
            // the rules below do not allow is denied.
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [
                {
                    "to": [{
                        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": DNS_NAMESPACE}},
                        "podSelector": {"matchLabels": {dns_key: dns_value}},
                    }],
                    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                },
                {
                    // Any port of the proxy pods: Envoy Gateway picks their container
                    // ports from the Gateway's listeners, which the policy file does not
                    // hold, and nothing but the proxy listens on them.
                    "to": [{
                        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": gateway_namespace}},
                        "podSelector": {"matchLabels": gateway_pods},
                    }],
                },
            ],
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::policy::example;

    /// Per opted-in namespace: all pods, egress only, exactly two peers (DNS on port 53,
    /// the gateway's proxy pods in their namespace).
    #[test]
    fn each_namespace_may_reach_dns_and_the_gateway_only() {
        let policy = example();
        let docs = for_envoy_gateway(&policy).unwrap();
        assert_eq!(docs.len(), policy.deploy.lockdown.namespaces.len());
        for (np, ns) in docs.iter().zip(&policy.deploy.lockdown.namespaces) {
            assert_eq!(np["metadata"]["namespace"], ns.as_str());
            let spec = &np["spec"];
            assert_eq!(spec["podSelector"], json!({}));
            assert_eq!(spec["policyTypes"], json!(["Egress"]));
            assert!(spec.get("ingress").is_none());
            let rules = spec["egress"].as_array().unwrap();
            assert_eq!(rules.len(), 2);
            assert_eq!(
                rules[0]["to"][0]["namespaceSelector"]["matchLabels"]
                    ["kubernetes.io/metadata.name"],
                "kube-system"
            );
            assert_eq!(rules[0]["ports"].as_array().unwrap().len(), 2);
            assert_eq!(
                rules[1]["to"][0]["namespaceSelector"]["matchLabels"]
                    ["kubernetes.io/metadata.name"],
                "envoy-gateway-system"
            );
            assert_eq!(
                rules[1]["to"][0]["podSelector"]["matchLabels"]
                    ["gateway.envoyproxy.io/owning-gateway-name"],
                "eg"
            );
            assert!(rules[1].get("ports").is_none());
        }
    }
}
