//! The admin commands: `limit`, `budget`, `usage`, `top`, `spend` and `export`, over the policy service's
//! admin API (`/v1/admin/*`). They change nothing themselves; the service validates and
//! stores, and its error messages are passed on as they are.
//!
//! `limit set` and `budget set` edit one part of a scope's limit set (the rates, or the
//! budget) and keep the other: they read the set, change it and write it back whole, so
//! two admins editing the same scope at the same moment may overwrite each other.

mod client;
pub mod export;
mod print;

use std::process::ExitCode;

use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value};

use client::{encode, Admin};

/// Where the policy service's admin listener is, and the admin token it wants.
#[derive(Args, Debug)]
pub struct Remote {
    /// The policy service's admin listener (its --admin-listen), not the gateway
    /// listener Envoy calls.
    // hide_env_values: clap would show an unset variable as `NAME=`.
    #[arg(
        long,
        env = "CHOKEPOINT_POLICY_ADMIN_URL",
        hide_env_values = true,
        default_value = "http://127.0.0.1:8082",
        value_name = "URL"
    )]
    pub admin_url: String,

    /// The service's admin token (its --admin-token). Prefer the environment variable:
    /// a command line is visible to other local users.
    // hide_env_values: --help must not print the token.
    #[arg(
        long,
        env = "CHOKEPOINT_ADMIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub admin_token: Option<String>,

    /// Print the service's JSON answer instead of a summary.
    #[arg(long)]
    pub json: bool,
}

/// The one scope a command is about.
#[derive(Args, Debug)]
#[group(id = "scope", required = true, multiple = false)]
pub struct Target {
    /// A user, by the UUID the gateway derives for them (the x-chokepoint-user header,
    /// or the ids `top` lists). `*`: every user without limits of their own.
    #[arg(long, value_name = "UUID")]
    user: Option<String>,

    /// A team: the tenant claim in its members' tokens. `*`: every team without limits
    /// of its own.
    #[arg(long, visible_alias = "tenant", value_name = "TEAM")]
    team: Option<String>,

    /// A cost centre: the cost_center claim. `*`: every cost centre without its own.
    #[arg(long, value_name = "COST_CENTER")]
    cost_center: Option<String>,

    /// A model key: the model's price entry (`gpt-4o-mini*`, `claude-opus-5*`, an exact
    /// name), an exact route, or `other`. `*`: every model key without its own.
    #[arg(long, value_name = "MODEL")]
    model: Option<String>,

    /// An MCP server (`mcp.servers[].name`): its limits hold for each user on their own.
    /// `*`: every server without limits of its own. Request rates only (--rpm).
    #[arg(long, value_name = "SERVER")]
    mcp_server: Option<String>,

    /// An MCP tool, `<server>/<tool>`: its limits hold for each user on their own.
    /// `<server>/*`: every tool of the server without its own; `*`: every tool without
    /// either. Request rates only (--rpm).
    #[arg(long, value_name = "SERVER/TOOL")]
    mcp_tool: Option<String>,
}

impl Target {
    /// (the API's scope kind, id, how people say it: `team ml`, `every team …`).
    fn scope(&self) -> (&'static str, &str, String) {
        let (kind, noun, id) = if let Some(id) = &self.user {
            ("user", "user", id.as_str())
        } else if let Some(id) = &self.team {
            ("tenant", "team", id.as_str())
        } else if let Some(id) = &self.cost_center {
            ("cost_center", "cost centre", id.as_str())
        } else if let Some(id) = &self.mcp_server {
            ("mcp_server", "MCP server", id.as_str())
        } else if let Some(id) = &self.mcp_tool {
            ("mcp_tool", "MCP tool", id.as_str())
        } else {
            // clap's group requires exactly one of them.
            ("model", "model", self.model.as_deref().unwrap_or_default())
        };
        let said = if id == "*" {
            format!("every {noun} without limits of its own")
        } else {
            format!("{noun} {id}")
        };
        (kind, id, said)
    }
}

#[derive(Subcommand, Debug)]
pub enum LimitCommand {
    /// Set a scope's request and token rates per window (one minute unless the service
    /// runs with another --window-secs). Keeps the scope's budget.
    #[command(after_help = "\
Examples:
  chokepoint-policy limit set --user 0190a6f2-7c1e-8b3a-9f00-1234567890ab --rpm 60 --tpm 100000
  chokepoint-policy limit set --team ml --rpm 600
  chokepoint-policy limit set --team '*' --rpm 300      # every team without its own
  chokepoint-policy limit set --model 'gpt-4o*' --tpm off  # remove the family's tpm
  chokepoint-policy limit set --mcp-server '*' --rpm 120   # each user, on each server
  chokepoint-policy limit set --mcp-tool everything/echo --rpm 10")]
    Set(LimitSetArgs),

    /// Show a scope's own limit set (rates and budget).
    #[command(after_help = "Example:\n  chokepoint-policy limit get --team ml")]
    Get(TargetArgs),

    /// Remove a scope's whole limit set, rates and budget. The scope then falls back to
    /// its kind's default (`*`), if there is one.
    #[command(
        after_help = "Example:\n  chokepoint-policy limit delete --user 0190a6f2-7c1e-8b3a-9f00-1234567890ab"
    )]
    Delete(TargetArgs),

    /// List every limit set.
    #[command(after_help = "Example:\n  chokepoint-policy limit list --scope team")]
    List(ListArgs),
}

#[derive(Subcommand, Debug)]
pub enum BudgetCommand {
    /// Set a scope's budget, in dollars and/or tokens, per UTC day, per UTC month or per
    /// rolling window. Keeps the scope's rate limits. A request is refused once the
    /// budget's spend plus the worst case of the requests in flight would pass it.
    #[command(after_help = "\
Examples:
  chokepoint-policy budget set --team ml --usd 500 --period month
  chokepoint-policy budget set --user 0190a6f2-7c1e-8b3a-9f00-1234567890ab --usd 5 --period day
  chokepoint-policy budget set --cost-center cc-42 --tokens 2000000 --period rolling:24h
  chokepoint-policy budget set --team '*' --usd 100 --period month   # every team without its own")]
    Set(BudgetSetArgs),

    /// Show the budgets that apply to a scope, with what is spent, reserved by requests
    /// in flight, and left.
    #[command(after_help = "Example:\n  chokepoint-policy budget get --team ml")]
    Get(TargetArgs),

    /// Remove a scope's budget, keeping its rate limits.
    #[command(after_help = "Example:\n  chokepoint-policy budget delete --team ml")]
    Delete(TargetArgs),
}

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("rates").required(true).multiple(true).args(["rpm", "tpm"])))]
pub struct LimitSetArgs {
    #[command(flatten)]
    target: Target,

    /// Requests per window, or `off` to remove the limit.
    #[arg(long, value_name = "N|off", value_parser = parse_setting)]
    rpm: Option<Setting>,

    /// Tokens (input plus output) per window, or `off` to remove the limit.
    #[arg(long, value_name = "N|off", value_parser = parse_setting)]
    tpm: Option<Setting>,

    #[command(flatten)]
    remote: Remote,
}

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("amounts").required(true).multiple(true).args(["usd", "tokens"])))]
pub struct BudgetSetArgs {
    #[command(flatten)]
    target: Target,

    /// Budget in US dollars, e.g. 500 or 0.25.
    #[arg(long, value_name = "DOLLARS", value_parser = parse_usd)]
    usd: Option<u64>,

    /// Budget in tokens (input plus output).
    #[arg(long, value_name = "N", value_parser = parse_count)]
    tokens: Option<u64>,

    /// `day` or `month` (UTC calendar), or `rolling:<duration>` for the last so long,
    /// e.g. rolling:3600 (seconds), rolling:90m, rolling:24h, rolling:7d.
    #[arg(long, value_name = "PERIOD", value_parser = parse_period)]
    period: String,

    #[command(flatten)]
    remote: Remote,
}

#[derive(Args, Debug)]
pub struct TargetArgs {
    #[command(flatten)]
    target: Target,

    #[command(flatten)]
    remote: Remote,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Only this kind of scope.
    #[arg(long, value_name = "KIND")]
    scope: Option<ScopeKind>,

    #[command(flatten)]
    remote: Remote,
}

#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  chokepoint-policy usage --team ml                  # this month
  chokepoint-policy usage --team ml --period 2026-11
  chokepoint-policy usage --user 0190a6f2-7c1e-8b3a-9f00-1234567890ab --period 2026-11-25")]
pub struct UsageArgs {
    #[command(flatten)]
    target: Target,

    /// A UTC month (YYYY-MM) or day (YYYY-MM-DD); this month by default.
    #[arg(long, value_name = "PERIOD")]
    period: Option<String>,

    #[command(flatten)]
    remote: Remote,
}

#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  chokepoint-policy top --by cost
  chokepoint-policy top --by tokens --scope team --period 2026-11 --limit 20")]
pub struct TopArgs {
    /// What to rank by.
    #[arg(long, value_name = "WHAT", default_value = "cost")]
    by: RankBy,

    /// Which kind of scope to rank.
    #[arg(long, value_name = "KIND", default_value = "user")]
    scope: ScopeKind,

    /// A UTC month (YYYY-MM) or day (YYYY-MM-DD); this month by default.
    #[arg(long, value_name = "PERIOD")]
    period: Option<String>,

    /// How many to list (1 to 1000).
    #[arg(long, value_name = "N", default_value_t = 10)]
    limit: u64,

    #[command(flatten)]
    remote: Remote,
}

#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  chokepoint-policy spend --by client                        # this month, by tool
  chokepoint-policy spend --by session --period 2026-12-06 --limit 20
  chokepoint-policy spend --by session --id 1e6872d4-cb3a-4791-9ae1-32aa40e69098
  chokepoint-policy spend --by mcp-server                    # today's MCP requests
  chokepoint-policy spend --by mcp-tool --period 2026-12-06 --user 0190a6f2-7c1e-8b3a-9f00-1234567890ab")]
pub struct SpendArgs {
    /// Sum by the calling tool (`claude-code/2.1.332`) or by the agent's session id;
    /// or count MCP requests (and errors) of a day by server or by tool.
    #[arg(long, value_name = "WHAT")]
    by: SpendBy,

    /// A UTC month (YYYY-MM) or day (YYYY-MM-DD); this month by default, today for
    /// the MCP counts (kept per day).
    #[arg(long, value_name = "PERIOD")]
    period: Option<String>,

    /// Only this client, session, MCP server or MCP tool (`<server>/<tool>`).
    #[arg(long, value_name = "ID")]
    id: Option<String>,

    /// MCP counts only: one user's (by UUID), instead of everyone's.
    #[arg(long, value_name = "UUID")]
    user: Option<String>,

    /// How many rows to list, biggest spend first (1 to 10000).
    #[arg(long, value_name = "N", default_value_t = 20)]
    limit: u64,

    #[command(flatten)]
    remote: Remote,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpendBy {
    Client,
    Session,
    McpServer,
    McpTool,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScopeKind {
    User,
    #[value(alias = "tenant")]
    Team,
    #[value(alias = "cost_center")]
    CostCenter,
    Model,
    /// Limits only: MCP kinds have no spend to rank.
    #[value(alias = "mcp_server")]
    McpServer,
    #[value(alias = "mcp_tool")]
    McpTool,
}

impl ScopeKind {
    fn api(self) -> &'static str {
        match self {
            ScopeKind::User => "user",
            ScopeKind::Team => "tenant",
            ScopeKind::CostCenter => "cost_center",
            ScopeKind::Model => "model",
            ScopeKind::McpServer => "mcp_server",
            ScopeKind::McpTool => "mcp_tool",
        }
    }
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RankBy {
    /// Dollars spent.
    Cost,
    /// Input plus output tokens.
    Tokens,
}

/// A rate limit's new value, or its removal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setting {
    To(u64),
    Off,
}

/// 2^53, the service's largest limit.
const MAX_LIMIT: u64 = 1 << 53;

fn parse_count(text: &str) -> Result<u64, String> {
    let n: u64 = text
        .trim()
        .replace('_', "")
        .parse()
        .map_err(|_| format!("{text:?} is not a whole number"))?;
    if n > MAX_LIMIT {
        return Err(format!("{n} is more than the largest limit, 2^53"));
    }
    Ok(n)
}

fn parse_setting(text: &str) -> Result<Setting, String> {
    if text.eq_ignore_ascii_case("off") {
        Ok(Setting::Off)
    } else {
        parse_count(text).map(Setting::To)
    }
}

/// Dollars (`500`, `$0.25`, `1.000001`) as micro-dollars, exactly.
pub fn parse_usd(text: &str) -> Result<u64, String> {
    let bad = || format!("{text:?} is not an amount in dollars (e.g. 500 or 0.25)");
    let amount = text.trim().trim_start_matches('$').replace('_', "");
    let (whole, fraction) = amount.split_once('.').unwrap_or((&amount, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() && fraction.is_empty() || !digits(whole) || !digits(fraction) {
        return Err(bad());
    }
    if fraction.len() > 6 {
        return Err(format!("{text:?} has more than 6 decimals (micro-dollars)"));
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    let fraction: u64 = format!("{fraction:0<6}").parse().map_err(|_| bad())?;
    whole
        .checked_mul(1_000_000)
        .and_then(|micros| micros.checked_add(fraction))
        .filter(|micros| *micros <= MAX_LIMIT)
        .ok_or_else(|| format!("{text:?} is more than the largest budget"))
}

/// `day`, `month`, or `rolling:<n>[s|m|h|d]` as the API's `rolling:<secs>`.
pub fn parse_period(text: &str) -> Result<String, String> {
    let bad = || {
        format!(
            "{text:?} is not a period: use day, month (UTC calendar) or rolling:<duration> \
             such as rolling:3600, rolling:90m, rolling:24h, rolling:7d"
        )
    };
    match text {
        "day" | "month" => return Ok(text.to_owned()),
        _ => {}
    }
    let duration = text.strip_prefix("rolling:").ok_or_else(bad)?;
    let (number, unit) = match duration.char_indices().last() {
        Some((at, unit @ ('s' | 'm' | 'h' | 'd'))) => (&duration[..at], unit),
        _ => (duration, 's'),
    };
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let scale = match unit {
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => 1,
    };
    let secs = number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .filter(|secs| (1..=366 * 86_400).contains(secs))
        .ok_or_else(|| format!("{text:?}: a rolling window is 1 second to 366 days"))?;
    Ok(format!("rolling:{secs}"))
}

/// Runs an admin command; the exit code says whether it worked.
pub async fn run(command: Command) -> ExitCode {
    let outcome = match command {
        Command::Export(args) => return export::run(args).await,
        Command::Limit(command) => limit(command).await,
        Command::Budget(command) => budget(command).await,
        Command::Usage(args) => usage(args).await,
        Command::Top(args) => top(args).await,
        Command::Spend(args) => spend(args).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("chokepoint-policy: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The admin commands, as `main` hands them over.
pub enum Command {
    Limit(LimitCommand),
    Budget(BudgetCommand),
    Usage(UsageArgs),
    Top(TopArgs),
    Spend(SpendArgs),
    Export(export::ExportArgs),
}

fn limits_path(kind: &str, id: &str) -> String {
    format!("/v1/admin/limits/{kind}/{}", encode(id))
}

/// A scope's own set as a JSON object; empty when it has none.
async fn current_set(admin: &Admin, kind: &str, id: &str) -> Result<Map<String, Value>, String> {
    let (status, body) = admin
        .call(Method::GET, &limits_path(kind, id), None)
        .await?;
    match status {
        StatusCode::OK => Ok(body["limits"].as_object().cloned().unwrap_or_default()),
        StatusCode::NOT_FOUND if body["error"]["code"] != "not_found" => Ok(Map::new()),
        _ => Err(admin.refusal(status, &body)),
    }
}

/// Writes a scope's set back whole: `PUT`, or `DELETE` when nothing is left in it.
async fn store_set(
    admin: &Admin,
    kind: &str,
    id: &str,
    set: Map<String, Value>,
) -> Result<Option<Value>, String> {
    let path = limits_path(kind, id);
    if set.is_empty() {
        admin.ok(Method::DELETE, &path, None).await?;
        return Ok(None);
    }
    admin
        .ok(Method::PUT, &path, Some(&Value::Object(set)))
        .await
        .map(Some)
}

fn show(json: bool, body: &Value, summary: impl FnOnce() -> String) {
    if json {
        println!("{}", serde_json::to_string_pretty(body).unwrap_or_default());
    } else {
        print!("{}", summary());
    }
}

async fn limit(command: LimitCommand) -> Result<(), String> {
    match command {
        LimitCommand::Set(args) => {
            let admin = Admin::new(&args.remote)?;
            let (kind, id, said) = args.target.scope();
            let mut set = current_set(&admin, kind, id).await?;
            for (field, setting) in [("rpm", args.rpm), ("tpm", args.tpm)] {
                match setting {
                    Some(Setting::To(n)) => {
                        set.insert(field.to_owned(), Value::from(n));
                    }
                    Some(Setting::Off) => {
                        set.remove(field);
                    }
                    None => {}
                }
            }
            let stored = store_set(&admin, kind, id, set).await?;
            let body = stored.clone().unwrap_or(Value::Null);
            show(args.remote.json, &body, || {
                print::set_stored(&said, stored.as_ref())
            });
        }
        LimitCommand::Get(args) => {
            let admin = Admin::new(&args.remote)?;
            let (kind, id, said) = args.target.scope();
            let body = admin.ok(Method::GET, &limits_path(kind, id), None).await?;
            show(args.remote.json, &body, || {
                print::set_stored(&said, Some(&body))
            });
        }
        LimitCommand::Delete(args) => {
            let admin = Admin::new(&args.remote)?;
            let (kind, id, said) = args.target.scope();
            let body = admin
                .ok(Method::DELETE, &limits_path(kind, id), None)
                .await?;
            show(args.remote.json, &body, || {
                if body["deleted"] == true {
                    format!("removed the limits of {said}\n")
                } else {
                    format!("{said} had no limits of its own\n")
                }
            });
        }
        LimitCommand::List(args) => {
            let admin = Admin::new(&args.remote)?;
            let path = match args.scope {
                Some(scope) => format!("/v1/admin/limits?scope_kind={}", scope.api()),
                None => "/v1/admin/limits".to_owned(),
            };
            let body = admin.ok(Method::GET, &path, None).await?;
            show(args.remote.json, &body, || print::list(&body));
        }
    }
    Ok(())
}

async fn budget(command: BudgetCommand) -> Result<(), String> {
    match command {
        BudgetCommand::Set(args) => {
            let admin = Admin::new(&args.remote)?;
            let (kind, id, said) = args.target.scope();
            let mut set = current_set(&admin, kind, id).await?;
            for field in ["usd_micros", "tokens", "period"] {
                set.remove(field);
            }
            if let Some(micros) = args.usd {
                set.insert("usd_micros".to_owned(), Value::from(micros));
            }
            if let Some(tokens) = args.tokens {
                set.insert("tokens".to_owned(), Value::from(tokens));
            }
            set.insert("period".to_owned(), Value::from(args.period));
            let stored = store_set(&admin, kind, id, set).await?;
            let body = stored.clone().unwrap_or(Value::Null);
            show(args.remote.json, &body, || {
                print::set_stored(&said, stored.as_ref())
            });
        }
        BudgetCommand::Get(args) => {
            let admin = Admin::new(&args.remote)?;
            let (kind, id, said) = args.target.scope();
            if id == "*" {
                // A default has no spend of its own: show what it sets.
                let set = current_set(&admin, kind, id).await?;
                let body = Value::Object(set);
                show(args.remote.json, &body, || {
                    print::default_budget(&said, &body)
                });
                return Ok(());
            }
            let body = admin
                .ok(
                    Method::GET,
                    &format!("/v1/admin/spend?scope_kind={kind}&id={}", encode(id)),
                    None,
                )
                .await?;
            show(args.remote.json, &body, || print::budgets(&said, &body));
        }
        BudgetCommand::Delete(args) => {
            let admin = Admin::new(&args.remote)?;
            let (kind, id, said) = args.target.scope();
            let mut set = current_set(&admin, kind, id).await?;
            let removed: Vec<bool> = ["usd_micros", "tokens", "period"]
                .iter()
                .map(|field| set.remove(*field).is_some())
                .collect();
            let had = removed.contains(&true);
            if !had {
                return Err(format!("{said} has no budget of its own"));
            }
            let stored = store_set(&admin, kind, id, set).await?;
            let body = stored.clone().unwrap_or(Value::Null);
            show(args.remote.json, &body, || {
                format!(
                    "removed the budget of {said}\n{}",
                    print::set_stored(&said, stored.as_ref())
                )
            });
        }
    }
    Ok(())
}

async fn usage(args: UsageArgs) -> Result<(), String> {
    let admin = Admin::new(&args.remote)?;
    let (kind, id, said) = args.target.scope();
    let mut path = format!("/v1/admin/spend?scope_kind={kind}&id={}", encode(id));
    if let Some(period) = &args.period {
        path.push_str(&format!("&period={}", encode(period)));
    }
    let body = admin.ok(Method::GET, &path, None).await?;
    show(args.remote.json, &body, || print::usage(&said, &body));
    Ok(())
}

async fn top(args: TopArgs) -> Result<(), String> {
    let admin = Admin::new(&args.remote)?;
    let by = match args.by {
        RankBy::Cost => "cost_micros",
        RankBy::Tokens => "tokens",
    };
    let mut path = format!(
        "/v1/admin/top?scope_kind={}&by={by}&limit={}",
        args.scope.api(),
        args.limit
    );
    if let Some(period) = &args.period {
        path.push_str(&format!("&period={}", encode(period)));
    }
    let body = admin.ok(Method::GET, &path, None).await?;
    show(args.remote.json, &body, || print::top(&body));
    Ok(())
}

async fn spend(args: SpendArgs) -> Result<(), String> {
    let admin = Admin::new(&args.remote)?;
    let (by, mcp) = match args.by {
        SpendBy::Client => ("client", false),
        SpendBy::Session => ("session", false),
        SpendBy::McpServer => ("mcp_server", true),
        SpendBy::McpTool => ("mcp_tool", true),
    };
    if args.user.is_some() && !mcp {
        return Err("--user goes with --by mcp-server or --by mcp-tool".into());
    }
    // The API asks for the period; this UTC month by default, as the other commands,
    // and today for the MCP counts, which are kept per day.
    let period = args.period.clone().unwrap_or_else(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let today = chokepoint_policy::utc_date::Day::from_unix_ms(now);
        if mcp {
            today.to_string()
        } else {
            today.month().to_string()
        }
    });
    let mut path = format!("/v1/admin/usage?by={by}&period={}", encode(&period));
    if !mcp {
        path.push_str(&format!("&limit={}", args.limit));
    }
    if let Some(id) = &args.id {
        path.push_str(&format!("&id={}", encode(id)));
    }
    if let Some(user) = &args.user {
        path.push_str(&format!("&user={}", encode(user)));
    }
    let body = admin.ok(Method::GET, &path, None).await?;
    if mcp {
        show(args.remote.json, &body, || print::mcp_counts(&body));
    } else {
        show(args.remote.json, &body, || print::spend(&body));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dollars_exactly() {
        let cases = [
            ("500", Ok(500_000_000)),
            ("$500", Ok(500_000_000)),
            ("0.25", Ok(250_000)),
            (".5", Ok(500_000)),
            ("1.000001", Ok(1_000_001)),
            ("0", Ok(0)),
            ("1_000", Ok(1_000_000_000)),
            ("9007199254.740992", Ok(MAX_LIMIT)),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_usd(text), expected, "{text}");
        }
        for text in [
            "",
            ".",
            "-5",
            "5e3",
            "1.0000001",
            "1,5",
            "abc",
            "9007199254.740993",
            "99999999999999999999",
        ] {
            assert!(parse_usd(text).is_err(), "{text}");
        }
    }

    #[test]
    fn parses_periods_with_units() {
        let cases = [
            ("day", "day"),
            ("month", "month"),
            ("rolling:3600", "rolling:3600"),
            ("rolling:90m", "rolling:5400"),
            ("rolling:24h", "rolling:86400"),
            ("rolling:7d", "rolling:604800"),
            ("rolling:30s", "rolling:30"),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_period(text).as_deref(), Ok(expected), "{text}");
        }
        for text in [
            "week",
            "rolling:",
            "rolling:0",
            "rolling:h",
            "rolling:-1h",
            "rolling:367d",
            "rolling:1w",
            "Day",
        ] {
            assert!(parse_period(text).is_err(), "{text}");
        }
    }

    #[test]
    fn parses_rate_settings() {
        assert_eq!(parse_setting("60"), Ok(Setting::To(60)));
        assert_eq!(parse_setting("off"), Ok(Setting::Off));
        assert_eq!(parse_setting("OFF"), Ok(Setting::Off));
        assert!(parse_setting("-1").is_err());
        assert!(parse_setting("9007199254740993").is_err());
    }
}
