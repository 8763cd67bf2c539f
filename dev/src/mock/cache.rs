//! Prompt caching as each provider reports it, worked out from the requests themselves:
//! a request whose prefix an earlier one left in the cache reads it, the way the provider
//! defines it.
//!
//! - Anthropic (explicit): a `cache_control` block is a breakpoint; the prefix up to it
//!   (tools, then system, then messages) is written on first sight
//!   (`cache_creation_input_tokens`, split by the breakpoint's `ttl` into
//!   `ephemeral_5m_input_tokens` / `ephemeral_1h_input_tokens`) and read by a later
//!   request whose prefix matches at a block boundary up to 20 blocks before one of its
//!   breakpoints (`cache_read_input_tokens`); `input_tokens` is what follows. A prefix
//!   shorter than the model's minimum is neither written nor read. A top-level
//!   `cache_control` puts the breakpoint on the last block.
//! - OpenAI Responses (automatic): a prompt of 1024 tokens or more leaves its prefix in
//!   the cache; a later prompt with the same prefix reports the matched part, in steps of
//!   128 tokens from 1024, as `input_tokens_details.cached_tokens`.
//! - Gemini (implicit, 2.5 and later): a repeated prefix of at least the model's minimum
//!   is reported as `cachedContentTokenCount`.
//!
//! Prefixes are compared at item boundaries (blocks, input items, parts), hashed with the
//! model and the tools, and counted with the mock's own estimate (`text_chars` / 4), so
//! the cached part never exceeds the prompt's tokens. The cache is bounded: at most
//! [`CAPACITY`] prefixes, least recently used evicted first, each expiring after its TTL
//! (refreshed when read). Time is passed in, so tests decide it.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use serde_json::{json, Value};

use super::text::text_chars;

/// Prefixes the cache holds at most.
pub const CAPACITY: usize = 16_384;
const MINUTE_MS: u64 = 60_000;
/// Anthropic's default TTL, and the OpenAI and Gemini caches' (both say "minutes").
pub const TTL_5M_MS: u64 = 5 * MINUTE_MS;
pub const TTL_1H_MS: u64 = 60 * MINUTE_MS;
/// OpenAI's extended retention (`prompt_cache_retention: "24h"`).
const TTL_24H_MS: u64 = 24 * 60 * MINUTE_MS;
/// Anthropic looks for a cached prefix at most this many blocks before a breakpoint.
const LOOKBACK_BLOCKS: usize = 20;
/// OpenAI: caching starts at 1024 prompt tokens, and hits grow in steps of 128.
const OPENAI_MIN: u64 = 1024;
const OPENAI_STEP: u64 = 128;

#[derive(Debug, Clone, Copy)]
struct Entry {
    expires_ms: u64,
    ttl_ms: u64,
    /// Last use, for eviction: a counter, so ties cannot happen.
    used: u64,
}

/// Prefix hashes with their expiry; see the module doc.
#[derive(Debug)]
pub struct PromptCache {
    entries: HashMap<u64, Entry>,
    clock: u64,
    capacity: usize,
}

impl Default for PromptCache {
    fn default() -> Self {
        Self::with_capacity(CAPACITY)
    }
}

impl PromptCache {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            clock: 0,
            capacity: capacity.max(1),
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether `key` is cached at `now_ms`; a hit refreshes its TTL.
    fn read(&mut self, key: u64, now_ms: u64) -> bool {
        self.clock += 1;
        let clock = self.clock;
        match self.entries.get_mut(&key) {
            Some(e) if e.expires_ms > now_ms => {
                e.expires_ms = now_ms.saturating_add(e.ttl_ms);
                e.used = clock;
                true
            }
            Some(_) => {
                self.entries.remove(&key);
                false
            }
            None => false,
        }
    }

    fn write(&mut self, key: u64, ttl_ms: u64, now_ms: u64) {
        self.clock += 1;
        let entry = Entry {
            expires_ms: now_ms.saturating_add(ttl_ms),
            ttl_ms,
            used: self.clock,
        };
        if !self.entries.contains_key(&key) && self.entries.len() >= self.capacity {
            self.entries.retain(|_, e| e.expires_ms > now_ms);
            if self.entries.len() >= self.capacity {
                let oldest = self.entries.iter().min_by_key(|(_, e)| e.used);
                if let Some((&k, _)) = oldest {
                    self.entries.remove(&k);
                }
            }
        }
        // A longer TTL already there is kept (a 5-minute write does not shorten it).
        let ttl_ms = self
            .entries
            .get(&key)
            .map_or(ttl_ms, |e| e.ttl_ms.max(ttl_ms));
        self.entries.insert(
            key,
            Entry {
                expires_ms: now_ms.saturating_add(ttl_ms),
                ttl_ms,
                ..entry
            },
        );
    }
}

/// One item of a prompt in order: its hash with everything before it, its text, and
/// the TTL when it is an Anthropic breakpoint.
struct Item {
    prefix_hash: u64,
    /// Prompt characters up to and including this item.
    chars: usize,
    breakpoint: Option<u64>,
}

/// Items of a prompt, hashed as a chain seeded with what must also match (provider,
/// model, tools).
struct Chain {
    hash: u64,
    chars: usize,
    items: Vec<Item>,
}

impl Chain {
    fn new(seed: &[&Value]) -> Self {
        let mut h = DefaultHasher::new();
        for v in seed {
            canonical(v).hash(&mut h);
        }
        Self {
            hash: h.finish(),
            chars: 0,
            items: Vec::new(),
        }
    }

    /// Appends an item whose prompt text counts.
    fn push(&mut self, role: &str, item: &Value, breakpoint: Option<u64>) {
        self.push_counting(role, item, text_chars(item), breakpoint);
    }

    /// Appends an item counting `chars` of prompt text (tool definitions are prefix but
    /// count nothing in the mock's estimate).
    fn push_counting(&mut self, role: &str, item: &Value, chars: usize, breakpoint: Option<u64>) {
        let mut h = DefaultHasher::new();
        self.hash.hash(&mut h);
        role.hash(&mut h);
        canonical(item).hash(&mut h);
        self.hash = h.finish();
        self.chars += chars;
        self.items.push(Item {
            prefix_hash: self.hash,
            chars: self.chars,
            breakpoint,
        });
    }

    /// Tokens of the prompt's first `n` items, by the mock's estimate.
    fn tokens(&self, n: usize) -> u64 {
        match n.checked_sub(1).and_then(|i| self.items.get(i)) {
            Some(item) => item.chars as u64 / 4,
            None => 0,
        }
    }

    /// The longest cached prefix ending at an item boundary (`n` items), among `ends`.
    fn longest_cached(
        &self,
        cache: &mut PromptCache,
        ends: impl Iterator<Item = usize>,
        min: u64,
        now_ms: u64,
    ) -> usize {
        let mut best = 0;
        for n in ends {
            if n > best && self.tokens(n) >= min {
                let key = self.items[n - 1].prefix_hash;
                if cache.read(key, now_ms) {
                    best = n;
                }
            }
        }
        best
    }
}

/// An item as hashed: its JSON without `cache_control`, so a moved breakpoint does not
/// change the prefix.
fn canonical(v: &Value) -> String {
    match v {
        Value::Object(o) if o.contains_key("cache_control") => {
            let mut o = o.clone();
            o.remove("cache_control");
            Value::Object(o).to_string()
        }
        _ => v.to_string(),
    }
}

/// What an Anthropic response reports of the cache, in tokens (all 0 when nothing was
/// read or written).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AnthropicCaching {
    pub read: u64,
    pub write_5m: u64,
    pub write_1h: u64,
}

impl AnthropicCaching {
    pub fn written(&self) -> u64 {
        self.write_5m + self.write_1h
    }
}

/// The smallest prefix Anthropic caches for a model: 512 tokens for the fifth-generation
/// Opus, Fable and Mythos, 4096 for Haiku 4.5 and Opus 4.5-4.7, 2048 for the Claude 3
/// Haikus, 1024 for the rest (Sonnet, Opus 4.8, Opus 4 and 4.1).
fn anthropic_minimum(model: &str) -> u64 {
    let m = model.strip_prefix("claude-").unwrap_or(model);
    let starts = |prefixes: &[&str]| prefixes.iter().any(|p| m.starts_with(p));
    if starts(&["opus-5", "fable-5", "mythos-5"]) {
        512
    } else if starts(&["haiku-4-5", "opus-4-5", "opus-4-6", "opus-4-7"]) {
        4096
    } else if starts(&["3-haiku", "3-5-haiku"]) {
        2048
    } else {
        1024
    }
}

fn ttl_of(cache_control: &Value) -> Option<u64> {
    if !cache_control.is_object() {
        return None;
    }
    Some(match cache_control.get("ttl").and_then(Value::as_str) {
        Some("1h") => TTL_1H_MS,
        _ => TTL_5M_MS,
    })
}

/// Anthropic's usage split for a Messages request (`body` already validated).
pub fn anthropic(cache: &mut PromptCache, body: &Value, now_ms: u64) -> AnthropicCaching {
    let model = body.get("model").unwrap_or(&Value::Null);
    let mut chain = Chain::new(&[&Value::from("anthropic"), model]);
    // A string is shorthand for one text block, and caches as one: Claude Code sends a
    // turn's content as blocks, then as a string when it replays the turn.
    let blocks = |v: Option<&Value>| -> Vec<Value> {
        match v {
            Some(Value::Array(items)) => items.clone(),
            Some(Value::String(s)) => vec![json!({"type": "text", "text": s})],
            _ => Vec::new(),
        }
    };
    let breakpoint = |b: &Value| b.get("cache_control").and_then(ttl_of);
    for tool in blocks(body.get("tools")) {
        let bp = breakpoint(&tool);
        chain.push_counting("tool", &tool, 0, bp);
    }
    for block in blocks(body.get("system")) {
        let bp = breakpoint(&block);
        chain.push("system", &block, bp);
    }
    if let Some(Value::Array(messages)) = body.get("messages") {
        for message in messages {
            let role = message.get("role").and_then(Value::as_str).unwrap_or("");
            for block in blocks(message.get("content")) {
                let bp = breakpoint(&block);
                chain.push(role, &block, bp);
            }
        }
    }
    // Automatic caching: a top-level cache_control marks the last block.
    if let Some(ttl) = body.get("cache_control").and_then(ttl_of) {
        if let Some(last) = chain.items.last_mut() {
            last.breakpoint.get_or_insert(ttl);
        }
    }
    let min = anthropic_minimum(model.as_str().unwrap_or(""));
    let breakpoints: Vec<(usize, u64)> = chain
        .items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| item.breakpoint.map(|ttl| (i + 1, ttl)))
        .collect();
    let ends = breakpoints
        .iter()
        .flat_map(|&(end, _)| (end.saturating_sub(LOOKBACK_BLOCKS - 1).max(1)..=end).rev())
        .collect::<Vec<_>>();
    let hit = chain.longest_cached(cache, ends.into_iter(), min, now_ms);
    let mut out = AnthropicCaching {
        read: chain.tokens(hit),
        ..Default::default()
    };
    let mut from = hit;
    for &(end, ttl) in &breakpoints {
        if end <= from || chain.tokens(end) < min {
            continue;
        }
        let written = chain.tokens(end) - chain.tokens(from);
        if ttl == TTL_1H_MS {
            out.write_1h += written;
        } else {
            out.write_5m += written;
        }
        cache.write(chain.items[end - 1].prefix_hash, ttl, now_ms);
        from = end;
    }
    out
}

/// OpenAI Responses: `cached_tokens` for a request (`body` already validated).
pub fn openai_responses(cache: &mut PromptCache, body: &Value, now_ms: u64) -> u64 {
    let null = Value::Null;
    let field = |k: &str| body.get(k).unwrap_or(&null);
    let mut chain = Chain::new(&[
        &Value::from("openai"),
        field("model"),
        field("tools"),
        field("prompt_cache_key"),
    ]);
    let instructions = field("instructions");
    if !instructions.is_null() {
        chain.push("instructions", instructions, None);
    }
    match field("input") {
        Value::Array(items) => {
            for item in items {
                chain.push("", item, None);
            }
        }
        input @ Value::String(_) => chain.push("user", input, None),
        _ => {}
    }
    let ttl = match field("prompt_cache_retention").as_str() {
        Some("24h") => TTL_24H_MS,
        _ => TTL_5M_MS,
    };
    let n = chain.items.len();
    let hit = chain.longest_cached(cache, 1..=n, OPENAI_MIN, now_ms);
    for end in hit + 1..=n {
        if chain.tokens(end) >= OPENAI_MIN {
            cache.write(chain.items[end - 1].prefix_hash, ttl, now_ms);
        }
    }
    match chain.tokens(hit) {
        t if t < OPENAI_MIN => 0,
        t => OPENAI_MIN + (t - OPENAI_MIN) / OPENAI_STEP * OPENAI_STEP,
    }
}

/// Gemini's implicit-caching minimum: 2048 tokens for 2.5 Flash and Pro, 4096 for the
/// later models.
fn gemini_minimum(model: &str) -> u64 {
    if model.starts_with("gemini-2.5") {
        2048
    } else {
        4096
    }
}

/// Gemini: `cachedContentTokenCount` for a GenerateContentRequest on `model`.
pub fn gemini(cache: &mut PromptCache, model: &str, body: &Value, now_ms: u64) -> u64 {
    if model.starts_with("gemini-1") || model.starts_with("gemini-2.0") {
        return 0; // implicit caching is for 2.5 and later
    }
    let null = Value::Null;
    let mut chain = Chain::new(&[
        &Value::from("gemini"),
        &Value::from(model),
        body.get("tools").unwrap_or(&null),
    ]);
    let system = body
        .get("systemInstruction")
        .or(body.get("system_instruction"));
    if let Some(system) = system {
        chain.push("system", system, None);
    }
    if let Some(Value::Array(contents)) = body.get("contents") {
        for content in contents {
            let role = content.get("role").and_then(Value::as_str).unwrap_or("");
            if let Some(Value::Array(parts)) = content.get("parts") {
                for part in parts {
                    chain.push(role, part, None);
                }
            }
        }
    }
    let min = gemini_minimum(model);
    let n = chain.items.len();
    let hit = chain.longest_cached(cache, 1..=n, min, now_ms);
    for end in hit + 1..=n {
        if chain.tokens(end) >= min {
            cache.write(chain.items[end - 1].prefix_hash, TTL_5M_MS, now_ms);
        }
    }
    chain.tokens(hit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_reads_refresh_them() {
        let mut c = PromptCache::default();
        c.write(1, TTL_5M_MS, 0);
        assert!(c.read(1, TTL_5M_MS - 1));
        // Refreshed by that read: still there just before the second TTL runs out.
        assert!(c.read(1, 2 * TTL_5M_MS - 2));
        assert!(!c.read(1, 4 * TTL_5M_MS));
        assert!(c.is_empty());
    }

    #[test]
    fn the_least_recently_used_prefix_goes_first() {
        let mut c = PromptCache::with_capacity(2);
        c.write(1, TTL_5M_MS, 0);
        c.write(2, TTL_5M_MS, 0);
        assert!(c.read(1, 1));
        c.write(3, TTL_5M_MS, 2);
        assert_eq!(c.len(), 2);
        assert!(c.read(1, 3) && c.read(3, 3) && !c.read(2, 3));
    }

    #[test]
    fn a_shorter_ttl_does_not_shorten_a_longer_one() {
        let mut c = PromptCache::default();
        c.write(1, TTL_1H_MS, 0);
        c.write(1, TTL_5M_MS, 0);
        assert!(c.read(1, TTL_5M_MS + 1));
    }

    #[test]
    fn minimums_follow_the_model() {
        assert_eq!(anthropic_minimum("claude-opus-5-5"), 512);
        assert_eq!(anthropic_minimum("claude-haiku-4-5-20251001"), 4096);
        assert_eq!(anthropic_minimum("claude-sonnet-4-6"), 1024);
        assert_eq!(gemini_minimum("gemini-2.5-flash"), 2048);
        assert_eq!(gemini_minimum("gemini-3.8-flash"), 4096);
    }
}
