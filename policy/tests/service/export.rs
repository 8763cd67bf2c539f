//! `chokepoint-policy export`, as built, against the service and a real Redis: records
//! of several users, models and days (an MCP exchange and a retried record among them)
//! exported to Parquet, incrementally and once each, then read back with DuckDB (the
//! pinned one scripts/lib.sh installs) and held to the ledger's totals; what a trim took
//! before an export is counted, a run's leftovers are cleaned up, and two runs never
//! share a directory.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{SystemTime, UNIX_EPOCH};

use chokepoint_policy::utc_date::Day;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{new_user, usage_config, RedisServer, Service, TempDir, ADMIN_TOKEN};

const BIN: &str = env!("CARGO_BIN_EXE_chokepoint-policy");
const MS_PER_DAY: u64 = 86_400_000;

fn now_ms() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock");
    u64::try_from(since.as_millis()).expect("ms")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `export --out <dir> --json` and any `extra` arguments.
async fn export(service: &Service, dir: &Path, extra: &[&str]) -> Output {
    tokio::process::Command::new(BIN)
        .arg("export")
        .arg("--out")
        .arg(dir)
        .arg("--json")
        .args(extra)
        .env_clear()
        .env("CHOKEPOINT_POLICY_ADMIN_URL", &service.admin_base)
        .env("CHOKEPOINT_ADMIN_TOKEN", ADMIN_TOKEN)
        .output()
        .await
        .expect("run chokepoint-policy export")
}

/// Runs the export, expects success; its JSON report.
async fn exported(service: &Service, dir: &Path) -> Value {
    let output = export(service, dir, &[]).await;
    assert!(
        output.status.success(),
        "{}\n{}",
        output.status,
        text(&output.stderr)
    );
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|err| panic!("not JSON ({err}): {}", text(&output.stdout)))
}

/// Every file under `dir`, relative to it.
fn files(dir: &Path) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(at) = pending.pop() {
        for entry in std::fs::read_dir(&at).expect("list") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let relative = path.strip_prefix(dir).expect("under dir");
                found.insert(relative.to_string_lossy().into_owned());
            }
        }
    }
    found
}

struct Booked {
    id: &'static str,
    user: usize,
    model: &'static str,
    provider: &'static str,
    days_ago: u64,
    input: u64,
    output: u64,
    cost: u64,
}

const fn booked(
    id: &'static str,
    user: usize,
    model: &'static str,
    days_ago: u64,
    input: u64,
    output: u64,
    cost: u64,
) -> Booked {
    let provider = if model.as_bytes()[0] == b'g' {
        "openai"
    } else {
        "anthropic"
    };
    Booked {
        id,
        user,
        model,
        provider,
        days_ago,
        input,
        output,
        cost,
    }
}

const GPT: &str = "gpt-4o-mini";
const CLAUDE: &str = "claude-sonnet-4-5";

/// Users 0 and 2 are in Research, 1 in Sales (the departments CSV).
const FIRST: [Booked; 5] = [
    booked("x-a1", 0, GPT, 2, 100, 10, 1_500),
    booked("x-a2", 0, CLAUDE, 1, 200, 20, 4_000),
    booked("x-b1", 1, GPT, 1, 50, 5, 700),
    booked("x-b2", 1, CLAUDE, 0, 300, 30, 9_000),
    booked("x-c1", 2, GPT, 0, 10, 1, 100),
];
/// Booked after the first exports: one of today, one late for two days ago.
const LATER: [Booked; 2] = [
    booked("x-c2", 2, CLAUDE, 0, 40, 4, 1_200),
    booked("x-b3", 1, GPT, 2, 70, 7, 900),
];

fn record(b: &Booked, users: &[String], now: u64) -> Value {
    json!({
        "request_id": b.id, "user": users[b.user], "tenant": "acme",
        "groups": if b.user == 0 { json!(["eng", "ml"]) } else { json!([]) },
        "cost_center": "cc-1", "model": b.model, "model_key": b.model,
        "provider": b.provider, "format": "openai_chat", "input_tokens": b.input,
        "output_tokens": b.output, "cost_micros": b.cost, "status": 200,
        "decision": "allowed", "latency_ms": 120, "completed": true,
        "ts_ms": now - b.days_ago * MS_PER_DAY,
    })
}

fn day(now: u64, days_ago: u64) -> String {
    Day::from_unix_ms(now - days_ago * MS_PER_DAY).to_string()
}

/// DuckDB's Python, as scripts/lib.sh's ensure_duckdb installs it.
fn duckdb_python() -> PathBuf {
    let python = std::env::var_os("CHOKEPOINT_DUCKDB_PYTHON").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv-duckdb/bin/python"),
        PathBuf::from,
    );
    assert!(
        python.exists(),
        "{} is missing: run `scripts/test policy`, or `. scripts/lib.sh; ensure_duckdb`",
        python.display()
    );
    python
}

/// The table read with DuckDB (duckdb_check.py).
async fn duckdb(table: &Path, departments: &Path) -> Value {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = tokio::process::Command::new(duckdb_python())
        .arg(here.join("tests/service/duckdb_check.py"))
        .arg(table)
        .arg(departments)
        .arg(here.join("../docs/operations.md"))
        .output()
        .await
        .expect("run duckdb_check.py");
    assert!(
        output.status.success(),
        "duckdb_check.py: {}\n{}",
        output.status,
        text(&output.stderr)
    );
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|err| panic!("not JSON ({err}): {}", text(&output.stdout)))
}

/// (cost, input, output) as DuckDB's sums give them.
fn sums(row: &Value) -> (u64, u64, u64) {
    let n = |name: &str| {
        row[name]
            .as_u64()
            .unwrap_or_else(|| panic!("{name}: {row}"))
    };
    (n("cost_micros"), n("input_tokens"), n("output_tokens"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_each_record_once_and_duckdb_sums_equal_the_ledger() {
    let redis = RedisServer::start();
    let service = Service::start(usage_config(&redis)).await;
    let dir = TempDir::new();
    let table = dir.path().join("lake");
    let users = [new_user(), new_user(), new_user()];
    let now = now_ms();

    let mut records: Vec<Value> = FIRST.iter().map(|b| record(b, &users, now)).collect();
    records.push(json!({
        "request_id": "x-m1", "user": users[0], "tenant": "acme", "format": "mcp",
        "mcp": {"server": "everything", "method": "tools/call", "name": "echo",
                "bytes_in": 120, "bytes_out": 300},
        "ts_ms": now,
    }));
    let (status, answer) = service.post_usage(&records).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["accepted"], 6, "{answer}");
    // The filter's retry of a record it already sent: the ledger books it once, and so
    // does the table, whatever the retry says.
    let mut retry = record(&FIRST[0], &users, now);
    retry["cost_micros"] = json!(999_999);
    let (_, answer) = service.post_usage(&[retry]).await;
    assert_eq!(answer["duplicates"], 1, "{answer}");

    // The admin API's page of the stream, which the export reads: oldest first, each
    // record as sent with its booking day, and the stream's counters.
    let (status, page) = service
        .admin(reqwest::Method::GET, "/v1/admin/audit?limit=2", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(
        (&page["length"], &page["entries_added"]),
        (&json!(6), &json!(6)),
        "{page}"
    );
    let entries = page["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 2, "{page}");
    assert_eq!(entries[0]["record"]["request_id"], "x-a1", "{page}");
    assert_eq!(entries[0]["day"], day(now, 2), "{page}");
    let path = format!(
        "/v1/admin/audit?after={}",
        entries[1]["id"].as_str().expect("id")
    );
    let (_, rest) = service.admin(reqwest::Method::GET, &path, None).await;
    let ids: Vec<&Value> = rest["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| &e["record"]["request_id"])
        .collect();
    assert_eq!(ids, ["x-b1", "x-b2", "x-c1", "x-m1"], "{rest}");

    let first = exported(&service, &table).await;
    assert_eq!(
        (&first["exported"], &first["trimmed"], &first["skipped"]),
        (&json!(6), &json!(0), &json!(0)),
        "{first}"
    );
    let days: Vec<&str> = first["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| f["date"].as_str().expect("date"))
        .collect();
    assert_eq!(days, [day(now, 2), day(now, 1), day(now, 0)], "{first}");
    let after_first = files(&table);

    // Nothing new: nothing written, nothing touched.
    let second = exported(&service, &table).await;
    assert_eq!(
        (&second["exported"], &second["files"]),
        (&json!(0), &json!([])),
        "{second}"
    );
    assert_eq!(files(&table), after_first);

    let later: Vec<Value> = LATER.iter().map(|b| record(b, &users, now)).collect();
    let (_, answer) = service.post_usage(&later).await;
    assert_eq!(answer["accepted"], 2, "{answer}");
    let third = exported(&service, &table).await;
    assert_eq!(third["exported"], 2, "{third}");
    assert_eq!(third["cursor"]["exported"], 8, "{third}");
    let new_files: Vec<String> = files(&table).difference(&after_first).cloned().collect();
    assert_eq!(
        new_files.len(),
        2,
        "a file per day of the run: {new_files:?}"
    );
    for name in ["_chokepoint_export.json", "_chokepoint_export.lock"] {
        assert!(after_first.contains(name), "{after_first:?}");
    }

    let departments = dir.path().join("departments.csv");
    std::fs::write(
        &departments,
        format!(
            "user_id,department\n{},Research\n{},Sales\n{},Research\n",
            users[0],
            users[1],
            // A directory may spell UUIDs in capitals; the query lowers them.
            users[2].to_uppercase()
        ),
    )
    .expect("write departments.csv");
    let lake = duckdb(&table, &departments).await;

    // Every booked record once; the retry's cost nowhere.
    let all: Vec<&Booked> = FIRST.iter().chain(&LATER).collect();
    assert_eq!(
        lake["counts"],
        json!({"rows": all.len() + 1, "request_ids": all.len() + 1, "off_day": 0}),
        "{lake}"
    );

    // Per day and user, per day and model: the table's sums are the ledger's.
    let mut expected_users = BTreeSet::new();
    let mut expected_models = BTreeSet::new();
    for b in &all {
        expected_users.insert((day(now, b.days_ago), users[b.user].clone()));
        expected_models.insert((day(now, b.days_ago), b.model.to_owned()));
    }
    expected_users.insert((day(now, 0), users[0].clone())); // the MCP exchange
    for (by, scope, expected) in [
        ("by_user", "user", expected_users),
        ("by_model", "model", expected_models),
    ] {
        let rows = lake[by].as_array().expect(by);
        let got: BTreeSet<(String, String)> = rows
            .iter()
            .map(|r| {
                (
                    r["day"].as_str().expect("day").to_owned(),
                    r["id"].as_str().expect("id").to_owned(),
                )
            })
            .collect();
        assert_eq!(got, expected, "{by}: {lake}");
        for row in rows {
            let (day, id) = (
                row["day"].as_str().expect("day"),
                row["id"].as_str().expect("id"),
            );
            let ledger = service.ledger(scope, id, day).await;
            assert_eq!(
                sums(row),
                sums(&ledger),
                "{scope} {id} {day}: table {row}, ledger {ledger}"
            );
        }
    }

    // The columns' types as an analyst's DuckDB sees them.
    let columns: BTreeMap<&str, &str> = lake["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| {
            (
                c["column_name"].as_str().expect("name"),
                c["column_type"].as_str().expect("type"),
            )
        })
        .collect();
    for (name, kind) in [
        ("chokepoint.time_unix_ms", "TIMESTAMP WITH TIME ZONE"),
        ("chokepoint.groups", "VARCHAR[]"),
        ("chokepoint.cost_micros", "BIGINT"),
        ("chokepoint.stream", "BOOLEAN"),
        ("chokepoint.user", "VARCHAR"),
        ("date", "DATE"),
    ] {
        assert_eq!(columns.get(name), Some(&kind), "{name}: {columns:?}");
    }
    let groups: BTreeMap<&str, &Value> = lake["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|r| (r["id"].as_str().expect("id"), &r["groups"]))
        .collect();
    assert_eq!(groups["x-a1"], &json!(["eng", "ml"]), "{lake}");
    // The published record leaves an empty list out: a null column.
    assert_eq!(groups["x-b1"], &Value::Null, "{lake}");
    let a1 = lake["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .find(|r| r["id"] == "x-a1");
    assert_eq!(
        a1.map(|r| &r["ms"]),
        Some(&json!(now - 2 * MS_PER_DAY)),
        "{lake}"
    );

    // The documented query: cost by department and model.
    let mut by_department: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    for b in &all {
        let department = if b.user == 1 { "Sales" } else { "Research" };
        let entry = by_department
            .entry((department.to_owned(), b.model.to_owned()))
            .or_default();
        entry.0 += 1;
        entry.1 += b.cost;
    }
    let got: BTreeMap<(String, String), (u64, u64)> = lake["departments"]
        .as_array()
        .expect("departments")
        .iter()
        .map(|r| {
            let text = |f: &str| {
                r[f].as_str()
                    .unwrap_or_else(|| panic!("{f}: {r}"))
                    .to_owned()
            };
            let n = |f: &str| r[f].as_u64().unwrap_or_else(|| panic!("{f}: {r}"));
            (
                (text("department"), text("model")),
                (n("requests"), n("cost_micros")),
            )
        })
        .collect();
    assert_eq!(got, by_department, "{lake}");

    service.stop().await.expect("service stops cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_trimmed_records_cleans_up_and_refuses_a_second_run() {
    let redis = RedisServer::start();
    let service = Service::start(usage_config(&redis)).await;
    let dir = TempDir::new();
    let table = dir.path().join("lake");
    let user = new_user();
    let now = now_ms();
    let mut next = 0;
    let mut book = |n: usize| {
        let records: Vec<Value> = (0..n)
            .map(|_| {
                next += 1;
                json!({"request_id": format!("t-{next}"), "user": user, "tenant": "acme",
                       "model": GPT, "input_tokens": 1, "cost_micros": 10, "ts_ms": now})
            })
            .collect();
        records
    };
    let mut redis_connection = redis.connection().await;
    let trim_to = |n: u64| {
        let mut command = redis::cmd("XTRIM");
        command.arg("ck:usage:log").arg("MAXLEN").arg(n);
        command
    };

    let (_, answer) = service.post_usage(&book(5)).await;
    assert_eq!(answer["accepted"], 5, "{answer}");
    assert_eq!(exported(&service, &table).await["exported"], 5);

    // 4 more, then a trim to the newest 1: 3 of them were never exported.
    service.post_usage(&book(4)).await;
    let _: u64 = trim_to(1)
        .query_async(&mut redis_connection)
        .await
        .expect("XTRIM");
    let output = export(&service, &table, &[]).await;
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{}\n{stderr}", output.status);
    assert!(
        stderr
            .contains("3 records were trimmed from the audit stream before they could be exported"),
        "{stderr}"
    );
    let report: Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(
        (&report["exported"], &report["trimmed"]),
        (&json!(1), &json!(3)),
        "{report}"
    );

    // Asked to, the export fails on a trim, after committing the rest.
    service.post_usage(&book(3)).await;
    let _: u64 = trim_to(1)
        .query_async(&mut redis_connection)
        .await
        .expect("XTRIM");
    let output = export(&service, &table, &["--fail-on-trimmed"]).await;
    assert_eq!(output.status.code(), Some(3), "{}", text(&output.stderr));
    let report: Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(
        (&report["exported"], &report["trimmed"]),
        (&json!(1), &json!(2)),
        "{report}"
    );
    assert_eq!(
        (
            &report["cursor"]["exported"],
            &report["cursor"]["trimmed"],
            &report["cursor"]["consumed"]
        ),
        (&json!(7), &json!(5), &json!(12)),
        "{report}"
    );

    // A run that stopped before its cursor was saved left a file named after an entry
    // past the cursor and a temporary one: the next run removes both, and keeps what is
    // not the export's.
    let stray_day = table.join("date=2026-01-01");
    std::fs::create_dir_all(&stray_day).expect("mkdir");
    let cursor = report["cursor"]["after"]
        .as_str()
        .expect("cursor")
        .to_owned();
    let ms: u64 = cursor.split('-').next().expect("ms").parse().expect("ms");
    let uncommitted = stray_day.join(format!("part-{}-0.parquet", ms + 1));
    let tmp = stray_day.join(".part-1-0.parquet.tmp");
    let theirs = stray_day.join("compacted.parquet");
    for path in [&uncommitted, &tmp, &theirs] {
        std::fs::write(path, b"not parquet").expect("write");
    }
    let output = export(&service, &table, &[]).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        !uncommitted.exists() && !tmp.exists(),
        "{:?}",
        files(&table)
    );
    assert!(theirs.exists(), "{:?}", files(&table));
    assert!(text(&output.stderr).contains("left by a run that did not finish"));

    // A run in progress holds the lock: a second one refuses to start.
    let lock = File::options()
        .write(true)
        .open(table.join("_chokepoint_export.lock"))
        .expect("open lock");
    lock.try_lock().expect("take the lock");
    let output = export(&service, &table, &[]).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("another export is writing to"),
        "{}",
        text(&output.stderr)
    );
    drop(lock);
    assert!(export(&service, &table, &[]).await.status.success());

    service.stop().await.expect("service stops cleanly");
}
