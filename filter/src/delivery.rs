//! Delivering usage records to the ledger: batches taken from the shared queue, one batch
//! in flight at a time, kept and retried with backoff until the policy service
//! acknowledges it. The service deduplicates by request id, so a retry never charges twice
//! and an outage loses nothing (records wait in the queue meanwhile).

/// The longest pause between retries.
pub const MAX_BACKOFF_MS: u64 = 30_000;
const FIRST_BACKOFF_MS: u64 = 500;

use crate::outbox::read_item;

#[derive(Debug, Default)]
pub struct Delivery {
    /// Queue items: single records and releases, or bundles of them (see `outbox`).
    batch: Vec<Vec<u8>>,
    /// Records and releases in `batch`.
    count: usize,
    /// An item taken from the queue that did not fit the batch: first in the next one.
    carry: Option<Vec<u8>>,
    in_flight: Option<u32>,
    next_attempt_ms: u64,
    failures: u32,
}

impl Delivery {
    /// Whether a batch may be sent now.
    pub fn ready(&self, now_ms: u64) -> bool {
        self.in_flight.is_none() && now_ms >= self.next_attempt_ms
    }

    /// Whether the current batch is empty and should be refilled from the queue.
    pub fn wants_records(&self) -> bool {
        self.batch.is_empty()
    }

    pub fn add(&mut self, item: Vec<u8>) {
        self.count += read_item(&item).1;
        self.batch.push(item);
    }

    /// Adds `item` unless it would take a non-empty batch past `max` records and
    /// releases; then it is kept for the next batch and `false` returned.
    pub fn offer(&mut self, item: Vec<u8>, max: usize) -> bool {
        if !self.batch.is_empty() && self.count + read_item(&item).1 > max {
            self.carry = Some(item);
            return false;
        }
        self.add(item);
        true
    }

    pub fn has_carry(&self) -> bool {
        self.carry.is_some()
    }

    pub fn take_carry(&mut self) -> Option<Vec<u8>> {
        self.carry.take()
    }

    /// Everything held, the batch and the carried item, for a root going away.
    pub fn take_all(&mut self) -> Vec<Vec<u8>> {
        let mut all = std::mem::take(&mut self.batch);
        all.extend(self.carry.take());
        self.count = 0;
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
        let size = self.batch.iter().map(|r| r.len() + 1).sum::<usize>() + 32;
        let mut out = Vec::with_capacity(size);
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

    /// The answer to the batch in flight. `Some(n)`: n records delivered.
    pub fn answered(&mut self, ok: bool, now_ms: u64) -> Option<usize> {
        self.in_flight = None;
        if ok {
            self.failures = 0;
            self.next_attempt_ms = 0;
            let n = self.count;
            self.batch.clear();
            self.count = 0;
            return Some(n);
        }
        self.failed(now_ms);
        None
    }

    /// The batch could not be sent or was refused: keep it and wait before retrying.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_kept_until_acknowledged_with_backoff() {
        let mut d = Delivery::default();
        assert!(d.ready(0) && d.wants_records());
        d.add(br#"{"request_id":"a"}"#.to_vec());
        d.add(br#"{"request_id":"b"}"#.to_vec());
        assert_eq!(
            d.body(),
            br#"{"records":[{"request_id":"a"},{"request_id":"b"}],"releases":[]}"#
        );
        let mut mixed = Delivery::default();
        mixed.add(br#""r1.2""#.to_vec());
        mixed.add(br#"{"request_id":"c"}"#.to_vec());
        mixed.add(br#""r1.3""#.to_vec());
        assert_eq!(
            mixed.body(),
            br#"{"records":[{"request_id":"c"}],"releases":["r1.2","r1.3"]}"#
        );
        d.sent(7);
        assert!(!d.ready(0), "one batch in flight at a time");
        assert_eq!(d.answered(false, 1_000), None);
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
        assert_eq!(d.answered(true, 50_000), Some(2));
        assert!(d.wants_records() && d.ready(50_000));
    }

    #[test]
    fn bundles_are_spliced_and_counted_within_the_batch_bound() {
        let mut d = Delivery::default();
        assert!(d.offer(br#"R2:{"a":1},{"a":2}"#.to_vec(), 4));
        assert!(d.offer(br#"L1:"r1.2""#.to_vec(), 4));
        assert!(d.offer(br#"{"a":3}"#.to_vec(), 4));
        assert_eq!(d.len(), 4);
        assert!(!d.offer(br#"R1:{"a":4}"#.to_vec(), 4), "past the bound");
        assert_eq!(
            d.body(),
            br#"{"records":[{"a":1},{"a":2},{"a":3}],"releases":["r1.2"]}"#
        );
        d.sent(1);
        assert_eq!(d.answered(true, 0), Some(4));
        let carried = d.take_carry().unwrap_or_default();
        assert!(d.offer(carried, 4), "the carried item opens the next batch");
        assert!(!d.offer(br#"R9:{},{},{},{},{},{},{},{},{}"#.to_vec(), 4));
        assert_eq!(d.take_all().len(), 2, "the batch and the carry");
        let mut big = Delivery::default();
        assert!(
            big.offer(br#"R9:{},{},{},{},{},{},{},{},{}"#.to_vec(), 4),
            "alone it goes"
        );
    }
}
