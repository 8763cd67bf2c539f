//! The call-out against LiteLLM's wire contract: the request a service gets, every kind
//! of answer (LiteLLM's three actions, and what is not a verdict), the verdict cache, and
//! the edits written back into a real request body.

use serde_json::{json, Value};

use super::*;

/// An OpenAI chat request as a coding agent sends it: a repeated system prompt, a tool
/// result, and a new user turn.
const CHAT: &str = r#"{"model":"gpt-4o","messages":[{"role":"system","content":"You are a coding agent."},{"role":"user","content":"Fix the build. My password is hunter2."},{"role":"tool","tool_call_id":"call_1","content":"You are a coding agent."},{"role":"user","content":"Quote: \"ok\" \u00e9"}]}"#;

/// The pieces of `CHAT`, found as the request helper's extraction finds them: each
/// string literal's span, quotes included, and its decoded text.
fn pieces(body: &str) -> Vec<Piece<'static>> {
    let texts: [(&str, &'static str); 4] = [
        (r#""You are a coding agent.""#, "You are a coding agent."),
        (
            r#""Fix the build. My password is hunter2.""#,
            "Fix the build. My password is hunter2.",
        ),
        (r#""Quote: \"ok\" \u00e9""#, "Quote: \"ok\" é"),
        (r#""tool""#, ""),
    ];
    let mut out = Vec::new();
    for (literal, text) in texts {
        for (at, _) in body.match_indices(literal) {
            out.push(Piece {
                span: at..at + literal.len(),
                text,
            });
        }
    }
    out.sort_by_key(|p| p.span.start);
    out
}

fn meta() -> Metadata<'static> {
    Metadata {
        model: Some("gpt-4o"),
        caller: Some("5f0c6a8e-3b7d-4d2a-9c1e-0a1b2c3d4e5f"),
        tenant: Some("acme"),
        request_id: Some("req-123"),
    }
}

fn cache() -> VerdictCache {
    VerdictCache::new(*b"test secret 0123", 1024, 1 << 20)
}

fn call(cache: &VerdictCache) -> Pending {
    match prepare(
        "acme-dlp",
        Stage::Request,
        &meta(),
        &pieces(CHAT),
        cache,
        Limits::default(),
    ) {
        Ok(Prepared::Call(p)) => p,
        other => panic!("expected a call, got {other:?}"),
    }
}

#[test]
fn request_is_litellms_shape_with_each_text_once() {
    let pending = call(&cache());
    let sent: Value = serde_json::from_slice(pending.body()).unwrap();
    assert_eq!(
        sent,
        json!({
            "texts": ["You are a coding agent.", "Fix the build. My password is hunter2.", "Quote: \"ok\" é"],
            "input_type": "request",
            "request_data": {
                "user_api_key_user_id": "5f0c6a8e-3b7d-4d2a-9c1e-0a1b2c3d4e5f",
                "user_api_key_org_id": "acme"
            },
            "additional_provider_specific_params": {},
            "litellm_call_id": "req-123",
            "model": "gpt-4o"
        })
    );
    assert_eq!(pending.texts(), 3);
}

#[test]
fn unbounded_metadata_is_left_out_and_response_stage_named() {
    let long = "m".repeat(MAX_META_BYTES + 1);
    let meta = Metadata {
        model: Some(&long),
        caller: None,
        tenant: Some(&long),
        request_id: Some(&long),
    };
    let piece = [Piece {
        span: 0..3,
        text: "a",
    }];
    let Ok(Prepared::Call(p)) = prepare(
        "c",
        Stage::Response,
        &meta,
        &piece,
        &cache(),
        Limits::default(),
    ) else {
        panic!("expected a call");
    };
    let sent: Value = serde_json::from_slice(p.body()).unwrap();
    assert_eq!(
        sent,
        json!({"texts": ["a"], "input_type": "response", "request_data": {},
               "additional_provider_specific_params": {}})
    );
}

/// (name, status, answer body, verdict), each against a fresh call of `CHAT`.
#[test]
fn answers() {
    let hunter = CHAT.find("\"Fix the build.").unwrap();
    let hunter_span = hunter..hunter + "\"Fix the build. My password is hunter2.\"".len();
    let masked = "Fix the build. My password is [MASKED].";
    let err = Err;
    type Case = (
        &'static str,
        Option<u32>,
        String,
        Result<Verdict, ServiceError>,
    );
    let cases: Vec<Case> = vec![
        ("none", Some(200), r#"{"action":"NONE"}"#.into(), Ok(Verdict::Allowed(vec![]))),
        ("no action is none, as in LiteLLM", Some(200), "{}".into(), Ok(Verdict::Allowed(vec![]))),
        (
            "blocked; the reason is never read",
            Some(200),
            r#"{"action":"BLOCKED","blocked_reason":"password hunter2 found"}"#.into(),
            Ok(Verdict::Blocked(BlockCause::Service)),
        ),
        (
            "intervened: only the changed text is edited",
            Some(200),
            json!({"action": "GUARDRAIL_INTERVENED",
                   "texts": ["You are a coding agent.", masked, "Quote: \"ok\" é"]})
            .to_string(),
            Ok(Verdict::Allowed(vec![Edit {
                span: hunter_span.clone(),
                text: masked.into(),
            }])),
        ),
        (
            "texts with NONE are applied too, as in LiteLLM",
            Some(200),
            json!({"action": "NONE", "texts": ["You are a coding agent.", masked, "Quote: \"ok\" é"]})
                .to_string(),
            Ok(Verdict::Allowed(vec![Edit {
                span: hunter_span,
                text: masked.into(),
            }])),
        ),
        (
            "intervened without texts changes nothing",
            Some(200),
            r#"{"action":"GUARDRAIL_INTERVENED","images":[]}"#.into(),
            Ok(Verdict::Allowed(vec![])),
        ),
        (
            "unknown fields are ignored",
            Some(200),
            r#"{"action":"NONE","tools":[{"type":"function"}],"score":0.1}"#.into(),
            Ok(Verdict::Allowed(vec![])),
        ),
        (
            "fewer texts than sent",
            Some(200),
            r#"{"action":"GUARDRAIL_INTERVENED","texts":["x"]}"#.into(),
            err(ServiceError::TextsMismatch),
        ),
        ("unknown action", Some(200), r#"{"action":"ALLOW"}"#.into(), err(ServiceError::Malformed)),
        ("lower-case action", Some(200), r#"{"action":"blocked"}"#.into(), err(ServiceError::Malformed)),
        ("action not a string", Some(200), r#"{"action":1}"#.into(), err(ServiceError::Malformed)),
        ("texts not strings", Some(200), r#"{"action":"NONE","texts":[1,2,3]}"#.into(), err(ServiceError::Malformed)),
        ("not JSON", Some(200), "<html>oops</html>".into(), err(ServiceError::Malformed)),
        ("an array", Some(200), "[]".into(), err(ServiceError::Malformed)),
        ("empty body", Some(200), "".into(), err(ServiceError::Malformed)),
        ("FastAPI's 422", Some(422), r#"{"detail":[{"msg":"field required"}]}"#.into(), err(ServiceError::Status(422))),
        ("500", Some(500), r#"{"detail":"boom"}"#.into(), err(ServiceError::Status(500))),
        ("a 3xx is not an answer", Some(302), "".into(), err(ServiceError::Status(302))),
        ("no answer", None, "".into(), err(ServiceError::Unreachable)),
    ];
    for (name, status, body, want) in cases {
        let mut cache = cache();
        let got = call(&cache).answered(status, body.as_bytes(), &mut cache);
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn failure_modes() {
    let e = ServiceError::Status(503);
    assert_eq!(
        e.verdict(FailureMode::Closed),
        Verdict::Blocked(BlockCause::Unavailable(e))
    );
    assert_eq!(e.verdict(FailureMode::Open), Verdict::Unchecked(e));
}

#[test]
fn judged_texts_are_not_sent_again() {
    let mut cache = cache();
    let masked = "Fix the build. My password is [MASKED].";
    let answer = json!({"action": "GUARDRAIL_INTERVENED",
                        "texts": ["You are a coding agent.", masked, "Quote: \"ok\" é"]});
    let first = call(&cache).answered(Some(200), answer.to_string().as_bytes(), &mut cache);
    assert!(matches!(first, Ok(Verdict::Allowed(ref e)) if e.len() == 1));
    assert_eq!(cache.len(), 3);

    // The next turn: the same history plus one new message. Only the new text is sent,
    // and the rewrite remembered for the old one comes back without a call.
    let next = CHAT.replace(r#"}]}"#, r#"},{"role":"user","content":"And now?"}]}"#);
    let mut next_pieces = pieces(&next);
    let at = next.find("\"And now?\"").unwrap();
    next_pieces.push(Piece {
        span: at..at + "\"And now?\"".len(),
        text: "And now?",
    });
    let Ok(Prepared::Call(pending)) = prepare(
        "acme-dlp",
        Stage::Request,
        &meta(),
        &next_pieces,
        &cache,
        Limits::default(),
    ) else {
        panic!("the new text must be sent");
    };
    let sent: Value = serde_json::from_slice(pending.body()).unwrap();
    assert_eq!(sent["texts"], json!(["And now?"]));
    let Ok(Verdict::Allowed(edits)) =
        pending.answered(Some(200), br#"{"action":"NONE"}"#, &mut cache)
    else {
        panic!("allowed");
    };
    assert_eq!(edits.len(), 1);
    assert_eq!(edits[0].text, masked);
    let edited = String::from_utf8(apply(next.as_bytes(), &edits)).unwrap();
    assert!(
        edited.contains("[MASKED]") && !edited.contains("hunter2"),
        "{edited}"
    );

    // Everything judged: no call at all.
    let again = prepare(
        "acme-dlp",
        Stage::Request,
        &meta(),
        &next_pieces,
        &cache,
        Limits::default(),
    );
    assert!(
        matches!(again, Ok(Prepared::Known(Verdict::Allowed(ref e))) if e.len() == 1),
        "{again:?}"
    );

    // Another caller, another check or the other stage: judged afresh.
    let other = Metadata {
        caller: Some("another-uuid"),
        ..meta()
    };
    for (check, stage, meta) in [
        ("acme-dlp", Stage::Request, other),
        ("other-check", Stage::Request, meta()),
        ("acme-dlp", Stage::Response, meta()),
    ] {
        let p = prepare(check, stage, &meta, &next_pieces, &cache, Limits::default());
        assert!(
            matches!(p, Ok(Prepared::Call(ref c)) if c.texts() == 4),
            "{check} {stage:?}"
        );
    }
}

#[test]
fn blocked_is_remembered_for_no_text() {
    let mut cache = cache();
    let blocked = call(&cache).answered(Some(200), br#"{"action":"BLOCKED"}"#, &mut cache);
    assert_eq!(blocked, Ok(Verdict::Blocked(BlockCause::Service)));
    assert!(cache.is_empty());
    // Nor is a failure.
    let _ = call(&cache).answered(Some(500), b"", &mut cache);
    assert!(cache.is_empty());
}

#[test]
fn limits() {
    let pieces = pieces(CHAT);
    let at = |max_texts, max_bytes| {
        prepare(
            "c",
            Stage::Request,
            &meta(),
            &pieces,
            &cache(),
            Limits {
                max_texts,
                max_bytes,
            },
        )
        .map(|p| matches!(p, Prepared::Call(_)))
    };
    // Three distinct texts of 23 + 38 + 14 bytes (the repeated one counts once).
    assert_eq!(at(3, 75), Ok(true));
    assert_eq!(at(2, 75), Err(ServiceError::TooLarge));
    assert_eq!(at(3, 74), Err(ServiceError::TooLarge));
}

#[test]
fn apply_writes_json_strings_and_keeps_every_other_byte() {
    let pieces = pieces(CHAT);
    let edits: Vec<Edit> = pieces
        .iter()
        .filter(|p| !p.text.is_empty())
        .map(|p| Edit {
            span: p.span.clone(),
            text: format!("<{}> \"q\" \\ \n\u{1} é", p.text.len()),
        })
        .collect();
    let out = String::from_utf8(apply(CHAT.as_bytes(), &edits)).unwrap();
    let v: Value = serde_json::from_str(&out).expect("still JSON");
    assert_eq!(v["messages"][0]["content"], "<23> \"q\" \\ \n\u{1} é");
    assert_eq!(v["messages"][2]["tool_call_id"], "call_1");
    assert_eq!(v["messages"][3]["content"], "<14> \"q\" \\ \n\u{1} é");
    // Outside the edits, byte for byte.
    assert!(out.starts_with(r#"{"model":"gpt-4o","messages":[{"role":"system","content":"#));
    assert!(out.ends_with(r#""}]}"#));
    // No edits: the same bytes; broken edits are skipped, not applied.
    assert_eq!(apply(CHAT.as_bytes(), &[]), CHAT.as_bytes());
    #[allow(clippy::reversed_empty_ranges)]
    let broken = [
        Edit {
            span: 5..2,
            text: "x".into(),
        },
        Edit {
            span: 0..CHAT.len() + 1,
            text: "x".into(),
        },
    ];
    assert_eq!(apply(CHAT.as_bytes(), &broken), CHAT.as_bytes());
}

#[test]
fn call_headers_post_json_with_the_key_as_bearer() {
    let path = "/beta/litellm_basic_guardrail_api";
    let with = call_headers(path, "dlp.example.com", Some("Bearer k-1"));
    assert_eq!(
        with,
        vec![
            (":method", "POST".to_string()),
            (":path", path.to_string()),
            (":authority", "dlp.example.com".to_string()),
            ("content-type", "application/json".to_string()),
            ("authorization", "Bearer k-1".to_string()),
        ]
    );
    let without = call_headers(path, "dlp.example.com", None);
    assert!(without.iter().all(|(name, _)| *name != "authorization"));
}
