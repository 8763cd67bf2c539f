//! The headers a request carries upstream: the chosen provider's cluster (or its fallback
//! chain's aggregate cluster), its key where the filter injects it, readable answers asked
//! for, and the organisation's view of the caller only where every provider the request
//! may reach is the organisation's own. Written by `forward`, or by `await_body` when the
//! headers must leave before the body is read.

use crate::flow::step::Cx;
use crate::flow::{
    chain_cluster, CLUSTER_HEADER, COST_CENTER_HEADER, GROUPS_HEADER, TENANT_HEADER, USER_HEADER,
};
use crate::providers::reply::{self, Reply};

pub fn write_headers(cx: &mut Cx<'_>) -> Result<(), Reply> {
    if let Some(m) = cx.facts.mcp.as_ref() {
        return match m.server {
            Some(server) => write_mcp_headers(cx, server),
            None => Err(reply::internal("no_mcp_server")),
        };
    }
    let rt = cx.rt;
    let index = cx.facts.provider.unwrap_or(0);
    let (Some(provider), Some(key), Some(caller)) = (
        rt.config.providers.get(index),
        rt.provider_keys.get(index),
        cx.facts.caller.as_ref(),
    ) else {
        return Err(reply::internal("no_provider"));
    };
    let chain = &cx.facts.chain;
    // The organisation's own view of the caller goes only where every provider the
    // request may reach (a fallback chain's included) is the organisation's own.
    let internal = if chain.is_empty() {
        provider.internal
    } else {
        chain
            .iter()
            .all(|i| rt.config.providers.get(*i).is_some_and(|p| p.internal))
    };
    let identity = |value: Option<&str>| value.filter(|_| internal).map(str::to_owned);
    // Joined only for a header that is written.
    let groups = internal.then(|| caller.groups.join(","));
    let key = rt
        .config
        .inject_keys_downstream
        .then(|| format!("{}{}", provider.key_prefix, key));
    let cluster = cluster_for(cx, index);
    let headers = [
        (provider.key_header.as_str(), key),
        (CLUSTER_HEADER, Some(cluster)),
        // Bodies must be readable for accounting: ask providers not to compress.
        ("accept-encoding", Some("identity".to_string())),
        (USER_HEADER, identity(Some(&caller.user))),
        (TENANT_HEADER, identity(caller.tenant.as_deref())),
        (GROUPS_HEADER, groups),
        (COST_CENTER_HEADER, identity(caller.cost_center.as_deref())),
    ];
    for (name, value) in headers {
        match value {
            Some(v) if !v.is_empty() => cx
                .host
                .set_request_header(name, Some(&v))
                .map_err(|e| cx.host_failed(e))?,
            _ => {}
        }
    }
    Ok(())
}

/// The cluster a request goes to: the provider's own, or for a fallback chain the
/// aggregate cluster `chain_<p1>__<p2>...` that Envoy retries through in order.
fn cluster_for(cx: &Cx<'_>, index: usize) -> String {
    let providers = &cx.rt.config.providers;
    let chain = &cx.facts.chain;
    if chain.len() > 1 {
        let names: Vec<&str> = chain
            .iter()
            .filter_map(|i| providers.get(*i).map(|p| p.name.as_str()))
            .collect();
        return chain_cluster(&names);
    }
    providers
        .get(index)
        .map_or_else(String::new, |p| p.cluster.clone())
}

/// An MCP server's: its cluster, its own endpoint path, its credential where the filter
/// sets it (the client's token is long gone: `strip`), and readable answers, since lists
/// are filtered and outcomes recorded. No identity headers: a server learns nothing of
/// the caller but what the client itself sends.
fn write_mcp_headers(cx: &mut Cx<'_>, index: usize) -> Result<(), Reply> {
    let rt = cx.rt;
    let Some(server) = rt.config.mcp.as_ref().and_then(|m| m.servers.get(index)) else {
        return Err(reply::internal("no_mcp_server"));
    };
    let credential = rt.mcp_credentials.get(index).and_then(Option::as_deref);
    let headers = [
        (":path", Some(server.path.as_str())),
        (CLUSTER_HEADER, Some(server.cluster.as_str())),
        ("accept-encoding", Some("identity")),
        (
            server.credential.as_ref().map_or("", |c| c.header.as_str()),
            credential,
        ),
    ];
    for (name, value) in headers {
        if let (false, Some(v)) = (name.is_empty(), value) {
            cx.host
                .set_request_header(name, Some(v))
                .map_err(|e| cx.host_failed(e))?;
        }
    }
    Ok(())
}
