//! Refusals by limit, per UTC day: each denied authorize adds 1 to its tripped limit's
//! field (`user:rpm`, `tenant:usd_micros:month`, ...) of the day's hash, the 429s the
//! spend page shows as rate-limit pressure. Only a denial writes (one HINCRBY), and the
//! fields are limit names, a few dozen at most whatever callers send.

use std::collections::HashMap;

use crate::store::{Store, StoreError};
use crate::utc_date::Day;

/// `ck:refused:<YYYY-MM-DD>`: a hash of refusals per limit name.
pub fn refusals_key(day: Day) -> String {
    format!("ck:refused:{day}")
}

/// Each day's refusals by limit name, in `days` order; fields that are not counts are
/// skipped.
pub async fn read_days(
    store: &Store,
    days: &[Day],
) -> Result<Vec<HashMap<String, u64>>, StoreError> {
    let keys: Vec<String> = days.iter().map(|day| refusals_key(*day)).collect();
    let hashes = store.hashes(&keys).await?;
    Ok(hashes
        .into_iter()
        .map(|hash| {
            hash.into_iter()
                .filter_map(|(limit, n)| Some((limit, n.parse().ok()?)))
                .collect()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_documented_layout() {
        let day = Day::from_unix_ms(1_795_640_042_000);
        assert_eq!(refusals_key(day), "ck:refused:2026-11-25");
    }
}
