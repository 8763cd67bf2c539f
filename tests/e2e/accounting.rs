//! Token accounting end to end, for every provider format, streamed and not: the ledger in
//! the policy service and the access-log record both hold the provider's exact counts; a
//! client that hangs up mid-stream is charged an estimate; and records survive an outage
//! of the policy service, arriving exactly once.

use std::time::Duration;

use chokepoint_dev::stack::Stack;
use serde_json::{json, Value};

use crate::support::{self, access_record, ledger, ledger_settled};

/// One request as a client of that provider's SDK would send it.
struct Case {
    name: &'static str,
    path: &'static str,
    headers: Vec<(&'static str, &'static str)>,
    body: Value,
    stream: bool,
    format: &'static str,
}

fn cases() -> Vec<Case> {
    let chat = |stream| json!({"model": "gpt-4o-mini", "stream": stream, "messages": [{"role": "user", "content": "Count the tokens of this prompt, please."}]});
    let messages = |stream| json!({"model": "claude-sonnet-4-5", "max_tokens": 256, "stream": stream, "messages": [{"role": "user", "content": "Hello Claude, count me."}]});
    let responses = |stream| json!({"model": "gpt-4.1-mini", "stream": stream, "input": "Write a line about gateways."});
    let gemini =
        json!({"contents": [{"role": "user", "parts": [{"text": "Hello Gemini, count me too."}]}]});
    let anthropic = vec![
        ("anthropic-version", "2023-06-01"),
        ("x-mock-cache-read", "7"),
    ];
    // An upstream that compresses although asked for identity: Envoy's decompressor
    // hands the filter (and the client) text.
    let gzip = vec![("x-mock-content-encoding", "gzip")];
    vec![
        Case {
            name: "openai-chat",
            path: "/v1/chat/completions",
            headers: vec![],
            body: chat(false),
            stream: false,
            format: "openai_chat",
        },
        Case {
            name: "openai-chat-gzip",
            path: "/v1/chat/completions",
            headers: gzip.clone(),
            body: chat(false),
            stream: false,
            format: "openai_chat",
        },
        Case {
            name: "openai-chat-stream-gzip",
            path: "/v1/chat/completions",
            headers: gzip,
            body: chat(true),
            stream: true,
            format: "openai_chat",
        },
        Case {
            name: "openai-chat-stream",
            path: "/v1/chat/completions",
            headers: vec![],
            body: chat(true),
            stream: true,
            format: "openai_chat",
        },
        Case {
            name: "openai-responses",
            path: "/v1/responses",
            headers: vec![],
            body: responses(false),
            stream: false,
            format: "openai_responses",
        },
        Case {
            name: "openai-responses-stream",
            path: "/v1/responses",
            headers: vec![],
            body: responses(true),
            stream: true,
            format: "openai_responses",
        },
        Case {
            name: "anthropic",
            path: "/v1/messages",
            headers: anthropic.clone(),
            body: messages(false),
            stream: false,
            format: "anthropic",
        },
        Case {
            name: "anthropic-stream",
            path: "/v1/messages",
            headers: anthropic,
            body: messages(true),
            stream: true,
            format: "anthropic",
        },
        Case {
            name: "gemini",
            path: "/v1beta/models/gemini-2.5-flash:generateContent",
            headers: vec![],
            body: gemini.clone(),
            stream: false,
            format: "gemini",
        },
        Case {
            name: "gemini-stream",
            path: "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
            headers: vec![],
            body: gemini,
            stream: true,
            format: "gemini",
        },
        Case {
            name: "azure",
            path: "/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-10-21",
            headers: vec![],
            body: chat(false),
            stream: false,
            format: "openai_chat",
        },
    ]
}

/// (input, output, cached input) as the provider reported them in what the client got.
fn provider_counts(format: &str, stream: bool, text: &str) -> (u64, u64, u64) {
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let events: Vec<Value> = if stream {
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str(d.trim()).ok())
            .collect()
    } else {
        vec![serde_json::from_str(text).expect("JSON body")]
    };
    match format {
        "openai_chat" => {
            let u = &events
                .iter()
                .rev()
                .find(|e| e["usage"].is_object())
                .expect("usage")["usage"];
            (
                n(&u["prompt_tokens"]),
                n(&u["completion_tokens"]),
                n(&u["prompt_tokens_details"]["cached_tokens"]),
            )
        }
        "openai_responses" => {
            let r = events
                .iter()
                .rev()
                .find(|e| e["usage"].is_object() || e["response"]["usage"].is_object())
                .expect("usage");
            let u = if r["usage"].is_object() {
                &r["usage"]
            } else {
                &r["response"]["usage"]
            };
            (
                n(&u["input_tokens"]),
                n(&u["output_tokens"]),
                n(&u["input_tokens_details"]["cached_tokens"]),
            )
        }
        "anthropic" => {
            let (mut input, mut output, mut cached) = (0, 0, 0);
            for e in &events {
                let u = if e["message"]["usage"].is_object() {
                    &e["message"]["usage"]
                } else {
                    &e["usage"]
                };
                if u.is_object() {
                    if u["input_tokens"].is_u64() {
                        input = n(&u["input_tokens"])
                            + n(&u["cache_read_input_tokens"])
                            + n(&u["cache_creation_input_tokens"]);
                        cached = n(&u["cache_read_input_tokens"]);
                    }
                    output = n(&u["output_tokens"]);
                }
            }
            (input, output, cached)
        }
        "gemini" => {
            let u = &events
                .iter()
                .rev()
                .find(|e| e["usageMetadata"].is_object())
                .expect("usage")["usageMetadata"];
            (
                n(&u["promptTokenCount"]),
                n(&u["candidatesTokenCount"]) + n(&u["thoughtsTokenCount"]),
                n(&u["cachedContentTokenCount"]),
            )
        }
        other => panic!("format {other}"),
    }
}

/// The header a case's provider (and its SDK) carries an API key in, with its value.
fn key_header(case: &Case, key: &str) -> (&'static str, String) {
    match case.format {
        "anthropic" => ("x-api-key", key.to_string()),
        "gemini" => ("x-goog-api-key", key.to_string()),
        _ if case.path.starts_with("/openai/") => ("api-key", key.to_string()),
        _ => ("authorization", format!("Bearer {key}")),
    }
}

/// Sends the case with the token where that provider's own SDK puts its API key, as a
/// client whose API key is set to the company JWT does.
async fn send(stack: &Stack, case: &Case, token: &str) -> (reqwest::Response, String) {
    let (name, value) = key_header(case, token);
    let mut req = reqwest::Client::new()
        .post(format!("{}{}", stack.gateway_url, case.path))
        .header(name, value)
        .header("x-test-case", case.name)
        .json(&case.body);
    for (k, v) in &case.headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let id = resp
        .headers()
        .get("x-chokepoint-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (resp, id)
}

#[tokio::test]
async fn every_format_is_counted_exactly() {
    let stack = support::start("accounting", |o| o.requests_per_window = 100).await;
    let mut output_tokens_gpt4o_mini = 0;
    let before = gpt4o_mini_output(&stack).await;
    for case in cases() {
        let subject = format!("acct-{}", case.name);
        let token = support::token(&stack, &subject);
        let (resp, request_id) = send(&stack, &case, &token).await;
        assert_eq!(resp.status(), 200, "{}", case.name);
        assert_eq!(
            request_id.len(),
            32,
            "{}: x-chokepoint-request-id",
            case.name
        );
        assert!(
            resp.headers().get("content-encoding").is_none(),
            "{}: the client gets text",
            case.name
        );
        let text = resp.text().await.unwrap();
        let (input, output, cached) = provider_counts(case.format, case.stream, &text);
        assert!(input > 0 && output > 0, "{}: {text}", case.name);
        if case.body["model"] == "gpt-4o-mini" {
            output_tokens_gpt4o_mini += output;
        }

        let rec = access_record(&stack, &request_id).await;
        assert_eq!(rec["format"], case.format, "{}", case.name);
        assert_eq!(rec["stream"], case.stream, "{}", case.name);
        assert_eq!(rec["input_tokens"], input, "{}: {rec}", case.name);
        assert_eq!(rec["output_tokens"], output, "{}: {rec}", case.name);
        assert_eq!(rec["cached_input_tokens"], cached, "{}: {rec}", case.name);
        assert_eq!(rec["estimated"], false, "{}", case.name);
        assert_eq!(rec["completed"], true, "{}", case.name);
        assert_eq!(rec["decision"], "allowed", "{}", case.name);
        assert_eq!(
            rec["user"],
            support::uuid_of(&stack, &subject),
            "{}",
            case.name
        );
        assert!(
            !text.is_empty() && !rec.to_string().contains("count me"),
            "no prompt text in the record"
        );

        // The provider got its own key, in its own header, and no other credential.
        let seen = support::upstream_saw(&stack, case.name).await;
        let (header, value) = key_header(&case, &stack.opts.mock_key);
        assert_eq!(
            support::header(&seen[0], header),
            Some(value),
            "{}",
            case.name
        );
        for other in ["authorization", "x-api-key", "x-goog-api-key", "api-key"] {
            if other != header {
                assert_eq!(
                    support::header(&seen[0], other),
                    None,
                    "{}: {other}",
                    case.name
                );
            }
        }

        let l = ledger_settled(&stack, &support::uuid_of(&stack, &subject), 1).await;
        assert_eq!(l["input_tokens"], input, "{}: {l}", case.name);
        assert_eq!(l["output_tokens"], output, "{}: {l}", case.name);
        assert_eq!(l["cached_input_tokens"], cached, "{}: {l}", case.name);
        assert_eq!(l["cost_micros"], rec["cost_micros"], "{}", case.name);
    }

    // The gateway asked OpenAI for the usage of the stream the client did not ask for.
    let seen = support::upstream_saw(&stack, "openai-chat-stream").await;
    let sent: Value = serde_json::from_str(seen[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(sent["stream_options"]["include_usage"], true);

    // Envoy's stats moved by the same amounts (from before the cases: readiness counts too).
    let after = gpt4o_mini_output(&stack).await;
    assert_eq!(after - before, output_tokens_gpt4o_mini);
    let prom = reqwest::get(format!("{}/stats/prometheus", stack.admin_url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        // Stats key a model by the price entry that prices it: the family glob.
        prom.contains("chokepoint_usage_provider_anthropic_model_claude_sonnet_4_cost_micros"),
        "prometheus names"
    );
}

#[tokio::test]
async fn a_client_that_hangs_up_is_charged_an_estimate() {
    let stack = support::start("hangup", |_| {}).await;
    let token = support::token(&stack, "quitter");
    let mut resp = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", stack.gateway_url))
        .bearer_auth(&token)
        .header("x-mock-words", "200")
        .header("x-mock-event-delay-ms", "20")
        .json(&support::chat(true))
        .send()
        .await
        .unwrap();
    let request_id = resp.headers()["x-chokepoint-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let mut got = 0;
    while got < 3 {
        if resp.chunk().await.unwrap().is_some() {
            got += 1;
        }
    }
    drop(resp);
    let rec = access_record(&stack, &request_id).await;
    assert_eq!(rec["estimated"], true, "{rec}");
    assert_eq!(rec["completed"], false, "{rec}");
    assert!(rec["output_tokens"].as_u64().unwrap() > 0, "{rec}");
    assert!(rec["input_tokens"].as_u64().unwrap() > 0, "{rec}");
    let l = ledger_settled(&stack, &support::uuid_of(&stack, "quitter"), 1).await;
    assert_eq!(l["estimated_requests"], 1);
    assert_eq!(l["output_tokens"], rec["output_tokens"]);
}

#[tokio::test]
async fn records_survive_a_policy_outage_and_arrive_once() {
    // A slow flush, so the records are still queued when the policy service dies.
    let mut stack = support::start("usage-outage", |o| o.usage_flush_ms = 3000).await;
    let token = support::token(&stack, "steady");
    for _ in 0..3 {
        let resp = reqwest::Client::new()
            .post(format!("{}/v1/chat/completions", stack.gateway_url))
            .bearer_auth(&token)
            .json(&support::chat(false))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    stack.kill_policy();
    // Deliveries fail for a while (at least one flush and a retry).
    tokio::time::sleep(Duration::from_secs(5)).await;
    stack.start_policy().expect("policy restarts");
    let l = ledger_settled(&stack, &support::uuid_of(&stack, "steady"), 3).await;
    // Give any duplicate delivery time to land, then check nothing was counted twice.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let again = ledger(&stack, "user", &support::uuid_of(&stack, "steady")).await;
    assert_eq!(again["requests"], 3, "{again}");
    assert_eq!(again["output_tokens"], l["output_tokens"]);
    let stats = reqwest::get(format!(
        "{}/stats?filter=chokepoint.usage.delivery_failed",
        stack.admin_url
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert!(
        stats.lines().any(|l| !l.ends_with(": 0")),
        "failed deliveries are counted: {stats}"
    );
}

/// Output tokens Envoy's stats counted for gpt-4o-mini (through OpenAI and Azure).
async fn gpt4o_mini_output(stack: &Stack) -> u64 {
    let stats = reqwest::get(format!("{}/stats?filter=chokepoint.usage", stack.admin_url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    ["openai", "azure"]
        .iter()
        .map(|p| {
            format!("wasmcustom.chokepoint.usage.provider.{p}.model.gpt_4o_mini.output_tokens: ")
        })
        .filter_map(|prefix| stats.lines().find_map(|l| l.strip_prefix(prefix.as_str())))
        .filter_map(|v| v.trim().parse::<u64>().ok())
        .sum()
}
