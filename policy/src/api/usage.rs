//! `POST /v1/usage`: the filter reports what proxied requests consumed, in batches.
//!
//! The filter retries a batch until it gets a 200, so any record may arrive more than
//! once and a batch may mix new records with ones already booked. The ledger books
//! each `request_id` once, and the same step commits it against budgets (releasing the
//! request's reservation); this endpoint only validates and reports what happened.
//! A 400 means the batch can never succeed as sent (nothing in it was booked); a 503
//! means "keep it and retry", which is always safe.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;

use super::error::ApiError;
use super::{fields, json_body, AppState};
use crate::user_id::UserId;

/// Most records one batch may carry. Every record is one Redis script call, and a batch
/// shares one Redis timeout, so the batch size bounds the work behind one response.
pub const MAX_USAGE_RECORDS: usize = 1000;

/// Largest token count or cost accepted: 2^53, the largest integer every JSON reader
/// (JavaScript included) and Redis's Lua (doubles) hold exactly. Anything bigger is a
/// filter bug, not usage.
pub const MAX_USAGE_COUNT: u64 = 1 << 53;

/// One proxied request's usage, validated.
///
/// Token counts and cost absent or null are zero. The other optional fields are not
/// booked; they are type-checked so a filter bug shows up as a 400, and otherwise live
/// in `raw`, the record as received, which is what the audit log keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRecord {
    pub request_id: String,
    /// The lease slot the request was admitted on (see authorize.lua, "Leases"), whose
    /// reservation this record releases; `None`: the request's own.
    pub reservation_id: Option<String>,
    pub user: UserId,
    pub tenant: Option<String>,
    pub groups: Vec<String>,
    pub cost_center: Option<String>,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub format: Option<String>,
    pub stream: bool,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_input_tokens: u64,
    pub reasoning_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cost_micros: u64,
    /// The counts were estimated (the provider reported none, e.g. a cut-off stream).
    pub estimated: bool,
    pub status: Option<u32>,
    pub decision: Option<String>,
    pub latency_ms: Option<u64>,
    pub ttft_ms: Option<u64>,
    pub completed: Option<bool>,
    /// When the request happened, by the filter's clock: picks the ledger day.
    pub ts_ms: Option<u64>,
    /// The record exactly as the filter sent it (its JSON text), unknown fields included.
    pub raw: String,
}

/// The wire shapes. As in authorize, required fields are `Option` so their absence gets
/// our message, and unknown fields are ignored so a newer filter may send more.
/// Records stay raw text here (checked JSON, no tree built) so each keeps its form for
/// the audit log, is decoded straight into its typed fields, and so a batch over the size
/// limit is refused before any record is examined.
#[derive(Deserialize)]
struct BatchWire {
    records: Option<Vec<Box<RawValue>>>,
    /// Lease slots the filter did not use, to give back.
    releases: Option<Vec<String>>,
}

/// A validated batch: records to book, then unused lease slots to release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageBatch {
    pub records: Vec<UsageRecord>,
    pub releases: Vec<String>,
}

#[derive(Deserialize)]
struct RecordWire {
    request_id: Option<String>,
    reservation_id: Option<String>,
    user: Option<String>,
    tenant: Option<String>,
    groups: Option<Vec<String>>,
    cost_center: Option<String>,
    model: Option<String>,
    provider: Option<String>,
    format: Option<String>,
    stream: Option<bool>,
    // u64 makes serde reject negatives, fractions and exponents (`1e3` is a float in
    // JSON) with a message naming the field.
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cached_input_tokens: Option<u64>,
    reasoning_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    cost_micros: Option<u64>,
    estimated: Option<bool>,
    status: Option<u32>,
    decision: Option<String>,
    latency_ms: Option<u64>,
    ttft_ms: Option<u64>,
    completed: Option<bool>,
    ts_ms: Option<u64>,
}

impl UsageRecord {
    /// Checks the content type and decodes and validates a whole batch. The first bad
    /// record fails the batch, with a message naming it: `records[3].input_tokens …`.
    pub fn parse_batch(content_type: Option<&str>, body: &[u8]) -> Result<Vec<Self>, ApiError> {
        Self::parse_full_batch(content_type, body).map(|b| b.records)
    }

    /// The whole batch: records and the lease slots to release.
    pub fn parse_full_batch(
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<UsageBatch, ApiError> {
        let wire: BatchWire = json_body::decode(content_type, body)?;
        let releases = wire.releases.unwrap_or_default();
        if releases.len() > MAX_USAGE_RECORDS {
            return Err(fields::invalid(
                "releases",
                &format!("must hold at most {MAX_USAGE_RECORDS} slots per batch"),
            ));
        }
        let releases = releases
            .into_iter()
            .enumerate()
            .map(|(i, id)| fields::request_id(&format!("releases[{i}]"), Some(id)))
            .collect::<Result<Vec<_>, _>>()?;
        let records = wire.records.ok_or_else(|| fields::missing("records"))?;
        if records.len() > MAX_USAGE_RECORDS {
            return Err(fields::invalid(
                "records",
                &format!(
                    "must hold at most {MAX_USAGE_RECORDS} records per batch (got {})",
                    records.len()
                ),
            ));
        }
        let records = records
            .into_iter()
            .enumerate()
            .map(|(index, record)| Self::validate(&format!("records[{index}]"), &record))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(UsageBatch { records, releases })
    }

    fn validate(at: &str, raw: &RawValue) -> Result<Self, ApiError> {
        // RawValue holds one JSON value with no surrounding whitespace.
        if !raw.get().starts_with('{') {
            return Err(fields::invalid(at, "must be a JSON object"));
        }
        let mut de = serde_json::Deserializer::from_str(raw.get());
        let wire: RecordWire = serde_path_to_error::deserialize(&mut de).map_err(|err| {
            let path = err.path().to_string();
            // serde_json appends "at line L column C" of the record; the path says where.
            let message = err.into_inner().to_string();
            let message = message.split(" at line ").next().unwrap_or_default();
            ApiError::invalid_request("invalid_field", format!("{at}.{path}: {message}"))
        })?;
        let field = |name: &str| format!("{at}.{name}");
        let request_id = fields::request_id(&field("request_id"), wire.request_id)?;
        let reservation_id = wire
            .reservation_id
            .map(|id| fields::request_id(&field("reservation_id"), Some(id)))
            .transpose()?;
        let user = fields::user(&field("user"), wire.user)?;
        let count = |name: &str, value: Option<u64>| -> Result<u64, ApiError> {
            match value.unwrap_or(0) {
                n if n <= MAX_USAGE_COUNT => Ok(n),
                _ => Err(fields::invalid(
                    &field(name),
                    &format!("must be at most 2^53 ({MAX_USAGE_COUNT})"),
                )),
            }
        };
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
            tenant: wire.tenant,
            groups: wire.groups.unwrap_or_default(),
            cost_center: wire.cost_center,
            model: wire.model,
            provider: wire.provider,
            format: wire.format,
            stream: wire.stream.unwrap_or(false),
            estimated: wire.estimated.unwrap_or(false),
            status: wire.status,
            decision: wire.decision,
            latency_ms: wire.latency_ms,
            ttft_ms: wire.ttft_ms,
            completed: wire.completed,
            ts_ms: wire.ts_ms,
            raw: raw.get().to_owned(),
        })
    }
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
            UsageRecord::parse_full_batch(content_type, &body)
        });
    let UsageBatch { records, releases } = match parsed {
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
    let released = match state.store.release_slots(&releases).await {
        Ok(n) => n,
        Err(_) => return ApiError::store_unavailable().into_response(),
    };
    let mut body = json!({
        "accepted": tally.booked,
        "duplicates": tally.duplicates,
    });
    if !releases.is_empty() {
        body["released"] = json!(released);
    }
    Json(body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER: &str = "0190a6f2-7c1e-8b3a-9f00-1234567890ab";
    const JSON: Option<&str> = Some("application/json");

    fn parse(body: &str) -> Result<Vec<UsageRecord>, ApiError> {
        UsageRecord::parse_batch(JSON, body.as_bytes())
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
                "cost_center":"cc-42","model":"gpt-4o","provider":"openai","format":"openai_chat",
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
    fn rejects_bad_batches_naming_the_record_and_field() {
        let too_many = vec![minimal("r"); MAX_USAGE_RECORDS + 1];
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
                batch_of(&too_many),
                "invalid_field",
                "records must hold at most 1000 records per batch (got 1001)",
            ),
            (
                batch_of(&[minimal("a"), with("input_tokens", "-1")]),
                "invalid_field",
                "records[1].input_tokens: invalid value: integer `-1`",
            ),
            (
                batch_of(&[with("output_tokens", "1.5")]),
                "invalid_field",
                "records[0].output_tokens: invalid type: floating point",
            ),
            (
                batch_of(&[with("cost_micros", "1e3")]),
                "invalid_field",
                "records[0].cost_micros: invalid type: floating point",
            ),
            (
                batch_of(&[with("cost_micros", "\"12\"")]),
                "invalid_field",
                "records[0].cost_micros: invalid type: string",
            ),
            (
                batch_of(&[with("cached_input_tokens", "9007199254740993")]),
                "invalid_field",
                "records[0].cached_input_tokens must be at most 2^53",
            ),
            (
                batch_of(&[with("cost_micros", "18446744073709551615")]),
                "invalid_field",
                "records[0].cost_micros must be at most 2^53",
            ),
            (
                batch_of(&[with("reasoning_tokens", "18446744073709551616")]),
                "invalid_field",
                "records[0].reasoning_tokens: invalid type: floating point",
            ),
            (
                batch_of(&[minimal("a"), minimal("b"), r#"{"request_id":"c"}"#.into()]),
                "missing_field",
                "records[2].user is required",
            ),
            (
                batch_of(&[format!(r#"{{"user":"{USER}"}}"#)]),
                "missing_field",
                "records[0].request_id is required",
            ),
            (
                batch_of(&[r#"{"request_id":"r","user":"alice"}"#.into()]),
                "invalid_field",
                "records[0].user must be a UUID",
            ),
            (
                batch_of(&[format!(r#"{{"request_id":" ","user":"{USER}"}}"#)]),
                "invalid_field",
                "records[0].request_id must not be empty",
            ),
            (
                batch_of(&[with("status", "-1")]),
                "invalid_field",
                "records[0].status: invalid value",
            ),
            (
                batch_of(&[with("estimated", "1")]),
                "invalid_field",
                "records[0].estimated: invalid type",
            ),
            (
                batch_of(&[with("groups", "[\"eng\",7]")]),
                "invalid_field",
                "records[0].groups[1]: invalid type",
            ),
            (
                batch_of(&[with("ts_ms", "-5")]),
                "invalid_field",
                "records[0].ts_ms: invalid value",
            ),
            (
                batch_of(&[with("tenant", "7")]),
                "invalid_field",
                "records[0].tenant: invalid type",
            ),
            (
                format!(r#"{{"records":[{},7]}}"#, minimal("a")),
                "invalid_field",
                "records[1] must be a JSON object",
            ),
        ];
        for (body, code, needle) in cases {
            let shown = &body[..body.len().min(120)];
            let err = parse(&body).expect_err(shown);
            assert_eq!(err.status, axum::http::StatusCode::BAD_REQUEST, "{shown}");
            assert_eq!(err.code, code, "{shown}: {}", err.message);
            assert!(
                err.message.contains(needle),
                "{shown}: message {:?} lacks {needle:?}",
                err.message
            );
            // Positions help with syntax errors only; data errors name the field instead.
            assert!(
                code != "invalid_field" || !err.message.contains(" at line "),
                "{}",
                err.message
            );
        }
    }

    #[test]
    fn requires_a_json_content_type() {
        let body = batch_of(&[minimal("r")]);
        let err = UsageRecord::parse_batch(Some("text/plain"), body.as_bytes()).expect_err("text");
        assert_eq!(err.code, "unsupported_content_type");
        let err = UsageRecord::parse_batch(None, body.as_bytes()).expect_err("none");
        assert_eq!(err.code, "unsupported_content_type");
    }
}
