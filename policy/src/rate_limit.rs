//! Per-user request rate limit: a fixed window counted in Redis.

use std::time::Duration;

use crate::store::{Store, StoreError};
use crate::user_id::UserId;

#[derive(Debug, Clone, Copy)]
pub struct RequestRateLimit {
    pub limit: u64,
    pub window: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow {
        limit: u64,
        remaining: u64,
        reset_after_ms: u64,
    },
    Deny {
        limit: u64,
        retry_after_ms: u64,
        message: String,
    },
}

impl RequestRateLimit {
    pub async fn check(&self, store: &Store, user: &UserId) -> Result<Decision, StoreError> {
        let counted = store
            .take_request_slot(&counter_key(user), self.limit, self.window)
            .await?;
        Ok(if counted.allowed {
            Decision::Allow {
                limit: self.limit,
                remaining: self.limit.saturating_sub(counted.count),
                reset_after_ms: counted.reset_after_ms,
            }
        } else {
            Decision::Deny {
                limit: self.limit,
                retry_after_ms: counted.reset_after_ms,
                message: format!(
                    "user request limit of {} per {} reached",
                    self.limit,
                    format_window(self.window)
                ),
            }
        })
    }
}

/// The `{user:…}` hash tag keeps all of one user's keys in one Redis Cluster slot, so a
/// single script can later check several of them atomically.
pub fn counter_key(user: &UserId) -> String {
    format!("ck:rl:req:{{user:{user}}}")
}

/// Human units for messages a client will read: `60s`, `1500ms`.
fn format_window(window: Duration) -> String {
    if window.subsec_millis() == 0 {
        format!("{}s", window.as_secs())
    } else {
        format!("{}ms", window.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_key_carries_a_cluster_hash_tag() {
        let user = UserId::parse("0190A6F2-7C1E-8B3A-9F00-1234567890AB").expect("valid uuid");
        assert_eq!(
            counter_key(&user),
            "ck:rl:req:{user:0190a6f2-7c1e-8b3a-9f00-1234567890ab}"
        );
    }

    #[test]
    fn formats_windows_for_people() {
        let cases = [
            (Duration::from_secs(60), "60s"),
            (Duration::from_secs(1), "1s"),
            (Duration::from_millis(1500), "1500ms"),
            (Duration::from_millis(250), "250ms"),
        ];
        for (window, expected) in cases {
            assert_eq!(format_window(window), expected);
        }
    }
}
