//! Kubernetes NetworkPolicy for the policy service's pods: its gateway port only from the
//! gateway's proxy pods, its admin port only from pods labelled as admin clients; and for
//! an in-cluster Redis: its port only from the policy service's pods.
//!
//! The gateway token is what authenticates the gateway; this keeps everything else in the
//! cluster from reaching the service at all (a leaked token is then not enough on its
//! own, and nobody can probe the admin API). It needs a CNI that enforces NetworkPolicy
//! and these labels on the pods:
//! - the policy service's pods: [`POLICY_POD_LABEL`];
//! - whatever calls the admin API or scrapes `/metrics` (the CLI's pod, Prometheus), in
//!   any namespace: [`ADMIN_CLIENT_LABEL`].

use serde_json::{json, Value};

use crate::policy::Policy;

/// The label the policy service's pods must carry.
pub const POLICY_POD_LABEL: (&str, &str) = ("app.kubernetes.io/name", "chokepoint-policy");

/// The label of pods allowed to reach the admin listener.
pub const ADMIN_CLIENT_LABEL: (&str, &str) = ("chokepoint-policy-admin", "true");

/// The policy service's admin listener as deployed (`serve --admin-listen`'s default port).
pub const POLICY_ADMIN_PORT: u16 = 8082;

/// Istio: the gateway port from the ingress gateway's pods (`deploy.istio.selector` in
/// `deploy.istio.namespace`).
pub fn for_istio(policy: &Policy) -> Value {
    let d = &policy.deploy;
    network_policy(policy, &d.istio_namespace, json!(d.istio_selector))
}

/// Envoy Gateway: the gateway port from the proxy pods Envoy Gateway runs for
/// `deploy.envoy_gateway.gateway`, labelled as its proxy code labels them, in
/// `deploy.envoy_gateway.proxy_namespace`.
pub fn for_envoy_gateway(policy: &Policy) -> Value {
    let d = &policy.deploy;
    network_policy(
        policy,
        &d.eg_proxy_namespace,
        envoy_gateway_proxy_labels(policy),
    )
}

/// The labels Envoy Gateway puts on the proxy pods of `deploy.envoy_gateway.gateway`.
pub fn envoy_gateway_proxy_labels(policy: &Policy) -> Value {
    let d = &policy.deploy;
    json!({
        "app.kubernetes.io/name": "envoy",
        "app.kubernetes.io/component": "proxy",
        "app.kubernetes.io/managed-by": "envoy-gateway",
        "gateway.envoyproxy.io/owning-gateway-name": d.eg_gateway,
        "gateway.envoyproxy.io/owning-gateway-namespace": d.namespace,
    })
}

fn network_policy(policy: &Policy, gateway_namespace: &str, gateway_pods: Value) -> Value {
    let d = &policy.deploy;
    let (pod_key, pod_value) = POLICY_POD_LABEL;
    let (admin_key, admin_value) = ADMIN_CLIENT_LABEL;
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": "chokepoint-policy",
            "namespace": d.namespace,
            "labels": {"app.kubernetes.io/part-of": "chokepoint"},
        },
        "spec": {
            "podSelector": {"matchLabels": {pod_key: pod_value}},
            // Ingress only: the service's own way out (Redis, DNS) is left as it was.
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [{
                        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": gateway_namespace}},
                        "podSelector": {"matchLabels": gateway_pods},
                    }],
                    "ports": [{"protocol": "TCP", "port": policy.policy_service.url.port}],
                },
                {
                    "from": [{
                        "namespaceSelector": {},
                        "podSelector": {"matchLabels": {admin_key: admin_value}},
                    }],
                    "ports": [{"protocol": "TCP", "port": POLICY_ADMIN_PORT}],
                },
            ],
        }
    })
}

/// Redis (the pods labelled `app.kubernetes.io/name: <redis>`): its port only from the
/// policy service's pods of the same namespace. Redis has no password here; this is what
/// keeps every other pod from reading or rewriting the ledger and the budgets.
pub fn for_redis(policy: &Policy, redis: &str, port: u16) -> Value {
    let (pod_key, pod_value) = POLICY_POD_LABEL;
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": redis,
            "namespace": policy.deploy.namespace,
            "labels": {"app.kubernetes.io/part-of": "chokepoint"},
        },
        "spec": {
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": redis}},
            "policyTypes": ["Ingress"],
            "ingress": [{
                // A podSelector alone: pods of the policy's own namespace only.
                "from": [{"podSelector": {"matchLabels": {pod_key: pod_value}}}],
                "ports": [{"protocol": "TCP", "port": port}],
            }],
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::policy::example;

    /// Each port opens to exactly one peer, and the gateway's peer is the target's
    /// proxy pods in their namespace.
    #[test]
    fn each_port_opens_to_one_peer() {
        let policy = example();
        let gateway_port = policy.policy_service.url.port;
        let cases = [
            (
                for_istio(&policy),
                "istio-system",
                json!({"istio": "ingressgateway"}),
            ),
            (
                for_envoy_gateway(&policy),
                "envoy-gateway-system",
                json!({
                    "app.kubernetes.io/name": "envoy",
                    "app.kubernetes.io/component": "proxy",
                    "app.kubernetes.io/managed-by": "envoy-gateway",
                    "gateway.envoyproxy.io/owning-gateway-name": "eg",
                    "gateway.envoyproxy.io/owning-gateway-namespace": "chokepoint",
                }),
            ),
        ];
        for (np, namespace, pods) in cases {
            let spec = &np["spec"];
            assert_eq!(np["metadata"]["namespace"], "chokepoint");
            assert_eq!(
                spec["podSelector"]["matchLabels"]["app.kubernetes.io/name"],
                "chokepoint-policy"
            );
            assert_eq!(spec["policyTypes"], json!(["Ingress"]));
            let rules = spec["ingress"].as_array().unwrap();
            assert_eq!(rules.len(), 2, "{np}");
            let gateway = &rules[0];
            assert_eq!(
                gateway["ports"],
                json!([{"protocol": "TCP", "port": gateway_port}])
            );
            assert_eq!(gateway["from"].as_array().unwrap().len(), 1);
            let from = &gateway["from"][0];
            assert_eq!(
                from["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
                namespace
            );
            assert_eq!(from["podSelector"]["matchLabels"], pods);
            let admin = &rules[1];
            assert_eq!(admin["ports"], json!([{"protocol": "TCP", "port": 8082}]));
            assert_eq!(
                admin["from"],
                json!([{"namespaceSelector": {}, "podSelector": {"matchLabels": {"chokepoint-policy-admin": "true"}}}])
            );
        }
    }

    /// Redis opens its one port to the policy service's pods of its own namespace only
    /// (no namespaceSelector: a pod elsewhere with the same label stays out).
    #[test]
    fn redis_opens_only_to_the_policy_service() {
        let mut policy = example();
        for namespace in ["chokepoint", "ai-gateway"] {
            policy.deploy.namespace = namespace.into();
            let np = for_redis(&policy, "chokepoint-redis", 6379);
            assert_eq!(np["metadata"]["namespace"], namespace);
            let spec = &np["spec"];
            assert_eq!(
                spec["podSelector"],
                json!({"matchLabels": {"app.kubernetes.io/name": "chokepoint-redis"}})
            );
            assert_eq!(spec["policyTypes"], json!(["Ingress"]));
            assert_eq!(
                spec["ingress"],
                json!([{
                    "from": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "chokepoint-policy"}}}],
                    "ports": [{"protocol": "TCP", "port": 6379}],
                }])
            );
        }
    }
}
