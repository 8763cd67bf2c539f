//! The ledger in the cluster layout. One record's keys carry several hash tags (its
//! user's, tenant's, model's and cost centre's ledgers, its reservation records in each
//! scope, the audit stream, the count hashes), so a chunk is booked by one
//! `record_usage.lua` call per tag it touches (the script's "Cluster"), all at once:
//!
//! - each call remembers its records in its own slot (`ck:usage:seen:{<tag>}:<id>`), so
//!   a chunk sent again (the filter's retry, or the chunk split after one call failed)
//!   repeats only what had not run, and nothing is booked twice;
//! - the audit stream's call goes last, with the records every other call took: its
//!   marker says a record was booked whole, and its answer (booked now, or seen
//!   before) is the record's, so concurrent sends of one record count it once;
//! - the kinds' default limit sets, which decide whether a scope has a rolling budget,
//!   are read first and sent, as for decisions (`sharded_authorize`);
//! - the top-spender rankings are set from the ledger's totals once the chunk is booked
//!   (`ZADD GT`, so a late or repeated write never lowers one), instead of adding to
//!   them in the script: a ranking has a slot of its own, and setting is exact however
//!   often it is repeated;
//! - each record's reservation index (`ck:resv:idx:{<id>}`) names its per-scope
//!   reservation records, released by the calls of their slots; the index goes last.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures_util::future::join_all;
use redis::Value;

use super::hash_tag::hash_tag;
use super::usage::{
    is_noscript, usage_chunks, CallRecord, ChunkCall, ScopeWrite, Shape, UsageTally, UsageWrite,
};
use super::{Store, StoreError};
use crate::keys;
use crate::ledger::{slot_seen_key, Retention};

impl Store {
    /// Books `writes` chunk by chunk (as `book_usage` does), each chunk's calls at once.
    pub(super) async fn book_usage_sharded(
        &self,
        writes: &[UsageWrite],
        dedupe_secs: u64,
        audit_log_key: &str,
        retention: Retention,
    ) -> UsageTally {
        let mut tally = UsageTally::default();
        let chunks = usage_chunks(writes);
        for (i, chunk) in chunks.iter().enumerate() {
            let outcomes = match self
                .book_sharded_chunk(
                    &writes[chunk.clone()],
                    dedupe_secs,
                    audit_log_key,
                    retention,
                )
                .await
            {
                Ok(outcomes) => outcomes,
                Err(err) => {
                    tally.failed += chunks[i..].iter().map(|c| c.len() as u64).sum::<u64>();
                    tally.error = Some(err);
                    return tally;
                }
            };
            for outcome in outcomes {
                match outcome {
                    Outcome::Booked => tally.booked += 1,
                    Outcome::Duplicate => tally.duplicates += 1,
                    Outcome::Failed(err) => {
                        tally.failed += 1;
                        tally.error.get_or_insert(err);
                    }
                }
            }
        }
        tally.error = tally.error.map(|err| self.record(err));
        if tally.error.is_none() {
            if let Some(wait) = self.inner.wait {
                tally.error = self.wait_for_replicas(wait).await.err();
            }
        }
        tally
    }

    /// One chunk: its calls at once; a call the script refused is sent again one
    /// record per call, so that only the records that cannot be booked fail, and a call
    /// Redis had lost the script for is sent again after loading it. `Err` when Redis
    /// could not be reached (what ran stays booked, and is not booked again on a retry).
    async fn book_sharded_chunk(
        &self,
        chunk: &[UsageWrite],
        dedupe_secs: u64,
        audit_log_key: &str,
        retention: Retention,
    ) -> Result<Vec<Outcome>, StoreError> {
        let mut default_keys: Vec<&str> = Vec::new();
        for scope in chunk.iter().flat_map(|write| &write.scopes) {
            if !default_keys.contains(&scope.keys[3].as_str()) {
                default_keys.push(&scope.keys[3]);
            }
        }
        let (reservations, sets) = tokio::join!(
            join_all(
                chunk
                    .iter()
                    .map(|write| self.reservation_records(&write.reservation_id))
            ),
            join_all(default_keys.iter().map(|key| self.hash(key)))
        );
        let reservations = reservations.into_iter().collect::<Result<Vec<_>, _>>()?;
        let mut defaults = HashMap::new();
        for (key, set) in default_keys.iter().zip(sets) {
            defaults.insert((*key).to_owned(), serde_json::json!(set?).to_string());
        }

        // The scopes' and count hashes' calls first; then the audit stream's, with the
        // records every other call took: its marker says a record was booked whole,
        // and its answer is the record's (booked now, or before), so concurrent sends
        // of one record count it once.
        let mut failed: Vec<Option<StoreError>> = (0..chunk.len()).map(|_| None).collect();
        let (mut audit, others): (Vec<_>, Vec<_>) =
            split_by_tag(chunk, &reservations, audit_log_key)
                .into_iter()
                .partition(|call| call.audit);
        let mut reloaded = false;
        let booking = Booking {
            dedupe_secs,
            audit_log_key,
            retention,
            defaults: &defaults,
        };
        self.run_calls(others, &mut failed, &mut reloaded, &booking)
            .await?;
        for call in &mut audit {
            call.records.retain(|record| failed[record.at].is_none());
        }
        audit.retain(|call| !call.records.is_empty());
        let booked = self
            .run_calls(audit, &mut failed, &mut reloaded, &booking)
            .await?;
        // Ranked from the ledgers of the scopes something was booked in: a scope whose
        // ledger could not be written (a record failed) may not be readable either.
        let ranked: Vec<&UsageWrite> = chunk
            .iter()
            .zip(&failed)
            .filter(|(_, failed)| failed.is_none())
            .map(|(write, _)| write)
            .collect();
        self.rank_from_ledgers(&ranked).await?;
        // The indexes of the records booked whole go: their reservations are released.
        let forgotten = join_all(
            chunk
                .iter()
                .zip(&failed)
                .filter(|(_, failed)| failed.is_none())
                .map(|(write, _)| {
                    let mut command = redis::cmd("DEL");
                    command.arg(keys::reservation_index_key(&write.reservation_id));
                    self.bounded_ledger(|mut connection| async move {
                        command.query_async::<u64>(&mut connection).await
                    })
                }),
        )
        .await;
        for outcome in forgotten {
            outcome?;
        }
        Ok(booked
            .into_iter()
            .zip(failed)
            .map(|(booked, failed)| match (failed, booked) {
                (Some(err), _) => Outcome::Failed(err),
                (None, true) => Outcome::Booked,
                (None, false) => Outcome::Duplicate,
            })
            .collect())
    }

    /// Runs `calls` at once until each record has its answer: a call the script refused
    /// is sent again one record per call, one Redis lost the script for is sent again
    /// after loading it (once per chunk). Returns per record of the chunk whether a call
    /// booked it, and sets `failed` for those that could not be.
    async fn run_calls(
        &self,
        calls: Vec<ChunkCall<'_>>,
        failed: &mut [Option<StoreError>],
        reloaded: &mut bool,
        booking: &Booking<'_>,
    ) -> Result<Vec<bool>, StoreError> {
        let run = |call| self.run_owned_call(call, booking);
        let mut booked = vec![false; failed.len()];
        let mut pending = calls;
        while !pending.is_empty() {
            let mut next = Vec::new();
            let mut unloaded = false;
            for (call, answer) in join_all(pending.into_iter().map(run)).await {
                match answer? {
                    Ok(Value::Array(items)) if items.len() == call.records.len() => {
                        for (record, item) in call.records.iter().zip(items) {
                            match item {
                                Value::Int(0) => {}
                                Value::Int(1) => booked[record.at] = true,
                                other => {
                                    failed[record.at] = Some(unexpected(&Value::Array(vec![other])))
                                }
                            }
                        }
                    }
                    Err(err) if !*reloaded && is_noscript(&err) => {
                        unloaded = true;
                        next.push(call);
                    }
                    Err(_) if call.records.len() > 1 => next.extend(call.one_record_each()),
                    Err(err) => {
                        for record in &call.records {
                            failed[record.at] = Some(StoreError::Redis(err.clone()));
                        }
                    }
                    Ok(other) => {
                        for record in &call.records {
                            failed[record.at] = Some(unexpected(&other));
                        }
                    }
                }
            }
            if unloaded {
                *reloaded = true;
                let script = &self.inner.record_usage;
                self.bounded_ledger(|mut connection| async move {
                    script.prepare_invoke().load_async(&mut connection).await
                })
                .await?;
            }
            pending = next;
        }
        Ok(booked)
    }

    /// One call, handed back with its answer.
    async fn run_owned_call<'c>(
        &self,
        call: ChunkCall<'c>,
        booking: &Booking<'_>,
    ) -> (ChunkCall<'c>, Result<redis::RedisResult<Value>, StoreError>) {
        let answer = self
            .run_chunk_call(
                &call,
                booking.dedupe_secs,
                booking.audit_log_key,
                booking.retention,
                Some(booking.defaults),
            )
            .await;
        (call, answer)
    }

    /// Sets each ranking of the chunk's scopes to its ledger total, read after booking.
    async fn rank_from_ledgers(&self, chunk: &[&UsageWrite]) -> Result<(), StoreError> {
        let mut scopes: Vec<&ScopeWrite> = Vec::new();
        for scope in chunk.iter().flat_map(|write| &write.scopes) {
            if !scopes.iter().any(|seen| std::ptr::eq(*seen, &**scope)) {
                scopes.push(scope);
            }
        }
        let totals = join_all(scopes.iter().flat_map(|scope| {
            [&scope.keys[0], &scope.keys[1]].map(|ledger| {
                self.hash_integers(ledger, &["cost_micros", "input_tokens", "output_tokens"])
            })
        }))
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
        let mut sets = Vec::new();
        for (scope, totals) in scopes.iter().zip(totals.chunks(2)) {
            // The rankings in the ledger's order: cost by day and month, tokens by day
            // and month (see `ledger::ScopeCache`).
            let [.., day_cost, month_cost, day_tokens, month_tokens] = &scope.keys;
            for (ledger, (cost_key, tokens_key)) in totals
                .iter()
                .zip([(day_cost, day_tokens), (month_cost, month_tokens)])
            {
                let value = |i: usize| ledger.get(i).copied().flatten().unwrap_or(0).max(0);
                let tokens = value(1).saturating_add(value(2));
                for (key, score) in [(cost_key, value(0)), (tokens_key, tokens)] {
                    // One call per record adds only amounts above zero.
                    if score > 0 {
                        sets.push((key.as_str(), score, scope.id.as_str()));
                    }
                }
            }
        }
        let ranked = join_all(sets.into_iter().map(|(key, score, member)| {
            let mut command = redis::cmd("ZADD");
            command.arg(key).arg("GT").arg(score).arg(member);
            self.bounded_ledger(|mut connection| async move {
                command.query_async::<u64>(&mut connection).await
            })
        }))
        .await;
        for outcome in ranked {
            outcome?;
        }
        Ok(())
    }
}

/// What every call of a chunk is sent with.
struct Booking<'a> {
    dedupe_secs: u64,
    audit_log_key: &'a str,
    retention: Retention,
    /// The chunk's default limit sets, by key, as JSON.
    defaults: &'a HashMap<String, String>,
}

/// What became of one record of a chunk.
enum Outcome {
    /// Some call booked some of it now.
    Booked,
    /// Every call had booked its share before.
    Duplicate,
    Failed(StoreError),
}

fn unexpected(reply: &Value) -> StoreError {
    StoreError::UnexpectedReply(format!("record_usage.lua returned {reply:?}"))
}

/// What of a record goes to one call.
enum Part<'a> {
    Scope(&'a Arc<ScopeWrite>),
    Reservation(&'a str),
    Count(&'a (String, String)),
    Tool(&'a (String, String)),
}

/// One call per hash tag the chunk touches, each with the records that touch it in
/// chunk order, the audit stream's first. `reservations`: per record, the per-scope
/// reservation records its index names.
fn split_by_tag<'a>(
    chunk: &'a [UsageWrite],
    reservations: &'a [Vec<String>],
    audit_log_key: &'a str,
) -> Vec<ChunkCall<'a>> {
    let mut calls: Vec<ChunkCall<'a>> = Vec::new();
    let mut by_tag: HashMap<&'a str, usize> = HashMap::new();
    let audit_tag = hash_tag(audit_log_key);
    // A reservation two records name is released by the first (as in the script).
    let mut claimed: HashSet<&str> = HashSet::new();
    for (at, (write, held)) in chunk.iter().zip(reservations).enumerate() {
        let held: &[String] = if claimed.insert(&write.reservation_id) {
            held
        } else {
            &[]
        };
        // This record's share of each call, in order of first use.
        let mut shares: Vec<(usize, CallRecord<'a>)> = Vec::new();
        let mut share = |tag: &'a str| -> usize {
            let call = *by_tag.entry(tag).or_insert_with(|| {
                calls.push(ChunkCall {
                    shape: Shape::Slot,
                    audit: tag == audit_tag,
                    records: Vec::new(),
                });
                calls.len() - 1
            });
            shares
                .iter()
                .position(|(c, _)| *c == call)
                .unwrap_or_else(|| {
                    shares.push((
                        call,
                        CallRecord {
                            at,
                            write,
                            seen: Cow::Owned(slot_seen_key(tag, &write.request_id)),
                            reservations: Vec::new(),
                            scopes: Vec::new(),
                            counts: Vec::new(),
                            tool: None,
                        },
                    ));
                    shares.len() - 1
                })
        };
        share(audit_tag);
        let mut parts: Vec<(usize, Part<'a>)> = Vec::new();
        for scope in &write.scopes {
            parts.push((share(hash_tag(&scope.keys[0])), Part::Scope(scope)));
        }
        for record in held {
            parts.push((share(hash_tag(record)), Part::Reservation(record)));
        }
        for count in &write.mcp_counts {
            parts.push((share(hash_tag(&count.0)), Part::Count(count)));
        }
        if let Some(tool) = &write.client_tool {
            parts.push((share(hash_tag(&tool.0)), Part::Tool(tool)));
        }
        for (at, part) in parts {
            let record = &mut shares[at].1;
            match part {
                Part::Scope(scope) => record.scopes.push(scope),
                Part::Reservation(key) => record.reservations.push(Cow::Borrowed(key)),
                Part::Count(count) => record.counts.push(count),
                Part::Tool(tool) => record.tool = Some(tool),
            }
        }
        for (call, record) in shares {
            calls[call].records.push(record);
        }
    }
    // The audit stream's call first: it holds every record.
    calls.sort_by_key(|call| !call.audit);
    calls
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(kind: &str, id: &str) -> Arc<ScopeWrite> {
        Arc::new(ScopeWrite {
            id: id.to_owned(),
            keys: [
                format!("ck:ledger:{kind}:{{{id}}}:2026-12-07"),
                format!("ck:ledger:{kind}:{{{id}}}:2026-12"),
                format!("ck:limits:{kind}:{{{id}}}"),
                format!("ck:limits:{kind}:{{*}}"),
                format!("ck:roll:{kind}:{{{id}}}"),
                format!("ck:top:{kind}:cost_micros:2026-12-07"),
                format!("ck:top:{kind}:cost_micros:2026-12"),
                format!("ck:top:{kind}:tokens:2026-12-07"),
                format!("ck:top:{kind}:tokens:2026-12"),
            ],
        })
    }

    fn write(request: &str, scopes: &[&Arc<ScopeWrite>]) -> UsageWrite {
        UsageWrite {
            seen_key: format!("ck:usage:seen:{{{request}}}"),
            reservation_key: format!("ck:resv:req:{{{request}}}"),
            request_id: request.to_owned(),
            reservation_id: request.to_owned(),
            scopes: scopes.iter().map(|scope| Arc::clone(scope)).collect(),
            record_json: "{}".to_owned(),
            day: "2026-12-07".to_owned(),
            now_ms: 1,
            tokens: 1,
            cost_micros: 1,
            increments: Vec::new(),
            mcp_counts: Vec::new(),
            client_tool: None,
        }
    }

    #[test]
    fn a_chunk_splits_into_one_call_per_tag_each_in_chunk_order() {
        let (alice, bob) = (scope("user", "alice"), scope("user", "bob"));
        let acme = scope("tenant", "acme");
        let mut second = write("r2", &[&bob, &acme]);
        second.mcp_counts = vec![("ck:mcp:{bob}:2026-12-07".into(), "requests:x".into())];
        second.client_tool = Some(("ck:clients:2026-12-07".into(), "claude-code".into()));
        let chunk = [write("r1", &[&alice, &acme]), second];
        let reservations = vec![
            vec![
                "ck:resv:req:user:{alice}:r1".to_owned(),
                "ck:resv:req:tenant:{acme}:r1".to_owned(),
            ],
            Vec::new(),
        ];
        let calls = split_by_tag(&chunk, &reservations, "ck:usage:log");
        // Per call whether it logs, and per record its marker and how many
        // reservations, scopes and counts it has there, and whether its tool.
        type Share<'a> = (&'a str, usize, usize, usize, bool);
        let shares: Vec<(bool, Vec<Share>)> = calls
            .iter()
            .map(|call| {
                let records = call
                    .records
                    .iter()
                    .map(|r| {
                        (
                            r.seen.as_ref(),
                            r.reservations.len(),
                            r.scopes.len(),
                            r.counts.len(),
                            r.tool.is_some(),
                        )
                    })
                    .collect();
                (call.audit, records)
            })
            .collect();
        assert_eq!(
            shares,
            vec![
                (
                    true,
                    vec![
                        ("ck:usage:seen:{ck:usage:log}:r1", 0, 0, 0, false),
                        ("ck:usage:seen:{ck:usage:log}:r2", 0, 0, 0, false),
                    ]
                ),
                (false, vec![("ck:usage:seen:{alice}:r1", 1, 1, 0, false)]),
                (
                    false,
                    vec![
                        ("ck:usage:seen:{acme}:r1", 1, 1, 0, false),
                        ("ck:usage:seen:{acme}:r2", 0, 1, 0, false),
                    ]
                ),
                (false, vec![("ck:usage:seen:{bob}:r2", 0, 1, 1, false)]),
                (
                    false,
                    vec![("ck:usage:seen:{ck:clients:2026-12-07}:r2", 0, 0, 0, true)]
                ),
            ]
        );
    }
}
