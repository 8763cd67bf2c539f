//! Pipelines that may span hash slots.
//!
//! One Redis takes any pipeline in one round trip. A cluster routes a pipeline by its
//! first command's key and refuses one whose commands hash to different slots
//! ("Received crossed slots in pipeline"), so in cluster mode [`Store::pipelined`] sends
//! one pipeline per slot, all at once, and puts the replies back in the order the
//! commands were given. A pipeline of reads gains nothing from running on one node:
//! each command is atomic on its own either way.

use redis::cluster_routing::Slot;
use redis::{Cmd, FromRedisValue, RedisError, Value};

use super::{Store, StoreError};

/// A command and the one key it touches (which decides its slot).
pub(super) struct Keyed {
    key: String,
    command: Cmd,
}

impl Keyed {
    pub(super) fn new(key: impl Into<String>, command: Cmd) -> Self {
        Self {
            key: key.into(),
            command,
        }
    }
}

impl Store {
    /// Sends `commands` pipelined and returns their replies in order, each read as a
    /// `T`: one pipeline on one Redis; one per hash slot, concurrently, on a cluster.
    /// Bounded like any round trip (all the pipelines together).
    pub(super) async fn pipelined<T: FromRedisValue>(
        &self,
        commands: Vec<Keyed>,
    ) -> Result<Vec<T>, StoreError> {
        if commands.is_empty() {
            return Ok(Vec::new());
        }
        let groups = by_slot(&commands, self.sharded());
        let count = commands.len();
        self.bounded(|connection| async move {
            // Dropped (so its tasks aborted) when the round trip's time bound ends first.
            let mut sends = tokio::task::JoinSet::new();
            for indices in groups {
                let mut connection = connection.clone();
                let mut pipe = redis::pipe();
                for &i in &indices {
                    pipe.add_command(commands[i].command.clone());
                }
                sends.spawn(async move {
                    let replies: Vec<Value> = pipe.query_async(&mut connection).await?;
                    Ok::<_, RedisError>((indices, replies))
                });
            }
            let mut ordered: Vec<Option<Value>> = vec![None; count];
            while let Some(answered) = sends.join_next().await {
                let (indices, replies) = answered.map_err(|err| {
                    RedisError::from((
                        redis::ErrorKind::Client,
                        "a pipeline's task failed",
                        err.to_string(),
                    ))
                })??;
                for (i, reply) in indices.into_iter().zip(replies) {
                    ordered[i] = Some(reply);
                }
            }
            ordered
                .into_iter()
                .map(|reply| {
                    let reply = reply.ok_or_else(|| {
                        RedisError::from((
                            redis::ErrorKind::Client,
                            "a pipeline answered fewer replies than it sent commands",
                        ))
                    })?;
                    T::from_redis_value(reply).map_err(RedisError::from)
                })
                .collect()
        })
        .await
    }
}

/// The commands' indices grouped per hash slot (groups in order of first appearance,
/// each in the given order), or all in one group when nothing is sharded. The slot is
/// the cluster client's own (CRC16 of the key or of its `{hash tag}`), so a group is
/// exactly what it routes as one pipeline.
fn by_slot(commands: &[Keyed], sharded: bool) -> Vec<Vec<usize>> {
    if !sharded {
        return vec![(0..commands.len()).collect()];
    }
    let mut groups: Vec<(Slot, Vec<usize>)> = Vec::new();
    for (i, keyed) in commands.iter().enumerate() {
        let slot = Slot::for_key(&keyed.key);
        match groups.iter_mut().find(|(s, _)| *s == slot) {
            Some((_, group)) => group.push(i),
            None => groups.push((slot, vec![i])),
        }
    }
    groups.into_iter().map(|(_, group)| group).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_per_slot_only_when_sharded() {
        let keyed = |key: &str| Keyed::new(key, redis::cmd("GET"));
        // "foo" and "bar" hash to different slots (12182 and 5061); a hash tag decides
        // alone, so "{foo}:x" shares foo's.
        assert_ne!(Slot::for_key("foo"), Slot::for_key("bar"));
        let commands = vec![keyed("foo"), keyed("bar"), keyed("{foo}:x"), keyed("bar")];
        assert_eq!(by_slot(&commands, false), vec![vec![0, 1, 2, 3]]);
        assert_eq!(by_slot(&commands, true), vec![vec![0, 2], vec![1, 3]]);
        assert_eq!(by_slot(&[], true), Vec::<Vec<usize>>::new());
    }
}
