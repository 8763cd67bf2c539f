//! The incremental SSE parser (`filter/src/accounting/sse.rs`) under arbitrary bytes and chunkings.
//!
//! Layout: one byte picks `max_event_bytes` (small limits reach the overflow paths), the
//! rest is a [`crate::chunks`] chunking of the stream.
//!
//! Invariants: the events, the end state and the count of oversized events are the same
//! for the stream fed whole, in the fuzzer's chunks and byte by byte; between chunks the
//! parser holds at most `max_event_bytes` (its documented bound); no event's data
//! is larger than that either.

use chokepoint_filter::accounting::sse::{End, SseParser, DEFAULT_MAX_EVENT_BYTES};

use crate::chunks;

#[derive(Debug, PartialEq, Eq)]
struct Run {
    events: Vec<(String, Vec<u8>)>,
    end: End,
    oversized: u64,
}

pub fn max_event_bytes(selector: u8) -> usize {
    match selector {
        0..=191 => 1 + usize::from(selector) * 4,
        _ => DEFAULT_MAX_EVENT_BYTES,
    }
}

fn feed<'a>(max: usize, chunks: impl IntoIterator<Item = &'a [u8]>) -> Run {
    let mut parser = SseParser::new(max);
    let mut events = Vec::new();
    for chunk in chunks {
        parser.feed(chunk, |e| {
            assert!(
                e.data.len() <= max,
                "an event with {} bytes of data passed a limit of {max}",
                e.data.len()
            );
            events.push((e.event.to_owned(), e.data.to_vec()));
        });
        assert!(
            parser.buffered_bytes() <= max,
            "buffered {} bytes, past the bound of {max}",
            parser.buffered_bytes()
        );
    }
    let end = parser.finish();
    assert_eq!(parser.buffered_bytes(), 0, "finish() left bytes behind");
    Run {
        events,
        end,
        oversized: parser.oversized_events(),
    }
}

pub fn run(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let max = max_event_bytes(selector);
    let cut = chunks::split(rest);
    let whole = feed(max, [cut.stream]);
    let chunked = feed(max, cut.chunks.iter().copied());
    assert_eq!(whole, chunked, "chunking changed the events");
    if cut.stream.len() <= 4096 {
        let bytewise = feed(max, cut.stream.chunks(1));
        assert_eq!(whole, bytewise, "byte-by-byte feeding changed the events");
    }
}
