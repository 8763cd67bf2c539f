//! Invalid configurations are refused with a message that names the field.

use super::*;
use crate::runtime::Runtime;
use crate::testing::Keys;

#[test]
fn valid_config_gets_defaults() {
    let keys = Keys::new();
    let c = Config::parse(keys.config_json().to_string().as_bytes()).unwrap();
    let names: Vec<(&str, Option<&str>)> = c
        .token_sources
        .iter()
        .map(|s| match s {
            TokenSource::Header { name, scheme } => (name.as_str(), scheme.as_deref()),
            TokenSource::Cookie { name } => (name.as_str(), Some("cookie")),
        })
        .collect();
    assert_eq!(
        names,
        [
            ("authorization", Some("Bearer")),
            ("x-api-key", None),
            ("x-goog-api-key", None),
            ("api-key", None)
        ]
    );
    assert_eq!(c.uuid_salt_env, "CHOKEPOINT_UUID_SALT");
    assert_eq!(c.providers[0].key_header, "authorization");
    assert_eq!(c.providers[0].key_prefix, "Bearer ");
    assert_eq!(c.providers[1].key_header, "x-api-key");
    assert_eq!(c.providers[1].key_prefix, "");
    assert_eq!(c.usage.path, "/v1/usage");
    assert_eq!(c.policy.timeout, Duration::from_millis(500));
    assert_eq!(c.clock_skew, Duration::from_secs(60));
    match &c.issuers[0].keys {
        KeySource::Inline(set) => assert_eq!(set.keys.len(), 3),
        other => panic!("{other:?}"),
    }
}

#[test]
fn invalid_configs_name_the_field() {
    let keys = Keys::new();
    type Edit = fn(&mut serde_json::Value);
    let table: Vec<(&str, Edit, &str)> = vec![
        (
            "unknown top-level field",
            |c| c["polcy"] = serde_json::json!({}),
            "unknown field `polcy`",
        ),
        (
            "unknown nested field",
            |c| c["providers"][0]["key"] = "sk-oops".into(),
            "unknown field `key`",
        ),
        (
            "unknown provider api",
            |c| c["providers"][0]["api"] = "openia".into(),
            "providers[0].api",
        ),
        (
            "duplicate provider",
            |c| c["providers"][1]["name"] = "openai".into(),
            "providers[1].name",
        ),
        (
            "price not a number",
            |c| c["prices"]["models"]["gpt-4o-mini"]["input_per_mtok_usd"] = "cheap".into(),
            "prices",
        ),
        (
            "batch too large",
            |c| c["usage"] = serde_json::json!({"batch_max": 5000}),
            "usage.batch_max",
        ),
        (
            "no issuers",
            |c| c["issuers"] = serde_json::json!([]),
            "issuers",
        ),
        (
            "empty audience list",
            |c| c["issuers"][0]["audiences"] = serde_json::json!([]),
            "issuers[0].audiences",
        ),
        (
            "jwks without keys",
            |c| c["issuers"][0]["jwks"] = serde_json::json!({}),
            "issuers[0].jwks",
        ),
        (
            "hmac key in jwks",
            |c| {
                c["issuers"][0]["jwks"] = serde_json::json!({"keys":[{"kty":"oct","k":"c2VjcmV0"}]})
            },
            "issuers[0].jwks",
        ),
        (
            "empty policy cluster",
            |c| c["policy"]["cluster"] = "".into(),
            "policy.cluster",
        ),
        (
            "zero timeout",
            |c| c["policy"]["timeout_ms"] = 0.into(),
            "policy.timeout_ms",
        ),
        (
            "timeout not a number",
            |c| c["policy"]["timeout_ms"] = "fast".into(),
            "invalid type",
        ),
        (
            "key env with value",
            |c| c["providers"][0]["key_env"] = "OPENAI_API_KEY=sk".into(),
            "providers[0].key_env",
        ),
        (
            "zero body limit",
            |c| c["max_request_body_bytes"] = 0.into(),
            "max_request_body_bytes",
        ),
        (
            "tiny token limit",
            |c| c["max_token_bytes"] = 10.into(),
            "max_token_bytes",
        ),
        (
            "huge skew",
            |c| c["clock_skew_secs"] = 3600.into(),
            "clock_skew_secs",
        ),
        (
            "policy version with a space",
            |c| c["versions"] = serde_json::json!({"policy": "v 1"}),
            "versions.policy",
        ),
        (
            "price version too long",
            |c| c["versions"] = serde_json::json!({"price": "x".repeat(65)}),
            "versions.price",
        ),
        (
            "unknown version",
            |c| c["versions"] = serde_json::json!({"schema": "1"}),
            "unknown field `schema`",
        ),
        (
            "two issuers, one without trust",
            |c| {
                let mut second = c["issuers"][0].clone();
                second["issuer"] = "https://partner.test".into();
                second["trust"] =
                    serde_json::json!({"tenants": ["p-*"], "groups": [], "cost_centers": []});
                c["issuers"] = serde_json::json!([c["issuers"][0].clone(), second]);
            },
            "issuers[0].trust: with more than one issuer",
        ),
        (
            "trust without cost centres",
            |c| c["issuers"][0]["trust"] = serde_json::json!({"tenants": ["*"], "groups": ["*"]}),
            "missing field `cost_centers`",
        ),
        (
            "empty trust pattern",
            |c| {
                c["issuers"][0]["trust"] =
                    serde_json::json!({"tenants": [""], "groups": ["*"], "cost_centers": ["*"]})
            },
            "issuers[0].trust.tenants",
        ),
        (
            "deployments on a provider that is not Azure",
            |c| c["providers"][0]["deployments"] = serde_json::json!({"d": "gpt-4o"}),
            "providers[0].deployments",
        ),
        (
            "a deployment with a slash",
            |c| {
                c["providers"][0]["api"] = "azure".into();
                c["providers"][0]["deployments"] = serde_json::json!({"a/b": "gpt-4o"});
            },
            "providers[0].deployments",
        ),
    ];
    for (name, edit, want) in table {
        let mut c = keys.config_json();
        edit(&mut c);
        let e = Config::parse(c.to_string().as_bytes()).unwrap_err();
        assert!(e.to_string().contains(want), "{name}: {e}");
    }
    assert!(Config::parse(b"not json").is_err());
}

#[test]
fn secrets_come_from_the_environment() {
    let keys = Keys::new();
    let config = || Config::parse(keys.config_json().to_string().as_bytes()).unwrap();
    let e = Runtime::new(config(), |_| None).unwrap_err();
    assert_eq!(e.field, "uuid_salt_env");
    let e = Runtime::new(config(), |k| {
        (k == "CHOKEPOINT_UUID_SALT").then(|| "short".to_string())
    })
    .unwrap_err();
    assert_eq!(e.field, "uuid_salt_env");
    let e = Runtime::new(config(), |k| {
        (k == "CHOKEPOINT_UUID_SALT").then(|| "x".repeat(32))
    })
    .unwrap_err();
    assert_eq!(e.field, "providers[0].key_env");
    let rt = Runtime::new(config(), crate::testing::env).unwrap();
    for secret in [crate::testing::PROVIDER_KEY, crate::testing::POLICY_TOKEN] {
        assert!(
            !format!("{rt:?}").contains(secret),
            "Debug must not print {secret}"
        );
    }
}

#[test]
fn the_policy_token_must_be_set_and_long() {
    let keys = Keys::new();
    let token = |value: Option<&str>, name: &str, mode: &str| {
        let mut c = keys.config_json();
        c["mode"] = mode.into();
        c["policy"]["token_env"] = name.into();
        let config = Config::parse(c.to_string().as_bytes()).unwrap();
        let value = value.map(str::to_owned);
        Runtime::new(config, move |k| {
            if k == name {
                value.clone()
            } else {
                crate::testing::env(k)
            }
        })
    };
    let long = "t".repeat(32);
    // (value, variable, mode, refused)
    let cases = [
        (None, "GATEWAY_TOKEN", "full", true),
        (Some(""), "GATEWAY_TOKEN", "full", true),
        (Some(&long[..31]), "GATEWAY_TOKEN", "full", true),
        (
            Some("thirty-two bytes but a space in it"),
            "GATEWAY_TOKEN",
            "full",
            true,
        ),
        (Some(&long[..]), "GATEWAY_TOKEN", "full", false),
        // Identity mode never calls the policy service.
        (None, "GATEWAY_TOKEN", "identity", false),
    ];
    for (value, name, mode, refused) in cases {
        match token(value, name, mode) {
            Err(e) => {
                assert!(refused, "{value:?} {mode}: {e}");
                assert_eq!(e.field, "policy.token_env");
                assert!(e.message.contains(name), "{e}");
                if let Some(v) = value.filter(|v| !v.is_empty()) {
                    assert!(!e.to_string().contains(v), "the error shows no secret: {e}");
                }
            }
            Ok(rt) => {
                assert!(!refused, "{value:?} {mode} must be refused");
                let want = value.map(|v| format!("Bearer {v}"));
                assert_eq!(rt.policy_authorization, want);
            }
        }
    }
    // The default variable, and a value where the name belongs.
    let c = Config::parse(keys.config_json().to_string().as_bytes()).unwrap();
    assert_eq!(c.policy.token_env, "CHOKEPOINT_POLICY_TOKEN");
    for bad in ["", "CHOKEPOINT_POLICY_TOKEN=s3cret"] {
        let mut c = keys.config_json();
        c["policy"]["token_env"] = bad.into();
        let e = Config::parse(c.to_string().as_bytes()).unwrap_err();
        assert_eq!(e.field, "policy.token_env", "{bad:?}");
    }
}
