//! What a mesh delivery cannot do that the plain bootstrap does, said when it is rendered.
//! Istio's WasmPlugin and TrafficExtension and Envoy Gateway's EnvoyExtensionPolicy cannot
//! set Envoy's `allow_on_headers_stop_iteration`, add clusters or add router filters, so
//! there the filter sends the headers before it reads the body (`hold_headers: false`),
//! each API goes to one provider, and no decompressor sits in front of the filter.

use serde_json::Value;

use crate::policy::Policy;

/// The targets that deliver the filter without held headers.
pub const UNHELD_TARGETS: [&str; 3] = [
    "istio-wasmplugin",
    "istio-trafficextension",
    "envoy-gateway",
];

/// APIs whose model is named in the body, so it is known only after the headers left.
const MODEL_IN_BODY: [&str; 2] = ["openai", "anthropic"];

/// What `target` will not do with this policy; empty for the targets that do everything.
pub fn notes(policy: &Policy, target: &str) -> Vec<String> {
    if !UNHELD_TARGETS.contains(&target) {
        return Vec::new();
    }
    let mut notes = vec![format!(
        "{target}: the mesh cannot hold request headers while the filter reads the body, so \
         they go upstream first (with the provider's key) and the body follows only once \
         it is decided; a refusal then resets the upstream request (docs/deployment.md, \
         \"What each delivery supports\")"
    )];
    let first_of_kind = |kind: &str| policy.providers.iter().find(|p| p.kind == kind);
    let kind_of = |name: &str| policy.providers.iter().find(|p| p.name == name);
    let routes = policy
        .models
        .get("routes")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for route in routes {
        let model = route.get("model").and_then(Value::as_str).unwrap_or("?");
        let names: Vec<&str> = route
            .get("providers")
            .and_then(Value::as_array)
            .map(|ps| ps.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut kinds_seen: Vec<&str> = Vec::new();
        for name in names {
            let Some(p) = kind_of(name) else { continue };
            if kinds_seen.contains(&p.kind.as_str()) {
                notes.push(format!(
                    "{target}: route `{model}` falls back to `{name}` only where Envoy has \
                     aggregate clusters; here it keeps its first {} provider",
                    p.kind
                ));
                continue;
            }
            kinds_seen.push(&p.kind);
            let first = first_of_kind(&p.kind).map_or("", |f| f.name.as_str());
            if MODEL_IN_BODY.contains(&p.kind.as_str()) && first != name {
                notes.push(format!(
                    "{target}: route `{model}` sends the {} API to `{name}`, but a model named \
                     in the body can only reach that API's first provider, `{first}`; such \
                     requests are refused with 400 model_not_routable",
                    p.kind
                ));
            }
        }
    }
    if policy.mcp.is_some() {
        notes.push(format!(
            "{target}: MCP: a refused tool, prompt or resource or a rate limit is decided \
             after the request's headers reached the server (the refusal resets that request \
             before any body byte, so the call never runs), and the GET listening stream has \
             no idle timeout of its own: it ends at the proxy's stream idle timeout and the \
             client reconnects"
        ));
    }
    notes.push(format!(
        "{target}: no response decompressor in front of the filter: providers are asked for \
         uncompressed answers (accept-encoding: identity), and one that compresses anyway \
         is charged by estimate"
    ));
    notes
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The example policy (providers openai, openai-backup, anthropic, gemini, azure)
    /// with these routes.
    fn policy(routes: Value) -> Policy {
        let mut p = crate::policy::example();
        p.models = json!({ "routes": routes });
        p
    }

    /// (routes, target, the notes' distinguishing words, in order)
    #[test]
    fn each_unheld_target_says_what_it_cannot_route() {
        let plain = json!([{"model": "gpt-*", "providers": ["openai"]}]);
        let table = [
            (plain.clone(), "bootstrap", vec![]),
            (plain.clone(), "istio-envoyfilter", vec![]),
            (
                plain,
                "istio-wasmplugin",
                vec!["go upstream first", "decompressor"],
            ),
            (
                json!([{"model": "llama-*", "providers": ["openai-backup"]},
                       {"model": "gemini-*", "providers": ["gemini"]}]),
                "envoy-gateway",
                vec![
                    "go upstream first",
                    "`llama-*` sends the openai API to `openai-backup`",
                    "decompressor",
                ],
            ),
            (
                json!([{"model": "gpt-*", "providers": ["openai", "openai-backup", "azure"]}]),
                "istio-trafficextension",
                vec![
                    "go upstream first",
                    "`gpt-*` falls back to `openai-backup`",
                    "decompressor",
                ],
            ),
        ];
        for (routes, target, want) in table {
            let notes = notes(&policy(routes), target);
            assert_eq!(notes.len(), want.len(), "{target}: {notes:#?}");
            for (note, words) in notes.iter().zip(want) {
                assert!(note.contains(words), "{target}: {note}");
            }
        }
    }
}
