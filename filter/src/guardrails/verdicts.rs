//! What a guardrail service said about each text it was sent, so a text is sent once:
//! agents resend the whole conversation every turn, and without this a 200-turn session
//! would send its first message 200 times.
//!
//! Keys are a keyed 128-bit hash (SipHash-2-4-128 under a per-worker seed from the host's
//! CSPRNG, as `chokepoint_guard::ScanCache` keys its blocks: fast enough to hash a long
//! conversation every turn) of the text and of everything the service is told beside it
//! that could change its verdict: the check, the stage, the caller and the model. Nobody
//! outside can compute a key, so nobody can craft a text that collides with one judged
//! clean; and one caller's clean verdict never answers for another caller. Only the
//! service's per-text verdicts are kept: `BLOCKED` names no text (a whole call is
//! blocked), so it is never cached and the next request asks again.
//!
//! Bounded in entries and bytes; the oldest entry goes first.

use std::collections::{HashMap, VecDeque};
use std::hash::Hasher;

use siphasher::sip128::{Hasher128, SipHasher24};

use super::service::Stage;

/// A text's verdict, as the service gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Known {
    /// Sent back unchanged (or not at all, with `NONE`).
    Clean,
    /// Rewritten: the text the service sent back in its place.
    Replaced(String),
}

/// Everything besides the text that the service is told and may judge by.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    pub check: &'a str,
    pub stage: Stage,
    pub caller: Option<&'a str>,
    pub model: Option<&'a str>,
}

/// What one entry costs beyond its replacement text: the key twice (map and order),
/// the map's slot and the enum.
const ENTRY_OVERHEAD: usize = 64;

#[derive(Debug)]
pub struct VerdictCache {
    k0: u64,
    k1: u64,
    map: HashMap<u128, Known>,
    order: VecDeque<u128>,
    bytes: usize,
    max_entries: usize,
    max_bytes: usize,
}

impl VerdictCache {
    /// `seed`: 16 random bytes from the host's CSPRNG, per worker.
    pub fn new(seed: [u8; 16], max_entries: usize, max_bytes: usize) -> VerdictCache {
        let (k0, k1) = seed.split_at(8);
        let word = |s: &[u8]| {
            let mut w = [0u8; 8];
            w.copy_from_slice(s);
            u64::from_le_bytes(w)
        };
        VerdictCache {
            k0: word(k0),
            k1: word(k1),
            map: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
            max_entries,
            max_bytes,
        }
    }

    pub fn key(&self, scope: &Scope<'_>, text: &str) -> u128 {
        let mut h = SipHasher24::new_with_keys(self.k0, self.k1);
        // Length-prefixed, so no two scopes and texts share their bytes.
        for part in [
            scope.check,
            scope.stage.name(),
            scope.caller.unwrap_or(""),
            scope.model.unwrap_or(""),
            text,
        ] {
            h.write(&(part.len() as u64).to_be_bytes());
            h.write(part.as_bytes());
        }
        h.finish128().as_u128()
    }

    pub fn get(&self, key: u128) -> Option<&Known> {
        self.map.get(&key)
    }

    pub fn put(&mut self, key: u128, known: Known) {
        let cost = cost(&known);
        if self.max_entries == 0 || cost > self.max_bytes {
            return;
        }
        if let Some(old) = self.map.insert(key, known) {
            self.bytes -= self::cost(&old);
        } else {
            self.order.push_back(key);
        }
        self.bytes += cost;
        while self.map.len() > self.max_entries || self.bytes > self.max_bytes {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some(gone) = self.map.remove(&oldest) {
                self.bytes -= self::cost(&gone);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

fn cost(known: &Known) -> usize {
    ENTRY_OVERHEAD
        + match known {
            Known::Clean => 0,
            Known::Replaced(text) => text.len(),
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope<'a>(check: &'a str, caller: Option<&'a str>) -> Scope<'a> {
        Scope {
            check,
            stage: Stage::Request,
            caller,
            model: Some("gpt-4o"),
        }
    }

    #[test]
    fn keys_separate_scopes_and_depend_on_the_secret() {
        let cache = VerdictCache::new(*b"0123456789abcdef", 8, 4096);
        let base = cache.key(&scope("dlp", Some("u1")), "text");
        let others = [
            cache.key(&scope("dlp", Some("u2")), "text"),
            cache.key(&scope("dlp", None), "text"),
            cache.key(&scope("dlp2", Some("u1")), "text"),
            cache.key(&scope("dlp", Some("u1")), "text "),
            cache.key(
                &Scope {
                    stage: Stage::Response,
                    ..scope("dlp", Some("u1"))
                },
                "text",
            ),
            // Length prefixes: moving bytes between parts changes the key.
            cache.key(&scope("dl", Some("pu1")), "text"),
            VerdictCache::new(*b"another secret!!", 8, 4096).key(&scope("dlp", Some("u1")), "text"),
        ];
        for (i, other) in others.iter().enumerate() {
            assert_ne!(base, *other, "case {i}");
        }
        assert_eq!(base, cache.key(&scope("dlp", Some("u1")), "text"));
    }

    #[test]
    fn bounded_by_entries_and_bytes_oldest_first() {
        let mut cache = VerdictCache::new([7; 16], 3, 10_000);
        for k in 0..5u128 {
            cache.put(k, Known::Clean);
        }
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get(0), None);
        assert_eq!(cache.get(1), None);
        assert_eq!(cache.get(4), Some(&Known::Clean));

        let mut cache = VerdictCache::new([7; 16], 100, 3 * ENTRY_OVERHEAD + 10);
        cache.put(1, Known::Replaced("0123456789".into()));
        cache.put(2, Known::Clean);
        cache.put(3, Known::Clean);
        assert_eq!(cache.bytes(), 3 * ENTRY_OVERHEAD + 10);
        cache.put(4, Known::Clean);
        assert_eq!(cache.get(1), None, "the oldest went to make room");
        assert!(cache.bytes() <= 3 * ENTRY_OVERHEAD + 10);
        // Replacing an entry accounts for the old one's bytes.
        cache.put(2, Known::Replaced("x".into()));
        cache.put(2, Known::Clean);
        assert_eq!(cache.bytes(), 3 * ENTRY_OVERHEAD);
        // An entry larger than the whole cache is not kept.
        cache.put(9, Known::Replaced("y".repeat(10_000)));
        assert_eq!(cache.get(9), None);
        assert_eq!(cache.len(), 3);
    }
}
