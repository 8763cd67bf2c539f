//! The filter's policy-service cluster when the policy file names several instances
//! (`policy_service.endpoints`): one endpoint each, round robin, each instance's
//! `/healthz` (a live Redis PING: healthy means "can decide") checked every second, and
//! an instance that fails two callouts in a row ejected at once, so a dead instance
//! stops getting callouts within milliseconds.
//!
//! The filter's callouts are Envoy async-client requests, which carry no retry policy:
//! the callouts in flight to an instance that dies fail as `gateway.failure_mode` says.
//! A retry through an internal listener was tried and left out: after an instance's
//! reset in the middle of a usage batch, Envoy 1.40 kept failing that worker's new
//! connections to the internal listener, so the batch was never delivered
//! (docs/deployment.md, "Replicas and several policy service instances").

use serde_json::{json, Value};

use crate::plugin::POLICY_CLUSTER;
use crate::policy::Policy;
use crate::tls;

/// Whether the policy file names several instances.
pub fn balanced(policy: &Policy) -> bool {
    !policy.policy_service.endpoints.is_empty()
}

/// The filter's cluster of the instances: one endpoint each, `/healthz` checked every
/// second, ejected after two failed connections or resets, or three 5xx, in a row.
pub fn instances_cluster(policy: &Policy) -> Value {
    let name = POLICY_CLUSTER;
    let ps = &policy.policy_service;
    let endpoints: Vec<Value> = ps
        .endpoints
        .iter()
        .map(|u| {
            let mut e =
                json!({"address": {"socket_address": {"address": u.host, "port_value": u.port}}});
            if !u.is_ip() {
                e["hostname"] = json!(u.authority());
            }
            json!({"endpoint": e})
        })
        .collect();
    let mut c = json!({
        "name": name,
        "connect_timeout": "1s",
        "lb_policy": "ROUND_ROBIN",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": endpoints}]},
        "health_checks": [{
            "timeout": "1s",
            "interval": "1s",
            // Not Envoy's 60 s before the first callout: a check that failed while
            // Envoy was starting would keep an instance out for a minute.
            "no_traffic_interval": "1s",
            // Two failed checks take an instance out (outlier detection is faster for
            // one that died); one good check brings it back.
            "unhealthy_threshold": 2,
            "healthy_threshold": 1,
            "http_health_check": {"path": "/healthz", "host": ps.url.authority()},
        }],
        // An instance taken out leaves the workers' host sets at once: with Envoy's
        // default 1 s of merged updates, a killed instance kept getting callouts for that
        // second (about a thousand failed requests in the ha test, four without).
        "common_lb_config": {"update_merge_window": "0s"},
        "outlier_detection": {
            // Connect failures and resets count apart from the answers: two in a row eject
            // an instance that went away before its next health check says so.
            "split_external_local_origin_errors": true,
            "consecutive_local_origin_failure": 2,
            "enforcing_consecutive_local_origin_failure": 100,
            "consecutive_5xx": 3,
            "interval": "1s",
            "base_ejection_time": "5s",
            // Of two instances one may go; the last is never ejected by this alone.
            "max_ejection_percent": 50,
        },
    });
    if ps.endpoints.iter().all(|u| u.is_ip()) {
        c["type"] = json!("STATIC");
    } else {
        c["type"] = json!("STRICT_DNS");
        c["dns_lookup_family"] = json!("V4_PREFERRED");
    }
    if ps.url.tls {
        c["transport_socket"] = tls::envoy_transport_socket(&ps.url, None);
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envoy::{bootstrap, BootstrapParams, Code, Delivery};
    use crate::url::Url;

    fn boot(p: &Policy) -> Value {
        bootstrap(
            p,
            &BootstrapParams {
                listen_address: "127.0.0.1".into(),
                gateway_port: 10000,
                admin_address: "127.0.0.1".into(),
                admin_port: 9901,
                code: Code::Local("/f.wasm".into()),
                delivery: Delivery::Inline,
            },
        )
    }

    fn cluster<'a>(b: &'a Value, name: &str) -> Option<&'a Value> {
        b["static_resources"]["clusters"]
            .as_array()?
            .iter()
            .find(|c| c["name"] == name)
    }

    /// One instance renders as before (one endpoint, no checks); several become the
    /// filter's cluster with one endpoint each, health checks and outlier detection.
    #[test]
    fn several_instances_are_checked_and_ejected() {
        let one = crate::policy::example();
        let b = boot(&one);
        let c = cluster(&b, POLICY_CLUSTER).unwrap();
        assert!(c.get("health_checks").is_none(), "{c}");
        assert!(c.get("outlier_detection").is_none(), "{c}");

        let mut two = one.clone();
        two.policy_service.endpoints = vec![
            Url::parse("http://10.0.0.1:8081").unwrap(),
            Url::parse("http://policy-b.chokepoint.svc:8081").unwrap(),
        ];
        let b = boot(&two);
        let c = cluster(&b, POLICY_CLUSTER).unwrap();
        let eps = c["load_assignment"]["endpoints"][0]["lb_endpoints"]
            .as_array()
            .unwrap();
        let hosts: Vec<&Value> = eps
            .iter()
            .map(|e| &e["endpoint"]["address"]["socket_address"]["address"])
            .collect();
        assert_eq!(hosts, ["10.0.0.1", "policy-b.chokepoint.svc"]);
        assert_eq!(c["type"], "STRICT_DNS", "a host name among them");
        assert_eq!(
            c["health_checks"][0]["http_health_check"]["path"],
            "/healthz"
        );
        assert_eq!(
            c["health_checks"][0]["http_health_check"]["host"],
            two.policy_service.url.authority()
        );
        assert_eq!(
            c["outlier_detection"]["consecutive_local_origin_failure"],
            2
        );
        assert_eq!(c["common_lb_config"]["update_merge_window"], "0s");
        // The filter's configuration names the same cluster either way.
        let filter = crate::plugin::plugin_config(&two, crate::plugin::Target::Envoy);
        assert_eq!(filter["policy"]["cluster"], POLICY_CLUSTER);
    }
}
