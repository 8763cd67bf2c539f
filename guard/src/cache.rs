//! Findings per text block, remembered under a keyed hash of the block, so an agent that
//! resends its whole history every turn costs one scan per new block, not per turn.
//!
//! The hash is SipHash-2-4 with a 128-bit output keyed by a seed from the host's CSPRNG:
//! without the seed nobody can craft a block that collides with another one and so
//! borrow its clean verdict.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::hash::Hasher;

use siphasher::sip128::{Hasher128, SipHasher24};

use crate::set::{Finding, RuleSet};

/// Shorter blocks are scanned every time: a scan of them costs about what hashing does.
pub const MIN_CACHED_BYTES: usize = 256;

/// What one entry costs besides its findings (key, stamps, map and queue slots).
const ENTRY_OVERHEAD: usize = 64;

struct Entry {
    findings: Vec<Finding>,
    stamp: u64,
}

/// A bounded least-recently-used map from block hash to the block's findings under one
/// rule set. A cache belongs to one rule set: build a new one when the rules change.
pub struct ScanCache {
    k0: u64,
    k1: u64,
    max_entries: usize,
    max_bytes: usize,
    bytes: usize,
    clock: u64,
    map: HashMap<u128, Entry>,
    /// Keys by last use; stale pairs (an older stamp than the entry's) are skipped.
    order: VecDeque<(u128, u64)>,
    hits: u64,
    misses: u64,
}

impl std::fmt::Debug for ScanCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScanCache")
            .field("entries", &self.map.len())
            .field("bytes", &self.bytes)
            .finish()
    }
}

fn cost(findings: &[Finding]) -> usize {
    ENTRY_OVERHEAD + std::mem::size_of_val(findings)
}

impl ScanCache {
    pub fn new(seed: [u8; 16], max_entries: usize, max_bytes: usize) -> ScanCache {
        let (a, b) = seed.split_at(8);
        let word = |s: &[u8]| {
            let mut w = [0u8; 8];
            w.copy_from_slice(s);
            u64::from_le_bytes(w)
        };
        ScanCache {
            k0: word(a),
            k1: word(b),
            max_entries,
            max_bytes,
            bytes: 0,
            clock: 0,
            map: HashMap::new(),
            order: VecDeque::new(),
            hits: 0,
            misses: 0,
        }
    }

    /// The block's keyed 128-bit hash.
    pub fn key(&self, text: &str) -> u128 {
        let mut h = SipHasher24::new_with_keys(self.k0, self.k1);
        h.write(text.as_bytes());
        h.finish128().as_u128()
    }

    /// `set.scan(text)`, from the cache when this block was scanned before.
    pub fn scan(&mut self, set: &RuleSet, text: &str) -> Vec<Finding> {
        self.scan_keyed(set, text, || Cow::Borrowed(text))
    }

    /// The findings in `value()`, remembered under `key`: the block as it arrived (a JSON
    /// string literal with its escapes, say), one-to-one with its value, so a block seen
    /// before costs a hash of its bytes and is never decoded again. A key shorter than
    /// `MIN_CACHED_BYTES` is not remembered.
    pub fn scan_keyed<'v>(
        &mut self,
        set: &RuleSet,
        key: &str,
        value: impl FnOnce() -> Cow<'v, str>,
    ) -> Vec<Finding> {
        if key.len() < MIN_CACHED_BYTES {
            return set.scan(&value());
        }
        let key = self.key(key);
        self.clock += 1;
        let stamp = self.clock;
        if let Some(e) = self.map.get_mut(&key) {
            e.stamp = stamp;
            self.order.push_back((key, stamp));
            self.hits += 1;
            let found = e.findings.clone();
            self.compact();
            return found;
        }
        self.misses += 1;
        let findings = set.scan(&value());
        let c = cost(&findings);
        if c <= self.max_bytes && self.max_entries > 0 {
            while self.map.len() >= self.max_entries || self.bytes + c > self.max_bytes {
                if !self.evict_oldest() {
                    break;
                }
            }
            self.bytes += c;
            self.map.insert(
                key,
                Entry {
                    findings: findings.clone(),
                    stamp,
                },
            );
            self.order.push_back((key, stamp));
            self.compact();
        }
        findings
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Blocks answered from the cache, and blocks scanned, since the cache was made.
    pub fn hits(&self) -> u64 {
        self.hits
    }

    pub fn misses(&self) -> u64 {
        self.misses
    }

    fn evict_oldest(&mut self) -> bool {
        while let Some((key, stamp)) = self.order.pop_front() {
            if self.map.get(&key).is_some_and(|e| e.stamp == stamp) {
                if let Some(e) = self.map.remove(&key) {
                    self.bytes -= cost(&e.findings);
                }
                return true;
            }
        }
        false
    }

    /// Hits leave stale pairs in the queue; drop them before it outgrows the map.
    fn compact(&mut self) {
        if self.order.len() > 2 * self.map.len() + 16 {
            let map = &self.map;
            self.order
                .retain(|(k, s)| map.get(k).is_some_and(|e| e.stamp == *s));
        }
    }
}
