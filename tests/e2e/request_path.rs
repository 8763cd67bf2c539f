//! The thin request path: verify, strip, authorize, inject, forward, stream back.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chokepoint_dev::devtoken::{DevKey, TokenSpec};
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use serde_json::Value;

use crate::support::{self, chat, error_code, header, upstream_saw, LIMIT};

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[tokio::test]
async fn request_path() {
    // An internal provider: it sees the caller's identity headers, checked below.
    let stack = support::start("request-path", support::internal_openai).await;
    let client = reqwest::Client::new();
    let url = format!("{}/v1/chat/completions", stack.gateway_url);

    // 1. The provider gets the gateway's key and the anonymous UUID, never the JWT.
    let jwt = support::token(&stack, "alice");
    let resp = client
        .post(&url)
        .bearer_auth(&jwt)
        .header("x-test-case", "happy")
        .json(&chat(false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert!(body["usage"]["total_tokens"].as_u64().unwrap() > 0);
    let seen = upstream_saw(&stack, "happy").await;
    assert_eq!(seen.len(), 1);
    let r = &seen[0];
    assert_eq!(
        header(r, "authorization"),
        Some(format!("Bearer {}", stack.provider_key()))
    );
    assert_eq!(
        header(r, "x-chokepoint-user"),
        Some(support::uuid_of(&stack, "alice"))
    );
    assert_eq!(header(r, "x-chokepoint-tenant").as_deref(), Some("acme"));
    let all_headers = r["headers"].to_string();
    assert!(
        !all_headers.contains(&jwt),
        "the client JWT reached the provider"
    );
    assert!(
        !all_headers.contains("alice"),
        "the subject reached the provider"
    );

    // 2. Nothing a client sends can pose as the gateway or carry its own provider key.
    let forged_uuid = "00000000-0000-8000-8000-000000000000";
    let resp = client
        .post(&url)
        .bearer_auth(&jwt)
        .header("x-test-case", "spoof")
        .header("x-api-key", "sk-client-own-anthropic")
        .header("api-key", "client-own-azure")
        .header("x-goog-api-key", "client-own-gemini")
        .header("x-chokepoint-user", forged_uuid)
        .header("x-chokepoint-tenant", "someone-else")
        .header("cookie", "session=client")
        .header("openai-organization", "org-client-own")
        .header("openai-project", "proj-client-own")
        .json(&chat(false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = upstream_saw(&stack, "spoof").await;
    assert_eq!(seen.len(), 1);
    let r = &seen[0];
    for name in [
        "x-api-key",
        "api-key",
        "x-goog-api-key",
        "cookie",
        "openai-organization",
        "openai-project",
    ] {
        assert_eq!(header(r, name), None, "{name} reached the provider");
    }
    assert_eq!(
        header(r, "x-chokepoint-user"),
        Some(support::uuid_of(&stack, "alice"))
    );
    assert_eq!(header(r, "x-chokepoint-tenant").as_deref(), Some("acme"));
    assert!(!r["headers"].to_string().contains(forged_uuid));
    assert_eq!(
        header(r, "authorization"),
        Some(format!("Bearer {}", stack.provider_key()))
    );
    // Gemini also takes a key in the query string: the client's never reaches it.
    let sdk_jwt = support::token(&stack, "sdk-user");
    let resp = client
        .post(format!(
            "{}/v1beta/models/gemini-2.5-flash:generateContent?key=AIza-client-own&alt=json",
            stack.gateway_url
        ))
        .header("x-goog-api-key", &sdk_jwt)
        .header("x-test-case", "gemini-key-param")
        .json(&serde_json::json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = upstream_saw(&stack, "gemini-key-param").await;
    assert_eq!(seen.len(), 1);
    let path = seen[0]["path"].as_str().unwrap();
    assert!(path.ends_with(":generateContent?alt=json"), "{path}");
    assert!(!seen[0].to_string().contains("AIza-client-own"));
    assert_eq!(
        header(&seen[0], "x-goog-api-key"),
        Some(stack.provider_key().to_string())
    );

    // Anthropic's token counting (its SDK's `messages.count_tokens`) goes through too.
    let resp = client
        .post(format!("{}/v1/messages/count_tokens", stack.gateway_url))
        .header("x-api-key", &sdk_jwt)
        .header("anthropic-version", "2023-06-01")
        .header("x-test-case", "count-tokens")
        .json(&serde_json::json!({"model": "claude-sonnet-4-5",
            "messages": [{"role": "user", "content": "Count me, please."}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let counted: Value = resp.json().await.unwrap();
    assert!(counted["input_tokens"].as_u64().unwrap() > 0, "{counted}");
    let seen = upstream_saw(&stack, "count-tokens").await;
    assert_eq!(
        header(&seen[0], "x-api-key"),
        Some(stack.provider_key().to_string())
    );

    // 3. Bad credentials: 401 in the OpenAI error shape, and the provider never called.
    let other_key = DevKey::generate_with_derived_kid();
    let table: Vec<(&str, Option<String>, &str)> = vec![
        ("no-token", None, "missing"),
        ("not-bearer", Some("Basic YWxpY2U6cHc=".into()), "malformed"),
        ("garbage", Some("Bearer abc.def.ghi".into()), "malformed"),
        (
            "truncated",
            Some(format!(
                "Bearer {}",
                stack
                    .token(&TokenSpec::new("alice"))
                    .replace('.', ".x")
                    .split_at(20)
                    .0
            )),
            "malformed",
        ),
        (
            "other-key",
            Some(format!(
                "Bearer {}",
                other_key.mint(&TokenSpec::new("alice"))
            )),
            "unknown_key",
        ),
        (
            "expired",
            Some(format!(
                "Bearer {}",
                stack.token(&TokenSpec::new("alice").expired(Duration::from_secs(3600)))
            )),
            "expired",
        ),
        (
            "wrong-audience",
            Some(format!(
                "Bearer {}",
                stack.token(&TokenSpec::new("alice").with_audience("other-app"))
            )),
            "wrong_audience",
        ),
        (
            "wrong-issuer",
            Some(format!(
                "Bearer {}",
                stack.token(&TokenSpec::new("alice").with_issuer("https://evil.example"))
            )),
            "wrong_issuer",
        ),
    ];
    for (case, auth, code) in table {
        let mut req = client
            .post(&url)
            .header("x-test-case", case)
            .json(&chat(false));
        if let Some(a) = auth {
            req = req.header(AUTHORIZATION, a);
        }
        let resp = req.send().await.unwrap();
        assert!(resp.headers().contains_key("www-authenticate"), "{case}");
        assert_eq!(error_code(resp, 401).await, code, "{case}");
        assert!(
            upstream_saw(&stack, case).await.is_empty(),
            "{case}: provider was called"
        );
    }
    // A signature made by the right key over other claims.
    let good = support::token(&stack, "alice");
    let forged = support::token(&stack, "mallory");
    let mut p: Vec<&str> = good.split('.').collect();
    let forged_payload = forged.split('.').nth(1).unwrap();
    p[1] = forged_payload;
    let resp = client
        .post(&url)
        .bearer_auth(p.join("."))
        .header("x-test-case", "tampered")
        .json(&chat(false))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(resp, 401).await, "bad_signature");
    // Two Authorization headers: refused, whichever one is valid.
    let mut two = HeaderMap::new();
    two.append(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {good}")).unwrap(),
    );
    two.append(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {forged}")).unwrap(),
    );
    let resp = client
        .post(&url)
        .headers(two)
        .header("x-test-case", "two-auth")
        .json(&chat(false))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(resp, 401).await, "malformed");
    assert!(upstream_saw(&stack, "two-auth").await.is_empty());

    // 4. Bad bodies get the API's own error shape.
    let resp = client
        .post(&url)
        .bearer_auth(&jwt)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(resp, 400).await, "invalid_body");
    // Over the filter's limit, and far over Envoy's own buffer limit: the same answer, in
    // the shape of the API called.
    for (path, shape) in [
        ("/v1/chat/completions", "openai"),
        ("/v1/messages", "anthropic"),
        ("/v1beta/models/gemini-2.5-flash:generateContent", "gemini"),
        (
            "/v1/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
            "gemini",
        ),
    ] {
        for size in [1536 * 1024, 5 * 1024 * 1024] {
            let big = format!("{{\"model\":\"m\",\"pad\":\"{}\"}}", "x".repeat(size));
            let resp = client
                .post(format!("{}{path}", stack.gateway_url))
                .bearer_auth(&jwt)
                .header("content-type", "application/json")
                .body(big)
                .send()
                .await
                .unwrap();
            assert_eq!(
                support::error_shape(resp, 413).await,
                (shape, "request_too_large".to_string()),
                "{path}, {size} bytes"
            );
        }
    }
    // No token: each SDK gets its own API's 401 (on the model list, shared by all three,
    // the header each SDK sends decides).
    for (path, sdk_header, shape) in [
        ("/v1/messages", None, "anthropic"),
        (
            "/v1/models",
            Some(("anthropic-version", "2023-06-01")),
            "anthropic",
        ),
        (
            "/v1/models",
            Some(("x-goog-api-client", "google-genai-sdk/3.6.1")),
            "gemini",
        ),
        (
            "/v1beta/models/gemini-2.5-flash:countTokens",
            None,
            "gemini",
        ),
        ("/v1/models", None, "openai"),
    ] {
        let mut req = client.post(format!("{}{path}", stack.gateway_url));
        if let Some((name, value)) = sdk_header {
            req = req.header(name, value);
        }
        let resp = req.json(&chat(false)).send().await.unwrap();
        assert_eq!(
            support::error_shape(resp, 401).await,
            (shape, "missing".to_string()),
            "{path} {sdk_header:?}"
        );
    }

    // 5. Over the per-user limit: 429 with Retry-After, and the provider never called.
    let limited = support::token(&stack, "limited-user");
    for i in 0..LIMIT {
        let resp = client
            .post(&url)
            .bearer_auth(&limited)
            .header("x-test-case", "under-limit")
            .json(&chat(false))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "request {i} is within the limit");
    }
    let resp = client
        .post(&url)
        .bearer_auth(&limited)
        .header("x-test-case", "over-limit")
        .json(&chat(false))
        .send()
        .await
        .unwrap();
    let retry: u64 = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&retry), "retry-after {retry}");
    assert_eq!(error_code(resp, 429).await, "rate_limited");
    assert!(upstream_saw(&stack, "over-limit").await.is_empty());
    // Another user is unaffected.
    let resp = client
        .post(&url)
        .bearer_auth(&jwt)
        .json(&chat(false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // 6. Streaming flows chunk by chunk: the first event reaches the client while the
    // provider is still paused before its last one.
    let streamer = support::token(&stack, "streamer");
    let mut resp = client
        .post(&url)
        .bearer_auth(&streamer)
        .header("x-test-case", "stream")
        .header("x-mock-pause-after", "2")
        .header("x-mock-pause-ms", "1500")
        .json(&chat(true))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let first = resp.chunk().await.unwrap().expect("first chunk");
    let first_at = now_ms();
    assert!(
        String::from_utf8_lossy(&first).starts_with("data: "),
        "{first:?}"
    );
    let mut text = String::from_utf8_lossy(&first).into_owned();
    while let Some(c) = resp.chunk().await.unwrap() {
        text.push_str(&String::from_utf8_lossy(&c));
    }
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    let seen = upstream_saw(&stack, "stream").await;
    let last_event_ms = seen[0]["last_event_ms"]
        .as_u64()
        .expect("mock recorded its last event");
    assert!(
        first_at + 1000 <= last_event_ms,
        "client got the first event at {first_at}, provider sent its last at {last_event_ms}: the stream was held back"
    );

    // 7. Header values that are not UTF-8 (Latin-1 is legal HTTP/1.1) from the client or
    //    the provider are read, never a trap of the filter's VM: the request goes on, a
    //    mangled token is a 401 in the API's shape.
    let latin1 = |bytes: &[u8]| HeaderValue::from_bytes(bytes).unwrap();
    let resp = client
        .post(&url)
        .bearer_auth(support::token(&stack, "latin1-user"))
        .header("x-note", latin1(b"caf\xe9"))
        .header(
            "x-mock-content-type",
            latin1(b"application/json; note=caf\xe9"),
        )
        .json(&chat(false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"].as_bytes(),
        b"application/json; note=caf\xe9"
    );
    let resp = client
        .post(&url)
        .header(AUTHORIZATION, latin1(b"Bearer \xff\xfe"))
        .json(&chat(false))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(resp, 401).await, "malformed");
    support::assert_no_wasm_panic(&stack);

    // 8. Envoy counted the refusals.
    let stats = client
        .get(format!("{}/stats", stack.admin_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for stat in [
        "chokepoint.auth_failed.missing",
        "chokepoint.auth_failed.expired",
        "chokepoint.authorize.denied",
    ] {
        let line = stats
            .lines()
            .find(|l| l.contains(stat))
            .unwrap_or_else(|| panic!("{stat} missing"));
        let n: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(n >= 1, "{line}");
    }
    // The provider key never shows in Envoy's admin output.
    let dump = client
        .get(format!("{}/config_dump", stack.admin_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !dump.contains(stack.provider_key()),
        "provider key in /config_dump"
    );
    assert!(
        !stats.contains(stack.provider_key()),
        "provider key in /stats"
    );
}
