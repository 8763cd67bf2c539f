//! Usage-ledger round trips: committing records with `scripts/record_usage.lua`,
//! releasing lease slots with `scripts/release.lua`, and reading ledger totals.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use redis::{ErrorKind, RedisError, ServerErrorKind, Value};

use super::hash_tag::one_tag;
use super::link::may_mean_failover;
use super::{Store, StoreError};
use crate::config::RedisWait;
use crate::keys;
use crate::ledger::Retention;

/// Most records one `record_usage.lua` call books. A call's cost is mostly per call and
/// per key it touches, and a batch's records mostly share their keys, so larger chunks
/// cost Redis less per record; the cap bounds how long one call holds Redis, which
/// serves nothing else meanwhile (64 records of one user take about a millisecond; see
/// `examples/usage_bench.rs`).
const USAGE_CHUNK: usize = 64;

/// Most lease slots one `release.lua` call releases (a lease holds at most 64).
const RELEASE_CHUNK: usize = 64;

/// Everything `record_usage.lua` needs for one record (see the script's header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageWrite {
    pub seen_key: String,
    /// The request's reservation record, released by the commit.
    pub reservation_key: String,
    /// The record's request id, and the id its reservation is under (its lease slot's,
    /// else its own): the cluster layout keys its markers and reservations by them.
    pub request_id: String,
    pub reservation_id: String,
    /// The scopes the record names, in the order user, tenant, model, cost centre;
    /// records of one batch share them.
    pub scopes: Vec<Arc<ScopeWrite>>,
    pub record_json: String,
    /// The UTC day the record is booked on (`YYYY-MM-DD`), logged next to it.
    pub day: String,
    /// The service's clock when the batch arrived: rolling budget windows book here.
    pub now_ms: u64,
    /// Input plus output tokens, at most 2^53: what budgets and tpm count.
    pub tokens: u64,
    pub cost_micros: u64,
    pub increments: Vec<(&'static str, u64)>,
    /// An MCP exchange's counts: (count hash, field) pairs, each adding 1 (see the
    /// script's "MCP"); empty for every other record.
    pub mcp_counts: Vec<(String, String)>,
    /// The tools' hash of the booking day and the record's tool, when it names one (see
    /// the script's "Client tools").
    pub client_tool: Option<(String, String)>,
}

/// One scope of a usage record: its id and the nine keys the script's header lists
/// per scope, in that order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeWrite {
    pub id: String,
    pub keys: [String; 9],
}

/// Which layout a `record_usage.lua` call has (see its header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    /// A whole chunk, every key of it.
    Whole,
    /// One hash tag's share of a chunk, in the cluster layout.
    Slot,
}

/// One `record_usage.lua` call: a whole chunk, or one hash tag's share of it.
pub(super) struct ChunkCall<'a> {
    pub shape: Shape,
    /// Whether the call logs its records in the audit stream (KEYS[1]).
    pub audit: bool,
    pub records: Vec<CallRecord<'a>>,
}

/// A record in a call: its marker, and what of it the call books.
pub(super) struct CallRecord<'a> {
    /// Its place in the chunk.
    pub at: usize,
    pub write: &'a UsageWrite,
    pub seen: Cow<'a, str>,
    pub reservations: Vec<Cow<'a, str>>,
    pub scopes: Vec<&'a Arc<ScopeWrite>>,
    pub counts: Vec<&'a (String, String)>,
    pub tool: Option<&'a (String, String)>,
}

impl<'a> ChunkCall<'a> {
    /// The same call's records, one per call.
    pub(super) fn one_record_each(self) -> Vec<ChunkCall<'a>> {
        let (shape, audit) = (self.shape, self.audit);
        self.records
            .into_iter()
            .map(|record| ChunkCall {
                shape,
                audit,
                records: vec![record],
            })
            .collect()
    }

    /// The documented layout: every record whole, in one call.
    fn whole(chunk: &'a [UsageWrite]) -> Self {
        ChunkCall {
            shape: Shape::Whole,
            audit: true,
            records: chunk
                .iter()
                .enumerate()
                .map(|(at, write)| CallRecord {
                    at,
                    write,
                    seen: Cow::Borrowed(&write.seen_key),
                    reservations: vec![Cow::Borrowed(&write.reservation_key)],
                    scopes: write.scopes.iter().collect(),
                    counts: write.mcp_counts.iter().collect(),
                    tool: write.client_tool.as_ref(),
                })
                .collect(),
        }
    }
}

/// What happened to a batch. The counts are exact even when `error` is set: a record
/// is booked by one atomic script call (its chunk's, or its own when the chunk failed)
/// or not at all, so the ones that went through stay booked and the rest were left
/// untouched.
#[derive(Debug, Default)]
pub struct UsageTally {
    pub booked: u64,
    pub duplicates: u64,
    /// Records not processed because Redis failed (the first such failure is `error`).
    pub failed: u64,
    pub error: Option<StoreError>,
}

impl Store {
    /// Books `writes` in order, up to [`USAGE_CHUNK`] records per script call, one
    /// call per round trip.
    ///
    /// A chunk that fails (a record in it failed a check, and the script checks before
    /// it writes, so nothing of the chunk was booked) is sent again one record per call,
    /// so only the records that cannot be booked fail and the tally stays exact per
    /// record. Those records are then booked after the chunks that followed theirs.
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
        retention: Retention,
    ) -> UsageTally {
        if self.sharded() {
            return self
                .book_usage_sharded(writes, dedupe_secs, audit_log_key, retention)
                .await;
        }
        let mut tally = UsageTally::default();
        let mut pending = usage_chunks(writes);
        let mut first_error: Option<StoreError> = None;
        let mut reloaded = false;
        // Ends: a chunk is re-sent only after NOSCRIPT (once: one reload is enough, as
        // scripts vanishing again at once means something keeps flushing them, and the
        // filter's retry is the better next attempt) or split into chunks of one, which
        // are never split again.
        while !pending.is_empty() {
            // One chunk per round trip, not one pipeline: a chunk holds Redis for about a
            // millisecond, and authorize calls share this connection (unless WAIT gives
            // the ledger its own), so they wait behind at most one chunk rather than
            // behind a whole batch.
            let mut replies = Vec::with_capacity(pending.len());
            for chunk in &pending {
                let answered = self
                    .run_usage_chunk(
                        &writes[chunk.clone()],
                        dedupe_secs,
                        audit_log_key,
                        retention,
                    )
                    .await;
                match answered {
                    Ok(r) => replies.push(r),
                    Err(err) => {
                        // The chunks answered so far stand; this one and the rest failed.
                        for (chunk, reply) in pending.iter().zip(replies) {
                            match chunk_outcome(reply, chunk.len()) {
                                Ok(booked) => {
                                    tally.booked += booked;
                                    tally.duplicates += chunk.len() as u64 - booked;
                                }
                                Err(_) => tally.failed += chunk.len() as u64,
                            }
                        }
                        let answered_chunks = pending.iter().position(|c| c == chunk);
                        tally.failed += pending
                            .iter()
                            .skip(answered_chunks.unwrap_or(0))
                            .map(|c| c.len() as u64)
                            .sum::<u64>();
                        tally.error = Some(err);
                        return tally;
                    }
                }
            }
            let mut next = Vec::new();
            let mut unloaded = false;
            for (chunk, reply) in pending.iter().zip(replies) {
                match chunk_outcome(reply, chunk.len()) {
                    Ok(booked) => {
                        tally.booked += booked;
                        tally.duplicates += chunk.len() as u64 - booked;
                    }
                    Err(StoreError::Redis(err)) if !reloaded && is_noscript(&err) => {
                        unloaded = true;
                        next.push(chunk.clone());
                    }
                    // A demoted primary refuses every write alike: splitting the chunk
                    // would only send each record to it again.
                    Err(err)
                        if chunk.len() > 1
                            && !is_noscript_error(&err)
                            && !may_mean_failover(&err) =>
                    {
                        next.extend(chunk.clone().map(|i| i..i + 1));
                    }
                    Err(err) => {
                        tally.failed += chunk.len() as u64;
                        first_error.get_or_insert(err);
                    }
                }
            }
            if unloaded {
                reloaded = true;
                let script = &self.inner.record_usage;
                if let Err(err) = self
                    .bounded_ledger(|mut connection| async move {
                        script.prepare_invoke().load_async(&mut connection).await
                    })
                    .await
                {
                    tally.failed += next.iter().map(|chunk| chunk.len() as u64).sum::<u64>();
                    tally.error = Some(err);
                    return tally;
                }
            }
            next.sort_by_key(|chunk| chunk.start);
            pending = next;
        }
        // Counted once per batch, like any other failed round trip.
        tally.error = first_error.map(|err| self.record(err));
        if tally.error.is_none() {
            if let Some(wait) = self.inner.wait {
                tally.error = self.wait_for_replicas(wait).await.err();
            }
        }
        tally
    }

    /// `WAIT replicas timeout` on the ledger's connection, after its writes: Ok when
    /// enough replicas hold everything this connection wrote, the records of earlier
    /// (duplicate) sends included.
    pub(super) async fn wait_for_replicas(&self, wait: RedisWait) -> Result<(), StoreError> {
        let mut command = redis::cmd("WAIT");
        command
            .arg(wait.replicas)
            .arg(u64::try_from(wait.timeout.as_millis()).unwrap_or(u64::MAX));
        let acknowledged: i64 = self
            .bounded_ledger(
                |mut connection| async move { command.query_async(&mut connection).await },
            )
            .await?;
        let short = acknowledged < i64::from(wait.replicas);
        // Redis answered, so it is up: logged on transitions of its own, not as an outage
        // (authorize calls keep succeeding meanwhile).
        if self.inner.unreplicated.swap(short, Ordering::Relaxed) != short {
            if short {
                log::warn!(
                    "only {acknowledged} of {} replicas acknowledged a usage batch within {} ms; \
                     answering 503 to usage batches (the gateway keeps them) until enough do",
                    wait.replicas,
                    wait.timeout.as_millis()
                );
            } else {
                log::info!("{} replicas acknowledge usage batches again", wait.replicas);
            }
        }
        if !short {
            return Ok(());
        }
        self.inner.errors.fetch_add(1, Ordering::Relaxed);
        Err(StoreError::Unreplicated {
            wanted: wait.replicas,
            acknowledged,
        })
    }

    /// One chunk: sent with its per-group sums only, and once more with each record's
    /// amounts when the script asks for them (a duplicate in the chunk, or no sums). The
    /// script's own error comes back as the inner result, not as `Err`.
    async fn run_usage_chunk(
        &self,
        chunk: &[UsageWrite],
        dedupe_secs: u64,
        audit_log_key: &str,
        retention: Retention,
    ) -> Result<redis::RedisResult<Value>, StoreError> {
        let call = ChunkCall::whole(chunk);
        self.run_chunk_call(&call, dedupe_secs, audit_log_key, retention, None)
            .await
    }

    /// One call of the script, with the amounts asked for when it wants them.
    pub(super) async fn run_chunk_call(
        &self,
        call: &ChunkCall<'_>,
        dedupe_secs: u64,
        audit_log_key: &str,
        retention: Retention,
        defaults: Option<&HashMap<String, String>>,
    ) -> Result<redis::RedisResult<Value>, StoreError> {
        let run = |details| {
            self.run_usage_script(
                call,
                dedupe_secs,
                audit_log_key,
                retention,
                defaults,
                details,
            )
        };
        match run(false).await? {
            Ok(Value::BulkString(reply)) if reply == b"details" => run(true).await,
            reply => Ok(reply),
        }
    }

    /// One round trip, one script call; `details`: send each record's amounts.
    /// `defaults`: the default limit sets read for a slot call, by key, as JSON.
    async fn run_usage_script<'a>(
        &self,
        call: &'a ChunkCall<'a>,
        dedupe_secs: u64,
        audit_log_key: &str,
        retention: Retention,
        defaults: Option<&HashMap<String, String>>,
        details: bool,
    ) -> Result<redis::RedisResult<Value>, StoreError> {
        // Built in a block: the map keyed by address is not `Send`, and must be gone
        // before the await.
        let built = {
            let mut invocation = self.inner.record_usage.prepare_invoke();
            let mut keys: Vec<&str> = Vec::new();
            if call.audit {
                keys.push(audit_log_key);
            }
            // Each distinct scope group once, numbered from 1 in order of first use. The
            // records of a batch share their groups' `Arc`s, so the address tells them
            // apart (two equal groups apart would only cost the script a second group).
            let mut groups: HashMap<*const ScopeWrite, usize> = HashMap::new();
            let mut group_order: Vec<&ScopeWrite> = Vec::new();
            let mut record_groups: Vec<Vec<usize>> = Vec::with_capacity(call.records.len());
            for record in &call.records {
                keys.push(&record.seen);
                keys.extend(record.reservations.iter().map(|key| key.as_ref()));
                let numbers = record
                    .scopes
                    .iter()
                    .map(|scope| {
                        *groups.entry(Arc::as_ptr(scope)).or_insert_with(|| {
                            group_order.push(scope);
                            group_order.len()
                        })
                    })
                    .collect();
                record_groups.push(numbers);
            }
            for scope in &group_order {
                match call.shape {
                    // Own set again in place of the default's, which is sent (see the
                    // script's "Cluster"); no rankings.
                    Shape::Slot => {
                        let [day, month, own, _, roll, ..] = &scope.keys;
                        keys.extend([day, month, own, own, roll].map(String::as_str));
                    }
                    Shape::Whole => keys.extend(scope.keys.iter().map(String::as_str)),
                }
            }
            // Each distinct count hash once, numbered from 1, after the groups.
            let mut count_hashes: HashMap<&'a str, usize> = HashMap::new();
            let mut record_counts: Vec<Vec<(usize, &str)>> = Vec::with_capacity(call.records.len());
            let mut record_tools: Vec<Option<(usize, &str)>> =
                Vec::with_capacity(call.records.len());
            for record in &call.records {
                let mut number_of = |key: &'a str| {
                    let next = count_hashes.len() + 1;
                    *count_hashes.entry(key).or_insert_with(|| next)
                };
                let counts = record
                    .counts
                    .iter()
                    .map(|(key, field)| (number_of(key.as_str()), field.as_str()))
                    .collect();
                record_counts.push(counts);
                let tool = record
                    .tool
                    .map(|(key, tool)| (number_of(key.as_str()), tool.as_str()));
                record_tools.push(tool);
            }
            let mut hashes: Vec<(&str, usize)> =
                count_hashes.iter().map(|(k, n)| (*k, *n)).collect();
            hashes.sort_by_key(|(_, n)| *n);
            keys.extend(hashes.iter().map(|(key, _)| *key));
            if cfg!(debug_assertions) && call.shape == Shape::Slot && !one_tag(keys.iter().copied())
            {
                return Err(self.record(StoreError::UnexpectedReply(format!(
                    "a cluster layout call of record_usage.lua spans hash tags: {keys:?}"
                ))));
            }
            for key in &keys {
                invocation.key(*key);
            }
            // `usage_chunks` gives every write of a chunk the same clock and fields.
            let Some(first) = call.records.first().map(|record| record.write) else {
                return Ok(Ok(Value::Array(Vec::new())));
            };
            invocation
                .arg(dedupe_secs)
                // 0: the audit stream is off (see the script's ARGV[2]).
                .arg(if retention.audit {
                    retention.max_len
                } else {
                    0
                })
                .arg(retention.max_age_ms())
                .arg(first.now_ms)
                .arg(call.records.len())
                .arg(hashes.len())
                .arg(first.increments.len());
            match call.shape {
                Shape::Whole => invocation.arg(""),
                Shape::Slot => {
                    let sent: Vec<serde_json::Value> = group_order
                        .iter()
                        .map(|scope| {
                            defaults
                                .and_then(|sets| sets.get(&scope.keys[3]))
                                .and_then(|json| serde_json::from_str(json).ok())
                                .unwrap_or_else(|| serde_json::json!({}))
                        })
                        .collect();
                    let shape = serde_json::json!({
                        "audit": u8::from(call.audit),
                        "resv": call.records.iter().map(|r| r.reservations.len()).collect::<Vec<_>>(),
                        "defaults": sent,
                    });
                    invocation.arg(shape.to_string())
                }
            };
            for (field, _) in &first.increments {
                invocation.arg(*field);
            }
            for scope in &group_order {
                invocation.arg(&scope.id);
            }
            let writes: Vec<&UsageWrite> = call.records.iter().map(|r| r.write).collect();
            let sums = group_sums(&writes, &record_groups, group_order.len());
            let details = details || sums.is_none();
            match sums {
                Some(sums) => {
                    invocation.arg(1);
                    for sum in sums {
                        invocation.arg(sum);
                    }
                }
                None => {
                    invocation.arg(0);
                }
            }
            // What the audit stream logs, sent only when a record is logged: the JSON
            // is most of a record's bytes, and Redis makes a Lua string of every argument.
            let logged = call.audit && retention.audit;
            for write in &writes {
                let (json, day) = if logged {
                    (write.record_json.as_str(), write.day.as_str())
                } else {
                    ("", "")
                };
                invocation.arg(json).arg(day).arg(write.tokens);
            }
            for ((counts, tool), write) in record_counts.iter().zip(&record_tools).zip(&writes) {
                invocation.arg(counts.len());
                for (number, field) in counts {
                    invocation.arg(*number).arg(*field);
                }
                match tool {
                    Some((number, name)) => {
                        invocation.arg(*number).arg(*name).arg(write.cost_micros);
                    }
                    None => {
                        invocation.arg(0);
                    }
                }
            }
            invocation.arg(u8::from(details));
            if details {
                for (write, numbers) in writes.iter().zip(&record_groups) {
                    invocation.arg(write.cost_micros);
                    for (_, increment) in &write.increments {
                        invocation.arg(*increment);
                    }
                    invocation.arg(numbers.len());
                    for number in numbers {
                        invocation.arg(*number);
                    }
                }
            }
            // A pipeline of one, for its per-call error: the script's own error is a reply.
            let mut pipe = redis::pipe();
            pipe.ignore_errors();
            pipe.invoke_script(&invocation);
            pipe
        };
        let pipe = built;
        let mut replies: Vec<redis::RedisResult<Value>> = self
            .bounded_ledger(|mut connection| async move { pipe.query_async(&mut connection).await })
            .await?;
        Ok(replies.pop().unwrap_or(Ok(Value::Nil)))
    }

    /// Releases unused lease slots (release.lua, up to [`RELEASE_CHUNK`] per call, the
    /// calls pipelined); returns how many still held something. Idempotent, so the
    /// filter may retry a batch freely.
    pub async fn release_slots(&self, ids: &[String]) -> Result<u64, StoreError> {
        if self.sharded() {
            return self.release_slots_sharded(ids).await;
        }
        let records: Vec<String> = ids.iter().map(|id| keys::reservation_key(id)).collect();
        let mut pending: Vec<&[String]> = records.chunks(RELEASE_CHUNK).collect();
        let mut released = 0;
        for attempt in 0..2 {
            if pending.is_empty() {
                break;
            }
            let mut pipe = redis::pipe();
            pipe.ignore_errors();
            for chunk in &pending {
                let mut invocation = self.inner.release.prepare_invoke();
                for record in *chunk {
                    invocation.key(record);
                }
                pipe.invoke_script(&invocation);
            }
            let replies: Vec<redis::RedisResult<Value>> = self
                .bounded(|mut connection| async move { pipe.query_async(&mut connection).await })
                .await?;
            let mut unloaded = Vec::new();
            for (chunk, reply) in pending.iter().zip(replies) {
                match reply {
                    Ok(Value::Int(n)) => released += u64::try_from(n).unwrap_or(0),
                    Err(err) if attempt == 0 && is_noscript(&err) => unloaded.push(*chunk),
                    Err(err) => return Err(self.record(StoreError::Redis(err))),
                    Ok(other) => {
                        return Err(self.record(StoreError::UnexpectedReply(format!(
                            "release.lua returned {other:?}"
                        ))))
                    }
                }
            }
            if !unloaded.is_empty() {
                let script = &self.inner.release;
                self.bounded(|mut connection| async move {
                    script.prepare_invoke().load_async(&mut connection).await
                })
                .await?;
            }
            pending = unloaded;
        }
        Ok(released)
    }

    /// `HMGET key fields…` as integers; `None` for a field (or key) that does not exist.
    pub async fn hash_integers(
        &self,
        key: &str,
        fields: &[&str],
    ) -> Result<Vec<Option<i64>>, StoreError> {
        let mut command = redis::cmd("HMGET");
        command.arg(key).arg(fields);
        self.bounded(|mut connection| async move { command.query_async(&mut connection).await })
            .await
    }
}

/// `writes` cut into consecutive chunks of up to [`USAGE_CHUNK`] that share what the
/// script takes once per call: the clock and the ledger field names.
pub(super) fn usage_chunks(writes: &[UsageWrite]) -> Vec<Range<usize>> {
    let mut chunks = Vec::new();
    let mut start = 0;
    for i in 1..=writes.len() {
        let ends = i == writes.len()
            || i - start == USAGE_CHUNK
            || writes[i].now_ms != writes[start].now_ms
            || !writes[i]
                .increments
                .iter()
                .map(|(field, _)| field)
                .eq(writes[start].increments.iter().map(|(field, _)| field));
        if ends {
            chunks.push(start..i);
            start = i;
        }
    }
    chunks
}

/// Largest sum `record_usage.lua` takes as one number (2^53: Lua numbers are doubles).
const MAX_EXACT: u64 = 1 << 53;

/// What each scope group's records add when all of them are booked, as the script wants
/// them: per group (numbered from 1 in `record_groups`), one sum per ledger field, then
/// tokens and cost. `None` when a sum passes [`MAX_EXACT`]: the script then adds the
/// records up itself, exactly.
fn group_sums(
    chunk: &[&UsageWrite],
    record_groups: &[Vec<usize>],
    groups: usize,
) -> Option<Vec<u64>> {
    let fields = chunk.first().map_or(0, |w| w.increments.len());
    let width = fields + 2;
    let mut sums = vec![0u64; groups * width];
    for (write, numbers) in chunk.iter().zip(record_groups) {
        let amounts = write
            .increments
            .iter()
            .map(|(_, v)| *v)
            .chain([write.tokens, write.cost_micros]);
        for &g in numbers {
            let at = g.checked_sub(1)? * width;
            for (sum, amount) in sums
                .get_mut(at..at + width)?
                .iter_mut()
                .zip(amounts.clone())
            {
                *sum = sum.checked_add(amount).filter(|s| *s <= MAX_EXACT)?;
            }
        }
    }
    Some(sums)
}

/// How many of a chunk's `len` records were booked (the others were duplicates), from
/// its reply: one 1 or 0 per record.
fn chunk_outcome(reply: redis::RedisResult<Value>, len: usize) -> Result<u64, StoreError> {
    let unexpected =
        |other: &Value| StoreError::UnexpectedReply(format!("record_usage.lua returned {other:?}"));
    match reply {
        Ok(Value::Array(items)) if items.len() == len => {
            let mut booked = 0;
            for item in &items {
                match item {
                    Value::Int(1) => booked += 1,
                    Value::Int(0) => {}
                    _ => return Err(unexpected(&Value::Array(items.clone()))),
                }
            }
            Ok(booked)
        }
        Ok(other) => Err(unexpected(&other)),
        Err(err) => Err(StoreError::Redis(err)),
    }
}

pub(super) fn is_noscript(err: &RedisError) -> bool {
    err.kind() == ErrorKind::Server(ServerErrorKind::NoScript)
}

fn is_noscript_error(err: &StoreError) -> bool {
    matches!(err, StoreError::Redis(err) if is_noscript(err))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(now_ms: u64, fields: &[&'static str]) -> UsageWrite {
        UsageWrite {
            seen_key: "ck:usage:seen:{r}".into(),
            reservation_key: "ck:resv:req:{r}".into(),
            request_id: "r".into(),
            reservation_id: "r".into(),
            scopes: Vec::new(),
            record_json: "{}".into(),
            day: "2026-11-26".into(),
            now_ms,
            tokens: 0,
            cost_micros: 0,
            increments: fields.iter().map(|field| (*field, 1)).collect(),
            mcp_counts: Vec::new(),
            client_tool: None,
        }
    }

    #[test]
    fn chunks_hold_at_most_64_records_sharing_clock_and_fields() {
        let two = ["requests", "cost_micros"];
        // (writes, chunks as (start, end))
        type Case = (Vec<UsageWrite>, Vec<(usize, usize)>);
        let cases: Vec<Case> = vec![
            (Vec::new(), Vec::new()),
            (vec![write(1, &two)], vec![(0, 1)]),
            (vec![write(1, &two); 64], vec![(0, 64)]),
            (
                vec![write(1, &two); 150],
                vec![(0, 64), (64, 128), (128, 150)],
            ),
            (
                [vec![write(1, &two); 3], vec![write(2, &two); 2]].concat(),
                vec![(0, 3), (3, 5)],
            ),
            (
                vec![
                    write(1, &two),
                    write(1, &["requests"]),
                    write(1, &["cost_micros", "requests"]),
                    write(1, &["cost_micros", "requests"]),
                ],
                vec![(0, 1), (1, 2), (2, 4)],
            ),
        ];
        for (writes, expected) in cases {
            let chunks: Vec<(usize, usize)> = usage_chunks(&writes)
                .into_iter()
                .map(|chunk| (chunk.start, chunk.end))
                .collect();
            assert_eq!(chunks, expected, "{} writes", writes.len());
        }
    }

    #[test]
    fn group_sums_add_each_records_amounts_to_its_groups_while_exact() {
        let amounts = |tokens: u64, cost: u64| UsageWrite {
            tokens,
            cost_micros: cost,
            ..write(1, &["requests", "cost_micros"])
        };
        // (records with their groups, groups, sums: per group requests, cost_micros
        // (the increments, 1 each), tokens, cost)
        type Case = (Vec<(UsageWrite, Vec<usize>)>, usize, Option<Vec<u64>>);
        let big = MAX_EXACT - 10;
        let cases: Vec<Case> = vec![
            (Vec::new(), 0, Some(Vec::new())),
            (vec![(amounts(5, 7), vec![1])], 1, Some(vec![1, 1, 5, 7])),
            (
                vec![(amounts(5, 7), vec![1, 2]), (amounts(1, 2), vec![2])],
                2,
                Some(vec![1, 1, 5, 7, 2, 2, 6, 9]),
            ),
            (
                vec![(amounts(big, 1), vec![1]), (amounts(10, 1), vec![1])],
                1,
                Some(vec![2, 2, MAX_EXACT, 2]),
            ),
            // Past 2^53 the script adds the records up itself.
            (
                vec![(amounts(big, 1), vec![1]), (amounts(11, 1), vec![1])],
                1,
                None,
            ),
            (vec![(amounts(u64::MAX, 0), vec![1])], 1, None),
            // Group numbers the service never gives out.
            (vec![(amounts(1, 1), vec![3])], 2, None),
            (vec![(amounts(1, 1), vec![0])], 2, None),
        ];
        for (records, groups, expected) in cases {
            let (chunk, numbers): (Vec<UsageWrite>, Vec<Vec<usize>>) = records.into_iter().unzip();
            let chunk: Vec<&UsageWrite> = chunk.iter().collect();
            assert_eq!(
                group_sums(&chunk, &numbers, groups),
                expected,
                "{numbers:?}"
            );
        }
    }

    #[test]
    fn a_chunk_reply_counts_booked_records_or_is_unexpected() {
        let ints = |v: &[i64]| Ok(Value::Array(v.iter().map(|n| Value::Int(*n)).collect()));
        assert_eq!(chunk_outcome(ints(&[1, 0, 1]), 3).ok(), Some(2));
        assert_eq!(chunk_outcome(ints(&[0]), 1).ok(), Some(0));
        for (reply, len) in [
            (ints(&[1, 1]), 3),
            (ints(&[1, 2]), 2),
            (Ok(Value::Int(1)), 1),
            (Ok(Value::Nil), 1),
        ] {
            assert!(matches!(
                chunk_outcome(reply, len),
                Err(StoreError::UnexpectedReply(_))
            ));
        }
    }
}
