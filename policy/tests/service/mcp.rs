//! MCP requests (`AuthorizeRequest.mcp`, `UsageRecord.mcp`): checked only against the
//! caller's own `mcp_server:` and `mcp_tool:` windows, most specific set first; leases as
//! for models; records counted per day by user, server and tool, not booked as spend.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{new_user, percent_encode, usage_config, RedisServer, Service, ADMIN_TOKEN};

fn mcp_request(user: &str, id: &str, server: &str, tool: Option<&str>) -> Value {
    let mut mcp = json!({"server": server});
    if let Some(tool) = tool {
        mcp["tool"] = json!(tool);
    }
    json!({"request_id": id, "user": user, "tenant": "acme", "groups": ["eng"], "mcp": mcp})
}

/// Authorizes `n` calls of `tool` on `server` for `user`; how many were allowed, and
/// the last answer.
async fn calls(
    service: &Service,
    user: &str,
    server: &str,
    tool: Option<&str>,
    n: usize,
) -> (usize, Value) {
    let mut allowed = 0;
    let mut last = Value::Null;
    for i in 0..n {
        let id = format!("{user}-{server}-{}-{i}", tool.unwrap_or("-"));
        let (status, body) = service
            .authorize_body(&mcp_request(user, &id, server, tool))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if body["allow"] == true {
            allowed += 1;
        }
        last = body;
    }
    (allowed, last)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_limits_are_each_users_most_specific_set_first() {
    let redis = RedisServer::start();
    // A user fallback of 1 rpm: MCP requests never take the user's window.
    let mut config = usage_config(&redis);
    config.requests_per_window = 1;
    let service = Service::start(config).await;
    service
        .set_limits("mcp_tool", "everything/echo", json!({"rpm": 3}))
        .await;
    service
        .set_limits("mcp_tool", "everything/*", json!({"rpm": 2}))
        .await;
    service.set_limits("mcp_tool", "*", json!({"rpm": 4})).await;
    service
        .set_limits("mcp_server", "*", json!({"rpm": 50}))
        .await;
    service
        .set_limits("mcp_server", "quiet", json!({"rpm": 1}))
        .await;

    // (server, tool, calls, allowed, the limit that denies the last)
    let cases = [
        ("everything", Some("echo"), 5, 3, Some("mcp_tool:rpm")),
        ("everything", Some("add"), 5, 2, Some("mcp_tool:rpm")),
        ("github", Some("create_issue"), 5, 4, Some("mcp_tool:rpm")),
        ("quiet", None, 3, 1, Some("mcp_server:rpm")),
        ("quiet", Some("x"), 1, 0, Some("mcp_server:rpm")),
        ("unlimited-ish", None, 6, 6, None),
    ];
    for user in [new_user(), new_user()] {
        for (server, tool, n, want, denied_by) in cases {
            let (allowed, last) = calls(&service, &user, server, tool, n).await;
            assert_eq!(allowed, want, "{server} {tool:?}: {last}");
            match denied_by {
                Some(name) => {
                    assert_eq!(last["allow"], false, "{last}");
                    assert_eq!(last["limit_name"], name, "{last}");
                    assert_eq!(last["reason"], "rate_limited", "{last}");
                    let retry = last["retry_after_ms"].as_u64().unwrap_or_default();
                    assert!((1..=60_000).contains(&retry), "{last}");
                }
                None => assert_eq!(last["allow"], true, "{last}"),
            }
        }
    }
    // The message says whose limit it is, per user.
    let user = new_user();
    let (_, last) = calls(&service, &user, "everything", Some("echo"), 4).await;
    assert_eq!(
        last["message"], "MCP tool everything/echo's per-user request limit of 3 per 60s reached",
        "{last}"
    );
    // An allowed tool call reports both of its windows.
    let (_, first) = calls(&service, &new_user(), "github", Some("x"), 1).await;
    let names: Vec<&str> = first["limits"]
        .as_array()
        .map(|l| l.iter().filter_map(|l| l["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, ["mcp_server:rpm", "mcp_tool:rpm"], "{first}");
    assert_eq!(
        first["remaining"], 3,
        "the tightest: 3 of the tool's 4 left: {first}"
    );

    // No MCP limit at all: allowed, no limits named.
    service
        .admin(Method::DELETE, "/v1/admin/limits/mcp_server/*", None)
        .await;
    let (allowed, last) = calls(&service, &new_user(), "open", None, 3).await;
    assert_eq!((allowed, &last["limits"]), (3, &json!([])), "{last}");

    // The windows are each user's: one per user and scope, nothing shared.
    let mut conn = redis.connection().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("ck:rate:mcp_tool:{{{user}:*"))
        .query_async(&mut conn)
        .await
        .expect("KEYS");
    assert_eq!(
        keys,
        [format!("ck:rate:mcp_tool:{{{user}:everything/echo}}")]
    );
    let shared: Vec<String> = redis::cmd("KEYS")
        .arg("ck:rate:mcp_*:{everything*")
        .query_async(&mut conn)
        .await
        .expect("KEYS");
    assert!(shared.is_empty(), "{shared:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_takes_slots_in_the_users_mcp_windows_and_gives_them_back() {
    let redis = RedisServer::start();
    let service = Service::start(usage_config(&redis)).await;
    service
        .set_limits("mcp_tool", "everything/echo", json!({"rpm": 40}))
        .await;
    let user = new_user();
    let mut request = mcp_request(&user, "lease-1", "everything", Some("echo"));
    request["lease_slots"] = json!(16);
    request["lease_return_ms"] = json!(2000);
    let (status, body) = service.authorize_body(&request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["slots"], 10, "a quarter of the 40 left: {body}");
    assert_eq!(body["remaining"], 30, "{body}");

    // A renewal carries the same scope; the window holds both leases' slots.
    let mut renewal = mcp_request(&user, "lease-2", "everything", Some("echo"));
    renewal["lease_slots"] = json!(16);
    let (_, body) = service.authorize_body(&renewal).await;
    assert_eq!(
        (&body["slots"], &body["remaining"]),
        (&json!(7), &json!(23)),
        "{body}"
    );

    // Slot 2 is used (its record settles it), slots 3..10 come back unused.
    let record = json!({"request_id": "call-2", "reservation_id": "lease-1.2", "user": user,
        "format": "mcp", "mcp": {"server": "everything", "method": "tools/call", "name": "echo",
        "bytes_in": 120, "bytes_out": 300}});
    let releases: Vec<String> = (3..=10).map(|i| format!("lease-1.{i}")).collect();
    let (status, answer) = service
        .post_usage_raw(&json!({"records": [record], "releases": releases}).to_string())
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        (&answer["accepted"], &answer["released"]),
        (&json!(1), &json!(8)),
        "{answer}"
    );
    let (_, body) = service
        .authorize_body(&mcp_request(&user, "after", "everything", Some("echo")))
        .await;
    assert_eq!(body["remaining"], 40 - 17 + 8 - 1, "{body}");
}

async fn mcp_usage(service: &Service, query: &[(&str, &str)]) -> Value {
    let response = service.admin_usage(Some(ADMIN_TOKEN), query).await;
    let status = response.status();
    let body: Value = response.json().await.expect("json");
    assert_eq!(status, StatusCode::OK, "{query:?}: {body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_records_are_counted_per_user_server_and_tool_not_booked_as_spend() {
    let redis = RedisServer::start();
    let service = Service::start(usage_config(&redis)).await;
    let (alice, bob) = (new_user(), new_user());
    // 2026-12-07T10:00:00Z
    let ts = 1_796_637_600_000_u64;
    let record = |id: &str, user: &str, mcp: Value| {
        json!({"request_id": id, "user": user, "tenant": "acme", "format": "mcp",
               "ts_ms": ts, "status": 200, "mcp": mcp})
    };
    let call = |tool: &str| json!({"server": "everything", "method": "tools/call", "name": tool});
    let records = [
        record(
            "m1",
            &alice,
            json!({"server": "everything", "method": "initialize"}),
        ),
        record("m2", &alice, call("echo")),
        record(
            "m3",
            &alice,
            json!({"server": "everything", "method": "tools/call",
            "name": "echo", "tool_error": true}),
        ),
        record(
            "m4",
            &bob,
            json!({"server": "everything", "method": "tools/call",
            "name": "add", "rpc_error": -32602}),
        ),
        record(
            "m5",
            &bob,
            json!({"server": "github", "method": "resources/read",
            "name": "repo://x"}),
        ),
        // A retry of m2: counted once.
        record("m2", &alice, call("echo")),
    ];
    let (status, answer) = service.post_usage(&records).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        (&answer["accepted"], &answer["duplicates"]),
        (&json!(5), &json!(1)),
        "{answer}"
    );

    let day = "2026-12-07";
    // (by, user, id, rows as (id, requests, errors))
    type Case<'a> = (
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
        Vec<(&'a str, u64, u64)>,
    );
    let cases: [Case; 6] = [
        (
            "mcp_server",
            None,
            None,
            vec![("everything", 4, 2), ("github", 1, 0)],
        ),
        (
            "mcp_tool",
            None,
            None,
            vec![("everything/echo", 2, 1), ("everything/add", 1, 1)],
        ),
        ("mcp_server", Some(&alice), None, vec![("everything", 3, 1)]),
        ("mcp_tool", Some(&bob), None, vec![("everything/add", 1, 1)]),
        (
            "mcp_server",
            Some(&bob),
            Some("github"),
            vec![("github", 1, 0)],
        ),
        ("mcp_tool", Some(&alice), Some("everything/add"), vec![]),
    ];
    for (by, user, id, want) in cases {
        let mut query = vec![("by", by), ("period", day)];
        if let Some(user) = user {
            query.push(("user", user));
        }
        if let Some(id) = id {
            query.push(("id", id));
        }
        let body = mcp_usage(&service, &query).await;
        let rows: Vec<(&str, u64, u64)> = body["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .map(|r| {
                (
                    r["id"].as_str().unwrap_or_default(),
                    r["requests"].as_u64().unwrap_or_default(),
                    r["errors"].as_u64().unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(rows, want, "{query:?}: {body}");
        assert_eq!(body["user"].as_str(), user, "{body}");
    }
    // Another day holds nothing.
    let body = mcp_usage(&service, &[("by", "mcp_server"), ("period", "2026-12-06")]).await;
    assert_eq!(body["rows"], json!([]), "{body}");

    // Not model usage: the user's and the tenant's ledgers are untouched.
    for (scope, id) in [("user", alice.as_str()), ("tenant", "acme")] {
        let ledger = service.ledger(scope, id, day).await;
        assert_eq!(ledger["requests"], 0, "{scope}: {ledger}");
    }
    // Still in the audit trail, as sent.
    let mut conn = redis.connection().await;
    let logged: usize = redis::cmd("XLEN")
        .arg("ck:usage:log")
        .query_async(&mut conn)
        .await
        .expect("XLEN");
    assert_eq!(logged, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_mcp_input_is_refused_naming_the_field() {
    let redis = RedisServer::start();
    let service = Service::start(usage_config(&redis)).await;
    let user = new_user();

    // Authorize: 400 naming the field.
    let cases = [
        (
            json!({"server": "Everything"}),
            "mcp.server must be an MCP server name",
        ),
        (
            json!({"server": "a/b"}),
            "mcp.server must be an MCP server name",
        ),
        (
            json!({"server": "x".repeat(65)}),
            "mcp.server must be an MCP server name",
        ),
        (
            json!({"server": "-x"}),
            "mcp.server must be an MCP server name",
        ),
        (
            json!({"server": "ok", "tool": " "}),
            "mcp.tool must not be empty",
        ),
        (
            json!({"server": "ok", "tool": "t".repeat(257)}),
            "mcp.tool must be at most 256 bytes",
        ),
        (
            json!({"server": "ok", "tool": "a\nb"}),
            "mcp.tool must not contain control",
        ),
        (json!({"tool": "x"}), "mcp: missing field `server`"),
    ];
    for (mcp, needle) in cases {
        let request = json!({"request_id": "r", "user": user, "mcp": mcp});
        let (status, body) = service.authorize_body(&request).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{mcp}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(needle),
            "{mcp}: {message:?} lacks {needle:?}"
        );
    }

    // Usage: the record is dead-lettered naming the field; the rest is booked.
    let good = json!({"request_id": "ok-1", "user": user,
        "mcp": {"server": "everything", "method": "ping"}});
    let cases = [
        (
            json!({"server": "everything", "method": " "}),
            "records[1].mcp.method must not be empty",
        ),
        (
            json!({"server": "EVERYTHING", "method": "ping"}),
            "records[1].mcp.server must be",
        ),
    ];
    for (i, (mcp, needle)) in cases.into_iter().enumerate() {
        let bad = json!({"request_id": format!("bad-{i}"), "user": user, "mcp": mcp});
        let (status, answer) = service.post_usage(&[good.clone(), bad]).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["dead_lettered"], 1, "{needle}: {answer}");
        let dead = last_dead_letter(&redis).await;
        assert!(dead.contains(needle), "{dead}");
    }
    let tokens = json!({"request_id": "bad-tokens", "user": user, "input_tokens": 5,
        "mcp": {"server": "everything", "method": "tools/call", "name": "echo"}});
    let (_, answer) = service.post_usage(&[tokens]).await;
    assert_eq!(answer["dead_lettered"], 1, "{answer}");
    let dead = last_dead_letter(&redis).await;
    assert!(
        dead.contains("records[0].input_tokens must be 0 in an MCP record"),
        "{dead}"
    );

    // Admin: MCP sets take rpm only, ids as the policy file has them.
    let cases = [
        (
            "mcp_server",
            "*",
            json!({"tpm": 5}),
            "tpm does not apply to mcp_server limits",
        ),
        (
            "mcp_tool",
            "everything/echo",
            json!({"usd_micros": 5, "period": "day"}),
            "usd_micros does not apply to mcp_tool limits",
        ),
        (
            "mcp_tool",
            "everything",
            json!({"rpm": 5}),
            "id must be <server>/<tool>",
        ),
        (
            "mcp_server",
            "Everything",
            json!({"rpm": 5}),
            "id must be an MCP server name",
        ),
    ];
    for (kind, id, limits, needle) in cases {
        let path = format!("/v1/admin/limits/{kind}/{}", percent_encode(id));
        let (status, body) = service.admin(Method::PUT, &path, Some(&limits)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(needle),
            "{path}: {message:?} lacks {needle:?}"
        );
    }
    // Spend and rankings are for kinds with spend.
    let (status, body) = service
        .admin(
            Method::GET,
            "/v1/admin/spend?scope_kind=mcp_server&id=everything",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    for query in [
        vec![("by", "mcp_tool"), ("period", "2026-12")],
        vec![
            ("by", "mcp_tool"),
            ("period", "2026-12-07"),
            ("user", "alice"),
        ],
        vec![
            ("by", "client"),
            ("period", "2026-12"),
            ("user", user.as_str()),
        ],
        vec![
            ("scope", "mcp_server"),
            ("id", "everything"),
            ("period", "2026-12"),
        ],
    ] {
        let response = service.admin_usage(Some(ADMIN_TOKEN), &query).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query:?}");
    }
}

async fn last_dead_letter(redis: &RedisServer) -> String {
    let mut conn = redis.connection().await;
    let dead: Vec<(String, Vec<String>)> = redis::cmd("XREVRANGE")
        .arg("ck:usage:dead")
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(&mut conn)
        .await
        .expect("XREVRANGE");
    format!("{dead:?}")
}
