//! The rest of a Kubernetes deployment, beside the mesh's own resources: the policy
//! service ([`policy_service`]) and its Redis ([`redis`]), with the Secrets they read
//! referenced by name only ([`secrets`]). Every object here is a core, apps or networking
//! kind, held to the official Kubernetes schema by the `manifests` test layer.

pub mod policy_service;
pub mod reconciler;
pub mod redis;
pub mod secrets;

use serde_json::{json, Value};

use crate::policy::{Policy, Resources};

/// The label every chokepoint object carries.
const PART_OF: (&str, &str) = ("app.kubernetes.io/part-of", "chokepoint");

/// The labels of a component's pods and objects (its selector plus `part-of`).
fn labels(name: &str) -> Value {
    json!({"app.kubernetes.io/name": name, PART_OF.0: PART_OF.1})
}

/// What a component's Deployment or StatefulSet selects its pods by: the name alone,
/// which is immutable once applied.
fn selector(name: &str) -> Value {
    json!({"matchLabels": {"app.kubernetes.io/name": name}})
}

fn metadata(policy: &Policy, name: &str, component: &str) -> Value {
    json!({"name": name, "namespace": policy.deploy.namespace, "labels": labels(component)})
}

fn resources(r: &Resources) -> Value {
    json!({
        "requests": {"cpu": r.requests.cpu, "memory": r.requests.memory},
        "limits": {"cpu": r.limits.cpu, "memory": r.limits.memory},
    })
}

/// A container that cannot gain privileges or write its own image: the Pod Security
/// Standards' `restricted` profile (kubernetes.io/docs/concepts/security/pod-security-standards).
fn container_security() -> Value {
    json!({
        "allowPrivilegeEscalation": false,
        "readOnlyRootFilesystem": true,
        "capabilities": {"drop": ["ALL"]},
    })
}

/// The pod side of the `restricted` profile, running as `uid`.
fn pod_security(uid: u32) -> Value {
    json!({
        "runAsNonRoot": true,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    })
}
