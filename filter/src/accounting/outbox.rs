//! Usage records and lease releases a worker produced, gathered into bundles before they
//! enter Envoy's shared queue. Every enqueue wakes the queue's consumer thread, so one
//! item per request cost each request a cross-thread wakeup; a bundle per tick (or per
//! [`BUNDLE_MAX`] items) costs one.
//!
//! Queue items are one record (a JSON object), one release (a JSON string), or a bundle:
//! `R` (records) or `L` (releases), the item count in decimal, `:`, then the JSON values
//! joined by commas, ready to be spliced into a delivery body without parsing.

/// Items per bundle at most.
pub const BUNDLE_MAX: usize = 64;
/// Bytes per bundle, past which it is closed: batches are bounded in bytes too, and a
/// bundle is the smallest unit a batch is made of.
pub const BUNDLE_MAX_BYTES: usize = 64 * 1024;

#[derive(Debug, Default)]
struct Pile {
    joined: Vec<u8>,
    n: usize,
}

impl Pile {
    fn push(&mut self, json: &[u8]) {
        if self.n > 0 {
            self.joined.push(b',');
        }
        self.joined.extend_from_slice(json);
        self.n += 1;
    }

    fn bundle(&mut self, kind: u8) -> Option<Vec<u8>> {
        if self.n == 0 {
            return None;
        }
        let count = self.n.to_string();
        let mut out = Vec::with_capacity(self.joined.len() + count.len() + 2);
        out.push(kind);
        out.extend_from_slice(count.as_bytes());
        out.push(b':');
        out.append(&mut self.joined);
        self.n = 0;
        Some(out)
    }
}

#[derive(Debug, Default)]
pub struct Outbox {
    records: Pile,
    releases: Pile,
}

impl Outbox {
    /// Adds a queue item (a record or a release, told apart by its first byte); returns
    /// a bundle to enqueue now once [`BUNDLE_MAX`] of a kind are waiting.
    pub fn push(&mut self, item: &[u8]) -> Option<Vec<u8>> {
        let (pile, kind) = if item.first() == Some(&b'"') {
            (&mut self.releases, b'L')
        } else {
            (&mut self.records, b'R')
        };
        pile.push(item);
        (pile.n >= BUNDLE_MAX || pile.joined.len() >= BUNDLE_MAX_BYTES)
            .then(|| pile.bundle(kind))?
    }

    /// Everything waiting, as at most two bundles.
    pub fn drain(&mut self) -> Vec<Vec<u8>> {
        [self.records.bundle(b'R'), self.releases.bundle(b'L')]
            .into_iter()
            .flatten()
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.records.n == 0 && self.releases.n == 0
    }
}

/// The single records and releases a queue item holds, each its own item again (`None`:
/// a bundle whose values do not parse).
pub fn split_item(item: &[u8]) -> Option<Vec<Vec<u8>>> {
    let (_, n, joined) = read_item(item);
    if n <= 1 && !matches!(item.first(), Some(b'R' | b'L')) {
        return Some(vec![item.to_vec()]);
    }
    let mut list = Vec::with_capacity(joined.len() + 2);
    list.push(b'[');
    list.extend_from_slice(joined);
    list.push(b']');
    let values: Vec<&serde_json::value::RawValue> = serde_json::from_slice(&list).ok()?;
    Some(values.iter().map(|v| v.get().as_bytes().to_vec()).collect())
}

/// What a queue item holds: whether it is releases, how many items, and the
/// comma-joined JSON values.
pub fn read_item(item: &[u8]) -> (bool, usize, &[u8]) {
    match item.first() {
        Some(&k @ (b'R' | b'L')) => {
            let colon = item.iter().position(|b| *b == b':').unwrap_or(0);
            let count = item
                .get(1..colon)
                .and_then(|d| std::str::from_utf8(d).ok())
                .and_then(|d| d.parse().ok())
                .unwrap_or(0);
            (k == b'L', count, item.get(colon + 1..).unwrap_or(&[]))
        }
        Some(b'"') => (true, 1, item),
        _ => (false, 1, item),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_gather_into_bundles() {
        let mut o = Outbox::default();
        assert!(o.is_empty() && o.drain().is_empty());
        assert_eq!(o.push(br#"{"a":1}"#), None);
        assert_eq!(o.push(br#""r1.2""#), None);
        assert_eq!(o.push(br#"{"a":2}"#), None);
        let b = o.drain();
        assert_eq!(
            b,
            [br#"R2:{"a":1},{"a":2}"#.to_vec(), br#"L1:"r1.2""#.to_vec()]
        );
        assert!(o.is_empty());
        assert_eq!(read_item(&b[0]), (false, 2, &br#"{"a":1},{"a":2}"#[..]));
        assert_eq!(read_item(&b[1]), (true, 1, &br#""r1.2""#[..]));
        assert_eq!(read_item(br#"{"a":3}"#), (false, 1, &br#"{"a":3}"#[..]));
        assert_eq!(read_item(br#""r9""#), (true, 1, &br#""r9""#[..]));
    }

    #[test]
    fn bundles_split_back_into_their_items() {
        /// (item, the items it splits into)
        type Case<'a> = (&'a [u8], Option<Vec<&'a [u8]>>);
        let cases: [Case; 5] = [
            (br#"{"a":1}"#, Some(vec![br#"{"a":1}"#])),
            (br#""r1""#, Some(vec![br#""r1""#])),
            (
                br#"R2:{"a":"x,y"},{"b":[1,2]}"#,
                Some(vec![br#"{"a":"x,y"}"#, br#"{"b":[1,2]}"#]),
            ),
            (br#"L2:"r1","r2""#, Some(vec![br#""r1""#, br#""r2""#])),
            (br#"R2:{"a":1},{"#, None),
        ];
        for (item, want) in cases {
            let want = want.map(|v| v.into_iter().map(<[u8]>::to_vec).collect::<Vec<_>>());
            assert_eq!(split_item(item), want, "{}", String::from_utf8_lossy(item));
        }
    }

    #[test]
    fn a_bundle_closes_at_its_byte_bound() {
        let mut o = Outbox::default();
        let big = format!(r#"{{"pad":"{}"}}"#, "x".repeat(BUNDLE_MAX_BYTES / 2));
        assert_eq!(o.push(big.as_bytes()), None);
        let bundle = o.push(big.as_bytes()).unwrap_or_default();
        assert_eq!(read_item(&bundle).1, 2);
        assert!(o.is_empty());
    }

    #[test]
    fn a_full_bundle_comes_out_at_once() {
        let mut o = Outbox::default();
        for _ in 1..BUNDLE_MAX {
            assert_eq!(o.push(b"{}"), None);
        }
        let full = o.push(b"{}").unwrap_or_default();
        assert_eq!(read_item(&full).1, BUNDLE_MAX);
        assert!(o.is_empty());
    }
}
