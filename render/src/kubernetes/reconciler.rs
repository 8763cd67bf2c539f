//! The reconciler beside the gateway's proxy: `chokepoint-policy reconcile --follow` in
//! the gateway pod, reading the access log the proxy writes to a volume they share, so
//! that records a killed proxy held in memory still reach the ledger (docs/operations.md,
//! "The reconciler"). It books through the policy service's gateway listener with the
//! gateway token, from the same Secret key the filter reads it from, and holds no Redis
//! credential.
//!
//! It runs as a native sidecar (an init container with `restartPolicy: Always`,
//! Kubernetes 1.29 and later): it starts before the proxy and stops after it, so it reads
//! the last lines the proxy writes as it shuts down. A proxy whose access log goes to
//! stdout (`audit.access_log: /dev/stdout`, the default) leaves no file to read: no
//! sidecar is rendered, and `audit.access_log` must name a file for one.

use serde_json::{json, Value};

use super::container_security;
use super::secrets::{self, POLICY_TOKEN_ENV};
use crate::policy::Policy;

/// The container's name.
pub const NAME: &str = "chokepoint-reconcile";
/// The volume the proxy writes its access log to and the sidecar reads it from.
pub const LOG_VOLUME: &str = "chokepoint-access-log";
/// The sidecar's checkpoint: it survives the sidecar's restarts, not the pod (nor does
/// the log it is a position in).
const STATE_VOLUME: &str = "chokepoint-reconcile-state";
const STATE_DIR: &str = "/var/lib/chokepoint-reconcile";
/// The policy image's user (as the service's Deployment): no root, no file of its own.
const UID: u32 = 65532;

/// What the gateway pod needs for the sidecar: the container, the volumes, and the mount
/// the proxy's own container takes to write the log onto the shared volume.
pub struct Sidecar {
    pub container: Value,
    pub volumes: Vec<Value>,
    pub proxy_mount: Value,
}

/// The access log's directory, when the log is a file a sidecar can share (not a device
/// such as `/dev/stdout`, nor a file at the root).
pub fn log_dir(policy: &Policy) -> Option<&str> {
    let path = policy.access_log.as_str();
    if path.starts_with("/dev/") || !path.starts_with('/') {
        return None;
    }
    let dir = path.rsplit_once('/').map(|(dir, _)| dir)?;
    (!dir.is_empty()).then_some(dir)
}

/// The sidecar, or `None` when the access log is no file (see the module's comment).
pub fn sidecar(policy: &Policy) -> Option<Sidecar> {
    let dir = log_dir(policy)?;
    let d = &policy.deploy;
    let ps = &policy.policy_service;
    let mut security = container_security();
    security["runAsNonRoot"] = json!(true);
    security["runAsUser"] = json!(UID);
    let container = json!({
        "name": NAME,
        "image": d.policy.image,
        "restartPolicy": "Always",
        "command": ["chokepoint-policy"],
        // `reconcile`'s flags (policy/src/main.rs ReconcileArgs); the dedupe window is
        // the service's default, which the service confirms at start (its /healthz).
        "args": [
            "reconcile",
            "--follow",
            format!("--access-log={}", policy.access_log),
            format!("--state={STATE_DIR}/state.json"),
            format!("--policy-url={}", ps.url.origin()),
        ],
        // The gateway token under the name the filter reads it by, from the gateway's
        // Secret, to the fixed variable `reconcile` reads.
        "env": [secrets::env_from_secret(POLICY_TOKEN_ENV, &d.secrets.gateway_keys, &ps.token_env)],
        "volumeMounts": [
            {"name": LOG_VOLUME, "mountPath": dir, "readOnly": true},
            {"name": STATE_VOLUME, "mountPath": STATE_DIR},
        ],
        // Reading a file and posting batches: little, and bounded so it never competes
        // with the proxy.
        "resources": {
            "requests": {"cpu": "10m", "memory": "32Mi"},
            "limits": {"cpu": "200m", "memory": "128Mi"},
        },
        "securityContext": security,
    });
    Some(Sidecar {
        container,
        volumes: vec![
            json!({"name": LOG_VOLUME, "emptyDir": {}}),
            json!({"name": STATE_VOLUME, "emptyDir": {}}),
        ],
        proxy_mount: json!({"name": LOG_VOLUME, "mountPath": dir}),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::example;

    #[test]
    fn a_sidecar_only_for_an_access_log_in_a_file() {
        let cases = [
            ("/dev/stdout", None),
            ("/dev/stderr", None),
            ("usage.log", None),
            ("/usage.log", None),
            ("/var/log/chokepoint/usage.log", Some("/var/log/chokepoint")),
        ];
        for (path, dir) in cases {
            let mut policy = example();
            policy.access_log = path.into();
            assert_eq!(log_dir(&policy), dir, "{path}");
            assert_eq!(sidecar(&policy).is_some(), dir.is_some(), "{path}");
        }
    }

    #[test]
    fn the_sidecar_reads_the_shared_log_with_the_filter_s_token() {
        let mut policy = example();
        policy.access_log = "/var/log/chokepoint/usage.log".into();
        let s = sidecar(&policy).expect("a file");
        let c = &s.container;
        assert_eq!(c["image"], policy.deploy.policy.image);
        assert_eq!(c["restartPolicy"], "Always", "a native sidecar");
        let args: Vec<&str> = c["args"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(args.contains(&"--access-log=/var/log/chokepoint/usage.log"));
        assert!(args.contains(&"--follow"));
        assert_eq!(
            c["env"][0]["valueFrom"]["secretKeyRef"],
            json!({"name": policy.deploy.secrets.gateway_keys, "key": policy.policy_service.token_env})
        );
        assert!(!c.to_string().contains("REDIS"), "no Redis credential");
        assert_eq!(c["volumeMounts"][0]["name"], LOG_VOLUME);
        assert_eq!(c["volumeMounts"][0]["readOnly"], true);
        assert_eq!(s.proxy_mount["mountPath"], "/var/log/chokepoint");
        assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
        assert_eq!(c["resources"]["limits"]["memory"], "128Mi");
    }

    /// Both meshes' gateway pods get the sidecar, the volume and the proxy's mount with a
    /// file, and nothing of it without.
    #[test]
    fn each_mesh_s_gateway_pod_gets_the_sidecar() {
        for (path, wanted) in [
            ("/var/log/chokepoint/usage.log", true),
            ("/dev/stdout", false),
        ] {
            let mut policy = example();
            policy.access_log = path.into();
            let istio = crate::kubernetes::secrets::istio_gateway_patch(&policy);
            let pod = &istio["spec"]["template"]["spec"];
            let eg = crate::gateway::manifests(&policy)
                .into_iter()
                .find(|m| m["kind"] == "EnvoyProxy")
                .expect("an EnvoyProxy");
            let deployment = &eg["spec"]["provider"]["kubernetes"]["envoyDeployment"];
            for (mesh, init, volumes, proxy_mounts) in [
                (
                    "istio",
                    &pod["initContainers"],
                    &pod["volumes"],
                    &pod["containers"][0]["volumeMounts"],
                ),
                (
                    "envoy gateway",
                    &deployment["initContainers"],
                    &deployment["pod"]["volumes"],
                    &deployment["container"]["volumeMounts"],
                ),
            ] {
                assert_eq!(init[0]["name"] == NAME, wanted, "{mesh} {path}");
                assert_eq!(volumes[0]["name"] == LOG_VOLUME, wanted, "{mesh} {path}");
                assert_eq!(
                    proxy_mounts[0]["name"] == LOG_VOLUME,
                    wanted,
                    "{mesh} {path}"
                );
            }
        }
    }
}
