//! `POST /v1/usage`: the filter reports what proxied requests consumed, in batches.
//!
//! The filter retries a batch until it gets a 200, so any record may arrive more than
//! once and a batch may mix new records with ones already booked. The ledger books
//! each `request_id` once, and the same step commits it against budgets (releasing the
//! request's reservation); this endpoint only validates and reports what happened.
//!
//! A 400 (or 413) means the batch as a whole can never succeed as sent: not JSON, no
//! `records` array, more than [`MAX_USAGE_RECORDS`] records or release ids, a body over
//! the limit. Nothing of it was booked. A record that is invalid on its own (a bad or
//! missing field, a string over its bound, not an object) does not fail its batch,
//! which would wedge the filter's retries for good: it is dead-lettered (kept in the
//! capped stream `ck:usage:dead` with the error naming its field, counted in
//! `/metrics`; see `dead_letter`) and the rest of the batch is booked as usual; so is a
//! release id that is not one. The answer is then 200 with `dead_lettered` counting
//! them. A 503 means "keep it and retry", which is always safe: booked records come
//! back as duplicates (a retried batch's invalid records are dead-lettered again).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chokepoint_contract::bounds::{MAX_REQUEST_ID_BYTES, MAX_USAGE_COUNT, MAX_USAGE_RECORDS};
use chokepoint_contract::UsageAnswer;
use serde_json::value::RawValue;

use super::error::ApiError;
use super::{json_body, AppState};
use crate::client_tools;
use crate::dead_letter::{DeadLetter, DEAD_LETTER_KEY};
use crate::fields;
use crate::validated::{McpUsage, UsageRecord};

/// The batch as the contract has it, its records and release ids raw text (checked
/// JSON, no tree built), so that each is judged on its own (one bad one is
/// dead-lettered, not the batch refused), each record keeps its form for the audit log
/// and is decoded straight into its typed fields, and a batch over the size limit is
/// refused before any record is examined. As in authorize, a required field's absence
/// gets our message, and unknown fields are ignored: a newer filter may send more.
type BatchWire = chokepoint_contract::UsageBatch<Box<RawValue>, Box<RawValue>>;

/// A record as the contract has it.
type RecordWire = chokepoint_contract::UsageRecord;

/// A validated batch: records to book, then unused lease slots to release, and the
/// records and release ids refused, to dead-letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageBatch {
    pub records: Vec<UsageRecord>,
    pub releases: Vec<String>,
    pub dead: Vec<DeadLetter>,
}

impl UsageBatch {
    /// Checks the content type and decodes the batch. Whole-batch problems are the
    /// error; each record or release id that is invalid on its own becomes a dead
    /// letter whose error names it: `records[3].input_tokens …`.
    pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<Self, ApiError> {
        let wire: BatchWire = json_body::decode(content_type, body)?;
        let releases = wire.releases;
        if releases.len() > MAX_USAGE_RECORDS {
            return Err(fields::invalid(
                "releases",
                &format!("must hold at most {MAX_USAGE_RECORDS} slots per batch"),
            )
            .into());
        }
        let records = wire
            .records
            .into_option()
            .ok_or_else(|| fields::missing("records"))?;
        if records.len() > MAX_USAGE_RECORDS {
            return Err(fields::invalid(
                "records",
                &format!(
                    "must hold at most {MAX_USAGE_RECORDS} records per batch (got {})",
                    records.len()
                ),
            )
            .into());
        }
        let mut batch = UsageBatch {
            records: Vec::with_capacity(records.len()),
            releases: Vec::with_capacity(releases.len()),
            dead: Vec::new(),
        };
        for (i, record) in records.iter().enumerate() {
            match UsageRecord::validate(Listed("records", i), record) {
                Ok(record) => batch.records.push(record),
                Err(err) => batch.dead.push(DeadLetter::new(&err.message, record.get())),
            }
        }
        for (i, release) in releases.iter().enumerate() {
            let at = Listed("releases", i);
            let id = serde_json::from_str::<String>(release.get())
                .map_err(|_| fields::invalid(at, "must be a string"))
                .and_then(|id| fields::request_id(at, Some(id)));
            match id {
                Ok(id) => batch.releases.push(id),
                Err(err) => batch
                    .dead
                    .push(DeadLetter::new(&err.message, release.get())),
            }
        }
        Ok(batch)
    }
}

impl UsageRecord {
    fn validate(at: Listed, raw: &RawValue) -> Result<Self, ApiError> {
        // RawValue holds one JSON value with no surrounding whitespace.
        if !raw.get().starts_with('{') {
            return Err(fields::invalid(at, "must be a JSON object").into());
        }
        // Read plainly, and once more tracking the path only to say where a record that
        // does not read went wrong: tracking it costs every record.
        let wire: RecordWire = match serde_json::from_str(raw.get()) {
            Ok(wire) => wire,
            Err(_) => {
                let mut de = serde_json::Deserializer::from_str(raw.get());
                let err = match serde_path_to_error::deserialize::<_, RecordWire>(&mut de) {
                    Ok(_) => {
                        return Err(fields::invalid(at, "could not be read").into());
                    }
                    Err(err) => err,
                };
                let path = err.path().to_string();
                // serde_json appends "at line L column C" of the record; the path says where.
                let message = err.into_inner().to_string();
                let message = message.split(" at line ").next().unwrap_or_default();
                return Err(ApiError::invalid_request(
                    "invalid_field",
                    format!("{at}.{path}: {message}"),
                ));
            }
        };
        let field = |name: &'static str| FieldPath { at, name };
        let request_id = fields::request_id(field("request_id"), wire.request_id.into_option())?;
        let reservation_id = wire
            .reservation_id
            .map(|id| fields::request_id(field("reservation_id"), Some(id)))
            .transpose()?;
        if let Some(trace_id) = &wire.trace_id {
            if trace_id.len() > MAX_REQUEST_ID_BYTES {
                return Err(fields::invalid(
                    field("trace_id"),
                    &format!(
                        "must be at most {MAX_REQUEST_ID_BYTES} bytes (got {})",
                        trace_id.len()
                    ),
                )
                .into());
            }
        }
        let user = fields::user(field("user"), wire.user)?;
        let name = |name: &'static str, value| fields::name(field(name), value);
        let count = |name: &'static str, value: u64| -> Result<u64, ApiError> {
            match value {
                n if n <= MAX_USAGE_COUNT => Ok(n),
                _ => Err(fields::invalid(
                    field(name),
                    &format!("must be at most 2^53 ({MAX_USAGE_COUNT})"),
                )
                .into()),
            }
        };
        name("error", wire.error)?;
        let mcp = wire
            .mcp
            .map(|mcp| mcp_usage(&field("mcp").to_string(), mcp))
            .transpose()?;
        if mcp.is_some() {
            // Booked nowhere but the MCP counts: tokens or a cost would vanish.
            for (name, value) in [
                ("input_tokens", wire.input_tokens),
                ("output_tokens", wire.output_tokens),
                ("cost_micros", wire.cost_micros),
            ] {
                if value != 0 {
                    return Err(fields::invalid(
                        field(name),
                        "must be 0 in an MCP record (it has no tokens or cost)",
                    )
                    .into());
                }
            }
        }
        Ok(Self {
            input_tokens: count("input_tokens", wire.input_tokens)?,
            output_tokens: count("output_tokens", wire.output_tokens)?,
            cached_input_tokens: count("cached_input_tokens", wire.cached_input_tokens)?,
            reasoning_tokens: count("reasoning_tokens", wire.reasoning_tokens)?,
            cache_creation_input_tokens: count(
                "cache_creation_input_tokens",
                wire.cache_creation_input_tokens,
            )?,
            cost_micros: count("cost_micros", wire.cost_micros)?,
            request_id,
            reservation_id,
            user,
            tenant: name("tenant", wire.tenant)?,
            groups: fields::groups(field("groups"), wire.groups)?,
            cost_center: name("cost_center", wire.cost_center)?,
            model: name("model", wire.model)?,
            model_key: fields::model_key(field("model_key"), wire.model_key)?,
            provider: name("provider", wire.provider)?,
            format: name("format", wire.format)?,
            stream: wire.stream,
            estimated: wire.estimated,
            status: wire.status,
            decision: name("decision", wire.decision)?,
            latency_ms: wire.latency_ms,
            ttft_ms: wire.ttft_ms,
            completed: wire.completed,
            ts_ms: wire.ts_ms,
            mcp,
            client_tool: client_tools::tool_name(wire.client.as_deref()),
            raw: raw.get().to_owned(),
        })
    }
}

/// `<list>[<i>]`, an item of a batch as errors name it, written out only for an error.
#[derive(Clone, Copy)]
struct Listed(&'static str, usize);

impl std::fmt::Display for Listed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}[{}]", self.0, self.1)
    }
}

/// `<at>.<name>`, a record's field as errors name it, written out only for an error.
#[derive(Clone, Copy)]
struct FieldPath {
    at: Listed,
    name: &'static str,
}

impl std::fmt::Display for FieldPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.at, self.name)
    }
}

fn mcp_usage(at: &str, wire: chokepoint_contract::McpUsage) -> Result<McpUsage, ApiError> {
    fields::mcp_server(&format!("{at}.server"), &wire.server)?;
    let method = fields::name(&format!("{at}.method"), Some(wire.method))?.unwrap_or_default();
    if method.trim().is_empty() {
        return Err(fields::invalid(&format!("{at}.method"), "must not be empty").into());
    }
    Ok(McpUsage {
        server: wire.server,
        method,
        name: fields::name(&format!("{at}.name"), wire.name)?,
        rpc_error: wire.rpc_error,
        tool_error: wire.tool_error,
    })
}

pub async fn record_usage(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let parsed = body
        .map_err(|rejection| ApiError::from_body_rejection(&rejection))
        .and_then(|body| {
            let content_type = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok());
            UsageBatch::parse(content_type, &body)
        });
    let UsageBatch {
        records,
        releases,
        dead,
    } = match parsed {
        Ok(batch) => batch,
        Err(err) => {
            state.metrics.record_invalid_usage_batch();
            return err.into_response();
        }
    };

    let now_ms = state.clock.now_ms();
    let tally = state.ledger.book(&state.store, &records, now_ms).await;
    state
        .metrics
        .record_usage(tally.booked, tally.duplicates, tally.failed);
    // Records booked before a failure stay booked; the retry reports them as duplicates.
    // The store logs outages on its own (once per transition, not per request).
    if tally.error.is_some() {
        return ApiError::store_unavailable().into_response();
    }
    // After booking: a failure here has the filter retry, and its valid records then
    // come back as duplicates.
    let dead_lettered = match state
        .store
        .dead_letter(&dead, state.ledger.retention, now_ms)
        .await
    {
        Ok(n) => n,
        Err(_) => return ApiError::store_unavailable().into_response(),
    };
    if let Some(first) = dead.first() {
        state.metrics.record_dead_letters(dead_lettered);
        log::warn!(
            "usage batch: {dead_lettered} invalid record(s) kept in {DEAD_LETTER_KEY}, not \
             booked (first: {})",
            first.error.escape_debug()
        );
    }
    let released = match state.store.release_slots(&releases).await {
        Ok(n) => n,
        Err(_) => return ApiError::store_unavailable().into_response(),
    };
    Json(UsageAnswer {
        accepted: tally.booked,
        duplicates: tally.duplicates,
        dead_lettered,
        released: (!releases.is_empty()).then_some(released),
    })
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chokepoint_contract::bounds::{MAX_GROUPS, MAX_NAME_BYTES};
    use serde_json::json;

    const USER: &str = "0190a6f2-7c1e-8b3a-9f00-1234567890ab";
    const JSON: Option<&str> = Some("application/json");

    fn parse_batch(body: &str) -> Result<UsageBatch, ApiError> {
        UsageBatch::parse(JSON, body.as_bytes())
    }

    /// The valid records of a batch that has no invalid ones.
    fn parse(body: &str) -> Result<Vec<UsageRecord>, ApiError> {
        let batch = parse_batch(body)?;
        assert_eq!(batch.dead, [], "{}", &body[..body.len().min(120)]);
        Ok(batch.records)
    }

    fn batch_of(records: &[String]) -> String {
        format!(r#"{{"records":[{}]}}"#, records.join(","))
    }

    fn minimal(id: &str) -> String {
        format!(r#"{{"request_id":"{id}","user":"{USER}"}}"#)
    }

    /// A minimal record with one extra field set to `value` (raw JSON).
    fn with(field: &str, value: &str) -> String {
        format!(r#"{{"request_id":"r","user":"{USER}","{field}":{value}}}"#)
    }

    #[test]
    fn accepts_minimal_full_and_empty_batches() {
        assert_eq!(parse(r#"{"records":[]}"#).expect("empty"), []);

        let records = parse(&batch_of(&[minimal("r1")])).expect("minimal");
        let bare = &records[0];
        assert_eq!(bare.request_id, "r1");
        assert_eq!(bare.user.as_str(), USER);
        assert_eq!(
            (bare.input_tokens, bare.cost_micros, bare.estimated),
            (0, 0, false)
        );
        assert_eq!((bare.tenant.as_deref(), bare.ts_ms), (None, None));

        let full = format!(
            r#"{{"request_id":"r2","user":"{}","tenant":"acme","groups":["eng","ml"],
                "cost_center":"cc-42","model":"gpt-4o-2024-08-06","model_key":"gpt-4o*",
                "provider":"openai","format":"openai_chat","trace_id":"t-1","error":null,
                "stream":true,"input_tokens":1843,"output_tokens":217,"cached_input_tokens":1792,
                "reasoning_tokens":192,"cache_creation_input_tokens":5,"cost_micros":9007199254740992,
                "estimated":true,"status":200,"decision":"allow","latency_ms":812,"ttft_ms":95,
                "completed":false,"ts_ms":1795640042000,"future_field":{{"x":1}}}}"#,
            USER.to_uppercase()
        );
        let records = parse(&batch_of(&[full])).expect("full");
        let full = &records[0];
        assert_eq!(full.user.as_str(), USER, "user is canonicalised");
        assert_eq!(full.tenant.as_deref(), Some("acme"));
        assert_eq!(full.groups, ["eng", "ml"]);
        assert_eq!(full.cost_center.as_deref(), Some("cc-42"));
        assert_eq!(full.format.as_deref(), Some("openai_chat"));
        assert_eq!(
            (full.model.as_deref(), full.model_key.as_deref()),
            (Some("gpt-4o-2024-08-06"), Some("gpt-4o*"))
        );
        assert_eq!(
            [
                full.input_tokens,
                full.output_tokens,
                full.cached_input_tokens,
                full.reasoning_tokens,
                full.cache_creation_input_tokens,
                full.cost_micros
            ],
            [1843, 217, 1792, 192, 5, MAX_USAGE_COUNT]
        );
        assert!(full.stream && full.estimated);
        assert_eq!(
            (full.status, full.latency_ms, full.ttft_ms, full.completed),
            (Some(200), Some(812), Some(95), Some(false))
        );
        assert_eq!(full.ts_ms, Some(1_795_640_042_000));
        let raw: serde_json::Value = serde_json::from_str(&full.raw).unwrap();
        assert_eq!(raw["future_field"], json!({"x": 1}), "raw keeps everything");
        assert_eq!(raw["user"], USER.to_uppercase(), "raw is as sent");

        let nulls = format!(
            r#"{{"request_id":"r3","user":"{USER}","tenant":null,"groups":null,"input_tokens":null,
                "cost_micros":null,"stream":null,"estimated":null,"ttft_ms":null,"ts_ms":null}}"#
        );
        let records = parse(&batch_of(&[nulls])).expect("nulls");
        assert_eq!(records[0].input_tokens, 0);
        assert!(records[0].groups.is_empty());

        let most = vec![minimal("r"); MAX_USAGE_RECORDS];
        assert_eq!(parse(&batch_of(&most)).expect("1000").len(), 1000);
    }

    #[test]
    fn refuses_whole_batch_problems_naming_the_field() {
        let too_many = vec![minimal("r"); MAX_USAGE_RECORDS + 1];
        let too_many_releases = format!(
            r#"{{"records":[],"releases":[{}]}}"#,
            vec![r#""s""#; MAX_USAGE_RECORDS + 1].join(",")
        );
        let cases: Vec<(String, &str, &str)> = vec![
            ("".into(), "invalid_json", "empty"),
            ("{".into(), "invalid_json", "not valid JSON"),
            ("[]".into(), "invalid_field", "JSON object"),
            ("{}".into(), "missing_field", "records is required"),
            (
                r#"{"records":null}"#.into(),
                "missing_field",
                "records is required",
            ),
            (
                r#"{"records":{}}"#.into(),
                "invalid_field",
                "records: invalid type",
            ),
            (
                r#"{"records":[],"releases":"s"}"#.into(),
                "invalid_field",
                "releases: invalid type",
            ),
            (
                batch_of(&too_many),
                "invalid_field",
                "records must hold at most 1000 records per batch (got 1001)",
            ),
            (
                too_many_releases,
                "invalid_field",
                "releases must hold at most 1000 slots per batch",
            ),
            // One bad record in JSON that does not parse is a bad body, not a bad record.
            (
                format!(r#"{{"records":[{},{{"request_id":}}]}}"#, minimal("a")),
                "invalid_json",
                "not valid JSON",
            ),
        ];
        for (body, code, needle) in cases {
            let shown = &body[..body.len().min(120)];
            let err = parse_batch(&body).expect_err(shown);
            assert_eq!(err.status, axum::http::StatusCode::BAD_REQUEST, "{shown}");
            assert_eq!(err.code, code, "{shown}: {}", err.message);
            assert!(
                err.message.contains(needle),
                "{shown}: message {:?} lacks {needle:?}",
                err.message
            );
        }
    }

    #[test]
    fn dead_letters_each_invalid_record_naming_it_and_keeps_the_rest() {
        let long = "x".repeat(MAX_NAME_BYTES + 1);
        let long_id = "x".repeat(MAX_REQUEST_ID_BYTES + 1);
        let many_groups = format!("[{}]", vec![r#""g""#; MAX_GROUPS + 1].join(","));
        let quoted = |text: &str| format!("\"{text}\"");
        let cases: Vec<(String, &str)> = vec![
            (
                with("input_tokens", "-1"),
                "records[1].input_tokens: invalid value: integer `-1`",
            ),
            (
                with("output_tokens", "1.5"),
                "records[1].output_tokens: invalid type: floating point",
            ),
            (
                with("cost_micros", "1e3"),
                "records[1].cost_micros: invalid type: floating point",
            ),
            (
                with("cost_micros", "\"12\""),
                "records[1].cost_micros: invalid type: string",
            ),
            (
                with("cached_input_tokens", "9007199254740993"),
                "records[1].cached_input_tokens must be at most 2^53",
            ),
            (
                with("cost_micros", "18446744073709551615"),
                "records[1].cost_micros must be at most 2^53",
            ),
            (
                with("reasoning_tokens", "18446744073709551616"),
                "records[1].reasoning_tokens: invalid type: floating point",
            ),
            (
                r#"{"request_id":"c"}"#.into(),
                "records[1].user is required",
            ),
            (
                format!(r#"{{"user":"{USER}"}}"#),
                "records[1].request_id is required",
            ),
            (
                r#"{"request_id":"r","user":"alice"}"#.into(),
                "records[1].user must be a UUID",
            ),
            (
                format!(r#"{{"request_id":" ","user":"{USER}"}}"#),
                "records[1].request_id must not be empty",
            ),
            (
                format!(r#"{{"request_id":"{long_id}","user":"{USER}"}}"#),
                "records[1].request_id must be at most 256 bytes",
            ),
            (
                with("reservation_id", &quoted(&long_id)),
                "records[1].reservation_id must be at most 256 bytes",
            ),
            (
                with("trace_id", &quoted(&long_id)),
                "records[1].trace_id must be at most 256 bytes (got 257)",
            ),
            (with("status", "-1"), "records[1].status: invalid value"),
            (with("estimated", "1"), "records[1].estimated: invalid type"),
            (
                with("groups", "[\"eng\",7]"),
                "records[1].groups[1]: invalid type",
            ),
            (
                with("groups", &many_groups),
                "records[1].groups must hold at most 64 groups (got 65)",
            ),
            (
                with("groups", &format!("[\"eng\",{}]", quoted(&long))),
                "records[1].groups[1] must be at most 256 bytes (got 257)",
            ),
            (with("ts_ms", "-5"), "records[1].ts_ms: invalid value"),
            (with("tenant", "7"), "records[1].tenant: invalid type"),
            (
                with("model", &quoted(&"m".repeat(64 * 1024))),
                "records[1].model must be at most 256 bytes (got 65536)",
            ),
            (
                with("model_key", "\"\""),
                "records[1].model_key must not be empty",
            ),
            (
                with("model_key", &quoted(&long)),
                "records[1].model_key must be at most 256 bytes",
            ),
            (
                with("tenant", &quoted(&long)),
                "records[1].tenant must be at most 256 bytes",
            ),
            (
                with("cost_center", &quoted(&long)),
                "records[1].cost_center must be at most 256 bytes",
            ),
            (
                with("provider", &quoted(&long)),
                "records[1].provider must be at most 256 bytes",
            ),
            (
                with("format", &quoted(&long)),
                "records[1].format must be at most 256 bytes",
            ),
            (
                with("decision", &quoted(&long)),
                "records[1].decision must be at most 256 bytes",
            ),
            (
                with("error", &quoted(&long)),
                "records[1].error must be at most 256 bytes",
            ),
            ("7".into(), "records[1] must be a JSON object"),
            ("[]".into(), "records[1] must be a JSON object"),
            ("null".into(), "records[1] must be a JSON object"),
        ];
        for (bad, needle) in cases {
            // Between two good records, which are kept in order.
            let body = batch_of(&[minimal("a"), bad.clone(), minimal("b")]);
            let shown = &bad[..bad.len().min(120)];
            let batch = parse_batch(&body).expect(shown);
            let ids: Vec<&str> = batch
                .records
                .iter()
                .map(|r| r.request_id.as_str())
                .collect();
            assert_eq!(ids, ["a", "b"], "{shown}");
            let [dead] = batch.dead.as_slice() else {
                panic!("{shown}: {:?}", batch.dead);
            };
            assert!(
                dead.error.contains(needle),
                "{shown}: error {:?} lacks {needle:?}",
                dead.error
            );
            // Data errors name the field, never a position.
            assert!(!dead.error.contains(" at line "), "{}", dead.error);
            assert!(bad.starts_with(&dead.record), "{shown}");
            assert_eq!(dead.record_bytes, bad.len(), "{shown}");
        }
        // Every bound is inclusive.
        let at_bounds = [
            with("model", &quoted(&"m".repeat(MAX_NAME_BYTES))),
            with("trace_id", &quoted(&"t".repeat(MAX_REQUEST_ID_BYTES))),
            with(
                "groups",
                &format!("[{}]", vec![quoted(&long[1..]); MAX_GROUPS].join(",")),
            ),
        ];
        assert_eq!(parse(&batch_of(&at_bounds)).expect("at bounds").len(), 3);
    }

    #[test]
    fn dead_letters_release_ids_that_are_not_ones() {
        let long_id = "x".repeat(MAX_REQUEST_ID_BYTES + 1);
        let body = format!(r#"{{"records":[],"releases":["s.2",7,"","{long_id}","a\nb","s.3"]}}"#);
        let batch = parse_batch(&body).expect("batch");
        assert_eq!(batch.releases, ["s.2", "s.3"]);
        let errors: Vec<&str> = batch.dead.iter().map(|d| d.error.as_str()).collect();
        assert_eq!(
            errors,
            [
                "releases[1] must be a string",
                "releases[2] must not be empty",
                "releases[3] must be at most 256 bytes",
                "releases[4] must not contain control characters",
            ]
        );
        assert_eq!(batch.dead[0].record, "7");
    }

    #[test]
    fn requires_a_json_content_type() {
        let body = batch_of(&[minimal("r")]);
        let err = UsageBatch::parse(Some("text/plain"), body.as_bytes()).expect_err("text");
        assert_eq!(err.code, "unsupported_content_type");
        let err = UsageBatch::parse(None, body.as_bytes()).expect_err("none");
        assert_eq!(err.code, "unsupported_content_type");
    }
}
