//! `chokepoint-policy export`: the audit stream of booked usage records as a lakehouse
//! table, Parquet files partitioned by booking day (`<out>/date=YYYY-MM-DD/part-<id>.parquet`,
//! Hive style) with the published record's fields as columns
//! (`chokepoint_contract::published`).
//!
//! Incremental and idempotent, to run every few minutes: a run reads the stream through
//! the admin API (`GET /v1/admin/audit`) from the cursor kept in the directory up to the
//! newest entry at its start, writes one file per day it saw, makes them durable, and only
//! then moves the cursor on (atomically). Every record is written once: a run that
//! stops before its cursor is saved left files named after its first entry, which the
//! next run removes before it writes them again. Two runs never share a directory (a
//! lock), and memory is bounded by the page and row-group sizes, not by the stream.
//!
//! The stream is capped by length and age: what a trim removed before a run read it is
//! lost to the table. The run counts it exactly, from the stream's counters, and says so.

mod state;
mod table;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chokepoint_contract::published;
use chokepoint_contract::UsageRecord;
use chokepoint_policy::stream_id::StreamId;
use chokepoint_policy::utc_date::Period;
use clap::Args;
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::client::Admin;
use super::Remote;
use state::{Cursor, Lock, StreamIdText};
use table::{DayFiles, Table};

/// Rows buffered at most by default. Measured on 100,000 records of 42 fields: 34 MB
/// resident at 8,192, 49 MB at 16,384, 126 MB at 65,536, at the same speed, and files 3 %
/// larger than with 65,536 (about 30 bytes a record); most runs' files hold fewer rows
/// than a row group anyway.
const DEFAULT_ROW_GROUP_ROWS: u64 = 16_384;

/// The exit status of a run that found records trimmed before their export, with
/// `--fail-on-trimmed`.
const TRIMMED_EXIT: u8 = 3;

#[derive(Args, Debug)]
#[command(after_help = "\
The directory keeps the export's cursor (_chokepoint_export.json) and lock
(_chokepoint_export.lock) beside the data; run the export every few minutes (cron, a
systemd timer, a Kubernetes CronJob) against the same directory.

Query it with DuckDB:
  SELECT \"gen_ai.request.model\", sum(\"chokepoint.cost_micros\") / 1e6 AS usd
  FROM read_parquet('DIR/date=*/*.parquet', hive_partitioning = true, union_by_name = true)
  GROUP BY 1 ORDER BY 2 DESC;

Exit status: 0 done, 1 failed (nothing committed), 3 with --fail-on-trimmed when records
were trimmed from the stream before they could be exported (the rest is committed).")]
pub struct ExportArgs {
    /// The table's directory: a local path or an object store mounted as one.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,

    /// Stream entries read per admin API call (1 to 1000).
    #[arg(long, value_name = "N", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=1000))]
    page: u64,

    /// Most rows buffered before they are written as a row group (of the largest
    /// day's file): the bound on the export's memory, about 2 KiB a row (16,384 rows:
    /// 50 MB resident in all).
    #[arg(long, value_name = "ROWS", default_value_t = DEFAULT_ROW_GROUP_ROWS,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    row_group_rows: u64,

    /// Exit with status 3 when records were trimmed from the stream before they could
    /// be exported (they are always reported on stderr).
    #[arg(long)]
    fail_on_trimmed: bool,

    #[command(flatten)]
    remote: Remote,
}

/// `GET /v1/admin/audit`'s answer.
#[derive(Deserialize)]
struct Page {
    length: u64,
    entries_added: u64,
    last_id: String,
    entries: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    id: String,
    day: Option<String>,
    record: Option<Box<serde_json::value::RawValue>>,
}

/// What one run did.
#[derive(Debug, Default)]
struct Report {
    exported: u64,
    trimmed: u64,
    skipped: u64,
    removed: Vec<PathBuf>,
    files: Vec<(String, u64, PathBuf)>,
}

pub async fn run(args: ExportArgs) -> ExitCode {
    match export(&args).await {
        Ok((report, cursor)) => {
            print(&args, &report, &cursor);
            if report.trimmed > 0 && args.fail_on_trimmed {
                ExitCode::from(TRIMMED_EXIT)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(message) => {
            eprintln!("chokepoint-policy export: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn export(args: &ExportArgs) -> Result<(Report, Cursor), String> {
    let admin = Admin::new(&args.remote)?;
    let out = args.out.as_path();
    std::fs::create_dir_all(out)
        .map_err(|err| format!("cannot create {}: {err}", out.display()))?;
    let _lock = Lock::take(out)?;
    let mut cursor = Cursor::load(out)?;
    let mut report = Report {
        removed: state::remove_uncommitted(out, cursor.after.0)?,
        ..Report::default()
    };
    for path in &report.removed {
        eprintln!(
            "chokepoint-policy export: removed {}, left by a run that did not finish",
            path.display()
        );
    }

    let page_size = usize::try_from(args.page).unwrap_or(1000);
    let row_group_rows = usize::try_from(args.row_group_rows).unwrap_or(usize::MAX);
    let mut files: Option<DayFiles> = None;
    // The newest entry when the run started: where it stops, so a busy stream cannot
    // keep one run going for ever.
    let mut until: Option<StreamId> = None;
    loop {
        let page = fetch(&admin, cursor.after.0, until, page_size).await?;
        if until.is_none() {
            match StreamId::parse(&page.last_id) {
                Some(last) => until = Some(last),
                None => {
                    return Err(format!(
                        "the service named {:?} as the stream's last id",
                        page.last_id
                    ))
                }
            }
        }
        account_for_trims(&mut cursor, &mut report, &page);
        let full = page.entries.len() == page_size;
        for entry in page.entries {
            let id = StreamId::parse(&entry.id)
                .filter(|id| *id > cursor.after.0)
                .ok_or_else(|| format!("the service answered entry {:?} out of order", entry.id))?;
            cursor.after = StreamIdText(id);
            cursor.consumed += 1;
            let Some((day, record)) = readable(&entry) else {
                eprintln!(
                    "chokepoint-policy export: skipped stream entry {id}: no usage record or booking day in it"
                );
                report.skipped += 1;
                continue;
            };
            if files.is_none() {
                let name = state::file_name(id);
                files = Some(DayFiles::new(Table::new()?, out, name, row_group_rows));
            }
            if let Some(files) = files.as_mut() {
                files.push(&day, &published::attributes_on(&record, Some(&day)))?;
            }
            report.exported += 1;
        }
        if !full {
            break;
        }
    }
    if let Some(files) = files {
        report.files = files.finish()?;
    }
    cursor.exported += report.exported;
    cursor.trimmed += report.trimmed;
    cursor.skipped += report.skipped;
    cursor.save(out)?;
    Ok((report, cursor))
}

async fn fetch(
    admin: &Admin,
    after: StreamId,
    until: Option<StreamId>,
    limit: usize,
) -> Result<Page, String> {
    let mut path = format!("/v1/admin/audit?after={after}&limit={limit}");
    if let Some(until) = until {
        path.push_str(&format!("&until={until}"));
    }
    let body = admin.ok(Method::GET, &path, None).await?;
    serde_json::from_value(body).map_err(|err| {
        format!("the policy service's audit page is not what the export reads: {err}")
    })
}

/// Counts what a trim removed before the export read it: the stream has lost
/// `entries_added - length` entries from its head, and the cursor accounts for
/// `consumed` of the stream's entries; any lost beyond those were never exported.
fn account_for_trims(cursor: &mut Cursor, report: &mut Report, page: &Page) {
    let gone = page.entries_added.saturating_sub(page.length);
    if page.entries_added < cursor.consumed {
        eprintln!(
            "chokepoint-policy export: warning: the audit stream has had {} entries, fewer \
             than the {} this directory accounts for: Redis lost it (restarted without \
             persistence?) or the directory was exported from another service. Continuing \
             after entry {}; records it held that were not exported cannot be counted",
            page.entries_added, cursor.consumed, cursor.after.0
        );
        cursor.consumed = gone;
    }
    let trimmed = gone.saturating_sub(cursor.consumed);
    if trimmed > 0 {
        eprintln!(
            "chokepoint-policy export: warning: {trimmed} records were trimmed from the audit \
             stream before they could be exported; they are missing from the table (the \
             ledger still counts them). Run the export more often, or raise the service's \
             --audit-max-len / --audit-max-age-secs"
        );
        cursor.consumed += trimmed;
        report.trimmed += trimmed;
    }
}

/// The entry's booking day (a well-formed UTC day: it names a directory) and record.
fn readable(entry: &Entry) -> Option<(String, UsageRecord)> {
    let day = match Period::parse(entry.day.as_deref()?)? {
        Period::Day(day) => day.to_string(),
        Period::Month(_) => return None,
    };
    let record = serde_json::from_str(entry.record.as_ref()?.get()).ok()?;
    Some((day, record))
}

fn print(args: &ExportArgs, report: &Report, cursor: &Cursor) {
    if args.remote.json {
        let files: Vec<_> = report
            .files
            .iter()
            .map(|(day, rows, path)| json!({"date": day, "rows": rows, "path": path}))
            .collect();
        let body = json!({
            "exported": report.exported,
            "trimmed": report.trimmed,
            "skipped": report.skipped,
            "files": files,
            "removed": report.removed,
            "cursor": cursor,
        });
        println!("{body:#}");
        return;
    }
    if report.files.is_empty() {
        println!("nothing new after stream entry {}", cursor.after.0);
    }
    for (day, rows, path) in &report.files {
        println!("{day}  {rows:>8} records  {}", path.display());
    }
    println!(
        "exported {} records ({} trimmed before export, {} skipped); cursor at {}; {} records in {} in all",
        report.exported,
        report.trimmed,
        report.skipped,
        cursor.after.0,
        cursor.exported,
        args.out.display()
    );
}

/// Makes a rename or a new file in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), String> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|err| format!("cannot sync {}: {err}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(entries_added: u64, length: u64) -> Page {
        Page {
            length,
            entries_added,
            last_id: "0-0".to_owned(),
            entries: Vec::new(),
        }
    }

    #[test]
    fn counts_what_was_trimmed_before_export() {
        // (entries the cursor accounts for, entries ever added, held now) ->
        // (trimmed unread, accounted for after)
        let cases = [
            ((0, 0, 0), (0, 0)),
            ((0, 10, 10), (0, 0)),
            ((0, 10, 4), (6, 6)),
            ((5, 10, 4), (1, 6)),
            ((6, 10, 4), (0, 6)),
            ((9, 10, 4), (0, 9)),
            ((9, 12, 0), (3, 12)),
            // The stream was lost and started again: nothing is counted as trimmed
            // that the new stream did not trim.
            ((50, 10, 10), (0, 0)),
            ((50, 10, 7), (0, 3)),
        ];
        for ((consumed, added, length), expected) in cases {
            let mut cursor = Cursor {
                consumed,
                ..Cursor::default()
            };
            let mut report = Report::default();
            account_for_trims(&mut cursor, &mut report, &page(added, length));
            assert_eq!(
                (report.trimmed, cursor.consumed),
                expected,
                "{consumed} {added} {length}"
            );
        }
    }

    #[test]
    fn reads_only_entries_with_a_record_and_a_day() {
        let raw = |text: &str| serde_json::value::RawValue::from_string(text.to_owned()).ok();
        let record = r#"{"request_id":"r1","model":"m"}"#;
        let entry = |day: Option<&str>, record: Option<&str>| Entry {
            id: "1-0".to_owned(),
            day: day.map(str::to_owned),
            record: record.and_then(raw),
        };
        let cases = [
            (entry(Some("2026-12-07"), Some(record)), Some("2026-12-07")),
            (entry(None, Some(record)), None),
            (entry(Some("2026-12"), Some(record)), None),
            (entry(Some("../../etc"), Some(record)), None),
            (entry(Some("2026-12-07"), None), None),
            (entry(Some("2026-12-07"), Some("[1]")), None),
        ];
        for (entry, expected) in cases {
            let got = readable(&entry);
            assert_eq!(
                got.as_ref().map(|(day, _)| day.as_str()),
                expected,
                "{:?}",
                entry.day
            );
        }
    }
}
