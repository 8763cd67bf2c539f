//! Running one check in a child process of the test binary, with the fuzzer's bounds:
//! capped address space, a wall-time limit and a peak-RSS check, so an input that
//! still blows up fails its test instead of taking the machine's memory or hanging.

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Address space for a child: an allocation past it fails instead of swapping.
pub const MEMORY_LIMIT: u64 = 2 << 30;
/// Peak resident memory a child may reach: the fuzzer's `-rss_limit_mb`.
pub const RSS_LIMIT_MB: u64 = 512;
/// Wall time for a child (the fuzzer's own limit is 5 s, optimised).
pub const TIME_LIMIT: Duration = Duration::from_secs(20);
/// Set in a child: what to run, in a form its test understands.
pub const CHILD_ENV: &str = "CHOKEPOINT_FUZZ_CHILD";

/// In a child, the payload its parent passed; `None` in the parent.
pub fn child_payload() -> Option<String> {
    let payload = std::env::var(CHILD_ENV).ok()?;
    let limit = libc::rlimit {
        rlim_cur: MEMORY_LIMIT as libc::rlim_t,
        rlim_max: MEMORY_LIMIT as libc::rlim_t,
    };
    // SAFETY: a valid, initialised struct; it only lowers this process's own limit.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) }, 0);
    Some(payload)
}

/// Peak resident memory of this process so far, in MiB.
pub fn peak_rss_mb() -> u64 {
    // SAFETY: getrusage fills the zeroed struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) }, 0);
    u64::try_from(usage.ru_maxrss).unwrap_or(0) / 1024
}

/// In a child, after the check: fails it when memory went past the fuzzer's bound.
pub fn check_peak_rss() {
    let peak = peak_rss_mb();
    assert!(
        peak <= RSS_LIMIT_MB,
        "peak RSS {peak} MiB, over the {RSS_LIMIT_MB} MiB bound"
    );
}

/// Runs the test `test` of this binary as a child with `payload`; `Err` says how it
/// failed (panic, out of memory, hang).
pub fn run_child(test: &str, payload: &str) -> Result<(), String> {
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, payload)
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start the child: {e}"))?;
    // Drain stderr while waiting, so a chatty child cannot block on a full pipe.
    let mut stderr_pipe = child.stderr.take().expect("piped stderr");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr_pipe.read_to_string(&mut text);
        text
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if started.elapsed() > TIME_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("hang: still running after {TIME_LIMIT:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = reader.join().unwrap_or_default();
    if status.success() {
        return Ok(());
    }
    if let Some(line) = stderr.lines().find(|l| l.contains("memory allocation")) {
        return Err(format!(
            "out of memory (cap {} MiB): {line}",
            MEMORY_LIMIT >> 20
        ));
    }
    let panic: Vec<&str> = stderr
        .lines()
        .skip_while(|l| !l.contains("panicked at"))
        .take(6)
        .collect();
    if panic.is_empty() {
        Err(format!("{status}"))
    } else {
        Err(panic.join("\n    "))
    }
}
