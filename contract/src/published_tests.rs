use super::*;
use crate::validate::{check, Schema};
use crate::Required;
use serde_json::json;

const USER: &str = "0190a6f2-7c1e-8b3a-9f00-1234567890ab";

fn model_record(groups: &[String]) -> UsageRecord<&str, &[String]> {
    UsageRecord {
        request_id: Required::new("r1"),
        reservation_id: None,
        trace_id: Some("t-1"),
        user: Some(USER),
        tenant: Some("acme"),
        groups,
        cost_center: Some("cc-7"),
        client: Some("claude-code/2.1.332"),
        session: None,
        model: Some("claude-sonnet-4-5-20250929"),
        model_key: Some("claude-sonnet-4-5*"),
        provider: Some("anthropic"),
        format: Some("anthropic"),
        api: Some("anthropic"),
        operation: Some("chat"),
        stream: true,
        input_tokens: 1200,
        output_tokens: 300,
        cached_input_tokens: 1000,
        reasoning_tokens: 0,
        cache_creation_input_tokens: 100,
        cost_micros: 5040,
        estimated: false,
        status: Some(200),
        decision: Some("allowed"),
        latency_ms: Some(812),
        ttft_ms: Some(95),
        completed: Some(true),
        error: None,
        // 2026-11-25T21:20:42Z
        ts_ms: Some(1_795_640_042_000),
        policy_version: Some("sha256:0123456789abcdef"),
        price_version: Some("sha256:fedcba9876543210"),
        mcp: None,
        guardrails: Vec::new(),
    }
}

fn mcp_record<'a>(
    groups: &'a [String],
    method: &'a str,
    name: Option<&'a str>,
    rpc_error: Option<i64>,
) -> UsageRecord<&'a str, &'a [String]> {
    UsageRecord {
        model: None,
        model_key: None,
        provider: None,
        format: Some("mcp"),
        api: None,
        operation: None,
        stream: false,
        input_tokens: 0,
        output_tokens: 0,
        cached_input_tokens: 0,
        cache_creation_input_tokens: 0,
        cost_micros: 0,
        ttft_ms: None,
        mcp: Some(McpUsage {
            server: "everything",
            method,
            name,
            rpc_error,
            tool_error: rpc_error.is_none() && name == Some("fails"),
            bytes_in: 120,
            bytes_out: 340,
        }),
        ..model_record(groups)
    }
}

#[test]
fn a_model_record_publishes_under_the_conventions_names() {
    let groups = vec!["eng".to_string(), "research".to_string()];
    let got = to_json(&model_record(&groups));
    assert_eq!(
        got,
        json!({
            "chokepoint.schema_version": 1,
            "chokepoint.request_id": "r1",
            "chokepoint.trace_id": "t-1",
            "chokepoint.time_unix_ms": 1_795_640_042_000u64,
            "chokepoint.date": "2026-11-25",
            "chokepoint.user": USER,
            "chokepoint.tenant": "acme",
            "chokepoint.groups": ["eng", "research"],
            "chokepoint.cost_center": "cc-7",
            "chokepoint.client": "claude-code/2.1.332",
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "anthropic",
            "chokepoint.provider": "anthropic",
            "gen_ai.request.model": "claude-sonnet-4-5-20250929",
            "chokepoint.model_key": "claude-sonnet-4-5*",
            "chokepoint.format": "anthropic",
            "chokepoint.stream": true,
            "gen_ai.usage.input_tokens": 1200,
            "gen_ai.usage.output_tokens": 300,
            "gen_ai.usage.cache_read.input_tokens": 1000,
            "gen_ai.usage.cache_creation.input_tokens": 100,
            "chokepoint.usage.reasoning_tokens": 0,
            "chokepoint.cost_micros": 5040,
            "chokepoint.estimated": false,
            "http.response.status_code": 200,
            "chokepoint.decision": "allowed",
            "chokepoint.latency_ms": 812,
            "chokepoint.ttft_ms": 95,
            "chokepoint.completed": true,
            "chokepoint.policy_version": "sha256:0123456789abcdef",
            "chokepoint.price_version": "sha256:fedcba9876543210",
        })
    );
    check(Schema::PublishedRecord, &got).unwrap();
}

#[test]
fn mcp_names_go_to_the_field_their_method_names() {
    let groups: Vec<String> = Vec::new();
    // (method, name, rpc error, the fields expected beyond the common ones)
    let cases: [(&str, Option<&str>, Option<i64>, serde_json::Value); 6] = [
        (
            "tools/call",
            Some("echo"),
            None,
            json!({"gen_ai.tool.name": "echo", "gen_ai.operation.name": "execute_tool", "chokepoint.mcp.tool_error": false}),
        ),
        (
            "tools/call",
            Some("fails"),
            None,
            json!({"gen_ai.tool.name": "fails", "gen_ai.operation.name": "execute_tool", "chokepoint.mcp.tool_error": true}),
        ),
        (
            "tools/call",
            Some("get-env"),
            Some(-32602),
            json!({"gen_ai.tool.name": "get-env", "gen_ai.operation.name": "execute_tool", "rpc.response.status_code": "-32602", "chokepoint.mcp.tool_error": false}),
        ),
        (
            "prompts/get",
            Some("simple-prompt"),
            None,
            json!({"gen_ai.prompt.name": "simple-prompt", "chokepoint.mcp.tool_error": false}),
        ),
        (
            "resources/read",
            Some("demo://resource/static/document/a.md"),
            None,
            json!({"mcp.resource.uri": "demo://resource/static/document/a.md", "chokepoint.mcp.tool_error": false}),
        ),
        (
            "tools/list",
            None,
            Some(-31429),
            json!({"rpc.response.status_code": "-31429", "chokepoint.mcp.tool_error": false}),
        ),
    ];
    for (method, name, rpc_error, extra) in cases {
        let got = to_json(&mcp_record(&groups, method, name, rpc_error));
        check(Schema::PublishedRecord, &got).unwrap();
        let mut want = json!({
            "chokepoint.schema_version": 1,
            "chokepoint.request_id": "r1",
            "chokepoint.trace_id": "t-1",
            "chokepoint.time_unix_ms": 1_795_640_042_000u64,
            "chokepoint.date": "2026-11-25",
            "chokepoint.user": USER,
            "chokepoint.tenant": "acme",
            "chokepoint.cost_center": "cc-7",
            "chokepoint.client": "claude-code/2.1.332",
            "chokepoint.format": "mcp",
            "chokepoint.stream": false,
            "gen_ai.usage.input_tokens": 0,
            "gen_ai.usage.output_tokens": 0,
            "gen_ai.usage.cache_read.input_tokens": 0,
            "gen_ai.usage.cache_creation.input_tokens": 0,
            "chokepoint.usage.reasoning_tokens": 0,
            "chokepoint.cost_micros": 0,
            "chokepoint.estimated": false,
            "http.response.status_code": 200,
            "chokepoint.decision": "allowed",
            "chokepoint.latency_ms": 812,
            "chokepoint.completed": true,
            "chokepoint.mcp.server": "everything",
            "mcp.method.name": method,
            "chokepoint.mcp.bytes_in": 120,
            "chokepoint.mcp.bytes_out": 340,
            "chokepoint.policy_version": "sha256:0123456789abcdef",
            "chokepoint.price_version": "sha256:fedcba9876543210",
        });
        for (k, v) in extra.as_object().unwrap() {
            want[k] = v.clone();
        }
        assert_eq!(got, want, "{method} {name:?}");
    }
}

#[test]
fn api_families_map_to_the_conventions_provider_names() {
    let cases = [
        ("openai", Some("openai")),
        ("anthropic", Some("anthropic")),
        ("gemini", Some("gcp.gemini")),
        ("azure", Some("azure.ai.openai")),
        ("bedrock", None),
    ];
    for (api, want) in cases {
        assert_eq!(provider_name(api), want, "{api}");
    }
}

#[test]
fn a_refusal_before_the_caller_was_known_publishes_what_there_is() {
    let groups: Vec<String> = Vec::new();
    let r = UsageRecord {
        user: None,
        tenant: None,
        cost_center: None,
        client: None,
        model: None,
        model_key: None,
        provider: None,
        format: None,
        api: None,
        operation: None,
        stream: false,
        input_tokens: 0,
        output_tokens: 0,
        cached_input_tokens: 0,
        cache_creation_input_tokens: 0,
        cost_micros: 0,
        status: Some(401),
        decision: Some("unauthenticated"),
        ttft_ms: None,
        completed: Some(true),
        error: Some("invalid_token"),
        ..model_record(&groups)
    };
    let got = to_json(&r);
    check(Schema::PublishedRecord, &got).unwrap();
    assert_eq!(got["http.response.status_code"], 401);
    assert_eq!(got["error.type"], "invalid_token");
    assert!(got.get("chokepoint.user").is_none());
    assert!(got.get("chokepoint.groups").is_none());
}

#[test]
fn text_values_are_what_string_carriers_hold() {
    let groups = vec!["a\"b".to_string(), "c\\d".to_string(), "e\u{1}".to_string()];
    let cases = [
        (Value::Int(-32602), "-32602"),
        (Value::Bool(true), "true"),
        (Value::Str(Cow::Borrowed("x y")), "x y"),
        (
            Value::StrList(Cow::Borrowed(&groups)),
            r#"["a\"b","c\\d","e\u0001"]"#,
        ),
        (Value::StrList(Cow::Borrowed(&[])), "[]"),
    ];
    for (v, want) in cases {
        assert_eq!(v.text(), want, "{v:?}");
    }
    // The list's text is the JSON array of its items.
    let parsed: Vec<String> =
        serde_json::from_str(&Value::StrList(Cow::Borrowed(&groups)).text()).unwrap();
    assert_eq!(parsed, groups);
}

#[test]
fn days_are_utc_calendar_days() {
    let cases = [
        (0, "1970-01-01"),
        (951_782_400_000, "2000-02-29"),
        (1_735_689_599_999, "2024-12-31"),
        (1_735_689_600_000, "2025-01-01"),
        (1_795_640_042_000, "2026-11-25"),
    ];
    for (ms, want) in cases {
        assert_eq!(utc_day(ms), want, "{ms}");
    }
}

#[test]
fn every_field_is_named_once_and_documented() {
    let mut names: Vec<&str> = FIELDS.iter().map(|f| f.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), FIELDS.len());
    for f in FIELDS {
        assert!(
            f.name.starts_with("chokepoint.")
                || f.name.starts_with("gen_ai.")
                || f.name.starts_with("mcp.")
                || [
                    "http.response.status_code",
                    "error.type",
                    "rpc.response.status_code"
                ]
                .contains(&f.name),
            "{}",
            f.name
        );
        assert!(!f.description.is_empty(), "{}", f.name);
    }
}

#[test]
fn the_docs_table_lists_every_field_in_order() {
    let doc = include_str!("../../docs/usage-record.md");
    let listed: Vec<&str> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("| `")?.split('`').next())
        .collect();
    let fields: Vec<&str> = FIELDS.iter().map(|f| f.name).collect();
    assert_eq!(listed, fields, "docs/usage-record.md's table");
}

/// The guardrails' verdicts sum up as the strongest action, each name and category once,
/// and the values found in all.
#[test]
fn guardrail_verdicts_publish_as_their_summary() {
    use crate::{GuardAction, GuardStage, GuardVerdict};
    let groups: Vec<String> = Vec::new();
    let v = |name, category, action, stage, count| GuardVerdict {
        name,
        category,
        action,
        stage,
        count,
    };
    let cases = [
        (vec![], json!(null), json!(null), json!(null), json!(null)),
        (
            vec![v(
                "personal-data",
                "personal",
                GuardAction::Flag,
                GuardStage::Request,
                3,
            )],
            json!("flag"),
            json!(["personal-data"]),
            json!(["personal"]),
            json!(3),
        ),
        (
            vec![
                v(
                    "personal-data",
                    "personal",
                    GuardAction::Flag,
                    GuardStage::Request,
                    1,
                ),
                v(
                    "secrets",
                    "secret",
                    GuardAction::Block,
                    GuardStage::Request,
                    2,
                ),
                v(
                    "acme-dlp",
                    "service",
                    GuardAction::Unchecked,
                    GuardStage::Response,
                    1,
                ),
                v(
                    "secrets",
                    "personal",
                    GuardAction::Mask,
                    GuardStage::Request,
                    4,
                ),
            ],
            json!("block"),
            json!(["personal-data", "secrets", "acme-dlp"]),
            json!(["personal", "secret", "service"]),
            json!(8),
        ),
        (
            vec![
                v(
                    "acme-dlp",
                    "service",
                    GuardAction::Unchecked,
                    GuardStage::Request,
                    1,
                ),
                v("pii", "personal", GuardAction::Mask, GuardStage::Request, 1),
            ],
            json!("mask"),
            json!(["acme-dlp", "pii"]),
            json!(["service", "personal"]),
            json!(2),
        ),
    ];
    for (verdicts, action, names, categories, findings) in cases {
        let r = UsageRecord {
            guardrails: verdicts,
            ..model_record(&groups)
        };
        let got = to_json(&r);
        check(Schema::PublishedRecord, &got).unwrap();
        let field = |name: &str| got.get(name).cloned().unwrap_or(json!(null));
        assert_eq!(field("chokepoint.guardrail.action"), action, "{got}");
        assert_eq!(field("chokepoint.guardrail.names"), names, "{got}");
        assert_eq!(
            field("chokepoint.guardrail.categories"),
            categories,
            "{got}"
        );
        assert_eq!(field("chokepoint.guardrail.findings"), findings, "{got}");
    }
    // An action the published schema does not know fails it.
    let mut bad = to_json(&model_record(&groups));
    bad["chokepoint.guardrail.action"] = json!("allow");
    assert!(check(Schema::PublishedRecord, &bad).is_err());
}
