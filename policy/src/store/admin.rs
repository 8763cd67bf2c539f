//! The admin API's round trips: limit sets (written atomically with their index entry
//! on one Redis, in a reader-safe order on a cluster), and the top-spender rankings.

use std::collections::HashMap;

use super::pipeline::Keyed;
use super::{Store, StoreError};

impl Store {
    /// Replaces the hash at `key` with `fields` and adds `member` to `index`: a reader
    /// never sees a half-written set.
    ///
    /// One Redis does both in one MULTI/EXEC. A cluster cannot (the set and the index
    /// live in different slots, so on different nodes): there the index entry is added
    /// first and the set replaced after it in its own MULTI. In between a reader of the
    /// index finds a member without a hash (or with its old one), which every reader
    /// already skips as "deleted between the two reads" (or shows as before), so what it
    /// sees is the old state or the new one, as with one MULTI. If the second step fails
    /// the caller gets an error and the entry stays without a set (skipped, as above)
    /// until the write is sent again.
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
            .ignore();
        if self.sharded() {
            self.set_add(index, member).await?;
        } else {
            pipe.sadd(index, member).ignore();
        }
        self.bounded(|mut connection| async move { pipe.query_async::<()>(&mut connection).await })
            .await
    }

    /// Deletes `key` and its `index` entry (atomically on one Redis); whether the key
    /// existed.
    ///
    /// On a cluster (see [`Store::replace_hash_indexed`]) the key goes first and its
    /// entry after it: a reader in between finds an entry without a hash, and skips it.
    pub async fn delete_indexed(
        &self,
        key: &str,
        index: &str,
        member: &str,
    ) -> Result<bool, StoreError> {
        if self.sharded() {
            let mut command = redis::cmd("DEL");
            command.arg(key);
            let deleted: u64 = self
                .bounded(|mut connection| async move { command.query_async(&mut connection).await })
                .await?;
            let mut command = redis::cmd("SREM");
            command.arg(index).arg(member);
            self.bounded(|mut connection| async move {
                command.query_async::<u64>(&mut connection).await
            })
            .await?;
            return Ok(deleted > 0);
        }
        let mut pipe = redis::pipe();
        pipe.atomic().del(key).srem(index, member).ignore();
        let (deleted,): (u64,) = self
            .bounded(|mut connection| async move { pipe.query_async(&mut connection).await })
            .await?;
        Ok(deleted > 0)
    }

    /// `SADD index member`.
    async fn set_add(&self, index: &str, member: &str) -> Result<(), StoreError> {
        let mut command = redis::cmd("SADD");
        command.arg(index).arg(member);
        self.bounded(
            |mut connection| async move { command.query_async::<u64>(&mut connection).await },
        )
        .await
        .map(drop)
    }

    /// `HGETALL key`: empty when the key does not exist.
    pub async fn hash(&self, key: &str) -> Result<HashMap<String, String>, StoreError> {
        let mut command = redis::cmd("HGETALL");
        command.arg(key);
        self.bounded(|mut connection| async move { command.query_async(&mut connection).await })
            .await
    }

    /// `SMEMBERS index`, then every hash `key_of(member)` in one pipelined round trip
    /// (one per slot on a cluster).
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
        let hashes: Vec<HashMap<String, String>> = self
            .pipelined(
                members
                    .iter()
                    .map(|(_, key)| {
                        let mut command = redis::cmd("HGETALL");
                        command.arg(key);
                        Keyed::new(key, command)
                    })
                    .collect(),
            )
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

    /// `HMGET key fields…` for many keys in one pipelined round trip (one per slot on a
    /// cluster).
    pub async fn hashes_integers(
        &self,
        keys: &[String],
        fields: &[&str],
    ) -> Result<Vec<Vec<Option<i64>>>, StoreError> {
        self.pipelined(
            keys.iter()
                .map(|key| {
                    let mut command = redis::cmd("HMGET");
                    command.arg(key).arg(fields);
                    Keyed::new(key, command)
                })
                .collect(),
        )
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
