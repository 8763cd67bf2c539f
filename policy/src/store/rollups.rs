//! The spend page's round trips: many rollup hashes or rankings read in one pipelined
//! round trip each, and the one write a denial makes (its refusal count).

use std::collections::HashMap;

use super::{Store, StoreError};

impl Store {
    /// `HGETALL` of every key, in one pipelined round trip; empty maps for keys that do
    /// not exist.
    pub async fn hashes(
        &self,
        keys: &[String],
    ) -> Result<Vec<HashMap<String, String>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for key in keys {
            pipe.hgetall(key);
        }
        self.bounded(|mut connection| async move { pipe.query_async(&mut connection).await })
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
        let mut pipe = redis::pipe();
        for key in keys {
            pipe.cmd("ZMSCORE").arg(key).arg(members);
        }
        self.bounded(|mut connection| async move { pipe.query_async(&mut connection).await })
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
