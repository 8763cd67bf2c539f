//! `serve --identity`: the binary reads the identity file (as `chokepoint-config render
//! policy-identity` writes it) and the gateway's UUID salt from the variable it names,
//! and `GET /v1/viewer` tells who a credential is: the admin token, an admin group's
//! member, one user by the UUID the gateway records, or nobody (401, the token not
//! echoed). Without the salt it refuses to start, binding nothing.

use std::process::Stdio;
use std::time::{Duration, Instant};

use jwt_simple::prelude::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{RedisServer, TempDir, GATEWAY_TOKEN};

const BIN: &str = env!("CARGO_BIN_EXE_chokepoint-policy");
const ISSUER: &str = "https://dev.chokepoint.local";
const SALT: &str = "chokepoint-test-salt";
const ADMIN: &str = "viewer-admin-token-0123456789";
/// The shared pseudonym's pinned vector (contract/src/identity/pseudonym.rs): the UUID the
/// gateway records for subject `dev-user` of this issuer under this salt.
const DEV_USER_UUID: &str = "bdb623b6-e1fc-8c7b-8387-09dc3cb35eec";

fn token(key: &ES256KeyPair, sub: &str, groups: &[&str], audience: &str, ttl: u64) -> String {
    let claims = Claims::with_custom_claims(
        json!({"tenant": "acme", "groups": groups}),
        jwt_simple::prelude::Duration::from_secs(ttl),
    )
    .with_issuer(ISSUER)
    .with_audience(audience)
    .with_subject(sub);
    key.sign(claims).expect("sign")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_resolves_viewers_from_the_identity_file() {
    let redis = RedisServer::start();
    let dir = TempDir::new();
    let key = ES256KeyPair::generate().with_key_id("dev-1");
    let jwk: Value = serde_json::from_str(&key.public_key().to_jwk()).expect("json");
    let identity = dir.path().join("identity.json");
    std::fs::write(
        &identity,
        json!({
            "issuers": [{"issuer": ISSUER, "audiences": ["chokepoint"], "jwks": {"keys": [jwk]}}],
            "admin_groups": ["spend-admins"],
            "uuid_salt_env": "CHOKEPOINT_UUID_SALT",
        })
        .to_string(),
    )
    .expect("write identity");
    let admin_file = dir.path().join("admin.addr");
    let gateway_file = dir.path().join("gateway.addr");

    // Without the salt: no start, nothing bound, the variable named.
    let refused = tokio::process::Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .arg("--identity")
        .arg(&identity)
        .arg("--addr-file")
        .arg(&gateway_file)
        .env_clear()
        .envs(redis.service_env())
        .env("CHOKEPOINT_POLICY_TOKEN", GATEWAY_TOKEN)
        .output()
        .await
        .expect("run");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(
        stderr.contains("uuid_salt_env") && stderr.contains("CHOKEPOINT_UUID_SALT"),
        "{stderr}"
    );
    assert!(!gateway_file.exists(), "nothing bound");

    let mut child = tokio::process::Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .arg("--identity")
        .arg(&identity)
        .arg("--addr-file")
        .arg(&gateway_file)
        .arg("--admin-addr-file")
        .arg(&admin_file)
        .env_clear()
        .envs(redis.service_env())
        .env("CHOKEPOINT_POLICY_TOKEN", GATEWAY_TOKEN)
        .env("CHOKEPOINT_ADMIN_TOKEN", ADMIN)
        .env("CHOKEPOINT_UUID_SALT", SALT)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !admin_file.exists() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the service exited: {status}");
        }
        assert!(Instant::now() < deadline, "admin listener within 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let admin = std::fs::read_to_string(&admin_file).expect("admin address");
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");

    let user = token(&key, "dev-user", &["ml"], "chokepoint", 600);
    let admin_member = token(&key, "dev-admin", &["spend-admins"], "chokepoint", 600);
    let other_app = token(&key, "dev-user", &[], "another-app", 600);
    let stranger = token(
        &ES256KeyPair::generate().with_key_id("dev-1"),
        "dev-user",
        &[],
        "chokepoint",
        600,
    );
    // (credential, how it is sent, status, answer or error code)
    let cases: Vec<(Option<&str>, &str, StatusCode, Value)> = vec![
        (
            Some(ADMIN),
            "bearer",
            StatusCode::OK,
            json!({"viewer": "admin"}),
        ),
        (
            Some(&admin_member),
            "bearer",
            StatusCode::OK,
            json!({"viewer": "admin"}),
        ),
        (
            Some(&user),
            "bearer",
            StatusCode::OK,
            json!({"viewer": "user", "user": DEV_USER_UUID, "groups": ["ml"], "tenant": "acme"}),
        ),
        (
            Some(&user),
            "cookie",
            StatusCode::OK,
            json!({"viewer": "user", "user": DEV_USER_UUID, "groups": ["ml"], "tenant": "acme"}),
        ),
        (
            Some(&other_app),
            "bearer",
            StatusCode::UNAUTHORIZED,
            json!("wrong_audience"),
        ),
        (
            Some(&stranger),
            "bearer",
            StatusCode::UNAUTHORIZED,
            json!("bad_signature"),
        ),
        (
            Some(GATEWAY_TOKEN),
            "bearer",
            StatusCode::UNAUTHORIZED,
            json!("malformed"),
        ),
        (None, "bearer", StatusCode::UNAUTHORIZED, json!("missing")),
    ];
    for (credential, how, status, want) in cases {
        let mut request = http.get(format!("http://{admin}/v1/viewer"));
        if let Some(c) = credential {
            request = match how {
                "cookie" => request.header("cookie", format!("chokepoint_token={c}")),
                _ => request.bearer_auth(c),
            };
        }
        let response = request.send().await.expect("send");
        assert_eq!(response.status(), status, "{want}");
        let text = response.text().await.expect("body");
        if let Some(c) = credential {
            assert!(
                !text.contains(c),
                "the answer echoes the credential: {text}"
            );
        }
        let body: Value = serde_json::from_str(&text).expect("json");
        if status == StatusCode::OK {
            assert_eq!(body, want);
        } else {
            assert_eq!(body["error"]["code"], want, "{body}");
        }
    }

    // The spend page with the same credentials: a user sees their own page and nobody
    // else's, an admin group's member the overview; a company token logs in through the
    // form and is kept, as it is, in a cookie for the pages only.
    let other_uuid = "0190a6f2-7c1e-8b3a-9f00-1234567890ab";
    let no_redirects = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    // (credential, path, status, text the page must hold)
    let pages: [(&str, String, StatusCode, &str); 6] = [
        (&user, "/ui".into(), StatusCode::OK, DEV_USER_UUID),
        (
            &user,
            format!("/ui/user/{DEV_USER_UUID}"),
            StatusCode::OK,
            DEV_USER_UUID,
        ),
        (
            &user,
            format!("/ui/user/{other_uuid}"),
            StatusCode::FORBIDDEN,
            "",
        ),
        (&admin_member, "/ui".into(), StatusCode::OK, "Top spenders"),
        (
            &admin_member,
            format!("/ui/user/{other_uuid}"),
            StatusCode::OK,
            other_uuid,
        ),
        (&stranger, "/ui".into(), StatusCode::SEE_OTHER, ""),
    ];
    for (credential, path, status, holds) in pages {
        let response = no_redirects
            .get(format!("http://{admin}{path}"))
            .bearer_auth(credential)
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), status, "{path}");
        let text = response.text().await.expect("body");
        assert!(text.contains(holds), "{path}: {text}");
        assert!(!text.contains(credential), "{path} echoes the token");
    }
    let login = no_redirects
        .post(format!("http://{admin}/ui/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        // A JWT is base64url and dots: nothing to encode.
        .body(format!("token={user}"))
        .send()
        .await
        .expect("login");
    assert_eq!(login.status(), StatusCode::SEE_OTHER);
    let cookie = login
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        cookie.starts_with("chokepoint_token=")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && cookie.contains("Path=/ui"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap_or_default().to_string();
    let page = no_redirects
        .get(format!("http://{admin}/ui"))
        .header("cookie", pair)
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.expect("body").contains(DEV_USER_UUID));
    let refused = no_redirects
        .post(format!("http://{admin}/ui/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        // A JWT is base64url and dots: nothing to encode.
        .body(format!("token={stranger}"))
        .send()
        .await
        .expect("login");
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert!(refused.headers().get("set-cookie").is_none());
    let _ = child.start_kill();
}
