//! Keeping refused usage records: `scripts/dead_letter.lua` (after `scripts/windows.lua`).

use redis::Value;

use super::{Store, StoreError};
use crate::dead_letter::{DeadLetter, DEAD_LETTER_KEY};
use crate::ledger::Retention;

impl Store {
    /// Adds `letters` to the dead-letter stream in one script call (trimmed as
    /// `retention` says); returns how many were added. A batch carries at most 1 MiB, so
    /// the call does too.
    pub async fn dead_letter(
        &self,
        letters: &[DeadLetter],
        retention: Retention,
        now_ms: u64,
    ) -> Result<u64, StoreError> {
        if letters.is_empty() {
            return Ok(0);
        }
        let mut invocation = self.inner.dead_letter.key(DEAD_LETTER_KEY);
        invocation
            .arg(retention.max_len)
            .arg(retention.max_age_ms())
            .arg(now_ms);
        for letter in letters {
            invocation
                .arg(&letter.error)
                .arg(&letter.record)
                .arg(letter.record_bytes);
        }
        let reply: Value = self
            .bounded(|mut connection| async move { invocation.invoke_async(&mut connection).await })
            .await?;
        match reply {
            Value::Int(n) if usize::try_from(n).ok() == Some(letters.len()) => Ok(n as u64),
            other => Err(self.record(StoreError::UnexpectedReply(format!(
                "dead_letter.lua returned {other:?}"
            )))),
        }
    }
}
