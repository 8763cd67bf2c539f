//! Envoy's serialized header map (proxy-wasm ABI), read without trusting it to be UTF-8,
//! and written for a local reply.
//!
//! The SDK's own readers (`hostcalls::get_map`, `get_map_value`) unwrap `String::from_utf8`
//! on every value, and Envoy passes header values through byte for byte: one client header
//! like `x-note: caf\xe9` (Latin-1, legal in HTTP/1.1) trapped the whole VM. Values here are
//! decoded lossily (an invalid byte becomes U+FFFD: a token so mangled fails verification,
//! any other header we read only informs); names are HTTP tokens (ASCII) once Envoy's codecs
//! accept them, so a name that is not UTF-8 makes the map unreadable instead of being
//! renamed, where a strip rule could then miss it.
//!
//! Layout: `count: u32 LE`, then `count` pairs of `(name_len: u32 LE, value_len: u32 LE)`,
//! then each name and value in order, each followed by a NUL byte.

use crate::host::HeaderList;

/// A header value as text: the bytes when they are UTF-8, else a lossy copy.
pub fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// The pairs of a serialized map; `None` when it is malformed (truncated, lengths past the
/// end, a name that is not UTF-8).
pub fn parse(bytes: &[u8]) -> Option<Vec<(String, String)>> {
    parse_list(bytes).map(|list| {
        list.iter()
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect()
    })
}

/// [`parse`] into one buffer (what the filter reads a request's headers into).
pub fn parse_list(bytes: &[u8]) -> Option<HeaderList> {
    if bytes.is_empty() {
        return Some(HeaderList::default());
    }
    let (count, rest) = read_u32(bytes)?;
    let sizes_len = count.checked_mul(8)?;
    let sizes = rest.get(..sizes_len)?;
    let mut data = rest.get(sizes_len..)?;
    // Every pair takes at least its two NULs: a count the data cannot hold is malformed,
    // and checking first keeps a bogus count from reserving memory.
    if count > data.len() / 2 {
        return None;
    }
    let mut pairs = HeaderList::with_capacity(count, data.len());
    for size in sizes.chunks_exact(8) {
        let (name_len, size) = read_u32(size)?;
        let (value_len, _) = read_u32(size)?;
        let name;
        let value;
        (name, data) = take(data, name_len)?;
        (value, data) = take(data, value_len)?;
        let name = std::str::from_utf8(name).ok()?;
        // The strict check first: it is much cheaper than the lossy one, which only the
        // rare value that is not UTF-8 needs.
        match std::str::from_utf8(value) {
            Ok(value) => pairs.push(name, value),
            Err(_) => pairs.push(name, &String::from_utf8_lossy(value)),
        }
    }
    Some(pairs)
}

/// Serializes pairs in the same layout, for the host (a local reply's headers); tests
/// and fuzz seeds give it bytes that are not UTF-8.
pub fn serialize<N: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(N, V)]) -> Vec<u8> {
    let len = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
    let size: usize = pairs
        .iter()
        .map(|(n, v)| n.as_ref().len() + v.as_ref().len() + 10)
        .sum();
    let mut out = Vec::with_capacity(4 + size);
    out.extend(len(pairs.len()));
    for (name, value) in pairs {
        out.extend(len(name.as_ref().len()));
        out.extend(len(value.as_ref().len()));
    }
    for (name, value) in pairs {
        out.extend(name.as_ref());
        out.push(0);
        out.extend(value.as_ref());
        out.push(0);
    }
    out
}

fn read_u32(bytes: &[u8]) -> Option<(usize, &[u8])> {
    let (head, rest) = bytes.split_first_chunk::<4>()?;
    Some((usize::try_from(u32::from_le_bytes(*head)).ok()?, rest))
}

/// `len` bytes and the NUL after them.
fn take(data: &[u8], len: usize) -> Option<(&[u8], &[u8])> {
    let item = data.get(..len)?;
    let rest = data.get(len.checked_add(1)?..)?;
    Some((item, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Byte pairs of any lengths in one slice literal.
    fn serialize(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
        super::serialize(pairs)
    }

    fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn reads_what_envoy_serializes() {
        type Pairs = Option<Vec<(String, String)>>;
        let cases: &[(&str, Vec<u8>, Pairs)] = &[
            ("no data at all", vec![], Some(vec![])),
            ("zero pairs", serialize(&[]), Some(vec![])),
            (
                "pseudo and plain headers, an empty value",
                serialize(&[(b":path", b"/v1/chat/completions"), (b"x-empty", b"")]),
                Some(owned(&[(":path", "/v1/chat/completions"), ("x-empty", "")])),
            ),
            (
                "a Latin-1 value is read lossily, not refused",
                serialize(&[(b"x-note", b"caf\xe9"), (b"authorization", b"Bearer \xff")]),
                Some(owned(&[
                    ("x-note", "caf\u{fffd}"),
                    ("authorization", "Bearer \u{fffd}"),
                ])),
            ),
            (
                "a name that is not UTF-8 makes the map unreadable",
                serialize(&[(b"x-\xffname", b"v")]),
                None,
            ),
            ("a truncated count", vec![1, 0], None),
            (
                "a count past the sizes",
                {
                    let mut b = serialize(&[(b"a", b"b")]);
                    b[0] = 2;
                    b
                },
                None,
            ),
            (
                "a huge count",
                {
                    let mut b = serialize(&[(b"a", b"b")]);
                    b[..4].copy_from_slice(&u32::MAX.to_le_bytes());
                    b
                },
                None,
            ),
            (
                "a value length past the end",
                {
                    let mut b = serialize(&[(b"a", b"b")]);
                    b[8..12].copy_from_slice(&100u32.to_le_bytes());
                    b
                },
                None,
            ),
            (
                "the last NUL missing",
                {
                    let mut b = serialize(&[(b"a", b"b")]);
                    b.pop();
                    b
                },
                None,
            ),
        ];
        for (case, bytes, want) in cases {
            assert_eq!(&parse(bytes), want, "{case}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_are_read_or_refused_never_a_panic(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
        ) {
            let _ = parse(&bytes);
        }

        #[test]
        fn any_map_round_trips(
            pairs in proptest::collection::vec(("[a-z:-]{1,12}", ".{0,16}"), 0..8),
        ) {
            let raw: Vec<(&[u8], &[u8])> =
                pairs.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())).collect();
            let text: Vec<(&str, &str)> =
                pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
            proptest::prop_assert_eq!(super::serialize(&text), serialize(&raw));
            proptest::prop_assert_eq!(parse(&serialize(&raw)), Some(pairs));
        }
    }

    #[test]
    fn text_keeps_utf8_and_replaces_the_rest() {
        assert_eq!(text(b"text/event-stream".to_vec()), "text/event-stream");
        assert_eq!(text("caf\u{e9}".as_bytes().to_vec()), "caf\u{e9}");
        assert_eq!(text(b"a\xc3".to_vec()), "a\u{fffd}");
    }
}
