//! The tailer through appends, a partial last line, rotation, truncation and a resumed
//! checkpoint, on real files; which lines are charged; the checkpoint file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::checkpoint;
use super::select::{judge, Verdict, SKEW_MARGIN};
use super::tail::{Change, Tailer, MAX_LINE_BYTES};

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let dir = std::env::temp_dir().join(format!(
            "chokepoint-reconcile-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// The texts and numbers of every whole line there is now.
fn read_all(t: &mut Tailer) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    loop {
        let lines = t.read_lines(2).unwrap();
        if lines.is_empty() {
            return out;
        }
        for l in lines {
            let text = l
                .text
                .map_or("<overlong>".into(), |t| String::from_utf8(t).unwrap());
            out.push((l.number, text));
        }
    }
}

fn texts(lines: &[(u64, &str)]) -> Vec<(u64, String)> {
    lines.iter().map(|(n, t)| (*n, t.to_string())).collect()
}

#[test]
fn a_partial_last_line_waits_for_its_newline() {
    let dir = Dir::new("partial");
    let log = dir.join("usage.log");
    append(&log, "a\nb\nc-part");
    let (mut t, _) = Tailer::open(&log, None).unwrap();
    assert_eq!(read_all(&mut t), texts(&[(1, "a"), (2, "b")]));
    assert_eq!(t.partial_bytes(), 6);
    assert_eq!(t.position().offset, 4, "the checkpoint stops before it");
    append(&log, "ial\nd\n");
    assert_eq!(read_all(&mut t), texts(&[(3, "c-partial"), (4, "d")]));
    assert_eq!(t.partial_bytes(), 0);
    assert_eq!(t.check().unwrap(), None, "same file, not shorter");
}

#[test]
fn a_rotated_log_is_read_to_its_end_then_the_new_file_from_its_start() {
    let dir = Dir::new("rotate");
    let log = dir.join("usage.log");
    append(&log, "1\n2\n");
    let (mut t, _) = Tailer::open(&log, None).unwrap();
    assert_eq!(read_all(&mut t), texts(&[(1, "1"), (2, "2")]));
    // logrotate's `create`: renamed, the writer (still holding it) adds a last line,
    // then a new file at the path.
    std::fs::rename(&log, dir.join("usage.log.1")).unwrap();
    append(&dir.join("usage.log.1"), "3\n");
    assert_eq!(t.check().unwrap(), None, "no file at the path yet");
    assert_eq!(read_all(&mut t), texts(&[(3, "3")]), "the old file's rest");
    append(&log, "new-1\nnew-2\n");
    assert_eq!(t.check().unwrap(), Some(Change::Rotated));
    assert_eq!(t.position().offset, 0);
    assert_eq!(
        read_all(&mut t),
        texts(&[(1, "new-1"), (2, "new-2")]),
        "numbered in the new file"
    );
}

#[test]
fn a_truncated_log_is_read_again_from_its_start() {
    let dir = Dir::new("truncate");
    let log = dir.join("usage.log");
    append(&log, "aaaa\nbbbb\n");
    let (mut t, _) = Tailer::open(&log, None).unwrap();
    assert_eq!(read_all(&mut t).len(), 2);
    // logrotate's `copytruncate`: same inode, emptied, written on.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&log, "c\n");
    assert_eq!(t.check().unwrap(), Some(Change::Truncated));
    assert_eq!(read_all(&mut t), texts(&[(1, "c")]));
}

#[test]
fn a_checkpoint_resumes_after_the_last_line_and_not_in_another_file() {
    let dir = Dir::new("resume");
    let log = dir.join("usage.log");
    let state = dir.join("state.json");
    append(&log, "1\n2\n3\n");
    let (mut t, _) = Tailer::open(&log, None).unwrap();
    let first = t.read_lines(2).unwrap();
    assert_eq!(first.len(), 2);
    checkpoint::save(&state, &log, first[1].after).unwrap();
    append(&log, "4\n");

    let resume = checkpoint::load(&state, &log).unwrap();
    let (mut again, resumed) = Tailer::open(&log, resume).unwrap();
    assert!(resumed);
    assert_eq!(read_all(&mut again), texts(&[(3, "3"), (4, "4")]));

    // The file was replaced while nothing ran: the checkpoint is another file's.
    std::fs::remove_file(&log).unwrap();
    append(&log, "fresh\n");
    let (mut other, resumed) = Tailer::open(&log, resume).unwrap();
    assert!(!resumed);
    assert_eq!(read_all(&mut other), texts(&[(1, "fresh")]));

    // Shorter than the checkpoint: truncated since.
    let resume = Some(other.position());
    std::fs::write(&log, "").unwrap();
    let (_, resumed) = Tailer::open(&log, resume).unwrap();
    assert!(!resumed);
}

#[test]
fn a_state_file_of_another_log_or_not_a_checkpoint_is_refused() {
    let dir = Dir::new("state");
    let log = dir.join("usage.log");
    let state = dir.join("state.json");
    assert_eq!(checkpoint::load(&state, &log), Ok(None), "first run");
    append(&log, "1\n");
    let (t, _) = Tailer::open(&log, None).unwrap();
    checkpoint::save(&state, &log, t.position()).unwrap();
    let err = checkpoint::load(&state, &dir.join("other.log")).unwrap_err();
    assert!(err.contains("is the checkpoint of"), "{err}");
    std::fs::write(&state, "{\"x\":1}").unwrap();
    let err = checkpoint::load(&state, &log).unwrap_err();
    assert!(err.contains("not a reconcile checkpoint"), "{err}");
}

#[test]
fn an_overlong_line_is_skipped_without_buffering_it() {
    let dir = Dir::new("overlong");
    let log = dir.join("usage.log");
    let long = "x".repeat(MAX_LINE_BYTES + 70_000);
    append(&log, &format!("a\n{long}\nb\n"));
    let (mut t, _) = Tailer::open(&log, None).unwrap();
    assert_eq!(
        read_all(&mut t),
        texts(&[(1, "a"), (2, "<overlong>"), (3, "b")])
    );
    let len = std::fs::metadata(&log).unwrap().len();
    assert_eq!(t.position().offset, len, "its bytes are counted");
}

const USER: &str = "0190a6f2-7c1e-8b3a-9f00-1234567890ab";
const WEEK: Duration = Duration::from_secs(7 * 24 * 3600);
const NOW: u64 = 1_800_000_000_000;

fn record(decision: &str, user: Option<&str>, ts_ms: Option<u64>, extra: &str) -> String {
    let user = user.map_or("null".into(), |u| format!("\"{u}\""));
    let ts = ts_ms.map_or("null".into(), |t| t.to_string());
    format!(
        r#"{{"request_id":"r1","user":{user},"tenant":"ml","groups":[],"cost_center":null,"model":"m","provider":"p","format":"openai_chat","stream":false,"input_tokens":3,"output_tokens":2,"cost_micros":1,"status":200,"decision":"{decision}","latency_ms":1,"ttft_ms":null,"completed":true,"error":null,"ts_ms":{ts}{extra}}}"#
    )
}

#[derive(Debug, PartialEq)]
enum Want {
    Charged,
    NotCharged,
    TooOld,
    Invalid(&'static str),
}

#[test]
fn the_records_the_filter_delivers_are_charged_and_only_while_young_enough() {
    let fresh = Some(NOW - 1000);
    let edge = NOW - (WEEK - SKEW_MARGIN).as_millis() as u64;
    let blocked = |stage: &str| {
        format!(
            r#","guardrails":[{{"name":"dlp","category":"secret","action":"block","stage":"{stage}","count":1}}]"#
        )
    };
    let cases: Vec<(&str, String, Want)> = vec![
        (
            "allowed",
            record("allowed", Some(USER), fresh, ""),
            Want::Charged,
        ),
        (
            "failed open",
            record("allowed_fail_open", Some(USER), fresh, ""),
            Want::Charged,
        ),
        (
            "an answer blocked on its way back was forwarded",
            record("guardrail_blocked", Some(USER), fresh, &blocked("response")),
            Want::Charged,
        ),
        (
            "a request blocked before the provider",
            record("guardrail_blocked", Some(USER), fresh, &blocked("request")),
            Want::NotCharged,
        ),
        (
            "denied",
            record("denied", Some(USER), fresh, ""),
            Want::NotCharged,
        ),
        (
            "no caller",
            record("allowed", None, fresh, ""),
            Want::NotCharged,
        ),
        (
            "unauthenticated",
            record("unauthenticated", None, fresh, ""),
            Want::NotCharged,
        ),
        ("Envoy's dash", "-".into(), Want::NotCharged),
        (
            "just inside the window",
            record("allowed", Some(USER), Some(edge + 1), ""),
            Want::Charged,
        ),
        (
            "at the window less the margin",
            record("allowed", Some(USER), Some(edge), ""),
            Want::TooOld,
        ),
        (
            "no time",
            record("allowed", Some(USER), None, ""),
            Want::TooOld,
        ),
        (
            "old refusals are not charged at all",
            record("denied", Some(USER), Some(1), ""),
            Want::NotCharged,
        ),
        (
            "not JSON",
            "{\"request_id\":".into(),
            Want::Invalid("not JSON"),
        ),
        (
            "a field of the wrong type, not quoted",
            record("allowed", Some(USER), fresh, "")
                .replace("\"input_tokens\":3", "\"input_tokens\":\"secret\""),
            Want::Invalid("not a usage record (at input_tokens)"),
        ),
        (
            "no request id",
            record("allowed", Some(USER), fresh, "").replace("\"request_id\":\"r1\",", ""),
            Want::Invalid("no request_id"),
        ),
        (
            "an array",
            "[1,2]".into(),
            Want::Invalid("not a JSON object"),
        ),
        (
            "a string",
            "\"allowed\"".into(),
            Want::Invalid("not a JSON object"),
        ),
        (
            "two records on a line",
            format!("{0}{0}", record("allowed", Some(USER), fresh, "")),
            Want::Invalid("not JSON (text after the record)"),
        ),
    ];
    for (name, line, want) in cases {
        let got = match judge(line.as_bytes(), NOW, WEEK) {
            Verdict::Charged { request_id, raw } => {
                assert_eq!(request_id, "r1", "{name}");
                assert_eq!(raw.get(), line.trim(), "{name}: sent as logged");
                Want::Charged
            }
            Verdict::NotCharged => Want::NotCharged,
            Verdict::TooOld { request_id } => {
                assert_eq!(request_id, "r1", "{name}");
                Want::TooOld
            }
            Verdict::Invalid(why) => {
                assert!(!why.contains("secret"), "{name}: {why} quotes the line");
                Want::Invalid(Box::leak(why.into_boxed_str()))
            }
        };
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn the_summary_is_one_line_naming_the_invalid_lines() {
    let s = super::Summary {
        lines: 10,
        charged: 7,
        already_booked: 3,
        booked: 2,
        refused: 0,
        not_charged: 1,
        too_old: 2,
        invalid: 2,
        invalid_lines: vec![4, 9],
        partial_bytes: 0,
        elapsed: Duration::from_secs(2),
    };
    let text = s.to_string();
    assert!(!text.contains('\n'));
    assert!(
        text.starts_with(
            "reconcile: 10 lines, 7 charged records: 3 already booked, 2 booked now, 0 \
             refused by the ledger, 2 too old to book; 1 not charged, 2 invalid (line 4, 9)"
        ),
        "{text}"
    );
    assert!(s.left_out());
    assert!(!super::Summary::default().left_out());
}
