//! Identity against a real (mock) identity provider: keys fetched through Envoy, a 503
//! until they arrive, rotation without a restart, the last good keys kept while the IdP is
//! down, one fetch per refresh whatever the worker count, and stable anonymous UUIDs.

use std::time::{Duration, Instant};

use chokepoint_dev::devtoken::{DevKey, TokenSpec};
use chokepoint_dev::stack::{IdpSetup, Stack};
use chokepoint_render::overrides::Override;

use crate::support::{self, chat, error_code, header, upstream_saw};

const IDP_ISSUER: &str = "https://idp.chokepoint.test";
const REFRESH_SECS: u64 = 5;

fn idp_token(key: &DevKey, subject: &str) -> String {
    key.mint(
        &TokenSpec::new(subject)
            .with_issuer(IDP_ISSUER)
            .with_tenant("acme"),
    )
}

async fn post(stack: &Stack, token: &str, case: &str) -> reqwest::Response {
    // A fresh connection each time, so requests spread over Envoy's workers.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    client
        .post(format!("{}/v1/chat/completions", stack.gateway_url))
        .bearer_auth(token)
        .header("x-test-case", case)
        .json(&chat(false))
        .send()
        .await
        .unwrap()
}

async fn idp_fetches(stack: &Stack) -> u64 {
    let url = format!("{}/__idp/stats", stack.idp_url.as_deref().unwrap());
    let v: serde_json::Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    v["jwks_requests"].as_u64().unwrap()
}

#[tokio::test]
async fn keys_from_the_identity_provider() {
    // The provider is internal: the UUIDs are read from its identity headers.
    let mut stack = support::start("identity", |o| {
        o.idp = Some(IdpSetup {
            issuer: IDP_ISSUER.into(),
            refresh_secs: REFRESH_SECS,
        });
        support::internal_openai(o);
    })
    .await;
    let key_a = DevKey::generate("key-a");
    let key_b = DevKey::generate("key-b");

    // 1. The IdP is down at start: a clear 503, not a crash, not a 401.
    stack.stop_idp();
    for _ in 0..2 {
        let resp = post(&stack, &idp_token(&key_a, "alice"), "no-keys").await;
        assert_eq!(error_code(resp, 503).await, "jwks_unavailable");
    }
    // Up, but without a key set yet (it answers 503 itself): still 503 for its tokens.
    stack.start_idp().expect("IdP starts");
    let resp = post(&stack, &idp_token(&key_a, "alice"), "no-keys").await;
    assert_eq!(error_code(resp, 503).await, "jwks_unavailable");
    assert!(upstream_saw(&stack, "no-keys").await.is_empty());

    // 2. Once the IdP serves keys, the gateway picks them up by itself.
    std::fs::write(stack.idp_jwks_file(), key_a.jwks_json()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let status = post(&stack, &idp_token(&key_a, "alice"), "keys-arrived")
            .await
            .status();
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "keys never arrived (last status {status})"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // 3. Same subject at two issuers: two different people.
    let dev = post(&stack, &support::token(&stack, "alice"), "alice-dev").await;
    assert_eq!(dev.status(), 200);
    let at_idp = header(
        &upstream_saw(&stack, "keys-arrived").await[0],
        "x-chokepoint-user",
    )
    .unwrap();
    let at_dev = header(
        &upstream_saw(&stack, "alice-dev").await[0],
        "x-chokepoint-user",
    )
    .unwrap();
    assert_ne!(at_idp, at_dev);
    assert_eq!(at_dev, support::uuid_of(&stack, "alice"));

    // 4. Rotation at the IdP: a token signed by the new key works at once, no restart.
    std::fs::write(stack.idp_jwks_file(), key_b.jwks_json()).unwrap();
    let resp = post(&stack, &idp_token(&key_b, "alice"), "rotated").await;
    assert_eq!(
        resp.status(),
        200,
        "{}",
        resp.text().await.unwrap_or_default()
    );
    // The Zero-Trust assertion header is a token source too.
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", stack.gateway_url))
        .header("cf-access-jwt-assertion", idp_token(&key_b, "alice"))
        .json(&chat(false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // 5. One fetch per refresh, whatever the worker count (Envoy runs 2 workers here).
    let before = idp_fetches(&stack).await;
    tokio::time::sleep(Duration::from_secs(2 * REFRESH_SECS + 1)).await;
    let fetched = idp_fetches(&stack).await - before;
    assert!(
        (1..=3).contains(&fetched),
        "{fetched} JWKS fetches in {}s",
        2 * REFRESH_SECS + 1
    );

    // 6. The IdP goes down: the last good keys keep serving through failed refreshes.
    stack.stop_idp();
    tokio::time::sleep(Duration::from_secs(REFRESH_SECS + 2)).await;
    let resp = post(&stack, &idp_token(&key_b, "alice"), "idp-down").await;
    assert_eq!(resp.status(), 200);
    let stats = reqwest::get(format!("{}/stats?filter=chokepoint.jwks", stack.admin_url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        stats
            .lines()
            .any(|l| l.contains("fetch_failed") && !l.ends_with(": 0")),
        "a failed refresh is counted: {stats}"
    );
    support::assert_no_wasm_panic(&stack);
}

#[tokio::test]
async fn the_same_user_gets_the_same_uuid_on_every_worker_and_after_a_restart() {
    let mut stack = support::start("uuid", support::internal_openai).await;
    let token = support::token(&stack, "dana");
    for _ in 0..4 {
        assert_eq!(post(&stack, &token, "uuid-before").await.status(), 200);
    }
    // The token cache served the returning caller (4 requests, 2 workers).
    let stats = reqwest::get(format!("{}/stats?filter=token_cache", stack.admin_url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(stats.contains("chokepoint.token_cache.hit"), "{stats}");
    stack.restart_envoy().await.expect("Envoy restarts");
    assert_eq!(post(&stack, &token, "uuid-after").await.status(), 200);
    let want = support::uuid_of(&stack, "dana");
    for case in ["uuid-before", "uuid-after"] {
        let seen = upstream_saw(&stack, case).await;
        assert!(!seen.is_empty());
        for r in seen {
            assert_eq!(
                header(&r, "x-chokepoint-user").as_deref(),
                Some(want.as_str()),
                "{case}"
            );
        }
    }
}

/// RS256, what most identity providers sign with, checked inside Envoy's V8 by the
/// filter's own RSA code: a good token passes; one bit off in the signature, or the
/// payload changed, is a 401 in the API's shape.
#[tokio::test]
async fn rs256_tokens_through_envoy() {
    use base64::Engine as _;
    use jwt_simple::prelude::*;

    const ISSUER: &str = "https://rsa.chokepoint.test";
    let key = RS256KeyPair::generate(2048).unwrap().with_key_id("rsa-1");
    let jwk: serde_json::Value = serde_json::from_str(&key.public_key().to_jwk()).unwrap();
    let stack = support::start("rs256", |o| {
        o.overrides.push(Override::new(
            "issuers[+]",
            serde_json::json!({
                "issuer": ISSUER,
                "audiences": [chokepoint_dev::devtoken::DEFAULT_AUDIENCE],
                "jwks": {"inline": {"keys": [jwk]}},
                "trust": {"tenants": ["*"], "groups": ["*"], "cost_centers": ["*"]},
            }),
        ));
    })
    .await;
    let claims = Claims::create(jwt_simple::prelude::Duration::from_mins(10))
        .with_issuer(ISSUER)
        .with_audience(chokepoint_dev::devtoken::DEFAULT_AUDIENCE)
        .with_subject("rita");
    let token = key.sign(claims).unwrap();
    assert_eq!(post(&stack, &token, "rs256").await.status(), 200);

    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (signed, sig) = token.rsplit_once('.').unwrap();
    let mut sig = b64.decode(sig).unwrap();
    sig[100] ^= 1;
    let flipped = format!("{signed}.{}", b64.encode(&sig));
    let (header_b64, _) = signed.split_once('.').unwrap();
    let forged = format!(
        "{header_b64}.{}.{}",
        b64.encode(format!(
            r#"{{"iss":"{ISSUER}","aud":"chokepoint","sub":"mallory","exp":4102444800}}"#
        )),
        token.rsplit_once('.').unwrap().1
    );
    for bad in [flipped, forged] {
        let resp = post(&stack, &bad, "rs256-bad").await;
        assert_eq!(error_code(resp, 401).await, "bad_signature");
    }
    assert!(upstream_saw(&stack, "rs256-bad").await.is_empty());
    support::assert_no_wasm_panic(&stack);
}

/// The policy service knows a viewer as the gateway recorded them: one dev token, sent
/// through Envoy and to the service's `GET /v1/viewer`, is one user UUID, in the access
/// log's record and on the page (the service verifies with the filter's verifier and the
/// shared pseudonym, from the identity file the stack renders and the gateway's salt).
#[tokio::test]
async fn the_policy_service_knows_the_gateways_user() {
    let stack = support::start("viewer", |_| {}).await;
    let token = stack.token(
        &TokenSpec::new("erin")
            .with_tenant("acme")
            .with_groups(["ml", "finops"]),
    );
    let resp = post(&stack, &token, "viewer").await;
    assert_eq!(resp.status(), 200);
    let request_id = resp.headers()["x-chokepoint-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let record = support::access_record(&stack, &request_id).await;
    let viewer = |credential: String| {
        let url = format!("{}/v1/viewer", stack.policy_admin_url);
        async move {
            let r = reqwest::Client::new()
                .get(url)
                .bearer_auth(credential)
                .send()
                .await
                .unwrap();
            (
                r.status().as_u16(),
                r.json::<serde_json::Value>().await.unwrap(),
            )
        }
    };
    // envoy/chokepoint.yaml's ui.admin_groups is [finops].
    let (status, admin) = viewer(token).await;
    assert_eq!(
        (status, admin["viewer"].as_str()),
        (200, Some("admin")),
        "{admin}"
    );
    let member = stack.token(
        &TokenSpec::new("erin")
            .with_tenant("acme")
            .with_groups(["ml"]),
    );
    let (status, user) = viewer(member).await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["viewer"], "user");
    assert_eq!(
        user["user"], record["user"],
        "page {user} vs record {record}"
    );
    assert_eq!(user["user"], support::uuid_of(&stack, "erin"));
    assert_eq!(user["tenant"], record["tenant"]);
    let (status, refused) =
        viewer(stack.token(&TokenSpec::new("erin").expired(Duration::from_secs(600)))).await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (401, Some("expired")),
        "{refused}"
    );
}
