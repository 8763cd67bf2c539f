//! The mock's prompt caching, worked out from the requests as each provider defines it:
//! Anthropic's `cache_control` breakpoints (writes by TTL, reads through the 20-block
//! lookback, the per-model minimum), OpenAI's automatic caching (1024 tokens, then steps
//! of 128) and Gemini's implicit caching (a repeated prefix past the model's minimum).
//! Prompt tokens are the mock's estimate, characters / 4.

use chokepoint_dev::mock::{self, MockConfig, RunningMock};
use reqwest::Client;
use serde_json::{json, Value};

const KEY: &str = "sk-test-mock-key-1234";
/// 18 characters.
const HELLO: &str = "Hello there, mock!";

async fn start() -> RunningMock {
    mock::spawn(MockConfig {
        api_key: KEY.into(),
        name: "cache-mock".into(),
        guardrail_key: None,
    })
    .await
    .expect("mock starts")
}

fn text(chars: usize, c: char) -> String {
    std::iter::repeat_n(c, chars).collect()
}

async fn post(m: &RunningMock, path: &str, body: &Value) -> Value {
    let req = Client::new().post(format!("{}{path}", m.base_url()));
    // Each provider's own key header.
    let req = if path.starts_with("/v1/messages") {
        req.header("x-api-key", KEY)
            .header("anthropic-version", "2023-06-01")
    } else if path.starts_with("/v1beta/") {
        req.header("x-goog-api-key", KEY)
    } else {
        req.bearer_auth(KEY)
    };
    let resp = req.json(body).send().await.unwrap();
    assert!(resp.status().is_success(), "{path}: {}", resp.status());
    resp.json().await.unwrap()
}

/// (input, cache write, 5m write, 1h write, cache read) of an Anthropic usage object.
fn anthropic_usage(v: &Value) -> [u64; 5] {
    let u = &v["usage"];
    let n = |v: &Value| v.as_u64().unwrap();
    [
        n(&u["input_tokens"]),
        n(&u["cache_creation_input_tokens"]),
        n(&u["cache_creation"]["ephemeral_5m_input_tokens"]),
        n(&u["cache_creation"]["ephemeral_1h_input_tokens"]),
        n(&u["cache_read_input_tokens"]),
    ]
}

fn cc(ttl: Option<&str>) -> Value {
    match ttl {
        Some(t) => json!({"type": "ephemeral", "ttl": t}),
        None => json!({"type": "ephemeral"}),
    }
}

fn messages(model: &str, system: Value, messages: Value) -> Value {
    json!({"model": model, "max_tokens": 64, "system": system, "messages": messages})
}

#[tokio::test]
async fn anthropic_breakpoints_write_then_read() {
    let sonnet = "claude-sonnet-4-6";
    // System 5000 chars = 1250 tokens, breakpoint on it; the question, 18 chars, after.
    let system = json!([{"type": "text", "text": text(5000, 's'), "cache_control": cc(None)}]);
    let ask = json!([{"role": "user", "content": HELLO}]);
    let long_user = json!([{"role": "user", "content": [
        {"type": "text", "text": text(4000, 'u'), "cache_control": cc(None)},
        {"type": "text", "text": HELLO}]}]);
    let system_1h =
        json!([{"type": "text", "text": text(5000, 't'), "cache_control": cc(Some("1h"))}]);
    let short = json!([{"type": "text", "text": text(400, 's'), "cache_control": cc(None)}]);
    // (what, request, [input, write, 5m, 1h, read]), in order on one mock.
    let cases = [
        (
            "first sight writes the prefix",
            messages(sonnet, system.clone(), ask.clone()),
            [4, 1250, 1250, 0, 0],
        ),
        (
            "the same prefix is read",
            messages(sonnet, system.clone(), ask.clone()),
            [4, 0, 0, 0, 1250],
        ),
        (
            "another model has its own cache",
            messages("claude-sonnet-4-5", system.clone(), ask.clone()),
            [4, 1250, 1250, 0, 0],
        ),
        // 1h before 5m, as Anthropic requires: each breakpoint's segment by its TTL.
        (
            "writes split by TTL",
            messages(sonnet, system_1h.clone(), long_user.clone()),
            [4, 2250, 1000, 1250, 0],
        ),
        (
            "both read back",
            messages(sonnet, system_1h.clone(), long_user.clone()),
            [4, 0, 0, 0, 2250],
        ),
        (
            "a prefix under the minimum (1024) is not cached",
            messages(sonnet, short.clone(), ask.clone()),
            [104, 0, 0, 0, 0],
        ),
        (
            "nor read",
            messages(sonnet, short, ask.clone()),
            [104, 0, 0, 0, 0],
        ),
        // Opus 5's minimum is 512 tokens.
        (
            "Opus 5 caches from 512 tokens",
            messages(
                "claude-opus-5-5",
                json!([{"type": "text", "text": text(2400, 's'), "cache_control": cc(None)}]),
                ask.clone(),
            ),
            [4, 600, 600, 0, 0],
        ),
    ];
    let m = start().await;
    for (what, body, want) in cases {
        let v = post(&m, "/v1/messages", &body).await;
        assert_eq!(anthropic_usage(&v), want, "{what}: {}", v["usage"]);
    }
}

#[tokio::test]
async fn anthropic_reads_a_conversation_prefix_through_the_lookback() {
    let m = start().await;
    let model = "claude-opus-4-8";
    let first = json!([{"role": "user", "content": [
        {"type": "text", "text": text(5000, 'q'), "cache_control": cc(None)}]}]);
    let v = post(
        &m,
        "/v1/messages",
        &messages(model, json!("Be brief."), first),
    )
    .await;
    // 5009 chars in all: the breakpoint ends after 5009 / 4 = 1252 tokens.
    assert_eq!(anthropic_usage(&v), [0, 1252, 1252, 0, 0], "{}", v["usage"]);
    // The next turn moves the breakpoint to its last message, as agents do: the earlier
    // prefix is found 3 blocks back and read (the turn replayed as a string, shorthand
    // for the text block it was); what follows it is written.
    let next = json!([
        {"role": "user", "content": text(5000, 'q')},
        {"role": "assistant", "content": [{"type": "text", "text": "Sure, go on."}]},
        {"role": "user", "content": [{"type": "text", "text": HELLO, "cache_control": cc(None)}]},
    ]);
    let v = post(
        &m,
        "/v1/messages",
        &messages(model, json!("Be brief."), next),
    )
    .await;
    // (9 + 5000 + 12 + 18) / 4 = 1259.
    assert_eq!(anthropic_usage(&v), [0, 7, 7, 0, 1252], "{}", v["usage"]);
    // Changed tools change the prefix: nothing is read.
    let mut with_tools = messages(
        model,
        json!("Be brief."),
        json!([{"role": "user", "content": [
        {"type": "text", "text": text(5000, 'q'), "cache_control": cc(None)}]}]),
    );
    with_tools["tools"] =
        json!([{"name": "ls", "description": "list", "input_schema": {"type": "object"}}]);
    let v = post(&m, "/v1/messages", &with_tools).await;
    assert_eq!(anthropic_usage(&v), [0, 1252, 1252, 0, 0], "{}", v["usage"]);
    // A top-level cache_control (automatic caching) breaks on the last block.
    let mut auto = messages(
        model,
        json!("Be brief."),
        json!([{"role": "user", "content": text(5000, 'z')}]),
    );
    auto["cache_control"] = cc(None);
    let v = post(&m, "/v1/messages", &auto).await;
    assert_eq!(anthropic_usage(&v), [0, 1252, 1252, 0, 0], "{}", v["usage"]);
    let v = post(&m, "/v1/messages", &auto).await;
    assert_eq!(anthropic_usage(&v), [0, 0, 0, 0, 1252], "{}", v["usage"]);
    // Streamed, message_start carries the same split; message_delta the totals.
    auto["stream"] = json!(true);
    let body = Client::new()
        .post(format!("{}/v1/messages", m.base_url()))
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .json(&auto)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let data: Vec<Value> = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(anthropic_usage(&data[0]["message"]), [0, 0, 0, 0, 1252]);
    let delta = data.iter().find(|d| d["type"] == "message_delta").unwrap();
    assert_eq!(delta["usage"]["cache_read_input_tokens"], 1252);
    // count_tokens neither reads nor writes: a new prefix counted first is still written.
    let fresh = messages(
        model,
        json!([{"type": "text", "text": text(6000, 'f'), "cache_control": cc(None)}]),
        json!([{"role": "user", "content": HELLO}]),
    );
    let mut counted = fresh.clone();
    counted.as_object_mut().unwrap().remove("max_tokens");
    let c = post(&m, "/v1/messages/count_tokens", &counted).await;
    assert_eq!(c, json!({"input_tokens": 1504}));
    let v = post(&m, "/v1/messages", &fresh).await;
    assert_eq!(anthropic_usage(&v), [4, 1500, 1500, 0, 0], "{}", v["usage"]);
}

fn cached_tokens(v: &Value) -> (u64, u64) {
    let u = &v["usage"];
    (
        u["input_tokens"].as_u64().unwrap(),
        u["input_tokens_details"]["cached_tokens"].as_u64().unwrap(),
    )
}

#[tokio::test]
async fn openai_caches_repeated_prefixes_of_1024_tokens_in_steps_of_128() {
    let m = start().await;
    let responses = |instructions: &str, input: Value| json!({"model": "gpt-5.4", "instructions": instructions, "input": input});
    let user = |t: &str| json!([{"role": "user", "content": [{"type": "input_text", "text": t}]}]);
    // Instructions of 6000 chars = 1500 tokens; 1024 + 3 * 128 = 1408 of them read.
    let long = text(6000, 'i');
    let cases = [
        (
            "a new prompt is not cached",
            responses(&long, user(HELLO)),
            (1504, 0),
        ),
        (
            "its instructions are, next time",
            responses(&long, user("Another question here")),
            (1505, 1408),
        ),
        (
            "the whole earlier prompt too",
            responses(&long, user(HELLO)),
            (1504, 1408),
        ),
        (
            "under 1024 tokens nothing is",
            responses(&text(4000, 'j'), user(HELLO)),
            (1004, 0),
        ),
        (
            "not even when repeated",
            responses(&text(4000, 'j'), user(HELLO)),
            (1004, 0),
        ),
        // Past the instructions, whole items: 6000 + 4000 chars = 2500 tokens -> 2432.
        (
            "a conversation (its instructions cached)",
            responses(
                &long,
                json!([
            {"role": "user", "content": [{"type": "input_text", "text": text(4000, 'k')}]}]),
            ),
            (2500, 1408),
        ),
        (
            "continued",
            responses(
                &long,
                json!([
            {"role": "user", "content": [{"type": "input_text", "text": text(4000, 'k')}]},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "ok"}]},
            {"role": "user", "content": [{"type": "input_text", "text": HELLO}]}]),
            ),
            (2505, 2432),
        ),
    ];
    for (what, body, want) in cases {
        let v = post(&m, "/v1/responses", &body).await;
        assert_eq!(cached_tokens(&v), want, "{what}: {}", v["usage"]);
    }
    // prompt_cache_key is part of what must match.
    let mut keyed = responses(&long, user(HELLO));
    keyed["prompt_cache_key"] = json!("tenant-a");
    let v = post(&m, "/v1/responses", &keyed).await;
    assert_eq!(cached_tokens(&v), (1504, 0));
}

#[tokio::test]
async fn gemini_implicit_caching_past_the_models_minimum() {
    let m = start().await;
    let request = |system: &str, question: &str| {
        json!({
            "systemInstruction": {"parts": [{"text": system}]},
            "contents": [{"role": "user", "parts": [{"text": question}]}],
        })
    };
    let cached = |v: &Value| {
        let u = &v["usageMetadata"];
        (
            u["promptTokenCount"].as_u64().unwrap(),
            u["cachedContentTokenCount"].as_u64().unwrap_or(0),
        )
    };
    let system = text(10_000, 'g'); // 2500 tokens
    let flash = "/v1beta/models/gemini-2.5-flash:generateContent";
    // A token count reads and writes nothing.
    let mut counted = request(&system, HELLO);
    counted["model"] = json!("models/gemini-2.5-flash");
    let counted = json!({"generateContentRequest": counted});
    let c = post(&m, "/v1beta/models/gemini-2.5-flash:countTokens", &counted).await;
    assert_eq!(c["totalTokens"], 2504);
    let cases = [
        (flash, request(&system, HELLO), (2504, 0)),
        (
            flash,
            request(&system, "Something else entirely"),
            (2505, 2500),
        ),
        (flash, request(&system, HELLO), (2504, 2504)),
        // 3.8 Flash caches from 4096 tokens: 2500 are not enough.
        (
            "/v1beta/models/gemini-3.8-flash:generateContent",
            request(&system, HELLO),
            (2504, 0),
        ),
        (
            "/v1beta/models/gemini-3.8-flash:generateContent",
            request(&system, HELLO),
            (2504, 0),
        ),
        // Exactly the minimum; the SSE stream below reads it on every chunk.
        (
            "/v1beta/models/gemini-2.5-flash:generateContent",
            request(&text(8192, 'h'), HELLO),
            (2052, 0),
        ),
    ];
    for (path, body, want) in cases {
        let v = post(&m, path, &body).await;
        assert_eq!(cached(&v), want, "{path}: {}", v["usageMetadata"]);
    }
    let resp = Client::new()
        .post(format!(
            "{}/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
            m.base_url()
        ))
        .header("x-goog-api-key", KEY)
        .json(&request(&text(8192, 'h'), HELLO))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let chunks: Vec<Value> = resp
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d.trim_end()).unwrap())
        .collect();
    assert!(!chunks.is_empty());
    assert!(chunks.iter().all(|c| cached(c) == (2052, 2052)), "{resp}");
}
