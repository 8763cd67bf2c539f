//! The external guardrail call-out through real Envoy, against the mock guardrail
//! service (LiteLLM's Generic Guardrail API; its verdicts picked by markers in the
//! texts): `BLOCKED` (the API's error, nothing reaches the provider), intervened (the
//! provider gets the replacement), a service slow past the check's timeout or failing
//! with a 500 under each failure mode, the check's key sent as a bearer, and a second
//! turn sending only its new texts.

use chokepoint_dev::devtoken::TokenSpec;
use chokepoint_dev::stack::{Stack, StackOptions};
use chokepoint_render::overrides::Override;
use serde_json::{json, Value};

use crate::support::{self, access_record, error_shape, header, upstream_saw};

const GUARD_KEY: &str = "guard-e2e-key-0123456789";

/// Two service checks on the mock, one per group: `closed` and `open`.
fn guarded(o: &mut StackOptions) {
    let port = std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    // The service's URL names the mock's port, so the mock gets a known one.
    o.ports.mock = port;
    o.guardrail_key = Some(GUARD_KEY.into());
    // One worker: the verdict cache is per worker, and the second turn must meet it.
    o.envoy_concurrency = 1;
    let url = format!(
        "http://127.0.0.1:{port}{}",
        chokepoint_dev::mock::GUARDRAIL_PATH
    );
    let check = |mode: &str| {
        json!({"name": format!("dlp-{mode}"), "scope": {"groups": [mode]},
               "service": {"url": url, "timeout_ms": 500, "failure_mode": mode,
                           "api_key_env": chokepoint_dev::stack::MOCK_GUARDRAIL_KEY_ENV}})
    };
    o.overrides.push(Override::new(
        "guardrails",
        json!({"checks": [check("closed"), check("open")]}),
    ));
}

fn token(stack: &Stack, group: &str) -> String {
    stack.token(
        &TokenSpec::new(format!("dlp-{group}"))
            .with_tenant("acme")
            .with_groups([group]),
    )
}

async fn chat(stack: &Stack, token: &str, case: &str, messages: &[&str]) -> reqwest::Response {
    let messages: Vec<Value> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| json!({"role": if i % 2 == 0 {"user"} else {"assistant"}, "content": m}))
        .collect();
    reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", stack.gateway_url))
        .bearer_auth(token)
        .header("x-test-case", case)
        .json(&json!({"model": "gpt-4o-mini", "messages": messages}))
        .send()
        .await
        .unwrap()
}

fn request_id(resp: &reqwest::Response) -> String {
    resp.headers()["x-chokepoint-request-id"]
        .to_str()
        .unwrap()
        .to_string()
}

/// The calls the guardrail service got whose texts mention `case`: each call's texts.
async fn service_saw(stack: &Stack, case: &str) -> Vec<(Value, Vec<String>)> {
    let url = format!("{}/__mock/requests", stack.mock_url.as_deref().unwrap());
    let all: Vec<Value> = reqwest::get(url).await.unwrap().json().await.unwrap();
    all.into_iter()
        .filter(|r| r["path"] == chokepoint_dev::mock::GUARDRAIL_PATH)
        .filter_map(|r| {
            let body: Value = serde_json::from_str(r["body"].as_str()?).ok()?;
            let texts: Vec<String> = body["texts"]
                .as_array()?
                .iter()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect();
            texts.iter().any(|t| t.contains(case)).then_some((r, texts))
        })
        .collect()
}

fn verdict(name: &str, action: &str, count: u64) -> Value {
    json!([{"name": name, "category": "service", "action": action, "stage": "request", "count": count}])
}

#[tokio::test]
async fn a_guardrail_service_blocks_rewrites_and_fails_as_its_check_says() {
    let stack = support::start("guardrail-service", guarded).await;
    let (closed, open) = (token(&stack, "closed"), token(&stack, "open"));

    // BLOCKED: the API's 400 naming the check, never the service's reason.
    let case = "svc-block";
    let resp = chat(
        &stack,
        &closed,
        case,
        &[&format!("{case}: GUARD-BLOCK this")],
    )
    .await;
    let id = request_id(&resp);
    let (_, code) = error_shape(resp, 400).await;
    assert_eq!(code, "guardrail_blocked");
    assert!(upstream_saw(&stack, case).await.is_empty(), "sent");
    let calls = service_saw(&stack, case).await;
    assert_eq!(calls.len(), 1);
    // The check's key, as a bearer (the mock refuses any other with a 401).
    assert_eq!(
        header(&calls[0].0, "authorization").as_deref(),
        Some(format!("Bearer {GUARD_KEY}").as_str())
    );
    let record = access_record(&stack, &id).await;
    assert_eq!(record["decision"], "guardrail_blocked");
    assert_eq!(record["guardrails"], verdict("dlp-closed", "block", 0));

    // GUARDRAIL_INTERVENED: the provider gets the replacement, the client its answer.
    let case = "svc-mask";
    let text = format!("{case}: mail GUARD-MASK:Alice the report, Alice");
    let resp = chat(&stack, &closed, case, &[&text]).await;
    assert_eq!(resp.status(), 200);
    let id = request_id(&resp);
    let seen = upstream_saw(&stack, case).await;
    assert_eq!(seen.len(), 1);
    let sent: Value = serde_json::from_str(seen[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        sent["messages"][0]["content"],
        format!("{case}: mail GUARD-MASK:[MASKED] the report, [MASKED]")
    );
    assert_eq!(sent["model"], "gpt-4o-mini");
    let record = access_record(&stack, &id).await;
    assert_eq!(record["decision"], "allowed");
    assert_eq!(record["guardrails"], verdict("dlp-closed", "mask", 1));

    // Slow past the timeout, and a 500: closed answers 503, open sends it unchecked.
    for marker in ["GUARD-SLOW", "GUARD-500"] {
        let case = format!("svc-{marker}-closed");
        let resp = chat(&stack, &closed, &case, &[&format!("{case}: {marker}")]).await;
        let id = request_id(&resp);
        let (_, code) = error_shape(resp, 503).await;
        assert_eq!(code, "guardrail_unavailable", "{case}");
        assert!(upstream_saw(&stack, &case).await.is_empty(), "{case}: sent");
        let record = access_record(&stack, &id).await;
        assert_eq!(record["decision"], "guardrail_unavailable", "{case}");
        assert_eq!(record["guardrails"], verdict("dlp-closed", "block", 0));

        let case = format!("svc-{marker}-open");
        let resp = chat(&stack, &open, &case, &[&format!("{case}: {marker}")]).await;
        assert_eq!(resp.status(), 200, "{case}");
        let id = request_id(&resp);
        assert_eq!(upstream_saw(&stack, &case).await.len(), 1, "{case}");
        let record = access_record(&stack, &id).await;
        assert_eq!(record["decision"], "allowed", "{case}");
        assert_eq!(record["guardrails"], verdict("dlp-open", "unchecked", 0));
    }

    // A second turn: only the texts not judged before go to the service.
    let case = "svc-turns";
    let first = [format!("{case}: fix the build")];
    let resp = chat(&stack, &open, case, &[&first[0]]).await;
    assert_eq!(resp.status(), 200);
    let second = [
        first[0].clone(),
        format!("{case}: which file?"),
        format!("{case}: main.rs"),
    ];
    let turn: Vec<&str> = second.iter().map(String::as_str).collect();
    let resp = chat(&stack, &open, case, &turn).await;
    assert_eq!(resp.status(), 200);
    let calls: Vec<Vec<String>> = service_saw(&stack, case)
        .await
        .into_iter()
        .map(|(_, texts)| texts)
        .collect();
    assert_eq!(calls, [first.to_vec(), second[1..].to_vec()]);
    support::assert_no_wasm_panic(&stack);
}
