//! The spec's edge cases, each fed whole, byte by byte and in random chunkings; and a
//! property test that arbitrary input in arbitrary chunks behaves like the whole.

use proptest::prelude::*;

use super::*;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Run {
    events: Vec<(String, Vec<u8>)>,
    end: End,
    oversized: u64,
}

fn run<'a>(max: usize, chunks: impl IntoIterator<Item = &'a [u8]>) -> Run {
    let mut parser = SseParser::new(max);
    let mut events = Vec::new();
    for chunk in chunks {
        parser.feed(chunk, |e| {
            events.push((e.event.to_string(), e.data.to_vec()))
        });
        assert!(parser.buffered_bytes() <= max, "buffered past the bound");
    }
    let end = parser.finish();
    Run {
        events,
        end,
        oversized: parser.oversized_events(),
    }
}

/// A deterministic xorshift: the chunkings must be the same on every run and machine.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Cuts `input` at random places, from single bytes to large pieces.
    fn chunks<'a>(&mut self, input: &'a [u8]) -> Vec<&'a [u8]> {
        let max_piece = 1 + (self.next() % 64) as usize;
        let mut out = Vec::new();
        let mut rest = input;
        while !rest.is_empty() {
            let n = (1 + (self.next() as usize % max_piece)).min(rest.len());
            let (piece, tail) = rest.split_at(n);
            out.push(piece);
            rest = tail;
        }
        out
    }
}

/// Runs `input` whole, byte by byte, and in 200 random chunkings; all must agree.
fn run_every_way(max: usize, input: &[u8]) -> Run {
    let whole = run(max, [input]);
    let bytewise = run(max, input.chunks(1));
    assert_eq!(
        bytewise,
        whole,
        "byte by byte: {:?}",
        String::from_utf8_lossy(input)
    );
    let with_empty = run(max, input.chunks(3).flat_map(|c| [c, &[][..]]));
    assert_eq!(with_empty, whole, "with empty chunks");
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    for _ in 0..200 {
        let chunks = rng.chunks(input);
        assert_eq!(
            run(max, chunks.iter().copied()),
            whole,
            "chunked {chunks:?}"
        );
    }
    whole
}

fn ev(event: &str, data: &str) -> (String, Vec<u8>) {
    (event.to_string(), data.as_bytes().to_vec())
}

#[test]
fn spec_edge_cases() {
    use End::*;
    let m = "message";
    type Case = (&'static str, &'static [u8], Vec<(String, Vec<u8>)>, End);
    let table: Vec<Case> = vec![
        ("lf", b"data: a\n\n", vec![ev(m, "a")], Clean),
        ("crlf", b"data: a\r\n\r\n", vec![ev(m, "a")], Clean),
        ("cr", b"data: a\r\r", vec![ev(m, "a")], Clean),
        (
            "mixed endings",
            b"data: a\r\ndata: b\rdata: c\n\r\n",
            vec![ev(m, "a\nb\nc")],
            Clean,
        ),
        (
            "cr then blank cr",
            b"data: a\r\n\r",
            vec![ev(m, "a")],
            Clean,
        ),
        (
            "comments",
            b": hello\ndata: x\n: mid-event\n\n",
            vec![ev(m, "x")],
            Clean,
        ),
        ("keep-alive only", b":\n\n: ping\r\n\r\n", vec![], Clean),
        (
            "multi-line data",
            b"data: a\ndata: b\n\n",
            vec![ev(m, "a\nb")],
            Clean,
        ),
        (
            "event names, reset after each event",
            b"event: add\ndata: 1\n\nevent: remove\ndata: 2\n\ndata: 3\n\n",
            vec![ev("add", "1"), ev("remove", "2"), ev(m, "3")],
            Clean,
        ),
        (
            "event with no data dispatches nothing and resets the type",
            b"event: x\n\ndata: y\n\n",
            vec![ev(m, "y")],
            Clean,
        ),
        ("field with no colon", b"data\n\n", vec![ev(m, "")], Clean),
        (
            "spec example: empty, newline, discarded",
            b"data\n\ndata\ndata\n\ndata:",
            vec![ev(m, ""), ev(m, "\n")],
            MidEvent,
        ),
        ("data with no space", b"data:x\n\n", vec![ev(m, "x")], Clean),
        (
            "only one space is stripped",
            b"data:  two\n\n",
            vec![ev(m, " two")],
            Clean,
        ),
        (
            "colons in value",
            b"data: a:b: c\n\n",
            vec![ev(m, "a:b: c")],
            Clean,
        ),
        (
            "id, retry and unknown fields ignored",
            b"id: 1\nretry: 1000\nfoo: bar\nDATA: no\ndata: a\n\n",
            vec![ev(m, "a")],
            Clean,
        ),
        (
            "extra blank lines",
            b"\n\ndata: a\n\n\n\n",
            vec![ev(m, "a")],
            Clean,
        ),
        (
            "bom skipped",
            b"\xEF\xBB\xBFdata: a\n\n",
            vec![ev(m, "a")],
            Clean,
        ),
        (
            "only the first bom is skipped",
            b"\xEF\xBB\xBF\xEF\xBB\xBFdata: a\n\ndata: b\n\n",
            vec![ev(m, "b")],
            Clean,
        ),
        (
            "bom prefix that is not a bom",
            b"\xEF\xBBdata: a\n\ndata: b\n\n",
            vec![ev(m, "b")],
            Clean,
        ),
        ("lone bom byte", b"\xEF", vec![], MidEvent),
        (
            "unterminated final event",
            b"data: a\n\ndata: b\n",
            vec![ev(m, "a")],
            MidEvent,
        ),
        ("unterminated final line", b"data: b", vec![], MidEvent),
        ("dangling event type", b"event: x\n", vec![], MidEvent),
        ("complete comment at end", b": bye\n", vec![], Clean),
        (
            "utf-8 passes through whole",
            "event: ünï\ndata: é€😀\n\n".as_bytes(),
            vec![ev("ünï", "é€😀")],
            Clean,
        ),
        (
            "invalid utf-8 in the type is replaced",
            b"event: a\xFFb\ndata: x\n\n",
            vec![ev("a\u{FFFD}b", "x")],
            Clean,
        ),
        (
            "openai shape",
            b"data: {\"a\":1}\n\ndata: [DONE]\n\n",
            vec![ev(m, "{\"a\":1}"), ev(m, "[DONE]")],
            Clean,
        ),
    ];
    for (name, input, want, end) in table {
        let got = run_every_way(1024, input);
        assert_eq!(got.events, want, "{name}");
        assert_eq!(got.end, end, "{name}");
        assert_eq!(got.oversized, 0, "{name}");
    }
}

#[test]
fn crlf_split_across_chunks_is_one_line_ending() {
    let chunks: [&[u8]; 4] = [b"data: a\r", b"\n", b"\r", b"\ndata: b\r\n\r\n"];
    let got = run(1024, chunks);
    assert_eq!(got.events, vec![ev("message", "a"), ev("message", "b")]);
    // An empty chunk between CR and LF must not end the pending CR.
    let chunks: [&[u8]; 4] = [b"data: a\r", b"", b"\n", b"data: b\n\n"];
    assert_eq!(run(1024, chunks).events, vec![ev("message", "a\nb")]);
}

#[test]
fn oversized_events_are_dropped_counted_and_recovered_from() {
    let big = format!("data: {}\n\ndata: ok\n\n", "x".repeat(40));
    let got = run_every_way(32, big.as_bytes());
    assert_eq!(got.events, vec![ev("message", "ok")]);
    assert_eq!(got.oversized, 1);

    // Each line fits but the event as a whole does not; the rest of it is skipped.
    let many = "data: 0123456789\n".repeat(5) + "data: tail\n\nevent: e\ndata: ok\r\n\r\n";
    let got = run_every_way(48, many.as_bytes());
    assert_eq!(got.events, vec![ev("e", "ok")]);
    assert_eq!(got.oversized, 1);

    let unterminated = format!("data: ok\n\ndata: {}", "y".repeat(100));
    let got = run_every_way(32, unterminated.as_bytes());
    assert_eq!(got.events, vec![ev("message", "ok")]);
    assert_eq!((got.end, got.oversized), (End::MidEvent, 1));

    // A long comment is a long line too: it takes its event down with it.
    let comment = format!("data: lost\n:{}\n\ndata: kept\n\n", "c".repeat(64));
    let got = run_every_way(32, comment.as_bytes());
    assert_eq!(got.events, vec![ev("message", "kept")]);
    assert_eq!(got.oversized, 1);
}

#[test]
fn limit_counts_the_raw_line() {
    // "data: " + 26 bytes = 32: exactly at the limit fits, one more does not.
    let fits = format!("data: {}\n\n", "a".repeat(26));
    assert_eq!(run_every_way(32, fits.as_bytes()).events.len(), 1);
    let over = format!("data: {}\n\n", "a".repeat(27));
    assert_eq!(run_every_way(32, over.as_bytes()).oversized, 1);
}

#[test]
fn whole_event_in_one_chunk_is_not_copied() {
    let mut parser = SseParser::new(1024);
    let chunk = b"data: {\"x\":1}\n\n";
    let mut same = false;
    parser.feed(chunk, |e| same = std::ptr::eq(e.data.as_ptr(), &chunk[6]));
    assert!(same, "data should point into the chunk");
    assert_eq!(parser.buffered_bytes(), 0);
}

#[test]
fn large_event_does_not_pin_its_buffer() {
    let mut parser = SseParser::new(DEFAULT_MAX_EVENT_BYTES);
    let body = format!("data: {}\n\n", "z".repeat(200_000));
    let mut n = 0;
    for chunk in body.as_bytes().chunks(1000) {
        parser.feed(chunk, |_| n += 1);
    }
    assert_eq!(n, 1);
    assert!(parser.data.capacity() <= RETAINED_CAPACITY);
    assert!(parser.line.capacity() <= RETAINED_CAPACITY);
}

/// Pieces that make the parser's interesting paths likely in random input.
fn sse_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"data:".to_vec()),
        Just(b"data: ".to_vec()),
        Just(b"event: ".to_vec()),
        Just(b":".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\n\n".to_vec()),
        Just(vec![0xEF, 0xBB, 0xBF]),
        Just("é€".as_bytes().to_vec()),
        proptest::collection::vec(any::<u8>(), 0..40),
    ];
    proptest::collection::vec(piece, 0..60).prop_map(|p| p.concat())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_chunkings_match_whole(
        input in prop_oneof![sse_bytes(), proptest::collection::vec(any::<u8>(), 0..512)],
        cuts in proptest::collection::vec(0usize..600, 0..24),
        max in 0usize..96,
    ) {
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(input.len())).collect();
        cuts.sort_unstable();
        let mut chunks = Vec::new();
        let mut start = 0;
        for cut in cuts.into_iter().chain([input.len()]) {
            chunks.push(&input[start..cut]);
            start = cut;
        }
        // `run` asserts the buffer bound after every chunk.
        prop_assert_eq!(run(max, chunks), run(max, [input.as_slice()]));
    }
}
