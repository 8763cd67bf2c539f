//! What the export keeps in its output directory besides the data: the cursor (how far
//! into the audit stream it has exported), the lock that keeps two runs apart, and the
//! clean-up of files a run left behind when it stopped before committing.
//!
//! Both files start with `_`, which Spark, Hive and DuckDB's `date=*/*.parquet` globs
//! skip as metadata.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};

use chokepoint_policy::stream_id::StreamId;
use serde::{Deserialize, Serialize};

use super::sync_dir;

pub const CURSOR_FILE: &str = "_chokepoint_export.json";
pub const LOCK_FILE: &str = "_chokepoint_export.lock";

/// How far the export has got. Written only after the data files it covers are durable,
/// so a crash at any point leaves a cursor that names exactly the committed data.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cursor {
    /// The last stream entry exported (or counted as trimmed or skipped); `0-0` before
    /// the first run.
    pub after: StreamIdText,
    /// Stream entries accounted for up to and including `after`: exported, skipped or
    /// trimmed before they could be read. The stream's own count of entries ever added,
    /// minus those it still holds, says how many were trimmed; what exceeds this count
    /// was trimmed before the export got to it.
    pub consumed: u64,
    /// Records written, over every run.
    pub exported: u64,
    /// Entries trimmed from the stream before they were exported, over every run.
    pub trimmed: u64,
    /// Entries that held no readable record or booking day, over every run.
    pub skipped: u64,
}

/// A stream id as the cursor file spells it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamIdText(pub StreamId);

impl Serialize for StreamIdText {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for StreamIdText {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        StreamId::parse(&text)
            .map(StreamIdText)
            .ok_or_else(|| serde::de::Error::custom("not a stream id (<ms>-<seq>)"))
    }
}

impl Cursor {
    /// The directory's cursor; the start when there is none yet.
    pub fn load(dir: &Path) -> Result<Self, String> {
        let path = dir.join(CURSOR_FILE);
        match fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|err| {
                format!(
                    "{}: {err}; the export cannot tell what it wrote. Restore the file, or \
                     start a new directory",
                    path.display()
                )
            }),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(err) => Err(format!("cannot read {}: {err}", path.display())),
        }
    }

    /// Replaces the cursor atomically: a new file, synced, renamed over the old one.
    pub fn save(&self, dir: &Path) -> Result<(), String> {
        let path = dir.join(CURSOR_FILE);
        let tmp = dir.join(format!(".{CURSOR_FILE}.tmp"));
        let failed = |err: std::io::Error| format!("cannot write {}: {err}", path.display());
        let mut text = serde_json::to_string_pretty(self).map_err(|err| err.to_string())?;
        text.push('\n');
        let mut file = File::create(&tmp).map_err(failed)?;
        file.write_all(text.as_bytes()).map_err(failed)?;
        file.sync_all().map_err(failed)?;
        fs::rename(&tmp, &path).map_err(failed)?;
        sync_dir(dir)
    }
}

/// An exclusive lock on the directory's lock file for as long as this lives. An
/// advisory `flock`, released by the kernel however the process ends, so a crashed run
/// never blocks the next one.
pub struct Lock {
    _file: File,
}

impl Lock {
    pub fn take(dir: &Path) -> Result<Self, String> {
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|err| format!("cannot open {}: {err}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file }),
            Err(TryLockError::WouldBlock) => Err(format!(
                "another export is writing to {} (it holds {}); runs must not overlap: \
                 schedule them further apart",
                dir.display(),
                path.display()
            )),
            Err(TryLockError::Error(err)) => Err(format!("cannot lock {}: {err}", path.display())),
        }
    }
}

/// The data file a run whose first entry is `first` writes into each day's directory.
pub fn file_name(first: StreamId) -> String {
    format!("part-{first}.parquet")
}

/// Removes what runs that never committed left: temporary files, and data files named
/// after an entry past the cursor (a run names its files by its first entry, so every
/// committed file's entry is at or before the cursor). Returns the paths removed.
pub fn remove_uncommitted(dir: &Path, cursor: StreamId) -> Result<Vec<PathBuf>, String> {
    let mut removed = Vec::new();
    let listing = |path: &Path| {
        fs::read_dir(path).map_err(|err| format!("cannot list {}: {err}", path.display()))
    };
    let stale_tmp = dir.join(format!(".{CURSOR_FILE}.tmp"));
    if stale_tmp.exists() {
        removed.push(stale_tmp);
    }
    for day in listing(dir)? {
        let day = day.map_err(|err| format!("cannot list {}: {err}", dir.display()))?;
        let is_partition = day
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with("date="));
        if !is_partition || !day.path().is_dir() {
            continue;
        }
        for file in listing(&day.path())? {
            let file =
                file.map_err(|err| format!("cannot list {}: {err}", day.path().display()))?;
            let name = file.file_name();
            let Some(name) = name.to_str() else { continue };
            if is_uncommitted(name, cursor) {
                removed.push(file.path());
            }
        }
    }
    for path in &removed {
        fs::remove_file(path).map_err(|err| format!("cannot remove {}: {err}", path.display()))?;
    }
    Ok(removed)
}

/// `.part-<id>.parquet.tmp`, or `part-<id>.parquet` with an id past the cursor. Any
/// other name (a compaction's output, say) is not the export's to touch.
fn is_uncommitted(name: &str, cursor: StreamId) -> bool {
    if name.starts_with(".part-") && name.ends_with(".parquet.tmp") {
        return true;
    }
    name.strip_prefix("part-")
        .and_then(|rest| rest.strip_suffix(".parquet"))
        .and_then(StreamId::parse)
        .is_some_and(|id| id > cursor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_uncommitted_files_by_name() {
        let cursor = StreamId { ms: 100, seq: 5 };
        let cases = [
            ("part-100-5.parquet", false),
            ("part-99-9.parquet", false),
            ("part-100-6.parquet", true),
            ("part-101-0.parquet", true),
            (".part-99-0.parquet.tmp", true),
            ("part-101-0.parquet.crc", false),
            ("compacted-0.parquet", false),
            ("part-x.parquet", false),
            ("_chokepoint_export.json", false),
        ];
        for (name, expected) in cases {
            assert_eq!(is_uncommitted(name, cursor), expected, "{name}");
        }
    }

    #[test]
    fn the_cursor_file_round_trips_and_refuses_strangers() {
        let cursor = Cursor {
            after: StreamIdText(StreamId { ms: 7, seq: 1 }),
            consumed: 12,
            exported: 10,
            trimmed: 1,
            skipped: 1,
        };
        let text = serde_json::to_string(&cursor).expect("json");
        assert_eq!(
            text,
            r#"{"after":"7-1","consumed":12,"exported":10,"trimmed":1,"skipped":1}"#
        );
        assert_eq!(serde_json::from_str::<Cursor>(&text).ok(), Some(cursor));
        for bad in [
            r#"{"after":"7","consumed":1,"exported":1,"trimmed":0,"skipped":0}"#,
            r#"{"after":"7-1","consumed":-1,"exported":1,"trimmed":0,"skipped":0}"#,
            r#"{"after":"7-1","consumed":1,"exported":1,"trimmed":0,"skipped":0,"x":1}"#,
            r#"{"after":"7-1"}"#,
        ] {
            assert!(serde_json::from_str::<Cursor>(bad).is_err(), "{bad}");
        }
    }
}
