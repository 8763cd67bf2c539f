//! The `deploy.lockdown` section: which workload namespaces may reach the providers only
//! through the gateway, and the mesh identities the lockdown names.

use std::collections::{BTreeMap, HashSet};

use super::load::{dns_label, Ctx};
use super::{Lockdown, PolicyError};
use crate::policy_file::RawLockdown;

/// Istio's default ingress gateway's account: `{{ gateway.name }}-service-account` in
/// istio/istio `manifests/charts/gateways/istio-ingress/templates/serviceaccount.yaml`.
const GATEWAY_SERVICE_ACCOUNT: &str = "istio-ingressgateway-service-account";

/// Validates the section; `gateway_namespaces` are the namespaces the gateway and the
/// policy service run in, with the field naming each, which no lockdown may cover.
pub(super) fn lockdown(
    cx: &Ctx,
    raw: RawLockdown,
    gateway_namespaces: &[(&str, &str)],
) -> Result<Lockdown, PolicyError> {
    let f = |n: &str| format!("deploy.lockdown.{n}");
    let egress_namespace = raw
        .egress_gateway
        .namespace
        .unwrap_or_else(|| "istio-system".into());
    if !dns_label(&egress_namespace) {
        return Err(cx.err(f("egress_gateway.namespace"), "must be a DNS-1123 label"));
    }
    let mut taken: Vec<(&str, &str)> = gateway_namespaces.to_vec();
    taken.push((
        &egress_namespace,
        "deploy.lockdown.egress_gateway.namespace",
    ));
    taken.push(("kube-system", "Kubernetes itself"));
    let mut seen = HashSet::new();
    for (i, ns) in raw.namespaces.iter().enumerate() {
        let field = f(&format!("namespaces[{i}]"));
        if !dns_label(ns) {
            return Err(cx.err(field, format!("{ns:?} must be a DNS-1123 label")));
        }
        if !seen.insert(ns.as_str()) {
            return Err(cx.err(field, format!("{ns:?} is listed twice")));
        }
        if let Some((_, why)) = taken.iter().find(|(t, _)| *t == ns) {
            return Err(cx.err(
                field,
                format!(
                    "{ns:?} is a namespace the gateway or the mesh runs in ({why}): locked down, \
                     it would lose the egress the gateway itself needs"
                ),
            ));
        }
    }
    let gateway_service_account = raw
        .gateway_service_account
        .unwrap_or_else(|| GATEWAY_SERVICE_ACCOUNT.into());
    if !dns_subdomain(&gateway_service_account) {
        return Err(cx.err(
            f("gateway_service_account"),
            "must be a service account name (a DNS-1123 subdomain)",
        ));
    }
    let egress_selector = raw
        .egress_gateway
        .selector
        .unwrap_or_else(|| BTreeMap::from([("istio".into(), "egressgateway".into())]));
    if egress_selector.is_empty() {
        // An empty selector would put the policy on every workload of the namespace.
        return Err(cx.err(
            f("egress_gateway.selector"),
            "needs at least one label of the egress gateway's pods",
        ));
    }
    Ok(Lockdown {
        namespaces: raw.namespaces,
        gateway_service_account,
        egress_namespace,
        egress_selector,
    })
}

fn dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && !s.is_empty() && s.split('.').all(dns_label)
}
