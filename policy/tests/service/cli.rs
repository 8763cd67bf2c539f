//! The admin CLI, as built, against a service running in this test: it round-trips
//! limits and budgets, passes the service's errors on, and explains itself.

use std::process::Output;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{
    authorize_request, new_user, usage_config, usage_for, RedisServer, Service, ADMIN_TOKEN,
};

const BIN: &str = env!("CARGO_BIN_EXE_chokepoint-policy");

/// Runs the CLI with a clean environment pointing at `service`.
async fn cli(service: &Service, token: &str, args: &[&str]) -> Output {
    tokio::process::Command::new(BIN)
        .args(args)
        .env_clear()
        .env("CHOKEPOINT_POLICY_ADMIN_URL", &service.admin_base)
        .env("CHOKEPOINT_ADMIN_TOKEN", token)
        .output()
        .await
        .expect("run chokepoint-policy")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs the CLI and expects success; its stdout.
async fn ok(service: &Service, args: &[&str]) -> String {
    let output = cli(service, ADMIN_TOKEN, args).await;
    assert!(
        output.status.success(),
        "{args:?}: {}\n{}",
        output.status,
        text(&output.stderr)
    );
    text(&output.stdout)
}

async fn stored(service: &Service, path: &str) -> Value {
    let (status, body) = service.admin(Method::GET, path, None).await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    body["limits"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_round_trips_budgets_and_limits() {
    let redis = RedisServer::start();
    let service = Service::start(usage_config(&redis)).await;
    let user = new_user();

    let out = ok(
        &service,
        &[
            "budget", "set", "--team", "ml", "--usd", "500", "--period", "month",
        ],
    )
    .await;
    assert!(out.starts_with("team ml (updated "), "{out}");
    assert!(out.contains("budget     $500.00 per UTC month"), "{out}");
    assert_eq!(
        stored(&service, "/v1/admin/limits/tenant/ml").await,
        json!({"usd_micros": 500_000_000, "period": "month"})
    );

    // Rates and budget are edited apart; each keeps the other.
    ok(&service, &["limit", "set", "--team", "ml", "--rpm", "600"]).await;
    ok(
        &service,
        &[
            "budget",
            "set",
            "--tenant",
            "ml",
            "--tokens",
            "2_000_000",
            "--period",
            "rolling:24h",
        ],
    )
    .await;
    assert_eq!(
        stored(&service, "/v1/admin/limits/tenant/ml").await,
        json!({"rpm": 600, "tokens": 2_000_000, "period": "rolling:86400"})
    );
    ok(
        &service,
        &[
            "limit",
            "set",
            "--user",
            &user.to_uppercase(),
            "--rpm",
            "60",
            "--tpm",
            "100000",
        ],
    )
    .await;
    ok(&service, &["limit", "set", "--user", &user, "--tpm", "off"]).await;
    assert_eq!(
        stored(&service, &format!("/v1/admin/limits/user/{user}")).await,
        json!({"rpm": 60})
    );
    ok(
        &service,
        &[
            "budget",
            "set",
            "--model",
            "openai/gpt-4o",
            "--usd",
            "0.25",
            "--period",
            "day",
        ],
    )
    .await;
    assert_eq!(
        stored(&service, "/v1/admin/limits/model/openai%2Fgpt-4o").await,
        json!({"usd_micros": 250_000, "period": "day"})
    );

    // Spend shows up in `budget get`, `usage` and `top`.
    let request = authorize_request(&user, "ml", 100, 1_000);
    service.authorize_body(&request).await;
    service
        .post_usage(&[usage_for(&request, 600, 400, 1_230_000)])
        .await;

    let out = ok(&service, &["budget", "get", "--team", "ml"]).await;
    assert!(out.contains("2000000 tokens per rolling 86400s"), "{out}");
    assert!(out.contains("spent      1000 tokens"), "{out}");
    assert!(out.contains("remaining  1999000 tokens"), "{out}");
    let json: Value =
        serde_json::from_str(&ok(&service, &["budget", "get", "--team", "ml", "--json"]).await)
            .expect("--json prints JSON");
    assert_eq!(
        json["budgets"][0]["name"], "tenant:tokens:rolling",
        "{json}"
    );
    assert_eq!(json["budgets"][0]["spent"], 1000, "{json}");

    let out = ok(&service, &["usage", "--team", "ml"]).await;
    assert!(
        out.contains("requests        1 (0 with estimated counts)"),
        "{out}"
    );
    assert!(out.contains("cost            $1.23"), "{out}");
    assert!(out.contains("tenant:rpm     1 of 600 used"), "{out}");
    let out = ok(&service, &["top", "--by", "cost"]).await;
    assert!(out.contains(&user), "{out}");
    assert!(out.contains("$1.23"), "{out}");
    let out = ok(
        &service,
        &["top", "--by", "tokens", "--scope", "team", "--limit", "5"],
    )
    .await;
    assert!(out.starts_with("top teams by tokens, "), "{out}");

    let out = ok(&service, &["limit", "list"]).await;
    for line in ["team ml", "model openai/gpt-4o", &format!("user {user}")] {
        assert!(out.lines().any(|l| l == line), "{line:?} in {out}");
    }
    let out = ok(&service, &["budget", "delete", "--team", "ml"]).await;
    assert!(out.starts_with("removed the budget of team ml"), "{out}");
    assert_eq!(
        stored(&service, "/v1/admin/limits/tenant/ml").await,
        json!({"rpm": 600})
    );
    let out = ok(&service, &["limit", "delete", "--team", "ml"]).await;
    assert_eq!(out, "removed the limits of team ml\n");

    // Defaults.
    ok(
        &service,
        &[
            "budget", "set", "--team", "*", "--usd", "100", "--period", "month",
        ],
    )
    .await;
    let out = ok(&service, &["budget", "get", "--team", "*"]).await;
    assert_eq!(
        out,
        "every team without limits of its own\n  budget     $100.00 per UTC month\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_passes_errors_on_and_exits_non_zero() {
    let redis = RedisServer::start();
    let service = Service::start(usage_config(&redis)).await;

    // (token, args, exit code, what stderr says)
    let cases: [(&str, &[&str], i32, &str); 6] = [
        (
            "wrong",
            &["budget", "get", "--team", "ml"],
            1,
            "the admin token is not valid (invalid_admin_token, HTTP 401)",
        ),
        (
            "",
            &["budget", "get", "--team", "ml"],
            1,
            "no admin token: set CHOKEPOINT_ADMIN_TOKEN",
        ),
        (
            ADMIN_TOKEN,
            &["limit", "get", "--team", "nobody"],
            1,
            "no limits are set for tenant:nobody (limits_not_found, HTTP 404)",
        ),
        (
            ADMIN_TOKEN,
            &["limit", "set", "--user", "alice", "--rpm", "5"],
            1,
            "id must be a UUID",
        ),
        (
            ADMIN_TOKEN,
            &[
                "budget", "set", "--team", "ml", "--usd", "5", "--period", "week",
            ],
            2,
            "\"week\" is not a period",
        ),
        (
            ADMIN_TOKEN,
            &["limit", "set", "--team", "ml", "--user", "x", "--rpm", "5"],
            2,
            "cannot be used with",
        ),
    ];
    for (token, args, code, needle) in cases {
        let output = cli(&service, token, args).await;
        assert_eq!(
            output.status.code(),
            Some(code),
            "{args:?}: {}",
            text(&output.stderr)
        );
        assert!(
            text(&output.stderr).contains(needle),
            "{args:?}: {}",
            text(&output.stderr)
        );
    }

    let mut unreachable = tokio::process::Command::new(BIN);
    unreachable
        .args(["usage", "--team", "ml", "--admin-url", "http://127.0.0.1:9"])
        .env_clear()
        .env("CHOKEPOINT_ADMIN_TOKEN", ADMIN_TOKEN);
    let output = unreachable.output().await.expect("run");
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("cannot reach the policy service at http://127.0.0.1:9"));

    // Pointed at the gateway listener, which has no admin API: every command says where
    // to point it instead (the read-modify-write of `limit set` too).
    for args in [
        &["usage", "--team", "ml"][..],
        &["limit", "set", "--team", "ml", "--rpm", "5"],
    ] {
        let output = tokio::process::Command::new(BIN)
            .args(args)
            .env_clear()
            .env("CHOKEPOINT_POLICY_ADMIN_URL", &service.base)
            .env("CHOKEPOINT_ADMIN_TOKEN", ADMIN_TOKEN)
            .output()
            .await
            .expect("run");
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains("(not_found, HTTP 404)")
                && stderr.contains("the service's admin listener (--admin-listen)"),
            "{args:?}: {stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_subcommand_explains_itself_with_an_example() {
    let redis = RedisServer::start();
    let service = Service::start(usage_config(&redis)).await;
    for args in [
        &["--help"][..],
        &["limit", "set", "--help"],
        &["limit", "get", "--help"],
        &["limit", "delete", "--help"],
        &["limit", "list", "--help"],
        &["budget", "set", "--help"],
        &["budget", "get", "--help"],
        &["budget", "delete", "--help"],
        &["usage", "--help"],
        &["top", "--help"],
        &["spend", "--help"],
    ] {
        let out = ok(&service, args).await;
        assert!(out.contains("chokepoint-policy "), "{args:?}: {out}");
        assert!(out.contains("Example"), "{args:?}: {out}");
        assert!(!out.contains(ADMIN_TOKEN), "--help never shows the token");
    }
}

/// `spend --by client|session` prints the audit stream's sums, biggest first, and a
/// session's row names its tool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_sums_spend_by_client_and_by_session() {
    let redis = RedisServer::start();
    let service = Service::start(usage_config(&redis)).await;
    let user = new_user();
    let session = "1e6872d4-cb3a-4791-9ae1-32aa40e69098";
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    let record = |id: &str, client: &str, cost: u64| {
        json!({"request_id": id, "user": user, "model": "claude-opus-5-5", "input_tokens": 100,
               "output_tokens": 10, "cost_micros": cost, "ts_ms": now, "client": client,
               "session": session})
    };
    let (status, body) = service
        .post_usage(&[
            record("c1", "claude-code/2.1.332", 1_230_000),
            record("c2", "claude-code/2.1.332", 770_000),
            record("x1", "codex/0.171.0", 5_000_000),
        ])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let out = ok(&service, &["spend", "--by", "client"]).await;
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("spend by client, "), "{out}");
    assert!(
        lines[1].contains("codex/0.171.0") && lines[1].contains("$5.00"),
        "{out}"
    );
    assert!(
        lines[2].contains("claude-code/2.1.332")
            && lines[2].contains("2 requests")
            && lines[2].contains("$2.00"),
        "{out}"
    );
    let out = ok(&service, &["spend", "--by", "session", "--id", session]).await;
    assert!(
        out.contains(session) && out.contains("3 requests") && out.contains("$7.00"),
        "{out}"
    );
    service.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_sets_mcp_limits_and_shows_mcp_counts() {
    let redis = RedisServer::start();
    let service = Service::start(usage_config(&redis)).await;
    let user = new_user();

    ok(
        &service,
        &[
            "limit",
            "set",
            "--mcp-tool",
            "everything/echo",
            "--rpm",
            "10",
        ],
    )
    .await;
    ok(
        &service,
        &["limit", "set", "--mcp-server", "*", "--rpm", "120"],
    )
    .await;
    assert_eq!(
        stored(&service, "/v1/admin/limits/mcp_tool/everything%2Fecho").await,
        json!({"rpm": 10})
    );
    let out = ok(&service, &["limit", "list"]).await;
    assert!(
        out.contains("MCP server * (every MCP server without limits of its own)"),
        "{out}"
    );
    assert!(out.contains("MCP tool everything/echo\n"), "{out}");
    // The service's refusal is passed on: MCP limits take rpm only.
    let refused = cli(
        &service,
        ADMIN_TOKEN,
        &["limit", "set", "--mcp-server", "everything", "--tpm", "5"],
    )
    .await;
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("tpm does not apply to mcp_server limits"),
        "{}",
        text(&refused.stderr)
    );

    // 2026-12-07T10:00:00Z
    let record = json!({"request_id": "cli-mcp-1", "user": user, "ts_ms": 1_796_637_600_000_u64,
        "mcp": {"server": "everything", "method": "tools/call", "name": "echo",
                "rpc_error": -32603}});
    let (status, answer) = service.post_usage(&[record]).await;
    assert_eq!(
        (status, &answer["accepted"]),
        (StatusCode::OK, &json!(1)),
        "{answer}"
    );
    let out = ok(
        &service,
        &[
            "spend",
            "--by",
            "mcp-tool",
            "--period",
            "2026-12-07",
            "--user",
            &user,
        ],
    )
    .await;
    assert_eq!(
        out,
        format!(
            "MCP requests by tool, 2026-12-07, user {user}\n  \
             everything/echo         1 requests       1 errors\n"
        )
    );
    let refused = cli(
        &service,
        ADMIN_TOKEN,
        &["spend", "--by", "client", "--user", &user],
    )
    .await;
    assert!(!refused.status.success());
}
