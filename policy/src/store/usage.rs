//! Usage-ledger round trips: committing records with `scripts/record_usage.lua` and
//! reading ledger totals.

use redis::{ErrorKind, ServerErrorKind, Value};

use super::{Store, StoreError};
use crate::keys;

/// Everything `record_usage.lua` needs for one record (see the script's header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageWrite {
    pub seen_key: String,
    /// The request's reservation record, released by the commit.
    pub reservation_key: String,
    /// The scopes the record names, in the order user, tenant, model, cost centre.
    pub scopes: Vec<ScopeWrite>,
    pub record_json: String,
    /// The UTC day the record is booked on (`YYYY-MM-DD`), logged next to it.
    pub day: String,
    /// The service's clock when the batch arrived: rolling budget windows book here.
    pub now_ms: u64,
    /// Input plus output tokens, at most 2^53: what budgets and tpm count.
    pub tokens: u64,
    pub cost_micros: u64,
    pub increments: Vec<(&'static str, u64)>,
}

/// One scope of a usage record: its id and the nine keys the script's header lists
/// per scope, in that order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeWrite {
    pub id: String,
    pub keys: [String; 9],
}

/// What happened to a batch. The counts are exact even when `error` is set: a record
/// is booked by one atomic script call or not at all, so the ones that went through
/// stay booked and the rest were left untouched.
#[derive(Debug, Default)]
pub struct UsageTally {
    pub booked: u64,
    pub duplicates: u64,
    /// Records not processed because Redis failed (the first such failure is `error`).
    pub failed: u64,
    pub error: Option<StoreError>,
}

impl Store {
    /// Books `writes` in order, one script call each, pipelined in one round trip.
    ///
    /// Unlike `ScriptInvocation::invoke_async`, a pipeline does not reload a script
    /// Redis lost (restart, failover, `SCRIPT FLUSH`), so this does it: the calls that
    /// answered NOSCRIPT are sent again, in order, after one `SCRIPT LOAD`. Re-sending is
    /// safe because a call that answered NOSCRIPT never ran.
    pub async fn book_usage(
        &self,
        writes: &[UsageWrite],
        dedupe_secs: u64,
        audit_log_key: &str,
        audit_log_max_len: u64,
    ) -> UsageTally {
        let mut tally = UsageTally::default();
        let mut pending: Vec<&UsageWrite> = writes.iter().collect();
        let mut first_error: Option<StoreError> = None;
        // One reload is enough; scripts vanishing again at once means something keeps
        // flushing them, and the filter's retry is the better next attempt.
        for attempt in 0..2 {
            let replies = match self
                .run_usage_pipeline(&pending, dedupe_secs, audit_log_key, audit_log_max_len)
                .await
            {
                Ok(replies) => replies,
                Err(err) => {
                    tally.failed += pending.len() as u64;
                    tally.error = Some(err);
                    return tally;
                }
            };
            let mut unloaded = Vec::new();
            for (write, reply) in pending.iter().zip(replies) {
                match reply {
                    Ok(Value::Int(1)) => tally.booked += 1,
                    Ok(Value::Int(0)) => tally.duplicates += 1,
                    Err(err)
                        if attempt == 0
                            && err.kind() == ErrorKind::Server(ServerErrorKind::NoScript) =>
                    {
                        unloaded.push(*write);
                    }
                    Err(err) => {
                        tally.failed += 1;
                        first_error.get_or_insert(StoreError::Redis(err));
                    }
                    Ok(other) => {
                        tally.failed += 1;
                        first_error.get_or_insert(StoreError::UnexpectedReply(format!(
                            "record_usage.lua returned {other:?}"
                        )));
                    }
                }
            }
            if unloaded.is_empty() {
                break;
            }
            let mut connection = self.inner.connection.clone();
            let script = &self.inner.record_usage;
            if let Err(err) = self
                .bounded(async move { script.prepare_invoke().load_async(&mut connection).await })
                .await
            {
                tally.failed += unloaded.len() as u64;
                tally.error = Some(err);
                return tally;
            }
            pending = unloaded;
        }
        // Counted once per batch, like any other failed round trip.
        tally.error = first_error.map(|err| self.record(err));
        tally
    }

    /// One round trip; per-call errors come back in the vector, not as `Err`.
    async fn run_usage_pipeline(
        &self,
        writes: &[&UsageWrite],
        dedupe_secs: u64,
        audit_log_key: &str,
        audit_log_max_len: u64,
    ) -> Result<Vec<redis::RedisResult<Value>>, StoreError> {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for write in writes {
            let mut invocation = self.inner.record_usage.key(&write.seen_key);
            invocation.key(audit_log_key).key(&write.reservation_key);
            for scope in &write.scopes {
                for key in &scope.keys {
                    invocation.key(key);
                }
            }
            invocation
                .arg(dedupe_secs)
                .arg(audit_log_max_len)
                .arg(&write.record_json)
                .arg(&write.day)
                .arg(write.now_ms)
                .arg(write.tokens)
                .arg(write.cost_micros);
            for scope in &write.scopes {
                invocation.arg(&scope.id);
            }
            for (field, increment) in &write.increments {
                invocation.arg(*field).arg(*increment);
            }
            pipe.invoke_script(&invocation);
        }
        let mut connection = self.inner.connection.clone();
        self.bounded(async move { pipe.query_async(&mut connection).await })
            .await
    }

    /// Releases unused lease slots (release.lua, pipelined); returns how many still held
    /// something. Idempotent, so the filter may retry a batch freely.
    pub async fn release_slots(&self, ids: &[String]) -> Result<u64, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        for attempt in 0..2 {
            let mut pipe = redis::pipe();
            pipe.ignore_errors();
            for id in ids {
                let invocation = self.inner.release.key(keys::reservation_key(id));
                pipe.invoke_script(&invocation);
            }
            let mut connection = self.inner.connection.clone();
            let replies: Vec<redis::RedisResult<Value>> = self
                .bounded(async move { pipe.query_async(&mut connection).await })
                .await?;
            let mut released = 0;
            let mut unloaded = false;
            for reply in replies {
                match reply {
                    Ok(Value::Int(n)) => released += u64::try_from(n).unwrap_or(0),
                    Err(err) if err.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                        unloaded = true;
                    }
                    Err(err) => return Err(self.record(StoreError::Redis(err))),
                    Ok(other) => {
                        return Err(self.record(StoreError::UnexpectedReply(format!(
                            "release.lua returned {other:?}"
                        ))))
                    }
                }
            }
            if !unloaded || attempt == 1 {
                return Ok(released);
            }
            let mut connection = self.inner.connection.clone();
            let script = &self.inner.release;
            self.bounded(async move { script.prepare_invoke().load_async(&mut connection).await })
                .await?;
        }
        Ok(0)
    }

    /// `HMGET key fields…` as integers; `None` for a field (or key) that does not exist.
    pub async fn hash_integers(
        &self,
        key: &str,
        fields: &[&str],
    ) -> Result<Vec<Option<i64>>, StoreError> {
        let mut connection = self.inner.connection.clone();
        let mut command = redis::cmd("HMGET");
        command.arg(key).arg(fields);
        self.bounded(async move { command.query_async(&mut connection).await })
            .await
    }
}
