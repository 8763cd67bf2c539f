//! The policy service in Kubernetes: a ServiceAccount, its limit sets and its identity
//! file (the issuers and admin groups of its pages) as ConfigMaps, a
//! Deployment running `chokepoint-policy serve` as policy/src/main.rs takes it (flags,
//! the variables of its tokens and Redis URL or Sentinel or Cluster passwords, the two
//! listeners), and a Service for each listener, so the gateway's Service exposes the gateway port and nothing else.

use serde_json::{json, Value};

use super::secrets::{
    self, ADMIN_TOKEN_ENV, POLICY_TOKEN_ENV, REDIS_PASSWORD_ENV, REDIS_SENTINEL_PASSWORD_ENV,
    REDIS_URL_ENV,
};
use super::{container_security, labels, metadata, pod_security, resources, selector};
use crate::network_policy::{POLICY_ADMIN_PORT, POLICY_POD_LABEL};
use crate::policy::{Cluster, Policy, Redis, RedisConnection, Sentinel};

/// The Deployment's and ServiceAccount's name, and its pods' `app.kubernetes.io/name`
/// (which the NetworkPolicies select).
pub const NAME: &str = POLICY_POD_LABEL.1;
/// Where the ConfigMap of limit sets is mounted.
const LIMITS_DIR: &str = "/etc/chokepoint";
/// Where the ConfigMap of the identity file is mounted.
const IDENTITY_DIR: &str = "/etc/chokepoint-identity";
/// A user the service runs as: it needs no file of its own, and no root.
const UID: u32 = 65532;

/// The gateway Service's name, from `policy_service.url`: the gateway reaches the service
/// by that host, so it must be a Service of `deploy.namespace` (`NAME`,
/// `NAME.NAMESPACE`, `NAME.NAMESPACE.svc[.cluster domain]`).
pub fn service_name(policy: &Policy) -> Result<String, String> {
    let host = &policy.policy_service.url.host;
    let ns = &policy.deploy.namespace;
    let labels: Vec<&str> = host.split('.').collect();
    let in_namespace = match labels.as_slice() {
        [_] => true,
        [_, n] => n == ns,
        [_, n, svc, ..] => n == ns && *svc == "svc",
        [] => false,
    };
    let name = labels[0];
    if in_namespace && crate::policy::dns_label(name) && !name.starts_with(char::is_numeric) {
        Ok(name.to_string())
    } else {
        Err(format!(
            "policy_service.url: {host:?} is not a Service of deploy.namespace {ns:?}; \
             the Kubernetes targets need NAME.{ns}.svc.cluster.local (the Service they render)"
        ))
    }
}

/// ServiceAccount, ConfigMap (when there are limit sets), the identity ConfigMap,
/// Deployment, the gateway Service and the admin Service.
pub fn manifests(policy: &Policy) -> Result<Vec<Value>, String> {
    let service = service_name(policy)?;
    let mut out = vec![json!({
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": metadata(policy, NAME, NAME),
        // The service never calls the Kubernetes API.
        "automountServiceAccountToken": false,
    })];
    if !policy.limits.is_empty() {
        let limits = serde_json::to_string_pretty(&policy.limits).unwrap_or_default();
        out.push(json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": metadata(policy, &limits_config_map(), NAME),
            "data": {"limits.json": format!("{limits}\n")},
        }));
    }
    let identity =
        serde_json::to_string_pretty(&crate::identity::identity_file(policy)).unwrap_or_default();
    out.push(json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(policy, &identity_config_map(), NAME),
        "data": {"identity.json": format!("{identity}\n")},
    }));
    out.push(deployment(policy));
    let port = policy.policy_service.url.port;
    out.push(service_object(policy, &service, "http", port, "gateway"));
    out.push(service_object(
        policy,
        &format!("{service}-admin"),
        "http-admin",
        POLICY_ADMIN_PORT,
        "admin",
    ));
    Ok(out)
}

fn limits_config_map() -> String {
    format!("{NAME}-limits")
}

fn identity_config_map() -> String {
    format!("{NAME}-identity")
}

fn deployment(policy: &Policy) -> Value {
    let d = &policy.deploy;
    let ps = &policy.policy_service;
    // `serve`'s flags (policy/src/main.rs ServeArgs). Both listeners on the pod network:
    // the NetworkPolicy, not the bind address, decides who reaches them.
    let mut args = vec![
        "serve".to_string(),
        format!("--listen=0.0.0.0:{}", ps.url.port),
        format!("--admin-listen=0.0.0.0:{POLICY_ADMIN_PORT}"),
        format!("--requests-per-window={}", ps.requests_per_window),
        format!("--window-secs={}", ps.window_secs),
        format!("--reservation-ttl-secs={}", ps.reservation_ttl_secs),
    ];
    if !ps.audit_stream {
        args.push("--usage-audit-stream=off".to_string());
    }
    let mut volumes = Vec::new();
    let mut mounts = Vec::new();
    if !policy.limits.is_empty() {
        args.push(format!("--limits={LIMITS_DIR}/limits.json"));
        volumes.push(json!({"name": "limits", "configMap": {"name": limits_config_map()}}));
        mounts.push(json!({"name": "limits", "mountPath": LIMITS_DIR, "readOnly": true}));
    }
    args.push(format!("--identity={IDENTITY_DIR}/identity.json"));
    volumes.push(json!({"name": "identity", "configMap": {"name": identity_config_map()}}));
    mounts.push(json!({"name": "identity", "mountPath": IDENTITY_DIR, "readOnly": true}));
    // The tokens by the fixed names `serve` reads them from; the gateway token is kept
    // under the name the filter reads it by (policy_service.token_env), as in the
    // gateway's Secret.
    // The gateway's UUID salt, by the gateway's name for it, kept with the gateway token
    // in the service's namespace (the gateway's Secret is in the gateway's namespace).
    let salt = &policy.gateway.uuid_salt_env;
    let mut env = vec![
        secrets::env_from_secret(POLICY_TOKEN_ENV, &d.secrets.policy_token, &ps.token_env),
        secrets::env_from_secret(ADMIN_TOKEN_ENV, &d.secrets.admin_token, ADMIN_TOKEN_ENV),
        secrets::env_from_secret(salt, &d.secrets.policy_token, salt),
    ];
    match &d.redis {
        Redis::InCluster { .. } => {
            env.push(json!({"name": REDIS_URL_ENV, "value": super::redis::url(policy)}))
        }
        Redis::External(RedisConnection::Url(url)) => {
            env.push(json!({"name": REDIS_URL_ENV, "value": url}))
        }
        Redis::External(RedisConnection::Secret(name)) => {
            env.push(secrets::env_from_secret(REDIS_URL_ENV, name, REDIS_URL_ENV))
        }
        // No Redis URL at all: `serve` refuses one beside --redis-sentinels.
        Redis::External(RedisConnection::Sentinel(s)) => sentinel(s, &mut args, &mut env),
        // Nor beside --redis-cluster-nodes.
        Redis::External(RedisConnection::Cluster(c)) => cluster(c, &mut args, &mut env),
    }
    // /healthz pings Redis (policy/src/api/health.rs): readiness takes a replica out of
    // the Service as soon as it cannot decide. Liveness reads the same page on the admin
    // listener but waits a minute: the service starts and recovers without Redis by
    // itself, so a restart only helps a process that stopped answering at all.
    let probe = |port: &str, period: u32, failures: u32| {
        json!({
            "httpGet": {"path": "/healthz", "port": port},
            "periodSeconds": period,
            "timeoutSeconds": 3,
            "failureThreshold": failures,
        })
    };
    let mut container = json!({
        "name": "policy",
        "image": d.policy.image,
        "command": ["chokepoint-policy"],
        "args": args,
        "env": env,
        "ports": [
            {"name": "gateway", "containerPort": ps.url.port, "protocol": "TCP"},
            {"name": "admin", "containerPort": POLICY_ADMIN_PORT, "protocol": "TCP"},
        ],
        "readinessProbe": probe("gateway", 5, 2),
        "livenessProbe": probe("admin", 10, 6),
        "resources": resources(&d.policy.resources),
        "securityContext": container_security(),
    });
    if !mounts.is_empty() {
        container["volumeMounts"] = json!(mounts);
    }
    let mut pod = json!({
        "serviceAccountName": NAME,
        "automountServiceAccountToken": false,
        "securityContext": pod_security(UID),
        "containers": [container],
    });
    if !volumes.is_empty() {
        pod["volumes"] = json!(volumes);
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(policy, NAME, NAME),
        "spec": {
            "replicas": d.policy.replicas,
            "selector": selector(NAME),
            // Stateless (Redis holds everything): a new replica is ready before an old
            // one goes, so the gateway always has one to ask.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": labels(NAME)},
                "spec": pod,
            },
        },
    })
}

/// `serve`'s Sentinel flags, and its passwords as the variables it reads them from
/// (never `--redis-password-file`: a Secret's key as a variable needs no volume).
fn sentinel(s: &Sentinel, args: &mut Vec<String>, env: &mut Vec<Value>) {
    args.push(format!("--redis-sentinels={}", s.addresses.join(",")));
    args.push(format!("--redis-master-name={}", s.master_name));
    if let Some(user) = &s.username {
        args.push(format!("--redis-username={user}"));
    }
    if let Some(n) = s.wait_replicas {
        args.push(format!("--redis-wait-replicas={n}"));
    }
    for (var, secret) in [
        (REDIS_PASSWORD_ENV, &s.password_secret),
        (REDIS_SENTINEL_PASSWORD_ENV, &s.sentinel_password_secret),
    ] {
        if let Some(name) = secret {
            env.push(secrets::env_from_secret(var, name, var));
        }
    }
}

/// `serve`'s Cluster flags, and the nodes' password as the variable it reads it from.
fn cluster(c: &Cluster, args: &mut Vec<String>, env: &mut Vec<Value>) {
    args.push(format!("--redis-cluster-nodes={}", c.nodes.join(",")));
    if let Some(user) = &c.username {
        args.push(format!("--redis-username={user}"));
    }
    if let Some(name) = &c.password_secret {
        env.push(secrets::env_from_secret(
            REDIS_PASSWORD_ENV,
            name,
            REDIS_PASSWORD_ENV,
        ));
    }
}

/// A ClusterIP Service for one of the pods' named ports. The port's name and
/// `appProtocol` tell Istio it is HTTP (istio.io/latest/docs/ops/configuration/traffic-management/protocol-selection/).
fn service_object(policy: &Policy, name: &str, port_name: &str, port: u16, target: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(policy, name, NAME),
        "spec": {
            "type": "ClusterIP",
            "selector": {POLICY_POD_LABEL.0: POLICY_POD_LABEL.1},
            "ports": [{
                "name": port_name,
                "port": port,
                "targetPort": target,
                "protocol": "TCP",
                "appProtocol": "http",
            }],
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::url::Url;

    use crate::policy::example;

    fn kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
        docs.iter().filter(|d| d["kind"] == kind).collect()
    }

    /// The gateway reaches the service by policy_service.url's host: only a Service of
    /// deploy.namespace can be rendered for it.
    #[test]
    fn the_gateway_service_is_the_url_host() {
        let mut policy = example();
        let cases = [
            (
                "chokepoint-policy.chokepoint.svc.cluster.local",
                Ok("chokepoint-policy"),
            ),
            ("policy.chokepoint.svc.corp.internal", Ok("policy")),
            ("policy.chokepoint.svc", Ok("policy")),
            ("policy.chokepoint", Ok("policy")),
            ("policy", Ok("policy")),
            (
                "policy.other.svc.cluster.local",
                Err("not a Service of deploy.namespace"),
            ),
            ("policy.chokepoint.example.com", Err("not a Service")),
            ("10.0.0.5", Err("not a Service")),
            ("1policy.chokepoint.svc", Err("not a Service")),
        ];
        for (host, want) in cases {
            policy.policy_service.url = Url::parse(&format!("http://{host}:8081")).unwrap();
            match (service_name(&policy), want) {
                (Ok(got), Ok(name)) => assert_eq!(got, name, "{host}"),
                (Err(e), Err(part)) => {
                    assert!(
                        e.contains(part) && e.contains("policy_service.url"),
                        "{host}: {e}"
                    )
                }
                (got, _) => panic!("{host}: {got:?}, want {want:?}"),
            }
        }
        policy.policy_service.url = Url::parse("http://10.0.0.5:8081").unwrap();
        let err = manifests(&policy).unwrap_err();
        assert!(err.contains("10.0.0.5"), "{err}");
    }

    /// The Deployment runs `serve` as it takes its flags and variables, for each way the
    /// policy file can set the port, the limit sets, the token's variable and Redis.
    #[test]
    fn the_deployment_follows_the_policy_file() {
        let base = example();
        // (what, edit, the Redis URL variable: a value or a Secret's name)
        type Edit = fn(&mut Policy);
        let cases: [(&str, Edit, Result<&str, &str>); 6] = [
            (
                "as committed",
                |_| {},
                Ok("redis://chokepoint-redis.chokepoint.svc:6379"),
            ),
            (
                "another namespace, port and token variable, no limit sets",
                |p| {
                    p.deploy.namespace = "ai".into();
                    p.policy_service.url = Url::parse("http://policy.ai.svc:9000").unwrap();
                    p.policy_service.token_env = "GW_TOKEN".into();
                    p.limits.clear();
                },
                Ok("redis://chokepoint-redis.ai.svc:6379"),
            ),
            (
                "external Redis by URL",
                |p| {
                    p.deploy.redis =
                        Redis::External(RedisConnection::Url("redis://r.db:6379/1".into()))
                },
                Ok("redis://r.db:6379/1"),
            ),
            (
                "external Redis by Secret",
                |p| p.deploy.redis = Redis::External(RedisConnection::Secret("redis-url".into())),
                Err("redis-url"),
            ),
            (
                "one replica of another image",
                |p| {
                    p.deploy.policy.replicas = 1;
                    p.deploy.policy.image = "ghcr.io/acme/policy:2".into();
                },
                Ok("redis://chokepoint-redis.chokepoint.svc:6379"),
            ),
            (
                "the audit stream off",
                |p| p.policy_service.audit_stream = false,
                Ok("redis://chokepoint-redis.chokepoint.svc:6379"),
            ),
        ];
        for (what, edit, redis) in cases {
            let mut policy = base.clone();
            edit(&mut policy);
            let docs = manifests(&policy).unwrap();
            let port = policy.policy_service.url.port;
            let ns = &policy.deploy.namespace;
            assert!(
                docs.iter().all(|d| d["metadata"]["namespace"] == *ns),
                "{what}"
            );
            let deployment = kind(&docs, "Deployment")[0];
            let spec = &deployment["spec"];
            assert_eq!(spec["replicas"], policy.deploy.policy.replicas, "{what}");
            assert_eq!(
                spec["template"]["metadata"]["labels"]["app.kubernetes.io/name"],
                POLICY_POD_LABEL.1,
                "{what}: the NetworkPolicies select this label"
            );
            let pod = &spec["template"]["spec"];
            let c = &pod["containers"][0];
            assert_eq!(c["image"], policy.deploy.policy.image, "{what}");
            let args: Vec<&str> = c["args"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap())
                .collect();
            assert_eq!(args[0], "serve");
            assert!(
                args.contains(&format!("--listen=0.0.0.0:{port}").as_str()),
                "{what}: {args:?}"
            );
            assert!(
                args.contains(&"--admin-listen=0.0.0.0:8082"),
                "{what}: {args:?}"
            );
            let limits = !policy.limits.is_empty();
            assert_eq!(
                args.contains(&"--limits=/etc/chokepoint/limits.json"),
                limits,
                "{what}"
            );
            assert!(
                args.contains(&"--identity=/etc/chokepoint-identity/identity.json"),
                "{what}: {args:?}"
            );
            assert_eq!(
                args.contains(&"--usage-audit-stream=off"),
                !policy.policy_service.audit_stream,
                "{what}: {args:?}"
            );
            let maps = kind(&docs, "ConfigMap");
            assert_eq!(maps.len(), 1 + usize::from(limits), "{what}");
            // The identity file is the service's to parse, and names the salt's variable.
            let identity = maps
                .iter()
                .find(|m| m["metadata"]["name"] == "chokepoint-policy-identity")
                .and_then(|m| m["data"]["identity.json"].as_str())
                .unwrap_or_else(|| panic!("{what}: the identity ConfigMap"));
            let parsed = chokepoint_policy::viewer::ViewerConfig::parse(identity)
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(parsed.uuid_salt_env, policy.gateway.uuid_salt_env, "{what}");
            let volumes = pod["volumes"].as_array().unwrap();
            assert_eq!(volumes.len(), 1 + usize::from(limits), "{what}");
            // Tokens only by reference; the gateway token under the filter's variable name.
            let env = c["env"].as_array().unwrap();
            let var = |name: &str| {
                env.iter()
                    .find(|e| e["name"] == name)
                    .unwrap_or_else(|| panic!("{what}: {name}"))
            };
            assert_eq!(
                var("CHOKEPOINT_POLICY_TOKEN")["valueFrom"]["secretKeyRef"],
                json!({"name": "chokepoint-policy-token", "key": policy.policy_service.token_env}),
                "{what}"
            );
            assert_eq!(
                var("CHOKEPOINT_ADMIN_TOKEN")["valueFrom"]["secretKeyRef"],
                json!({"name": "chokepoint-admin-token", "key": "CHOKEPOINT_ADMIN_TOKEN"}),
                "{what}"
            );
            // The gateway's salt, kept with the gateway token in the service's namespace.
            let salt = &policy.gateway.uuid_salt_env;
            assert_eq!(
                var(salt)["valueFrom"]["secretKeyRef"],
                json!({"name": "chokepoint-policy-token", "key": salt}),
                "{what}"
            );
            match redis {
                Ok(url) => assert_eq!(var("CHOKEPOINT_REDIS_URL")["value"], url, "{what}"),
                Err(secret) => assert_eq!(
                    var("CHOKEPOINT_REDIS_URL")["valueFrom"]["secretKeyRef"],
                    json!({"name": secret, "key": "CHOKEPOINT_REDIS_URL"}),
                    "{what}"
                ),
            }
            // The ports the probes and Services name are the container's, on the right numbers.
            let ports = c["ports"].as_array().unwrap();
            let number = |name: &str| {
                ports
                    .iter()
                    .find(|p| p["name"] == name)
                    .map(|p| p["containerPort"].clone())
            };
            assert_eq!(number("gateway"), Some(json!(port)), "{what}");
            assert_eq!(number("admin"), Some(json!(8082)), "{what}");
            assert_eq!(
                c["readinessProbe"]["httpGet"],
                json!({"path": "/healthz", "port": "gateway"})
            );
            assert_eq!(
                c["livenessProbe"]["httpGet"],
                json!({"path": "/healthz", "port": "admin"})
            );
            let services = kind(&docs, "Service");
            let name = service_name(&policy).unwrap();
            let exposed: Vec<(String, Value, Value)> = services
                .iter()
                .map(|s| {
                    let p = &s["spec"]["ports"][0];
                    (
                        s["metadata"]["name"].as_str().unwrap().to_string(),
                        p["port"].clone(),
                        p["targetPort"].clone(),
                    )
                })
                .collect();
            assert_eq!(
                exposed,
                [
                    (name.clone(), json!(port), json!("gateway")),
                    (format!("{name}-admin"), json!(8082), json!("admin")),
                ],
                "{what}: one Service per listener"
            );
            for s in services {
                assert_eq!(
                    s["spec"]["selector"],
                    json!({POLICY_POD_LABEL.0: POLICY_POD_LABEL.1})
                );
            }
            // Non-root, read-only, nothing to escalate.
            assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{what}");
            assert_eq!(
                c["securityContext"]["readOnlyRootFilesystem"], true,
                "{what}"
            );
            assert_eq!(
                c["securityContext"]["allowPrivilegeEscalation"], false,
                "{what}"
            );
            assert_eq!(c["resources"]["limits"]["memory"], "256Mi", "{what}");
            assert_eq!(
                pod["serviceAccountName"],
                kind(&docs, "ServiceAccount")[0]["metadata"]["name"]
            );
        }
    }

    /// The Sentinel form: its flags on `serve`'s command line, each password only as a
    /// Secret reference under the variable `serve` reads it from, and no Redis URL (which
    /// `serve` refuses beside --redis-sentinels).
    #[test]
    fn a_sentinel_redis_is_followed_with_passwords_by_reference() {
        let full = Sentinel {
            addresses: vec!["s-0.data.svc:26379".into(), "s-1.data.svc:26379".into()],
            master_name: "mymaster".into(),
            username: Some("gateway".into()),
            password_secret: Some("redis-auth".into()),
            sentinel_password_secret: Some("sentinel-auth".into()),
            wait_replicas: Some(1),
        };
        let bare = Sentinel {
            addresses: vec!["10.0.0.7:26379".into()],
            master_name: "primary".into(),
            username: None,
            password_secret: None,
            sentinel_password_secret: None,
            wait_replicas: None,
        };
        // (what, the form, flags wanted, (variable, Secret) wanted)
        type Case<'a> = (&'a str, Sentinel, &'a [&'a str], &'a [(&'a str, &'a str)]);
        let cases: [Case; 3] = [
            (
                "every field",
                full.clone(),
                &[
                    "--redis-sentinels=s-0.data.svc:26379,s-1.data.svc:26379",
                    "--redis-master-name=mymaster",
                    "--redis-username=gateway",
                    "--redis-wait-replicas=1",
                ],
                &[
                    ("CHOKEPOINT_REDIS_PASSWORD", "redis-auth"),
                    ("CHOKEPOINT_REDIS_SENTINEL_PASSWORD", "sentinel-auth"),
                ],
            ),
            (
                "one Secret for both passwords",
                Sentinel {
                    sentinel_password_secret: Some("redis-auth".into()),
                    ..full
                },
                &["--redis-master-name=mymaster"],
                &[
                    ("CHOKEPOINT_REDIS_PASSWORD", "redis-auth"),
                    ("CHOKEPOINT_REDIS_SENTINEL_PASSWORD", "redis-auth"),
                ],
            ),
            (
                "no password, no user, no wait",
                bare,
                &[
                    "--redis-sentinels=10.0.0.7:26379",
                    "--redis-master-name=primary",
                ],
                &[],
            ),
        ];
        for (what, sentinel, flags, passwords) in cases {
            let mut policy = example();
            policy.deploy.redis = Redis::External(RedisConnection::Sentinel(sentinel.clone()));
            let docs = manifests(&policy).unwrap();
            let c = &kind(&docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0];
            let args: Vec<&str> = c["args"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(Value::as_str)
                .collect();
            for f in flags {
                assert!(args.contains(f), "{what}: {f} not in {args:?}");
            }
            for (flag, given) in [
                ("--redis-username=", sentinel.username.is_some()),
                ("--redis-wait-replicas=", sentinel.wait_replicas.is_some()),
            ] {
                assert_eq!(
                    args.iter().any(|a| a.starts_with(flag)),
                    given,
                    "{what}: {args:?}"
                );
            }
            let redis_env: Vec<&Value> = c["env"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["name"].as_str().unwrap().starts_with("CHOKEPOINT_REDIS"))
                .collect();
            let want: Vec<Value> = passwords
                .iter()
                .map(|(var, secret)| {
                    json!({"name": var, "valueFrom": {"secretKeyRef": {"name": secret, "key": var}}})
                })
                .collect();
            assert_eq!(
                redis_env.into_iter().cloned().collect::<Vec<_>>(),
                want,
                "{what}: passwords only by reference, no URL"
            );
            assert!(
                !args.iter().any(|a| a.contains("password")),
                "{what}: {args:?}"
            );
        }
    }

    /// The Cluster form: its seed nodes and user on `serve`'s command line, the password
    /// only as a Secret reference under the variable `serve` reads it from, and no Redis
    /// URL or Sentinel flag (which `serve` refuses beside --redis-cluster-nodes).
    #[test]
    fn a_cluster_redis_is_seeded_with_its_password_by_reference() {
        // (what, the form, flags wanted, (variable, Secret) wanted)
        type Case<'a> = (&'a str, Cluster, &'a [&'a str], &'a [(&'a str, &'a str)]);
        let cases: [Case; 2] = [
            (
                "every field",
                Cluster {
                    nodes: vec!["n-0.data.svc:6379".into(), "10.0.0.7:6380".into()],
                    username: Some("gateway".into()),
                    password_secret: Some("redis-auth".into()),
                },
                &[
                    "--redis-cluster-nodes=n-0.data.svc:6379,10.0.0.7:6380",
                    "--redis-username=gateway",
                ],
                &[("CHOKEPOINT_REDIS_PASSWORD", "redis-auth")],
            ),
            (
                "no password, no user",
                Cluster {
                    nodes: vec!["n-0.data.svc:6379".into()],
                    username: None,
                    password_secret: None,
                },
                &["--redis-cluster-nodes=n-0.data.svc:6379"],
                &[],
            ),
        ];
        for (what, cluster, flags, passwords) in cases {
            let mut policy = example();
            policy.deploy.redis = Redis::External(RedisConnection::Cluster(cluster.clone()));
            let docs = manifests(&policy).unwrap();
            let c = &kind(&docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0];
            let args: Vec<&str> = c["args"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(Value::as_str)
                .collect();
            let redis_args: Vec<&str> = args
                .iter()
                .copied()
                .filter(|a| a.starts_with("--redis"))
                .collect();
            assert_eq!(redis_args, flags, "{what}: exactly the cluster's flags");
            let redis_env: Vec<Value> = c["env"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["name"].as_str().unwrap().starts_with("CHOKEPOINT_REDIS"))
                .cloned()
                .collect();
            let want: Vec<Value> = passwords
                .iter()
                .map(|(var, secret)| {
                    json!({"name": var, "valueFrom": {"secretKeyRef": {"name": secret, "key": var}}})
                })
                .collect();
            assert_eq!(
                redis_env, want,
                "{what}: the password only by reference, no URL"
            );
        }
    }
}
