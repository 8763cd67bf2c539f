//! The usage record as chokepoint publishes it, version 1: one flat object per request,
//! the same in every place it leaves the gateway (OpenTelemetry log attributes, the
//! Parquet table's columns). Names are the OpenTelemetry GenAI and MCP semantic
//! conventions' where one exists (`gen_ai.usage.input_tokens`, `mcp.method.name`), and
//! chokepoint's own under `chokepoint.` otherwise.
//!
//! [`FIELDS`] is the list, in a fixed order; [`attributes`] reads a [`UsageRecord`] into
//! it. `schema/published/usage-record.v1.json` is the JSON Schema of the object, generated
//! from [`FIELDS`] (a test fails when they drift apart); each property names the internal
//! record field it comes from (`x-chokepoint-source`), so a reader in another language
//! maps an access-log line to the published record without a copy of this code.
//!
//! Version 1 only grows: a new field may be added (readers ignore what they do not know);
//! a field renamed, retyped or given another meaning needs version 2.

use std::borrow::Cow;

use crate::{GuardAction, GuardVerdict, McpUsage, UsageRecord};

/// `chokepoint.schema_version` of every record this module publishes.
pub const VERSION: i64 = 1;

/// A published field's type. Every field but `chokepoint.schema_version`,
/// `chokepoint.request_id` and the booleans may be absent (null).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Str,
    /// A signed 64-bit integer (every count fits: the record's are at most 2^53).
    Int,
    Bool,
    StrList,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub name: &'static str,
    pub kind: Kind,
    /// Where it comes from in the internal record (`contract/schema/usage-record.v1.json`).
    pub source: &'static str,
    pub description: &'static str,
}

/// A published value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<'a> {
    Str(Cow<'a, str>),
    Int(i64),
    Bool(bool),
    /// Borrowed from the record (its groups) or gathered from it (its guardrails' names).
    StrList(Cow<'a, [String]>),
}

impl Value<'_> {
    /// The value as text: decimal integers, `true`/`false`, a list as a JSON array. What
    /// carriers that hold strings only (Envoy's format strings) hold.
    pub fn text(&self) -> String {
        match self {
            Value::Str(s) => s.to_string(),
            Value::Int(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::StrList(items) => {
                let mut out = String::from("[");
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    json_string(&mut out, item);
                }
                out.push(']');
                out
            }
        }
    }
}

fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

const fn field(
    name: &'static str,
    kind: Kind,
    source: &'static str,
    description: &'static str,
) -> Field {
    Field {
        name,
        kind,
        source,
        description,
    }
}

use Kind::*;

/// Every published field, in order.
pub const FIELDS: &[Field] = &[
    field("chokepoint.schema_version", Int, "", "The published record's version: 1."),
    field("chokepoint.request_id", Str, "request_id", "The gateway's id for the request: unique, the ledger's idempotency key."),
    field("chokepoint.trace_id", Str, "trace_id", "Envoy's x-request-id, to join with Envoy's logs and traces."),
    field("chokepoint.time_unix_ms", Int, "ts_ms", "When the request started, ms since the Unix epoch."),
    field("chokepoint.date", Str, "ts_ms", "The UTC day the request is booked on (YYYY-MM-DD)."),
    field("chokepoint.user", Str, "user", "The caller's pseudonymous id (a UUID); absent for a request refused before the caller was known."),
    field("chokepoint.tenant", Str, "tenant", "The caller's tenant claim."),
    field("chokepoint.groups", StrList, "groups", "The caller's groups claim."),
    field("chokepoint.cost_center", Str, "cost_center", "The caller's cost centre claim."),
    field("chokepoint.client", Str, "client", "The calling tool, <name>/<version>, as the client names itself: attribution only."),
    field("chokepoint.session", Str, "session", "The coding agent's own session id, where it sends one: attribution only."),
    field("gen_ai.operation.name", Str, "operation", "The GenAI operation: chat, text_completion, embeddings, generate_content; execute_tool for an MCP tools/call."),
    field("gen_ai.provider.name", Str, "api", "The provider's API family in the conventions' names: openai, anthropic, gcp.gemini, azure.ai.openai."),
    field("chokepoint.provider", Str, "provider", "The provider as the policy file names it."),
    field("gen_ai.request.model", Str, "model", "The model the client asked for."),
    field("chokepoint.model_key", Str, "model_key", "What the ledger books the model under: a name the policy file holds, or other."),
    field("chokepoint.format", Str, "format", "The wire format of the exchange: openai_chat, openai_responses, anthropic, gemini, mcp."),
    field("chokepoint.stream", Bool, "stream", "The answer was streamed."),
    field("gen_ai.usage.input_tokens", Int, "input_tokens", "Input tokens, cache reads and writes included."),
    field("gen_ai.usage.output_tokens", Int, "output_tokens", "Output tokens, reasoning included."),
    field("gen_ai.usage.cache_read.input_tokens", Int, "cached_input_tokens", "Input tokens read from the provider's prompt cache."),
    field("gen_ai.usage.cache_creation.input_tokens", Int, "cache_creation_input_tokens", "Input tokens written to the provider's prompt cache."),
    field("chokepoint.usage.reasoning_tokens", Int, "reasoning_tokens", "Output tokens spent on reasoning."),
    field("chokepoint.cost_micros", Int, "cost_micros", "What the request cost, in millionths of a US dollar, at the gateway's prices."),
    field("chokepoint.estimated", Bool, "estimated", "The counts were estimated: the provider reported none (a stream cut short)."),
    field("http.response.status_code", Int, "status", "The HTTP status the client got."),
    field("chokepoint.decision", Str, "decision", "What the gateway decided: allowed, denied, allowed_fail_open, ..."),
    field("error.type", Str, "error", "The error class of a failed exchange, when there was one."),
    field("chokepoint.latency_ms", Int, "latency_ms", "From the request's start to the end of the exchange, ms."),
    field("chokepoint.ttft_ms", Int, "ttft_ms", "Time to the first response byte, ms."),
    field("chokepoint.completed", Bool, "completed", "The answer ended whole."),
    field("chokepoint.mcp.server", Str, "mcp.server", "The MCP server, as the policy file names it."),
    field("mcp.method.name", Str, "mcp.method", "The JSON-RPC method of an MCP message (tools/call, initialize, ...); response, GET or DELETE for the rest of the protocol."),
    field("gen_ai.tool.name", Str, "mcp.name", "The tool an MCP tools/call names."),
    field("gen_ai.prompt.name", Str, "mcp.name", "The prompt an MCP prompts/get names."),
    field("mcp.resource.uri", Str, "mcp.name", "The resource an MCP resources/read (or subscribe, unsubscribe) names, cut to 256 bytes."),
    field("rpc.response.status_code", Str, "mcp.rpc_error", "The JSON-RPC error code an MCP answer carried."),
    field("chokepoint.mcp.tool_error", Bool, "mcp.tool_error", "The tool itself failed (isError in its result)."),
    field("chokepoint.mcp.bytes_in", Int, "mcp.bytes_in", "The MCP request body's bytes."),
    field("chokepoint.mcp.bytes_out", Int, "mcp.bytes_out", "The MCP response body's bytes."),
    field("chokepoint.guardrail.action", Str, "guardrails[].action", "The strongest action a guardrail took on the request: block, mask, flag or unchecked (a guardrail service could not judge it and let it through)."),
    field("chokepoint.guardrail.names", StrList, "guardrails[].name", "The guardrail checks that found something, as the policy file names them."),
    field("chokepoint.guardrail.categories", StrList, "guardrails[].category", "What kinds of data they found: secret, personal, or service (an external guardrail service's verdict)."),
    field("chokepoint.guardrail.findings", Int, "guardrails[].count", "How many values the guardrails found, over every check and stage."),
    field("chokepoint.policy_version", Str, "policy_version", "The version of the policy the gateway applied (a digest of its configuration)."),
    field("chokepoint.price_version", Str, "price_version", "The version of the price table the cost was computed with (a digest)."),
];

const FIELD_COUNT: usize = 46;
const _: () = assert!(FIELDS.len() == FIELD_COUNT);

/// `gen_ai.provider.name` for an API family as records name it.
pub fn provider_name(api: &str) -> Option<&'static str> {
    match api {
        "openai" => Some("openai"),
        "anthropic" => Some("anthropic"),
        "gemini" => Some("gcp.gemini"),
        "azure" => Some("azure.ai.openai"),
        _ => None,
    }
}

/// The MCP name's field: which attribute a method's `name` is.
fn mcp_name_field(method: &str) -> Option<&'static str> {
    match method {
        "tools/call" => Some("gen_ai.tool.name"),
        "prompts/get" => Some("gen_ai.prompt.name"),
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
            Some("mcp.resource.uri")
        }
        _ => None,
    }
}

/// A record's published fields, in [`FIELDS`] order, those with a value only. The date
/// is the UTC day of `ts_ms`; an exporter that knows the day the ledger booked the
/// record on gives that instead ([`attributes_on`]).
pub fn attributes<S, L>(r: &UsageRecord<S, L>) -> Vec<(&'static str, Value<'_>)>
where
    S: AsRef<str>,
    L: AsRef<[String]>,
{
    attributes_on(r, None)
}

/// [`attributes`], with `chokepoint.date` the given day when there is one.
pub fn attributes_on<'a, S, L>(
    r: &'a UsageRecord<S, L>,
    day: Option<&'a str>,
) -> Vec<(&'static str, Value<'a>)>
where
    S: AsRef<str>,
    L: AsRef<[String]>,
{
    let s = |v: &'a Option<S>| v.as_ref().map(|x| Value::Str(Cow::Borrowed(x.as_ref())));
    let n = |v: u64| Some(Value::Int(i64::try_from(v).unwrap_or(i64::MAX)));
    let on = |v: Option<u64>| v.and_then(n);
    let mcp: Option<&McpUsage<S>> = r.mcp.as_ref();
    let mcp_name = mcp.and_then(|m| {
        let field = mcp_name_field(m.method.as_ref())?;
        Some((field, m.name.as_ref()?.as_ref()))
    });
    let named = |field: &str| {
        mcp_name
            .filter(|(f, _)| *f == field)
            .map(|(_, name)| Value::Str(Cow::Borrowed(name)))
    };
    let operation = match mcp {
        Some(m) if m.method.as_ref() == "tools/call" => {
            Some(Value::Str(Cow::Borrowed("execute_tool")))
        }
        _ => s(&r.operation),
    };
    let groups = r.groups.as_ref();
    let date = match day {
        Some(d) => Some(Value::Str(Cow::Borrowed(d))),
        None => r.ts_ms.map(|ms| Value::Str(Cow::Owned(utc_day(ms)))),
    };
    let values: [Option<Value<'a>>; FIELD_COUNT] = [
        Some(Value::Int(VERSION)),
        r.request_id
            .get()
            .map(|x| Value::Str(Cow::Borrowed(x.as_ref()))),
        s(&r.trace_id),
        on(r.ts_ms),
        date,
        s(&r.user),
        s(&r.tenant),
        (!groups.is_empty()).then_some(Value::StrList(Cow::Borrowed(groups))),
        s(&r.cost_center),
        s(&r.client),
        s(&r.session),
        operation,
        r.api
            .as_ref()
            .and_then(|a| provider_name(a.as_ref()))
            .map(|p| Value::Str(Cow::Borrowed(p))),
        s(&r.provider),
        s(&r.model),
        s(&r.model_key),
        s(&r.format),
        Some(Value::Bool(r.stream)),
        n(r.input_tokens),
        n(r.output_tokens),
        n(r.cached_input_tokens),
        n(r.cache_creation_input_tokens),
        n(r.reasoning_tokens),
        n(r.cost_micros),
        Some(Value::Bool(r.estimated)),
        on(r.status.map(u64::from)),
        s(&r.decision),
        s(&r.error),
        on(r.latency_ms),
        on(r.ttft_ms),
        r.completed.map(Value::Bool),
        mcp.map(|m| Value::Str(Cow::Borrowed(m.server.as_ref()))),
        mcp.map(|m| Value::Str(Cow::Borrowed(m.method.as_ref()))),
        named("gen_ai.tool.name"),
        named("gen_ai.prompt.name"),
        named("mcp.resource.uri"),
        mcp.and_then(|m| m.rpc_error)
            .map(|c| Value::Str(Cow::Owned(c.to_string()))),
        mcp.map(|m| Value::Bool(m.tool_error)),
        mcp.and_then(|m| n(m.bytes_in)),
        mcp.and_then(|m| n(m.bytes_out)),
        guard_action(&r.guardrails),
        guard_list(&r.guardrails, |v| v.name.as_ref()),
        guard_list(&r.guardrails, |v| v.category.as_ref()),
        (!r.guardrails.is_empty()).then(|| {
            let sum = r
                .guardrails
                .iter()
                .fold(0u64, |n, v| n.saturating_add(v.count));
            Value::Int(i64::try_from(sum).unwrap_or(i64::MAX))
        }),
        s(&r.policy_version),
        s(&r.price_version),
    ];
    FIELDS
        .iter()
        .zip(values)
        .filter_map(|(f, v)| v.map(|v| (f.name, v)))
        .collect()
}

/// The strongest action of a record's guardrails.
fn guard_action<S>(verdicts: &[GuardVerdict<S>]) -> Option<Value<'static>> {
    verdicts
        .iter()
        .map(|v| v.action)
        .max()
        .map(|a: GuardAction| Value::Str(Cow::Borrowed(a.as_str())))
}

/// One of the guardrails' texts, each value once, in the order first met.
fn guard_list<'a, S>(
    verdicts: &'a [GuardVerdict<S>],
    text: impl Fn(&'a GuardVerdict<S>) -> &'a str,
) -> Option<Value<'a>> {
    let mut out: Vec<String> = Vec::new();
    for v in verdicts {
        let t = text(v);
        if !out.iter().any(|o| o == t) {
            out.push(t.to_owned());
        }
    }
    (!out.is_empty()).then_some(Value::StrList(Cow::Owned(out)))
}

/// The UTC day of a Unix time in ms, `YYYY-MM-DD` (Howard Hinnant's civil-from-days).
pub fn utc_day(ms: u64) -> String {
    let z = (ms / 86_400_000) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The JSON Schema of the published record as a JSON object (`schema/published/`).
#[cfg(any(test, feature = "json"))]
pub fn json_schema() -> serde_json::Value {
    use serde_json::{json, Map};
    let mut properties = Map::new();
    for f in FIELDS {
        let mut p = Map::new();
        match f.kind {
            Kind::Str => p.insert("type".into(), "string".into()),
            Kind::Int => p.insert("type".into(), "integer".into()),
            Kind::Bool => p.insert("type".into(), "boolean".into()),
            Kind::StrList => {
                p.insert("items".into(), json!({"type": "string"}));
                p.insert("type".into(), "array".into())
            }
        };
        p.insert("description".into(), f.description.into());
        if !f.source.is_empty() {
            p.insert("x-chokepoint-source".into(), f.source.into());
        }
        let pattern = match f.name {
            "chokepoint.date" => Some(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"),
            "chokepoint.user" => Some(
                r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$",
            ),
            "rpc.response.status_code" => Some(r"^-?[0-9]+$"),
            _ => None,
        };
        if let Some(pattern) = pattern {
            p.insert("pattern".into(), pattern.into());
        }
        if f.name == "chokepoint.guardrail.action" {
            let actions = [
                GuardAction::Block,
                GuardAction::Mask,
                GuardAction::Flag,
                GuardAction::Unchecked,
            ];
            p.insert(
                "enum".into(),
                actions
                    .iter()
                    .map(|a| a.as_str())
                    .collect::<Vec<_>>()
                    .into(),
            );
        }
        if f.name == "chokepoint.schema_version" {
            p.insert("const".into(), VERSION.into());
        } else if f.kind == Kind::Int {
            p.insert("minimum".into(), 0.into());
        }
        properties.insert(f.name.into(), serde_json::Value::Object(p));
    }
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "published/usage-record.v1.json",
        "title": "chokepoint usage record, published, version 1",
        "description": "One AI or MCP request through the chokepoint gateway, as it leaves the gateway: OpenTelemetry log attributes and the Parquet table's columns. OpenTelemetry GenAI and MCP semantic-convention names where one exists, chokepoint's own under `chokepoint.`. A field without a value is absent. `x-chokepoint-source` names the field of the internal record (usage-record.v1.json) a value comes from. Counts, ids and outcomes only: never prompt or completion text.",
        "type": "object",
        "required": ["chokepoint.schema_version", "chokepoint.request_id"],
        "properties": properties,
        "additionalProperties": false,
    })
}

/// A record's published fields as a JSON object.
#[cfg(any(test, feature = "json"))]
pub fn to_json<S, L>(r: &UsageRecord<S, L>) -> serde_json::Value
where
    S: AsRef<str>,
    L: AsRef<[String]>,
{
    let map = attributes(r)
        .into_iter()
        .map(|(name, v)| {
            let v = match v {
                Value::Str(s) => serde_json::Value::from(s.into_owned()),
                Value::Int(n) => n.into(),
                Value::Bool(b) => b.into(),
                Value::StrList(items) => items.iter().map(String::as_str).collect(),
            };
            (name.to_string(), v)
        })
        .collect();
    serde_json::Value::Object(map)
}

#[cfg(test)]
#[path = "published_tests.rs"]
mod tests;
