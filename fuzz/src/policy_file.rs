//! The admin's policy file (`render/src/policy.rs` over `render/src/yaml.rs`): YAML with
//! a line for every field, validated, then rendered into every target.
//!
//! The whole input is the file. Relative `jwks.file` paths resolve in a scratch
//! directory holding `jwks.json` (a valid key set) and `bad.json` (not JSON); a file
//! naming any other directory is skipped (see the report's note on unbounded reads),
//! so the fuzzer never reads or hangs on the machine's own files.
//!
//! Invariants: `line_of` answers for every path without panicking; an accepted policy
//! renders every Envoy target, and every other target or a refusal that says why; the filter accepts the plugin configuration rendered for Istio
//! as well as for Envoy, and the Envoy one survives the emitter and the loader unchanged
//! (what Envoy reads is what was rendered); the rendered limits are accepted by the
//! policy service's own parser and the injector configuration by the filter's.

use std::path::PathBuf;
use std::sync::OnceLock;

use chokepoint_render::bundle::{self, Options, TARGETS};
use chokepoint_render::policy::Policy;
use chokepoint_render::{emit, plugin, yaml};
use serde_json::Value;

/// The targets of Envoy itself, which every accepted policy renders.
const ENVOY_TARGETS: [&str; 6] = [
    "plugin-config",
    "injector-config",
    "bootstrap",
    "ecds",
    "limits",
    "policy-identity",
];

fn base_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir =
            std::env::temp_dir().join(format!("chokepoint-fuzz-policy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch directory");
        let jwks = crate::fixtures::jwks().to_string();
        std::fs::write(dir.join("jwks.json"), jwks).expect("scratch jwks.json");
        std::fs::write(dir.join("bad.json"), "{not json").expect("scratch bad.json");
        dir
    })
}

/// Whether every `issuers[*].jwks.file` stays inside the scratch directory.
fn files_are_local(doc: &Value) -> bool {
    let Some(issuers) = doc.get("issuers").and_then(Value::as_array) else {
        return true;
    };
    issuers
        .iter()
        .all(|i| match i.get("jwks").and_then(|j| j.get("file")) {
            Some(Value::String(name)) => !name.contains(['/', '\\', '\0']),
            _ => true,
        })
}

pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let doc = match yaml::load(text) {
        Ok(doc) => doc,
        Err(e) => {
            assert!(!e.is_empty());
            return;
        }
    };
    for path in [
        "",
        "issuers",
        "issuers[0].jwks.file",
        "providers[3].key_env",
        "a.b[1].c",
    ] {
        let _ = doc.line_of(path);
    }
    if !files_are_local(&doc.value) {
        return;
    }
    let policy = match Policy::parse(text, "fuzz.yaml", base_dir()) {
        Ok(p) => p,
        Err(e) => {
            assert!(!e.message.is_empty());
            let _ = e.to_string();
            return;
        }
    };
    let options = Options::default();
    for target in TARGETS {
        // The Kubernetes and mesh targets have requirements of their own that an
        // accepted policy need not meet (a namespace to lock down, `mcp.public_url` for a
        // mesh gateway's MCP servers, the policy service's URL naming its Service): they
        // may refuse one, saying why. The Envoy targets render every accepted policy.
        let rendered = match bundle::render(&policy, target, &options) {
            Ok(rendered) => rendered,
            Err(refused) if !ENVOY_TARGETS.contains(&target) => {
                assert!(refused.contains(' '), "{target} refuses without saying why");
                continue;
            }
            Err(e) => panic!("an accepted policy does not render {target}: {e}"),
        };
        match target {
            "limits" => {
                chokepoint_policy::seed_limits::parse(&rendered).unwrap_or_else(|e| {
                    panic!("the policy service refuses the rendered limits: {e}\n{rendered}")
                });
            }
            "injector-config" => {
                chokepoint_filter::providers::key_injection::Injector::parse(
                    rendered.as_bytes(),
                    crate::fixtures::env,
                )
                .unwrap_or_else(|e| panic!("the injector refuses its rendered config: {e}"));
            }
            _ => {}
        }
    }
    // Validation ran the filter's parser over the Envoy rendering; Istio's must pass too.
    let istio = plugin::plugin_config(&policy, plugin::Target::Istio);
    chokepoint_filter::config::Config::parse(istio.to_string().as_bytes())
        .unwrap_or_else(|e| panic!("the filter refuses the Istio plugin config: {e}"));
    let config = plugin::plugin_config(&policy, plugin::Target::Envoy);
    let emitted = emit::yaml(&config);
    let reloaded = yaml::load(&emitted)
        .unwrap_or_else(|e| panic!("emitted YAML does not load: {e}\n{emitted}"));
    assert_eq!(
        reloaded.value, config,
        "YAML emit/load changed the plugin config:\n{emitted}"
    );
}
