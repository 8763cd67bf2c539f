//! Delivering usage records to the ledger: batches taken from the shared queue (bounded in
//! records and in bytes), one batch in flight at a time, kept and retried with backoff
//! until the policy service acknowledges it. The service deduplicates by request id, so a
//! retry never charges twice and an outage loses nothing (records wait in the queue
//! meanwhile).
//!
//! A batch the ledger refuses as invalid (`400`, `413`) can never succeed as sent, and
//! retried forever it would hold back every record behind it. It is split into its single
//! records and releases, sent one at a time; one refused on its own is dropped and counted
//! (it stays in the access log, the audit trail of record). The ledger itself keeps the
//! records it cannot book (its dead-letter stream) and says how many in its answer.

use std::collections::VecDeque;

use chokepoint_contract::UsageAnswer;
use serde::Deserialize;

use crate::accounting::outbox::{read_item, split_item};

/// The longest pause between retries.
pub const MAX_BACKOFF_MS: u64 = 30_000;
const FIRST_BACKOFF_MS: u64 = 500;

/// How large one batch may grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Records and releases.
    pub max_items: usize,
    /// Bytes of records and releases (the body adds a few dozen).
    pub max_bytes: usize,
}

#[derive(Debug, Default)]
pub struct Delivery {
    /// Queue items: single records and releases, or bundles of them (see `outbox`).
    batch: Vec<Vec<u8>>,
    /// Records and releases in `batch`.
    count: usize,
    /// Bytes of the items in `batch`.
    bytes: usize,
    /// An item taken from the queue that did not fit the batch: first in the next one.
    carry: Option<Vec<u8>>,
    /// The single items of a batch the ledger refused whole, sent one per batch so that
    /// only an invalid one is dropped.
    isolating: VecDeque<Vec<u8>>,
    in_flight: Option<u32>,
    next_attempt_ms: u64,
    failures: u32,
}

/// How the ledger answered a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Booked (duplicates included); `dead_lettered` records it kept as invalid.
    Accepted { dead_lettered: u64 },
    /// The batch can never succeed as sent (`400`, `413`).
    Refused,
    /// Anything else: no answer, an outage, a gateway that is not yet trusted (`401`).
    Failed,
}

impl Answer {
    /// Reads the callout's status and body.
    pub fn read(status: Option<u32>, body: &[u8]) -> Answer {
        match status {
            Some(200) => Answer::Accepted {
                dead_lettered: serde_json::from_slice::<UsageAnswer>(body)
                    .map_or(0, |b| b.dead_lettered),
            },
            Some(400 | 413) => Answer::Refused,
            _ => Answer::Failed,
        }
    }
}

/// What became of the batch in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged: `items` records and releases, of which the ledger dead-lettered
    /// `dead_lettered`.
    Delivered { items: usize, dead_lettered: u64 },
    /// Refused whole: its items go again one at a time, starting now.
    Split { items: usize },
    /// One item refused on its own (or a bundle that does not parse): dropped. The
    /// record's request id, for the log.
    Dropped {
        items: usize,
        request_id: Option<String>,
    },
    /// Kept for a retry after the backoff.
    Retry,
}

impl Delivery {
    /// Whether a batch may be sent now.
    pub fn ready(&self, now_ms: u64) -> bool {
        self.in_flight.is_none() && now_ms >= self.next_attempt_ms
    }

    /// Whether the current batch is empty and should be refilled.
    pub fn wants_records(&self) -> bool {
        self.batch.is_empty()
    }

    /// Fills an empty batch: one isolated item while a refused batch is being taken
    /// apart, else the carried item and what `next` gives (the shared queue), within
    /// `bounds`. A single item larger than the byte bound goes alone.
    pub fn fill(&mut self, bounds: Bounds, mut next: impl FnMut() -> Option<Vec<u8>>) {
        if !self.batch.is_empty() {
            return;
        }
        if let Some(item) = self.isolating.pop_front() {
            self.add(item);
            return;
        }
        while self.count < bounds.max_items {
            let Some(item) = self.carry.take().or_else(&mut next) else {
                break;
            };
            if !self.offer(item, bounds) {
                break;
            }
        }
    }

    fn add(&mut self, item: Vec<u8>) {
        self.count += read_item(&item).1;
        self.bytes += item.len();
        self.batch.push(item);
    }

    /// Adds `item` unless it would take a non-empty batch past `bounds`; then it is kept
    /// for the next batch and `false` returned.
    fn offer(&mut self, item: Vec<u8>, bounds: Bounds) -> bool {
        let too_many = self.count + read_item(&item).1 > bounds.max_items;
        let too_big = self.bytes + item.len() > bounds.max_bytes;
        if !self.batch.is_empty() && (too_many || too_big) {
            self.carry = Some(item);
            return false;
        }
        self.add(item);
        true
    }

    pub fn has_carry(&self) -> bool {
        self.carry.is_some()
    }

    /// Everything held, the batch, the items being isolated and the carried item, for a
    /// root going away.
    pub fn take_all(&mut self) -> Vec<Vec<u8>> {
        let mut all = std::mem::take(&mut self.batch);
        all.extend(self.isolating.drain(..));
        all.extend(self.carry.take());
        self.count = 0;
        self.bytes = 0;
        self.in_flight = None;
        all
    }

    /// Records and releases in the batch.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.batch.is_empty()
    }

    /// `{"records":[...],"releases":[...]}` from the queued items as they are: records
    /// (JSON objects) and lease slots to release (JSON strings), without re-parsing.
    pub fn body(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.bytes + self.batch.len() + 32);
        for (name, releases) in [("records", false), ("releases", true)] {
            out.extend_from_slice(if releases { b",\"" } else { b"{\"" });
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\":[");
            let mut first = true;
            for item in &self.batch {
                let (is_release, n, joined) = read_item(item);
                if is_release != releases || n == 0 {
                    continue;
                }
                if !first {
                    out.push(b',');
                }
                first = false;
                out.extend_from_slice(joined);
            }
            out.push(b']');
        }
        out.push(b'}');
        out
    }

    pub fn sent(&mut self, call: u32) {
        self.in_flight = Some(call);
    }

    pub fn is_in_flight(&self, call: u32) -> bool {
        self.in_flight == Some(call)
    }

    /// The ledger's answer to the batch in flight.
    pub fn answered(&mut self, answer: Answer, now_ms: u64) -> Outcome {
        self.in_flight = None;
        match answer {
            Answer::Accepted { dead_lettered } => {
                self.failures = 0;
                self.next_attempt_ms = 0;
                let items = self.count;
                self.clear();
                Outcome::Delivered {
                    items,
                    dead_lettered,
                }
            }
            Answer::Refused if self.count > 1 => {
                let items = self.count;
                let mut unreadable = 0;
                for item in std::mem::take(&mut self.batch) {
                    match split_item(&item) {
                        Some(singles) => self.isolating.extend(singles),
                        None => unreadable += read_item(&item).1,
                    }
                }
                self.clear();
                self.next_attempt_ms = 0;
                if unreadable > 0 {
                    return Outcome::Dropped {
                        items: unreadable,
                        request_id: None,
                    };
                }
                Outcome::Split { items }
            }
            Answer::Refused => {
                let request_id = self.batch.first().and_then(|item| request_id_of(item));
                let items = self.count;
                self.clear();
                self.next_attempt_ms = 0;
                Outcome::Dropped { items, request_id }
            }
            Answer::Failed => {
                self.failed(now_ms);
                Outcome::Retry
            }
        }
    }

    fn clear(&mut self) {
        self.batch.clear();
        self.count = 0;
        self.bytes = 0;
    }

    /// The batch could not be sent or was not accepted: keep it and wait before retrying.
    pub fn failed(&mut self, now_ms: u64) {
        self.in_flight = None;
        self.failures = self.failures.saturating_add(1);
        let shift = self.failures.min(16) - 1;
        let backoff = FIRST_BACKOFF_MS
            .saturating_mul(1 << shift)
            .min(MAX_BACKOFF_MS);
        self.next_attempt_ms = now_ms.saturating_add(backoff);
    }
}

/// The request id of a single record, for the log line that says it was dropped.
fn request_id_of(item: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Id {
        request_id: String,
    }
    let (_, _, joined) = read_item(item);
    serde_json::from_slice::<Id>(joined)
        .ok()
        .map(|i| i.request_id.chars().take(64).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOMY: Bounds = Bounds {
        max_items: 64,
        max_bytes: 1 << 20,
    };

    /// A delivery filled from `items`, as the root fills it from the queue.
    fn filled(items: &[&[u8]], bounds: Bounds) -> (Delivery, VecDeque<Vec<u8>>) {
        let mut queue: VecDeque<Vec<u8>> = items.iter().map(|i| i.to_vec()).collect();
        let mut d = Delivery::default();
        d.fill(bounds, || queue.pop_front());
        (d, queue)
    }

    #[test]
    fn a_batch_is_kept_until_acknowledged_with_backoff() {
        let (mut d, _) = filled(&[br#"{"request_id":"a"}"#, br#"{"request_id":"b"}"#], ROOMY);
        assert_eq!(
            d.body(),
            br#"{"records":[{"request_id":"a"},{"request_id":"b"}],"releases":[]}"#
        );
        let (mixed, _) = filled(
            &[br#""r1.2""#, br#"{"request_id":"c"}"#, br#""r1.3""#],
            ROOMY,
        );
        assert_eq!(
            mixed.body(),
            br#"{"records":[{"request_id":"c"}],"releases":["r1.2","r1.3"]}"#
        );
        assert!(d.ready(0));
        d.sent(7);
        assert!(!d.ready(0), "one batch in flight at a time");
        assert_eq!(d.answered(Answer::Failed, 1_000), Outcome::Retry);
        assert_eq!(d.len(), 2, "kept for the retry");
        assert!(!d.ready(1_499));
        assert!(d.ready(1_500));
        d.sent(8);
        d.failed(2_000);
        assert!(!d.ready(2_999) && d.ready(3_000), "backoff doubles");
        for _ in 0..20 {
            d.failed(10_000);
        }
        assert!(d.ready(10_000 + MAX_BACKOFF_MS), "bounded backoff");
        d.sent(9);
        assert!(d.is_in_flight(9));
        assert_eq!(
            d.answered(Answer::Accepted { dead_lettered: 0 }, 50_000),
            Outcome::Delivered {
                items: 2,
                dead_lettered: 0
            }
        );
        assert!(d.wants_records() && d.ready(50_000));
    }

    #[test]
    fn bundles_are_spliced_and_counted_within_the_batch_bounds() {
        let four = Bounds {
            max_items: 4,
            max_bytes: 1 << 20,
        };
        let (d, queue) = filled(
            &[
                br#"R2:{"a":1},{"a":2}"#,
                br#"L1:"r1.2""#,
                br#"{"a":3}"#,
                br#"R1:{"a":4}"#,
            ],
            four,
        );
        assert_eq!(d.len(), 4);
        assert_eq!(queue.len(), 1, "a full batch takes no more");
        assert_eq!(
            d.body(),
            br#"{"records":[{"a":1},{"a":2},{"a":3}],"releases":["r1.2"]}"#
        );
        let (mut d, queue) = filled(&[br#"{"a":1}"#, br#"R9:{},{},{},{},{},{},{},{},{}"#], four);
        assert_eq!(d.len(), 1);
        assert!(
            queue.is_empty() && d.has_carry(),
            "the bundle that does not fit waits"
        );
        d.sent(1);
        d.answered(Answer::Accepted { dead_lettered: 0 }, 0);
        d.fill(four, || None);
        assert_eq!(d.len(), 9, "the carried bundle opens the next batch, alone");
        assert_eq!(d.take_all().len(), 1);
    }

    #[test]
    fn batches_are_bounded_in_bytes() {
        let small = Bounds {
            max_items: 64,
            max_bytes: 40,
        };
        let record = br#"{"request_id":"0123456789"}"#; // 27 bytes
        let (d, queue) = filled(&[record, record, record], small);
        assert_eq!(d.len(), 1, "two would pass 40 bytes");
        assert!(d.has_carry() && queue.len() == 1);
        let huge = [b'{'; 100];
        let (alone, _) = filled(&[&huge], small);
        assert_eq!(alone.len(), 1, "an item past the bound goes alone");
    }

    #[test]
    fn a_refused_batch_is_taken_apart_and_only_the_invalid_record_dropped() {
        let (mut d, _) = filled(
            &[
                br#"R2:{"request_id":"good-1"},{"request_id":"bad"}"#,
                br#""r1.1""#,
            ],
            ROOMY,
        );
        d.sent(1);
        assert_eq!(
            d.answered(Answer::Refused, 100),
            Outcome::Split { items: 3 }
        );
        assert!(d.ready(100), "no backoff: the items go again at once");
        let mut sent = Vec::new();
        for call in 2..6 {
            d.fill(ROOMY, || None);
            if d.is_empty() {
                break;
            }
            assert_eq!(d.len(), 1, "one at a time");
            sent.push(String::from_utf8_lossy(&d.body()).to_string());
            d.sent(call);
            let bad = sent.last().is_some_and(|b| b.contains("\"bad\""));
            let answer = if bad {
                Answer::Refused
            } else {
                Answer::Accepted { dead_lettered: 0 }
            };
            let outcome = d.answered(answer, 200);
            if bad {
                assert_eq!(
                    outcome,
                    Outcome::Dropped {
                        items: 1,
                        request_id: Some("bad".into())
                    }
                );
            }
        }
        assert_eq!(sent.len(), 3, "{sent:?}");
        assert!(d.is_empty() && d.take_all().is_empty());
    }

    /// The body spliced from queued records and releases is a usage batch in the
    /// contract's terms (the other tests here splice stand-ins for records).
    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn a_batch_of_records_meets_the_contract() {
        use chokepoint_contract::validate::{check_text, Schema};
        use chokepoint_contract::Required;
        let groups = vec!["ml".to_string()];
        let record = |request_id| crate::accounting::record::UsageRecord {
            request_id: Required::new(request_id),
            reservation_id: Some("r0.3"),
            trace_id: Some("9f1c"),
            user: Some("0190a6f2-7c1e-8b3a-9f00-1234567890ab"),
            tenant: Some("acme"),
            groups: &groups,
            cost_center: None,
            client: Some("claude-code/2.1.332"),
            session: Some("1e6872d4-cb3a-4791-9ae1-32aa40e69098"),
            model: Some("gpt-4o-mini"),
            model_key: Some("gpt-4o-mini"),
            provider: Some("openai"),
            format: Some("openai_chat"),
            api: None,
            operation: None,
            stream: true,
            input_tokens: 13,
            output_tokens: 2,
            cached_input_tokens: 0,
            reasoning_tokens: 0,
            cache_creation_input_tokens: 0,
            cost_micros: 4,
            estimated: false,
            status: Some(200),
            decision: Some("allowed"),
            latency_ms: Some(812),
            ttft_ms: Some(95),
            completed: Some(true),
            error: None,
            ts_ms: Some(1_795_640_042_000),
            policy_version: None,
            price_version: None,
            mcp: None,
            guardrails: Vec::new(),
        };
        let one = serde_json::to_vec(&record("r1")).unwrap();
        let two = serde_json::to_vec(&record("r2")).unwrap();
        let mut bundle = b"R2:".to_vec();
        bundle.extend_from_slice(&one);
        bundle.push(b',');
        bundle.extend_from_slice(&two);
        let (d, _) = filled(&[&one, &bundle, br#""r0.4""#], ROOMY);
        let body = d.body();
        assert_eq!(check_text(Schema::UsageBatch, &body), Ok(()));
        let batch: chokepoint_contract::UsageBatch = serde_json::from_slice(&body).unwrap();
        assert_eq!(batch.records.get().map(Vec::len), Some(3));
        assert_eq!(batch.releases, ["r0.4"]);
    }

    #[test]
    fn the_ledger_s_answer_is_read() {
        let cases = [
            (
                Some(200),
                &br#"{"accepted":3,"duplicates":0,"dead_lettered":2}"#[..],
                Answer::Accepted { dead_lettered: 2 },
            ),
            (
                Some(200),
                br#"{"accepted":3}"#,
                Answer::Accepted { dead_lettered: 0 },
            ),
            (
                Some(200),
                b"not json",
                Answer::Accepted { dead_lettered: 0 },
            ),
            (Some(400), b"", Answer::Refused),
            (Some(413), b"", Answer::Refused),
            (Some(401), b"", Answer::Failed),
            (Some(503), b"", Answer::Failed),
            (None, b"", Answer::Failed),
        ];
        for (status, body, want) in cases {
            assert_eq!(Answer::read(status, body), want, "{status:?}");
        }
    }
}
