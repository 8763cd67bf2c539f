//! The Secrets the manifests read, by name and key: a mesh admin creates them before
//! applying anything, and no rendered file ever holds a value.

use std::fmt::Write;

use serde_json::{json, Value};

use crate::plugin;
use crate::policy::{Policy, Redis, RedisConnection};

/// The policy service's fixed variable for the admin API's token (`serve --admin-token`'s
/// env, policy/src/main.rs), also the key it is kept under.
pub const ADMIN_TOKEN_ENV: &str = "CHOKEPOINT_ADMIN_TOKEN";
/// The policy service's fixed variable for the gateway token (`serve --gateway-token`).
pub const POLICY_TOKEN_ENV: &str = "CHOKEPOINT_POLICY_TOKEN";
/// The policy service's variable for its Redis URL (`serve --redis`), and the key of an
/// external Redis's `url_secret`.
pub const REDIS_URL_ENV: &str = "CHOKEPOINT_REDIS_URL";
/// With Sentinel or Cluster: the primary's (or the nodes') password (`serve
/// --redis-password-file`'s variable), and the key of `password_secret`.
pub const REDIS_PASSWORD_ENV: &str = "CHOKEPOINT_REDIS_PASSWORD";
/// With Sentinel: the sentinels' password, and the key of `sentinel_password_secret`.
pub const REDIS_SENTINEL_PASSWORD_ENV: &str = "CHOKEPOINT_REDIS_SENTINEL_PASSWORD";

/// A Secret to create: its name, namespace, keys, and what they hold.
pub struct Required {
    pub name: String,
    pub namespace: String,
    pub keys: Vec<String>,
    pub what: &'static str,
}

/// Every Secret the manifests reference, in the order to create them.
pub fn required(policy: &Policy) -> Vec<Required> {
    let d = &policy.deploy;
    let mut out = vec![
        Required {
            name: d.secrets.policy_token.clone(),
            namespace: d.namespace.clone(),
            keys: vec![
                policy.policy_service.token_env.clone(),
                policy.gateway.uuid_salt_env.clone(),
            ],
            what: "the gateway token and the UUID salt (the same values as the gateway's)",
        },
        Required {
            name: d.secrets.admin_token.clone(),
            namespace: d.namespace.clone(),
            keys: vec![ADMIN_TOKEN_ENV.into()],
            what: "the admin API's token",
        },
    ];
    match &d.redis {
        Redis::External(RedisConnection::Secret(name)) => out.push(Required {
            name: name.clone(),
            namespace: d.namespace.clone(),
            keys: vec![REDIS_URL_ENV.into()],
            what: "the external Redis's URL",
        }),
        Redis::External(RedisConnection::Sentinel(s)) => {
            for (secret, key, what) in [
                (
                    &s.password_secret,
                    REDIS_PASSWORD_ENV,
                    "the Redis primary's password",
                ),
                (
                    &s.sentinel_password_secret,
                    REDIS_SENTINEL_PASSWORD_ENV,
                    "the Redis sentinels' password",
                ),
            ] {
                let Some(name) = secret else { continue };
                // One Secret may hold both passwords: one entry, both keys.
                match out.iter_mut().find(|r| &r.name == name) {
                    Some(r) => {
                        r.keys.push(key.into());
                        if r.keys == [REDIS_PASSWORD_ENV, REDIS_SENTINEL_PASSWORD_ENV] {
                            r.what = "the Redis primary's and sentinels' passwords";
                        }
                    }
                    None => out.push(Required {
                        name: name.clone(),
                        namespace: d.namespace.clone(),
                        keys: vec![key.into()],
                        what,
                    }),
                }
            }
        }
        Redis::External(RedisConnection::Cluster(c)) => {
            if let Some(name) = &c.password_secret {
                out.push(Required {
                    name: name.clone(),
                    namespace: d.namespace.clone(),
                    keys: vec![REDIS_PASSWORD_ENV.into()],
                    what: "the Redis cluster nodes' password",
                });
            }
        }
        _ => {}
    }
    out.push(Required {
        name: d.secrets.gateway_keys.clone(),
        namespace: gateway_namespaces(policy),
        keys: plugin::env_keys(policy),
        what: "the gateway's environment (Istio: envFrom in the gateway patch; Envoy Gateway: the EnvoyProxy's container env)",
    });
    out
}

/// Where the gateway's proxy pods run: the Istio gateway's namespace or Envoy Gateway's
/// proxy namespace, whichever mesh is used.
fn gateway_namespaces(policy: &Policy) -> String {
    let d = &policy.deploy;
    if d.istio_namespace == d.eg_proxy_namespace {
        d.istio_namespace.clone()
    } else {
        format!(
            "{} (Istio) or {} (Envoy Gateway)",
            d.istio_namespace, d.eg_proxy_namespace
        )
    }
}

/// The container Istio's gateway Deployment runs its proxy in (the `istio/gateway` Helm
/// chart, manifests/charts/gateway/templates/deployment.yaml: `name: istio-proxy`).
pub const ISTIO_PROXY_CONTAINER: &str = "istio-proxy";

/// A strategic-merge patch of the Istio gateway's Deployment: its proxy container takes
/// every key of the gateway Secret as a variable, which is where the filter reads them
/// (WasmPlugin `vmConfig.env[].valueFrom: HOST`). The chart itself can set plain values
/// only (its `env` map), hence a patch; `helm upgrade` keeps it (Helm's three-way merge
/// leaves fields it never wrote).
///
/// With the access log in a file, the same patch adds the reconciler's sidecar
/// (`reconciler`): the shared volume, mounted where the proxy writes the log.
pub fn istio_gateway_patch(policy: &Policy) -> Value {
    let mut proxy = json!({
        "name": ISTIO_PROXY_CONTAINER,
        "envFrom": [{"secretRef": {"name": policy.deploy.secrets.gateway_keys}}],
    });
    let mut pod = json!({});
    if let Some(sidecar) = super::reconciler::sidecar(policy) {
        proxy["volumeMounts"] = json!([sidecar.proxy_mount]);
        pod["initContainers"] = json!([sidecar.container]);
        pod["volumes"] = json!(sidecar.volumes);
    }
    pod["containers"] = json!([proxy]);
    json!({"spec": {"template": {"spec": pod}}})
}

/// How to apply [`istio_gateway_patch`], as the comment that opens its file. Its
/// `# patch:` line tells the manifests layer what it patches, so it is validated as that
/// kind.
pub fn istio_gateway_patch_header(policy: &Policy) -> String {
    let d = &policy.deploy;
    let selector: Vec<String> = d
        .istio_selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let sidecar = if super::reconciler::sidecar(policy).is_some() {
        format!(
            "# It also adds the reconciler ({}, a native sidecar: Kubernetes 1.29+), which\n\
             # books what the proxy logged to {} and could not deliver\n\
             # (docs/deployment.md, \"The reconciler sidecar\").\n",
            super::reconciler::NAME,
            policy.access_log
        )
    } else {
        String::new()
    };
    format!(
        "# patch: apps/v1 Deployment\n\
         # The Istio gateway's proxy reads the filter's variables from Secret {secret}\n\
         # (create it first: docs/deployment.md). Apply to the gateway's Deployment:\n\
         #   kubectl -n {ns} patch $(kubectl -n {ns} get deployment -l {selector} -o name) \\\n\
         #     --patch-file gateway-keys-patch.yaml\n{sidecar}",
        secret = d.secrets.gateway_keys,
        ns = d.istio_namespace,
        selector = selector.join(","),
    )
}

/// An environment variable read from a Secret's key.
pub fn env_from_secret(var: &str, secret: &str, key: &str) -> Value {
    json!({"name": var, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}})
}

/// The comment that opens a file which reads Secrets: which to create first, with keys
/// and no values.
pub fn header(policy: &Policy) -> String {
    let mut out = String::from(
        "# Reads these Secrets, which you create first (names and keys only; no value is\n\
         # ever rendered), e.g. `kubectl -n NAMESPACE create secret generic NAME\n\
         # --from-literal=KEY=...`:\n",
    );
    for r in required(policy) {
        let _ = writeln!(
            out,
            "#   {} in {}: {}\n#     {}",
            r.name,
            r.namespace,
            r.what,
            r.keys.join(", ")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::policy::{example, Cluster, Sentinel};

    /// Each Secret's keys are the variables its readers take: the gateway token under
    /// the name the filter reads it by, every key the filter reads in the gateway's.
    #[test]
    fn required_secrets_name_the_keys_their_readers_take() {
        let mut policy = example();
        let cases: [(Option<RedisConnection>, &[&str]); 3] = [
            (
                None,
                &[
                    "chokepoint-policy-token",
                    "chokepoint-admin-token",
                    "chokepoint-gateway-keys",
                ],
            ),
            (
                Some(RedisConnection::Url("redis://r:6379".into())),
                &[
                    "chokepoint-policy-token",
                    "chokepoint-admin-token",
                    "chokepoint-gateway-keys",
                ],
            ),
            (
                Some(RedisConnection::Secret("redis-url".into())),
                &[
                    "chokepoint-policy-token",
                    "chokepoint-admin-token",
                    "redis-url",
                    "chokepoint-gateway-keys",
                ],
            ),
        ];
        for (external, names) in cases {
            if let Some(c) = external {
                policy.deploy.redis = Redis::External(c);
            }
            let got = required(&policy);
            let got_names: Vec<&str> = got.iter().map(|r| r.name.as_str()).collect();
            assert_eq!(got_names, names);
            assert_eq!(
                got[0].keys,
                ["CHOKEPOINT_POLICY_TOKEN", "CHOKEPOINT_UUID_SALT"]
            );
            assert_eq!(got[1].keys, ["CHOKEPOINT_ADMIN_TOKEN"]);
            let gateway = got.last().unwrap();
            assert_eq!(gateway.keys, plugin::env_keys(&policy));
            assert!(gateway.keys.contains(&"OPENAI_API_KEY".to_string()));
            assert!(gateway
                .keys
                .contains(&"CHOKEPOINT_POLICY_TOKEN".to_string()));
            let text = header(&policy);
            for n in names {
                assert!(text.contains(&format!("#   {n} in ")), "{text}");
            }
        }
    }

    /// The Sentinel form's passwords: one Secret each, or one holding both keys; none
    /// without a password.
    #[test]
    fn sentinel_password_secrets_are_required_with_their_keys() {
        let form = |password: Option<&str>, sentinel: Option<&str>| Sentinel {
            addresses: vec!["s-0:26379".into()],
            master_name: "mymaster".into(),
            username: None,
            password_secret: password.map(String::from),
            sentinel_password_secret: sentinel.map(String::from),
            wait_replicas: None,
        };
        // (the Secrets named, the Redis Secrets wanted with their keys)
        type Want<'a> = &'a [(&'a str, &'a [&'a str])];
        let cases: [(Option<&str>, Option<&str>, Want); 5] = [
            (None, None, &[]),
            (
                Some("redis-auth"),
                None,
                &[("redis-auth", &["CHOKEPOINT_REDIS_PASSWORD"])],
            ),
            (
                None,
                Some("sentinel-auth"),
                &[("sentinel-auth", &["CHOKEPOINT_REDIS_SENTINEL_PASSWORD"])],
            ),
            (
                Some("redis-auth"),
                Some("sentinel-auth"),
                &[
                    ("redis-auth", &["CHOKEPOINT_REDIS_PASSWORD"]),
                    ("sentinel-auth", &["CHOKEPOINT_REDIS_SENTINEL_PASSWORD"]),
                ],
            ),
            (
                Some("redis-auth"),
                Some("redis-auth"),
                &[(
                    "redis-auth",
                    &[
                        "CHOKEPOINT_REDIS_PASSWORD",
                        "CHOKEPOINT_REDIS_SENTINEL_PASSWORD",
                    ],
                )],
            ),
        ];
        for (password, sentinel, want) in cases {
            let mut policy = example();
            policy.deploy.redis =
                Redis::External(RedisConnection::Sentinel(form(password, sentinel)));
            let got = required(&policy);
            let redis: Vec<(&str, Vec<&str>)> = got
                .iter()
                .filter(|r| r.keys.iter().any(|k| k.starts_with("CHOKEPOINT_REDIS")))
                .map(|r| (r.name.as_str(), r.keys.iter().map(String::as_str).collect()))
                .collect();
            let want: Vec<(&str, Vec<&str>)> = want.iter().map(|(n, k)| (*n, k.to_vec())).collect();
            assert_eq!(redis, want, "{password:?} {sentinel:?}");
            assert_eq!(got.len(), 3 + want.len(), "{password:?} {sentinel:?}");
            for r in &got[2..2 + want.len()] {
                assert_eq!(r.namespace, policy.deploy.namespace);
                assert!(r.what.contains("password"), "{}", r.what);
            }
            let text = header(&policy);
            for (name, _) in &want {
                assert!(text.contains(&format!("#   {name} in ")), "{text}");
            }
        }
    }

    /// The Istio gateway's patch adds the gateway Secret to its proxy container, the one
    /// the gateway's pods run the filter in, and says how to find that Deployment.
    #[test]
    fn the_istio_gateway_patch_names_the_gateway_secret() {
        let mut policy = example();
        let cases = [
            (
                "chokepoint-gateway-keys",
                "istio-system",
                "istio=ingressgateway",
            ),
            ("ai-keys", "gateways", "app=edge,istio=ai"),
        ];
        for (secret, namespace, selector) in cases {
            policy.deploy.secrets.gateway_keys = secret.into();
            policy.deploy.istio_namespace = namespace.into();
            policy.deploy.istio_selector = selector
                .split(',')
                .map(|kv| kv.split_once('=').unwrap())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let patch = istio_gateway_patch(&policy);
            assert_eq!(
                patch["spec"]["template"]["spec"]["containers"],
                json!([{"name": "istio-proxy", "envFrom": [{"secretRef": {"name": secret}}]}])
            );
            let header = istio_gateway_patch_header(&policy);
            assert!(
                header.starts_with("# patch: apps/v1 Deployment\n"),
                "{header}"
            );
            assert!(
                header.contains(&format!(
                    "kubectl -n {namespace} get deployment -l {selector} -o name"
                )),
                "{header}"
            );
            assert!(header.contains(&format!("Secret {secret}\n")), "{header}");
        }
    }

    /// The Cluster form's password: its Secret, with the key `serve` reads, in the
    /// service's namespace; none without a password.
    #[test]
    fn cluster_password_secret_is_required_with_its_key() {
        // (the Secret named, the Redis Secrets wanted with their keys)
        type Want<'a> = &'a [(&'a str, &'a [&'a str])];
        let cases: [(Option<&str>, Want); 2] = [
            (None, &[]),
            (
                Some("redis-auth"),
                &[("redis-auth", &["CHOKEPOINT_REDIS_PASSWORD"])],
            ),
        ];
        for (password, want) in cases {
            let mut policy = example();
            policy.deploy.redis = Redis::External(RedisConnection::Cluster(Cluster {
                nodes: vec!["n-0:6379".into()],
                username: Some("gateway".into()),
                password_secret: password.map(String::from),
            }));
            let got = required(&policy);
            let redis: Vec<(&str, Vec<&str>)> = got
                .iter()
                .filter(|r| r.keys.iter().any(|k| k.starts_with("CHOKEPOINT_REDIS")))
                .map(|r| (r.name.as_str(), r.keys.iter().map(String::as_str).collect()))
                .collect();
            let want: Vec<(&str, Vec<&str>)> = want.iter().map(|(n, k)| (*n, k.to_vec())).collect();
            assert_eq!(redis, want, "{password:?}");
            assert_eq!(got.len(), 3 + want.len(), "{password:?}");
            for r in &got[2..2 + want.len()] {
                assert_eq!(r.namespace, policy.deploy.namespace);
                assert!(r.what.contains("cluster"), "{}", r.what);
            }
            let text = header(&policy);
            for (name, _) in &want {
                assert!(text.contains(&format!("#   {name} in ")), "{text}");
            }
        }
    }
}
