//! Verified tokens, remembered: a returning caller costs a hash and a lookup instead of a
//! signature check (an RS256 check is about 190 µs in wasm: `bench/jwt.json`). Bounded,
//! per worker.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};

use crate::identity::jwt::VerifiedToken;

/// A verified token and the anonymous user id derived from it (an HMAC the cache saves
/// recomputing on every request).
#[derive(Debug, Clone)]
pub struct Verified {
    pub token: VerifiedToken,
    pub user: String,
}

struct Entry {
    verified: Verified,
    /// Unix seconds after which the entry must not be used (the token's own expiry plus
    /// skew, or the cache TTL, whichever is first).
    valid_until: u64,
}

/// What a token is remembered by: a keyed hash of the whole token (see [`TokenCache::key`]).
pub type TokenKey = [u64; 2];

pub struct TokenCache {
    max_entries: usize,
    ttl_secs: u64,
    skew_secs: u64,
    entries: HashMap<TokenKey, Entry>,
    /// Insertion order, for first-in-first-out eviction when full.
    order: VecDeque<TokenKey>,
    /// A random SipHash key, per VM.
    hasher: RandomState,
}

impl TokenCache {
    pub fn new(max_entries: usize, ttl_secs: u64, skew_secs: u64) -> TokenCache {
        TokenCache {
            max_entries,
            ttl_secs,
            skew_secs,
            entries: HashMap::new(),
            order: VecDeque::new(),
            hasher: RandomState::new(),
        }
    }

    /// 128 bits of SipHash of the whole token under this VM's random key: the cache never
    /// holds a usable credential, and without the key nobody can make a token that lands
    /// on a cached one. A twelfth of the cost of the SHA-256 it replaces (about 20,000
    /// instructions per request for a 400-byte token), on every request.
    pub fn key(&self, token: &str) -> TokenKey {
        [
            self.hasher.hash_one((token, 0u8)),
            self.hasher.hash_one((token, 1u8)),
        ]
    }

    pub fn get(&self, key: &TokenKey, now: u64) -> Option<&Verified> {
        self.entries
            .get(key)
            .filter(|e| now <= e.valid_until)
            .map(|e| &e.verified)
    }

    pub fn insert(&mut self, key: TokenKey, verified: Verified, now: u64) {
        if self.max_entries == 0 {
            return;
        }
        let valid_until = verified
            .token
            .expires_at
            .saturating_add(self.skew_secs)
            .min(now.saturating_add(self.ttl_secs));
        if let Some(e) = self.entries.get_mut(&key) {
            *e = Entry {
                verified,
                valid_until,
            };
            return;
        }
        while self.entries.len() >= self.max_entries {
            match self.order.pop_front() {
                Some(old) => {
                    self.entries.remove(&old);
                }
                None => break,
            }
        }
        self.entries.insert(
            key,
            Entry {
                verified,
                valid_until,
            },
        );
        self.order.push_back(key);
    }

    /// Keys changed (rotation): a token verified with a removed key must be checked again.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.order.clear();
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(exp: u64) -> Verified {
        Verified {
            token: VerifiedToken {
                issuer: "i".into(),
                subject: "s".into(),
                tenant: None,
                groups: vec![],
                cost_center: None,
                expires_at: exp,
            },
            user: "u".into(),
        }
    }

    #[test]
    fn entries_expire_with_the_token_or_the_ttl() {
        let mut c = TokenCache::new(10, 300, 60);
        let (a, b) = (c.key("a"), c.key("b"));
        c.insert(a, token(1_000), 900);
        c.insert(b, token(10_000), 900);
        assert!(c.get(&a, 1_060).is_some(), "within skew of exp");
        assert!(c.get(&a, 1_061).is_none(), "past exp + skew");
        assert!(c.get(&b, 1_200).is_some());
        assert!(c.get(&b, 1_201).is_none(), "past the TTL");
    }

    #[test]
    fn bounded_with_fifo_eviction() {
        let mut c = TokenCache::new(3, 300, 0);
        for i in 0..10 {
            let key = c.key(&i.to_string());
            c.insert(key, token(10_000), 0);
            assert!(c.len() <= 3);
        }
        assert!(c.get(&c.key("9"), 1).is_some());
        assert!(c.get(&c.key("0"), 1).is_none());
        // Re-inserting an existing key does not grow the order queue.
        for _ in 0..10 {
            let key = c.key("9");
            c.insert(key, token(10_000), 0);
        }
        assert_eq!(c.order.len(), c.len());
    }

    #[test]
    fn keys_are_per_token_and_per_cache() {
        let (c, other) = (TokenCache::new(10, 300, 0), TokenCache::new(10, 300, 0));
        assert_eq!(c.key("eyJ.a.b"), c.key("eyJ.a.b"));
        assert_ne!(c.key("eyJ.a.b"), c.key("eyJ.a.c"));
        let [lo, hi] = c.key("eyJ.a.b");
        assert_ne!(lo, hi, "two halves, not one hash twice");
        assert_ne!(c.key("eyJ.a.b"), other.key("eyJ.a.b"), "a key of its own");
    }

    #[test]
    fn disabled_when_zero() {
        let mut c = TokenCache::new(0, 300, 0);
        let key = c.key("a");
        c.insert(key, token(10_000), 0);
        assert!(c.is_empty());
    }
}
