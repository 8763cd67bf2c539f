//! The admin API's round trips: limit sets (written atomically with their index entry),
//! and the top-spender rankings.

use std::collections::HashMap;

use super::{Store, StoreError};

impl Store {
    /// Replaces the hash at `key` with `fields` and adds `member` to `index`, in one
    /// MULTI/EXEC: a reader never sees a half-written set.
    pub async fn replace_hash_indexed(
        &self,
        key: &str,
        fields: &[(&str, String)],
        index: &str,
        member: &str,
    ) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .del(key)
            .ignore()
            .hset_multiple(key, fields)
            .ignore()
            .sadd(index, member)
            .ignore();
        self.bounded(|mut connection| async move { pipe.query_async::<()>(&mut connection).await })
            .await
    }

    /// Deletes `key` and its `index` entry atomically; whether the key existed.
    pub async fn delete_indexed(
        &self,
        key: &str,
        index: &str,
        member: &str,
    ) -> Result<bool, StoreError> {
        let mut pipe = redis::pipe();
        pipe.atomic().del(key).srem(index, member).ignore();
        let (deleted,): (u64,) = self
            .bounded(|mut connection| async move { pipe.query_async(&mut connection).await })
            .await?;
        Ok(deleted > 0)
    }

    /// `HGETALL key`: empty when the key does not exist.
    pub async fn hash(&self, key: &str) -> Result<HashMap<String, String>, StoreError> {
        let mut command = redis::cmd("HGETALL");
        command.arg(key);
        self.bounded(|mut connection| async move { command.query_async(&mut connection).await })
            .await
    }

    /// `SMEMBERS index`, then every hash `key_of(member)` in one pipelined round trip.
    pub async fn indexed_hashes(
        &self,
        index: &str,
        key_of: impl Fn(&str) -> Option<String>,
    ) -> Result<Vec<(String, HashMap<String, String>)>, StoreError> {
        let mut command = redis::cmd("SMEMBERS");
        command.arg(index);
        let members: Vec<String> = self
            .bounded(|mut connection| async move { command.query_async(&mut connection).await })
            .await?;
        let members: Vec<(String, String)> = members
            .into_iter()
            .filter_map(|member| key_of(&member).map(|key| (member, key)))
            .collect();
        if members.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for (_, key) in &members {
            pipe.hgetall(key);
        }
        let hashes: Vec<HashMap<String, String>> = self
            .bounded(|mut connection| async move { pipe.query_async(&mut connection).await })
            .await?;
        Ok(members
            .into_iter()
            .map(|(member, _)| member)
            .zip(hashes)
            .collect())
    }

    /// The `count` highest members of a sorted set, highest first.
    pub async fn top_members(&self, key: &str, count: u64) -> Result<Vec<String>, StoreError> {
        let Some(last) = count.checked_sub(1) else {
            return Ok(Vec::new());
        };
        let mut command = redis::cmd("ZREVRANGE");
        command.arg(key).arg(0).arg(last);
        self.bounded(|mut connection| async move { command.query_async(&mut connection).await })
            .await
    }

    /// `HMGET key fields…` for many keys in one pipelined round trip.
    pub async fn hashes_integers(
        &self,
        keys: &[String],
        fields: &[&str],
    ) -> Result<Vec<Vec<Option<i64>>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for key in keys {
            pipe.cmd("HMGET").arg(key).arg(fields);
        }
        self.bounded(|mut connection| async move { pipe.query_async(&mut connection).await })
            .await
    }
}

impl Store {
    /// The newest id a trim removed from the stream at `key` (`XINFO STREAM`'s
    /// `max-deleted-entry-id`, Redis 7): `0-0` when nothing was, `None` without the stream.
    pub async fn stream_trimmed_up_to(&self, key: &str) -> Result<Option<String>, StoreError> {
        let mut command = redis::cmd("XINFO");
        command.arg("STREAM").arg(key);
        let reply: Result<HashMap<String, redis::Value>, StoreError> = self
            .bounded(|mut connection| async move { command.query_async(&mut connection).await })
            .await;
        let Ok(info) = reply else { return Ok(None) };
        Ok(info
            .get("max-deleted-entry-id")
            .and_then(|v| redis::from_redis_value::<String>(v.clone()).ok()))
    }

    /// `XRANGE key start end COUNT count` with each entry's fields: one page of a stream.
    pub async fn stream_page(
        &self,
        key: &str,
        start: &str,
        end: &str,
        count: usize,
    ) -> Result<Vec<(String, HashMap<String, String>)>, StoreError> {
        let mut command = redis::cmd("XRANGE");
        command.arg(key).arg(start).arg(end).arg("COUNT").arg(count);
        let reply: Vec<(String, Vec<String>)> = self
            .bounded(|mut connection| async move { command.query_async(&mut connection).await })
            .await?;
        Ok(reply
            .into_iter()
            .map(|(id, flat)| {
                let fields = flat
                    .chunks_exact(2)
                    .map(|kv| (kv[0].clone(), kv[1].clone()))
                    .collect();
                (id, fields)
            })
            .collect())
    }
}
