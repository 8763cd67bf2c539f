//! The published record as filter state, one state per field, for Envoy's OpenTelemetry
//! access logger: its `attributes` are format strings, and
//! `%FILTER_STATE(wasm.otlp.<name>:PLAIN)%` reads one field. Envoy's format strings make
//! text of everything, so values are text too ([`Value::text`]: integers in decimal,
//! `true`/`false`, a list as a JSON array); a field the record lacks is not written, and
//! the logger gives it as `-`.

use chokepoint_contract::published::{self, Value};

use crate::accounting::record::UsageRecord;
use crate::host::Host;

/// What each field's filter state is named after (`wasm.` is Envoy's, for a wasm
/// filter's state): `otlp.gen_ai.request.model` is `wasm.otlp.gen_ai.request.model`.
pub const STATE_PREFIX: &str = "otlp.";

/// Writes every field the record has.
pub fn write(host: &mut dyn Host, record: &UsageRecord) {
    let mut name = String::with_capacity(STATE_PREFIX.len() + 48);
    for (field, value) in published::attributes(record) {
        name.truncate(0);
        name.push_str(STATE_PREFIX);
        name.push_str(field);
        match value {
            // Most fields are text already: no copy.
            Value::Str(s) => host.set_filter_state(&name, s.as_bytes()),
            other => host.set_filter_state(&name, other.text().as_bytes()),
        }
    }
}
