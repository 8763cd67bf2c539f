//! The committed schemas are the types' own (regenerated here, compared byte for byte),
//! they say what they should (typical payloads pass, payloads past a bound or of the
//! wrong shape fail), and every type reads what the wire has always carried.
//!
//! After changing a type on purpose: `CHOKEPOINT_WRITE_SCHEMAS=1 cargo test -p
//! chokepoint-contract`, and review the diff of `contract/schema/`. A change a reader
//! of the old version cannot take needs a `v2` file (and paths) instead.
//!
//! JSON Schema counts `maxLength` in characters, the contract in bytes: a schema bound
//! is the contract's for ASCII text and a necessary condition otherwise.

use std::path::PathBuf;

use schemars::generate::SchemaSettings;
use schemars::JsonSchema;
use serde_json::{json, Value};

use crate::validate::{check, Schema};
use crate::*;

/// An id: not blank, no control characters (as `char::is_control` counts them).
pub const ID: &str = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$";
/// A UUID in its textual form, either case.
pub const UUID: &str =
    r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$";
/// A calling tool: `<name>` or `<name>/<version>`, as the filter normalises it.
pub const CLIENT: &str = r"^[A-Za-z0-9][A-Za-z0-9._+-]*(/[A-Za-z0-9][A-Za-z0-9._+-]*)?$";
/// An agent's session id, as the filter keeps it.
pub const SESSION: &str = r"^[A-Za-z0-9][A-Za-z0-9._:-]*$";
/// A policy or price version, as the renderer writes it.
pub const VERSION: &str = r"^[A-Za-z0-9][A-Za-z0-9._:-]*$";
/// A guardrail check's name or a category: `[a-z0-9-]`, as the policy file allows them.
pub const GUARD_NAME: &str = r"^[a-z0-9-]+$";
/// Something other than white space.
pub const NOT_BLANK: &str = r"\S";
pub const REASONS: [&str; 3] = [
    reason::RATE_LIMITED,
    reason::BUDGET_EXCEEDED,
    reason::UNPRICED_MODEL,
];

/// A schema as the type serialises: what a sender sends. Without `default`s, which
/// describe what a reader assumes, not what is sent.
fn generate<T: JsonSchema>(file_name: &str) -> Value {
    let mut schema = SchemaSettings::draft2020_12()
        .for_serialize()
        .into_generator()
        .into_root_schema_for::<T>();
    schema.insert("$id".into(), file_name.into());
    canonical(schema.to_value())
}

/// Without `default`s, and keys in order whatever order serde_json's maps keep (another
/// crate in the same build may switch on its `preserve_order`).
fn canonical(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map
                .into_iter()
                .filter(|(key, _)| key != "default")
                .collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, canonical(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.into_iter().map(canonical).collect()),
        other => other,
    }
}

fn generated(schema: Schema) -> Value {
    let name = schema.file_name();
    match schema {
        Schema::AuthorizeRequest => generate::<AuthorizeRequest>(name),
        Schema::Decision => generate::<Decision>(name),
        Schema::UsageRecord => generate::<UsageRecord>(name),
        Schema::UsageBatch => generate::<UsageBatch>(name),
        Schema::UsageAnswer => generate::<UsageAnswer>(name),
        Schema::PublishedRecord => canonical(crate::published::json_schema()),
    }
}

#[test]
fn the_committed_schemas_are_the_types_own() {
    let write = std::env::var_os("CHOKEPOINT_WRITE_SCHEMAS").is_some();
    let mut drifted = Vec::new();
    for schema in Schema::ALL {
        let text = serde_json::to_string_pretty(&generated(schema)).unwrap() + "\n";
        if write {
            let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "schema", schema.file_name()]
                .iter()
                .collect();
            std::fs::write(&path, &text).unwrap();
        } else if text != schema.text() {
            drifted.push(schema.file_name());
        }
    }
    assert!(
        drifted.is_empty(),
        "{drifted:?} no longer match the types: regenerate them with \
         `CHOKEPOINT_WRITE_SCHEMAS=1 cargo test -p chokepoint-contract` and review the diff"
    );
}

const USER: &str = "0190a6f2-7c1e-8b3a-9f00-1234567890ab";

fn request(groups: &[String]) -> AuthorizeRequest<&str, &[String]> {
    AuthorizeRequest {
        request_id: Required::new("r1"),
        user: Required::new(USER),
        tenant: Some("acme"),
        groups,
        model: Some("gpt-4o-mini"),
        model_key: Some("gpt-4o-mini"),
        priced: true,
        cost_center: None,
        provider: Some("openai"),
        stream: true,
        reserve_tokens: 4109,
        reserve_cost_micros: 2460,
        lease_slots: 0,
        lease_return_ms: 0,
        mcp: None,
    }
}

fn record(groups: &[String]) -> UsageRecord<&str, &[String]> {
    UsageRecord {
        request_id: Required::new("r1"),
        reservation_id: None,
        trace_id: Some("t-1"),
        user: Some(USER),
        tenant: Some("acme"),
        groups,
        cost_center: None,
        client: Some("claude-code/2.1.332"),
        session: Some("1e6872d4-cb3a-4791-9ae1-32aa40e69098"),
        model: Some("gpt-4o-mini"),
        model_key: Some("gpt-4o-mini"),
        provider: Some("openai"),
        format: Some("openai_chat"),
        api: Some("openai"),
        operation: Some("chat"),
        stream: false,
        input_tokens: 13,
        output_tokens: 2,
        cached_input_tokens: 0,
        reasoning_tokens: 0,
        cache_creation_input_tokens: 0,
        cost_micros: 4,
        estimated: false,
        status: Some(200),
        decision: Some("allowed"),
        latency_ms: Some(812),
        ttft_ms: None,
        completed: Some(true),
        error: None,
        ts_ms: Some(1_795_640_042_000),
        policy_version: Some("sha256:0123456789abcdef"),
        price_version: Some("sha256:fedcba9876543210"),
        mcp: None,
        guardrails: Vec::new(),
    }
}

fn verdict(name: &str, action: GuardAction, stage: GuardStage) -> GuardVerdict<&str> {
    GuardVerdict {
        name,
        category: if stage == GuardStage::Request {
            "secret"
        } else {
            "service"
        },
        action,
        stage,
        count: 2,
    }
}

fn allow() -> Decision<&'static str> {
    Decision::Allow(Allow {
        allow: Tag,
        limits: vec![LimitState {
            name: "user:rpm",
            limit: 10,
            remaining: 9,
            reset_after_ms: 1000,
        }],
        slots: None,
        limit: Some(10),
        remaining: Some(9),
        reset_after_ms: Some(1000),
    })
}

fn deny(reason: &'static str, retry_after_ms: Option<u64>) -> Decision<&'static str> {
    Decision::Deny(Deny {
        allow: Tag,
        reason: Required::new(reason),
        limit_name: "user:rpm",
        message: Required::new("user request limit of 3 per 60s reached"),
        limit: 3,
        remaining: 0,
        retry_after_ms,
    })
}

/// The wire bytes, as the filter and the service have always written them.
#[test]
fn types_serialise_as_the_wire_has_always_carried() {
    let groups = vec!["ml".to_string()];
    assert_eq!(
        serde_json::to_string(&request(&groups)).unwrap(),
        r#"{"request_id":"r1","user":"0190a6f2-7c1e-8b3a-9f00-1234567890ab","tenant":"acme","groups":["ml"],"model":"gpt-4o-mini","model_key":"gpt-4o-mini","cost_center":null,"provider":"openai","stream":true,"reserve_tokens":4109,"reserve_cost_micros":2460}"#
    );
    let lease = AuthorizeRequest {
        priced: false,
        lease_slots: 16,
        lease_return_ms: 3270,
        ..request(&groups)
    };
    let lease = serde_json::to_value(lease).unwrap();
    assert_eq!(
        (
            &lease["priced"],
            &lease["lease_slots"],
            &lease["lease_return_ms"]
        ),
        (&json!(false), &json!(16), &json!(3270))
    );
    assert_eq!(
        serde_json::to_string(&allow()).unwrap(),
        r#"{"allow":true,"limits":[{"name":"user:rpm","limit":10,"remaining":9,"reset_after_ms":1000}],"limit":10,"remaining":9,"reset_after_ms":1000}"#
    );
    assert_eq!(
        serde_json::to_string(&deny(reason::RATE_LIMITED, Some(41_001))).unwrap(),
        r#"{"allow":false,"reason":"rate_limited","limit_name":"user:rpm","message":"user request limit of 3 per 60s reached","limit":3,"remaining":0,"retry_after_ms":41001}"#
    );
    let answer = UsageAnswer {
        accepted: 3,
        duplicates: 1,
        dead_lettered: 0,
        released: None,
    };
    assert_eq!(
        serde_json::to_string(&answer).unwrap(),
        r#"{"accepted":3,"duplicates":1,"dead_lettered":0}"#
    );
}

/// What the schemas accept: the payloads the filter and the service send.
#[test]
fn typical_payloads_meet_their_schemas() {
    let groups = vec!["ml".to_string(), "eng".to_string()];
    let payloads = [
        (
            Schema::AuthorizeRequest,
            serde_json::to_value(request(&groups)),
        ),
        (
            Schema::AuthorizeRequest,
            serde_json::to_value(AuthorizeRequest {
                priced: false,
                lease_slots: 16,
                lease_return_ms: 3270,
                ..request(&[])
            }),
        ),
        (Schema::UsageRecord, serde_json::to_value(record(&groups))),
        (
            Schema::UsageRecord,
            serde_json::to_value(UsageRecord {
                guardrails: vec![
                    verdict("secrets", GuardAction::Block, GuardStage::Request),
                    verdict("acme-dlp", GuardAction::Unchecked, GuardStage::Response),
                ],
                ..record(&groups)
            }),
        ),
        (Schema::Decision, serde_json::to_value(allow())),
        (
            Schema::Decision,
            serde_json::to_value(deny(reason::UNPRICED_MODEL, None)),
        ),
        (
            Schema::UsageAnswer,
            serde_json::to_value(UsageAnswer {
                released: Some(2),
                ..UsageAnswer::default()
            }),
        ),
    ];
    for (schema, payload) in payloads {
        let payload = payload.unwrap();
        assert_eq!(check(schema, &payload), Ok(()), "{payload}");
    }
    let record = serde_json::to_value(record(&groups)).unwrap();
    let batch = json!({"records": [record], "releases": ["r0.1", "r0.2"]});
    assert_eq!(check(Schema::UsageBatch, &batch), Ok(()));
}

/// What they refuse: each payload breaks one rule, so a schema that stopped saying it
/// fails here.
#[test]
fn payloads_past_a_bound_or_of_another_shape_fail_their_schemas() {
    let groups = vec!["ml".to_string()];
    let with = |schema: Schema, base: Value, field: &str, value: Value| {
        let mut payload = base;
        payload[field] = value;
        (schema, payload)
    };
    let req = || serde_json::to_value(request(&groups)).unwrap();
    let rec = || serde_json::to_value(record(&groups)).unwrap();
    let allowed = || serde_json::to_value(allow()).unwrap();
    let denied = || serde_json::to_value(deny(reason::RATE_LIMITED, Some(1))).unwrap();
    let long = "x".repeat(257);
    let cases = [
        with(Schema::AuthorizeRequest, req(), "request_id", json!(long)),
        with(Schema::AuthorizeRequest, req(), "request_id", json!("")),
        with(Schema::AuthorizeRequest, req(), "request_id", json!("  ")),
        with(Schema::AuthorizeRequest, req(), "request_id", json!("a\nb")),
        with(Schema::AuthorizeRequest, req(), "request_id", json!(null)),
        with(Schema::AuthorizeRequest, req(), "user", json!("alice")),
        with(Schema::AuthorizeRequest, req(), "tenant", json!(long)),
        with(Schema::AuthorizeRequest, req(), "model_key", json!(" ")),
        with(
            Schema::AuthorizeRequest,
            req(),
            "groups",
            json!(vec!["g"; 65]),
        ),
        with(Schema::AuthorizeRequest, req(), "groups", json!([long])),
        with(Schema::AuthorizeRequest, req(), "stream", json!("yes")),
        with(Schema::AuthorizeRequest, req(), "reserve_tokens", json!(-1)),
        with(
            Schema::UsageRecord,
            rec(),
            "input_tokens",
            json!(9_007_199_254_740_993u64),
        ),
        with(Schema::UsageRecord, rec(), "cost_micros", json!(1.5)),
        with(
            Schema::UsageRecord,
            rec(),
            "guardrails",
            json!(vec![
                json!(verdict(
                    "s",
                    GuardAction::Flag,
                    GuardStage::Request
                ));
                17
            ]),
        ),
        with(
            Schema::UsageRecord,
            rec(),
            "guardrails",
            json!([{"name": "secrets", "category": "secret", "action": "allow", "stage": "request", "count": 1}]),
        ),
        with(
            Schema::UsageRecord,
            rec(),
            "guardrails",
            json!([{"name": "Secrets!", "category": "secret", "action": "block", "stage": "request", "count": 1}]),
        ),
        with(Schema::UsageRecord, rec(), "trace_id", json!(long)),
        with(Schema::UsageRecord, rec(), "reservation_id", json!("")),
        with(Schema::UsageRecord, rec(), "decision", json!(7)),
        with(Schema::UsageRecord, rec(), "client", json!("a".repeat(65))),
        with(
            Schema::UsageRecord,
            rec(),
            "client",
            json!("claude \"cli\""),
        ),
        with(Schema::UsageRecord, rec(), "client", json!("x/1\n")),
        with(Schema::UsageRecord, rec(), "client", json!("")),
        with(
            Schema::UsageRecord,
            rec(),
            "session",
            json!("a".repeat(129)),
        ),
        with(Schema::UsageRecord, rec(), "session", json!("s p")),
        with(Schema::UsageRecord, rec(), "session", json!("caf\u{e9}")),
        with(Schema::Decision, allowed(), "allow", json!("yes")),
        with(Schema::Decision, allowed(), "slots", json!(65)),
        with(
            Schema::Decision,
            allowed(),
            "limits",
            json!([{"name": "user:rpm"}]),
        ),
        with(Schema::Decision, denied(), "reason", json!("because")),
        with(Schema::Decision, denied(), "remaining", json!(1)),
        with(
            Schema::UsageAnswer,
            json!({"accepted": 1, "duplicates": 0}),
            "dead_lettered",
            json!(-1),
        ),
        with(
            Schema::UsageBatch,
            json!({"releases": []}),
            "records",
            json!(null),
        ),
        with(
            Schema::UsageBatch,
            json!({"records": []}),
            "releases",
            json!([7]),
        ),
        with(
            Schema::UsageBatch,
            json!({"records": [], "releases": []}),
            "records",
            json!([{"request_id": "r"}]),
        ),
    ];
    for (schema, payload) in cases {
        assert!(
            check(schema, &payload).is_err(),
            "{} accepted {payload}",
            schema.file_name()
        );
    }
    let mut no_stream = req();
    no_stream.as_object_mut().unwrap().remove("stream");
    assert!(
        check(Schema::AuthorizeRequest, &no_stream).is_err(),
        "the filter always sends stream"
    );
    let batch = json!({"records": vec![json!({}); 1001], "releases": []});
    assert!(check(Schema::UsageBatch, &batch).is_err(), "1001 records");
}

/// Readers take what the wire has always carried: absent and null alike for what has a
/// default, any known field left out by an older peer, unknown fields from a newer one.
#[test]
fn types_read_what_the_wire_has_always_carried() {
    let read: AuthorizeRequest = serde_json::from_str(&format!(
        r#"{{"user":"{USER}","tenant":null,"groups":null,"stream":null,"priced":null,"future":{{"x":1}}}}"#
    ))
    .unwrap();
    assert_eq!(
        read.request_id.get(),
        None,
        "absent: the reader says so itself"
    );
    assert_eq!(read.user.get().map(String::as_str), Some(USER));
    assert!(read.groups.is_empty() && !read.stream && read.priced);
    assert_eq!((read.reserve_tokens, read.lease_slots), (0, 0));
    let null_id: AuthorizeRequest = serde_json::from_str(r#"{"request_id":null}"#).unwrap();
    assert_eq!(null_id.request_id.into_option(), None);
    let err = serde_json::from_str::<AuthorizeRequest>(r#"{"stream":"yes"}"#).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("invalid type: string \"yes\", expected a boolean"),
        "{err}"
    );

    let record: UsageRecord =
        serde_json::from_str(r#"{"request_id":"r","input_tokens":null}"#).unwrap();
    assert_eq!(
        (record.input_tokens, record.ts_ms, record.status),
        (0, None, None)
    );

    let batch: UsageBatch<Value, Value> = serde_json::from_str(r#"{"records":[{}, 7]}"#).unwrap();
    assert_eq!(batch.records.get().map(Vec::len), Some(2));
    assert!(batch.releases.is_empty());

    let cases = [
        (r#"{"allow":true,"remaining":3}"#, true),
        (r#"{"allow":true,"limits":"not read","slots":16}"#, true),
        (r#"{"allow":false}"#, false),
        (
            r#"{"allow":false,"reason":"rate_limited","limit_name":7,"retry_after_ms":1}"#,
            false,
        ),
    ];
    for (text, allowed) in cases {
        let decision: Decision = serde_json::from_str(text).unwrap();
        assert_eq!(matches!(decision, Decision::Allow(_)), allowed, "{text}");
    }
    let deny: Decision = serde_json::from_str(r#"{"allow":false,"retry_after_ms":2}"#).unwrap();
    let Decision::Deny(deny) = deny else {
        panic!("{deny:?}")
    };
    assert_eq!((deny.reason.get(), deny.retry_after_ms), (None, Some(2)));
    let wrong = [
        r#"{"allow":"yes"}"#,
        "{}",
        r#"{"allow":true,"slots":-1}"#,
        r#"{"allow":true,"reason":5}"#,
        "[]",
    ];
    for text in wrong {
        assert!(serde_json::from_str::<Decision>(text).is_err(), "{text}");
    }
    let answer: UsageAnswer =
        serde_json::from_str(r#"{"accepted":"x","dead_lettered":2}"#).unwrap();
    assert_eq!(
        answer.dead_lettered, 2,
        "only what the filter reads is read"
    );
}
