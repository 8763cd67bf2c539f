//! Rewriting a Server-Sent Events answer on its way through, one event at a time: each
//! response chunk is replaced by the complete events it holds (edited or byte for byte)
//! and the partial event at its end is kept for the next chunk, so a stream is never
//! held back by more than one event (progress passes as it comes).
//!
//! Event boundaries are WHATWG's (HTML "event stream interpretation"): a blank line, with
//! lines ending in LF, CRLF or CR (server-everything sends LF, the Python SDK CRLF), a
//! byte order mark skipped at the start of the stream. Chunks are cut anywhere, between
//! the CR and LF of one line ending too. An event that ends on a CR at the end of a chunk
//! is sent at once; an LF opening the next chunk then completes that line ending and is
//! sent on its own, so the output is the same however the input is cut.
//!
//! Held bytes live in the filter, outside Envoy's buffer limits (mcp-notes, "Q10 probe",
//! fact 6), so the bound on one event is enforced here.

use std::borrow::Cow;

const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];

/// Capacity the held buffer keeps between events: one large event must not pin its peak
/// memory for the rest of a long-lived stream.
const RETAINED_CAPACITY: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overflow;

/// Where the search for the next blank line stands, carried from chunk to chunk so no
/// byte is scanned twice.
#[derive(Debug, Clone, Copy)]
struct Scan {
    /// Bytes of a BOM matched at the start of the stream; `None` once past it.
    bom: Option<usize>,
    /// Nothing but a line ending since the last one: a line ending here is a blank line.
    line_empty: bool,
    /// The last byte was a CR: an LF now belongs to that line ending.
    after_cr: bool,
}

impl Scan {
    fn new() -> Scan {
        Scan {
            bom: Some(0),
            line_empty: true,
            after_cr: false,
        }
    }

    /// The end of the first event in `bytes` (just past its blank line), or `None` when
    /// `bytes` completes none. `ended_on_cr` tells that the event ended on a CR that is
    /// the last byte given, so an LF may still follow in the next chunk.
    fn find(&mut self, bytes: &[u8]) -> Option<(usize, bool)> {
        let mut i = 0;
        while let Some(matched) = self.bom {
            let &b = bytes.get(i)?;
            if BOM.get(matched) == Some(&b) {
                i += 1;
                self.bom = (matched + 1 < BOM.len()).then_some(matched + 1);
            } else {
                // Not a BOM after all: the bytes held back were the first line's start.
                self.line_empty &= matched == 0;
                self.bom = None;
            }
        }
        loop {
            if self.after_cr {
                let &b = bytes.get(i)?;
                self.after_cr = false;
                if b == b'\n' {
                    i += 1;
                }
            }
            let rest = bytes.get(i..)?;
            let Some(p) = rest.iter().position(|&b| b == b'\n' || b == b'\r') else {
                self.line_empty &= rest.is_empty();
                return None;
            };
            self.line_empty &= p == 0;
            let at = i + p;
            let cr = bytes.get(at) == Some(&b'\r');
            if self.line_empty {
                self.after_cr = false;
                return Some(match (cr, bytes.get(at + 1)) {
                    (true, Some(b'\n')) => (at + 2, false),
                    (true, None) => (at + 1, true),
                    _ => (at + 1, false),
                });
            }
            self.line_empty = true;
            self.after_cr = cr;
            i = at + 1;
        }
    }
}

/// An LF that may complete the CR an event ended on, at the start of the next chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    None,
    /// The event was sent: so is the LF.
    Send,
    /// The event was dropped (too large): so is the LF.
    Drop,
}

pub struct Rewriter {
    max_event_bytes: usize,
    /// The partial event, held until its blank line arrives.
    tail: Vec<u8>,
    scan: Scan,
    /// No event has ended yet: a BOM may open the first one.
    first_event: bool,
    /// Dropping the rest of an event that outgrew the bound.
    discarding: bool,
    pending_lf: Pending,
    /// Output of a push that overflowed, handed out by the next call.
    ready: Vec<u8>,
}

impl Rewriter {
    /// An event, complete or partial, of more than `max_event_bytes` (a final CRLF
    /// counted as one byte, so that where the chunks are cut cannot matter) is dropped.
    pub fn new(max_event_bytes: usize) -> Rewriter {
        Rewriter {
            max_event_bytes,
            tail: Vec::new(),
            scan: Scan::new(),
            first_event: true,
            discarding: false,
            pending_lf: Pending::None,
            ready: Vec::new(),
        }
    }

    /// Takes a chunk; returns the bytes to send now: each event this chunk completes, passed to `edit` with the event's data (its `data:` lines joined with "\n", as WHATWG does); `edit` returns Some(new data) to re-emit the event with that data (its other lines — `id:`, `event:`, `retry:`, comments — kept in place and order, the data as one `data:` line per line of the new data, with the event's own line ending) or None to emit the event byte for byte. The partial event stays held. Err(Overflow): the held partial event passed max_event_bytes (the caller then fails closed; after that `push` drops bytes up to the next event boundary and returns what follows).
    ///
    /// `edit` is called only for events that have data (those WHATWG dispatches); others
    /// pass byte for byte. On `Err(Overflow)` nothing of the chunk is lost but the
    /// oversized event: the events it completed besides are handed out at the start of
    /// the next call (`push(b"", …)` right away, or `finish`).
    pub fn push(
        &mut self,
        chunk: &[u8],
        edit: &mut dyn FnMut(&[u8]) -> Option<Vec<u8>>,
    ) -> Result<Vec<u8>, Overflow> {
        let mut out = std::mem::take(&mut self.ready);
        let mut rest = chunk;
        if let Some((&first, after)) = rest.split_first() {
            let pending = std::mem::replace(&mut self.pending_lf, Pending::None);
            if first == b'\n' && pending != Pending::None {
                if pending == Pending::Send {
                    out.push(b'\n');
                }
                rest = after;
            }
        }
        let mut overflowed = false;
        if self.discarding {
            match self.scan.find(rest) {
                None => return Ok(out),
                Some((end, on_cr)) => {
                    self.discarding = false;
                    self.event_ended(on_cr, Pending::Drop);
                    rest = rest.get(end..).unwrap_or_default();
                }
            }
        } else if !self.tail.is_empty() {
            match self.scan.find(rest) {
                None => {
                    if self.tail.len() + rest.len() > self.max_event_bytes {
                        overflowed = true;
                        self.drop_tail();
                        self.discarding = true;
                    } else {
                        self.tail.extend_from_slice(rest);
                    }
                    rest = &[];
                }
                Some((end, on_cr)) => {
                    let (head, after) = rest.split_at(end.min(rest.len()));
                    let mut event = std::mem::take(&mut self.tail);
                    event.extend_from_slice(head);
                    overflowed |= !self.complete(&event, on_cr, &mut out, edit);
                    event.clear();
                    shrink(&mut event);
                    self.tail = event;
                    rest = after;
                }
            }
        }
        while !rest.is_empty() && !self.discarding {
            match self.scan.find(rest) {
                Some((end, on_cr)) => {
                    let (event, after) = rest.split_at(end.min(rest.len()));
                    overflowed |= !self.complete(event, on_cr, &mut out, edit);
                    rest = after;
                }
                None => {
                    if rest.len() > self.max_event_bytes {
                        overflowed = true;
                        self.discarding = true;
                    } else {
                        self.tail.extend_from_slice(rest);
                    }
                    rest = &[];
                }
            }
        }
        if overflowed {
            self.ready = out;
            return Err(Overflow);
        }
        Ok(out)
    }

    /// End of stream: whatever is held, as is (an unterminated last event is passed through unedited).
    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.ready);
        if !self.discarding {
            out.extend_from_slice(&self.tail);
        }
        *self = Rewriter::new(self.max_event_bytes);
        out
    }

    /// Bytes held: the partial event, and what an overflowing push left to hand out.
    pub fn held(&self) -> usize {
        self.tail.len() + self.ready.len()
    }

    fn drop_tail(&mut self) {
        self.tail.clear();
        shrink(&mut self.tail);
    }

    fn event_ended(&mut self, on_cr: bool, pending: Pending) {
        self.first_event = false;
        self.pending_lf = if on_cr { pending } else { Pending::None };
    }

    /// Emits one complete event into `out`; false when it was too large and dropped.
    fn complete(
        &mut self,
        event: &[u8],
        on_cr: bool,
        out: &mut Vec<u8>,
        edit: &mut dyn FnMut(&[u8]) -> Option<Vec<u8>>,
    ) -> bool {
        let first = self.first_event;
        let measured = event.len() - usize::from(event.ends_with(b"\r\n"));
        if measured > self.max_event_bytes {
            self.event_ended(on_cr, Pending::Drop);
            return false;
        }
        self.event_ended(on_cr, Pending::Send);
        let body = match event.strip_prefix(&BOM[..]) {
            Some(body) if first => body,
            _ => event,
        };
        let Some(data) = data(body) else {
            out.extend_from_slice(event);
            return true;
        };
        match edit(&data) {
            None => out.extend_from_slice(event),
            Some(new) => {
                out.extend_from_slice(event.get(..event.len() - body.len()).unwrap_or_default());
                rebuild(body, &new, out);
            }
        }
        true
    }
}

/// A line of an event: its text, and the text with its line ending.
fn lines(event: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    let mut rest = event;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = rest
            .iter()
            .position(|&b| b == b'\n' || b == b'\r')
            .unwrap_or(rest.len());
        let ending = match (rest.get(end), rest.get(end + 1)) {
            (Some(b'\r'), Some(b'\n')) => 2,
            (Some(_), _) => 1,
            (None, _) => 0,
        };
        let (whole, after) = rest.split_at((end + ending).min(rest.len()));
        rest = after;
        Some((whole.get(..end).unwrap_or_default(), whole))
    })
}

/// The value of a `data` field line, WHATWG's way: `data`, or `data:` and one optional
/// space.
fn data_value(line: &[u8]) -> Option<&[u8]> {
    if line == b"data" {
        return Some(&[]);
    }
    let value = line.strip_prefix(b"data:")?;
    Some(value.strip_prefix(b" ").unwrap_or(value))
}

/// The event's data lines joined with LF; `None` when it has none (WHATWG dispatches
/// nothing then). One data line, the usual case, is not copied.
fn data(event: &[u8]) -> Option<Cow<'_, [u8]>> {
    let mut data: Option<Cow<'_, [u8]>> = None;
    for (line, _) in lines(event) {
        let Some(value) = data_value(line) else {
            continue;
        };
        data = Some(match data {
            None => Cow::Borrowed(value),
            Some(joined) => {
                let mut joined = joined.into_owned();
                joined.push(b'\n');
                joined.extend_from_slice(value);
                Cow::Owned(joined)
            }
        });
    }
    data
}

/// The event with `new` in place of its data lines: one `data: ` line per line of `new`
/// where the first data line was, with that line's own ending; every other line as it
/// was. A CR in `new` is a line break too, so the new data can never end the event.
fn rebuild(event: &[u8], new: &[u8], out: &mut Vec<u8>) {
    let mut written = false;
    for (line, whole) in lines(event) {
        if data_value(line).is_none() {
            out.extend_from_slice(whole);
            continue;
        }
        if std::mem::replace(&mut written, true) {
            continue;
        }
        let ending = match whole.get(line.len()..) {
            Some(e) if !e.is_empty() => e,
            _ => b"\n",
        };
        for new_line in lines(new).map(|(l, _)| l).chain(trailing_empty(new)) {
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(new_line);
            out.extend_from_slice(ending);
        }
    }
}

/// `lines` yields nothing after a final line break (and nothing for empty data), where
/// the data has one more, empty, line.
fn trailing_empty(new: &[u8]) -> Option<&'static [u8]> {
    (new.is_empty() || new.ends_with(b"\n") || new.ends_with(b"\r")).then_some(&[][..])
}

fn shrink(buffer: &mut Vec<u8>) {
    if buffer.capacity() > RETAINED_CAPACITY {
        buffer.shrink_to(RETAINED_CAPACITY);
    }
}

#[cfg(test)]
#[path = "sse_tests.rs"]
mod tests;
