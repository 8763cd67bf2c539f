//! What the mock received, kept so tests can assert on what the gateway
//! actually forwarded (injected key, stripped headers, rewritten bodies).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Bounded so a long-running local stack cannot grow without limit.
pub const RECORD_CAPACITY: usize = 1_000;

/// One provider API request (`/v1/*`, `/v1beta/*`, `/openai/*`) as the mock
/// saw it on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// Increasing per server; lets a handler update its own entry later.
    pub id: u64,
    pub method: String,
    /// Path plus query string, as received.
    pub path: String,
    /// Every header in arrival order, names lowercase. Serialized as
    /// `[name, value]` pairs because names may repeat.
    pub headers: Vec<(String, String)>,
    /// The body decoded as UTF-8 (lossily).
    pub body: String,
    /// Arrival time, milliseconds since the Unix epoch.
    pub received_ms: u64,
    /// For streamed responses: when the mock handed its last event to the
    /// connection (ms since the epoch). `None` until the stream ends, and
    /// for non-streamed responses.
    pub last_event_ms: Option<u64>,
}

impl RecordedRequest {
    /// First value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON, if it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_str(&self.body).ok()
    }
}

/// Shared handle to the mock's request log. Cheap to clone; all clones see
/// the same log.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    inner: Arc<Mutex<Log>>,
}

#[derive(Debug, Default)]
struct Log {
    next_id: u64,
    entries: VecDeque<RecordedRequest>,
}

impl Recorder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything recorded, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().entries.iter().cloned().collect()
    }

    /// The most recent request, if any.
    pub fn last(&self) -> Option<RecordedRequest> {
        self.lock().entries.back().cloned()
    }

    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn clear(&self) {
        self.lock().entries.clear();
    }

    /// Stores a request and returns its id.
    pub(crate) fn record(
        &self,
        method: String,
        path: String,
        headers: Vec<(String, String)>,
        body: String,
    ) -> u64 {
        let mut log = self.lock();
        let id = log.next_id;
        log.next_id += 1;
        if log.entries.len() >= RECORD_CAPACITY {
            log.entries.pop_front();
        }
        log.entries.push_back(RecordedRequest {
            id,
            method,
            path,
            headers,
            body,
            received_ms: now_ms(),
            last_event_ms: None,
        });
        id
    }

    /// A no-op if the entry was already evicted or cleared.
    pub(crate) fn set_last_event(&self, id: u64, at_ms: u64) {
        if let Some(entry) = self.lock().entries.iter_mut().rev().find(|e| e.id == id) {
            entry.last_event_ms = Some(at_ms);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Log> {
        // A panic while holding the lock cannot leave the log half-updated in
        // a way that matters to tests, so keep serving rather than cascade.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Milliseconds since the Unix epoch: the clock behind `received_ms` and
/// `last_event_ms`, for tests comparing against them.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
