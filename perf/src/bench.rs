//! Benchmark machinery (not tests): a bounded closed-loop HTTP load and per-process CPU
//! from /proc, so configurations can be compared in one run on one machine.

use std::time::{Duration, Instant};

/// How late a paced request may be sent before the wait counts in its latency.
const TIMER_SLACK: Duration = Duration::from_millis(2);

/// One load run's outcome.
#[derive(Debug, Clone)]
pub struct Load {
    pub requests: u64,
    pub errors: u64,
    pub seconds: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    /// Time to the first body byte (for streams: the first event).
    pub ttfb_p50_ms: f64,
    pub ttfb_p99_ms: f64,
}

impl Load {
    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.seconds
    }
}

/// `connections` keep-alive clients POST `body` to `url` with `headers` for `duration`,
/// each sending its next request as soon as the last one ends (closed loop: the most a
/// configuration can serve).
pub async fn run(
    url: &str,
    headers: &[(String, String)],
    body: &[u8],
    connections: usize,
    duration: Duration,
) -> Load {
    run_at(url, headers, body, connections, duration, None).await
}

/// As [`run`], or with a `rate` (requests/s across all connections) at a fixed pace:
/// each connection sends on its own schedule, and a request's latency counts from when
/// it was due, not when it was sent, so a configuration that falls behind pays for the
/// wait (no coordinated omission). The same offered rate for every configuration shows
/// the latency a gateway adds when the machine is not saturated.
pub async fn run_at(
    url: &str,
    headers: &[(String, String)],
    body: &[u8],
    connections: usize,
    duration: Duration,
    rate: Option<f64>,
) -> Load {
    let interval = rate
        .filter(|r| *r > 0.0)
        .map(|r| Duration::from_secs_f64(connections as f64 / r));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .build()
        .unwrap_or_default();
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::with_capacity(connections);
    for i in 0..connections {
        // Spread the connections' schedules evenly over one interval.
        let offset = interval.map(|d| d.mul_f64(i as f64 / connections as f64));
        let (client, url, headers, body) = (
            client.clone(),
            url.to_string(),
            headers.to_vec(),
            body.to_vec(),
        );
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut first = Vec::new();
            let mut errors = 0u64;
            let mut due = start + offset.unwrap_or_default();
            while Instant::now() < deadline {
                let t = match interval {
                    Some(every) => {
                        tokio::time::sleep_until(due.into()).await;
                        let now = Instant::now();
                        // Tokio's timer wakes up to a millisecond late: that much is
                        // the generator's, not the server's. Later than that, the
                        // connection is behind (its last answer came late) and the wait
                        // counts.
                        let t = if now > due + TIMER_SLACK { due } else { now };
                        due += every;
                        t
                    }
                    None => Instant::now(),
                };
                if t >= deadline {
                    break;
                }
                let mut req = client.post(&url).body(body.clone());
                for (k, v) in &headers {
                    req = req.header(k, v);
                }
                match req.send().await {
                    Ok(mut r) if r.status().is_success() => {
                        // Chunk by chunk, as a streaming client reads.
                        let mut ttfb = None;
                        while let Ok(Some(_)) = r.chunk().await {
                            ttfb.get_or_insert_with(|| t.elapsed().as_micros() as u64);
                        }
                        lat.push(t.elapsed().as_micros() as u64);
                        first.push(ttfb.unwrap_or_else(|| t.elapsed().as_micros() as u64));
                    }
                    _ => errors += 1,
                }
            }
            (lat, first, errors)
        }));
    }
    let mut all = Vec::new();
    let mut firsts = Vec::new();
    let mut errors = 0;
    for t in tasks {
        if let Ok((l, f, e)) = t.await {
            all.extend(l);
            firsts.extend(f);
            errors += e;
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    all.sort_unstable();
    firsts.sort_unstable();
    let pct = |v: &[u64], p: f64| {
        v.get(((v.len().max(1) - 1) as f64 * p) as usize)
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    Load {
        requests: all.len() as u64,
        errors,
        seconds,
        p50_ms: pct(&all, 0.50),
        p90_ms: pct(&all, 0.90),
        p99_ms: pct(&all, 0.99),
        ttfb_p50_ms: pct(&firsts, 0.50),
        ttfb_p99_ms: pct(&firsts, 0.99),
    }
}

/// CPU time (user + system) a process has used, in microseconds.
pub fn cpu_us(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime: fields 14 and 15 of the line, indexes 11 and 12 after the ')'.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    (ticks(11) + ticks(12)) * 1_000_000 / hz
}

/// Resident memory of a process, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// CPU time of a process and all its descendants, in microseconds (for a supervisor with
/// worker processes).
pub fn tree_cpu_us(root: u32) -> u64 {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // The parent is the second field after the command name's ')'.
            let ppid = stat
                .rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok())
                .unwrap_or(0);
            parents.push((pid, ppid));
        }
    }
    let mut tree = vec![root];
    let mut i = 0;
    while let Some(&p) = tree.get(i) {
        tree.extend(parents.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    tree.into_iter().map(cpu_us).sum()
}
