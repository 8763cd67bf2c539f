//! Reading the access log line by line from a position, through rotation and truncation.
//!
//! Envoy appends one record per line. A log rotated by renaming (logrotate's `create`, a
//! new file at the same path) is noticed by the path naming another file (device and
//! inode) once the open one is read to its end: the rest of the old file is read first,
//! then the new one from its start. A log truncated in place (`copytruncate`) is noticed
//! by the file being shorter than what was read: it is read again from its start. A last
//! line without its newline is not handed out: Envoy may be writing it.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Longest line handed out whole: the policy service's default bound on a usage batch
/// body (1 MiB). A longer line is no record the filter wrote; it is skipped, not buffered.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

const READ_CHUNK: usize = 64 * 1024;

/// Which file: its device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

impl FileId {
    fn of(meta: &std::fs::Metadata) -> FileId {
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// Where reading stands: the file, the byte after the last whole line handed out, and
/// how many lines came before it (for line numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub file: FileId,
    pub offset: u64,
    pub line: u64,
}

/// One whole line: its number (from 1) in its file, its text without the newline (or
/// `None` when it passed [`MAX_LINE_BYTES`]), and the position after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub number: u64,
    pub text: Option<Vec<u8>>,
    pub after: Position,
}

/// What happened to the file since the last read, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The path names another file now; it is read from its start.
    Rotated,
    /// The file is shorter than what was read; it is read again from its start.
    Truncated,
}

pub struct Tailer {
    path: PathBuf,
    file: File,
    /// After the last whole line handed out.
    at: Position,
    /// Bytes read past `at.offset` that do not yet end in a newline.
    pending: Vec<u8>,
    /// The line being read is longer than [`MAX_LINE_BYTES`]: its bytes are dropped.
    overlong: bool,
    /// How many bytes of the overlong line were dropped.
    dropped: u64,
    /// Bytes of the file read so far (`at.offset` + the partial line's).
    read_to: u64,
}

impl Tailer {
    /// Opens `path` at `resume` when it is still the same file and at least that long,
    /// else at its start. Returns whether `resume` was used.
    pub fn open(path: &Path, resume: Option<Position>) -> io::Result<(Tailer, bool)> {
        let file = File::open(path)?;
        let meta = file.metadata()?;
        let id = FileId::of(&meta);
        let start = match resume {
            Some(p) if p.file == id && p.offset <= meta.len() => p,
            _ => Position {
                file: id,
                offset: 0,
                line: 0,
            },
        };
        let mut tailer = Tailer {
            path: path.to_owned(),
            file,
            at: start,
            pending: Vec::new(),
            overlong: false,
            dropped: 0,
            read_to: start.offset,
        };
        tailer.file.seek(SeekFrom::Start(start.offset))?;
        Ok((tailer, resume.is_some_and(|p| p == start)))
    }

    /// Where reading stands: every line before it has been handed out.
    pub fn position(&self) -> Position {
        self.at
    }

    /// Bytes after the last whole line (a line being written, or cut off).
    pub fn partial_bytes(&self) -> u64 {
        self.read_to - self.at.offset
    }

    /// Up to `max` whole lines from the open file; empty at its end.
    pub fn read_lines(&mut self, max: usize) -> io::Result<Vec<Line>> {
        let mut lines = Vec::new();
        let mut chunk = vec![0; READ_CHUNK];
        while lines.len() < max {
            // Whole lines already buffered go first.
            if let Some(line) = self.take_line() {
                lines.push(line);
                continue;
            }
            let n = match self.file.read(&mut chunk) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if n == 0 {
                break;
            }
            self.read_to += n as u64;
            self.buffer(&chunk[..n]);
        }
        Ok(lines)
    }

    /// Appends read bytes to the partial line. Of a line past [`MAX_LINE_BYTES`] only its
    /// length is kept (`dropped`), and its newline, which ends it. Each call adds at most
    /// a chunk, so only the first buffered line can pass the bound.
    fn buffer(&mut self, mut bytes: &[u8]) {
        if self.overlong && self.pending.is_empty() {
            match bytes.iter().position(|&b| b == b'\n') {
                None => {
                    self.dropped += bytes.len() as u64;
                    return;
                }
                Some(nl) => {
                    self.dropped += nl as u64;
                    bytes = &bytes[nl..];
                }
            }
        }
        self.pending.extend_from_slice(bytes);
        if self.overlong {
            return;
        }
        let first_end = self
            .pending
            .iter()
            .position(|&b| b == b'\n')
            .unwrap_or(self.pending.len());
        if first_end > MAX_LINE_BYTES {
            self.overlong = true;
            self.dropped += first_end as u64;
            self.pending.drain(..first_end);
        }
    }

    fn take_line(&mut self) -> Option<Line> {
        let nl = self.pending.iter().position(|&b| b == b'\n')?;
        let mut text: Vec<u8> = self.pending.drain(..=nl).collect();
        text.pop();
        let length = text.len() as u64 + 1 + std::mem::take(&mut self.dropped);
        let text = (!std::mem::take(&mut self.overlong)).then_some(text);
        self.at.offset += length;
        self.at.line += 1;
        Some(Line {
            number: self.at.line,
            text,
            after: self.at,
        })
    }

    /// At the open file's end: whether the path now names another file, or the file
    /// shrank below what was read. Either way reading goes on from the start of the file
    /// the path names. `Ok(None)`: nothing changed (or the path is gone for a moment,
    /// between a rotation's rename and the new file).
    pub fn check(&mut self) -> io::Result<Option<Change>> {
        let open_len = self.file.metadata()?.len();
        if open_len < self.read_to {
            self.restart(None)?;
            return Ok(Some(Change::Truncated));
        }
        match std::fs::metadata(&self.path) {
            Ok(meta) if FileId::of(&meta) != self.at.file => {
                let file = File::open(&self.path)?;
                self.restart(Some(file))?;
                Ok(Some(Change::Rotated))
            }
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn restart(&mut self, file: Option<File>) -> io::Result<()> {
        if let Some(file) = file {
            self.file = file;
        }
        self.file.seek(SeekFrom::Start(0))?;
        self.at = Position {
            file: FileId::of(&self.file.metadata()?),
            offset: 0,
            line: 0,
        };
        self.pending.clear();
        self.overlong = false;
        self.dropped = 0;
        self.read_to = 0;
        Ok(())
    }
}
