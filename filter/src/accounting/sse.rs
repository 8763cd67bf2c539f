//! An incremental Server-Sent Events parser, following the WHATWG HTML "event stream
//! interpretation" to the letter, because providers' streams are cut into TCP-sized chunks
//! anywhere: mid-line, between the CR and LF of one line ending, inside a UTF-8 code point.
//!
//! Raw bytes are buffered and never decoded per chunk: CR and LF never occur inside a UTF-8
//! sequence, so splitting lines on bytes is the same as splitting the decoded text, and a
//! code point cut by a chunk boundary is whole again by the time its line is read.
//!
//! Memory is bounded by `max_event_bytes` whatever the input: an event that would need more
//! is dropped, counted, and the parser picks up again after the blank line that ends it.
//! `id` and `retry` are recognised and ignored: the gateway never reconnects a stream, so
//! the last event id and reconnection time would never be used.

use std::borrow::Cow;

/// Large enough for any usage-bearing event the providers send, small enough that a
/// runaway stream cannot take a worker's memory with it.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 1024 * 1024;

/// Capacity a buffer keeps between events: one large event must not pin its peak memory
/// for the rest of a long-lived stream.
const RETAINED_CAPACITY: usize = 16 * 1024;

const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];

/// One dispatched event. `event` is the type (`"message"` when the stream named none);
/// `data` is the data lines joined by `\n`, as raw bytes so a JSON consumer reads them
/// without another copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event<'a> {
    pub event: &'a str,
    pub data: &'a [u8],
}

impl Event<'_> {
    /// The data as text, with invalid UTF-8 replaced as the spec's decoder would.
    pub fn data_text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(self.data)
    }
}

/// How a stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// On an event boundary: nothing was left undispatched.
    Clean,
    /// Inside an event: its bytes were discarded, as the spec requires.
    MidEvent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bom {
    /// This many bytes of a possible BOM were held back at the start of the stream.
    Matching(usize),
    Done,
}

/// What one complete line means to the event being built.
enum Line<'a> {
    Blank,
    Data(&'a [u8]),
    EventType(&'a [u8]),
    Ignored,
}

#[derive(Debug)]
pub struct SseParser {
    max_event_bytes: usize,
    bom: Bom,
    /// The previous chunk ended in CR, so an LF opening the next one belongs to that ending.
    after_cr: bool,
    /// The start of a line whose end has not arrived yet.
    line: Vec<u8>,
    /// The event's data lines joined by `\n`; `has_data` tells "no data line" from "empty".
    data: Vec<u8>,
    has_data: bool,
    event_type: Vec<u8>,
    /// Skipping the rest of an event that outgrew the limit, up to its blank line.
    discarding: bool,
    discarded_line_started: bool,
    oversized_events: u64,
}

impl Default for SseParser {
    fn default() -> Self {
        SseParser::new(DEFAULT_MAX_EVENT_BYTES)
    }
}

impl SseParser {
    /// An event is dropped when its data and type so far plus the raw line being read
    /// (field name included) would exceed `max_event_bytes`. Measuring raw lines makes the
    /// outcome independent of where chunks are cut; the buffers' capacity may reach twice
    /// the limit while an event grows, and shrinks again after it.
    pub fn new(max_event_bytes: usize) -> SseParser {
        SseParser {
            max_event_bytes,
            bom: Bom::Matching(0),
            after_cr: false,
            line: Vec::new(),
            data: Vec::new(),
            has_data: false,
            event_type: Vec::new(),
            discarding: false,
            discarded_line_started: false,
            oversized_events: 0,
        }
    }

    /// Events dropped so far because they outgrew `max_event_bytes`.
    pub fn oversized_events(&self) -> u64 {
        self.oversized_events
    }

    /// Bytes held between chunks: the unfinished line, data and event type. Never more
    /// than `max_event_bytes`.
    pub fn buffered_bytes(&self) -> usize {
        self.line.len() + self.data.len() + self.event_type.len()
    }

    /// Reads the next chunk of the stream and calls `on_event` for each event it completes.
    pub fn feed(&mut self, chunk: &[u8], mut on_event: impl FnMut(Event<'_>)) {
        let mut rest = chunk;
        while let Bom::Matching(matched) = self.bom {
            let Some((&byte, tail)) = rest.split_first() else {
                return;
            };
            if BOM.get(matched) == Some(&byte) {
                rest = tail;
                self.bom = if matched + 1 == BOM.len() {
                    Bom::Done
                } else {
                    Bom::Matching(matched + 1)
                };
            } else {
                self.bom = Bom::Done;
                // The held-back bytes were not a BOM after all but the stream's first bytes.
                self.scan(BOM.get(..matched).unwrap_or_default(), &mut on_event);
            }
        }
        self.scan(rest, &mut on_event);
    }

    /// Ends the stream. An unterminated event is not dispatched (the spec discards it);
    /// the answer says whether there was one.
    pub fn finish(&mut self) -> End {
        let mid_event = matches!(self.bom, Bom::Matching(n) if n > 0)
            || !self.line.is_empty()
            || self.has_data
            || !self.event_type.is_empty()
            || self.discarding;
        let oversized_events = self.oversized_events;
        *self = SseParser::new(self.max_event_bytes);
        self.oversized_events = oversized_events;
        if mid_event {
            End::MidEvent
        } else {
            End::Clean
        }
    }

    fn scan<'c>(&mut self, chunk: &'c [u8], on_event: &mut impl FnMut(Event<'_>)) {
        let mut rest = chunk;
        if self.after_cr {
            let Some((&first, tail)) = rest.split_first() else {
                return;
            };
            self.after_cr = false;
            if first == b'\n' {
                rest = tail;
            }
        }
        // The event's only data line so far, when it lies whole in this chunk: the common
        // `data: {...}\n\n` event is then handed out without being copied.
        let mut borrowed: Option<&'c [u8]> = None;
        while let Some(end) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            let line = rest.get(..end).unwrap_or_default();
            let mut tail = rest.get(end + 1..).unwrap_or_default();
            if rest.get(end) == Some(&b'\r') {
                match tail.split_first() {
                    Some((b'\n', after)) => tail = after,
                    None => self.after_cr = true,
                    Some(_) => {}
                }
            }
            self.end_line(line, &mut borrowed, on_event);
            rest = tail;
        }
        if let Some(data) = borrowed {
            self.data.extend_from_slice(data);
        }
        self.keep_partial_line(rest);
    }

    fn event_bytes(&self, borrowed: Option<&[u8]>) -> usize {
        self.data.len() + borrowed.map_or(0, <[u8]>::len) + self.event_type.len()
    }

    /// `line` completes whatever is held in `self.line`.
    fn end_line<'c>(
        &mut self,
        line: &'c [u8],
        borrowed: &mut Option<&'c [u8]>,
        on_event: &mut impl FnMut(Event<'_>),
    ) {
        if self.discarding {
            let blank = line.is_empty() && !self.discarded_line_started;
            self.discarded_line_started = false;
            if blank {
                self.discarding = false;
            }
            return;
        }
        // The raw line is measured, not the value it adds, so where the chunk boundaries
        // fall cannot change which events fit.
        if self.event_bytes(*borrowed) + self.line.len() + line.len() > self.max_event_bytes {
            self.overflow(borrowed);
            return;
        }
        if self.line.is_empty() {
            match classify(line) {
                Line::Blank => self.dispatch(borrowed, on_event),
                Line::Data(value) if !self.has_data => {
                    self.has_data = true;
                    *borrowed = Some(value);
                }
                Line::Data(value) => {
                    self.materialize(borrowed);
                    self.data.push(b'\n');
                    self.data.extend_from_slice(value);
                }
                Line::EventType(value) => set(&mut self.event_type, value),
                Line::Ignored => {}
            }
            return;
        }
        let mut whole = std::mem::take(&mut self.line);
        whole.extend_from_slice(line);
        match classify(&whole) {
            Line::Data(value) => {
                self.materialize(borrowed);
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.has_data = true;
                self.data.extend_from_slice(value);
            }
            Line::EventType(value) => set(&mut self.event_type, value),
            Line::Blank | Line::Ignored => {}
        }
        whole.clear();
        release_excess(&mut whole);
        self.line = whole;
    }

    fn keep_partial_line(&mut self, partial: &[u8]) {
        if partial.is_empty() {
            return;
        }
        if self.discarding {
            self.discarded_line_started = true;
            return;
        }
        if self.event_bytes(None) + self.line.len() + partial.len() > self.max_event_bytes {
            self.overflow(&mut None);
            self.discarded_line_started = true;
            return;
        }
        self.line.extend_from_slice(partial);
    }

    fn materialize(&mut self, borrowed: &mut Option<&[u8]>) {
        if let Some(data) = borrowed.take() {
            self.data.extend_from_slice(data);
        }
    }

    fn dispatch(&mut self, borrowed: &mut Option<&[u8]>, on_event: &mut impl FnMut(Event<'_>)) {
        if self.has_data {
            let name = String::from_utf8_lossy(&self.event_type);
            let data = match *borrowed {
                Some(data) => data,
                None => &self.data,
            };
            on_event(Event {
                event: if name.is_empty() { "message" } else { &name },
                data,
            });
        }
        self.reset_event(borrowed);
    }

    fn overflow(&mut self, borrowed: &mut Option<&[u8]>) {
        self.oversized_events += 1;
        self.discarding = true;
        self.line.clear();
        release_excess(&mut self.line);
        self.reset_event(borrowed);
    }

    fn reset_event(&mut self, borrowed: &mut Option<&[u8]>) {
        *borrowed = None;
        self.has_data = false;
        self.data.clear();
        release_excess(&mut self.data);
        self.event_type.clear();
        release_excess(&mut self.event_type);
    }
}

fn classify(line: &[u8]) -> Line<'_> {
    let (field, value) = match line.iter().position(|&b| b == b':') {
        None if line.is_empty() => return Line::Blank,
        None => (line, &[][..]),
        Some(0) => return Line::Ignored,
        Some(colon) => {
            let value = line.get(colon + 1..).unwrap_or_default();
            (
                line.get(..colon).unwrap_or_default(),
                value.strip_prefix(b" ").unwrap_or(value),
            )
        }
    };
    match field {
        b"data" => Line::Data(value),
        b"event" => Line::EventType(value),
        _ => Line::Ignored,
    }
}

fn set(buffer: &mut Vec<u8>, value: &[u8]) {
    buffer.clear();
    buffer.extend_from_slice(value);
}

fn release_excess(buffer: &mut Vec<u8>) {
    if buffer.capacity() > RETAINED_CAPACITY {
        buffer.shrink_to(RETAINED_CAPACITY);
    }
}

#[cfg(test)]
#[path = "sse_tests.rs"]
mod tests;
