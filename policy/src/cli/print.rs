//! The admin commands' summaries, for people; `--json` prints the service's answer
//! instead.

use std::fmt::Write as _;

use chokepoint_policy::display::{format_duration_ms, format_usd, format_utc_ms};
use serde_json::Value;

fn number(value: &Value) -> u64 {
    value.as_u64().unwrap_or(0)
}

/// `per UTC month`, `per UTC day`, `per rolling 3600s`.
fn per(period: &str) -> String {
    match period {
        "day" => "per UTC day".to_owned(),
        "month" => "per UTC month".to_owned(),
        other => match other.strip_prefix("rolling:") {
            Some(secs) => format!("per rolling {secs}s"),
            None => format!("per {other}"),
        },
    }
}

/// The lines describing one limit set (`{"rpm",...}`).
fn set_lines(limits: &Value) -> String {
    let mut out = String::new();
    if let Some(rpm) = limits.get("rpm") {
        let _ = writeln!(out, "  requests   {} per rate window (rpm)", number(rpm));
    }
    if let Some(tpm) = limits.get("tpm") {
        let _ = writeln!(out, "  tokens     {} per rate window (tpm)", number(tpm));
    }
    let period = per(limits["period"].as_str().unwrap_or("?"));
    if let Some(usd) = limits.get("usd_micros") {
        let _ = writeln!(out, "  budget     {} {period}", format_usd(number(usd)));
    }
    if let Some(tokens) = limits.get("tokens") {
        let _ = writeln!(out, "  budget     {} tokens {period}", number(tokens));
    }
    out
}

/// A `GET`/`PUT /v1/admin/limits/...` answer, or nothing when the set was removed.
pub fn set_stored(said: &str, stored: Option<&Value>) -> String {
    let Some(stored) = stored else {
        return format!("{said} now has no limits of its own\n");
    };
    let mut out = said.to_owned();
    if let Some(updated) = stored["updated_ms"].as_u64() {
        let _ = write!(out, " (updated {})", format_utc_ms(updated));
    }
    out.push('\n');
    out.push_str(&set_lines(&stored["limits"]));
    out
}

/// `GET /v1/admin/limits`.
pub fn list(body: &Value) -> String {
    let entries = body["limits"].as_array().cloned().unwrap_or_default();
    if entries.is_empty() {
        return "no limits are set\n".to_owned();
    }
    let mut out = String::new();
    for entry in entries {
        let kind = match entry["scope_kind"].as_str().unwrap_or("?") {
            "tenant" => "team",
            "cost_center" => "cost centre",
            "mcp_server" => "MCP server",
            "mcp_tool" => "MCP tool",
            other => other,
        };
        match entry["id"].as_str().unwrap_or("?") {
            "*" => {
                let _ = writeln!(out, "{kind} * (every {kind} without limits of its own)");
            }
            id => {
                let _ = writeln!(out, "{kind} {id}");
            }
        }
        if let Some(invalid) = entry["invalid"].as_str() {
            let _ = writeln!(out, "  (unreadable: {invalid})");
        }
        out.push_str(&set_lines(&entry["limits"]));
    }
    out
}

/// A default set's budget (it has no spend of its own).
pub fn default_budget(said: &str, set: &Value) -> String {
    if set.get("period").is_none() {
        return format!("no budget is set for {said}\n");
    }
    let budget_only = serde_json::json!({
        "usd_micros": set.get("usd_micros"),
        "tokens": set.get("tokens"),
        "period": set.get("period"),
    });
    let mut cleaned = serde_json::Map::new();
    for (key, value) in budget_only.as_object().into_iter().flatten() {
        if !value.is_null() {
            cleaned.insert(key.clone(), value.clone());
        }
    }
    format!("{said}\n{}", set_lines(&Value::Object(cleaned)))
}

fn amount(metric: &str, n: u64) -> String {
    if metric == "usd_micros" {
        format_usd(n)
    } else {
        format!("{n} tokens")
    }
}

fn budget_lines(out: &mut String, budget: &Value) {
    let metric = budget["name"]
        .as_str()
        .and_then(|name| name.split(':').nth(1))
        .unwrap_or("usd_micros");
    let _ = writeln!(
        out,
        "  {} {}, window {} (set for {})",
        amount(metric, number(&budget["limit"])),
        per(budget["period"].as_str().unwrap_or("?")),
        budget["window"].as_str().unwrap_or("?"),
        match budget["source"].as_str().unwrap_or("?") {
            source if source.ends_with(":*") => "the default",
            _ => "this scope",
        },
    );
    let _ = writeln!(
        out,
        "    spent      {}",
        amount(metric, number(&budget["spent"]))
    );
    let _ = writeln!(
        out,
        "    reserved   {} (worst case of requests in flight)",
        amount(metric, number(&budget["reserved"]))
    );
    let _ = writeln!(
        out,
        "    remaining  {}",
        amount(metric, number(&budget["remaining"]))
    );
    if let Some(reset) = budget["reset_after_ms"].as_u64() {
        let _ = writeln!(out, "    resets in  {}", format_duration_ms(reset));
    }
}

/// `GET /v1/admin/spend`, budgets only.
pub fn budgets(said: &str, body: &Value) -> String {
    let budgets = body["budgets"].as_array().cloned().unwrap_or_default();
    if budgets.is_empty() {
        return format!("no budget applies to {said}\n");
    }
    let mut out = format!("{said}\n");
    for budget in &budgets {
        budget_lines(&mut out, budget);
    }
    out
}

/// `GET /v1/admin/spend`: the period's usage, then budgets and rate limits.
pub fn usage(said: &str, body: &Value) -> String {
    let usage = &body["usage"];
    let mut out = format!("{said}, {}\n", body["period"].as_str().unwrap_or("?"));
    let _ = writeln!(
        out,
        "  requests        {} ({} with estimated counts)",
        number(&usage["requests"]),
        number(&usage["estimated_requests"])
    );
    for (label, field) in [
        ("input tokens", "input_tokens"),
        ("  cached", "cached_input_tokens"),
        ("  cache writes", "cache_creation_input_tokens"),
        ("output tokens", "output_tokens"),
        ("  reasoning", "reasoning_tokens"),
    ] {
        let _ = writeln!(out, "  {label:<15} {}", number(&usage[field]));
    }
    let _ = writeln!(
        out,
        "  {:<15} {}",
        "cost",
        format_usd(number(&usage["cost_micros"]))
    );
    let budgets = body["budgets"].as_array().cloned().unwrap_or_default();
    if !budgets.is_empty() {
        out.push_str("budgets\n");
        for budget in &budgets {
            budget_lines(&mut out, budget);
        }
    }
    let rates = body["rate_limits"].as_array().cloned().unwrap_or_default();
    if !rates.is_empty() {
        out.push_str("rate limits, current window\n");
        for rate in &rates {
            let _ = writeln!(
                out,
                "  {:<14} {} of {} used, resets in {}",
                rate["name"].as_str().unwrap_or("?"),
                number(&rate["used"]),
                number(&rate["limit"]),
                format_duration_ms(number(&rate["reset_after_ms"])),
            );
        }
    }
    out
}

/// `GET /v1/admin/usage?by=client|session`.
pub fn spend(body: &Value) -> String {
    let by = if body["by"] == "session" {
        "session"
    } else {
        "client"
    };
    let mut out = format!(
        "spend by {by}, {}\n",
        body["period"].as_str().unwrap_or("?")
    );
    let rows = body["rows"].as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        out.push_str("  no usage booked\n");
    }
    let width = id_width(&rows);
    for row in &rows {
        let _ = write!(
            out,
            "  {:<width$}  {:>8} requests  {:>12} tokens in  {:>10} out  {}",
            row["id"].as_str().unwrap_or("?"),
            number(&row["requests"]),
            number(&row["input_tokens"]),
            number(&row["output_tokens"]),
            format_usd(number(&row["cost_micros"])),
        );
        // A session's tool, when the rows are sessions.
        if let Some(client) = row["client"].as_str() {
            let _ = write!(out, "  {client}");
        }
        out.push('\n');
    }
    if body["complete"] == false {
        out.push_str(
            "  (partial: the audit stream no longer holds all of this period; see --audit-max-len)\n",
        );
    }
    out
}

/// The width of the rows' longest id, to line them up.
fn id_width(rows: &[Value]) -> usize {
    rows.iter()
        .filter_map(|r| r["id"].as_str())
        .map(str::len)
        .max()
        .unwrap_or(2)
}

/// `GET /v1/admin/usage?by=mcp_server|mcp_tool`.
pub fn mcp_counts(body: &Value) -> String {
    let by = if body["by"] == "mcp_tool" {
        "tool"
    } else {
        "server"
    };
    let mut out = format!(
        "MCP requests by {by}, {}",
        body["period"].as_str().unwrap_or("?")
    );
    if let Some(user) = body["user"].as_str() {
        let _ = write!(out, ", user {user}");
    }
    out.push('\n');
    let rows = body["rows"].as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        out.push_str("  no MCP requests counted\n");
    }
    let width = id_width(&rows);
    for row in &rows {
        let _ = writeln!(
            out,
            "  {:<width$}  {:>8} requests  {:>6} errors",
            row["id"].as_str().unwrap_or("?"),
            number(&row["requests"]),
            number(&row["errors"]),
        );
    }
    out
}

/// `GET /v1/admin/top`.
pub fn top(body: &Value) -> String {
    let kind = match body["scope_kind"].as_str().unwrap_or("?") {
        "tenant" => "teams",
        "cost_center" => "cost centres",
        "user" => "users",
        "model" => "models",
        other => other,
    };
    let by = if body["by"] == "tokens" {
        "tokens"
    } else {
        "cost"
    };
    let mut out = format!(
        "top {kind} by {by}, {}\n",
        body["period"].as_str().unwrap_or("?")
    );
    let entries = body["top"].as_array().cloned().unwrap_or_default();
    if entries.is_empty() {
        out.push_str("  no usage booked\n");
        return out;
    }
    let width = entries
        .iter()
        .filter_map(|e| e["id"].as_str())
        .map(str::len)
        .max()
        .unwrap_or(2)
        .max(2);
    let _ = writeln!(
        out,
        "  {:>4}  {:<width$}  {:>14}  {:>12}  {:>9}",
        "rank", "id", "cost", "tokens", "requests"
    );
    for entry in &entries {
        let _ = writeln!(
            out,
            "  {:>4}  {:<width$}  {:>14}  {:>12}  {:>9}",
            number(&entry["rank"]),
            entry["id"].as_str().unwrap_or("?"),
            format_usd(number(&entry["cost_micros"])),
            number(&entry["tokens"]),
            number(&entry["requests"]),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn summarises_sets_spend_and_rankings() {
        let stored = json!({"scope_kind": "tenant", "id": "ml", "updated_ms": 1_795_640_042_000_u64,
            "limits": {"rpm": 60, "usd_micros": 500_000_000, "period": "month"}});
        assert_eq!(
            set_stored("team ml", Some(&stored)),
            "team ml (updated 2026-11-25T20:54:02Z)\n  requests   60 per rate window (rpm)\n  \
             budget     $500.00 per UTC month\n"
        );
        let spend = json!({"period": "2026-11", "usage": {"requests": 3, "cost_micros": 1_230_000},
            "budgets": [{"name": "tenant:usd_micros:month", "period": "month", "window": "2026-11",
                "source": "tenant:ml", "limit": 500_000_000, "spent": 1_230_000, "reserved": 50_000,
                "remaining": 498_720_000, "reset_after_ms": 446_400_000}],
            "rate_limits": [{"name": "tenant:rpm", "limit": 60, "used": 3, "reset_after_ms": 41_000}]});
        let text = budgets("team ml", &spend);
        assert!(
            text.contains("$500.00 per UTC month, window 2026-11 (set for this scope)"),
            "{text}"
        );
        assert!(text.contains("spent      $1.23"), "{text}");
        assert!(text.contains("remaining  $498.72"), "{text}");
        assert!(text.contains("resets in  5d 4h"), "{text}");
        let text = usage("team ml", &spend);
        assert!(
            text.starts_with("team ml, 2026-11\n  requests        3 (0 with estimated counts)"),
            "{text}"
        );
        assert!(
            text.contains("tenant:rpm     3 of 60 used, resets in 41s"),
            "{text}"
        );
        assert_eq!(
            budgets("team ml", &json!({"budgets": []})),
            "no budget applies to team ml\n"
        );

        let ranked = json!({"scope_kind": "user", "period": "2026-11", "by": "cost_micros",
            "top": [{"rank": 1, "id": "u1", "cost_micros": 900, "tokens": 10, "requests": 1}]});
        let text = top(&ranked);
        assert!(text.starts_with("top users by cost, 2026-11\n"), "{text}");
        assert!(text.contains("     1  u1         $0.0009"), "{text}");
    }

    #[test]
    fn lists_mcp_counts() {
        let cases = [
            (
                json!({"by": "mcp_tool", "period": "2026-12-07", "user": "u1",
                    "rows": [{"id": "everything/echo", "requests": 12, "errors": 1},
                             {"id": "everything/add", "requests": 3, "errors": 0}]}),
                "MCP requests by tool, 2026-12-07, user u1\n  \
                 everything/echo        12 requests       1 errors\n  \
                 everything/add          3 requests       0 errors\n",
            ),
            (
                json!({"by": "mcp_server", "period": "2026-12-07", "rows": []}),
                "MCP requests by server, 2026-12-07\n  no MCP requests counted\n",
            ),
        ];
        for (body, expected) in cases {
            assert_eq!(mcp_counts(&body), expected);
        }
    }
}
