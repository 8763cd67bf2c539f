//! The recorded SSE answers chunk by chunk as they came (LF from server-everything,
//! CRLF from the Python SDK), the tools/list event rewritten, crafted streams, and
//! properties: any stream under any chunking passes unchanged without edits, and the
//! output never depends on where the chunks are cut.

use proptest::prelude::*;

use super::*;
use crate::accounting::sse::SseParser;
use crate::mcp::fixtures;
use crate::mcp::lists::{self, ListKind};

fn none(_: &[u8]) -> Option<Vec<u8>> {
    None
}

/// Pushes `chunks`, then finishes; the output of each call, overflows as `None`.
fn run(
    max: usize,
    chunks: &[&[u8]],
    edit: &mut dyn FnMut(&[u8]) -> Option<Vec<u8>>,
) -> (Vec<Option<Vec<u8>>>, Vec<u8>) {
    let mut rewriter = Rewriter::new(max);
    let mut outputs = Vec::new();
    for chunk in chunks {
        outputs.push(rewriter.push(chunk, edit).ok());
        assert!(
            rewriter.held() <= max.max(1) * 2 + chunk.len(),
            "held {}",
            rewriter.held()
        );
    }
    let end = rewriter.finish();
    assert_eq!(rewriter.held(), 0);
    (outputs, end)
}

fn joined(outputs: &[Option<Vec<u8>>], end: &[u8]) -> Vec<u8> {
    let mut all: Vec<u8> = outputs.iter().flatten().flatten().copied().collect();
    all.extend_from_slice(end);
    all
}

fn data_of(stream: &[u8]) -> Vec<Vec<u8>> {
    let mut parser = SseParser::default();
    let mut out = Vec::new();
    parser.feed(stream, |e| out.push(e.data.to_vec()));
    out
}

#[test]
fn recorded_streams_pass_unchanged_and_unheld() {
    let streams: Vec<_> = fixtures::all().into_iter().filter(|e| e.is_sse()).collect();
    assert_eq!(streams.len(), 23);
    for e in streams {
        let chunks: Vec<&[u8]> = e.chunks.iter().map(|c| c.as_bytes()).collect();
        // Unedited, and "edited" to the same data: both give the server's bytes.
        for edit in [
            &mut none as &mut dyn FnMut(&[u8]) -> Option<Vec<u8>>,
            &mut |d: &[u8]| Some(d.to_vec()),
        ] {
            let (outputs, end) = run(1 << 20, &chunks, edit);
            assert_eq!(
                joined(&outputs, &end),
                e.response().as_bytes(),
                "{}",
                e.label
            );
            // Every chunk that ends on an event boundary leaves at once (progress is not
            // delayed); only a chunk ending mid-event is held.
            for (chunk, out) in e.chunks.iter().zip(&outputs) {
                let complete = chunk.ends_with("\n\n") || chunk.ends_with("\r\n\r\n");
                let out = out.as_ref().unwrap();
                if complete {
                    assert!(out.ends_with(chunk.as_bytes()), "{}: held back", e.label);
                }
            }
        }
    }
}

#[test]
fn the_split_tools_list_event_leaves_whole_when_complete() {
    // 49 B priming event, then 7,737 B of the list event cut mid-JSON, then its end.
    let e = fixtures::get("python_sdk_everything#4");
    let sizes: Vec<usize> = e.chunks.iter().map(String::len).collect();
    assert_eq!(sizes, [49, 7737, 24]);
    let mut rewriter = Rewriter::new(1 << 20);
    let mut edits = 0;
    let mut edit = |data: &[u8]| {
        edits += 1;
        lists::filter(data, ListKind::Tools, &|name| name != "get-env")
            .unwrap()
            .map(|f| f.body)
    };
    let first = rewriter.push(e.chunks[0].as_bytes(), &mut edit).unwrap();
    assert_eq!(
        first,
        e.chunks[0].as_bytes(),
        "the priming event passes at once"
    );
    let second = rewriter.push(e.chunks[1].as_bytes(), &mut edit).unwrap();
    assert!(second.is_empty());
    assert_eq!(rewriter.held(), 7737);
    let third = rewriter.push(e.chunks[2].as_bytes(), &mut edit).unwrap();
    assert_eq!(rewriter.held(), 0);
    assert!(rewriter.finish().is_empty());
    assert_eq!(edits, 2, "the priming event's empty data, then the list");
    let text = String::from_utf8(third).unwrap();
    // `event:` and `id:` lines kept in place, the data one line.
    let original = e.chunks[1].clone() + &e.chunks[2];
    let head: Vec<&str> = original.lines().take(2).collect();
    assert!(
        text.starts_with(&format!("{}\n{}\ndata: {{", head[0], head[1])),
        "{text:.200}"
    );
    assert!(text.ends_with("}\n\n"));
    let data = data_of(text.as_bytes());
    assert_eq!(data.len(), 1);
    let list: serde_json::Value = serde_json::from_slice(&data[0]).unwrap();
    let names: Vec<&str> = list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 12);
    assert!(!names.contains(&"get-env"));
    // Byte for byte: the server's event with the filtered data in place of its own.
    let server_data = data_of(original.as_bytes()).remove(0);
    let filtered = lists::filter(&server_data, ListKind::Tools, &|name| name != "get-env")
        .unwrap()
        .unwrap();
    assert_eq!(filtered.removed, 1);
    let want = format!(
        "{}\n{}\ndata: {}\n\n",
        head[0],
        head[1],
        String::from_utf8(filtered.body).unwrap()
    );
    assert_eq!(text, want);
}

#[test]
fn crafted_streams() {
    let upper = |d: &[u8]| Some(d.to_ascii_uppercase());
    let two_lines = |_: &[u8]| Some(b"A\nB".to_vec());
    type Edit = fn(&[u8]) -> Option<Vec<u8>>;
    // (input, edit, chunk size (0: whole), output)
    let cases: Vec<(&str, Edit, usize, &str)> = vec![
        ("data: x\n\n", upper, 0, "data: X\n\n"),
        ("data: x\r\n\r\n", upper, 0, "data: X\r\n\r\n"),
        ("data: x\r\r", upper, 0, "data: X\r\r"),
        ("data: x\r\n\r\n", upper, 1, "data: X\r\n\r\n"),
        (
            "data: x\r\r\ndata: y\r\r",
            upper,
            1,
            "data: X\r\r\ndata: Y\r\r",
        ),
        (
            "data: x\r\r\ndata: y\r\r",
            upper,
            0,
            "data: X\r\r\ndata: Y\r\r",
        ),
        // Other lines stay where they were; data lines are replaced where the first was.
        (
            "event: message\nid: 7\ndata: a\n: note\ndata: b\nretry: 5\n\n",
            upper,
            0,
            "event: message\nid: 7\ndata: A\ndata: B\n: note\nretry: 5\n\n",
        ),
        (
            "id: 7\r\ndata:a\r\ndata\r\n\r\n",
            two_lines,
            0,
            "id: 7\r\ndata: A\r\ndata: B\r\n\r\n",
        ),
        // Mixed endings: the new data takes the first data line's.
        (
            "id: 1\ndata: a\r\n\n",
            two_lines,
            0,
            "id: 1\ndata: A\r\ndata: B\r\n\n",
        ),
        // No data: nothing to edit (WHATWG dispatches nothing).
        ("id: 1\n\n: comment\n\n", upper, 0, "id: 1\n\n: comment\n\n"),
        ("\n\n\r\n", upper, 0, "\n\n\r\n"),
        // `data` needs its colon or to be alone; `:data` is a comment.
        (
            "database: 1\n:data: 2\ndata\n\n",
            upper,
            0,
            "database: 1\n:data: 2\ndata: \n\n",
        ),
        // A BOM opens the stream: kept, and the first line is still a data line.
        (
            "\u{feff}data: x\n\n\u{feff}data: y\n\n",
            upper,
            0,
            "\u{feff}data: X\n\n\u{feff}data: y\n\n",
        ),
        ("\u{feff}data: x\n\n", upper, 1, "\u{feff}data: X\n\n"),
        // An unterminated last event leaves as it is at the end.
        ("data: x\n\ndata: y", upper, 0, "data: X\n\ndata: y"),
        ("data: x\n\ndata: y\n", upper, 3, "data: X\n\ndata: y\n"),
    ];
    for (input, edit, size, want) in cases {
        let bytes = input.as_bytes();
        let chunks: Vec<&[u8]> = if size == 0 {
            vec![bytes]
        } else {
            bytes.chunks(size).collect()
        };
        let mut edit = edit;
        let (outputs, end) = run(1024, &chunks, &mut edit);
        assert_eq!(
            String::from_utf8_lossy(&joined(&outputs, &end)),
            want,
            "{input:?} in chunks of {size}"
        );
    }
    // New data never ends the event early, whatever it holds.
    let mut evil = |_: &[u8]| Some(b"a\r\rdata: b\n\nid: 9".to_vec());
    let (outputs, end) = run(1024, &[b"data: x\n\n"], &mut evil);
    let out = joined(&outputs, &end);
    assert_eq!(
        out,
        b"data: a\ndata: \ndata: data: b\ndata: \ndata: id: 9\n\n"
    );
    assert_eq!(data_of(&out), [b"a\n\ndata: b\n\nid: 9".to_vec()]);
}

#[test]
fn an_oversized_event_is_dropped_and_the_rest_kept() {
    let max = 16;
    let stream = b"data: ok\n\ndata: this event is far too long\n\ndata: after\n\n";
    // Split anywhere, the same bytes leave, without the long event.
    let want = b"data: ok\n\ndata: after\n\n".to_vec();
    for size in [1, 2, 3, 7, 16, 17, stream.len()] {
        let chunks: Vec<&[u8]> = stream.chunks(size).collect();
        let (outputs, end) = run(max, &chunks, &mut none);
        assert_eq!(joined(&outputs, &end), want, "chunks of {size}");
        assert_eq!(
            outputs.iter().filter(|o| o.is_none()).count(),
            1,
            "one overflow, chunks of {size}"
        );
    }
    // The events an overflowing chunk completed come with the next call.
    let mut rewriter = Rewriter::new(max);
    assert_eq!(
        rewriter.push(b"data: ok\n\ndata: 0123456789abcdef", &mut none),
        Err(Overflow)
    );
    assert_eq!(rewriter.held(), 10);
    assert_eq!(rewriter.push(b"", &mut none).unwrap(), b"data: ok\n\n");
    assert_eq!(rewriter.push(b"still dropped", &mut none).unwrap(), b"");
    assert_eq!(rewriter.push(b"\r", &mut none).unwrap(), b"");
    // The CR ended a line; this one is the blank line, the LF its end: both dropped.
    assert_eq!(rewriter.push(b"\r", &mut none).unwrap(), b"");
    assert_eq!(
        rewriter.push(b"\ndata: next\n\n", &mut none).unwrap(),
        b"data: next\n\n"
    );
    assert_eq!(rewriter.held(), 0);
    // An unterminated oversized event is not flushed at the end.
    let mut rewriter = Rewriter::new(max);
    assert_eq!(
        rewriter.push(b"data: 0123456789abcdef", &mut none),
        Err(Overflow)
    );
    assert_eq!(rewriter.finish(), b"");
    // Exactly at the bound fits, a final CRLF counted once.
    let mut rewriter = Rewriter::new(13);
    assert_eq!(
        rewriter.push(b"data: abcd\r\n\r\n", &mut none).unwrap(),
        b"data: abcd\r\n\r\n"
    );
    assert_eq!(
        rewriter.push(b"data: abcde\r\n\r\n", &mut none),
        Err(Overflow)
    );
}

/// Bytes that make SSE interesting: line endings, field names, a BOM's bytes.
fn stream() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        prop_oneof![
            Just(b"\n".to_vec()),
            Just(b"\r".to_vec()),
            Just(b"\r\n".to_vec()),
            Just(b"data:".to_vec()),
            Just(b"data: ".to_vec()),
            Just(b"id: 1".to_vec()),
            Just(b":c".to_vec()),
            Just(b"x".to_vec()),
            Just(vec![0xEF]),
            Just(vec![0xBB, 0xBF]),
            proptest::collection::vec(any::<u8>(), 1..4),
        ],
        0..40,
    )
    .prop_map(|parts| parts.concat())
}

fn cut<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.sort_unstable();
    let mut out = Vec::new();
    let mut at = 0;
    for p in points {
        out.push(&bytes[at..p]);
        at = p;
    }
    out.push(&bytes[at..]);
    out
}

proptest! {
    #[test]
    fn without_edits_any_stream_passes_unchanged(
        bytes in stream(),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let chunks = cut(&bytes, &cuts);
        let (outputs, end) = run(bytes.len().max(1), &chunks, &mut none);
        prop_assert!(outputs.iter().all(Option::is_some));
        prop_assert_eq!(joined(&outputs, &end), bytes);
    }

    #[test]
    fn the_output_does_not_depend_on_the_chunking(
        bytes in stream(),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
        max in 1usize..40,
    ) {
        let mut seen_whole = Vec::new();
        let mut edit_whole = |d: &[u8]| {
            seen_whole.push(d.to_vec());
            Some([b"<", d, b">\n"].concat())
        };
        let (outputs, end) = run(max, &[&bytes], &mut edit_whole);
        let whole = joined(&outputs, &end);
        let mut seen_cut = Vec::new();
        let mut edit_cut = |d: &[u8]| {
            seen_cut.push(d.to_vec());
            Some([b"<", d, b">\n"].concat())
        };
        let (outputs, end) = run(max, &cut(&bytes, &cuts), &mut edit_cut);
        prop_assert_eq!(joined(&outputs, &end), whole);
        prop_assert_eq!(seen_cut, seen_whole);
    }
}
