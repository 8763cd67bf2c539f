//! The policy service's Redis in the cluster: a StatefulSet of one with a volume from
//! its claim template (append-only persistence: the ledger, the limits and the budgets
//! survive a restart), a headless Service for its stable name, and a NetworkPolicy that
//! admits only the policy service's pods. With `deploy.redis.external` nothing is
//! rendered: the policy service's Deployment carries the connection.

use serde_json::{json, Value};

use super::{container_security, labels, metadata, pod_security, resources, selector};
use crate::policy::{Policy, Redis};

/// The StatefulSet's, the headless Service's and the pods' name.
pub const NAME: &str = "chokepoint-redis";
pub const PORT: u16 = 6379;
/// The `redis` user of the official image (docker-library/redis, Dockerfile: `useradd
/// --uid 999`), which owns nothing in the image that Redis writes: its data is the volume.
const UID: u32 = 999;

/// The URL the policy service reaches it by: the headless Service's name, which resolves
/// to the one pod.
pub fn url(policy: &Policy) -> String {
    format!("redis://{NAME}.{}.svc:{PORT}", policy.deploy.namespace)
}

/// StatefulSet, headless Service and NetworkPolicy; nothing for an external Redis.
pub fn manifests(policy: &Policy) -> Vec<Value> {
    let Redis::InCluster {
        image,
        storage,
        storage_class,
        resources: res,
    } = &policy.deploy.redis
    else {
        return Vec::new();
    };
    let mut claim = json!({
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": storage}},
    });
    if let Some(class) = storage_class {
        claim["storageClassName"] = json!(class);
    }
    let statefulset = json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": metadata(policy, NAME, NAME),
        "spec": {
            "serviceName": NAME,
            // One primary: budgets are exact only with one writer. Replication or a managed
            // Redis is `deploy.redis.external`.
            "replicas": 1,
            "selector": selector(NAME),
            "template": {
                "metadata": {"labels": labels(NAME)},
                "spec": {
                    "automountServiceAccountToken": false,
                    "securityContext": pod_security(UID),
                    "containers": [{
                        "name": "redis",
                        "image": image,
                        // As the compose stack runs it (render/src/compose.rs), protected
                        // mode off: the NetworkPolicy decides who connects.
                        "command": ["redis-server"],
                        "args": [
                            "--port", PORT.to_string(), "--protected-mode", "no",
                            "--dir", "/data", "--appendonly", "yes", "--appendfsync", "everysec",
                        ],
                        "ports": [{"name": "redis", "containerPort": PORT, "protocol": "TCP"}],
                        "readinessProbe": {
                            "exec": {"command": ["redis-cli", "-p", PORT.to_string(), "ping"]},
                            "periodSeconds": 5,
                        },
                        "livenessProbe": {"tcpSocket": {"port": "redis"}, "periodSeconds": 10, "failureThreshold": 6},
                        "resources": resources(res),
                        "securityContext": container_security(),
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                    }],
                },
            },
            "volumeClaimTemplates": [{
                "metadata": {"name": "data", "labels": labels(NAME)},
                "spec": claim,
            }],
        },
    });
    let service = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(policy, NAME, NAME),
        "spec": {
            "clusterIP": "None",
            "selector": {"app.kubernetes.io/name": NAME},
            // `tcp-`: Istio treats it as opaque TCP (its protocol selection by port name).
            "ports": [{"name": "tcp-redis", "port": PORT, "targetPort": "redis", "protocol": "TCP"}],
        },
    });
    vec![
        statefulset,
        service,
        crate::network_policy::for_redis(policy, NAME, PORT),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::RedisConnection;

    use crate::policy::example;

    /// In the cluster: a StatefulSet whose claim template backs /data, a headless Service
    /// the policy service's URL names, and the NetworkPolicy; external: nothing.
    #[test]
    fn redis_in_the_cluster_or_nothing() {
        let base = example();
        // (what, storage class, external, kinds rendered)
        type Case<'a> = (
            &'a str,
            Option<&'a str>,
            Option<RedisConnection>,
            &'a [&'a str],
        );
        let cases: [Case; 6] = [
            (
                "default",
                None,
                None,
                &["StatefulSet", "Service", "NetworkPolicy"],
            ),
            (
                "a storage class",
                Some("fast-ssd"),
                None,
                &["StatefulSet", "Service", "NetworkPolicy"],
            ),
            (
                "external URL",
                None,
                Some(RedisConnection::Url("redis://r:6379".into())),
                &[],
            ),
            (
                "external Secret",
                None,
                Some(RedisConnection::Secret("r".into())),
                &[],
            ),
            (
                "external Sentinel",
                None,
                Some(RedisConnection::Sentinel(crate::policy::Sentinel {
                    addresses: vec!["s-0:26379".into()],
                    master_name: "mymaster".into(),
                    username: None,
                    password_secret: Some("redis-auth".into()),
                    sentinel_password_secret: None,
                    wait_replicas: None,
                })),
                &[],
            ),
            (
                "external Cluster",
                None,
                Some(RedisConnection::Cluster(crate::policy::Cluster {
                    nodes: vec!["n-0:6379".into()],
                    username: None,
                    password_secret: Some("redis-auth".into()),
                })),
                &[],
            ),
        ];
        for (what, class, external, kinds) in cases {
            let mut policy = base.clone();
            if let Redis::InCluster { storage_class, .. } = &mut policy.deploy.redis {
                *storage_class = class.map(str::to_owned);
            }
            if let Some(c) = external {
                policy.deploy.redis = Redis::External(c);
            }
            let docs = manifests(&policy);
            let got: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
            assert_eq!(got, kinds, "{what}");
            if docs.is_empty() {
                continue;
            }
            let spec = &docs[0]["spec"];
            assert_eq!(spec["replicas"], 1, "{what}");
            assert_eq!(spec["serviceName"], docs[1]["metadata"]["name"], "{what}");
            let claim = &spec["volumeClaimTemplates"][0];
            let mount = &spec["template"]["spec"]["containers"][0]["volumeMounts"][0];
            assert_eq!(
                mount,
                &json!({"name": claim["metadata"]["name"], "mountPath": "/data"})
            );
            assert_eq!(
                claim["spec"]["resources"]["requests"]["storage"], "1Gi",
                "{what}"
            );
            assert_eq!(
                claim["spec"]
                    .get("storageClassName")
                    .and_then(Value::as_str),
                class,
                "{what}"
            );
            let args = &spec["template"]["spec"]["containers"][0]["args"];
            assert!(
                args.to_string().contains(r#""--appendonly","yes""#),
                "{what}: {args}"
            );
            // Headless, and what the policy service dials.
            assert_eq!(docs[1]["spec"]["clusterIP"], "None");
            assert_eq!(
                url(&policy),
                format!(
                    "redis://{}.{}.svc:{PORT}",
                    docs[1]["metadata"]["name"].as_str().unwrap(),
                    policy.deploy.namespace
                )
            );
            assert_eq!(
                docs[2]["spec"]["podSelector"]["matchLabels"],
                spec["selector"]["matchLabels"]
            );
        }
    }
}
