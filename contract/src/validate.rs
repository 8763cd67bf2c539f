//! The committed JSON Schemas, and a check of a payload against one: for tests of the
//! crates that produce payloads (the filter's requests and records, the service's
//! answers), so that what they really send is held to what the schemas promise.

use std::sync::OnceLock;

use serde_json::Value;

/// One wire type's schema, version 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    AuthorizeRequest,
    Decision,
    UsageRecord,
    UsageBatch,
    UsageAnswer,
    /// The usage record as chokepoint publishes it ([`crate::published`]).
    PublishedRecord,
}

impl Schema {
    pub const ALL: [Schema; 6] = [
        Schema::AuthorizeRequest,
        Schema::Decision,
        Schema::UsageRecord,
        Schema::UsageBatch,
        Schema::UsageAnswer,
        Schema::PublishedRecord,
    ];

    /// Its file in `contract/schema/`.
    pub fn file_name(self) -> &'static str {
        match self {
            Schema::AuthorizeRequest => "authorize-request.v1.json",
            Schema::Decision => "decision.v1.json",
            Schema::UsageRecord => "usage-record.v1.json",
            Schema::UsageBatch => "usage-batch.v1.json",
            Schema::UsageAnswer => "usage-answer.v1.json",
            Schema::PublishedRecord => "published/usage-record.v1.json",
        }
    }

    /// The committed file's text (compiled in: tests run where the source tree is not,
    /// in V8 under WASI for one).
    pub fn text(self) -> &'static str {
        match self {
            Schema::AuthorizeRequest => include_str!("../schema/authorize-request.v1.json"),
            Schema::Decision => include_str!("../schema/decision.v1.json"),
            Schema::UsageRecord => include_str!("../schema/usage-record.v1.json"),
            Schema::UsageBatch => include_str!("../schema/usage-batch.v1.json"),
            Schema::UsageAnswer => include_str!("../schema/usage-answer.v1.json"),
            Schema::PublishedRecord => include_str!("../schema/published/usage-record.v1.json"),
        }
    }

    fn validator(self) -> &'static Result<jsonschema::Validator, String> {
        type Cell = OnceLock<Result<jsonschema::Validator, String>>;
        static CELLS: [Cell; 6] = [const { OnceLock::new() }; 6];
        let cell = match self {
            Schema::AuthorizeRequest => &CELLS[0],
            Schema::Decision => &CELLS[1],
            Schema::UsageRecord => &CELLS[2],
            Schema::UsageBatch => &CELLS[3],
            Schema::UsageAnswer => &CELLS[4],
            Schema::PublishedRecord => &CELLS[5],
        };
        cell.get_or_init(|| {
            let schema: Value = serde_json::from_str(self.text())
                .map_err(|e| format!("{} is not JSON: {e}", self.file_name()))?;
            jsonschema::validator_for(&schema)
                .map_err(|e| format!("{} is not a schema: {e}", self.file_name()))
        })
    }
}

/// `Err` lists every way `payload` breaks `schema`, each with where in the payload.
pub fn check(schema: Schema, payload: &Value) -> Result<(), String> {
    let validator = schema.validator().as_ref()?;
    let errors: Vec<String> = validator
        .iter_errors(payload)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!("{}: {}", schema.file_name(), errors.join("; ")))
    }
}

/// [`check`] of JSON text, which must parse.
pub fn check_text(schema: Schema, payload: &[u8]) -> Result<(), String> {
    let value: Value = serde_json::from_slice(payload)
        .map_err(|e| format!("{}: not JSON: {e}", schema.file_name()))?;
    check(schema, &value)
}
