//! The rule set as a whole: compile errors, overlap resolution, byte offsets, keyword
//! gating, masks and the scan cache.

// A test states its expectations by panicking.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use chokepoint_guard::{mask, Category, Masker, Rule, RuleSet, ScanCache, Validator};

fn rule(id: &str, regex: &str) -> Rule {
    Rule {
        id: id.into(),
        category: Category::Secret,
        description: String::new(),
        regex: regex.into(),
        group: None,
        keywords: vec![],
        validate: None,
        min_entropy: None,
        allow: vec![],
        examples: None,
    }
}

fn builtin() -> RuleSet {
    RuleSet::compile(common::builtin_rules()).unwrap()
}

/// (rule id, value) of every finding.
fn found<'a>(set: &RuleSet, text: &'a str) -> Vec<(String, &'a str)> {
    set.scan(text)
        .iter()
        .map(|f| (set.id(f.rule).to_string(), &text[f.start..f.end]))
        .collect()
}

#[test]
fn compile_errors_name_the_rule_and_field() {
    let long = "a".repeat(65);
    let cases: Vec<(Vec<Rule>, &str, &str)> = vec![
        (vec![rule("a", "x"), rule("a", "y")], "a", "id"),
        (vec![rule("Bad_Id", "x")], "Bad_Id", "id"),
        (vec![rule("", "x")], "", "id"),
        (vec![rule(&long, "x")], &long, "id"),
        (vec![rule("r", "(unclosed")], "r", "regex"),
        (
            vec![Rule {
                group: Some(2),
                ..rule("g", "(a)b")
            }],
            "g",
            "group",
        ),
        (
            vec![Rule {
                validate: Some(Validator::Entropy),
                ..rule("e", "x+")
            }],
            "e",
            "min_entropy",
        ),
        (
            vec![Rule {
                min_entropy: Some(3.0),
                ..rule("m", "x+")
            }],
            "m",
            "min_entropy",
        ),
        (
            vec![Rule {
                allow: vec!["[".into()],
                ..rule("w", "x+")
            }],
            "w",
            "allow",
        ),
        (
            vec![Rule {
                keywords: vec![String::new()],
                ..rule("k", "x+")
            }],
            "k",
            "keywords",
        ),
        (vec![rule("big", "(?:\\w{1000}){1000}")], "big", "regex"),
    ];
    for (rules, id, field) in cases {
        let e = RuleSet::compile(rules).unwrap_err();
        assert_eq!((e.id.as_str(), e.field), (id, field), "{e}");
        assert!(e.to_string().contains(field), "{e}");
    }
}

#[test]
fn rules_files_refuse_unknown_fields_and_validators() {
    for (text, needle) in [
        (
            r#"[{"id":"a","category":"secret","regex":"x","keyword":["x"]}]"#,
            "keyword",
        ),
        (
            r#"[{"id":"a","category":"secret","regex":"x","validate":"crc"}]"#,
            "crc",
        ),
        (r#"[{"id":"a","category":"health","regex":"x"}]"#, "health"),
        (
            r#"[{"id":"a","category":"secret","regex":"x","examples":{"matches":[]}}]"#,
            "matches",
        ),
    ] {
        let e = serde_json::from_str::<Vec<Rule>>(text)
            .unwrap_err()
            .to_string();
        assert!(e.contains(needle), "{text}: {e}");
    }
}

#[test]
fn the_filter_config_form_drops_examples_and_round_trips() {
    let rules = common::builtin_rules();
    for r in &rules {
        let mut bare = r.clone();
        bare.examples = None;
        let json = serde_json::to_string(&bare).unwrap();
        assert!(
            !json.contains("examples") && !json.contains("\"group\":null"),
            "{json}"
        );
        let back: Rule = serde_json::from_str(&json).unwrap();
        assert_eq!(back, bare);
    }
}

#[test]
fn overlapping_findings_keep_the_first_start_then_the_earlier_rule() {
    let set = builtin();
    // The OpenAI key is also a high-entropy value under a key-like name: one finding,
    // the specific rule's.
    let text = r#"api_key = "sk-4fGh7Jk2Lm9Np3Qr8St1Uv6Wx0Yz5Ab2Cd7Ef4Gh9Ij3Kl8M""#;
    assert_eq!(
        found(&set, text),
        vec![(
            "openai-api-key".into(),
            "sk-4fGh7Jk2Lm9Np3Qr8St1Uv6Wx0Yz5Ab2Cd7Ef4Gh9Ij3Kl8M"
        )]
    );
    // A URL's password is not the local part of an e-mail address.
    let text = "postgres://app:Hx7q2Lm9zT@db.acme-corp.io:5432/app";
    assert_eq!(
        found(&set, text),
        vec![("url-password".into(), "Hx7q2Lm9zT")]
    );
    // Custom rules: same start, the earlier rule wins even when shorter; a later start
    // inside an earlier finding is dropped; a finding after it is kept.
    let set = RuleSet::compile(vec![
        rule("short", "abc"),
        rule("long", "abcdef"),
        rule("mid", "cde"),
        rule("tail", "gh"),
    ])
    .unwrap();
    assert_eq!(
        found(&set, "abcdefgh"),
        vec![("short".into(), "abc"), ("tail".into(), "gh")]
    );
}

#[test]
fn offsets_are_bytes_of_the_value_in_multibyte_text() {
    let set = builtin();
    let text = "Привет 👋 — ключ AKIAIOSFODNN7EXAMPLE, почта: jane.doe@acme-corp.io, карта 4570 3675 2065 8811 ✅";
    let f = set.scan(text);
    let got: Vec<(&str, &str)> = f
        .iter()
        .map(|f| (set.id(f.rule), &text[f.start..f.end]))
        .collect();
    assert_eq!(
        got,
        vec![
            ("aws-access-key-id", "AKIAIOSFODNN7EXAMPLE"),
            ("email-address", "jane.doe@acme-corp.io"),
            ("payment-card", "4570 3675 2065 8811"),
        ]
    );
    assert_eq!(f[0].start, text.find("AKIA").unwrap());
    assert!(f.windows(2).all(|w| w[0].end <= w[1].start));
    assert_eq!(set.category(f[1].rule), Category::Personal);
}

#[test]
fn decoded_strings_are_what_is_scanned() {
    // The filter scans the decoded JSON string, so a PEM block's newlines are real; a key
    // file pasted as text keeps its JSON escapes (\n): both are one private-key finding.
    let set = builtin();
    let pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n-----END PRIVATE KEY-----";
    let body = serde_json::json!({ "messages": [{ "role": "user", "content": pem }] }).to_string();
    assert!(body.contains("\\n"));
    let decoded: serde_json::Value = serde_json::from_str(&body).unwrap();
    let content = decoded["messages"][0]["content"].as_str().unwrap();
    assert_eq!(found(&set, content), vec![("private-key".into(), pem)]);
    let escaped = pem.replace('\n', "\\n");
    assert_eq!(found(&set, &escaped).len(), 1);
    assert_eq!(found(&set, &escaped)[0].0, "private-key");
}

#[test]
fn keywords_gate_their_rule_case_insensitively() {
    let set = RuleSet::compile(vec![Rule {
        keywords: vec!["Ticket".into()],
        ..rule("t", "[0-9]{6}")
    }])
    .unwrap();
    assert!(set.scan("order 123456").is_empty());
    assert_eq!(set.scan("TICKET 123456").len(), 1);
    assert_eq!(set.scan("ticket 123456 and 654321").len(), 2);
}

#[test]
fn validators_and_allowlists_drop_candidates() {
    let set = builtin();
    assert!(found(&set, "card 4111 1111 1111 1112").is_empty());
    assert!(found(&set, "API_KEY=${OPENAI_API_KEY}").is_empty());
    assert!(found(&set, "password = \"changeme\"").is_empty());
    assert!(found(&set, "api_key = \"aaaaaaaaaaaaaaaaaaaaaaaaaaaa\"").is_empty());
}

#[test]
fn masks_are_deterministic_per_key_rule_and_value() {
    let set = builtin();
    let m = Masker::new(b"salt-1");
    let p = m.placeholder("aws-access-key-id", "AKIAIOSFODNN7EXAMPLE");
    assert!(
        p.starts_with("[aws-access-key-id:") && p.ends_with(']') && p.len() == 28,
        "{p}"
    );
    assert_eq!(
        p,
        m.placeholder("aws-access-key-id", "AKIAIOSFODNN7EXAMPLE")
    );
    assert_ne!(
        p,
        Masker::new(b"salt-2").placeholder("aws-access-key-id", "AKIAIOSFODNN7EXAMPLE")
    );
    assert_ne!(p, m.placeholder("generic-secret", "AKIAIOSFODNN7EXAMPLE"));
    assert_ne!(
        p,
        m.placeholder("aws-access-key-id", "AKIAIOSFODNN7EXAMPLF")
    );
    let text =
        "é key AKIAIOSFODNN7EXAMPLE and mail jane.doe@acme-corp.io, again AKIAIOSFODNN7EXAMPLE.";
    let masked = mask(text, &set.scan(text), &set, &m);
    assert_eq!(
        masked,
        format!(
            "é key {p} and mail {} again {p}.",
            m.placeholder("email-address", "jane.doe@acme-corp.io") + ","
        )
    );
    assert!(
        !masked.contains("AKIA") && set.scan(&masked).is_empty(),
        "{masked}"
    );
}

#[test]
fn the_cache_answers_repeated_blocks_and_stays_bounded() {
    let set = builtin();
    let block = |i: usize| format!("turn {i}: {} key AKIAIOSFODNN7EXAMPLE", "x".repeat(300));
    let mut cache = ScanCache::new([7; 16], 3, 1 << 20);
    for _ in 0..2 {
        for i in 0..3 {
            assert_eq!(cache.scan(&set, &block(i)), set.scan(&block(i)));
        }
    }
    assert_eq!((cache.misses(), cache.hits(), cache.len()), (3, 3, 3));
    // A fourth block evicts the least recently used one (block 0).
    cache.scan(&set, &block(1));
    cache.scan(&set, &block(2));
    cache.scan(&set, &block(3));
    assert_eq!(cache.len(), 3);
    let misses = cache.misses();
    cache.scan(&set, &block(0));
    assert_eq!(cache.misses(), misses + 1);
    // Short texts are always scanned, never kept.
    let before = cache.len();
    let mut small = ScanCache::new([7; 16], 3, 1 << 20);
    small.scan(&set, "short AKIAIOSFODNN7EXAMPLE");
    assert_eq!((small.len(), small.misses(), before), (0, 0, 3));
    // The byte bound holds: room for one entry only.
    let mut tight = ScanCache::new([7; 16], 100, 100);
    tight.scan(&set, &block(0));
    tight.scan(&set, &block(1));
    assert_eq!(tight.len(), 1);
    // Keys depend on the seed.
    assert_ne!(
        ScanCache::new([1; 16], 1, 1).key(&block(0)),
        ScanCache::new([2; 16], 1, 1).key(&block(0))
    );
}
