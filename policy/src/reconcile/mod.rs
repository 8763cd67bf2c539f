//! `chokepoint-policy reconcile`: books every record of Envoy's access log that the
//! ledger has not seen. Envoy holds the records it has not yet delivered in memory (its
//! shared queue and the batch in flight) and loses them when its process dies; the
//! access log on disk has them. The reconciler sends exactly the records the filter
//! delivers (see `select`), through the service's usage endpoint with the gateway's
//! token (see `ledger`), whose per-request-id dedupe makes a record already booked a
//! no-op, so it may run any number of times. A record older than the dedupe window is
//! never sent: its marker may have expired and it could be charged twice.
//!
//! Once over the file, or `--follow`ing it (a sidecar beside Envoy), with a checkpoint
//! in a state file so that a restart resumes where the last acknowledged batch ended.

mod checkpoint;
mod ledger;
mod select;
mod tail;

#[cfg(test)]
mod tests;

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::pin;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::value::RawValue;

pub use ledger::Ledger;
use select::Verdict;
use tail::{Change, Position, Tailer};

/// Lines judged per read.
const READ_LINES: usize = 1024;
/// Line numbers of invalid lines and request ids of records left out named in the log
/// and summary, at most.
const NAMED: usize = 20;

#[derive(Debug, Clone)]
pub struct Options {
    pub access_log: PathBuf,
    pub state: Option<PathBuf>,
    pub follow: bool,
    /// How long the service remembers a booked request id.
    pub dedupe_window: Duration,
    /// Records per batch, at most.
    pub batch_records: usize,
    /// Bytes of records per batch, at most (a single larger record goes alone).
    pub batch_bytes: usize,
    /// How often a followed file is looked at when it has nothing new.
    pub poll: Duration,
}

/// What a run did. Every line read is counted once: as a record sent (`booked` or
/// `already_booked` or `refused`), `not_charged`, `too_old` or `invalid`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub lines: u64,
    /// Records the filter delivers, of the lines read.
    pub charged: u64,
    pub already_booked: u64,
    pub booked: u64,
    /// Refused by the ledger as invalid (dead-lettered, or a record refused alone).
    pub refused: u64,
    pub not_charged: u64,
    pub too_old: u64,
    pub invalid: u64,
    /// The first [`NAMED`] invalid lines' numbers.
    pub invalid_lines: Vec<u64>,
    /// Bytes after the last newline, left for the next run (a line being written).
    pub partial_bytes: u64,
    pub elapsed: Duration,
}

impl Summary {
    /// Whether a record was left out of the ledger (too old, refused) or a line could not
    /// be read as one: exit status 3, for an operator to look at.
    pub fn left_out(&self) -> bool {
        self.too_old + self.refused + self.invalid > 0
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.elapsed.as_secs_f64();
        write!(
            f,
            "reconcile: {} lines, {} charged records: {} already booked, {} booked now, {} \
             refused by the ledger, {} too old to book; {} not charged, {} invalid",
            self.lines,
            self.charged,
            self.already_booked,
            self.booked,
            self.refused,
            self.too_old,
            self.not_charged,
            self.invalid
        )?;
        if !self.invalid_lines.is_empty() {
            let lines: Vec<String> = self.invalid_lines.iter().map(u64::to_string).collect();
            let more = if self.invalid > self.invalid_lines.len() as u64 {
                ", …"
            } else {
                ""
            };
            write!(f, " (line {}{more})", lines.join(", "))?;
        }
        if self.partial_bytes > 0 {
            write!(
                f,
                "; a last line without its newline ({} bytes) left for the next run",
                self.partial_bytes
            )?;
        }
        write!(
            f,
            "; {secs:.2} s, {:.0} lines/s",
            self.lines as f64 / secs.max(0.001)
        )
    }
}

/// The batch being gathered: records as logged, their bytes.
#[derive(Default)]
struct Batch {
    records: Vec<Box<RawValue>>,
    ids: Vec<String>,
    bytes: usize,
}

struct Run<'a> {
    opts: &'a Options,
    ledger: &'a Ledger,
    summary: Summary,
    named_too_old: usize,
    /// The checkpoint last written: a followed file at rest is not rewritten every poll.
    saved: Option<Position>,
}

/// Checks the service before reading anything: that it takes the gateway token (an
/// empty batch, which books nothing), and `opts.dedupe_window` against its own, as a
/// longer one could book a record whose marker is gone.
pub async fn check_service(opts: &Options, ledger: &Ledger) -> Result<(), String> {
    let ours = opts.dedupe_window.as_secs();
    let theirs = ledger.dedupe_secs().await?;
    ledger.send(&[]).await?;
    match theirs {
        Some(theirs) if ours > theirs => Err(format!(
            "--dedupe-window-secs {ours} is longer than the policy service's dedupe window \
             ({theirs} s, its --usage-dedupe-secs): records older than {theirs} s could be \
             charged twice; pass --dedupe-window-secs {theirs} or less"
        )),
        Some(_) => Ok(()),
        None => {
            log::warn!(
                "the policy service does not say its dedupe window; assuming {ours} s \
                 (--dedupe-window-secs): make sure it is not longer than its \
                 --usage-dedupe-secs"
            );
            Ok(())
        }
    }
}

/// Reads the access log once to its end (or, with `follow`, until `stop` completes) and
/// books what the ledger lacks. `Err` ends the run early (the service refused the token,
/// gave no answer within the attempts, the file cannot be read); the summary says what
/// was done until then, and the checkpoint stands at the last acknowledged batch.
pub async fn run(
    opts: &Options,
    ledger: &Ledger,
    stop: impl Future<Output = ()>,
) -> (Summary, Result<(), String>) {
    let started = Instant::now();
    let mut run = Run {
        opts,
        ledger,
        summary: Summary::default(),
        named_too_old: 0,
        saved: None,
    };
    let outcome = run.go(stop).await;
    run.summary.elapsed = started.elapsed();
    (run.summary, outcome)
}

impl Run<'_> {
    async fn go(&mut self, stop: impl Future<Output = ()>) -> Result<(), String> {
        let path = &self.opts.access_log;
        let resume = match &self.opts.state {
            Some(state) => checkpoint::load(state, path)?,
            None => None,
        };
        let (mut tailer, resumed) = Tailer::open(path, resume)
            .map_err(|e| format!("cannot read the access log {}: {e}", path.display()))?;
        match (resume, resumed) {
            (Some(p), true) => log::info!(
                "resuming {} after line {} (byte {})",
                path.display(),
                p.line,
                p.offset
            ),
            (Some(_), false) => log::warn!(
                "{} is not the file the checkpoint was written for (rotated or truncated \
                 since): reading it from its start",
                path.display()
            ),
            (None, _) => {}
        }
        let mut stop = pin!(stop);
        let mut batch = Batch::default();
        let mut done_to = tailer.position();
        loop {
            let lines = tailer
                .read_lines(READ_LINES)
                .map_err(|e| format!("cannot read the access log {}: {e}", path.display()))?;
            if lines.is_empty() {
                self.flush(&mut batch).await?;
                self.save(tailer.position())?;
                if !self.opts.follow {
                    self.summary.partial_bytes = tailer.partial_bytes();
                    return Ok(());
                }
                match tailer.check() {
                    Ok(Some(Change::Rotated)) => {
                        log::info!("{} was rotated: reading the new file", path.display());
                        continue;
                    }
                    Ok(Some(Change::Truncated)) => {
                        log::warn!(
                            "{} was truncated: reading it again from its start",
                            path.display()
                        );
                        continue;
                    }
                    Ok(None) => {}
                    Err(e) => log::warn!("cannot look at {}: {e}", path.display()),
                }
                tokio::select! {
                    () = &mut stop => return Ok(()),
                    () = tokio::time::sleep(self.opts.poll) => {}
                }
                continue;
            }
            let now = now_ms();
            for line in lines {
                self.summary.lines += 1;
                let verdict = match &line.text {
                    Some(text) => select::judge(text, now, self.opts.dedupe_window),
                    None => Verdict::Invalid(format!("longer than {} bytes", tail::MAX_LINE_BYTES)),
                };
                match verdict {
                    Verdict::Charged { request_id, raw } => {
                        self.summary.charged += 1;
                        let full = batch.records.len() >= self.opts.batch_records
                            || batch.bytes + raw.get().len() > self.opts.batch_bytes;
                        if full && !batch.records.is_empty() {
                            self.flush(&mut batch).await?;
                            self.save(done_to)?;
                        }
                        batch.bytes += raw.get().len();
                        batch.records.push(raw);
                        batch.ids.push(request_id);
                    }
                    Verdict::NotCharged => self.summary.not_charged += 1,
                    Verdict::TooOld { request_id } => {
                        self.summary.charged += 1;
                        self.summary.too_old += 1;
                        if self.named_too_old < NAMED {
                            self.named_too_old += 1;
                            log::warn!(
                                "line {}: record {} is older than the dedupe window less {} s: \
                                 not booked (it could be charged twice)",
                                line.number,
                                shown(&request_id),
                                select::SKEW_MARGIN.as_secs()
                            );
                        }
                    }
                    Verdict::Invalid(why) => {
                        self.summary.invalid += 1;
                        if self.summary.invalid_lines.len() < NAMED {
                            self.summary.invalid_lines.push(line.number);
                            log::warn!("line {}: {why}", line.number);
                        }
                    }
                }
                done_to = line.after;
            }
        }
    }

    fn save(&mut self, at: Position) -> Result<(), String> {
        match &self.opts.state {
            Some(state) if self.saved != Some(at) => {
                checkpoint::save(state, &self.opts.access_log, at)?;
                self.saved = Some(at);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Sends the batch; one the ledger refuses whole goes again record by record, so that
    /// only a record invalid on its own is left out.
    async fn flush(&mut self, batch: &mut Batch) -> Result<(), String> {
        if batch.records.is_empty() {
            return Ok(());
        }
        let Batch { records, ids, .. } = std::mem::take(batch);
        let all: Vec<&RawValue> = records.iter().map(AsRef::as_ref).collect();
        match self.ledger.send(&all).await? {
            ledger::Sent::Booked(b) => self.count(b),
            ledger::Sent::Refused if all.len() == 1 => self.refused(&ids[0]),
            ledger::Sent::Refused => {
                log::warn!(
                    "the ledger refused a batch of {} records; sending them one at a time",
                    all.len()
                );
                for (record, id) in all.iter().zip(&ids) {
                    match self.ledger.send(&[record]).await? {
                        ledger::Sent::Booked(b) => self.count(b),
                        ledger::Sent::Refused => self.refused(id),
                    }
                }
            }
        }
        Ok(())
    }

    fn count(&mut self, b: ledger::Booked) {
        // Following, each record the ledger lacked is news (a proxy died with it): said
        // as it is booked, not only in the summary at the end.
        if self.opts.follow && b.accepted > 0 {
            log::info!(
                "booked {} record(s) the ledger did not have ({} so far)",
                b.accepted,
                self.summary.booked + b.accepted
            );
        }
        self.summary.booked += b.accepted;
        self.summary.already_booked += b.duplicates;
        self.summary.refused += b.dead_lettered;
        if b.dead_lettered > 0 {
            log::warn!(
                "the ledger kept {} record(s) as invalid (its dead-letter stream)",
                b.dead_lettered
            );
        }
    }

    fn refused(&mut self, request_id: &str) {
        self.summary.refused += 1;
        log::warn!(
            "the ledger refused record {} as invalid: not booked",
            shown(request_id)
        );
    }
}

/// A request id as logged: bounded, escaped.
fn shown(id: &str) -> String {
    id.chars()
        .take(64)
        .collect::<String>()
        .escape_debug()
        .to_string()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
