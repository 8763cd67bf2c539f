//! Health on a cluster: every primary answers, and each says `cluster_state:ok`.
//!
//! A `PING` to every primary is not enough there: a primary that just (re)started, or
//! one that lost sight of a failed node's slots, answers `PING` but refuses every key
//! with `CLUSTERDOWN` until its state is ok again.

use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo};
use redis::Value;

use super::link::Connection;
use super::{Store, StoreError};

impl Store {
    /// `CLUSTER INFO` on every primary the client knows, in one bounded round trip.
    pub(super) async fn cluster_ok(&self) -> Result<(), StoreError> {
        let reply: Value = self
            .bounded(|connection| async move {
                let mut command = redis::cmd("CLUSTER");
                command.arg("INFO");
                match connection {
                    Connection::Cluster(mut cluster) => {
                        cluster
                            .route_command(
                                command,
                                RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None)),
                            )
                            .await
                    }
                    Connection::Single(mut single) => command.query_async(&mut single).await,
                }
            })
            .await?;
        match not_ok(reply) {
            None => Ok(()),
            Some(why) => Err(self.record(StoreError::UnexpectedReply(why))),
        }
    }
}

/// Why the replies (a map of node address to `CLUSTER INFO`) do not show a serving
/// cluster, or `None` when they do.
fn not_ok(reply: Value) -> Option<String> {
    let Value::Map(nodes) = reply else {
        return Some(format!("CLUSTER INFO on every primary returned {reply:?}"));
    };
    if nodes.is_empty() {
        return Some("CLUSTER INFO: no primary known".to_owned());
    }
    nodes.into_iter().find_map(|(address, info)| {
        let address = text(&address).unwrap_or_else(|| "a primary".to_owned());
        match text(&info) {
            Some(info) if info.lines().any(|l| l.trim() == "cluster_state:ok") => None,
            Some(info) => {
                let state = info
                    .lines()
                    .find(|l| l.starts_with("cluster_state:"))
                    .unwrap_or("no cluster_state")
                    .trim()
                    .to_owned();
                Some(format!("CLUSTER INFO on {address}: {state}"))
            }
            None => Some(format!("CLUSTER INFO on {address} returned {info:?}")),
        }
    })
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(text) => Some(text.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    #[test]
    fn every_primary_must_say_ok() {
        let node = |address: &str, info: Value| (bulk(address), info);
        let ok = "cluster_state:ok\r\ncluster_slots_assigned:16384\r\n";
        // (reply, what the reason must name; None: healthy)
        let cases: Vec<(Value, Option<&str>)> = vec![
            (
                Value::Map(vec![node("a:1", bulk(ok)), node("b:2", bulk(ok))]),
                None,
            ),
            (
                Value::Map(vec![
                    node("a:1", bulk(ok)),
                    node("b:2", bulk("cluster_state:fail\r\n")),
                ]),
                Some("b:2: cluster_state:fail"),
            ),
            (
                Value::Map(vec![node("a:1", Value::Nil)]),
                Some("a:1 returned nil"),
            ),
            (Value::Map(vec![]), Some("no primary known")),
            (bulk(ok), Some("every primary returned")),
        ];
        for (reply, named) in cases {
            let why = not_ok(reply.clone());
            match named {
                None => assert_eq!(why, None, "{reply:?}"),
                Some(named) => {
                    let why = why.unwrap_or_else(|| panic!("{reply:?} passed"));
                    assert!(why.contains(named), "{why}");
                }
            }
        }
    }
}
