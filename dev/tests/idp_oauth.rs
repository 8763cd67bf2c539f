//! The mock IdP's token service answers as RFC 6749 and RFC 8628 say: each grant's success,
//! each error code, and tokens that verify with the JWKS it serves.

use std::time::Duration;

use chokepoint_dev::devtoken::DevKey;
use chokepoint_dev::idp::oauth::{Client, OAuth, Settings};
use chokepoint_dev::idp::{serve, Jwks};
use jwt_simple::prelude::{ECDSAP256PublicKeyLike, NoCustomClaims, VerificationOptions};
use serde_json::{json, Value};

const DEVICE: &str = "urn:ietf:params:oauth:grant-type:device_code";

async fn start(key: &DevKey) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let client = |id: &str, secret: Option<&str>| Client {
        client_id: id.into(),
        client_secret: secret.map(Into::into),
        subject: None,
        tenant: Some("ci".into()),
        groups: vec![],
    };
    let oauth = OAuth::new(Settings {
        key: key.clone(),
        issuer: "https://idp.chokepoint.test".into(),
        audience: "chokepoint".into(),
        clients: vec![client("cli", None), client("robot", Some("s3cret"))],
        token_ttl: Duration::from_secs(300),
        device_ttl: Duration::from_secs(60),
        device_interval: Duration::from_secs(1),
    });
    let jwks = Jwks::Inline(key.jwks_json());
    tokio::spawn(async move { serve(listener, jwks, Some(oauth), std::future::pending()).await });
    url
}

/// POST a form (HTTP Basic credentials optional): status, JSON body, Cache-Control.
async fn form(
    url: &str,
    basic: Option<(&str, &str)>,
    fields: &[(&str, &str)],
) -> (u16, Value, String) {
    let body = fields
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let cache = resp
        .headers()
        .get("cache-control")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, resp.json().await.unwrap_or(Value::Null), cache)
}

/// Percent-encodes all but RFC 3986's unreserved characters.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn approve(url: &str, body: Value) -> u16 {
    reqwest::Client::new()
        .post(format!("{url}/__idp/device/approve"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// (what, HTTP Basic credentials, form, status, error code)
type Case<'a> = (
    &'a str,
    Option<(&'a str, &'a str)>,
    &'a [(&'a str, &'a str)],
    u16,
    &'a str,
);

#[tokio::test]
async fn token_endpoint_errors_follow_rfc_6749_section_5_2() {
    let key = DevKey::generate("idp-test");
    let url = start(&key).await;
    let token = format!("{url}/oauth/token");
    let cases: &[Case] = &[
        (
            "no client",
            None,
            &[("grant_type", "client_credentials")],
            401,
            "invalid_client",
        ),
        (
            "unknown client",
            None,
            &[("grant_type", "refresh_token"), ("client_id", "nobody")],
            401,
            "invalid_client",
        ),
        (
            "wrong secret",
            Some(("robot", "nope")),
            &[("grant_type", "client_credentials")],
            401,
            "invalid_client",
        ),
        (
            "no grant type",
            Some(("robot", "s3cret")),
            &[],
            400,
            "invalid_request",
        ),
        (
            "unknown grant",
            Some(("robot", "s3cret")),
            &[("grant_type", "password")],
            400,
            "unsupported_grant_type",
        ),
        (
            "public client credentials",
            None,
            &[("grant_type", "client_credentials"), ("client_id", "cli")],
            400,
            "unauthorized_client",
        ),
        (
            "unknown refresh token",
            None,
            &[
                ("grant_type", "refresh_token"),
                ("client_id", "cli"),
                ("refresh_token", "x"),
            ],
            400,
            "invalid_grant",
        ),
        (
            "no refresh token",
            None,
            &[("grant_type", "refresh_token"), ("client_id", "cli")],
            400,
            "invalid_request",
        ),
        (
            "unknown device code",
            None,
            &[
                ("grant_type", DEVICE),
                ("client_id", "cli"),
                ("device_code", "x"),
            ],
            400,
            "invalid_grant",
        ),
    ];
    for (what, basic, fields, status, code) in cases {
        let (got, body, cache) = form(&token, *basic, fields).await;
        assert_eq!(
            (got, body["error"].as_str()),
            (*status, Some(*code)),
            "{what}: {body}"
        );
        assert_eq!(cache, "no-store", "{what}");
    }
}

#[tokio::test]
async fn client_credentials_token_verifies_with_the_served_jwks_and_has_no_refresh_token() {
    let key = DevKey::generate("idp-test");
    let url = start(&key).await;
    // Secret in the body works as well as HTTP Basic (RFC 6749 §2.3.1).
    let (status, body, _) = form(
        &format!("{url}/oauth/token"),
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "robot"),
            ("client_secret", "s3cret"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["token_type"].as_str(), body["expires_in"].as_u64()),
        (Some("Bearer"), Some(300))
    );
    assert!(
        body.get("refresh_token").is_none(),
        "§4.4.3: no refresh token"
    );
    let jwks: Value = reqwest::get(format!("{url}/jwks.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["kid"], "idp-test");
    let options = VerificationOptions {
        allowed_issuers: Some(["https://idp.chokepoint.test".to_string()].into()),
        allowed_audiences: Some(["chokepoint".to_string()].into()),
        ..Default::default()
    };
    let claims = key
        .public_key()
        .verify_token::<NoCustomClaims>(body["access_token"].as_str().unwrap(), Some(options))
        .unwrap();
    assert_eq!(claims.subject.as_deref(), Some("robot"));
}

#[tokio::test]
async fn device_flow_pending_then_approved_once_then_refresh_rotates() {
    let key = DevKey::generate("idp-test");
    let url = start(&key).await;
    let token = format!("{url}/oauth/token");
    let (status, auth, _) = form(
        &format!("{url}/oauth/device"),
        None,
        &[("client_id", "cli")],
    )
    .await;
    assert_eq!(status, 200, "{auth}");
    for field in [
        "device_code",
        "user_code",
        "verification_uri",
        "verification_uri_complete",
    ] {
        assert!(auth[field].is_string(), "§3.2 {field}: {auth}");
    }
    assert_eq!(
        (auth["expires_in"].as_u64(), auth["interval"].as_u64()),
        (Some(60), Some(1))
    );
    let user_code = auth["user_code"].as_str().unwrap();
    assert!(
        user_code.len() == 9
            && user_code
                .chars()
                .all(|c| c == '-' || "BCDFGHJKLMNPQRSTVWXZ".contains(c)),
        "{user_code}"
    );
    let poll = [
        ("grant_type", DEVICE),
        ("client_id", "cli"),
        ("device_code", auth["device_code"].as_str().unwrap()),
    ];

    let (status, body, _) = form(&token, None, &poll).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("authorization_pending"))
    );
    // Another client cannot redeem it.
    let other = [
        ("grant_type", DEVICE),
        ("client_id", "robot"),
        ("device_code", poll[2].1),
    ];
    let (status, body, _) = form(&token, Some(("robot", "s3cret")), &other).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    assert_eq!(
        approve(&url, json!({"user_code": "BBBB-BBBB", "subject": "alice"})).await,
        404
    );
    assert_eq!(
        approve(&url, json!({"user_code": user_code})).await,
        400,
        "approve as whom"
    );
    assert_eq!(
        approve(
            &url,
            json!({"user_code": user_code, "subject": "alice", "tenant": "acme"})
        )
        .await,
        204
    );
    let (status, tokens, _) = form(&token, None, &poll).await;
    assert_eq!(status, 200, "{tokens}");
    let (status, body, _) = form(&token, None, &poll).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "a device code is used once"
    );

    let first = tokens["refresh_token"].as_str().unwrap();
    let fields = [
        ("grant_type", "refresh_token"),
        ("client_id", "cli"),
        ("refresh_token", first),
    ];
    let (status, rotated, _) = form(&token, None, &fields).await;
    assert_eq!(status, 200, "{rotated}");
    assert_ne!(rotated["refresh_token"].as_str(), Some(first));
    let (status, body, _) = form(&token, None, &fields).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "the old refresh token is spent"
    );
}

#[tokio::test]
async fn a_denied_device_code_answers_access_denied() {
    let key = DevKey::generate("idp-test");
    let url = start(&key).await;
    let (_, auth, _) = form(
        &format!("{url}/oauth/device"),
        None,
        &[("client_id", "cli")],
    )
    .await;
    assert_eq!(
        approve(&url, json!({"user_code": auth["user_code"], "deny": true})).await,
        204
    );
    let poll = [
        ("grant_type", DEVICE),
        ("client_id", "cli"),
        ("device_code", auth["device_code"].as_str().unwrap()),
    ];
    let (status, body, _) = form(&format!("{url}/oauth/token"), None, &poll).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("access_denied"))
    );
}
