//! The policy service's request bodies, through the pure parsers its handlers call:
//! `POST /v1/authorize` (`AuthorizeRequest::parse`), `POST /v1/usage`
//! (`UsageBatch::parse`), the limit sets of the policy file and of
//! `PUT /v1/admin/limits` (`seed_limits::parse`, which runs every set through the PUT
//! body parser), and user ids (`UserId::parse`).
//!
//! Layout: byte 0 picks the parser (`% 4`) and the content type (`/ 4 % 4`); the rest
//! is the body.
//!
//! Invariants: accepted request ids are non-empty, at most `MAX_REQUEST_ID_BYTES` and
//! free of control characters; users are canonical (lowercase, 36 bytes); names
//! (tenant, cost centre, model, model key, provider, groups) at most `MAX_NAME_BYTES`,
//! groups at most `MAX_GROUPS`, a model key never blank; counts and reservations are at
//! most `MAX_USAGE_COUNT`; batches hold at most `MAX_USAGE_RECORDS` records, valid or
//! dead-lettered, and a dead letter keeps at most `MAX_DEAD_RECORD_BYTES` of a record
//! that was part of the body; a refusal always carries a message.

use chokepoint_policy::{
    seed_limits, AuthorizeRequest, UsageBatch, UserId, MAX_DEAD_RECORD_BYTES, MAX_GROUPS,
    MAX_NAME_BYTES, MAX_REQUEST_ID_BYTES, MAX_USAGE_COUNT, MAX_USAGE_RECORDS,
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

fn check_names<'a>(
    names: impl IntoIterator<Item = &'a Option<String>>,
    model_key: &'a Option<String>,
    groups: &[String],
) {
    for name in names.into_iter().chain([model_key]).flatten() {
        assert!(name.len() <= MAX_NAME_BYTES);
    }
    assert!(model_key.as_ref().is_none_or(|key| !key.trim().is_empty()));
    assert!(groups.len() <= MAX_GROUPS);
    assert!(groups.iter().all(|g| g.len() <= MAX_NAME_BYTES));
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
                check_names(
                    [&r.tenant, &r.cost_center, &r.model, &r.provider],
                    &r.model_key,
                    &r.groups,
                );
                assert!(r.reserve_tokens <= MAX_USAGE_COUNT);
                assert!(r.reserve_cost_micros <= MAX_USAGE_COUNT);
            }
            Err(e) => assert!(!e.message.is_empty()),
        },
        1 => match UsageBatch::parse(content_type, body) {
            Ok(batch) => {
                let records = &batch.records;
                assert!(records.len() <= MAX_USAGE_RECORDS);
                assert!(batch.releases.len() <= MAX_USAGE_RECORDS);
                assert!(
                    records.len() + batch.releases.len() + batch.dead.len()
                        <= 2 * MAX_USAGE_RECORDS
                );
                batch.releases.iter().for_each(|id| check_id(id));
                for dead in &batch.dead {
                    assert!(!dead.error.is_empty());
                    assert!(dead.record.len() <= MAX_DEAD_RECORD_BYTES);
                    assert!(dead.record.len() <= dead.record_bytes);
                    assert!(dead.record_bytes <= body.len());
                }
                for r in records {
                    check_id(&r.request_id);
                    check_user(&r.user);
                    check_names(
                        [
                            &r.tenant,
                            &r.cost_center,
                            &r.model,
                            &r.provider,
                            &r.format,
                            &r.decision,
                        ],
                        &r.model_key,
                        &r.groups,
                    );
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
                    // Kept as sent for the audit stream: one JSON object, by RFC 8259's
                    // syntax (a field the service does not read may hold a number past
                    // what an f64 holds, `1e40099254740992`, which serde_json's Value
                    // refuses; the service never parses it back).
                    assert!(r.raw.starts_with('{'));
                    assert!(serde_json::from_str::<serde::de::IgnoredAny>(&r.raw).is_ok());
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
