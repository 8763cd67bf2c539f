//! `chokepoint-policy serve`: binds the gateway and admin listeners, reports the bound
//! addresses, and runs the service until SIGINT or SIGTERM. The other subcommands
//! (`limit`, `budget`, `usage`, `top`, `spend`, `export`) are an admin CLI over a running
//! service's admin API (see `cli`).

mod cli;

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use chokepoint_policy::{
    publish, reconcile, run, stderr_log, ClusterConfig, Config, Listeners, RedisWait,
    SentinelConfig, DEFAULT_AUDIT_MAX_AGE, DEFAULT_AUDIT_MAX_LEN, MIN_GATEWAY_TOKEN_BYTES,
};
use clap::{Args, Parser, Subcommand};
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// How long in-flight requests may take to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[derive(Parser)]
#[command(
    name = "chokepoint-policy",
    version,
    about = "chokepoint policy service, and the admin CLI for its limits and budgets",
    after_help = "\
The admin commands talk to a running service's admin listener: set
CHOKEPOINT_POLICY_ADMIN_URL (default http://127.0.0.1:8082, the service's --admin-listen)
and CHOKEPOINT_ADMIN_TOKEN (the service's --admin-token).

Scopes: --user <uuid>, --team <tenant>, --cost-center <name>, --model <model key>; `*` as
the name sets the default for every scope of that kind without limits of its own. A model
key is the name the gateway keys a model under: its price entry (an exact name, or a family
glob such as 'claude-opus-5*'), an exact route, else `other`. A request must pass the
limits of its user, team, cost centre and model alike.

Examples:
  chokepoint-policy budget set --team ml --usd 500 --period month
  chokepoint-policy budget get --team ml
  chokepoint-policy limit set --user 0190a6f2-7c1e-8b3a-9f00-1234567890ab --rpm 60 --tpm 100000
  chokepoint-policy usage --team ml --period 2026-11
  chokepoint-policy top --by cost
  chokepoint-policy export --out /data/lake/chokepoint_usage"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the policy API: authorize and usage for the gateway on --listen, the admin
    /// API and metrics on --admin-listen.
    Serve(ServeArgs),
    /// Rate limits per user, team, cost centre or model: requests (rpm) and tokens
    /// (tpm) per rate window.
    #[command(subcommand)]
    Limit(cli::LimitCommand),
    /// Budgets per user, team, cost centre or model: dollars and/or tokens per UTC day,
    /// UTC month or rolling window.
    #[command(subcommand)]
    Budget(cli::BudgetCommand),
    /// What a user, team, cost centre or model used in a month or day, and where it
    /// stands against its budgets and rate limits.
    Usage(cli::UsageArgs),
    /// The biggest spenders of a month or day.
    Top(cli::TopArgs),
    /// Spend by calling tool (Claude Code, Codex, Gemini CLI, an SDK) or by agent
    /// session, from the audit stream.
    Spend(cli::SpendArgs),
    /// Write the audit stream of booked usage records as a lakehouse table: Parquet
    /// files by day (`<out>/date=YYYY-MM-DD/`), incrementally, each record once.
    Export(cli::export::ExportArgs),
    /// Turn access-log lines (the gateway's usage records) into the published record
    /// (OpenTelemetry GenAI names; contract/schema/published/usage-record.v1.json), one
    /// JSON object per line on stdout. A line that is no record is reported on stderr
    /// with its line number, and the exit status is then 1.
    Publish(PublishArgs),
    Reconcile(ReconcileArgs),
}

/// Book every record of Envoy's access log that the ledger has not seen (the records a
/// killed Envoy held in memory), through the service's usage endpoint with the gateway
/// token: idempotent by request id, so it may run any number of times.
#[derive(Args)]
#[command(after_help = "\
The gateway token (the one the filter sends, the service's CHOKEPOINT_POLICY_TOKEN) is
read from CHOKEPOINT_POLICY_TOKEN, or from --token-file; never from the command line.

Exit status: 0 every charged record is in the ledger; 3 done, but records were left out
(too old to book safely, refused by the ledger) or lines were not records; 1 failed (the
service unreachable after the retries, the token refused, the file unreadable); 2 bad
arguments.

Examples:
  chokepoint-policy reconcile --access-log /var/log/envoy/usage.log
  chokepoint-policy reconcile --access-log /var/log/envoy/usage.log --follow \\
      --state /var/lib/chokepoint/reconcile.json")]
struct ReconcileArgs {
    /// Envoy's usage access log (`audit.access_log`): one JSON record per line.
    #[arg(long, value_name = "PATH")]
    access_log: PathBuf,

    /// The policy service's gateway listener (its --listen), where the filter books.
    #[arg(
        long,
        env = "CHOKEPOINT_POLICY_URL",
        default_value = "http://127.0.0.1:8081",
        value_name = "URL"
    )]
    policy_url: String,

    /// A file holding the gateway token (a mounted Secret), instead of
    /// CHOKEPOINT_POLICY_TOKEN.
    #[arg(long, value_name = "PATH")]
    token_file: Option<PathBuf>,

    /// Where to keep the checkpoint (file identity, offset, line), so that the next run
    /// resumes after the last acknowledged batch. Without it the whole file is read.
    #[arg(long, value_name = "PATH")]
    state: Option<PathBuf>,

    /// Keep reading as Envoy appends, through rotation and truncation, until SIGTERM.
    #[arg(long)]
    follow: bool,

    /// How long the service remembers a booked request id (its --usage-dedupe-secs;
    /// checked against its /healthz). Older records are not booked: they could be charged
    /// twice.
    #[arg(long, default_value_t = 604_800, value_parser = clap::value_parser!(u64).range(1..))]
    dedupe_window_secs: u64,

    /// Records per batch, at most.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=1000))]
    batch_records: u64,

    /// Bytes of records per batch, at most (the service refuses bodies over 1 MiB).
    #[arg(long, default_value_t = 512 * 1024, value_parser = clap::value_parser!(u64).range(1024..=1_000_000))]
    batch_bytes: u64,

    /// Attempts per batch while the service is unreachable or answers 5xx, with backoff
    /// (0.5 s doubling to 30 s). With --follow: until it answers.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    attempts: u32,

    /// With --follow, how often the file is looked at when it has nothing new.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    poll_ms: u64,
}

#[derive(Args)]
struct PublishArgs {
    /// The access log to read; standard input when absent.
    file: Option<PathBuf>,
}

#[derive(Args)]
struct ServeArgs {
    /// The gateway listener: /v1/authorize and /v1/usage (gateway token required) and
    /// /healthz, where Envoy's policy cluster points. Port 0 picks a free port (see
    /// --addr-file).
    #[arg(long, default_value = "127.0.0.1:8081")]
    listen: String,

    /// The admin listener: /v1/admin/* (admin token required), /metrics and /healthz.
    /// Keep it off the gateway's network. Port 0 picks a free port (see
    /// --admin-addr-file).
    #[arg(long, default_value = "127.0.0.1:8082")]
    admin_listen: String,

    /// The secret the gateway sends as `Authorization: Bearer` on every authorize and
    /// usage call: the value of the variable the filter's policy.token_env names in
    /// Envoy's environment. At least 32 bytes; required. Prefer the environment
    /// variable: a command line is visible to other local users.
    // hide_env_values: --help must not print the token.
    #[arg(long, env = "CHOKEPOINT_POLICY_TOKEN", hide_env_values = true)]
    gateway_token: Option<String>,

    /// Redis URL: redis://host:port[/db] or unix:///path/to/redis.sock (default
    /// redis://127.0.0.1:6379). Not with --redis-sentinels or --redis-cluster-nodes.
    // hide_env_values: the URL may carry a password, and --help must not print it.
    #[arg(long, env = "CHOKEPOINT_REDIS_URL", hide_env_values = true)]
    redis: Option<String>,

    /// Follow the primary these sentinels name instead of one Redis: host:port,host:port,…
    /// (with --redis-master-name).
    #[arg(long, env = "CHOKEPOINT_REDIS_SENTINELS", value_name = "HOST:PORT,...")]
    redis_sentinels: Option<String>,

    /// Talk to a Redis Cluster instead of one Redis: seed nodes host:port,host:port,…
    /// (one reachable seed is enough; the rest are learnt from it). Not with
    /// --redis-sentinels or --redis-wait-replicas.
    #[arg(
        long,
        env = "CHOKEPOINT_REDIS_CLUSTER_NODES",
        value_name = "HOST:PORT,..."
    )]
    redis_cluster_nodes: Option<String>,

    /// The name the sentinels monitor the primary under.
    #[arg(long, env = "CHOKEPOINT_REDIS_MASTER_NAME", value_name = "NAME")]
    redis_master_name: Option<String>,

    /// With --redis-sentinels or --redis-cluster-nodes: the ACL user on the primary (or on
    /// every cluster node); the default user if absent.
    #[arg(long, env = "CHOKEPOINT_REDIS_USERNAME")]
    redis_username: Option<String>,

    /// With --redis-sentinels or --redis-cluster-nodes: a file holding the primary's (or
    /// the cluster nodes') password (one line), or the password itself in
    /// CHOKEPOINT_REDIS_PASSWORD. (With --redis it goes in the URL.)
    #[arg(long, value_name = "FILE")]
    redis_password_file: Option<PathBuf>,

    /// A file holding the sentinels' password (one line), or the password itself in
    /// CHOKEPOINT_REDIS_SENTINEL_PASSWORD.
    #[arg(long, value_name = "FILE")]
    redis_sentinel_password_file: Option<PathBuf>,

    /// After each usage batch, wait until this many replicas hold it (Redis WAIT), else
    /// answer 503 so the gateway sends it again: bounds what a failover can lose. 0: off.
    #[arg(long, default_value_t = 0)]
    redis_wait_replicas: u32,

    /// Longest WAIT, in milliseconds; shorter than --redis-timeout-ms.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    redis_wait_timeout_ms: u64,

    /// Requests one user may make per rate window when no limit set (the user's own,
    /// or the `user:*` default) has an rpm.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    requests_per_window: u64,

    /// Rate window in seconds: every rpm and tpm limit counts over it.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    window_secs: u64,

    /// How long a request's budget reservation counts when its usage never arrives,
    /// in seconds (at most a day).
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    reservation_ttl_secs: u64,

    /// Longest wait for any Redis round trip before answering 503.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    redis_timeout_ms: u64,

    /// Bearer token for the admin endpoints (/v1/admin/*); without one they answer 403.
    /// Prefer the environment variable: a command line is visible to other local users.
    // hide_env_values: --help must not print the token.
    #[arg(long, env = "CHOKEPOINT_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,

    /// How long a booked usage record's request id is remembered, in seconds; the
    /// filter's retries of a record within it are counted once.
    #[arg(long, default_value_t = 604_800, value_parser = clap::value_parser!(u64).range(1..))]
    usage_dedupe_secs: u64,

    /// About how many entries the audit stream of booked usage records (ck:usage:log)
    /// and the stream of refused ones (ck:usage:dead) each keep.
    #[arg(long, default_value_t = DEFAULT_AUDIT_MAX_LEN, value_parser = clap::value_parser!(u64).range(1..))]
    audit_max_len: u64,

    /// About how old, in seconds, an entry of those streams may grow before it goes
    /// (default 30 days), whatever their length.
    #[arg(long, default_value_t = DEFAULT_AUDIT_MAX_AGE.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    audit_max_age_secs: u64,

    /// Whether booked usage records are logged, one entry each, in the audit stream
    /// (ck:usage:log): on or off. Off saves Redis an entry per record; the gateway's
    /// access log is then the audit trail, and the audit export and spend by client or
    /// by session answer that the stream is off.
    #[arg(long, default_value = "on", value_parser = on_off)]
    usage_audit_stream: bool,

    /// After binding, write the gateway listener's bound address (e.g. 127.0.0.1:40123)
    /// to this file, atomically, so a supervisor can use --listen with port 0 without
    /// port races.
    #[arg(long)]
    addr_file: Option<PathBuf>,

    /// The same for the admin listener (--admin-listen).
    #[arg(long)]
    admin_addr_file: Option<PathBuf>,

    /// Limit sets to write at start, as `chokepoint-config render` writes them from the
    /// policy file (`{"user:*": {"rpm": 60}}`). Sets it does not name are untouched.
    #[arg(long, value_name = "FILE")]
    limits: Option<PathBuf>,

    /// The issuers whose company JWTs identify a viewer of the service's pages, and the
    /// groups that see everything, as `chokepoint-config render` writes them from the
    /// policy file. The gateway's UUID salt must be in the variable it names (default
    /// CHOKEPOINT_UUID_SALT). Without it only the admin token is a viewer.
    #[arg(long, value_name = "FILE")]
    identity: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let admin = match cli.command {
        Command::Serve(args) => return serve_until_stopped(args),
        Command::Limit(command) => cli::Command::Limit(command),
        Command::Budget(command) => cli::Command::Budget(command),
        Command::Usage(args) => cli::Command::Usage(args),
        Command::Top(args) => cli::Command::Top(args),
        Command::Spend(args) => cli::Command::Spend(args),
        Command::Export(args) => cli::Command::Export(args),
        Command::Publish(args) => return publish(args),
        Command::Reconcile(args) => return reconcile(args),
    };
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(cli::run(admin)),
        Err(err) => {
            eprintln!("chokepoint-policy: cannot start the async runtime: {err}");
            ExitCode::FAILURE
        }
    }
}

fn publish(args: PublishArgs) -> ExitCode {
    let stdout = std::io::stdout().lock();
    let stderr = std::io::stderr().lock();
    let outcome = match &args.file {
        Some(path) => match std::fs::File::open(path) {
            Ok(file) => publish::run(
                &path.display().to_string(),
                std::io::BufReader::new(file),
                stdout,
                stderr,
            ),
            Err(err) => {
                eprintln!("chokepoint-policy publish: {}: {err}", path.display());
                return ExitCode::FAILURE;
            }
        },
        None => publish::run("stdin", std::io::stdin().lock(), stdout, stderr),
    };
    match outcome {
        Ok(o) if o.rejected == 0 => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("chokepoint-policy publish: {err}");
            ExitCode::FAILURE
        }
    }
}

fn reconcile(args: ReconcileArgs) -> ExitCode {
    stderr_log::install(log::Level::Info);
    let token = match gateway_token(args.token_file.as_deref()) {
        Ok(token) => token,
        Err(message) => {
            log::error!("{message}");
            return ExitCode::from(2);
        }
    };
    let opts = reconcile::Options {
        access_log: args.access_log,
        state: args.state,
        follow: args.follow,
        dedupe_window: Duration::from_secs(args.dedupe_window_secs),
        batch_records: args.batch_records as usize,
        batch_bytes: args.batch_bytes as usize,
        poll: Duration::from_millis(args.poll_ms),
    };
    let attempts = (!args.follow).then_some(args.attempts);
    let ledger = match reconcile::Ledger::new(&args.policy_url, token, attempts) {
        Ok(ledger) => ledger,
        Err(message) => {
            log::error!("{message}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            log::error!("cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        if let Err(message) = reconcile::check_service(&opts, &ledger).await {
            log::error!("{message}");
            return ExitCode::FAILURE;
        }
        let (summary, outcome) = reconcile::run(&opts, &ledger, wait_for_signal()).await;
        log::info!("{summary}");
        match outcome {
            Err(message) => {
                log::error!("{message}");
                ExitCode::FAILURE
            }
            Ok(()) if summary.left_out() => ExitCode::from(3),
            Ok(()) => ExitCode::SUCCESS,
        }
    })
}

/// The gateway token from `file` (a mounted Secret), else from CHOKEPOINT_POLICY_TOKEN.
fn gateway_token(file: Option<&Path>) -> Result<String, String> {
    let token = match file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|err| format!("cannot read --token-file {}: {err}", path.display()))?
            .trim()
            .to_owned(),
        None => std::env::var("CHOKEPOINT_POLICY_TOKEN")
            .unwrap_or_default()
            .trim()
            .to_owned(),
    };
    if token.len() < MIN_GATEWAY_TOKEN_BYTES {
        return Err(format!(
            "no gateway token: set CHOKEPOINT_POLICY_TOKEN (or --token-file) to the token the \
             filter sends the policy service, at least {MIN_GATEWAY_TOKEN_BYTES} bytes"
        ));
    }
    Ok(token)
}

fn serve_until_stopped(args: ServeArgs) -> ExitCode {
    stderr_log::install(log::Level::Info);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            log::error!("cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            log::error!("{message}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    let redis_cluster = cluster_config(&args)?;
    let redis_sentinel = match redis_cluster {
        Some(_) => None,
        None => sentinel_config(&args)?,
    };
    let Some(gateway_token) = args.gateway_token else {
        return Err(format!(
            "no gateway token: set CHOKEPOINT_POLICY_TOKEN (or pass --gateway-token) to the \
             secret Envoy's filter sends on every call, at least {MIN_GATEWAY_TOKEN_BYTES} bytes \
             (e.g. `openssl rand -hex 32`), in the environment of both"
        ));
    };
    let seed_limits = match &args.limits {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
            chokepoint_policy::seed_limits::parse(&text)
                .map_err(|err| format!("{}: {err}", path.display()))?
        }
        None => Vec::new(),
    };
    let identity = match &args.identity {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
            chokepoint_policy::viewer::ViewerConfig::parse(&text)
                .map_err(|err| format!("{}: {err}", path.display()))?
        }
        None => chokepoint_policy::viewer::ViewerConfig::admin_token_only(),
    };
    if redis_sentinel.is_some() && args.redis.is_some() {
        return Err(
            "--redis (CHOKEPOINT_REDIS_URL) and --redis-sentinels (CHOKEPOINT_REDIS_SENTINELS): \
             set one of them"
                .to_owned(),
        );
    }
    if redis_cluster.is_some() && args.redis_wait_replicas > 0 {
        return Err(
            "--redis-wait-replicas: not with --redis-cluster-nodes (WAIT counts the replicas of \
             one node, and a usage batch writes to several primaries)"
                .to_owned(),
        );
    }
    let config = Config {
        identity,
        seed_limits,
        redis_cluster,
        redis_url: args
            .redis
            .clone()
            .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned()),
        redis_sentinel,
        redis_wait: (args.redis_wait_replicas > 0).then(|| RedisWait {
            replicas: args.redis_wait_replicas,
            timeout: Duration::from_millis(args.redis_wait_timeout_ms),
        }),
        requests_per_window: args.requests_per_window,
        window: Duration::from_secs(args.window_secs),
        reservation_ttl: Duration::from_secs(args.reservation_ttl_secs),
        redis_timeout: Duration::from_millis(args.redis_timeout_ms),
        admin_token: args.admin_token,
        gateway_token: Some(gateway_token),
        usage_dedupe_window: Duration::from_secs(args.usage_dedupe_secs),
        audit_max_len: args.audit_max_len,
        audit_max_age: Duration::from_secs(args.audit_max_age_secs),
        usage_audit_stream: args.usage_audit_stream,
        ..Config::default()
    };
    // Before binding: a supervisor waiting for the address files must see the service
    // exit, not a port that never answers.
    config.validate().map_err(|err| err.to_string())?;
    // The identity file's secrets (the UUID salt, HMAC secrets) are checked here too.
    chokepoint_policy::viewer::Viewers::new(
        config.identity.clone(),
        config.admin_token.as_deref(),
        |name| std::env::var(name).ok(),
    )
    .map_err(|err| err.to_string())?;

    let listeners = Listeners {
        gateway: bind(&args.listen, args.addr_file.as_deref()).await?,
        admin: bind(&args.admin_listen, args.admin_addr_file.as_deref()).await?,
    };
    let signalled = Arc::new(Notify::new());
    let shutdown = {
        let signalled = signalled.clone();
        async move {
            wait_for_signal().await;
            signalled.notify_one();
        }
    };
    // Graceful shutdown waits for every open request; a stuck client must not keep the
    // process alive past what a supervisor expects.
    let deadline = async {
        signalled.notified().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        result = run(listeners, config, shutdown) => result.map_err(|err| err.to_string()),
        () = deadline => {
            log::warn!("requests still open {} s after the shutdown signal; exiting anyway", SHUTDOWN_GRACE.as_secs());
            Ok(())
        }
    }
}

/// The cluster settings, when --redis-cluster-nodes is given; errors name the flag.
fn cluster_config(args: &ServeArgs) -> Result<Option<ClusterConfig>, String> {
    let Some(nodes) = &args.redis_cluster_nodes else {
        return Ok(None);
    };
    for (given, flag) in [
        (args.redis.is_some(), "--redis (CHOKEPOINT_REDIS_URL)"),
        (
            args.redis_sentinels.is_some(),
            "--redis-sentinels (CHOKEPOINT_REDIS_SENTINELS)",
        ),
        (args.redis_master_name.is_some(), "--redis-master-name"),
        (
            args.redis_sentinel_password_file.is_some(),
            "--redis-sentinel-password-file",
        ),
    ] {
        if given {
            return Err(format!(
                "{flag} and --redis-cluster-nodes (CHOKEPOINT_REDIS_CLUSTER_NODES): set one of them"
            ));
        }
    }
    let nodes = SentinelConfig::parse_addresses(nodes)
        .map_err(|why| format!("--redis-cluster-nodes{why}"))?;
    Ok(Some(ClusterConfig {
        nodes,
        username: args.redis_username.clone(),
        password: secret(
            args.redis_password_file.as_deref(),
            "CHOKEPOINT_REDIS_PASSWORD",
            "--redis-password-file",
        )?,
    }))
}

/// The Sentinel settings, when --redis-sentinels is given; errors name the flag.
fn sentinel_config(args: &ServeArgs) -> Result<Option<SentinelConfig>, String> {
    let Some(addresses) = &args.redis_sentinels else {
        for (given, flag, needs) in [
            (
                args.redis_master_name.is_some(),
                "--redis-master-name",
                "--redis-sentinels",
            ),
            (
                args.redis_username.is_some(),
                "--redis-username",
                "--redis-sentinels or --redis-cluster-nodes",
            ),
            (
                args.redis_password_file.is_some(),
                "--redis-password-file",
                "--redis-sentinels or --redis-cluster-nodes",
            ),
            (
                args.redis_sentinel_password_file.is_some(),
                "--redis-sentinel-password-file",
                "--redis-sentinels",
            ),
        ] {
            if given {
                return Err(format!("{flag} needs {needs}"));
            }
        }
        return Ok(None);
    };
    let addresses = SentinelConfig::parse_addresses(addresses)
        .map_err(|why| format!("--redis-sentinels{why}"))?;
    let Some(master_name) = args.redis_master_name.clone() else {
        return Err(
            "--redis-master-name (CHOKEPOINT_REDIS_MASTER_NAME): required with --redis-sentinels"
                .to_owned(),
        );
    };
    Ok(Some(SentinelConfig {
        addresses,
        master_name,
        sentinel_password: secret(
            args.redis_sentinel_password_file.as_deref(),
            "CHOKEPOINT_REDIS_SENTINEL_PASSWORD",
            "--redis-sentinel-password-file",
        )?,
        redis_username: args.redis_username.clone(),
        redis_password: secret(
            args.redis_password_file.as_deref(),
            "CHOKEPOINT_REDIS_PASSWORD",
            "--redis-password-file",
        )?,
    }))
}

/// A password from its file (first line, so a trailing newline is no part of it) or
/// its environment variable; both set is an error. Errors never hold the password.
fn secret(file: Option<&Path>, env: &str, flag: &str) -> Result<Option<String>, String> {
    let from_env = std::env::var(env).ok();
    match (file, from_env) {
        (Some(_), Some(_)) => Err(format!("{flag} and {env}: set one of them")),
        (Some(path), None) => {
            let text = std::fs::read_to_string(path)
                .map_err(|err| format!("{flag}: cannot read {}: {err}", path.display()))?;
            Ok(Some(text.lines().next().unwrap_or_default().to_owned()))
        }
        (None, from_env) => Ok(from_env),
    }
}

/// Binds `address` and, with `addr_file`, reports the bound address there.
async fn bind(address: &str, addr_file: Option<&Path>) -> Result<TcpListener, String> {
    let listener = TcpListener::bind(address)
        .await
        .map_err(|err| format!("cannot listen on {address}: {}", describe(&err)))?;
    let bound = listener
        .local_addr()
        .map_err(|err| format!("cannot read the bound address: {err}"))?;
    if let Some(path) = addr_file {
        write_atomically(path, &bound.to_string())
            .map_err(|err| format!("cannot write {}: {err}", path.display()))?;
    }
    Ok(listener)
}

/// `io::Error`'s own text ends in "(os error 98)"; operators want the reason alone.
fn describe(err: &io::Error) -> String {
    match err.kind() {
        io::ErrorKind::AddrInUse => "address already in use".to_owned(),
        io::ErrorKind::AddrNotAvailable => "address not available on this host".to_owned(),
        io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => err.to_string(),
    }
}

/// A reader polling the file sees either nothing or the whole address, never a
/// partial write.
fn write_atomically(path: &Path, contents: &str) -> io::Result<()> {
    let mut tmp = OsString::from(path.as_os_str());
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, contents)?;
    std::fs::rename(&tmp, path)
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};

    let terminate = async {
        match signal(SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(err) => {
                log::warn!("cannot watch SIGTERM ({err}); only SIGINT stops the service");
                std::future::pending::<()>().await;
            }
        }
    };
    let name = tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        () = terminate => "SIGTERM",
    };
    log::info!("{name} received; finishing what is under way");
}

/// `on` or `off`, as a flag's value.
fn on_off(value: &str) -> Result<bool, String> {
    match value {
        "on" => Ok(true),
        "off" => Ok(false),
        other => Err(format!("expected on or off, not {other:?}")),
    }
}
