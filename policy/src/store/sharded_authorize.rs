//! Decisions in the cluster layout. A request's scopes (user, tenant, cost centre,
//! model) each keep their keys under their own hash tag, so in a Redis Cluster they live
//! in different slots, and no one script can check and take them all atomically. So:
//!
//! 1. The limit sets of other slots are read first and sent with each call: the kinds'
//!    default sets, an MCP tool's server set, and an MCP scope's own set (keyed by its
//!    id, while its windows are keyed by the user's). A limit set written between that read and the
//!    decision applies from the next request.
//! 2. `authorize.lua` runs once per scope, concurrently, each checking and taking in its
//!    own slot, with its reservation record there too
//!    (`ck:resv:req:<kind>:{<id>}:<request_id>`).
//! 3. The answers are added up: allowed only when every scope allowed; a lease gets the
//!    fewest slots any scope gave. What a scope took beyond that is given back
//!    (`release.lua` in that scope): everything when another scope refused, the surplus
//!    lease slots otherwise.
//! 4. An index, `ck:resv:idx:{<id>}`, names each slot's per-scope records, for its
//!    commit (`sharded_usage`) or release.
//!
//! What this costs against one atomic script: two requests near a limit in two scopes
//! can each be refused by the other's share before it is given back (a refusal that one
//! Redis would not have made, never an admission past a limit), and a repeated
//! authorize (the filter's retry) that another scope refuses leaves its count in the
//! rate windows of the scopes that took it, as a repeat's count stands on one Redis.

use std::collections::HashMap;

use futures_util::future::join_all;

use super::authorize::{ScriptCall, Verdict};
use super::hash_tag::{hash_tag, one_tag};
use super::{Store, StoreError};
use crate::keys;

/// Keys per scope in the script's call, and where a scope's own, default and server
/// sets sit among them (see authorize.lua's header).
const SCOPE_KEYS: usize = 9;
const OWN: usize = 0;
const DEFAULT: usize = 1;
const RATE: usize = 2;
const SERVER: usize = 8;
/// Arguments before the per-scope ones.
const SHARED_ARGS: usize = 12;

impl Store {
    pub(super) async fn authorize_sharded(&self, call: &ScriptCall) -> Result<Verdict, StoreError> {
        let scopes = call.scope_prefixes.len();
        let unexpected = |what: &str| {
            self.record(StoreError::UnexpectedReply(format!(
                "an authorize call in the cluster layout {what}"
            )))
        };
        if call.keys.len() != 1 + SCOPE_KEYS * scopes || call.args.len() != SHARED_ARGS + scopes {
            return Err(unexpected(
                "does not have one key group and argument per scope",
            ));
        }
        let scope_keys = |s: usize| &call.keys[1 + SCOPE_KEYS * s..1 + SCOPE_KEYS * (s + 1)];
        let request_id = &call.args[8];
        let take = call.args[5] == "1";

        // The sets other slots hold, each read once, and whether this request was
        // authorized before (a repeat keeps its reservation, as on one Redis).
        let elsewhere = |s: usize, i: usize| {
            let keys = scope_keys(s);
            (i != OWN || hash_tag(&keys[OWN]) != hash_tag(&keys[RATE]))
                && (i != SERVER || keys[SERVER] != keys[DEFAULT])
        };
        let mut set_keys: Vec<&str> = Vec::new();
        for s in 0..scopes {
            for i in [DEFAULT, SERVER, OWN] {
                let key = scope_keys(s)[i].as_str();
                if elsewhere(s, i) && !set_keys.contains(&key) {
                    set_keys.push(key);
                }
            }
        }
        let index_key = keys::reservation_index_key(request_id);
        let (sets, repeated) =
            tokio::join!(join_all(set_keys.iter().map(|key| self.hash(key))), async {
                if take {
                    self.exists(&index_key).await
                } else {
                    Ok(false)
                }
            });
        let mut sent: HashMap<&str, serde_json::Value> = HashMap::new();
        for (key, set) in set_keys.iter().zip(sets) {
            sent.insert(key, serde_json::json!(set?));
        }
        let repeated = repeated?;

        let calls: Vec<(Vec<String>, Vec<String>)> = (0..scopes)
            .map(|s| {
                let mut keys = vec![format!("{}{request_id}", call.scope_prefixes[s])];
                let mut sets = serde_json::Map::new();
                for (i, key) in scope_keys(s).iter().enumerate() {
                    let name = match i {
                        OWN => "own",
                        DEFAULT => "default",
                        SERVER => "server",
                        _ => {
                            keys.push(key.clone());
                            continue;
                        }
                    };
                    if elsewhere(s, i) {
                        sets.insert(name.to_owned(), sent[key.as_str()].clone());
                    }
                    // The script reads only the own set's key, when it is not sent;
                    // every other set's place names the scope's rate window, to keep
                    // the call in one slot.
                    if i == OWN && !elsewhere(s, i) {
                        keys.push(key.clone());
                    } else {
                        keys.push(scope_keys(s)[RATE].clone());
                    }
                }
                let mut args = call.args[..SHARED_ARGS].to_vec();
                args.push(call.args[SHARED_ARGS + s].clone());
                args.push(serde_json::json!([sets]).to_string());
                args.push(call.scope_prefixes[s].clone());
                args.push(String::new());
                (keys, args)
            })
            .collect();
        if cfg!(debug_assertions) {
            if let Some((keys, _)) = calls
                .iter()
                .find(|(keys, _)| !one_tag(keys.iter().map(String::as_str)))
            {
                return Err(unexpected(&format!("spans hash tags: {keys:?}")));
            }
        }
        let answers = join_all(
            calls
                .iter()
                .map(|(keys, args)| self.run_authorize(keys, args)),
        )
        .await;
        let mut verdicts = Vec::with_capacity(scopes);
        let mut failure = None;
        for answer in answers {
            match answer {
                Ok(verdict) => verdicts.push(verdict),
                Err(err) => {
                    failure.get_or_insert(err);
                    verdicts.push(Verdict {
                        allowed: false,
                        slots: 0,
                        limits: Vec::new(),
                    });
                }
            }
        }
        if let Some(err) = failure {
            // The caller answers 503; what the other scopes took goes back at once
            // rather than at its expiry (a scope that did not answer may still take its
            // share, as on one Redis after a timeout).
            if take && !repeated {
                let records = taken_beyond(&call.scope_prefixes, request_id, &verdicts, 0);
                join_all(records.iter().map(|records| self.run_release(records))).await;
            }
            return Err(err);
        }

        let allowed = verdicts.iter().all(|verdict| verdict.allowed);
        let granted = if allowed {
            verdicts
                .iter()
                .map(|verdict| verdict.slots)
                .min()
                .unwrap_or(0)
        } else {
            0
        };
        let mut limits = Vec::new();
        for (s, verdict) in verdicts.iter().enumerate() {
            limits.extend(verdict.limits.iter().cloned().map(|mut limit| {
                limit.scope = s;
                limit
            }));
        }
        if !take {
            return Ok(Verdict {
                allowed,
                slots: 0,
                limits,
            });
        }

        // Give back what scopes took beyond the grant. A repeat refused keeps what it
        // held before: its records are the first authorize's.
        let give_back = if allowed || !repeated {
            taken_beyond(&call.scope_prefixes, request_id, &verdicts, granted)
        } else {
            Vec::new()
        };
        let lifetime_ms = lifetime_ms(&call.args);
        let index_writes = (1..=granted).map(|i| {
            let id = slot_id(request_id, i);
            let records: Vec<String> = call
                .scope_prefixes
                .iter()
                .map(|prefix| format!("{prefix}{id}"))
                .collect();
            self.write_index(keys::reservation_index_key(&id), records, lifetime_ms)
        });
        let (released, indexed) = tokio::join!(
            join_all(give_back.iter().map(|records| self.run_release(records))),
            join_all(index_writes)
        );
        for outcome in released {
            outcome?;
        }
        for outcome in indexed {
            outcome?;
        }
        Ok(Verdict {
            allowed,
            slots: granted,
            limits,
        })
    }

    /// Releases lease slots by their indexes: each slot's per-scope records, one
    /// `release.lua` call per hash tag, then the index. Counts the slots whose index
    /// was still there, so a retried batch counts none twice.
    pub(super) async fn release_slots_sharded(&self, ids: &[String]) -> Result<u64, StoreError> {
        let held = join_all(ids.iter().map(|id| self.reservation_records(id)))
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?;
        let mut by_tag: HashMap<&str, Vec<String>> = HashMap::new();
        for record in held.iter().flatten() {
            by_tag
                .entry(hash_tag(record))
                .or_default()
                .push(record.clone());
        }
        for outcome in join_all(by_tag.values().map(|records| self.run_release(records))).await {
            outcome?;
        }
        let mut released = 0;
        for outcome in join_all(ids.iter().map(|id| {
            let mut command = redis::cmd("DEL");
            command.arg(keys::reservation_index_key(id));
            self.bounded(|mut connection| async move {
                command.query_async::<u64>(&mut connection).await
            })
        }))
        .await
        {
            released += outcome?;
        }
        Ok(released)
    }

    /// One `release.lua` call for these records (one hash tag's).
    async fn run_release(&self, records: &[String]) -> Result<u64, StoreError> {
        let mut invocation = self.inner.release.prepare_invoke();
        for record in records {
            invocation.key(record);
        }
        self.bounded(|mut connection| async move { invocation.invoke_async(&mut connection).await })
            .await
    }

    /// `EXISTS key`.
    async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        let mut command = redis::cmd("EXISTS");
        command.arg(key);
        let found: u64 = self
            .bounded(|mut connection| async move { command.query_async(&mut connection).await })
            .await?;
        Ok(found > 0)
    }

    /// Writes a slot's index: the per-scope records it holds, as a JSON list, living as
    /// long as they may.
    async fn write_index(
        &self,
        key: String,
        records: Vec<String>,
        lifetime_ms: u64,
    ) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hset(&key, "s", serde_json::json!(records).to_string())
            .ignore()
            .pexpire(&key, i64::try_from(lifetime_ms).unwrap_or(i64::MAX))
            .ignore();
        self.bounded(|mut connection| async move { pipe.query_async::<()>(&mut connection).await })
            .await
    }

    /// The per-scope records a request's (or lease slot's) index names; none when it has
    /// no index (never authorized in the cluster layout, committed, released or expired).
    pub(super) async fn reservation_records(&self, id: &str) -> Result<Vec<String>, StoreError> {
        let mut command = redis::cmd("HGET");
        command.arg(keys::reservation_index_key(id)).arg("s");
        let text: Option<String> = self
            .bounded(|mut connection| async move { command.query_async(&mut connection).await })
            .await?;
        Ok(text
            .and_then(|text| serde_json::from_str::<Vec<String>>(&text).ok())
            .unwrap_or_default())
    }
}

/// Per scope that took more than `granted` slots, the records of those beyond it.
fn taken_beyond(
    prefixes: &[String],
    request_id: &str,
    verdicts: &[Verdict],
    granted: u64,
) -> Vec<Vec<String>> {
    prefixes
        .iter()
        .zip(verdicts)
        .filter(|(_, verdict)| verdict.slots > granted)
        .map(|(prefix, verdict)| {
            (granted + 1..=verdict.slots)
                .map(|i| format!("{prefix}{}", slot_id(request_id, i)))
                .collect()
        })
        .collect()
}

/// The id of a request's i-th slot (1-based), as authorize.lua names them.
fn slot_id(request_id: &str, i: u64) -> String {
    if i <= 1 {
        request_id.to_owned()
    } else {
        format!("{request_id}.{i}")
    }
}

/// How long a reservation record lives: its lifetime plus a rate window (ARGV[3] and
/// ARGV[2]), as authorize.lua sets it.
fn lifetime_ms(args: &[String]) -> u64 {
    let ms = |i: usize| args.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    ms(2).saturating_add(ms(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_scopes_took_beyond_the_grant_is_named_per_scope() {
        let verdict = |slots| Verdict {
            allowed: true,
            slots,
            limits: Vec::new(),
        };
        let prefixes = [
            "ck:resv:req:user:{u}:".to_owned(),
            "ck:resv:req:tenant:{t}:".to_owned(),
        ];
        let verdicts = [verdict(3), verdict(1)];
        assert_eq!(
            taken_beyond(&prefixes, "r", &verdicts, 1),
            vec![vec![
                "ck:resv:req:user:{u}:r.2".to_owned(),
                "ck:resv:req:user:{u}:r.3".to_owned()
            ]]
        );
        assert_eq!(
            taken_beyond(&prefixes, "r", &verdicts, 0),
            vec![
                vec![
                    "ck:resv:req:user:{u}:r".to_owned(),
                    "ck:resv:req:user:{u}:r.2".to_owned(),
                    "ck:resv:req:user:{u}:r.3".to_owned()
                ],
                vec!["ck:resv:req:tenant:{t}:r".to_owned()]
            ]
        );
        assert!(taken_beyond(&prefixes, "r", &verdicts, 3).is_empty());
    }

    #[test]
    fn slots_are_named_as_the_script_names_them() {
        assert_eq!(slot_id("r", 1), "r");
        assert_eq!(slot_id("r", 2), "r.2");
        assert_eq!(slot_id("r", 0), "r");
        let args: Vec<String> = ["0", "60000", "600000"].map(String::from).to_vec();
        assert_eq!(lifetime_ms(&args), 660_000);
    }
}
