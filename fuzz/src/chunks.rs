//! Fuzzer-chosen chunkings of a stream, so the SSE and usage targets see the same bytes
//! cut wherever a TCP segment might cut them.
//!
//! Input layout: one byte `k` (`k % 8` length bytes follow; 0 means one single chunk),
//! then the `k % 8` chunk lengths (0 is an empty chunk), then the stream. The lengths
//! repeat until the stream is used up.

/// The stream's chunks, and the stream itself for a one-chunk reference run.
pub struct Chunked<'a> {
    pub stream: &'a [u8],
    pub chunks: Vec<&'a [u8]>,
}

pub fn split(data: &[u8]) -> Chunked<'_> {
    let Some((&k, rest)) = data.split_first() else {
        return Chunked {
            stream: &[],
            chunks: Vec::new(),
        };
    };
    let k = usize::from(k % 8).min(rest.len());
    let (lengths, stream) = rest.split_at(k);
    let mut chunks = Vec::new();
    if lengths.is_empty() || lengths.iter().all(|&l| l == 0) {
        if lengths.is_empty() {
            chunks.push(stream);
        } else {
            // Only empty chunks asked for: feed them, then the stream byte by byte.
            chunks.extend(lengths.iter().map(|_| &stream[..0]));
            chunks.extend(stream.chunks(1));
        }
        return Chunked { stream, chunks };
    }
    let mut rest = stream;
    let mut i = 0;
    while !rest.is_empty() {
        let n = usize::from(lengths[i % lengths.len()]).min(rest.len());
        let (piece, tail) = rest.split_at(n);
        chunks.push(piece);
        rest = tail;
        i += 1;
    }
    Chunked { stream, chunks }
}
