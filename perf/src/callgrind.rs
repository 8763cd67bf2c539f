//! What `chokepoint-instructions` reads from callgrind and reports: the instructions of
//! each named dump, and per configuration the instructions per request with the same
//! time idle taken out, against bare Envoy.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

/// The trigger and total instructions of one callgrind dump file
/// (`desc: Trigger: dump NAME` and `totals: N`), if it holds both.
pub fn dump_total(text: &str) -> Option<(String, u64)> {
    let mut trigger = None;
    let mut total = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("desc: Trigger: dump ") {
            trigger = rest.split_whitespace().next().map(str::to_string);
        } else if let Some(rest) = line.strip_prefix("totals: ") {
            total = rest.split_whitespace().next().and_then(|n| n.parse().ok());
        }
    }
    Some((trigger?, total?))
}

/// The totals of the dumps in `dir` whose file names start with `prefix`, by trigger.
pub fn dump_totals(dir: &Path, prefix: &str) -> std::io::Result<BTreeMap<String, u64>> {
    let mut totals = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let named = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(prefix));
        if !named {
            continue;
        }
        let bytes = std::fs::read(&path)?;
        if let Some((trigger, total)) = dump_total(&String::from_utf8_lossy(&bytes)) {
            totals.insert(trigger, total);
        }
    }
    Ok(totals)
}

/// One configuration's count: instructions per request under load and per request's
/// worth of idle time.
#[derive(Debug, Clone, PartialEq)]
pub struct Count {
    pub config: String,
    pub load_per_request: u64,
    pub idle_per_request: u64,
}

impl Count {
    /// From the `load` and `idle` dumps' totals of `requests` requests.
    pub fn from_totals(config: &str, totals: &BTreeMap<String, u64>, requests: u64) -> Count {
        let per = |name: &str| {
            let n = totals.get(name).copied().unwrap_or(0) as f64;
            (n / requests.max(1) as f64).round() as u64
        };
        Count {
            config: config.to_string(),
            load_per_request: per("load"),
            idle_per_request: per("idle"),
        }
    }
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Row {
    pub config: String,
    pub instructions_per_request: i64,
    pub idle_instructions_per_request: u64,
    pub ratio_vs_bare: f64,
    pub added_over_bare: i64,
}

/// `bench/instructions.json`.
#[derive(Debug, Serialize)]
pub struct Report {
    pub requests: u64,
    pub envoy_workers: u32,
    pub tool: &'static str,
    pub results: Vec<Row>,
}

/// The rows of `counts`, each against bare Envoy's count (the first one's when bare
/// Envoy was not counted).
pub fn rows(counts: &[Count]) -> Vec<Row> {
    let per_request = |c: &Count| c.load_per_request as i64 - c.idle_per_request as i64;
    let bare = counts
        .iter()
        .find(|c| c.config == BARE)
        .or(counts.first())
        .map(per_request)
        .filter(|&n| n != 0)
        .unwrap_or(1);
    counts
        .iter()
        .map(|c| {
            let n = per_request(c);
            Row {
                config: c.config.clone(),
                instructions_per_request: n,
                idle_instructions_per_request: c.idle_per_request,
                ratio_vs_bare: (n as f64 / bare as f64 * 1000.0).round() / 1000.0,
                added_over_bare: n - bare,
            }
        })
        .collect()
}

/// The name of bare Envoy's row, the reference.
pub const BARE: &str = "bare envoy";

/// `rows` as the printed table.
pub fn table(rows: &[Row]) -> String {
    let mut out = format!(
        "{:36} {:>14} {:>8} {:>10}\n",
        "configuration", "instr/request", "vs bare", "added"
    );
    for r in rows {
        out += &format!(
            "{:36} {:>14} {:>8.2} {:>10}\n",
            r.config,
            thousands(r.instructions_per_request),
            r.ratio_vs_bare,
            signed_thousands(r.added_over_bare),
        );
    }
    out
}

fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

fn signed_thousands(n: i64) -> String {
    if n < 0 {
        thousands(n)
    } else {
        format!("+{}", thousands(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP: &str = "version: 1\ncreator: callgrind-3.19.0\npid: 4242\ncmd: envoy -c x\n\
        part: 2\n\ndesc: I1 cache: \ndesc: Trigger: dump load\n\npositions: line\n\
        events: Ir\nsummary: 1234567\n\nfl=(1) ???\nfn=(1) 0x0\n0 3\n\ntotals: 1234567\n";

    #[test]
    fn a_dump_names_its_trigger_and_total() {
        assert_eq!(dump_total(DUMP), Some(("load".into(), 1_234_567)));
        // The dump at exit has no named trigger; a cut file has no total.
        let at_exit = DUMP.replace(
            "desc: Trigger: dump load",
            "desc: Trigger: Program termination",
        );
        assert_eq!(dump_total(&at_exit), None);
        assert_eq!(dump_total("desc: Trigger: dump idle\n"), None);
    }

    #[test]
    fn dumps_are_read_by_file_name_prefix() {
        let dir = std::env::temp_dir().join(format!("chokepoint-callgrind-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cg.full.77.1"), DUMP).unwrap();
        std::fs::write(
            dir.join("cg.full.77.2"),
            DUMP.replace("dump load", "dump idle")
                .replace("1234567", "1000"),
        )
        .unwrap();
        std::fs::write(dir.join("cg.bare.76.1"), DUMP.replace("1234567", "9")).unwrap();
        let totals = dump_totals(&dir, "cg.full.").unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(totals.get("load"), Some(&1_234_567));
        assert_eq!(totals.get("idle"), Some(&1000));
        assert_eq!(totals.len(), 2);
    }

    #[test]
    fn idle_time_is_taken_out_and_bare_envoy_is_the_reference() {
        let totals = |load: u64, idle: u64| {
            BTreeMap::from([("load".to_string(), load), ("idle".to_string(), idle)])
        };
        let counts = [
            Count::from_totals(
                "envoy + chokepoint (full path)",
                &totals(3_000_000, 500_000),
                1000,
            ),
            Count::from_totals(BARE, &totals(1_100_000, 100_000), 1000),
        ];
        assert_eq!(counts[0].load_per_request, 3000);
        assert_eq!(counts[0].idle_per_request, 500);
        let rows = rows(&counts);
        assert_eq!(rows[0].instructions_per_request, 2500);
        assert_eq!(rows[0].ratio_vs_bare, 2.5);
        assert_eq!(rows[0].added_over_bare, 1500);
        assert_eq!(rows[1].added_over_bare, 0);
        let table = table(&rows);
        assert!(table.contains("2,500"), "{table}");
        assert!(table.contains("+1,500"), "{table}");
    }

    #[test]
    fn without_bare_envoy_the_first_count_is_the_reference() {
        let c = |config: &str, load| Count {
            config: config.into(),
            load_per_request: load,
            idle_per_request: 0,
        };
        let rows = rows(&[c("full", 200), c("identity", 100)]);
        assert_eq!(rows[0].ratio_vs_bare, 1.0);
        assert_eq!(rows[1].added_over_bare, -100);
        assert_eq!(signed_thousands(-12_345), "-12,345");
    }
}
