//! The policy service's request bodies, through the pure parsers its handlers call:
//! `POST /v1/authorize` (`AuthorizeRequest::parse`), `POST /v1/usage`
//! (`UsageRecord::parse_batch`), the limit sets of the policy file and of
//! `PUT /v1/admin/limits` (`seed_limits::parse`, which runs every set through the PUT
//! body parser), and user ids (`UserId::parse`).
//!
//! Layout: byte 0 picks the parser (`% 4`) and the content type (`/ 4 % 4`); the rest
//! is the body.
//!
//! Invariants: accepted request ids are non-empty, at most `MAX_REQUEST_ID_BYTES` and
//! free of control characters; users are canonical (lowercase, 36 bytes); counts and
//! reservations are at most `MAX_USAGE_COUNT`; batches hold at most `MAX_USAGE_RECORDS`;
//! a refusal always carries a message.

use chokepoint_policy::{
    seed_limits, AuthorizeRequest, UsageRecord, UserId, MAX_REQUEST_ID_BYTES, MAX_USAGE_COUNT,
    MAX_USAGE_RECORDS,
};

const CONTENT_TYPES: [Option<&str>; 4] = [
    Some("application/json"),
    Some("Application/JSON; charset=utf-8"),
    Some("text/plain"),
    None,
];

fn check_id(id: &str) {
    assert!(!id.trim().is_empty() && id.len() <= MAX_REQUEST_ID_BYTES);
    assert!(!id.chars().any(char::is_control), "{id:?}");
}

fn check_user(user: &UserId) {
    let s = user.as_str();
    assert_eq!(s.len(), 36);
    assert_eq!(s, s.to_ascii_lowercase());
    assert_eq!(UserId::parse(s).as_ref(), Some(user));
}

pub fn run(data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let content_type = CONTENT_TYPES[usize::from(selector / 4 % 4)];
    match selector % 4 {
        0 => match AuthorizeRequest::parse(content_type, body) {
            Ok(r) => {
                assert!(content_type
                    .is_some_and(|c| c.to_ascii_lowercase().starts_with("application/json")));
                check_id(&r.request_id);
                check_user(&r.user);
                assert!(r.reserve_tokens <= MAX_USAGE_COUNT);
                assert!(r.reserve_cost_micros <= MAX_USAGE_COUNT);
            }
            Err(e) => assert!(!e.message.is_empty()),
        },
        1 => match UsageRecord::parse_batch(content_type, body) {
            Ok(records) => {
                assert!(records.len() <= MAX_USAGE_RECORDS);
                for r in &records {
                    check_id(&r.request_id);
                    check_user(&r.user);
                    for n in [
                        r.input_tokens,
                        r.output_tokens,
                        r.cached_input_tokens,
                        r.reasoning_tokens,
                        r.cache_creation_input_tokens,
                        r.cost_micros,
                    ] {
                        assert!(n <= MAX_USAGE_COUNT);
                    }
                    // Kept as sent for the audit stream: one JSON object.
                    assert!(serde_json::from_str::<serde_json::Value>(&r.raw)
                        .is_ok_and(|v| v.is_object()));
                }
            }
            Err(e) => assert!(!e.message.is_empty()),
        },
        2 => {
            let text = crate::text(body);
            match seed_limits::parse(&text) {
                Ok(limits) => {
                    for l in &limits {
                        assert!(!l.id.is_empty() && !l.id.chars().any(char::is_control));
                        let _ = l.set.to_fields();
                        let _ = l.set.to_json();
                    }
                }
                Err(e) => assert!(!e.is_empty()),
            }
        }
        _ => {
            let text = crate::text(body);
            if let Some(user) = UserId::parse(&text) {
                check_user(&user);
                assert!(text.eq_ignore_ascii_case(user.as_str()));
            }
        }
    }
}
