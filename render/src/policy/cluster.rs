//! `deploy.redis.external` in its Cluster form: the seed nodes and the Secret holding
//! their password, checked as `chokepoint-policy serve` checks `--redis-cluster-nodes`
//! (policy/src/config.rs, `validate_cluster`) so that a file the service would refuse at
//! start is refused here, with its field and line.

use super::kubernetes::secret_name;
use super::load::Ctx;
use super::redis_nodes::{self, word};
use super::{Cluster, PolicyError};
use crate::policy_file::RawExternalRedis;

/// The most seed nodes the service takes (policy/src/config.rs `MAX_CLUSTER_SEEDS`).
const MAX_CLUSTER_SEEDS: usize = 64;

/// The validated Cluster form of `ext` (whose `cluster_nodes` is given); `field` is
/// `deploy.redis.external`.
pub(super) fn cluster(
    cx: &Ctx,
    field: &str,
    ext: RawExternalRedis,
) -> Result<Cluster, PolicyError> {
    let f = |n: &str| format!("{field}.{n}");
    // `serve` refuses each beside --redis-cluster-nodes: a cluster fails over by itself,
    // and WAIT covers one node's writes while a usage batch spans slots.
    let sentinel_only = [
        ("master_name", ext.master_name.is_some()),
        (
            "sentinel_password_secret",
            ext.sentinel_password_secret.is_some(),
        ),
        ("wait_replicas", ext.wait_replicas.is_some()),
    ];
    if let Some((name, _)) = sentinel_only.iter().find(|(_, set)| *set) {
        return Err(cx.err(
            f(name),
            "applies to sentinels only, not to cluster_nodes (a cluster fails over by itself, \
             and Redis WAIT covers one node's writes)",
        ));
    }
    let nodes = ext.cluster_nodes.unwrap_or_default();
    redis_nodes::addresses(
        cx,
        &f("cluster_nodes"),
        &nodes,
        (MAX_CLUSTER_SEEDS, "seed nodes"),
        "name at least one node (host:port); the service learns the rest from the first \
         that answers",
    )?;
    if let Some(user) = &ext.username {
        word(user, 256).map_err(|m| cx.err(f("username"), m))?;
    }
    if let Some(s) = &ext.password_secret {
        secret_name(s).map_err(|m| cx.err(f("password_secret"), m))?;
    }
    Ok(Cluster {
        nodes,
        username: ext.username,
        password_secret: ext.password_secret,
    })
}
