//! The spend page's round trips: many rollup hashes or rankings read in one pipelined
//! round trip each (one per slot on a cluster), and the one write a denial makes (its
//! refusal count).

use std::collections::HashMap;

use super::pipeline::Keyed;
use super::{Store, StoreError};

impl Store {
    /// `HGETALL` of every key, in one pipelined round trip; empty maps for keys that do
    /// not exist.
    pub async fn hashes(
        &self,
        keys: &[String],
    ) -> Result<Vec<HashMap<String, String>>, StoreError> {
        self.pipelined(
            keys.iter()
                .map(|key| {
                    let mut command = redis::cmd("HGETALL");
                    command.arg(key);
                    Keyed::new(key, command)
                })
                .collect(),
        )
        .await
    }

    /// `ZMSCORE key members…` for every key, in one pipelined round trip: per key, each
    /// member's score (`None` when it is not ranked there).
    pub async fn ranking_scores(
        &self,
        keys: &[String],
        members: &[String],
    ) -> Result<Vec<Vec<Option<f64>>>, StoreError> {
        if keys.is_empty() || members.is_empty() {
            return Ok(vec![vec![None; members.len()]; keys.len()]);
        }
        self.pipelined(
            keys.iter()
                .map(|key| {
                    let mut command = redis::cmd("ZMSCORE");
                    command.arg(key).arg(members);
                    Keyed::new(key, command)
                })
                .collect(),
        )
        .await
    }

    /// `HINCRBY key field 1`.
    pub async fn count(&self, key: &str, field: &str) -> Result<(), StoreError> {
        let mut command = redis::cmd("HINCRBY");
        command.arg(key).arg(field).arg(1);
        self.bounded(
            |mut connection| async move { command.query_async::<i64>(&mut connection).await },
        )
        .await
        .map(drop)
    }
}
