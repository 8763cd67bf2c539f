//! `chokepoint-soak` (behind `scripts/soak`): mixed traffic through the real stack for a
//! bounded time (every provider format, streamed and not, client aborts, upstream cuts,
//! bad tokens, requests over budget) while the policy service is killed and restarted
//! twice and Redis restarted once. Then it checks: no request hung; every status is the
//! expected one (a `503 policy_unavailable` only inside an outage); every request has
//! exactly one access-log record; the policy service's ledger equals the sums of the
//! charged records exactly; Envoy's RSS grew by less than the limit after warm-up.
//! Loopback only; exits non-zero when any check fails.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chokepoint_dev::devtoken::{DevKey, TokenSpec};
use chokepoint_dev::stack::{random_hex, RedisMode, Stack, StackOptions};
use chokepoint_perf::bench::rss_kib;
use chokepoint_perf::soak::{self, Callers, Kind, Margins, Mixer, Outcome, Verdict, Window};
use clap::Parser;
use serde_json::{json, Value};

/// Soak the local stack: mixed traffic, policy service and Redis restarts, then checks
/// on hangs, statuses, access-log records, the ledger and Envoy's memory.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Length of the load, in minutes.
    #[arg(long, default_value_t = 10)]
    minutes: u64,
    /// Length of the load in seconds (overrides --minutes; for a quick check).
    #[arg(long)]
    seconds: Option<u64>,
    /// Requests in flight at most.
    #[arg(long, default_value_t = 12)]
    workers: usize,
    /// Requests started per second at most (keeps a small machine unsaturated).
    #[arg(long, default_value_t = 40.0)]
    rps: f64,
    /// A request not finished within this many seconds counts as a hang.
    #[arg(long, default_value_t = 30)]
    timeout_secs: u64,
    /// How long each outage lasts (policy service or Redis down), in ms.
    #[arg(long, default_value_t = 2000)]
    outage_ms: u64,
    /// Largest acceptable growth of Envoy's RSS from warm-up to the end, in MiB.
    #[arg(long, default_value_t = 8.0)]
    max_rss_growth_mib: f64,
    /// Keep the run folder (logs, access log, Redis data) even when every check passes.
    #[arg(long)]
    keep: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let passed = match run(Args::parse()).await {
        Ok(passed) => passed,
        Err(e) => {
            eprintln!("chokepoint-soak: {e}");
            false
        }
    };
    // The soak is one test, counted as such by scripts/test.
    if passed {
        println!("\n1 passed, 0 failed");
        ExitCode::SUCCESS
    } else {
        println!("\n0 passed, 1 failed");
        ExitCode::FAILURE
    }
}

/// Policy timeout of the soak's gateway: a callout past it is a 503 too.
const POLICY_TIMEOUT_MS: u64 = 1000;

fn say(t0: Option<Instant>, msg: &str) {
    match t0 {
        Some(t) => eprintln!("soak [{:>6.1} s] {msg}", t.elapsed().as_secs_f64()),
        None => eprintln!("soak: {msg}"),
    }
}

async fn run(args: Args) -> Result<bool, String> {
    let duration = Duration::from_secs(
        args.seconds
            .unwrap_or(args.minutes.saturating_mul(60))
            .clamp(20, 4 * 3600),
    );
    let workers = args.workers.clamp(1, 64);
    let rps = args.rps.clamp(1.0, 500.0);
    let timeout = Duration::from_secs(args.timeout_secs.clamp(5, 300));
    let root = std::env::current_dir().map_err(|e| e.to_string())?;
    let soak_dir = root.join(".chokepoint/soak");
    let run_dir = soak_dir.join(format!("{}-{}", soak::now_ms() / 1000, std::process::id()));
    let _ = std::fs::remove_dir_all(&run_dir);
    std::fs::create_dir_all(&run_dir)
        .map_err(|e| format!("cannot create {}: {e}", run_dir.display()))?;

    let mut opts = StackOptions::defaults(&root, &run_dir, DevKey::generate_with_derived_kid());
    // Only the deliberate over-budget tenant is ever refused.
    opts.requests_per_window = 1_000_000_000;
    opts.window_secs = 60;
    opts.policy_timeout_ms = POLICY_TIMEOUT_MS;
    // Redis on TCP with append-only persistence, so a restart keeps the ledger.
    opts.redis = RedisMode::Tcp {
        port: free_port()?,
        data_dir: run_dir.join("redis"),
    };
    say(
        None,
        &format!(
            "starting the stack in {} (load {} s, {workers} workers, at most {rps} requests/s)",
            run_dir.display(),
            duration.as_secs()
        ),
    );
    let mut stack = Stack::start(opts).await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(workers)
        .build()
        .map_err(|e| e.to_string())?;

    // The over-budget tenant: a one-token daily budget refuses every request.
    let resp = client
        .put(format!(
            "{}/v1/admin/limits/tenant/{}",
            stack.policy_admin_url,
            soak::BROKE_TENANT
        ))
        .bearer_auth(&stack.opts.admin_token)
        .json(&json!({"tokens": 1, "period": "day"}))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!(
            "setting the over-budget tenant's budget: {} {}",
            resp.status(),
            resp.text().await.unwrap_or_default()
        ));
    }

    let ttl = duration + Duration::from_secs(3600);
    let spec = |sub: String, tenant: &str| {
        TokenSpec::new(sub)
            .with_tenant(tenant)
            .with_groups(["eng"])
            .with_claim("cost_center", json!(soak::COST_CENTER))
            .with_ttl(ttl)
    };
    let other_key = DevKey::generate_with_derived_kid();
    let callers =
        Callers {
            users: (0..8)
                .map(|i| stack.token(&spec(format!("soak-user-{i}"), soak::TENANT)))
                .collect(),
            broke: (0..3)
                .map(|i| stack.token(&spec(format!("soak-broke-{i}"), soak::BROKE_TENANT)))
                .collect(),
            bad: vec![
                None,
                Some("not-a-jwt".into()),
                Some(stack.token(
                    &spec("soak-late".into(), soak::TENANT).expired(Duration::from_secs(3600)),
                )),
                Some(other_key.mint(&spec("soak-forger".into(), soak::TENANT))),
                Some(stack.token(
                    &spec("soak-elsewhere".into(), soak::TENANT).with_audience("someone-else"),
                )),
            ],
        };
    let run_hex = random_hex(8);
    let seed = u64::from_str_radix(&run_hex[..16], 16).unwrap_or(42);
    let mut mixer = Mixer::new(callers, &run_hex, seed);

    // Preflight: the filter logs the client's x-request-id as the record's trace_id
    // (the key of the record check), and the over-budget tenant is refused.
    let t_pre = Instant::now();
    for kind in [Kind::Chat, Kind::OverBudget] {
        let plan = mixer.plan(kind, format!("preflight-{}", random_hex(8)));
        let o = soak::execute(&client, &stack.gateway_url, &plan, t_pre, timeout).await;
        let want = if kind == Kind::Chat { 200 } else { 429 };
        if o.status != Some(want) {
            return Err(format!(
                "preflight {}: expected {want}, got {:?} {:?} {:?}\n{}",
                kind.name(),
                o.status,
                o.code,
                o.ending,
                stack.logs()
            ));
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = soak::read_access_log(&stack.usage_log());
            let rec = log
                .records
                .iter()
                .find(|r| Some(r["request_id"].as_str().unwrap_or("")) == o.gateway_id.as_deref());
            if let Some(rec) = rec {
                if rec["trace_id"] != plan.trace_id.as_str() {
                    return Err(format!(
                        "the record's trace_id is {}, not the x-request-id the client sent ({}): \
                         the soak keys records by it",
                        rec["trace_id"], plan.trace_id
                    ));
                }
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no access-log record for the preflight request {:?}",
                    o.gateway_id
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(50)).await;

    // The load.
    let t0 = Instant::now();
    let load_start_epoch_ms = soak::now_ms();
    let outcomes: Arc<Mutex<Vec<Outcome>>> = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let dispatcher = {
        let (client, gateway, outcomes, stop) = (
            client.clone(),
            stack.gateway_url.clone(),
            Arc::clone(&outcomes),
            Arc::clone(&stop),
        );
        tokio::spawn(async move {
            let sem = Arc::new(tokio::sync::Semaphore::new(workers));
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rps));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while t0.elapsed() < duration && !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let Ok(permit) = Arc::clone(&sem).acquire_owned().await else {
                    break;
                };
                let plan = mixer.next_plan();
                let (client, gateway, outcomes) =
                    (client.clone(), gateway.clone(), Arc::clone(&outcomes));
                tokio::spawn(async move {
                    let o = soak::execute(&client, &gateway, &plan, t0, timeout).await;
                    if let Ok(mut v) = outcomes.lock() {
                        v.push(o);
                    }
                    drop(permit);
                });
            }
            // Every request in flight finishes (or times out) before the load is over.
            let _ = sem.acquire_many(workers as u32).await;
        })
    };

    let envoy_pid = stack.envoy_pid().ok_or("Envoy is not running")?;
    let mut rss: Vec<(u64, u64)> = vec![(0, rss_kib(envoy_pid))];
    let mut rss_warm: Option<(u64, u64)> = None;
    let mut windows: Vec<Window> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    // (fraction of the run, event)
    let mut schedule: Vec<(f64, &str)> = vec![
        (0.10, "warm"),
        (0.30, "policy"),
        (0.45, "redis"),
        (0.60, "policy"),
    ];
    let mut last_sample = Instant::now();
    let mut last_progress = Instant::now();
    while t0.elapsed() < duration {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let frac = t0.elapsed().as_secs_f64() / duration.as_secs_f64();
        if let Some(&(at, what)) = schedule.first() {
            if frac >= at {
                schedule.remove(0);
                match what {
                    "warm" => {
                        let s = (t0.elapsed().as_millis() as u64, rss_kib(envoy_pid));
                        say(
                            Some(t0),
                            &format!("warmed up; Envoy RSS {}", soak::mib(s.1)),
                        );
                        rss.push(s);
                        rss_warm = Some(s);
                    }
                    "policy" => {
                        let n = windows
                            .iter()
                            .filter(|w| w.what.starts_with("policy"))
                            .count();
                        let name = format!("policy service restart {}", n + 1);
                        match outage(&mut stack, &client, t0, &name, false, args.outage_ms).await {
                            Ok(w) => windows.push(w),
                            Err(e) => {
                                failures.push(e);
                                break;
                            }
                        }
                    }
                    _ => {
                        match outage(
                            &mut stack,
                            &client,
                            t0,
                            "Redis restart",
                            true,
                            args.outage_ms,
                        )
                        .await
                        {
                            Ok(w) => windows.push(w),
                            Err(e) => {
                                failures.push(e);
                                break;
                            }
                        }
                    }
                }
            }
        }
        if last_sample.elapsed() >= Duration::from_secs(5) {
            last_sample = Instant::now();
            rss.push((t0.elapsed().as_millis() as u64, rss_kib(envoy_pid)));
        }
        if last_progress.elapsed() >= Duration::from_secs(30) {
            last_progress = Instant::now();
            let n = outcomes.lock().map(|v| v.len()).unwrap_or(0);
            say(
                Some(t0),
                &format!(
                    "{n} requests done; Envoy RSS {}",
                    soak::mib(rss_kib(envoy_pid))
                ),
            );
        }
        if let Some((name, status)) = stack.exited_child() {
            failures.push(format!("{name} exited during the soak ({status})"));
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    say(Some(t0), "load over; waiting for requests in flight");
    let _ = dispatcher.await;
    let load_ms = t0.elapsed().as_millis() as u64;
    let rss_end = (load_ms, rss_kib(envoy_pid));
    rss.push(rss_end);
    let rss_warm = rss_warm.unwrap_or(rss[0]);

    let outcomes: Vec<Outcome> = outcomes.lock().map(|v| v.clone()).unwrap_or_default();
    let margins = Margins {
        before_ms: 500,
        after_ms: POLICY_TIMEOUT_MS + 1000,
    };
    let judged: Vec<(Outcome, Verdict)> = outcomes
        .into_iter()
        .map(|o| {
            let v = soak::classify(&o, &windows, &margins);
            (o, v)
        })
        .collect();

    // Records: wait for Envoy's access-log flush, until every request has its record.
    say(Some(t0), "reading the access log");
    let deadline = Instant::now() + Duration::from_secs(20);
    let (log, records) = loop {
        let log = soak::read_access_log(&stack.usage_log());
        let check = soak::check_records(&judged, &log, load_start_epoch_ms);
        if check.missing.is_empty() || Instant::now() > deadline {
            break (log, check);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };

    // Ledger: the filter retries delivery with backoff up to 30 s; poll until the ledger
    // equals the sums of the charged records (and stays equal), or the deadline.
    say(
        Some(t0),
        "waiting for usage delivery to settle in the ledger",
    );
    let expected = soak::expected_ledger(&log.records);
    let settle_start = Instant::now();
    let deadline = settle_start + Duration::from_secs(120);
    let mut equal_since: Option<Instant> = None;
    let mut actual: BTreeMap<soak::LedgerKey, Result<soak::Totals, String>> = BTreeMap::new();
    loop {
        actual.clear();
        for key in expected.keys() {
            let t = soak::ledger_totals(
                &client,
                &stack.policy_admin_url,
                &stack.opts.admin_token,
                key,
            )
            .await;
            actual.insert(key.clone(), t);
        }
        let equal = expected
            .iter()
            .all(|(k, want)| matches!(actual.get(k), Some(Ok(got)) if got == want));
        if equal {
            // Stays equal a few seconds: a late duplicate delivery would show now.
            let since = *equal_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= Duration::from_secs(5) {
                break;
            }
        } else {
            equal_since = None;
        }
        if Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let settle_ms = settle_start.elapsed().as_millis() as u64;
    let delivery = envoy_usage_stats(&client, &stack.admin_url).await;

    let report = Report {
        duration_ms: load_ms,
        workers,
        rps_cap: rps,
        timeout,
        judged: &judged,
        windows: &windows,
        records: &records,
        expected: &expected,
        actual: &actual,
        settle_ms,
        rss: &rss,
        rss_warm,
        rss_end,
        max_growth_kib: (args.max_rss_growth_mib * 1024.0) as u64,
        delivery: &delivery,
        failures: &failures,
        run_dir: run_dir.clone(),
    };
    let passed = report.print();
    let _ = std::fs::write(soak_dir.join("last.json"), report.json().to_string());
    if passed && !args.keep {
        stack.stop();
        drop(stack);
        let _ = std::fs::remove_dir_all(&run_dir);
    } else {
        say(None, &format!("run folder kept: {}", run_dir.display()));
    }
    Ok(passed)
}

/// Stops the policy service (SIGKILL, a crash) or Redis (SIGTERM) for `outage_ms`, starts
/// it again, and returns the window until the policy service is healthy again.
async fn outage(
    stack: &mut Stack,
    client: &reqwest::Client,
    t0: Instant,
    name: &str,
    redis: bool,
    outage_ms: u64,
) -> Result<Window, String> {
    let start_ms = t0.elapsed().as_millis() as u64;
    say(Some(t0), &format!("{name}: stopping"));
    tokio::task::block_in_place(|| {
        if redis {
            stack.stop_redis();
        } else {
            stack.kill_policy();
        }
    });
    tokio::time::sleep(Duration::from_millis(outage_ms)).await;
    tokio::task::block_in_place(|| {
        if redis {
            stack.start_redis()
        } else {
            stack.start_policy()
        }
    })
    .map_err(|e| format!("{name}: cannot start again: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ok = client
            .get(format!("{}/healthz", stack.policy_url))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ok {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{name}: the policy service is not healthy 30 s after the restart\n{}",
                stack.logs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let end_ms = t0.elapsed().as_millis() as u64;
    say(
        Some(t0),
        &format!(
            "{name}: healthy again after {}",
            soak::secs(end_ms - start_ms)
        ),
    );
    Ok(Window {
        what: name.to_string(),
        start_ms,
        end_ms,
    })
}

/// A port free right now on 127.0.0.1 (for Redis, which cannot report the one it bound).
fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

/// Envoy's usage-delivery counters (`wasmcustom.chokepoint.usage.*` without the per-model
/// ones).
async fn envoy_usage_stats(client: &reqwest::Client, admin: &str) -> BTreeMap<String, u64> {
    let text = match client
        .get(format!("{admin}/stats?filter=chokepoint.usage"))
        .send()
        .await
    {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    text.lines()
        .filter_map(|l| {
            let (name, v) = l.split_once(": ")?;
            let name = name.strip_prefix("wasmcustom.chokepoint.usage.")?;
            if name.starts_with("provider.") {
                return None;
            }
            Some((name.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

struct Report<'a> {
    duration_ms: u64,
    workers: usize,
    rps_cap: f64,
    timeout: Duration,
    judged: &'a [(Outcome, Verdict)],
    windows: &'a [Window],
    records: &'a soak::RecordCheck,
    expected: &'a BTreeMap<soak::LedgerKey, soak::Totals>,
    actual: &'a BTreeMap<soak::LedgerKey, Result<soak::Totals, String>>,
    settle_ms: u64,
    rss: &'a [(u64, u64)],
    rss_warm: (u64, u64),
    rss_end: (u64, u64),
    max_growth_kib: u64,
    delivery: &'a BTreeMap<String, u64>,
    failures: &'a [String],
    run_dir: PathBuf,
}

impl Report<'_> {
    fn hangs(&self) -> Vec<&Outcome> {
        self.judged
            .iter()
            .filter(|(_, v)| *v == Verdict::Hang)
            .map(|(o, _)| o)
            .collect()
    }

    fn unexpected(&self) -> Vec<(&Outcome, &str)> {
        self.judged
            .iter()
            .filter_map(|(o, v)| match v {
                Verdict::Unexpected(why) => Some((o, why.as_str())),
                _ => None,
            })
            .collect()
    }

    fn in_outage(&self, i: usize) -> usize {
        self.judged
            .iter()
            .filter(|(_, v)| *v == Verdict::Outage(i))
            .count()
    }

    /// When the last `503 policy_unavailable` of window `i` was answered, in ms after the
    /// policy service was healthy again (negative: before).
    fn last_503_after(&self, i: usize) -> Option<i64> {
        let w = self.windows.get(i)?;
        self.judged
            .iter()
            .filter(|(_, v)| *v == Verdict::Outage(i))
            .map(|(o, _)| o.end_ms as i64 - w.end_ms as i64)
            .max()
    }

    fn ledger_mismatches(&self) -> Vec<String> {
        self.expected
            .iter()
            .filter_map(|(k, want)| {
                let got = self.actual.get(k);
                match got {
                    Some(Ok(got)) if got == want => None,
                    Some(Ok(got)) => {
                        let diffs: Vec<String> = soak::LEDGER_FIELDS
                            .iter()
                            .zip(want.iter().zip(got))
                            .filter(|(_, (w, g))| w != g)
                            .map(|(f, (w, g))| format!("{f} ledger {g} records {w}"))
                            .collect();
                        Some(format!("{} {} {}: {}", k.0, k.1, k.2, diffs.join(", ")))
                    }
                    Some(Err(e)) => Some(format!("{} {} {}: {e}", k.0, k.1, k.2)),
                    None => Some(format!("{} {} {}: not read", k.0, k.1, k.2)),
                }
            })
            .collect()
    }

    /// Sums over the user scope: (records, ledger) per field.
    fn user_sums(&self) -> Vec<(&'static str, u64, u64)> {
        soak::LEDGER_FIELDS
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let users = |m: &dyn Fn(&soak::LedgerKey) -> Option<u64>| {
                    self.expected
                        .keys()
                        .filter(|k| k.0 == "user")
                        .filter_map(m)
                        .sum::<u64>()
                };
                let want = users(&|k| self.expected.get(k).map(|t| t[i]));
                let got = users(&|k| match self.actual.get(k) {
                    Some(Ok(t)) => Some(t[i]),
                    _ => None,
                });
                (*f, want, got)
            })
            .collect()
    }

    fn growth_kib(&self) -> i64 {
        self.rss_end.1 as i64 - self.rss_warm.1 as i64
    }

    fn checks(&self) -> Vec<(&'static str, bool, String)> {
        let hangs = self.hangs().len();
        let unexpected = self.unexpected().len();
        let r = self.records;
        let mism = self.ledger_mismatches();
        let growth = self.growth_kib();
        let queue_failed = self.delivery.get("queue_failed").copied().unwrap_or(0);
        vec![
            (
                "no request hangs",
                hangs == 0,
                format!("{hangs} past the {} s timeout", self.timeout.as_secs()),
            ),
            (
                "no unexpected status",
                unexpected == 0,
                format!("{unexpected} unexpected (any 5xx other than 503 policy_unavailable inside an outage)"),
            ),
            (
                "one access-log record per request",
                r.passed(),
                format!(
                    "{} missing, {} duplicated, {} stray, {} repeated request ids, {} malformed lines",
                    r.missing.len(),
                    r.duplicated.len(),
                    r.strays.len(),
                    r.duplicate_request_ids.len(),
                    r.malformed
                ),
            ),
            (
                "records agree with the responses",
                r.disagreements.is_empty(),
                format!("{} disagree", r.disagreements.len()),
            ),
            (
                "ledger equals the records",
                mism.is_empty() && queue_failed == 0,
                format!(
                    "{} of {} ledger totals differ; {queue_failed} records not queued",
                    mism.len(),
                    self.expected.len()
                ),
            ),
            (
                "Envoy RSS growth after warm-up",
                growth < self.max_growth_kib as i64,
                format!(
                    "{:+.1} MiB (limit {:.0} MiB)",
                    growth as f64 / 1024.0,
                    self.max_growth_kib as f64 / 1024.0
                ),
            ),
            (
                "stack stayed up",
                self.failures.is_empty(),
                self.failures.join("; "),
            ),
        ]
    }

    /// Prints the tables; true when every check passed.
    fn print(&self) -> bool {
        let n = self.judged.len();
        let secs = self.duration_ms as f64 / 1000.0;
        println!();
        println!("## chokepoint soak");
        println!();
        println!("| kind | requests | answers | unexpected | hangs |");
        println!("|---|---|---|---|---|");
        let mut kinds: BTreeMap<Kind, Vec<&(Outcome, Verdict)>> = BTreeMap::new();
        for j in self.judged {
            kinds.entry(j.0.kind).or_default().push(j);
        }
        for (kind, list) in &kinds {
            let mut answers: BTreeMap<String, usize> = BTreeMap::new();
            for (o, v) in list {
                *answers.entry(answer_label(o, v)).or_default() += 1;
            }
            let answers: Vec<String> = answers
                .into_iter()
                .map(|(k, c)| format!("{k} ×{c}"))
                .collect();
            let unexpected = list
                .iter()
                .filter(|(_, v)| matches!(v, Verdict::Unexpected(_)))
                .count();
            let hangs = list.iter().filter(|(_, v)| *v == Verdict::Hang).count();
            println!(
                "| {} | {} | {} | {unexpected} | {hangs} |",
                kind.name(),
                list.len(),
                answers.join(", ")
            );
        }
        println!();
        println!("| measure | result |");
        println!("|---|---|");
        println!(
            "| load | {} with {} workers (at most {:.0} requests/s): {n} requests, {:.1}/s |",
            soak::secs(self.duration_ms),
            self.workers,
            self.rps_cap,
            n as f64 / secs.max(0.001)
        );
        for (i, w) in self.windows.iter().enumerate() {
            let last = self
                .last_503_after(i)
                .map(|ms| {
                    let side = if ms > 0 { "after" } else { "before" };
                    format!(", the last answered {} ms {side} healthy", ms.abs())
                })
                .unwrap_or_default();
            println!(
                "| {} | at {}, healthy again {} later; {} × 503 policy_unavailable{last} |",
                w.what,
                soak::secs(w.start_ms),
                soak::secs(w.end_ms - w.start_ms),
                self.in_outage(i)
            );
        }
        let hangs = self.hangs();
        println!(
            "| hangs ({} s client timeout) | {} |",
            self.timeout.as_secs(),
            hangs.len()
        );
        let unexpected = self.unexpected();
        println!("| unexpected statuses | {} |", unexpected.len());
        let r = self.records;
        println!(
            "| access-log records | {} for {} requests (+{} before the load): {} missing, {} duplicated, {} stray, {} disagreeing |",
            r.records - r.pre_load,
            r.client_requests,
            r.pre_load,
            r.missing.len(),
            r.duplicated.len(),
            r.strays.len(),
            r.disagreements.len()
        );
        let sums = self.user_sums();
        let users = self.expected.keys().filter(|k| k.0 == "user").count();
        let fmt_sum = |f: &str| {
            sums.iter()
                .find(|(n, _, _)| *n == f)
                .map(|(_, w, g)| {
                    if w == g {
                        format!("{g} = {w}")
                    } else {
                        format!("{g} ≠ {w}")
                    }
                })
                .unwrap_or_default()
        };
        println!(
            "| ledger vs records ({users} users, + tenants and cost centre) | requests {}; input tokens {}; output tokens {}; cost µ$ {}; estimated {} (settled in {}) |",
            fmt_sum("requests"),
            fmt_sum("input_tokens"),
            fmt_sum("output_tokens"),
            fmt_sum("cost_micros"),
            fmt_sum("estimated_requests"),
            soak::secs(self.settle_ms)
        );
        let peak = self.rss.iter().map(|s| s.1).max().unwrap_or(0);
        println!(
            "| Envoy RSS | {} at start, {} after warm-up ({}), {} at the end: {:+.1} MiB; peak {} |",
            soak::mib(self.rss.first().map_or(0, |s| s.1)),
            soak::mib(self.rss_warm.1),
            soak::secs(self.rss_warm.0),
            soak::mib(self.rss_end.1),
            self.growth_kib() as f64 / 1024.0,
            soak::mib(peak)
        );
        let d = |k: &str| self.delivery.get(k).copied().unwrap_or(0);
        println!(
            "| usage delivery | {} items delivered (records and lease releases), {} failed deliveries retried, {} records not queued |",
            d("delivered_records"),
            d("delivery_failed"),
            d("queue_failed")
        );
        println!();

        // Details of whatever went wrong (bounded).
        let show = |title: &str, items: &[String]| {
            if !items.is_empty() {
                println!("{title} ({}):", items.len());
                for i in items.iter().take(15) {
                    println!("  {i}");
                }
            }
        };
        show(
            "hangs",
            &hangs
                .iter()
                .map(|o| {
                    format!(
                        "{} {} status {:?}, {} bytes, started at {}",
                        o.trace_id,
                        o.kind.name(),
                        o.status,
                        o.bytes,
                        soak::secs(o.start_ms)
                    )
                })
                .collect::<Vec<_>>(),
        );
        show(
            "unexpected",
            &unexpected
                .iter()
                .map(|(o, why)| {
                    format!(
                        "{} {} at {}..{}: {why}",
                        o.trace_id,
                        o.kind.name(),
                        soak::secs(o.start_ms),
                        soak::secs(o.end_ms)
                    )
                })
                .collect::<Vec<_>>(),
        );
        show("requests without a record", &r.missing);
        show("requests with several records", &r.duplicated);
        show("records of no request", &r.strays);
        show("request ids in several records", &r.duplicate_request_ids);
        show("records disagreeing with the response", &r.disagreements);
        show("ledger mismatches", &self.ledger_mismatches());
        show("stack", self.failures);

        let checks = self.checks();
        println!("| check | result | detail |");
        println!("|---|---|---|");
        for (name, ok, detail) in &checks {
            println!(
                "| {name} | {} | {detail} |",
                if *ok { "pass" } else { "FAIL" }
            );
        }
        let passed = checks.iter().all(|c| c.1);
        println!();
        println!(
            "soak: {} (run folder {})",
            if passed { "PASS" } else { "FAIL" },
            self.run_dir.display()
        );
        passed
    }

    fn json(&self) -> Value {
        let mut by_kind: BTreeMap<&str, BTreeMap<String, usize>> = BTreeMap::new();
        for (o, v) in self.judged {
            *by_kind
                .entry(o.kind.name())
                .or_default()
                .entry(answer_label(o, v))
                .or_default() += 1;
        }
        json!({
            "duration_ms": self.duration_ms,
            "workers": self.workers,
            "rps_cap": self.rps_cap,
            "requests": self.judged.len(),
            "by_kind": by_kind,
            "outages": self.windows.iter().enumerate().map(|(i, w)| json!({
                "what": w.what, "start_ms": w.start_ms, "end_ms": w.end_ms,
                "policy_unavailable_503": self.in_outage(i),
                "last_503_after_healthy_ms": self.last_503_after(i),
            })).collect::<Vec<_>>(),
            "hangs": self.hangs().len(),
            "unexpected": self.unexpected().iter().map(|(o, why)| json!({
                "trace_id": o.trace_id, "kind": o.kind.name(), "why": why,
            })).collect::<Vec<_>>(),
            "records": {
                "requests": self.records.client_requests,
                "records": self.records.records,
                "pre_load": self.records.pre_load,
                "missing": self.records.missing,
                "duplicated": self.records.duplicated,
                "strays": self.records.strays,
                "disagreements": self.records.disagreements,
            },
            "ledger_user_sums": self.user_sums().iter().map(|(f, w, g)| json!({
                "field": f, "records": w, "ledger": g,
            })).collect::<Vec<_>>(),
            "ledger_mismatches": self.ledger_mismatches(),
            "rss_kib": self.rss,
            "rss_warm_kib": self.rss_warm.1,
            "rss_end_kib": self.rss_end.1,
            "delivery": self.delivery,
            "checks": self.checks().iter().map(|(n, ok, d)| json!({
                "check": n, "passed": ok, "detail": d,
            })).collect::<Vec<_>>(),
        })
    }
}

/// "200", "200 cut", "503 policy_unavailable (outage)", "timeout", ...
fn answer_label(o: &Outcome, v: &Verdict) -> String {
    use soak::Ending;
    let status = match o.status {
        Some(s) => s.to_string(),
        None => {
            return match &o.ending {
                Ending::Timeout => "timeout".into(),
                _ => "no response".into(),
            }
        }
    };
    let mut label = status;
    if let Some(c) = &o.code {
        label.push(' ');
        label.push_str(c);
    }
    match (&o.ending, v) {
        (Ending::Aborted, _) => label.push_str(" aborted"),
        (Ending::BodyError(_), _) => label.push_str(" cut"),
        (Ending::Timeout, _) => label.push_str(" then timeout"),
        _ => {}
    }
    if matches!(v, Verdict::Outage(_)) {
        label.push_str(" (outage)");
    }
    label
}
