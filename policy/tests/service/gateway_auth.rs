//! Only the gateway may call `/v1/authorize` and `/v1/usage`: every call must carry the
//! gateway token, and the admin API and metrics live on a listener of their own. Before
//! this, anyone who reached the service could reserve or book spend under any name
//! (`POST /v1/usage {"records":[]}` answered 200 to any caller).

use std::process::Stdio;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{
    json_of, listeners, new_user, usage_config, usage_for, RedisServer, Service, TempDir,
    ADMIN_TOKEN, GATEWAY_TOKEN,
};

const BIN: &str = env!("CARGO_BIN_EXE_chokepoint-policy");

/// A wrong token as long as the right one.
const WRONG_TOKEN: &str = "test-gateway-token-0000000000000000";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_gateway_token_opens_authorize_and_usage() {
    let redis = RedisServer::start();
    let service = Service::start(usage_config(&redis)).await;
    let user = new_user();
    let request = json!({
        "request_id": format!("auth-{user}"),
        "user": user,
        "tenant": "acme",
        "model": "gpt-4o-mini",
        "provider": "openai",
        "reserve_tokens": 100,
    });
    let usage = json!({"records": [usage_for(&request, 10, 5, 0)]});
    let endpoints = [("/v1/authorize", &request), ("/v1/usage", &usage)];
    let bearer = |token: &str| Some(format!("Bearer {token}"));
    // (authorization header, status, error code)
    let cases: Vec<(Option<String>, StatusCode, Option<&str>)> = vec![
        (
            None,
            StatusCode::UNAUTHORIZED,
            Some("missing_gateway_token"),
        ),
        (
            Some(format!("Basic {GATEWAY_TOKEN}")),
            StatusCode::UNAUTHORIZED,
            Some("missing_gateway_token"),
        ),
        (
            bearer(WRONG_TOKEN),
            StatusCode::UNAUTHORIZED,
            Some("invalid_gateway_token"),
        ),
        (
            bearer(&GATEWAY_TOKEN[..16]),
            StatusCode::UNAUTHORIZED,
            Some("invalid_gateway_token"),
        ),
        (
            bearer(&format!("{GATEWAY_TOKEN}x")),
            StatusCode::UNAUTHORIZED,
            Some("invalid_gateway_token"),
        ),
        // The admin token is no gateway token.
        (
            bearer(ADMIN_TOKEN),
            StatusCode::UNAUTHORIZED,
            Some("invalid_gateway_token"),
        ),
        (bearer(GATEWAY_TOKEN), StatusCode::OK, None),
    ];
    for (path, body) in endpoints {
        for (authorization, status, code) in &cases {
            let mut call = service
                .http
                .post(format!("{}{path}", service.base))
                .json(body);
            if let Some(value) = authorization {
                call = call.header("authorization", value);
            }
            let response = call.send().await.expect("send");
            let challenge = response.headers().get("www-authenticate").cloned();
            let (got, answer) = json_of(response).await;
            let shown = authorization.as_deref().unwrap_or("no authorization");
            assert_eq!(got, *status, "{path} with {shown}: {answer}");
            if let Some(code) = code {
                assert_eq!(answer["error"]["code"], *code, "{path} {shown}: {answer}");
                assert_eq!(answer["error"]["type"], "authentication_error", "{answer}");
                assert_eq!(
                    challenge.as_ref().map(|v| v.as_bytes()),
                    Some(&b"Bearer"[..])
                );
            } else {
                // The refused calls before it changed nothing: this is the user's first
                // decision, and the record's first booking.
                assert_eq!(first_time(path, &answer), Some(true), "{path}: {answer}");
            }
        }
    }

    let metrics = service.metrics().await;
    for line in [
        "chokepoint_policy_gateway_refusals_total{code=\"missing_gateway_token\"} 4",
        "chokepoint_policy_gateway_refusals_total{code=\"invalid_gateway_token\"} 8",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
}

/// Whether an allowed call was the first of its kind: the user's first request in the
/// rate window, or the record's first booking.
fn first_time(path: &str, answer: &Value) -> Option<bool> {
    if path == "/v1/usage" {
        return Some(answer["accepted"] == 1 && answer["duplicates"] == 0);
    }
    let rpm = answer["limits"]
        .as_array()?
        .iter()
        .find(|l| l["name"] == "user:rpm")?;
    Some(answer["allow"] == true && rpm["remaining"].as_u64()? + 1 == rpm["limit"].as_u64()?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unauthenticated_body_is_never_read() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let redis = RedisServer::start();
    let service = Service::start(usage_config(&redis)).await;
    let addr = service.base.trim_start_matches("http://").to_string();
    // Twice the usage limit is announced, and only its first kilobyte sent: the refusal
    // must come before the rest (a body the service read would be a 413 or wait).
    let announced = 2 << 20;
    for (token, status) in [
        (None, "401"),
        (Some("not-the-gateway-token-0123456789abcdef"), "401"),
    ] {
        let mut conn = tokio::net::TcpStream::connect(&addr)
            .await
            .expect("connect");
        let auth = token.map_or(String::new(), |t| format!("authorization: Bearer {t}\r\n"));
        let head = format!(
            "POST /v1/usage HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
             {auth}content-length: {announced}\r\n\r\n"
        );
        conn.write_all(head.as_bytes()).await.expect("head");
        conn.write_all(&[b' '; 1024]).await.expect("first kilobyte");
        let mut answer = vec![0u8; 512];
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), conn.read(&mut answer))
            .await
            .unwrap_or_else(|_| panic!("{token:?}: no answer before the body was sent"))
            .expect("read");
        let text = String::from_utf8_lossy(&answer[..n]).to_string();
        assert!(
            text.starts_with(&format!("HTTP/1.1 {status}")),
            "{token:?}: {text}"
        );
    }
}

/// (base URL, method, path, bearer token or "", JSON body, status)
type Case<'a> = (
    &'a str,
    Method,
    &'a str,
    &'a str,
    Option<&'a Value>,
    StatusCode,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_listener_serves_only_its_own_paths() {
    let redis = RedisServer::start();
    let service = Service::start(usage_config(&redis)).await;
    let (gateway, admin) = (service.base.as_str(), service.admin_base.as_str());
    let authorize = json!({"request_id": "listeners", "user": new_user()});
    let cases: [Case; 12] = [
        (gateway, Method::GET, "/healthz", "", None, StatusCode::OK),
        (
            gateway,
            Method::GET,
            "/metrics",
            "",
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            gateway,
            Method::GET,
            "/metrics",
            GATEWAY_TOKEN,
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            gateway,
            Method::GET,
            "/v1/admin/limits",
            ADMIN_TOKEN,
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            gateway,
            Method::PUT,
            "/v1/admin/limits/tenant/acme",
            ADMIN_TOKEN,
            Some(&json!({"rpm": 1})),
            StatusCode::NOT_FOUND,
        ),
        (
            gateway,
            Method::GET,
            "/v1/admin/top?scope_kind=user",
            ADMIN_TOKEN,
            None,
            StatusCode::NOT_FOUND,
        ),
        (admin, Method::GET, "/healthz", "", None, StatusCode::OK),
        (admin, Method::GET, "/metrics", "", None, StatusCode::OK),
        (
            admin,
            Method::GET,
            "/v1/admin/limits",
            ADMIN_TOKEN,
            None,
            StatusCode::OK,
        ),
        (
            admin,
            Method::POST,
            "/v1/authorize",
            GATEWAY_TOKEN,
            Some(&authorize),
            StatusCode::NOT_FOUND,
        ),
        (
            admin,
            Method::POST,
            "/v1/usage",
            GATEWAY_TOKEN,
            Some(&json!({"records": []})),
            StatusCode::NOT_FOUND,
        ),
        (
            admin,
            Method::POST,
            "/v1/usage",
            ADMIN_TOKEN,
            Some(&json!({"records": []})),
            StatusCode::NOT_FOUND,
        ),
    ];
    for (base, method, path, token, body, status) in cases {
        let mut call = service
            .http
            .request(method.clone(), format!("{base}{path}"));
        if !token.is_empty() {
            call = call.bearer_auth(token);
        }
        if let Some(body) = body {
            call = call.json(body);
        }
        let response = call.send().await.expect("send");
        let got = response.status();
        let text = response.text().await.expect("body");
        assert_eq!(got, status, "{method} {base}{path}: {text}");
        if status == StatusCode::NOT_FOUND {
            assert!(
                text.contains("\"not_found\""),
                "{method} {base}{path}: {text}"
            );
        }
    }
    // The limit PUT on the gateway listener did not land.
    let (status, _) = service
        .admin(Method::GET, "/v1/admin/limits/tenant/acme", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_refuses_a_config_without_a_usable_gateway_token() {
    let cases = [
        None,
        Some(GATEWAY_TOKEN[..31].to_owned()),
        Some(format!("{} {}", &GATEWAY_TOKEN[..20], &GATEWAY_TOKEN[..20])),
    ];
    for token in cases {
        let config = chokepoint_policy::Config {
            gateway_token: token.clone(),
            ..chokepoint_policy::Config::default()
        };
        let err = tokio::time::timeout(
            Duration::from_secs(5),
            chokepoint_policy::run(listeners().await, config, std::future::pending()),
        )
        .await
        .expect("refuses at once")
        .expect_err("no usable gateway token");
        assert!(
            err.to_string().contains("gateway_token"),
            "{token:?}: {err}"
        );
    }
}

/// `chokepoint-policy serve` as a supervisor runs it: with no token, or a short one, it
/// exits before binding and says why; with one, both listeners come up. `--help` never
/// shows the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_needs_the_gateway_token_in_its_environment() {
    let redis = RedisServer::start();
    let dir = TempDir::new();
    let (gateway_file, admin_file) = (
        dir.path().join("gateway.addr"),
        dir.path().join("admin.addr"),
    );
    // (CHOKEPOINT_POLICY_TOKEN, starts, what stderr says)
    let cases = [
        (None, false, "no gateway token: set CHOKEPOINT_POLICY_TOKEN"),
        (
            Some(&GATEWAY_TOKEN[..31]),
            false,
            "gateway_token: must be at least 32 bytes",
        ),
        (Some(GATEWAY_TOKEN), true, "policy service listening on"),
    ];
    for (token, starts, needle) in cases {
        let _ = std::fs::remove_file(&gateway_file);
        let _ = std::fs::remove_file(&admin_file);
        let mut command = tokio::process::Command::new(BIN);
        command
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
            ])
            .arg("--addr-file")
            .arg(&gateway_file)
            .arg("--admin-addr-file")
            .arg(&admin_file)
            .env_clear()
            .envs(redis.service_env())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(token) = token {
            command.env("CHOKEPOINT_POLICY_TOKEN", token);
        }
        let child = command.spawn().expect("spawn");
        if starts {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !(gateway_file.exists() && admin_file.exists()) {
                assert!(Instant::now() < deadline, "both listeners within 10 s");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let admin = std::fs::read_to_string(&admin_file).expect("admin address");
            let gateway = std::fs::read_to_string(&gateway_file).expect("gateway address");
            assert_ne!(admin, gateway);
            let health = reqwest::get(format!("http://{admin}/healthz"))
                .await
                .expect("healthz");
            assert_eq!(health.status(), StatusCode::OK);
            let pid = child.id().expect("pid").to_string();
            let killed = std::process::Command::new("kill").arg(pid).status();
            assert!(killed.expect("run kill").success());
        }
        let output = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
            .await
            .expect("exits")
            .expect("wait");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.success(), starts, "{token:?}: {stderr}");
        assert!(stderr.contains(needle), "{token:?}: {stderr}");
        assert!(
            !stderr.contains(GATEWAY_TOKEN),
            "the log never shows the token: {stderr}"
        );
        if !starts {
            assert!(
                !gateway_file.exists() && !admin_file.exists(),
                "nothing bound"
            );
        }
    }

    let help = std::process::Command::new(BIN)
        .args(["serve", "--help"])
        .env_clear()
        .env("CHOKEPOINT_POLICY_TOKEN", GATEWAY_TOKEN)
        .output()
        .expect("help");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("CHOKEPOINT_POLICY_TOKEN") && help.contains("--admin-listen"),
        "{help}"
    );
    assert!(!help.contains(GATEWAY_TOKEN), "{help}");
}
