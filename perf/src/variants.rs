//! Variants of the stack's Envoy configuration for `chokepoint-instructions`, each the
//! identity-only or full-path configuration with ONE thing taken out or changed, so its
//! count against the unedited one says what that thing costs a request. Envoy has no
//! symbols, so callgrind cannot name its functions: the difference names them instead.

use std::path::Path;

use chokepoint_render::overrides::Override;
use serde_json::{json, Map, Value};

/// One edit of the gateway's Envoy configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edit {
    /// No access logs at all (the usage file log and the JSON request log).
    NoLogs,
    /// Without the JSON request log to stdout.
    NoRequestLog,
    /// Without the usage access log (the file of usage records from filter state).
    NoUsageLog,
    /// The route without its retry policy (fallback across a chain).
    NoRetry,
    /// The route's retry policy without its retry priority (the next provider of a
    /// chain).
    NoRetryPriority,
    /// The connection manager without the request and request-headers timeouts.
    NoTimeouts,
    /// Without the response decompressor.
    NoDecompressor,
    /// Without the 413 local reply mappers.
    NoLocalReply,
    /// The chokepoint filter replaced by the empty wasm filter and the route sent to the
    /// first provider's cluster: every other part of the configuration, no filter work.
    Floor,
}

const EDITS: [(&str, Edit, &str); 9] = [
    ("nologs", Edit::NoLogs, "no access logs"),
    ("noreqlog", Edit::NoRequestLog, "no JSON request log"),
    ("nousagelog", Edit::NoUsageLog, "no usage access log"),
    ("noretry", Edit::NoRetry, "no retry policy"),
    ("noprio", Edit::NoRetryPriority, "no retry priority"),
    ("notimeouts", Edit::NoTimeouts, "no request timeouts"),
    ("nodecomp", Edit::NoDecompressor, "no response decompressor"),
    ("nolocalreply", Edit::NoLocalReply, "no local reply mappers"),
    (
        "floor",
        Edit::Floor,
        "empty wasm filter in its place, fixed route",
    ),
];

/// Variants of the full path's policy file (a stack of their own): name, label and the
/// overrides.
pub fn stack_variant(name: &str) -> Option<(String, Vec<Override>)> {
    let (what, overrides) = match name {
        // One provider on the benchmark's route: no fallback chain, so no aggregate
        // cluster and the key set by Envoy's native header mutation, not a wasm context.
        "full-direct" => (
            "gpt-4o-mini to one provider, native key injection",
            vec![Override::new(
                "models.routes[model=gpt-4o-mini].providers",
                json!(["openai"]),
            )],
        ),
        // Attribution and the output cap off: the request body is not rewritten.
        "full-noedit" => (
            "no body edit",
            vec![
                Override::new("gateway.attribution", false),
                Override::new("gateway.enforce_output_cap", false),
            ],
        ),
        "full-noguard" => (
            "no guardrails",
            vec![Override::new("guardrails", Value::Null)],
        ),
        _ => return None,
    };
    Some((format!("envoy + chokepoint (full path, {what})"), overrides))
}

/// The stack variants' names, for a usage message.
pub const STACK_VARIANTS: &str = "full-direct, full-noedit, full-noguard";

/// A variant's name: `identity-EDIT` or `full-EDIT`.
pub struct Variant {
    pub base: &'static str,
    pub edit: Edit,
    pub label: String,
}

pub fn parse(name: &str) -> Option<Variant> {
    let (base, edit) = name.split_once('-')?;
    let base = ["identity", "full"].into_iter().find(|b| *b == base)?;
    let (_, edit, what) = EDITS.iter().find(|(n, _, _)| *n == edit)?;
    let mode = match base {
        "identity" => "identity only",
        _ => "full path",
    };
    Some(Variant {
        base,
        edit: *edit,
        label: format!("envoy + chokepoint ({mode}, {what})"),
    })
}

/// The edit names, for a usage message.
pub fn names() -> String {
    EDITS.map(|(n, _, _)| n).join(", ")
}

/// Writes `base` (the stack's bootstrap) with `edit` applied to `out`. The result is
/// JSON, which Envoy reads as the YAML it is a subset of.
pub fn write(base: &Path, edit: Edit, out: &Path, empty_wasm: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(base).map_err(|e| format!("{}: {e}", base.display()))?;
    let mut doc = chokepoint_render::yaml::load(&text)
        .map_err(|e| format!("{}: {e}", base.display()))?
        .value;
    apply(&mut doc, edit, empty_wasm)?;
    let text = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?;
    std::fs::write(out, text).map_err(|e| format!("{}: {e}", out.display()))
}

fn apply(doc: &mut Value, edit: Edit, empty_wasm: &Path) -> Result<(), String> {
    let first_provider = doc["static_resources"]["clusters"]
        .as_array()
        .and_then(|cs| {
            cs.iter()
                .filter_map(|c| c["name"].as_str())
                .find(|n| n.starts_with("provider_"))
        })
        .map(str::to_string);
    let hcm = gateway_hcm(doc)?;
    let obj = hcm
        .as_object_mut()
        .ok_or("the connection manager is no object")?;
    let keep_logs = |obj: &mut Map<String, Value>, drop: &str| {
        if let Some(Value::Array(logs)) = obj.get_mut("access_log") {
            logs.retain(|l| l["name"] != drop);
        }
    };
    match edit {
        Edit::NoLogs => {
            obj.remove("access_log");
        }
        Edit::NoRequestLog => keep_logs(obj, "envoy.access_loggers.stdout"),
        Edit::NoUsageLog => keep_logs(obj, "envoy.access_loggers.file"),
        Edit::NoRetryPriority => {
            for_each_route(obj, |a| {
                if let Some(p) = a.get_mut("retry_policy").and_then(Value::as_object_mut) {
                    p.remove("retry_priority");
                }
            });
        }
        Edit::NoTimeouts => {
            obj.remove("request_timeout");
            obj.remove("request_headers_timeout");
        }
        Edit::NoLocalReply => {
            obj.remove("local_reply_config");
        }
        Edit::NoDecompressor => {
            if let Some(Value::Array(fs)) = obj.get_mut("http_filters") {
                fs.retain(|f| f["name"] != "envoy.filters.http.decompressor");
            }
        }
        Edit::NoRetry => {
            for_each_route(obj, |a| {
                a.remove("retry_policy");
            });
        }
        Edit::Floor => {
            let cluster = first_provider.ok_or("no provider cluster")?;
            if let Some(Value::Array(fs)) = obj.get_mut("http_filters") {
                let empty = json!({
                    "name": "empty",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                        "config": {
                            "name": "empty",
                            "failure_policy": "FAIL_CLOSED",
                            "vm_config": {
                                "vm_id": "empty",
                                "runtime": "envoy.wasm.runtime.v8",
                                "code": {"local": {"filename": empty_wasm.display().to_string()}},
                            }
                        }
                    }
                });
                match fs.iter_mut().find(|f| f["name"] == "chokepoint") {
                    Some(f) => *f = empty,
                    None => return Err("no chokepoint filter".into()),
                }
            }
            for_each_route(obj, |a| {
                a.remove("cluster_header");
                a.insert("cluster".into(), json!(cluster));
            });
        }
    }
    Ok(())
}

/// Calls `f` with the action (`route`) of every route of the connection manager.
fn for_each_route(hcm: &mut Map<String, Value>, mut f: impl FnMut(&mut Map<String, Value>)) {
    let vhs = hcm
        .get_mut("route_config")
        .and_then(|r| r.get_mut("virtual_hosts"))
        .and_then(Value::as_array_mut);
    for vh in vhs.into_iter().flatten() {
        let routes = vh.get_mut("routes").and_then(Value::as_array_mut);
        for r in routes.into_iter().flatten() {
            if let Some(a) = r.get_mut("route").and_then(Value::as_object_mut) {
                f(a);
            }
        }
    }
}

/// The gateway listener's HTTP connection manager configuration.
fn gateway_hcm(doc: &mut Value) -> Result<&mut Value, String> {
    doc["static_resources"]["listeners"]
        .as_array_mut()
        .and_then(|ls| ls.iter_mut().find(|l| l["name"] == "gateway"))
        .and_then(|l| l["filter_chains"][0]["filters"].as_array_mut())
        .and_then(|fs| {
            fs.iter_mut()
                .find(|f| f["name"] == "envoy.filters.network.http_connection_manager")
        })
        .map(|f| &mut f["typed_config"])
        .ok_or_else(|| "no gateway listener with a connection manager".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bootstrap() -> Value {
        json!({"static_resources": {
            "listeners": [{"name": "gateway", "filter_chains": [{"filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "request_timeout": "60s",
                    "request_headers_timeout": "12s",
                    "local_reply_config": {"mappers": []},
                    "access_log": [
                        {"name": "envoy.access_loggers.file"},
                        {"name": "envoy.access_loggers.stdout"},
                    ],
                    "route_config": {"virtual_hosts": [{"routes": [{"route": {
                        "cluster_header": "x-chokepoint-cluster",
                        "retry_policy": {"retry_on": "5xx", "retry_priority": {}},
                    }}]}]},
                    "http_filters": [
                        {"name": "chokepoint"},
                        {"name": "envoy.filters.http.decompressor"},
                        {"name": "envoy.filters.http.router"},
                    ],
                }
            }]}]}],
            "clusters": [{"name": "chokepoint_policy"}, {"name": "provider_openai"}],
        }})
    }

    #[test]
    fn each_edit_changes_one_thing() {
        let hcm = "/static_resources/listeners/0/filter_chains/0/filters/0/typed_config";
        let route = format!("{hcm}/route_config/virtual_hosts/0/routes/0/route");
        let table: [(&str, String, Value); 10] = [
            ("nologs", format!("{hcm}/access_log"), Value::Null),
            ("noreqlog", format!("{hcm}/access_log/1"), Value::Null),
            (
                "nousagelog",
                format!("{hcm}/access_log/0/name"),
                json!("envoy.access_loggers.stdout"),
            ),
            ("noretry", format!("{route}/retry_policy"), Value::Null),
            (
                "noprio",
                format!("{route}/retry_policy"),
                json!({"retry_on": "5xx"}),
            ),
            ("notimeouts", format!("{hcm}/request_timeout"), Value::Null),
            (
                "nolocalreply",
                format!("{hcm}/local_reply_config"),
                Value::Null,
            ),
            (
                "nodecomp",
                format!("{hcm}/http_filters/1/name"),
                json!("envoy.filters.http.router"),
            ),
            (
                "floor",
                format!("{route}/cluster"),
                json!("provider_openai"),
            ),
            (
                "floor",
                format!("{hcm}/http_filters/0/name"),
                json!("empty"),
            ),
        ];
        for (name, pointer, want) in table {
            let v = parse(&format!("full-{name}")).expect(name);
            let mut doc = bootstrap();
            apply(&mut doc, v.edit, Path::new("/e.wasm")).expect(name);
            let got = doc.pointer(&pointer).cloned().unwrap_or(Value::Null);
            assert_eq!(got, want, "{name}: {pointer}");
            assert_ne!(doc, bootstrap(), "{name} changed nothing");
        }
        assert!(parse("full-nothing").is_none());
        assert!(parse("bare-nologs").is_none());
        assert!(stack_variant("full-direct").is_some());
        assert!(stack_variant("full-floor").is_none());
    }

    #[test]
    fn a_bootstrap_without_the_gateway_is_refused() {
        let mut doc = json!({"static_resources": {"listeners": []}});
        assert!(apply(&mut doc, Edit::NoLogs, Path::new("/e.wasm")).is_err());
    }
}
