use serde_json::{json, Value};

use super::*;
use crate::config::Config;
use crate::runtime::Runtime;
use crate::testing::{self, guard_rules, guarded_config, Keys};

fn parse(guardrails: Value) -> Result<Config, ConfigError> {
    let mut c = Keys::new().config_json();
    c["guardrails"] = guardrails;
    Config::parse(c.to_string().as_bytes())
}

fn with_checks(checks: Value) -> Value {
    json!({"rules": guard_rules(), "checks": checks})
}

/// The brief's example section reads as it says.
#[test]
fn a_rendered_section_reads_into_its_checks() {
    let c = parse(json!({
        "rules": guard_rules(),
        "mask_key_env": "CHOKEPOINT_UUID_SALT",
        "checks": [
            {"name": "secrets", "detect": ["secret"], "action": "block", "on": ["request"],
             "scope": {"models": [], "groups": [], "tenants": []}},
            {"name": "personal-data", "detect": ["personal", "aws-access-key-id"], "action": "flag",
             "scope": {"models": ["claude-*"], "groups": ["eng"], "tenants": ["acme"]}},
            {"name": "acme-dlp", "on": ["request", "response"],
             "service": {"cluster": "guardrail_acme-dlp", "authority": "dlp.example.com",
                         "path": "/beta/litellm_basic_guardrail_api", "timeout_ms": 500,
                         "failure_mode": "open", "api_key_env": "ACME_DLP_KEY"}},
        ],
        "cache_entries": 4096,
        "max_response_scan_bytes": 4_194_304,
    }))
    .unwrap();
    let g = c.guardrails.unwrap();
    assert_eq!(g.checks.len(), 3);
    let rules = |i: usize| match &g.checks[i].kind {
        CheckKind::Detect { rules, action } => {
            let ids: Vec<&str> = rules.iter().map(|&r| g.rules.id(r)).collect();
            (ids, *action)
        }
        CheckKind::Service(_) => panic!("a detecting check"),
    };
    assert_eq!(
        rules(0),
        (vec!["aws-access-key-id", "github-token"], Action::Block)
    );
    assert_eq!(
        rules(1),
        (vec!["aws-access-key-id", "email-address"], Action::Flag)
    );
    assert!(g.checks[0].on_request && !g.checks[0].on_response);
    let CheckKind::Service(s) = &g.checks[2].kind else {
        panic!("a service check")
    };
    assert_eq!(
        (s.cluster.as_str(), s.authority.as_str(), s.path.as_str()),
        (
            "guardrail_acme-dlp",
            "dlp.example.com",
            "/beta/litellm_basic_guardrail_api"
        )
    );
    assert_eq!(s.timeout, Duration::from_millis(500));
    assert!(s.fail_open);
    assert!(g.checks[2].on_request && g.checks[2].on_response);
    assert_eq!(g.mask_key_env, "CHOKEPOINT_UUID_SALT");
    assert!(!g.masks());
}

/// Defaults: requests only, everyone, the salt's variable as the masks' key, a 4096-entry
/// cache; a service closed, its authority its cluster.
#[test]
fn defaults() {
    let mut c = Keys::new().config_json();
    c["uuid_salt_env"] = json!("MY_SALT");
    c["guardrails"] = with_checks(json!([
        {"name": "m", "detect": ["email-address"], "action": "mask"},
        {"name": "s", "service": {"cluster": "dlp", "path": "/check"}},
    ]));
    let g = Config::parse(c.to_string().as_bytes())
        .unwrap()
        .guardrails
        .unwrap();
    assert_eq!(g.mask_key_env, "MY_SALT");
    assert_eq!(g.cache_entries, DEFAULT_CACHE_ENTRIES);
    assert_eq!(g.max_response_scan_bytes, DEFAULT_MAX_RESPONSE_SCAN_BYTES);
    assert!(g.masks());
    let m = &g.checks[0];
    assert!(m.on_request && !m.on_response);
    assert!(m.scope.covers(None, None, &[]));
    let CheckKind::Service(s) = &g.checks[1].kind else {
        panic!("a service check")
    };
    assert_eq!(s.authority, "dlp");
    assert!(!s.fail_open);
    assert_eq!(s.timeout, Duration::from_millis(DEFAULT_SERVICE_TIMEOUT_MS));
}

/// Each error names its field. (section, the field named, a word of the message)
#[test]
fn errors_name_their_field() {
    let check = |extra: Value| {
        let mut c = json!({"name": "secrets", "detect": ["secret"], "action": "block"});
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        with_checks(json!([c]))
    };
    let service = |s: Value| {
        let mut base = json!({"cluster": "dlp", "path": "/check"});
        for (k, v) in s.as_object().unwrap() {
            base[k] = v.clone();
        }
        with_checks(json!([{"name": "dlp", "service": base}]))
    };
    let mut bad_regex = guard_rules();
    bad_regex[1]["regex"] = json!("(unclosed");
    let mut dup = guard_rules();
    dup[2]["id"] = json!("aws-access-key-id");
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({"rules": bad_regex, "checks": [{"name": "a", "detect": ["secret"], "action": "flag"}]}),
            "guardrails.rules[1].regex",
            "github-token",
        ),
        (
            json!({"rules": dup, "checks": [{"name": "a", "detect": ["secret"], "action": "flag"}]}),
            "guardrails.rules[2].id",
            "aws-access-key-id",
        ),
        (with_checks(json!([])), "guardrails.checks", "at least one"),
        (
            with_checks(json!(vec![
                json!({"name": "a", "detect": ["secret"], "action": "flag"});
                17
            ])),
            "guardrails.checks",
            "at most 16",
        ),
        (
            check(json!({"name": "Secrets"})),
            "guardrails.checks[0].name",
            "[a-z0-9-]",
        ),
        (
            check(json!({"name": ""})),
            "guardrails.checks[0].name",
            "[a-z0-9-]",
        ),
        (
            check(json!({"name": "x".repeat(65)})),
            "guardrails.checks[0].name",
            "64",
        ),
        (
            with_checks(json!([
                {"name": "a", "detect": ["secret"], "action": "flag"},
                {"name": "a", "detect": ["personal"], "action": "flag"},
            ])),
            "guardrails.checks[1].name",
            "duplicate",
        ),
        (
            check(json!({"action": "deny"})),
            "guardrails.checks[0].action",
            "\"deny\"",
        ),
        (
            check(json!({"action": null})),
            "guardrails.checks[0].action",
            "block, mask, flag",
        ),
        (
            check(json!({"detect": null, "action": null})),
            "guardrails.checks[0].detect",
            "service",
        ),
        (
            check(json!({"detect": []})),
            "guardrails.checks[0].detect",
            "at least one",
        ),
        (
            check(json!({"detect": ["secret", "ssn"]})),
            "guardrails.checks[0].detect[1]",
            "\"ssn\"",
        ),
        (
            check(json!({"action": "mask", "on": ["request", "response"]})),
            "guardrails.checks[0].action",
            "requests only",
        ),
        (
            check(json!({"on": []})),
            "guardrails.checks[0].on",
            "request",
        ),
        (
            check(json!({"on": ["answer"]})),
            "guardrails.checks[0].on",
            "\"answer\"",
        ),
        (
            check(json!({"on": ["request", "request"]})),
            "guardrails.checks[0].on",
            "twice",
        ),
        (
            check(json!({"scope": {"models": [""]}})),
            "guardrails.checks[0].scope.models[0]",
            "glob",
        ),
        (
            check(json!({"scope": {"groups": ["x".repeat(257)]}})),
            "guardrails.checks[0].scope.groups[0]",
            "glob",
        ),
        (
            check(json!({"service": {"cluster": "dlp", "path": "/check"}})),
            "guardrails.checks[0].service",
            "no detect or action",
        ),
        (
            service(json!({"cluster": ""})),
            "guardrails.checks[0].service.cluster",
            "cluster",
        ),
        (
            service(json!({"path": "check"})),
            "guardrails.checks[0].service.path",
            "absolute",
        ),
        (
            service(json!({"authority": ""})),
            "guardrails.checks[0].service.authority",
            "host",
        ),
        (
            service(json!({"timeout_ms": 0})),
            "guardrails.checks[0].service.timeout_ms",
            "60000",
        ),
        (
            service(json!({"failure_mode": "maybe"})),
            "guardrails.checks[0].service.failure_mode",
            "\"maybe\"",
        ),
        (
            service(json!({"api_key_env": "KEY=sk-123"})),
            "guardrails.checks[0].service.api_key_env",
            "environment variable",
        ),
        (
            json!({"rules": guard_rules(), "mask_key_env": "", "checks": [{"name": "a", "detect": ["secret"], "action": "flag"}]}),
            "guardrails.mask_key_env",
            "environment variable",
        ),
        (
            json!({"rules": guard_rules(), "cache_entries": 2_000_000, "checks": [{"name": "a", "detect": ["secret"], "action": "flag"}]}),
            "guardrails.cache_entries",
            "1000000",
        ),
        (
            json!({"rules": guard_rules(), "max_response_scan_bytes": 10, "checks": [{"name": "a", "detect": ["secret"], "action": "flag"}]}),
            "guardrails.max_response_scan_bytes",
            "1024",
        ),
    ];
    for (section, field, word) in cases {
        let e = parse(section.clone()).expect_err(field);
        assert_eq!(e.field, field, "{section}: {}", e.message);
        assert!(e.message.contains(word), "{field}: {}", e.message);
    }
}

/// Unknown fields anywhere in the section fail loudly, naming themselves.
#[test]
fn unknown_fields_are_refused() {
    let mut rule_typo = guard_rules();
    rule_typo[0]["keyword"] = json!(["akia"]);
    for (section, name) in [
        (
            json!({"rules": guard_rules(), "checks": [], "cache": 1}),
            "cache",
        ),
        (
            with_checks(
                json!([{"name": "a", "detect": ["secret"], "action": "flag", "scopes": {}}]),
            ),
            "scopes",
        ),
        (
            with_checks(
                json!([{"name": "a", "detect": ["secret"], "action": "flag", "scope": {"model": []}}]),
            ),
            "model",
        ),
        (
            with_checks(
                json!([{"name": "a", "service": {"cluster": "c", "path": "/", "url": "https://x"}}]),
            ),
            "url",
        ),
        (
            json!({"rules": rule_typo, "checks": [{"name": "a", "detect": ["secret"], "action": "flag"}]}),
            "keyword",
        ),
    ] {
        let e = parse(section).expect_err(name);
        assert!(e.message.contains(name), "{name}: {}", e.message);
    }
}

/// Scopes: each list ANDed, any glob of a list, any of the caller's groups.
#[test]
fn scopes_cover_whom_they_name() {
    let g = |scope: Value| {
        parse(with_checks(
            json!([{"name": "a", "detect": ["secret"], "action": "flag", "scope": scope}]),
        ))
        .unwrap()
        .guardrails
        .unwrap()
    };
    let eng = ["ml".to_string(), "eng".to_string()];
    // (scope, model, tenant, groups, covered)
    type Case<'a> = (Value, Option<&'a str>, Option<&'a str>, &'a [String], bool);
    let cases: Vec<Case> = vec![
        (json!({}), None, None, &[], true),
        (
            json!({"models": ["claude-*"]}),
            Some("claude-sonnet-4-5"),
            None,
            &[],
            true,
        ),
        (
            json!({"models": ["claude-*"]}),
            Some("gpt-4o"),
            None,
            &[],
            false,
        ),
        (json!({"models": ["claude-*"]}), None, None, &[], false),
        (json!({"groups": ["eng"]}), None, None, &eng, true),
        (json!({"groups": ["fin*"]}), None, None, &eng, false),
        (json!({"groups": ["eng"]}), None, None, &[], false),
        (json!({"tenants": ["acme"]}), None, Some("acme"), &[], true),
        (json!({"tenants": ["acme"]}), None, None, &[], false),
        (
            json!({"models": ["gpt-*"], "tenants": ["acme"], "groups": ["eng"]}),
            Some("gpt-4o"),
            Some("acme"),
            &eng,
            true,
        ),
        (
            json!({"models": ["gpt-*"], "tenants": ["acme"], "groups": ["eng"]}),
            Some("gpt-4o"),
            Some("globex"),
            &eng,
            false,
        ),
    ];
    for (scope, model, tenant, groups, want) in cases {
        let covered = g(scope.clone()).checks[0]
            .scope
            .covers(model, tenant, groups);
        assert_eq!(covered, want, "{scope} {model:?} {tenant:?} {groups:?}");
    }
}

/// The masks' key and the services' keys come from the environment, like the salt: a
/// masking check without a key, or a service whose key is unset, fails the load.
#[test]
fn keys_are_read_from_the_environment() {
    let keys = Keys::new();
    let masking = guarded_config(
        keys,
        json!([{"name": "m", "detect": ["personal"], "action": "mask", "scope": {}}]),
    );
    let rt = testing::runtime_from(&masking);
    assert!(rt.masker.is_some());
    let mut short = masking.clone();
    short["guardrails"]["mask_key_env"] = json!("SHORT_KEY");
    let config = Config::parse(short.to_string().as_bytes()).unwrap();
    let e = Runtime::new(config, |k| match k {
        "SHORT_KEY" => Some("short".into()),
        k => testing::env(k),
    })
    .unwrap_err();
    assert_eq!(e.field, "guardrails.mask_key_env");
    assert!(!e.message.contains("short\""), "{}", e.message);

    let flagging = guarded_config(
        keys,
        json!([{"name": "f", "detect": ["personal"], "action": "flag"}]),
    );
    assert!(testing::runtime_from(&flagging).masker.is_none());

    let service = guarded_config(
        keys,
        json!([
            {"name": "f", "detect": ["personal"], "action": "flag"},
            {"name": "dlp", "service": {"cluster": "dlp", "path": "/c", "api_key_env": "DLP_KEY"}},
        ]),
    );
    let parse = || Config::parse(service.to_string().as_bytes()).unwrap();
    let e = Runtime::new(parse(), testing::env).unwrap_err();
    assert_eq!(e.field, "guardrails.checks[1].service.api_key_env");
    let rt = Runtime::new(parse(), |k| match k {
        "DLP_KEY" => Some(" dlp-secret-1 ".into()),
        k => testing::env(k),
    })
    .unwrap();
    assert_eq!(
        rt.guard_service_authorizations,
        vec![None, Some("Bearer dlp-secret-1".to_string())]
    );
    assert!(!format!("{rt:?}").contains("dlp-secret-1"));
}
