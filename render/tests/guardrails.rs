//! The policy file's `guardrails:` section refused with the file, line and field when
//! wrong (its rules file's own lines for the rules), and the built-in rule list in
//! docs/guardrails.md held to guard/rules/builtin.yaml.

use std::path::PathBuf;

use chokepoint_render::policy::{Policy, PolicyError};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

const GUARDRAILS: &str = "
guardrails:
  checks:
    - name: secrets
      detect: [secret]
      action: block
    - name: personal-data
      detect: [personal]
      action: flag
      on: [request, response]
    - name: cards
      detect: [payment-card]
      action: mask
      scope: {models: [\"claude-*\"], groups: [support], tenants: [acme]}
    - name: acme-dlp
      service:
        url: https://dlp.example.com/beta/litellm_basic_guardrail_api
        timeout_ms: 500
        failure_mode: closed
        api_key_env: ACME_DLP_KEY
      on: [request, response]
";

/// The mesh example with the section above.
fn with_guardrails() -> String {
    let text = std::fs::read_to_string(root().join("envoy/examples/policy.yaml")).unwrap();
    let text = match text.find("\nguardrails:") {
        // The example has a section of its own: this one replaces it.
        Some(i) => {
            let end = text[i + 1..]
                .find("\n\n")
                .map_or(text.len(), |j| i + 1 + j + 1);
            format!("{}{}", &text[..i], &text[end..])
        }
        None => text,
    };
    format!("{text}{GUARDRAILS}")
}

fn parse(text: &str) -> Result<Policy, PolicyError> {
    Policy::parse(text, "policy.yaml", &root().join("envoy/examples"))
}

/// `with_guardrails()` with `old` replaced by `new` (which must be there).
fn broken(old: &str, new: &str) -> String {
    let text = with_guardrails();
    assert!(text.contains(old), "the fixture no longer contains {old:?}");
    text.replacen(old, new, 1)
}

/// The line where `needle` (one line or several) first starts in `text`.
fn line_of(text: &str, needle: &str) -> usize {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in {text}"));
    text[..at].matches('\n').count() + 1
}

#[test]
fn broken_guardrails_name_field_and_line() {
    let secrets = "    - name: secrets\n      detect: [secret]\n      action: block\n";
    let service =
        "      service:\n        url: https://dlp.example.com/beta/litellm_basic_guardrail_api\n";
    // (what, broken text, field, text on the line the error must point at, message part)
    let cases: Vec<(&str, String, &str, &str, &str)> = vec![
        (
            "unknown section field",
            broken("\nguardrails:\n", "\nguardrails:\n  rule_file: x.yaml\n"),
            "guardrails.rule_file",
            "rule_file:",
            "unknown field `rule_file`",
        ),
        (
            "unknown check field",
            broken(secrets, &format!("{secrets}      actions: [flag]\n")),
            "guardrails.checks[0].actions",
            "actions:",
            "unknown field `actions`",
        ),
        (
            "unknown service field",
            broken(service, &format!("{service}        retries: 2\n")),
            "guardrails.checks[3].service.retries",
            "retries: 2",
            "unknown field `retries`",
        ),
        (
            "unknown scope field",
            broken("groups: [support], ", "groups: [support], users: [a], "),
            "guardrails.checks[2].scope.users",
            "users: [a]",
            "unknown field `users`",
        ),
        (
            "no checks field",
            broken("\nguardrails:\n  checks:\n", "\nguardrails:\n  mask_key_env: K\n  x:\n"),
            "guardrails.x",
            "  x:",
            "unknown field `x`",
        ),
        (
            "no check",
            format!(
                "{}\nguardrails:\n  checks: []\n",
                with_guardrails()
                    .split("\nguardrails:\n")
                    .next()
                    .unwrap()
            ),
            "guardrails.checks",
            "checks: []",
            "names no check",
        ),
        (
            "seventeen checks",
            {
                let more: String = (0..13)
                    .map(|i| format!("    - {{name: more-{i}, detect: [secret], action: flag}}\n"))
                    .collect();
                broken("    - name: secrets\n", &format!("{more}    - name: secrets\n"))
            },
            "guardrails.checks",
            "  checks:",
            "at most 16 checks",
        ),
        (
            "upper-case name",
            broken("- name: secrets", "- name: Secrets"),
            "guardrails.checks[0].name",
            "name: Secrets",
            "1-64 characters of a-z, 0-9 and -",
        ),
        (
            "duplicate name",
            broken("- name: personal-data", "- name: secrets"),
            "guardrails.checks[1].name",
            "name: secrets\n      detect: [personal]",
            "duplicate check \"secrets\"",
        ),
        (
            "detect and service",
            broken(service, &format!("      detect: [secret]\n{service}")),
            "guardrails.checks[3].service",
            "service:\n        url: https://dlp",
            "not both",
        ),
        (
            "neither detect nor service",
            broken("      detect: [personal]\n      action: flag\n", ""),
            "guardrails.checks[1]",
            "- name: personal-data",
            "needs detect (with an action) or service",
        ),
        (
            "detect without action",
            broken("      detect: [secret]\n      action: block\n", "      detect: [secret]\n"),
            "guardrails.checks[0]",
            "- name: secrets",
            "needs an action: block, mask, flag",
        ),
        (
            "unknown action",
            broken("action: block", "action: reject"),
            "guardrails.checks[0].action",
            "action: reject",
            "must be one of block, mask, flag, not \"reject\"",
        ),
        (
            "service with an action",
            broken(service, &format!("      action: block\n{service}")),
            "guardrails.checks[3].action",
            "action: block\n      service:",
            "a service decides itself",
        ),
        (
            "mask on response",
            broken("      action: mask\n", "      action: mask\n      on: [response]\n"),
            "guardrails.checks[2].action",
            "action: mask",
            "requests only",
        ),
        (
            "mask on both",
            broken("      action: mask\n", "      action: mask\n      on: [request, response]\n"),
            "guardrails.checks[2].action",
            "action: mask",
            "requests only",
        ),
        (
            "no stage",
            broken("      action: flag\n      on: [request, response]", "      action: flag\n      on: []"),
            "guardrails.checks[1].on",
            "on: []",
            "lists no stage",
        ),
        (
            "unknown stage",
            broken("      action: flag\n      on: [request, response]", "      action: flag\n      on: [request, answer]"),
            "guardrails.checks[1].on[1]",
            "on: [request, answer]",
            "must be request or response, not \"answer\"",
        ),
        (
            "stage twice",
            broken("      action: flag\n      on: [request, response]", "      action: flag\n      on: [request, request]"),
            "guardrails.checks[1].on[1]",
            "on: [request, request]",
            "listed twice",
        ),
        (
            "nothing to detect",
            broken("detect: [secret]", "detect: []"),
            "guardrails.checks[0].detect",
            "detect: []",
            "lists nothing to detect",
        ),
        (
            "unknown category",
            broken("detect: [secret]", "detect: [secrets]"),
            "guardrails.checks[0].detect[0]",
            "detect: [secrets]",
            "\"secrets\" is neither a category (secret, personal) nor the id of a rule",
        ),
        (
            "unknown rule id",
            broken("detect: [payment-card]", "detect: [payment-card, credit-card]"),
            "guardrails.checks[2].detect[1]",
            "detect: [payment-card, credit-card]",
            "\"credit-card\" is neither a category",
        ),
        (
            "category twice",
            broken("detect: [secret]", "detect: [secret, secret]"),
            "guardrails.checks[0].detect[1]",
            "detect: [secret, secret]",
            "listed twice",
        ),
        (
            "url without scheme",
            broken(
                "url: https://dlp.example.com/beta/litellm_basic_guardrail_api",
                "url: dlp.example.com/beta/litellm_basic_guardrail_api",
            ),
            "guardrails.checks[3].service.url",
            "url: dlp.example.com",
            "must start with http:// or https://",
        ),
        (
            "url without path",
            broken(
                "url: https://dlp.example.com/beta/litellm_basic_guardrail_api",
                "url: https://dlp.example.com",
            ),
            "guardrails.checks[3].service.url",
            "url: https://dlp.example.com",
            "needs the guardrail endpoint's path",
        ),
        (
            "url with credentials",
            broken(
                "url: https://dlp.example.com/",
                "url: https://user:pw@dlp.example.com/",
            ),
            "guardrails.checks[3].service.url",
            "url: https://user:pw@",
            "must not carry credentials",
        ),
        (
            "timeout too short",
            broken("timeout_ms: 500", "timeout_ms: 0"),
            "guardrails.checks[3].service.timeout_ms",
            "timeout_ms: 0",
            "must be between 10 and 60000",
        ),
        (
            "timeout too long",
            broken("timeout_ms: 500", "timeout_ms: 60001"),
            "guardrails.checks[3].service.timeout_ms",
            "timeout_ms: 60001",
            "must be between 10 and 60000",
        ),
        (
            "unknown failure mode",
            broken("failure_mode: closed\n        api_key_env", "failure_mode: fail\n        api_key_env"),
            "guardrails.checks[3].service.failure_mode",
            "failure_mode: fail",
            "must be closed or open, not \"fail\"",
        ),
        (
            "api key variable not a variable",
            broken("api_key_env: ACME_DLP_KEY", "api_key_env: acme-dlp-key"),
            "guardrails.checks[3].service.api_key_env",
            "api_key_env: acme-dlp-key",
            "is not an environment variable name",
        ),
        (
            "ca_file on http",
            broken(
                "url: https://dlp.example.com/beta/litellm_basic_guardrail_api",
                "url: http://dlp.example.com/beta/litellm_basic_guardrail_api\n        ca_file: corp.pem",
            ),
            "guardrails.checks[3].service.ca_file",
            "ca_file: corp.pem",
            "applies to an https URL only",
        ),
        (
            "mask key variable not a variable",
            broken("\nguardrails:\n", "\nguardrails:\n  mask_key_env: mask key\n"),
            "guardrails.mask_key_env",
            "mask_key_env: mask key",
            "is not an environment variable name",
        ),
        (
            "scope group with a comma",
            broken("groups: [support]", "groups: [support, \"a,b\"]"),
            "guardrails.checks[2].scope.groups[1]",
            "groups: [support,",
            "no comma",
        ),
        (
            "empty model glob",
            broken("models: [\"claude-*\"]", "models: [\"\"]"),
            "guardrails.checks[2].scope.models[0]",
            "models: [\"\"]",
            "a model name or `*` glob",
        ),
        (
            "missing rules file",
            broken("\nguardrails:\n", "\nguardrails:\n  rules_file: no-such-rules.yaml\n"),
            "guardrails.rules_file",
            "rules_file: no-such-rules.yaml",
            "no-such-rules.yaml",
        ),
    ];
    for (what, text, field, line_text, message) in cases {
        let err = parse(&text).expect_err(what);
        assert_eq!(err.field, field, "{what}: {err}");
        assert_eq!(err.file, "policy.yaml", "{what}: {err}");
        assert_eq!(err.line, Some(line_of(&text, line_text)), "{what}: {err}");
        assert!(err.message.contains(message), "{what}: {err}");
        assert!(
            err.to_string()
                .starts_with(&format!("policy.yaml:{}: {field}: ", err.line.unwrap())),
            "{what}: {err}"
        );
    }
}

/// A rules file's problems point into the rules file, at its own line.
#[test]
fn broken_rules_files_name_their_own_file_line_and_field() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("guardrails-rules");
    std::fs::create_dir_all(&dir).unwrap();
    let good = "- id: acme-token
  category: secret
  description: ACME internal token
  regex: '\\b(acme_[A-Za-z0-9]{24})\\b'
  group: 1
  keywords: [acme_]
  examples:
    match: ['token = acme_Zq3Lm9Xw2Rt8Yp4Kd7Hs1Nb6']
    no_match: ['acme_ is our prefix']
";
    // (what, rules file, field, text on the line the error must point at, message part)
    let cases: Vec<(&str, String, &str, &str, &str)> = vec![
        (
            "unknown rule field",
            good.replace("  group: 1\n", "  group: 1\n  severity: high\n"),
            "[0].severity",
            "severity: high",
            "unknown field `severity`",
        ),
        (
            "unknown category",
            good.replace("category: secret", "category: credential"),
            "[0].category",
            "category: credential",
            "unknown variant `credential`",
        ),
        (
            "not a list",
            "id: acme-token\n".into(),
            "",
            "id: acme-token",
            "expected a sequence",
        ),
        (
            "built-in id",
            good.replace("id: acme-token", "id: aws-access-key-id"),
            "[0].id",
            "id: aws-access-key-id",
            "rule `aws-access-key-id`: the id of a built-in rule",
        ),
        (
            "regex that does not compile",
            good.replace("{24})", "{24}"),
            "[0].regex",
            "regex:",
            "rule `acme-token`: regex parse error",
        ),
        (
            "group past the regex's",
            good.replace("group: 1", "group: 2"),
            "[0].group",
            "group: 2",
            "rule `acme-token`: the regex has 1 capture groups",
        ),
        (
            "id twice in the file",
            format!(
                "{good}{}",
                good.replace("internal token", "internal token, again")
            ),
            "[1].id",
            "- id: acme-token\n  category: secret\n  description: ACME internal token, again",
            "rule `acme-token`: duplicate id",
        ),
        (
            "no examples",
            good.split("  examples:").next().unwrap().to_string(),
            "[0].examples",
            "- id: acme-token",
            "rule `acme-token` needs examples",
        ),
        (
            "an example it does not find",
            good.replace("acme_Zq3Lm9Xw2Rt8Yp4Kd7Hs1Nb6']", "acme_short']"),
            "[0].examples.match[0]",
            "match: ['token = acme_short']",
            "rule `acme-token` finds nothing in this example",
        ),
        (
            "a look-alike it finds",
            good.replace(
                "['acme_ is our prefix']",
                "['acme_ is our prefix', 'acme_AAAAAAAAAAAAAAAAAAAAAAAA']",
            ),
            "[0].examples.no_match[1]",
            "no_match:",
            "rule `acme-token` finds something in this look-alike",
        ),
        (
            "min_entropy without entropy",
            good.replace("  group: 1\n", "  group: 1\n  min_entropy: 3.0\n"),
            "[0].min_entropy",
            "min_entropy: 3.0",
            "rule `acme-token`: only with validate: entropy",
        ),
    ];
    for (what, rules, field, line_text, message) in cases {
        let file = dir.join(format!("{}.yaml", what.replace(' ', "-")));
        std::fs::write(&file, &rules).unwrap();
        let text = broken(
            "\nguardrails:\n",
            &format!("\nguardrails:\n  rules_file: {}\n", file.display()),
        );
        let err = parse(&text).expect_err(what);
        assert_eq!(err.file, file.display().to_string(), "{what}: {err}");
        assert_eq!(err.field, field, "{what}: {err}");
        assert_eq!(err.line, Some(line_of(&rules, line_text)), "{what}: {err}");
        assert!(err.message.contains(message), "{what}: {err}");
    }
    // The good file passes every check of the renderer's own. The filter's parser
    // then judges the plugin configuration: until the filter knows `guardrails`, its
    // refusal of the section is the one error allowed.
    let file = dir.join("good.yaml");
    std::fs::write(&file, good).unwrap();
    let text = broken(
        "\nguardrails:\n",
        &format!("\nguardrails:\n  rules_file: {}\n", file.display()),
    )
    .replace(
        "detect: [payment-card]",
        "detect: [payment-card, acme-token]",
    );
    if let Err(e) = parse(&text) {
        assert!(e.message.contains("unknown field `guardrails`"), "{e}");
    }
}

/// A guardrail service on a provider's host and port must trust what the provider does:
/// meshes configure TLS per host.
#[test]
fn a_service_on_a_providers_host_shares_its_trust() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("guardrails-trust");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("corp.pem"),
        "-----BEGIN CERTIFICATE-----\nMIIBcorpCA+test/only=\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let text = with_guardrails()
        .replace(
            "url: https://dlp.example.com/beta/litellm_basic_guardrail_api",
            "url: https://api.openai.com/guardrail\n        ca_file: corp.pem",
        )
        .replace(
            "../prices.yaml",
            &root().join("envoy/prices.yaml").to_string_lossy(),
        );
    let err = Policy::parse(&text, "policy.yaml", &dir).expect_err("two trusts for one host");
    assert_eq!(err.field, "guardrails.checks[3].service.ca_file", "{err}");
    assert!(
        err.message.contains("one host and port, one trust"),
        "{err}"
    );
    assert_eq!(err.line, Some(line_of(&text, "ca_file: corp.pem")));
}

/// The rules file docs/guardrails.md shows is one the renderer takes, examples and all.
#[test]
fn the_docs_rules_file_example_loads() {
    let doc = std::fs::read_to_string(root().join("docs/guardrails.md")).unwrap();
    let section = doc.split("## Your own rules").nth(1).expect("the section");
    let yaml = section
        .split("```yaml\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("its yaml block");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("guardrails-docs");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("more-rules.yaml");
    std::fs::write(&file, yaml).unwrap();
    let text = broken(
        "\nguardrails:\n",
        &format!("\nguardrails:\n  rules_file: {}\n", file.display()),
    )
    .replace(
        "detect: [payment-card]",
        "detect: [payment-card, acme-internal-token]",
    );
    // As above: the filter's refusal of a section it does not know yet is the one error
    // allowed.
    if let Err(e) = parse(&text) {
        assert!(e.message.contains("unknown field `guardrails`"), "{e}");
    }
}

const RULES_BEGIN: &str = "<!-- builtin-rules:begin -->\n";
const RULES_END: &str = "<!-- builtin-rules:end -->";

/// The table of the built-in rules, from the file the guard crate ships.
fn rules_table() -> String {
    let doc = chokepoint_render::yaml::load(chokepoint_guard::BUILTIN_YAML).unwrap();
    let rules: Vec<chokepoint_guard::Rule> = serde_json::from_value(doc.value).unwrap();
    let mut out = String::from("| id | category | what it finds |\n|---|---|---|\n");
    for r in rules {
        out.push_str(&format!(
            "| `{}` | {} | {} |\n",
            r.id,
            r.category.as_str(),
            r.description.replace('|', "\\|")
        ));
    }
    out
}

/// docs/guardrails.md lists every built-in rule, in the file's order, as the file
/// describes it.
#[test]
fn the_docs_list_every_builtin_rule() {
    let path = root().join("docs/guardrails.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let start = doc.find(RULES_BEGIN).expect("the begin marker") + RULES_BEGIN.len();
    let end = doc.find(RULES_END).expect("the end marker");
    let want = rules_table();
    if std::env::var_os("CHOKEPOINT_WRITE_DOCS").is_some() {
        std::fs::write(&path, format!("{}{want}{}", &doc[..start], &doc[end..])).unwrap();
        return;
    }
    assert!(
        doc[start..end] == want,
        "docs/guardrails.md's rule list drifted from guard/rules/builtin.yaml: rewrite it with \
         `CHOKEPOINT_WRITE_DOCS=1 cargo test -p chokepoint-render --test guardrails` and review \
         the diff\nwant:\n{want}"
    );
}
