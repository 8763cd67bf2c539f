//! Writes the seed corpus under `corpus/<target>/` from the repository's own fixtures:
//! provider streams and bodies (filter/fixtures), the policy files (envoy/), request
//! bodies like the end-to-end tests', and tokens signed with the fuzz keys.
//!
//! Run on demand, then commit the result: `scripts/fuzz --write-seeds` (or
//! `cargo test --test seed -- --ignored` in fuzz/). Files it writes are named
//! `seed-*`; it removes its own old ones first and leaves anything else alone.

use std::path::PathBuf;

use chokepoint_fuzz::fixtures::{self, AUDIENCE, HMAC_ISSUER, ISSUER, NOW, REMOTE_ISSUER};
use jwt_simple::prelude::*;
use serde_json::{json, Value};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

struct Seeds {
    dir: PathBuf,
}

impl Seeds {
    fn new(target: &str) -> Seeds {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("corpus")
            .join(target);
        std::fs::create_dir_all(&dir).unwrap();
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("seed-")
            {
                std::fs::remove_file(p).unwrap();
            }
        }
        Seeds { dir }
    }

    fn add(&self, name: &str, bytes: impl AsRef<[u8]>) {
        std::fs::write(self.dir.join(format!("seed-{name}")), bytes).unwrap();
    }
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn fixtures_dir() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(repo().join("filter/fixtures"))
        .unwrap()
        .map(|e| e.unwrap().path())
        // The provider fixtures; filter/fixtures/mcp/ is read by `mcp`.
        .filter(|p| p.is_file())
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    out.sort();
    out
}

fn format_of(name: &str) -> u8 {
    if name.starts_with("openai_chat") {
        0
    } else if name.starts_with("openai_response") {
        1
    } else if name.starts_with("anthropic") {
        2
    } else {
        3
    }
}

/// Streams the SSE spec's edge cases: line endings, BOM, comments, fields without a
/// colon, multi-line data, an event type without data, a cut event.
const SSE_EDGES: &[(&str, &[u8])] = &[
    ("crlf", b"event: a\r\ndata: 1\r\n\r\ndata: 2\r\n\r\n"),
    ("cr", b"data: x\rdata: y\r\r"),
    ("bom", b"\xEF\xBB\xBFdata: first\n\n"),
    (
        "comments",
        b": keep-alive\n\n:\ndata:no-space\n\nid: 7\nretry: 10\n\n",
    ),
    ("no-colon", b"data\n\ndata\ndata\n\nevent\n\n"),
    ("multi", b"data: a\ndata: b\ndata:\n\n"),
    ("type-only", b"event: ping\n\nevent: x\ndata: y\n\n"),
    ("cut", b"data: {\"a\":1}\n\ndata: {\"b\""),
    ("utf8", "data: h\u{e9}llo \u{1F600}\n\n".as_bytes()),
    ("done", b"data: [DONE]\n\n"),
];

#[test]
#[ignore = "writes the committed seed corpus; run by scripts/fuzz --write-seeds"]
fn write_seed_corpus() {
    sse();
    usage();
    request_body();
    routing();
    jwt();
    jwks();
    plugin_config();
    policy_file();
    policy_requests();
    policy_reply();
    header_map();
    mcp();
}

/// Header maps as Envoy serializes them: pseudo and plain headers, an empty value, a
/// Latin-1 value, a name that is not UTF-8.
fn header_map() {
    let s = Seeds::new("header_map");
    let map = |pairs: &[(&[u8], &[u8])]| chokepoint_filter::wasm::header_pairs::serialize(pairs);
    s.add(
        "request",
        map(&[
            (b":method", b"POST"),
            (b":path", b"/v1/chat/completions"),
            (b"authorization", b"Bearer eyJhbGciOiJFUzI1NiJ9.e30.sig"),
            (b"x-empty", b""),
        ]),
    );
    s.add(
        "latin1",
        map(&[
            (b"x-note", b"caf\xe9"),
            (b"content-type", b"text/event-stream"),
        ]),
    );
    s.add("bad-name", map(&[(b"x-\xffname", b"v")]));
    s.add("empty", map(&[]));
}

fn sse() {
    let s = Seeds::new("sse");
    for (name, bytes) in fixtures_dir() {
        if name.ends_with(".sse") {
            let stem = name.trim_end_matches(".sse");
            s.add(&format!("{stem}-whole"), cat(&[&[0xFF, 0], &bytes]));
            s.add(
                &format!("{stem}-chunks"),
                cat(&[&[0xFF, 3, 7, 1, 0], &bytes]),
            );
            s.add(&format!("{stem}-small"), cat(&[&[40, 2, 13, 2], &bytes]));
        }
    }
    for (name, bytes) in SSE_EDGES {
        s.add(name, cat(&[&[0xFF, 2, 1, 3], bytes]));
        s.add(&format!("{name}-tiny"), cat(&[&[2, 1, 1], bytes]));
    }
}

fn usage() {
    let s = Seeds::new("usage");
    for (name, bytes) in fixtures_dir() {
        let format = format_of(&name);
        let stem = name.rsplit_once('.').unwrap().0.to_string();
        if name.ends_with(".sse") {
            s.add(
                &format!("{stem}-stream"),
                cat(&[&[format, 0xFF, 2, 5, 64], &bytes]),
            );
            s.add(
                &format!("{stem}-accounting"),
                cat(&[&[8 + format, 0xF8, 1, 9], &bytes]),
            );
        } else {
            s.add(
                &format!("{stem}-body"),
                cat(&[&[4 + format, 0xFF, 0], &bytes]),
            );
            s.add(
                &format!("{stem}-accounting"),
                cat(&[&[12 + format, 0xF8, 1, 100], &bytes]),
            );
        }
    }
    // The mid-stream error shapes, short.
    s.add(
        "chat-error",
        cat(&[
            &[0, 0xFF, 0],
            b"data: {\"error\":{\"type\":\"server_error\",\"code\":503}}\n\n",
        ]),
    );
    s.add(
        "gemini-neg",
        cat(&[
            &[3, 0xFF, 0],
            b"data: {\"usageMetadata\":{\"promptTokenCount\":-1,\"candidatesTokenCount\":1e3}}\n\n",
        ]),
    );
}

fn request_body() {
    let s = Seeds::new("request_body");
    let bodies = [
        (
            "chat",
            json!({"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "Count the tokens of this prompt, please."}]}),
        ),
        (
            "messages",
            json!({"model": "claude-sonnet-4-5", "max_tokens": 256, "stream": false, "metadata": {"user_id": "bob"}, "messages": [{"role": "user", "content": "Hello Claude"}]}),
        ),
        (
            "responses",
            json!({"model": "gpt-4.1-mini", "stream": true, "input": "Write a line about gateways.", "max_output_tokens": 64}),
        ),
        (
            "gemini",
            json!({"contents": [{"role": "user", "parts": [{"text": "Hello Gemini"}]}], "generationConfig": {"maxOutputTokens": 30, "temperature": 0}}),
        ),
        (
            "caps",
            json!({"model": "m", "max_completion_tokens": 50, "max_tokens": 100, "user": "alice@corp.example", "stream_options": {"include_obfuscation": false}}),
        ),
        (
            "nulls",
            json!({"model": null, "stream": null, "max_tokens": null}),
        ),
    ];
    for (i, (name, body)) in bodies.iter().enumerate() {
        let flags = [0x00, 0x0B, 0x5B, 0x9F, 0xFF, 0x3A][i];
        s.add(name, cat(&[&[flags], body.to_string().as_bytes()]));
    }
    s.add(
        "bad-type",
        b"\x0f{\"model\":5,\"stream\":\"yes\",\"max_tokens\":-1}",
    );
    s.add("not-object", b"\x01[1,2]");
    s.add("empty", b"\x03  \n");
}

fn routing() {
    let s = Seeds::new("routing");
    let cases: [(&str, u8, &str); 6] = [
        ("chat", 0, "/v1/chat/completions\ndefault\ngpt-*-mini*\ngpt-4o-mini-2024"),
        ("gemini", 1, "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse\ngemini-2.5-flash\n*a*b*\nxaxbx"),
        ("azure", 4, "/openai/deployments/gpt4o/chat/completions?api-version=1\nclaude-opus-4\nclaude-*\nclaude-"),
        ("anthropic", 9, "/v1/messages\nclaude-sonnet-4-5\n**\n"),
        ("models", 0x1C, "/v1/models\nanything\nabc\nabc"),
        ("responses", 2, "/v1/responses\nsmart\n*-*-*\na-b"),
    ];
    for (name, who, text) in cases {
        s.add(name, cat(&[&[who], text.as_bytes()]));
    }
}

fn token(header: Value, payload: Value, sig: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        fixtures::b64(header.to_string().as_bytes()),
        fixtures::b64(payload.to_string().as_bytes()),
        fixtures::b64(sig)
    )
}

fn jwt() {
    let s = Seeds::new("jwt");
    let keys = fixtures::keys();
    let claims = || {
        let mut custom = serde_json::Map::new();
        custom.insert("tenant".into(), "acme".into());
        custom.insert("groups".into(), json!(["ml", "eng"]));
        let mut c =
            Claims::with_custom_claims(custom, jwt_simple::prelude::Duration::from_hours(1))
                .with_issuer(ISSUER)
                .with_audience(AUDIENCE)
                .with_subject("alice");
        c.issued_at = Some(UnixTimeStamp::from_secs(NOW - 10));
        c.invalid_before = Some(UnixTimeStamp::from_secs(NOW - 10));
        c.expires_at = Some(UnixTimeStamp::from_secs(NOW + 3600));
        c
    };
    let es = keys.es256.sign(claims()).unwrap();
    s.add("es256", cat(&[&[0], es.as_bytes()]));
    let mut expired = claims();
    expired.expires_at = Some(UnixTimeStamp::from_secs(NOW - 3600));
    s.add(
        "es256-expired",
        cat(&[&[0], keys.es256.sign(expired).unwrap().as_bytes()]),
    );
    let mut wrong_aud = claims();
    wrong_aud.audiences = Some(Audiences::AsString("someone-else".into()));
    s.add(
        "es256-wrong-aud",
        cat(&[&[0], keys.es256.sign(wrong_aud).unwrap().as_bytes()]),
    );
    let good = fixtures::good_claims();
    s.add(
        "none",
        cat(&[
            &[0],
            token(json!({"alg": "none", "typ": "JWT"}), good.clone(), b"").as_bytes(),
        ]),
    );
    s.add(
        "rs256-bad-sig",
        cat(&[
            &[0],
            token(
                json!({"alg": "RS256", "kid": "rs-1"}),
                good.clone(),
                &[7; 256],
            )
            .as_bytes(),
        ]),
    );
    s.add(
        "crit",
        cat(&[
            &[0],
            token(
                json!({"alg": "ES256", "kid": "es-1", "crit": ["exp"]}),
                good.clone(),
                &[0; 64],
            )
            .as_bytes(),
        ]),
    );
    s.add(
        "jku",
        cat(&[
            &[0],
            token(
                json!({"alg": "ES256", "jku": "https://evil.example/jwks"}),
                good.clone(),
                &[0; 64],
            )
            .as_bytes(),
        ]),
    );
    s.add(
        "remote",
        cat(&[
            &[0],
            token(
                json!({"alg": "ES256"}),
                json!({"iss": REMOTE_ISSUER, "exp": NOW + 5, "sub": "x"}),
                &[0; 64],
            )
            .as_bytes(),
        ]),
    );
    s.add("garbage", b"\x00a.b.c");
    s.add(
        "headers",
        cat(&[
            &[1],
            format!("authorization: Bearer {es}\ncookie: a=1\nx-other: y\n").as_bytes(),
        ]),
    );
    s.add(
        "headers-cookie",
        cat(&[
            &[1],
            format!("cookie: a=1; CF_Authorization={es}; b=2\n").as_bytes(),
        ]),
    );
    s.add(
        "headers-two",
        b"\x01authorization: Bearer a\nauthorization: Bearer b\n",
    );
    s.add(
        "headers-assertion",
        cat(&[&[1], format!("cf-access-jwt-assertion: {es}\n").as_bytes()]),
    );
    // Structured: header and payload signed by the harness.
    let hmac_claims = json!({"iss": HMAC_ISSUER, "aud": ["other"], "sub": "bob", "exp": NOW + 60,
        "email": "bob@corp.example", "org": "acme", "roles": "a,b c", "cc": "cc-1"});
    s.add(
        "hs256",
        cat(&[
            &[2],
            json!({"alg": "HS256", "typ": "JWT"}).to_string().as_bytes(),
            b"\n",
            hmac_claims.to_string().as_bytes(),
        ]),
    );
    s.add(
        "hs256-no-email",
        cat(&[
            &[2],
            br#"{"alg":"HS256"}"#,
            b"\n",
            json!({"iss": HMAC_ISSUER, "aud": "other", "sub": "bob", "exp": NOW + 60})
                .to_string()
                .as_bytes(),
        ]),
    );
    s.add(
        "hs256-wrong-issuer",
        cat(&[
            &[2],
            br#"{"alg":"HS256"}"#,
            b"\n",
            good.to_string().as_bytes(),
        ]),
    );
    s.add(
        "eddsa",
        cat(&[
            &[3],
            br#"{"alg":"EdDSA","kid":"ed-1"}"#,
            b"\n",
            good.to_string().as_bytes(),
        ]),
    );
    let odd = json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "exp": NOW + 60, "nbf": NOW - 1,
        "tenant": "te\nnant", "groups": ["a,b", "ok", 5, null], "cost_center": ""});
    s.add(
        "eddsa-odd-claims",
        cat(&[
            &[3],
            br#"{"alg":"EdDSA"}"#,
            b"\n",
            odd.to_string().as_bytes(),
        ]),
    );
    s.add(
        "eddsa-float-exp",
        cat(&[
            &[3],
            br#"{"alg":"EdDSA","kid":"ed-1"}"#,
            b"\n",
            br#"{"iss":"https://idp.test","aud":"chokepoint","sub":"a","exp":1.8e9}"#,
        ]),
    );
}

fn jwks() {
    let s = Seeds::new("jwks");
    s.add("fixture", fixtures::jwks().to_string());
    let mut mixed = fixtures::jwks();
    mixed["keys"].as_array_mut().unwrap().extend([
        json!({"kty": "RSA", "use": "enc", "n": "AQAB", "e": "AQAB"}),
        json!({"kty": "oct", "k": "c2VjcmV0"}),
        json!({"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"}),
        json!({"kty": "EC", "crv": "P-384", "alg": "ES384", "x": "AA", "y": "AA"}),
        json!({"kty": "OKP", "crv": "X25519", "x": "AA"}),
    ]);
    s.add("mixed", mixed.to_string());
    s.add("empty", r#"{"keys":[]}"#);
    s.add("not-keys", r#"{"keys":{}}"#);
}

fn plugin_config() {
    let s = Seeds::new("plugin_config");
    s.add("fuzz-config", fixtures::config_json().to_string());
    s.add(
        "example",
        std::fs::read(repo().join("envoy/examples/envoy/plugin-config.json")).unwrap(),
    );
    s.add(
        "injector",
        r#"{"inject_keys": {"providers": [
        {"name": "openai", "api": "openai", "cluster": "c1", "key_env": "OPENAI_API_KEY"},
        {"name": "backup", "api": "openai", "cluster": "c2", "key_env": "BACKUP_KEY", "key_header": "X-Key", "key_prefix": "Token "},
        {"name": "anthropic", "api": "anthropic", "cluster": "c3", "key_env": "ANTHROPIC_API_KEY"}]}}"#,
    );
    let mut full = fixtures::config_json();
    full["token_cache"] = json!({"max_entries": 0, "ttl_secs": 5});
    full["usage"] =
        json!({"path": "/v1/usage", "batch_max": 10, "flush_ms": 100, "timeout_ms": 50});
    full["prices"] = json!({"models": {"m": {"input_per_mtok_usd": 0.15, "output_per_mtok_usd": "1000000", "cached_input_per_mtok_usd": "0.000001"}},
        "default": {"input_per_mtok_usd": "3", "output_per_mtok_usd": "15", "cache_write_per_mtok_usd": "3.75"}});
    full["policy"] =
        json!({"cluster": "p", "failure_mode": "open", "timeout_ms": 60000, "authority": "x"});
    full["key_injection"] = json!("upstream");
    full["max_token_bytes"] = json!(256);
    full["clock_skew_secs"] = json!(600);
    s.add("full", full.to_string());
}

fn policy_file() {
    let s = Seeds::new("policy_file");
    let local = std::fs::read_to_string(repo().join("envoy/chokepoint.yaml")).unwrap();
    s.add(
        "chokepoint",
        local.replace("../.chokepoint/dev-jwks.json", "jwks.json"),
    );
    s.add(
        "chokepoint-bad-jwks",
        local.replace("../.chokepoint/dev-jwks.json", "bad.json"),
    );
    s.add(
        "examples-policy",
        std::fs::read(repo().join("envoy/examples/policy.yaml")).unwrap(),
    );
    s.add(
        "minimal",
        "version: 1\nissuers:\n  - issuer: https://idp.test\n    audiences: [chokepoint]\n    jwks: {file: jwks.json}\nproviders:\n  - {name: openai, kind: openai, base_url: 'https://api.openai.com/v1', key_env: OPENAI_API_KEY}\nmodels:\n  routes:\n    - {model: 'gpt-*', providers: [openai]}\npolicy_service: {url: 'http://127.0.0.1:8081'}\nlimits:\n  - {scope: 'tenant:acme', tpm: 1000, budget: {usd: 0.5, period: 'rolling:3600'}}\n",
    );
    s.add(
        "anchors",
        "base: &b {x: 1, y: [1, 2]}\nother: *b\nlist: [*b, *b]\n",
    );
    s.add(
        "refusals",
        "a: 1\na: 2\n? [1]\n: 2\nb: !!str 1\n---\nc: 2\n",
    );
}

fn policy_requests() {
    let s = Seeds::new("policy_requests");
    let user = "0190a6f2-7c1e-8b3a-9f00-1234567890ab";
    let authorize = json!({"request_id": "r2", "user": user.to_uppercase(), "tenant": "acme", "groups": ["eng", "ml"],
        "cost_center": "cc-1", "model": "gpt-4o", "provider": "openai", "stream": true,
        "reserve_tokens": 1200, "reserve_cost_micros": 18446744073709551615u64, "future_field": {"x": 1}});
    s.add("authorize", cat(&[&[0], authorize.to_string().as_bytes()]));
    s.add(
        "authorize-minimal",
        cat(&[
            &[4],
            format!(r#"{{"request_id":"r1","user":"{user}"}}"#).as_bytes(),
        ]),
    );
    s.add(
        "authorize-bad",
        b"\x00{\"request_id\":\"\",\"user\":\"nope\",\"reserve_tokens\":-1} trailing",
    );
    let record = json!({"request_id": "req-1", "user": user, "tenant": "acme", "groups": ["eng"], "model": "gpt-4o-mini",
        "provider": "openai", "format": "openai_chat", "stream": true, "input_tokens": 1843, "output_tokens": 217,
        "cached_input_tokens": 1792, "reasoning_tokens": 192, "cache_creation_input_tokens": 0, "cost_micros": 9007199254740992u64,
        "estimated": false, "status": 200, "decision": "allow", "latency_ms": 812, "ttft_ms": 120, "completed": true, "ts_ms": 1800000000000u64});
    s.add(
        "usage",
        cat(&[
            &[1],
            json!({"records": [record, {"request_id": "req-2", "user": user}]})
                .to_string()
                .as_bytes(),
        ]),
    );
    s.add(
        "usage-bad",
        b"\x01{\"records\":[{\"request_id\":\"x\",\"user\":\"u\",\"input_tokens\":1e3}, 5]}",
    );
    s.add(
        "limits",
        cat(&[
            &[2],
            &std::fs::read(repo().join("envoy/examples/policy/limits.json")).unwrap(),
        ]),
    );
    s.add("limits-scopes", cat(&[&[2], br#"{"tenant:acme":{"tpm":1000,"tokens":5,"period":"rolling:3600"},"model:gpt-4o":{"usd_micros":1},"cost_center:*":{"rpm":1},"user:0190A6F2-7C1E-8B3A-9F00-1234567890AB":{"rpm":2,"period":"day"}}"#]));
    s.add("user", cat(&[&[3], user.as_bytes()]));
}

fn policy_reply() {
    let s = Seeds::new("policy_reply");
    s.add(
        "allow",
        br#"{"allow":true,"limit":60,"remaining":59,"reset_after_ms":30500}"#
            .iter()
            .copied()
            .fold(vec![0], |mut v, b| {
                v.push(b);
                v
            }),
    );
    s.add(
        "allow-seconds",
        cat(&[&[1], br#"{"allow":true,"reset_after_ms":60000}"#]),
    );
    s.add("deny", cat(&[&[2], br#"{"allow":false,"reason":"rate_limited","message":"user request limit of 2 per 60s reached","retry_after_ms":30500}"#]));
    s.add(
        "deny-defaults",
        cat(&[&[3], br#"{"allow":false,"retry_after_ms":0}"#]),
    );
    s.add(
        "unavailable",
        cat(&[&[6], br#"{"error":{"code":"redis_unavailable"}}"#]),
    );
}

/// The recorded MCP sessions (filter/fixtures/mcp/): each request body, and each answer
/// as the client read it (JSON or SSE) with the list kind its request asked for; then
/// bodies and answers the gateway must refuse or pass with care.
fn mcp() {
    let s = Seeds::new("mcp");
    let dir = repo().join("filter/fixtures/mcp");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for path in files {
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        let doc: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        for e in doc["exchanges"].as_array().unwrap() {
            let seq = &e["seq"];
            let body = e["request"]["body"]["text"].as_str().unwrap_or("");
            if !body.is_empty() {
                // Selector 0x40: tools, nothing kept; one chunk.
                s.add(
                    &format!("{stem}-{seq}-request"),
                    cat(&[&[0x40, 0], body.as_bytes()]),
                );
            }
            let answer: String = e["response"]["chunks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["text"].as_str().unwrap_or(""))
                .collect();
            if answer.is_empty() {
                continue;
            }
            let method = serde_json::from_str::<Value>(body)
                .ok()
                .and_then(|b| b["method"].as_str().map(str::to_owned));
            let kind = match method.as_deref() {
                Some("prompts/list") => 1,
                Some("resources/list") => 2,
                _ => 0,
            };
            // 192 + kind: the default event bound, odd keys kept; then a small bound
            // (1 + 4 * selector bytes) with even keys kept.
            s.add(
                &format!("{stem}-{seq}-answer"),
                cat(&[&[192 + kind, 3, 40, 1, 200], answer.as_bytes()]),
            );
            s.add(
                &format!("{stem}-{seq}-answer-small"),
                cat(&[&[0x80 + 30 + kind, 2, 13, 2], answer.as_bytes()]),
            );
        }
    }
    // Each: the selector and chunking, then the stream.
    let hostile: &[(&str, &[u8], &[u8])] = &[
        ("batch", &[0x40, 0], br#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"}]"#),
        ("duplicate-method", &[0x40, 0], br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":"x"}}"#),
        ("duplicate-name", &[0x40, 0], br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","name":"get-env"}}"#),
        ("escaped-name", &[0xC0, 0], br#"{"jsonrpc":"2.0","id":"a\"b","method":"tools/call","params":{"arguments":{"name":"x"},"name":"g\u0065t-env\ud83d\ude00","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#),
        ("lone-surrogate", &[0xC0, 0], br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"\ud800"}}"#),
        ("float-id", &[0x40, 0], br#"{"jsonrpc":"2.0","id":1.0,"method":"ping"}"#),
        ("response-both", &[0x40, 0], br#"{"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1}}"#),
        ("list-odd-entries", &[0xC3, 0], br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[ 1, {"name":"a"} ,{"name":"b","name":"b"},{"name":"\u0062"},{"title":"x"},[],{"name":"c"} ],"cacheScope":"shared","nextCursor":"n"}}"#),
        ("list-empty", &[0xC0, 0], br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[],"cacheScope":null}}"#),
        ("list-resources", &[0xC2, 0], br#"{"jsonrpc":"2.0","id":1,"result":{"resources":[{"uri":"demo://a","name":"a"},{"uri":"demo://b"}]}}"#),
        ("list-not-array", &[0xC0, 0], br#"{"jsonrpc":"2.0","id":1,"result":{"tools":{"name":"a"}}}"#),
        ("sse-cr-split", &[0x46, 1, 1], b"event: message\rdata: {\"jsonrpc\":\"2.0\",\"id\":1,\r\ndata: \"result\":{\"tools\":[{\"name\":\"a\"},{\"name\":\"bb\"}]}}\r\r\n: ping\n\n\xef\xbb\xbfdata: x\n\n"),
        ("sse-bom-oversized", &[0x02, 2, 5, 1], b"\xef\xbb\xbfdata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"isError\":true}}\n\ndata: 1\n\n"),
        ("tool-error", &[0x08, 1, 0], b"data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"content\":[],\"isError\":true}}\n\n"),
        ("rpc-error-null-id", &[0x00, 0], br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600.0,"message":"bad"}}"#),
        ("session-dotted", &[0x17, 0], b"a.b.c.0123456789abcdef0123456789abcdef"),
        ("header-sentinel", &[0x00, 0], b"=?base64?Z2V0LWVudg?="),
    ];
    for (name, head, bytes) in hostile {
        s.add(&format!("hostile-{name}"), cat(&[head, bytes]));
    }
}
