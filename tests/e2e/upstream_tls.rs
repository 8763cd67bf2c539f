//! Upstream TLS checks the upstream's name, not only its CA (issue 18, item 11). A TLS
//! server whose certificate chains to a CA the gateway trusts (the policy file's
//! `ca_file`) but names another host never receives a request, so never a provider key,
//! and a JWKS server like it never gives the gateway keys; the same server with a
//! certificate for its own name works. Before the fix the wrong-name rows got 200 and
//! the server saw the request with the key, and the wrong-name JWKS was fetched.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use chokepoint_dev::devtoken::{DevKey, TokenSpec, DEFAULT_AUDIENCE};
use chokepoint_dev::stack::process::{self, Managed};
use chokepoint_dev::stack::{random_hex, Stack};
use chokepoint_render::overrides::Override;
use serde_json::{json, Value};

use crate::support::{self, header};
use crate::tls_fixtures::{Listener, Pki, TlsFront};

/// The name every upstream is reached by; `localhost` resolves without DNS.
const HOST: &str = "localhost";
const WRONG_NAME: &str = "attacker.example";
const WRONG_IDP: &str = "https://wrong-name-idp.chokepoint.test";
const RIGHT_IDP: &str = "https://right-name-idp.chokepoint.test";
const FOREIGN_IDP: &str = "https://foreign-ca-idp.chokepoint.test";

fn spawn(dir: &Path, bin: &str, args: &[&str], env: &[(&str, &str)]) -> (Managed, u16) {
    let addr_file = dir.join(format!("{bin}.addr"));
    let mut cmd = Command::new(support::root().join("target/debug").join(bin));
    cmd.args(["--listen", "127.0.0.1:0", "--addr-file"])
        .arg(&addr_file)
        .args(args)
        .envs(env.iter().copied());
    let mut proc = Managed::spawn(bin, cmd, &dir.join(format!("{bin}.log"))).unwrap();
    let addr = process::wait_for_file(&addr_file, &mut proc, Duration::from_secs(10)).unwrap();
    let port = addr.rsplit(':').next().unwrap().parse().unwrap();
    (proc, port)
}

async fn mock_saw(port: u16, case: &str) -> Vec<Value> {
    let all: Vec<Value> = reqwest::get(format!("http://127.0.0.1:{port}/__mock/requests"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    all.into_iter()
        .filter(|r| header(r, "x-test-case").as_deref() == Some(case))
        .collect()
}

async fn send(
    stack: &Stack,
    token: &str,
    case: &str,
    path: &str,
    body: Value,
) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(format!("{}{path}", stack.gateway_url))
        .bearer_auth(token)
        .header("x-test-case", case)
        .json(&body);
    if path == "/v1/messages" {
        req = req.header("anthropic-version", "2023-06-01");
    }
    req.send().await.unwrap()
}

fn idp_token(key: &DevKey, issuer: &str) -> String {
    key.mint(&TokenSpec::new("tls-user").with_issuer(issuer))
}

/// Row 11 of the trust table (`security.rs`) runs this.
pub async fn upstream_tls_verifies_the_host_name() {
    let dir: PathBuf =
        std::env::temp_dir().join(format!("chokepoint-upstream-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();

    // The CA the gateway is told to trust, and one it is not.
    let mut trusted = Pki::new(&dir, "trusted-ca");
    let mut foreign = Pki::new(&dir, "foreign-ca");
    let right = trusted.issue(HOST);
    let wrong = trusted.issue(WRONG_NAME);
    let foreign_right_name = foreign.issue(HOST);

    // One provider server and one identity provider, each behind the TLS front.
    let key = format!("sk-tls-{}", random_hex(8));
    let (_mock, mock_port) = spawn(
        &dir,
        "chokepoint-mock",
        &["--name", "tls-upstream"],
        &[("CHOKEPOINT_MOCK_API_KEY", &key)],
    );
    let idp_key = DevKey::generate("tls-idp");
    let jwks_file = dir.join("idp-jwks.json");
    std::fs::write(&jwks_file, idp_key.jwks_json()).unwrap();
    let jwks_arg = jwks_file.to_string_lossy().to_string();
    let (_idp, idp_port) = spawn(&dir, "chokepoint-idp", &["--jwks-file", &jwks_arg], &[]);
    let listener = |name, leaf: &crate::tls_fixtures::Leaf, backend_port| Listener {
        name,
        leaf: leaf.clone(),
        backend_port,
    };
    let front = TlsFront::start(
        &dir,
        &[
            listener("provider_wrong", &wrong, mock_port),
            listener("provider_right", &right, mock_port),
            listener("jwks_wrong", &wrong, idp_port),
            listener("jwks_right", &right, idp_port),
            listener("jwks_foreign", &foreign_right_name, idp_port),
        ],
    )
    .await;

    // Anthropic (a route of its own) and OpenAI (first of the gpt-4o-mini fallback chain)
    // reach the wrong-name listener, Gemini the right one; all trust the test CA.
    let url = |listener: &str| format!("https://{HOST}:{}", front.port(listener));
    let ca = trusted.ca().to_string_lossy().to_string();
    let provider_env = vec![
        ("ANTHROPIC_BASE_URL".to_string(), url("provider_wrong")),
        ("ANTHROPIC_API_KEY".to_string(), key.clone()),
        (
            "OPENAI_BASE_URL".to_string(),
            format!("{}/v1", url("provider_wrong")),
        ),
        ("OPENAI_API_KEY".to_string(), key.clone()),
        ("GEMINI_BASE_URL".to_string(), url("provider_right")),
        ("GEMINI_API_KEY".to_string(), key.clone()),
    ];
    let mut overrides: Vec<Override> = ["anthropic", "openai", "gemini"]
        .iter()
        .map(|p| Override::new(format!("providers[name={p}].ca_file"), ca.clone()))
        .collect();
    for (issuer, listener) in [
        (WRONG_IDP, "jwks_wrong"),
        (RIGHT_IDP, "jwks_right"),
        (FOREIGN_IDP, "jwks_foreign"),
    ] {
        overrides.push(Override::new(
            "issuers[+]",
            json!({
                "issuer": issuer,
                "audiences": [DEFAULT_AUDIENCE],
                "jwks": {"uri": format!("{}/jwks.json", url(listener)), "ca_file": ca, "refresh_secs": 5, "timeout_ms": 1000},
                "trust": {"tenants": ["*"], "groups": ["*"], "cost_centers": ["*"]},
            }),
        ));
    }
    let stack = support::start("upstream-tls", move |o| {
        o.provider_env = provider_env;
        o.overrides = overrides;
    })
    .await;
    let token = support::token(&stack, "tls-user");

    let messages = json!({"model": "claude-sonnet-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]});
    let gemini = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]});
    let rows = [
        Row {
            case: "wrong-name",
            path: "/v1/messages",
            body: messages,
            status: 503,
            provider: None,
            listener: "provider_wrong",
            cluster: "provider_anthropic",
            reached: false,
        },
        Row {
            case: "right-name",
            path: "/v1beta/models/gemini-2.5-flash:generateContent",
            body: gemini,
            status: 200,
            provider: Some("gemini"),
            listener: "provider_right",
            cluster: "provider_gemini",
            reached: true,
        },
        // The chain's first member refuses the wrong name; the retry goes on to the
        // backup (plain http here), and the wrong-name server still sees nothing.
        Row {
            case: "wrong-name-then-fallback",
            path: "/v1/chat/completions",
            body: support::chat(false),
            status: 200,
            provider: Some("openai-backup"),
            listener: "provider_wrong",
            cluster: "provider_openai",
            reached: false,
        },
    ];
    for r in rows {
        let case = r.case;
        let san_refusals = format!("cluster.{}.ssl.fail_verify_san", r.cluster);
        let refused_before = stack.envoy_stat(&san_refusals).await;
        let before = front.seen(r.listener).await;
        let resp = send(&stack, &token, case, r.path, r.body).await;
        let got = resp.status().as_u16();
        let served_by = resp
            .headers()
            .get("x-chokepoint-provider")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = resp.text().await.unwrap();
        let after = front.seen(r.listener).await;
        let saw = mock_saw(mock_port, case).await;
        let refused = stack.envoy_stat(&san_refusals).await - refused_before;
        println!(
            "{case}: {got} via {served_by:?}; {} (connections, handshakes, requests) {before:?} -> {after:?}; {refused} SAN refusal(s); body {text:.120}",
            r.listener
        );
        assert_eq!(got, r.status, "{case}: {text}\n{}", stack.logs());
        assert_eq!(served_by.as_deref(), r.provider, "{case}");
        assert!(
            after.0 > before.0,
            "{case}: the gateway must have dialled {}",
            r.listener
        );
        if r.reached {
            assert_eq!(
                after.2 - before.2,
                1,
                "{case}: one request at {}",
                r.listener
            );
            assert_eq!(saw.len(), 1, "{case}");
            assert_eq!(
                header(&saw[0], "x-goog-api-key").as_deref(),
                Some(key.as_str()),
                "{case}"
            );
            assert_eq!(refused, 0, "{case}");
        } else {
            assert_eq!(
                after.1, before.1,
                "{case}: no TLS session with {}",
                r.listener
            );
            assert_eq!(
                after.2, before.2,
                "{case}: no HTTP request at {}",
                r.listener
            );
            assert!(saw.is_empty(), "{case}: the server got {saw:?}");
            // Refused for its name (the CA was the trusted one): Envoy counts it.
            assert!(refused > 0, "{case}: no SAN refusal on {}", r.cluster);
        }
        if r.status == 503 {
            // Envoy's own upstream failure, passed on as the gateway does today.
            assert!(text.contains("upstream connect error"), "{case}: {text}");
        }
    }

    // JWKS: the right-name server's keys arrive...
    let deadline = Instant::now() + Duration::from_secs(15);
    let right_token = idp_token(&idp_key, RIGHT_IDP);
    loop {
        let resp = send(
            &stack,
            &right_token,
            "jwks-right",
            "/v1/chat/completions",
            support::chat(false),
        )
        .await;
        if resp.status() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "keys from the right-name JWKS never arrived: {}\n{}",
            resp.status(),
            stack.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(front.seen("jwks_right").await.2 > 0);
    // ...and no other's, the same key set behind a wrong name or an unknown CA: tokens
    // of those issuers are refused, and the servers never saw a request. (case, issuer,
    // listener, Envoy's count of why: a name, or a CA, the cluster refused)
    let jwks_rows = [
        (
            "jwks-wrong-name",
            WRONG_IDP,
            "jwks_wrong",
            "fail_verify_san",
        ),
        (
            "jwks-foreign-ca",
            FOREIGN_IDP,
            "jwks_foreign",
            "fail_verify_error",
        ),
    ];
    for (case, issuer, listener, why) in jwks_rows {
        let token = idp_token(&idp_key, issuer);
        let resp = send(
            &stack,
            &token,
            case,
            "/v1/chat/completions",
            support::chat(false),
        )
        .await;
        assert_eq!(
            support::error_code(resp, 503).await,
            "jwks_unavailable",
            "{case}"
        );
        let (connections, handshakes, requests) = front.seen(listener).await;
        let refusals = stack
            .envoy_stat(&format!("cluster.jwks_[0-9]+.ssl.{why}"))
            .await;
        println!("{case}: {listener} (connections, handshakes, requests) = ({connections}, {handshakes}, {requests}); {refusals} {why}");
        assert!(
            connections > 0,
            "{case}: the gateway must have dialled {listener}"
        );
        assert_eq!(
            (handshakes, requests),
            (0, 0),
            "{case}: keys must never be fetched"
        );
        assert!(refusals > 0, "{case}: no {why} on a JWKS cluster");
    }
    support::assert_no_wasm_panic(&stack);
    let _ = std::fs::remove_dir_all(&dir);
}

/// One request to a provider through the TLS front, and what must come of it.
struct Row {
    case: &'static str,
    path: &'static str,
    body: Value,
    status: u16,
    /// The provider that answered (`x-chokepoint-provider`), if any did.
    provider: Option<&'static str>,
    /// The front's listener the provider's URL points at.
    listener: &'static str,
    /// The gateway's cluster for that provider.
    cluster: &'static str,
    /// Whether the request may reach the listener (its certificate names the host).
    reached: bool,
}
