//! The trust table (issue #18): one row per way around the choke point, each an attack
//! run against the real stack. Every row failed against the build before its fix (the
//! closing note of the change lists how); all of them must pass now. Rows run a few at a
//! time, each on a stack of its own, and the test prints the whole table before it fails.

use std::future::Future;
use std::pin::Pin;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chokepoint_dev::devtoken::TokenSpec;
use chokepoint_dev::stack::Stack;
use chokepoint_render::overrides::Override;
use serde_json::{json, Value};

use crate::support::{self, access_record, error_shape, header, upstream_saw};

type RowResult = Result<(), String>;
type RowFuture = Pin<Box<dyn Future<Output = RowResult> + Send>>;
/// (issue item, what must hold, the attack)
type Row = (u8, &'static str, fn() -> RowFuture);

const ROWS: [Row; 13] = [
    (1, "only the gateway may call the policy service", || {
        Box::pin(policy_service_trusts_only_the_gateway())
    }),
    (2, "a model without a price is never free", || {
        Box::pin(unpriced_models_are_refused())
    }),
    (3, "hanging up is not a way to spend without paying", || {
        Box::pin(hanging_up_is_charged())
    }),
    (4, "the reservation bounds what is charged", || {
        Box::pin(reservations_bound_the_charge())
    }),
    (
        5,
        "the path's deployment or model is what is billed",
        || Box::pin(path_models_are_billed()),
    ),
    (6, "one bad batch cannot wedge delivery", || {
        Box::pin(long_model_names_cannot_wedge_delivery())
    }),
    (7, "client-chosen model names do not fill Redis", || {
        Box::pin(model_names_do_not_fill_redis())
    }),
    (8, "only the methods the gateway understands", || {
        Box::pin(unknown_methods_are_refused())
    }),
    (9, "fail-open cannot be triggered by the client", || {
        Box::pin(fail_open_is_not_client_triggerable())
    }),
    (10, "an issuer asserts only its own tenants", || {
        Box::pin(issuers_are_scoped())
    }),
    (11, "upstream TLS checks the host name", || {
        Box::pin(upstream_tls_checks_names())
    }),
    (12, "Envoy admin stays on loopback", || {
        Box::pin(envoy_admin_stays_on_loopback())
    }),
    (
        13,
        "internal headers never reach an external provider",
        || Box::pin(identity_headers_stay_internal()),
    ),
];

#[tokio::test]
async fn trust_table() {
    let slots = Arc::new(tokio::sync::Semaphore::new(3));
    // `CHOKEPOINT_TRUST_ROWS=2,10` runs only those rows (while working on one of them).
    let only: Option<Vec<u8>> = std::env::var("CHOKEPOINT_TRUST_ROWS")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect());
    let mut running = Vec::new();
    for (item, what, row) in ROWS {
        if only.as_ref().is_some_and(|o| !o.contains(&item)) {
            continue;
        }
        let slots = slots.clone();
        running.push((
            item,
            what,
            tokio::spawn(async move {
                let _slot = slots.acquire_owned().await;
                let start = Instant::now();
                (row().await, start.elapsed())
            }),
        ));
    }
    let mut failed = Vec::new();
    let mut table = String::from("\nissue #18 trust table\n");
    for (item, what, handle) in running {
        let (verdict, took) = match handle.await {
            Ok((result, took)) => (result, took),
            Err(e) => (Err(panic_text(e)), Duration::ZERO),
        };
        let mark = if verdict.is_ok() { "PASS" } else { "FAIL" };
        table.push_str(&format!(
            "  {mark}  {item:>2}  {what}  ({:.1}s)\n",
            took.as_secs_f64()
        ));
        if let Err(why) = verdict {
            failed.push(format!("item {item} ({what}): {why}"));
        }
    }
    println!("{table}");
    assert!(failed.is_empty(), "{table}\n{}", failed.join("\n\n"));
}

fn panic_text(e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(p) => p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panicked".into()),
        Err(e) => e.to_string(),
    }
}

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

/// POSTs `body` to `path` as that API's SDK would (the JWT in its key header, Anthropic's
/// version header), tagged `case` for the mock's log, with `extra` headers (faults).
async fn send(
    stack: &Stack,
    path: &str,
    token: &str,
    case: &str,
    extra: &[(&str, &str)],
    body: &Value,
) -> reqwest::Response {
    let key_header = if path.starts_with("/v1beta/") || path.contains(':') {
        "x-goog-api-key"
    } else if path.starts_with("/openai/") {
        "api-key"
    } else {
        "authorization"
    };
    let key = if key_header == "authorization" {
        format!("Bearer {token}")
    } else {
        token.to_string()
    };
    let mut req = client()
        .post(format!("{}{path}", stack.gateway_url))
        .header(key_header, key)
        .header("anthropic-version", "2023-06-01")
        .header("x-test-case", case);
    for (name, value) in extra {
        req = req.header(*name, *value);
    }
    req.json(body).send().await.expect("gateway answers")
}

/// [`send`] without extra headers.
async fn post(
    stack: &Stack,
    path: &str,
    token: &str,
    case: &str,
    body: &Value,
) -> reqwest::Response {
    send(stack, path, token, case, &[], body).await
}

/// The request id the gateway gave an answer, for its access-log record.
fn request_id(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("x-chokepoint-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

async fn set_user_limits(stack: &Stack, user: &str, limits: Value) -> RowResult {
    let resp = client()
        .put(format!(
            "{}/v1/admin/limits/user/{user}",
            policy_admin(stack)
        ))
        .bearer_auth(&stack.opts.admin_token)
        .json(&limits)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    ensure!(
        status == 200,
        "setting limits: {status} {}",
        resp.text().await.unwrap_or_default()
    );
    Ok(())
}

/// Where the policy service's admin API listens.
fn policy_admin(stack: &Stack) -> &str {
    &stack.policy_admin_url
}

fn big_model(bytes: usize) -> String {
    format!("gpt-{}", "x".repeat(bytes))
}

// 1 ------------------------------------------------------------------------------------

/// Anyone who can reach the policy service could book a zero-token record under an id the
/// gateway will use, or drain a team's budget with reservations.
async fn policy_service_trusts_only_the_gateway() -> RowResult {
    let stack = support::start("sec-policy-auth", |_| {}).await;
    let user = support::uuid_of(&stack, "mallory");
    let authorize = json!({"request_id": "forged-1", "user": user, "tenant": "acme", "groups": [],
        "model": "gpt-4o-mini", "provider": "openai", "stream": false,
        "reserve_tokens": 1_000_000, "reserve_cost_micros": 25_000_000});
    let usage = json!({"records": [{"request_id": "forged-2", "user": user, "input_tokens": 0,
        "output_tokens": 0, "cost_micros": 0}]});
    for (path, body) in [("/v1/authorize", &authorize), ("/v1/usage", &usage)] {
        for bearer in [
            None,
            Some("not-the-gateway-token-but-long-enough-0123456789"),
        ] {
            let mut req = client()
                .post(format!("{}{path}", stack.policy_url))
                .json(body);
            if let Some(b) = bearer {
                req = req.bearer_auth(b);
            }
            let resp = req.send().await.map_err(|e| e.to_string())?;
            ensure!(
                resp.status() == 401,
                "POST {path} with {bearer:?}: got {}, want 401",
                resp.status()
            );
        }
    }
    let admin_on_gateway_port = client()
        .get(format!("{}/v1/admin/limits", stack.policy_url))
        .bearer_auth(&stack.opts.admin_token)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    ensure!(
        stack.policy_url != policy_admin(&stack) && admin_on_gateway_port.status() == 404,
        "the admin API answers {} on the gateway's port",
        admin_on_gateway_port.status()
    );
    // The gateway itself still gets through, and its record is booked.
    let token = support::token(&stack, "alice");
    let resp = post(
        &stack,
        "/v1/chat/completions",
        &token,
        "sec-1",
        &support::chat(false),
    )
    .await;
    ensure!(resp.status() == 200, "gateway request: {}", resp.status());
    support::ledger_settled(&stack, &support::uuid_of(&stack, "alice"), 1).await;
    Ok(())
}

// 2 ------------------------------------------------------------------------------------

/// `gpt-4o` was booked at 0 µ$ against a $25 budget; Claude Code's default model was
/// unpriced; a route without a price passed validation.
async fn unpriced_models_are_refused() -> RowResult {
    // (a) A policy with a dollar budget must price every model a route can reach.
    let dir = std::env::temp_dir().join(format!("chokepoint-sec2-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let file = dir.join("unpriced.yaml");
    std::fs::copy(
        support::root().join("envoy/prices.yaml"),
        dir.join("prices.yaml"),
    )
    .map_err(|e| e.to_string())?;
    let shipped = std::fs::read_to_string(support::root().join("envoy/chokepoint.yaml"))
        .map_err(|e| e.to_string())?;
    let jwks = dir.join("dev-jwks.json");
    std::fs::write(
        &jwks,
        chokepoint_dev::devtoken::DevKey::generate_with_derived_kid().jwks_json(),
    )
    .map_err(|e| e.to_string())?;
    let edited = shipped
        .replace(
            "  routes:\n",
            "  routes:\n    - model: local-*\n      providers: [openai]\n",
        )
        .replace("../.chokepoint/dev-jwks.json", &jwks.to_string_lossy());
    std::fs::write(&file, edited).map_err(|e| e.to_string())?;
    let validate = Command::new(config_binary())
        .arg("validate")
        .arg(&file)
        .output()
        .map_err(|e| format!("chokepoint-config: {e}"))?;
    let stderr = String::from_utf8_lossy(&validate.stderr);
    ensure!(
        !validate.status.success() && stderr.contains("models.routes[0]"),
        "validate accepted a dollar budget over an unpriced route (exit {:?}): {stderr}",
        validate.status.code()
    );

    // (b) The shipped prices cover what the routes reach, Claude Code's model included.
    let stack = support::start("sec-unpriced", |o| {
        o.overrides.push(Override::new("limits", json!([])));
        o.overrides.push(Override::new(
            "models.routes[+]",
            json!({"model": "local-*", "providers": ["openai"]}),
        ));
    })
    .await;
    let token = support::token(&stack, "carol");
    // gpt-4o had no price; Claude Code's models (its default Opus and its background
    // Haiku, dated as it sends them behind a gateway) neither.
    for (path, body) in [
        (
            "/v1/chat/completions",
            json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}),
        ),
        (
            "/v1/messages",
            json!({"model": "claude-haiku-4-5-20251001", "max_tokens": 64,
                   "messages": [{"role": "user", "content": "hi"}]}),
        ),
    ] {
        let resp = post(&stack, path, &token, "sec-2-priced", &body).await;
        let model = &body["model"];
        ensure!(resp.status() == 200, "{model}: {}", resp.status());
        let record = access_record(&stack, &request_id(&resp)).await;
        ensure!(
            record["cost_micros"].as_u64().unwrap_or(0) > 0,
            "{model} booked at zero: {record}"
        );
    }

    // (c) At request time a model with no price under a dollar budget is refused.
    let user = support::uuid_of(&stack, "carol");
    set_user_limits(
        &stack,
        &user,
        json!({"usd_micros": 25_000_000, "period": "month"}),
    )
    .await?;
    let body = json!({"model": "local-llama", "messages": [{"role": "user", "content": "hi"}]});
    let resp = post(
        &stack,
        "/v1/chat/completions",
        &token,
        "sec-2-unpriced",
        &body,
    )
    .await;
    ensure!(
        resp.status() == 403,
        "an unpriced model under a dollar budget: got {}",
        resp.status()
    );
    let (_, code) = error_shape(resp, 403).await;
    ensure!(code == "model_not_priced", "code {code}");
    ensure!(
        upstream_saw(&stack, "sec-2-unpriced").await.is_empty(),
        "an unpriced request reached the provider"
    );
    Ok(())
}

// 3 ------------------------------------------------------------------------------------

/// A client that hung up before the headers was charged nothing; a stream cut before its
/// final usage was charged only its visible text (hidden reasoning free).
async fn hanging_up_is_charged() -> RowResult {
    let stack = support::start("sec-hangup", |_| {}).await;
    let token = support::token(&stack, "dave");

    // (a) Gone before the answer's headers.
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(400))
        .build()
        .map_err(|e| e.to_string())?;
    let before = support::ledger(&stack, "user", &support::uuid_of(&stack, "dave")).await;
    let sent = impatient
        .post(format!("{}/v1/chat/completions", stack.gateway_url))
        .bearer_auth(&token)
        .header("x-test-case", "sec-3-gone")
        .header("x-mock-delay-ms", "1500")
        .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "a long prompt ".repeat(50)}]}))
        .send()
        .await;
    ensure!(sent.is_err(), "the client should have given up");
    let user = support::uuid_of(&stack, "dave");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let l = support::ledger(&stack, "user", &user).await;
        let input = l["input_tokens"].as_u64().unwrap_or(0);
        if input > before["input_tokens"].as_u64().unwrap_or(0) {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "a request that reached the provider was charged nothing: {l}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // (b) A Responses stream with hidden reasoning, cut before its final usage.
    let faults = [
        ("x-mock-reasoning-tokens", "2000"),
        ("x-mock-event-delay-ms", "150"),
        ("x-mock-cut-after", "6"),
    ];
    let body = json!({"model": "gpt-4o-mini", "stream": true, "input": "think hard"});
    let resp = send(&stack, "/v1/responses", &token, "sec-3-cut", &faults, &body).await;
    let id = request_id(&resp);
    let _ = resp.bytes().await;
    let record = access_record(&stack, &id).await;
    ensure!(
        record["output_tokens"].as_u64().unwrap_or(0) > 0 && record["estimated"] == true,
        "a cut stream that began answering was booked with no output: {record}"
    );

    // (c) Not the other extreme: an interrupted agent turn is not charged its whole cap.
    let faults = [("x-mock-words", "400"), ("x-mock-cut-after", "12")];
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 32000, "stream": true,
                      "messages": [{"role": "user", "content": "refactor"}]});
    let resp = send(
        &stack,
        "/v1/messages",
        &token,
        "sec-3-agent",
        &faults,
        &body,
    )
    .await;
    let id = request_id(&resp);
    let _ = resp.bytes().await;
    let record = access_record(&stack, &id).await;
    let out = record["output_tokens"].as_u64().unwrap_or(0);
    ensure!(
        out > 0 && out < 2000,
        "an interrupted 32000-token turn booked {out} output tokens: {record}"
    );
    Ok(())
}

// 4 ------------------------------------------------------------------------------------

/// `n` multiplied the output past the reservation; the smallest cap of any API was taken;
/// background responses and Gemini field masks hid usage.
async fn reservations_bound_the_charge() -> RowResult {
    let stack = support::start("sec-reserve", |_| {}).await;
    let token = support::token(&stack, "erin");
    let user = support::uuid_of(&stack, "erin");
    set_user_limits(
        &stack,
        &user,
        json!({"rpm": 1000, "tokens": 2000, "period": "day"}),
    )
    .await?;
    let chat = |extra: Value| {
        let mut b =
            json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
        if let (Some(b), Some(e)) = (b.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        b
    };
    for (case, body, want) in [
        ("one", chat(json!({"max_completion_tokens": 400})), 200),
        (
            "n=8",
            chat(json!({"max_completion_tokens": 400, "n": 8})),
            429,
        ),
        (
            "cap of another API",
            chat(json!({"max_output_tokens": 1, "max_completion_tokens": 5000})),
            429,
        ),
    ] {
        let resp = post(&stack, "/v1/chat/completions", &token, "sec-4", &body).await;
        ensure!(
            resp.status() == want,
            "{case}: got {}, want {want}",
            resp.status()
        );
    }
    let resp = post(
        &stack,
        "/v1/responses",
        &token,
        "sec-4-background",
        &json!({"model": "gpt-4o-mini", "input": "hi", "background": true}),
    )
    .await;
    ensure!(
        resp.status() == 400,
        "a background response (usage never seen): got {}",
        resp.status()
    );
    ensure!(
        upstream_saw(&stack, "sec-4-background").await.is_empty(),
        "a background response was forwarded"
    );
    let gemini = json!({"contents": [{"parts": [{"text": "hi"}]}]});
    let generate = "/v1beta/models/gemini-2.5-flash:generateContent";
    let masked = send(
        &stack,
        &format!("{generate}?fields=candidates"),
        &token,
        "sec-4-mask",
        &[("x-goog-fieldmask", "candidates")],
        &gemini,
    )
    .await;
    let id = request_id(&masked);
    let _ = masked.bytes().await;
    for seen in upstream_saw(&stack, "sec-4-mask").await {
        let path = seen["path"].as_str().unwrap_or_default();
        ensure!(
            !path.contains("fields=") && header(&seen, "x-goog-fieldmask").is_none(),
            "a field mask reached Gemini: {seen}"
        );
    }
    let record = access_record(&stack, &id).await;
    ensure!(
        record["input_tokens"].as_u64().unwrap_or(0) > 0 && record["estimated"] == false,
        "a field-masked Gemini call was not counted exactly: {record}"
    );
    let proto_path = format!("{generate}?alt=proto");
    let proto = post(&stack, &proto_path, &token, "sec-4-proto", &gemini).await;
    ensure!(
        proto.status() == 400 && upstream_saw(&stack, "sec-4-proto").await.is_empty(),
        "alt=proto (usage unreadable): got {}",
        proto.status()
    );
    Ok(())
}

// 5 ------------------------------------------------------------------------------------

/// Gemini bills the model in the path and Azure the deployment; a body naming a cheaper
/// model was what the gateway priced.
async fn path_models_are_billed() -> RowResult {
    let stack = support::start("sec-path-model", |_| {}).await;
    let token = support::token(&stack, "frank");
    let body = json!({"model": "gemini-2.5-flash", "contents": [{"parts": [{"text": "hi"}]}]});
    let path = "/v1beta/models/gemini-2.5-pro:generateContent";
    let resp = post(&stack, path, &token, "sec-5-gemini", &body).await;
    ensure!(resp.status() == 200, "gemini: {}", resp.status());
    let record = access_record(&stack, &request_id(&resp)).await;
    ensure!(
        record["model"] == "gemini-2.5-pro",
        "Gemini priced the body's model, not the path's: {record}"
    );
    drop(stack);

    let stack = support::start("sec-azure", |o| {
        o.overrides.push(Override::new(
            "providers[name=azure].deployments",
            json!({"prod-4o": "gpt-4o"}),
        ));
    })
    .await;
    let token = support::token(&stack, "frank");
    let azure = |deployment: &str| {
        format!("/openai/deployments/{deployment}/chat/completions?api-version=2024-10-21")
    };
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
    let resp = post(&stack, &azure("prod-4o"), &token, "sec-5-azure", &body).await;
    ensure!(resp.status() == 200, "azure: {}", resp.status());
    let record = access_record(&stack, &request_id(&resp)).await;
    ensure!(
        record["model"] == "gpt-4o",
        "Azure priced the body's model, not the deployment's: {record}"
    );
    let unknown = post(
        &stack,
        &azure("somebody-elses"),
        &token,
        "sec-5-unknown",
        &body,
    )
    .await;
    ensure!(
        unknown.status() == 404 && upstream_saw(&stack, "sec-5-unknown").await.is_empty(),
        "an unknown deployment: got {}",
        unknown.status()
    );
    Ok(())
}

// 6 ------------------------------------------------------------------------------------

/// Records carried client-controlled model names; a handful of 60 KB names pushed a batch
/// past the policy service's body limit, and the refused batch was retried forever,
/// holding back every record behind it.
async fn long_model_names_cannot_wedge_delivery() -> RowResult {
    let stack = support::start("sec-wedge", |o| {
        o.fail_open = true;
        o.requests_per_window = 1000;
    })
    .await;
    let token = support::token(&stack, "grace");
    let body =
        json!({"model": big_model(60 * 1024), "messages": [{"role": "user", "content": "hi"}]});
    for _ in 0..24 {
        let resp = post(&stack, "/v1/chat/completions", &token, "sec-6-long", &body).await;
        ensure!(
            resp.status() == 400,
            "a 60 KB model name: got {}, want 400",
            resp.status()
        );
    }
    let resp = post(
        &stack,
        "/v1/chat/completions",
        &token,
        "sec-6-after",
        &support::chat(false),
    )
    .await;
    ensure!(resp.status() == 200, "a normal request: {}", resp.status());
    support::ledger_settled(&stack, &support::uuid_of(&stack, "grace"), 1).await;
    Ok(())
}

// 7 ------------------------------------------------------------------------------------

/// Every distinct model name created permanent ledger keys. Redis grows with requests
/// (each keeps a dedupe marker for its retries), so the measure is the difference between
/// 5,000 requests naming 5,000 models and 5,000 naming one.
async fn model_names_do_not_fill_redis() -> RowResult {
    const N: usize = 5_000;
    let stack = support::start("sec-redis", |o| o.requests_per_window = 1_000_000).await;
    let token = Arc::new(support::token(&stack, "heidi"));
    let user = support::uuid_of(&stack, "heidi");
    let gateway = Arc::new(stack.gateway_url.clone());
    // Requests `from..to`, each naming its own model or all the same one.
    let send = |from: usize, to: usize, distinct: bool| {
        let (token, gateway) = (token.clone(), gateway.clone());
        async move {
            let client = client();
            let mut tasks = tokio::task::JoinSet::new();
            let per = (to - from).div_ceil(32);
            for start in (from..to).step_by(per.max(1)) {
                let (client, token, gateway) = (client.clone(), token.clone(), gateway.clone());
                tasks.spawn(async move {
                    let mut ok = 0usize;
                    for i in start..(start + per).min(to) {
                        let model = if distinct {
                            format!("gpt-x-{i}")
                        } else {
                            "gpt-x-same".to_string()
                        };
                        let body = json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
                        let sent = client
                            .post(format!("{gateway}/v1/chat/completions"))
                            .bearer_auth(token.as_str())
                            .json(&body)
                            .send()
                            .await;
                        if sent.is_ok_and(|r| r.status() == 200) {
                            ok += 1;
                        }
                    }
                    ok
                });
            }
            let mut ok = 0;
            while let Some(n) = tasks.join_next().await {
                ok += n.unwrap_or(0);
            }
            ok
        }
    };
    let warm = send(0, 100, false).await;
    ensure!(warm == 100, "warm-up: {warm} of 100 answered");
    support::ledger_settled(&stack, &user, 100).await;
    let (keys_0, mem_0) = redis_size(&stack)?;
    let same = send(100, 100 + N, false).await;
    ensure!(same == N, "{same} of {N} answered");
    support::ledger_settled(&stack, &user, (100 + N) as u64).await;
    let (keys_1, mem_1) = redis_size(&stack)?;
    let distinct = send(100 + N, 100 + 2 * N, true).await;
    ensure!(distinct == N, "{distinct} of {N} answered");
    support::ledger_settled(&stack, &user, (100 + 2 * N) as u64).await;
    let (keys_2, mem_2) = redis_size(&stack)?;
    let (same_keys, names_keys) = (keys_1.saturating_sub(keys_0), keys_2.saturating_sub(keys_1));
    let (same_mem, names_mem) = (mem_1.saturating_sub(mem_0), mem_2.saturating_sub(mem_1));
    println!(
        "item 7: {N} requests naming one model: +{same_keys} Redis keys, +{same_mem} B; \
         {N} naming {N} models: +{names_keys} keys, +{names_mem} B"
    );
    // Both runs add one dedupe marker per request; the rest is noise of a few dozen keys
    // (windows and markers expiring meanwhile). Keys per name would be thousands.
    ensure!(
        names_keys <= same_keys + same_keys / 50 + 50,
        "{N} model names added {names_keys} Redis keys, one name {same_keys}"
    );
    ensure!(
        names_mem <= same_mem + same_mem / 4 + 512 * 1024,
        "{N} model names added {names_mem} B of Redis memory, one name {same_mem} B"
    );
    Ok(())
}

/// Redis's key count and `used_memory`, through redis-cli on the stack's socket.
fn redis_size(stack: &Stack) -> Result<(u64, u64), String> {
    let socket = stack
        .redis_url
        .strip_prefix("unix://")
        .ok_or_else(|| format!("redis is not on a socket: {}", stack.redis_url))?;
    let cli = |args: &[&str]| -> Result<String, String> {
        let out = Command::new("redis-cli")
            .args(["-s", socket])
            .args(args)
            .output()
            .map_err(|e| format!("redis-cli: {e}"))?;
        Ok(String::from_utf8_lossy(&out.stdout).to_string())
    };
    let keys = cli(&["DBSIZE"])?
        .trim()
        .parse::<u64>()
        .map_err(|e| format!("DBSIZE: {e}"))?;
    let info = cli(&["INFO", "memory"])?;
    let mem = info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .ok_or("no used_memory")?;
    Ok((keys, mem))
}

// 8 ------------------------------------------------------------------------------------

/// `GET /v1/chat/completions` is OpenAI's list of the organisation's stored chats; every
/// path accepted every method.
async fn unknown_methods_are_refused() -> RowResult {
    let stack = support::start("sec-methods", |_| {}).await;
    let token = support::token(&stack, "ivan");
    for (method, path, shape, allow) in [
        ("GET", "/v1/chat/completions", "openai", "POST"),
        ("DELETE", "/v1/responses", "openai", "POST"),
        ("GET", "/v1/messages", "anthropic", "POST"),
        ("POST", "/v1/models", "openai", "GET"),
        (
            "GET",
            "/v1beta/models/gemini-2.5-flash:generateContent",
            "gemini",
            "POST",
        ),
    ] {
        let resp = client()
            .request(
                method.parse().map_err(|_| "method")?,
                format!("{}{path}", stack.gateway_url),
            )
            .bearer_auth(&token)
            .header("x-test-case", "sec-8")
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let allowed = resp
            .headers()
            .get("allow")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        ensure!(
            resp.status() == 405,
            "{method} {path}: got {}, want 405",
            resp.status()
        );
        ensure!(
            allowed.as_deref() == Some(allow),
            "{method} {path}: allow {allowed:?}"
        );
        let (got_shape, code) = error_shape(resp, 405).await;
        ensure!(
            got_shape == shape && code == "method_not_allowed",
            "{method} {path}: {got_shape} {code}"
        );
    }
    ensure!(
        upstream_saw(&stack, "sec-8").await.is_empty(),
        "a request with a method the gateway does not understand was forwarded"
    );
    Ok(())
}

// 9 ------------------------------------------------------------------------------------

/// A 64 KB model name made the authorize call fail; under `failure_mode: open` the request
/// then went through unpriced.
async fn fail_open_is_not_client_triggerable() -> RowResult {
    let stack = support::start("sec-fail-open", |o| o.fail_open = true).await;
    let token = support::token(&stack, "judy");
    let body =
        json!({"model": big_model(64 * 1024), "messages": [{"role": "user", "content": "hi"}]});
    let resp = post(&stack, "/v1/chat/completions", &token, "sec-9", &body).await;
    ensure!(
        resp.status() == 400,
        "a 64 KB model under fail-open: got {}, want 400",
        resp.status()
    );
    ensure!(
        upstream_saw(&stack, "sec-9").await.is_empty(),
        "it reached the provider"
    );
    Ok(())
}

// 10 -----------------------------------------------------------------------------------

/// Tenant, group and cost-centre claims were taken at face value from any trusted issuer.
async fn issuers_are_scoped() -> RowResult {
    use jwt_simple::prelude::*;
    const PARTNER: &str = "https://partner.chokepoint.test";
    let key = ES256KeyPair::generate().with_key_id("partner-1");
    let jwk: Value = serde_json::from_str(&key.public_key().to_jwk()).map_err(|e| e.to_string())?;
    let stack = support::start("sec-issuers", |o| {
        o.overrides.push(Override::new(
            format!(
                "issuers[issuer={}].trust",
                chokepoint_dev::devtoken::DEFAULT_ISSUER
            ),
            json!({"tenants": ["acme", "dev"], "groups": ["*"], "cost_centers": ["*"]}),
        ));
        o.overrides.push(Override::new(
            "issuers[+]",
            json!({
                "issuer": PARTNER,
                "audiences": [chokepoint_dev::devtoken::DEFAULT_AUDIENCE],
                "jwks": {"inline": {"keys": [jwk]}},
                "trust": {"tenants": ["partner-*"], "groups": ["partner-*"], "cost_centers": []},
            }),
        ));
    })
    .await;
    let sign = |tenant: &str, groups: &[&str]| {
        let claims = Claims::with_custom_claims(
            json!({"tenant": tenant, "groups": groups}),
            jwt_simple::prelude::Duration::from_mins(10),
        )
        .with_issuer(PARTNER)
        .with_audience(chokepoint_dev::devtoken::DEFAULT_AUDIENCE)
        .with_subject("pat");
        key.sign(claims).expect("sign")
    };
    let chat = support::chat(false);
    let resp = post(
        &stack,
        "/v1/chat/completions",
        &sign("acme", &[]),
        "sec-10",
        &chat,
    )
    .await;
    ensure!(
        resp.status() == 403,
        "a partner token claiming another issuer's tenant: got {}",
        resp.status()
    );
    let resp = post(
        &stack,
        "/v1/chat/completions",
        &sign("partner-x", &[]),
        "sec-10-own",
        &chat,
    )
    .await;
    ensure!(
        resp.status() == 200,
        "a partner's own tenant: {}",
        resp.status()
    );
    let opus = json!({"model": "claude-opus-4-1", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]});
    let researcher = sign("partner-x", &["research"]);
    let resp = post(&stack, "/v1/messages", &researcher, "sec-10-group", &opus).await;
    ensure!(
        resp.status() == 403,
        "a partner token claiming the research group reached a research-only model: {}",
        resp.status()
    );
    let dev = stack.token(&TokenSpec::new("own").with_tenant("acme"));
    let resp = post(&stack, "/v1/chat/completions", &dev, "sec-10-dev", &chat).await;
    ensure!(
        resp.status() == 200,
        "the dev issuer's own tenant: {}",
        resp.status()
    );
    Ok(())
}

// 11 -----------------------------------------------------------------------------------

/// Provider and JWKS clusters trusted any publicly trusted certificate for any name: the
/// rendered clusters verify the name, and a local TLS server whose certificate names
/// another host never receives a request (see `upstream_tls.rs`).
async fn upstream_tls_checks_names() -> RowResult {
    let bootstrap = render_bootstrap(&[])?;
    let clusters = bootstrap["static_resources"]["clusters"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut tls = 0;
    for c in &clusters {
        let Some(ctx) = c["transport_socket"]["typed_config"].as_object() else {
            continue;
        };
        tls += 1;
        let sni = ctx.get("sni").and_then(Value::as_str).unwrap_or_default();
        let matchers =
            &ctx["common_tls_context"]["validation_context"]["match_typed_subject_alt_names"];
        ensure!(
            !sni.is_empty() && matchers.as_array().is_some_and(|m| !m.is_empty()),
            "cluster {} checks no name: {}",
            c["name"],
            c["transport_socket"]
        );
    }
    ensure!(tls > 0, "no TLS cluster rendered");
    crate::upstream_tls::upstream_tls_verifies_the_host_name().await;
    Ok(())
}

/// The renderer's command line, from where the stack takes its binaries.
fn config_binary() -> std::path::PathBuf {
    std::env::var_os("CHOKEPOINT_BIN_DIR")
        .map_or_else(|| support::root().join("target/debug"), Into::into)
        .join("chokepoint-config")
}

fn render_bootstrap(extra: &[&str]) -> Result<Value, String> {
    let out = Command::new(config_binary())
        .arg("render")
        .arg(support::root().join("envoy/examples/policy.yaml"))
        .arg("bootstrap")
        .args(extra)
        .output()
        .map_err(|e| format!("chokepoint-config: {e}"))?;
    ensure!(
        out.status.success(),
        "render: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    chokepoint_render::yaml::load(&String::from_utf8_lossy(&out.stdout))
        .map(|d| d.value)
        .map_err(|e| format!("the bootstrap is not YAML: {e}"))
}

// 12 -----------------------------------------------------------------------------------

/// `render bootstrap --listen 0.0.0.0` bound the admin interface there too.
async fn envoy_admin_stays_on_loopback() -> RowResult {
    let b = render_bootstrap(&["--listen", "0.0.0.0"])?;
    let admin = &b["admin"]["address"]["socket_address"]["address"];
    ensure!(
        admin == "127.0.0.1",
        "--listen 0.0.0.0 put the admin interface on {admin}"
    );
    let listener = &b["static_resources"]["listeners"][0]["address"]["socket_address"]["address"];
    ensure!(listener == "0.0.0.0", "the gateway listens on {listener}");
    Ok(())
}

// 13 -----------------------------------------------------------------------------------

/// `x-chokepoint-user`, `-tenant`, `-groups` and `-cost-center` reached OpenAI,
/// Anthropic and Google on every request.
async fn identity_headers_stay_internal() -> RowResult {
    const HEADERS: [&str; 4] = [
        "x-chokepoint-user",
        "x-chokepoint-tenant",
        "x-chokepoint-groups",
        "x-chokepoint-cost-center",
    ];
    let stack = support::start("sec-headers", |_| {}).await;
    let token = stack.token(
        &TokenSpec::new("kim")
            .with_tenant("acme")
            .with_groups(["ml"])
            .with_claim("cost_center", json!("cc-7")),
    );
    let resp = post(
        &stack,
        "/v1/chat/completions",
        &token,
        "sec-13",
        &support::chat(false),
    )
    .await;
    ensure!(resp.status() == 200, "{}", resp.status());
    for seen in upstream_saw(&stack, "sec-13").await {
        for h in HEADERS {
            ensure!(
                header(&seen, h).is_none(),
                "an external provider received {h}: {:?}",
                header(&seen, h)
            );
        }
    }
    drop(stack);
    let stack = support::start("sec-headers-internal", |o| {
        o.overrides
            .push(Override::new("providers[name=openai].internal", true));
    })
    .await;
    let token = stack.token(&TokenSpec::new("kim").with_tenant("acme"));
    // gpt-4.1-mini goes to OpenAI alone (gpt-4o-mini's chain has an outside backup, so
    // its requests carry no identity headers at all).
    let body = json!({"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "hi"}]});
    let resp = post(
        &stack,
        "/v1/chat/completions",
        &token,
        "sec-13-internal",
        &body,
    )
    .await;
    ensure!(resp.status() == 200, "{}", resp.status());
    let seen = upstream_saw(&stack, "sec-13-internal").await;
    ensure!(
        !seen.is_empty()
            && seen
                .iter()
                .all(|s| header(s, "x-chokepoint-tenant").as_deref() == Some("acme")),
        "an internal provider lost the identity headers: {seen:?}"
    );
    Ok(())
}
