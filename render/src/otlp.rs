//! The records as OpenTelemetry log records (`telemetry.otlp`): Envoy's own OpenTelemetry
//! access logger on the gateway's HTTP connection manager, one attribute per published
//! field (`chokepoint_contract::published::FIELDS`), each a format string reading the
//! filter state the filter writes for it (`chokepoint_filter::flow::otlp`). The same
//! attributes go into each mesh's own provider: Istio's `envoyOtelAls` extension
//! provider and Envoy Gateway's OpenTelemetry access-log sink.

use serde_json::{json, Map, Value};

use crate::policy::Otlp;

/// The collector's cluster in the bootstrap and compose.
pub const CLUSTER: &str = "chokepoint_otlp";
/// The `log_name` resource attribute: which stream of logs these are.
pub const LOG_NAME: &str = "chokepoint.usage";
/// The logger's stats: `access_logs.open_telemetry_access_log.chokepoint.logs_written`
/// and `.logs_dropped`.
const STAT_PREFIX: &str = "chokepoint";

/// Logs a request only when the filter wrote its record: a request Envoy answered before
/// the filter saw it (an upgrade it refused) would be a log record of `-`s. Envoy's CEL
/// access-log filter; every record has a request id.
pub fn recorded() -> String {
    format!(
        "'wasm.{}chokepoint.request_id' in filter_state",
        chokepoint_filter::flow::otlp::STATE_PREFIX
    )
}

/// Each published field and the format string that reads it, in the published order.
pub fn attributes() -> Vec<(&'static str, String)> {
    chokepoint_contract::published::FIELDS
        .iter()
        .map(|f| {
            (
                f.name,
                format!(
                    "%FILTER_STATE(wasm.{}{}:PLAIN)%",
                    chokepoint_filter::flow::otlp::STATE_PREFIX,
                    f.name
                ),
            )
        })
        .collect()
}

fn millis(ms: u64) -> String {
    format!("{}.{:03}s", ms / 1000, ms % 1000)
}

/// The HTTP connection manager's OpenTelemetry access log: OTLP/HTTP (protobuf) to
/// `<endpoint>/v1/logs`, batched (`flush_ms`, `buffer_bytes`). Export never holds a
/// request: records wait in memory for the next flush, and a collector that is down
/// costs the records of that flush (counted in `logs_dropped`), nothing else.
pub fn access_log(otlp: &Otlp) -> Value {
    let attributes: Vec<Value> = attributes()
        .into_iter()
        .map(|(k, v)| json!({"key": k, "value": {"string_value": v}}))
        .collect();
    json!({
        "name": "envoy.access_loggers.open_telemetry",
        "filter": {"extension_filter": {
            "name": "envoy.access_loggers.extension_filters.cel",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter",
                "expression": recorded(),
            },
        }},
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.open_telemetry.v3.OpenTelemetryAccessLogConfig",
            "log_name": LOG_NAME,
            "stat_prefix": STAT_PREFIX,
            "http_service": {"http_uri": {
                "uri": format!("{}{}/v1/logs", otlp.url.origin(), otlp.url.path),
                "cluster": CLUSTER,
                "timeout": "5s",
            }},
            "resource_attributes": {"values": [
                {"key": "service.name", "value": {"string_value": otlp.service_name}},
            ]},
            "attributes": {"values": attributes},
            "buffer_flush_interval": millis(otlp.flush_ms),
            "buffer_size_bytes": otlp.buffer_bytes,
        }
    })
}

/// Istio's extension provider for the same export (mesh config `extensionProviders`):
/// `envoyOtelAls` speaks OTLP/gRPC to the collector's host at `grpc_port`; its
/// `logFormat.labels` are the log record's attributes.
pub fn istio_provider(name: &str, otlp: &Otlp) -> Value {
    let labels: Map<String, Value> = attributes()
        .into_iter()
        .map(|(k, v)| (k.to_string(), Value::String(v)))
        .collect();
    json!({
        "name": name,
        "envoyOtelAls": {
            "service": otlp.url.host,
            "port": otlp.grpc_port,
            "logName": LOG_NAME,
            "logFormat": {"labels": labels},
        }
    })
}

/// Envoy Gateway's access-log setting for the same export (an `EnvoyProxy`'s
/// `spec.telemetry.accessLog.settings[]`): the OpenTelemetry sink speaks OTLP/gRPC to
/// the collector's host at `grpc_port`; a JSON format's fields are the log record's
/// attributes.
pub fn envoy_gateway_setting(otlp: &Otlp) -> Value {
    let fields: Map<String, Value> = attributes()
        .into_iter()
        .map(|(k, v)| (k.to_string(), Value::String(v)))
        .collect();
    json!({
        "type": "Route",
        "matches": [recorded()],
        "format": {"type": "JSON", "json": fields},
        "sinks": [{"type": "OpenTelemetry", "openTelemetry": {
            "host": otlp.url.host,
            "port": otlp.grpc_port,
            "resourceAttributes": {"service.name": otlp.service_name},
        }}],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::{plugin_config, Target};
    use crate::policy::{example, Policy};

    fn without_telemetry() -> Policy {
        let mut p = example();
        p.otlp = None;
        p
    }

    #[test]
    fn one_attribute_per_published_field_reading_its_filter_state() {
        let attrs = attributes();
        let fields = chokepoint_contract::published::FIELDS;
        assert_eq!(attrs.len(), fields.len());
        for ((name, format), field) in attrs.iter().zip(fields) {
            assert_eq!(*name, field.name);
            assert_eq!(*format, format!("%FILTER_STATE(wasm.otlp.{name}:PLAIN)%"));
        }
    }

    /// Where the export appears in each target's rendering, with and without the section.
    fn exports(p: &Policy) -> Vec<(&'static str, bool)> {
        let bootstrap = crate::envoy::bootstrap(
            p,
            &crate::envoy::BootstrapParams {
                listen_address: "127.0.0.1".into(),
                gateway_port: 10000,
                admin_address: "127.0.0.1".into(),
                admin_port: 9901,
                code: crate::envoy::Code::Local("/f.wasm".into()),
                delivery: crate::envoy::Delivery::Inline,
            },
        );
        let listener = &bootstrap["static_resources"]["listeners"][0];
        let hcm = &listener["filter_chains"][0]["filters"][0]["typed_config"];
        let logs = hcm["access_log"].as_array().cloned().unwrap_or_default();
        let clusters = bootstrap["static_resources"]["clusters"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let eg = crate::gateway::manifests(p);
        let proxy = eg.iter().find(|m| m["kind"] == "EnvoyProxy").cloned();
        let settings = proxy.map_or(Value::Null, |m| {
            m["spec"]["telemetry"]["accessLog"]["settings"].clone()
        });
        vec![
            (
                "envoy access log",
                logs.iter()
                    .any(|l| l["name"] == "envoy.access_loggers.open_telemetry"),
            ),
            (
                "envoy cluster",
                clusters.iter().any(|c| c["name"] == CLUSTER),
            ),
            (
                "envoy plugin flag",
                plugin_config(p, Target::Envoy)["otlp"] == json!(true),
            ),
            (
                "istio plugin flag",
                plugin_config(p, Target::Istio)["otlp"] == json!(true),
            ),
            (
                "istio provider",
                crate::istio::mesh_config(p)
                    .to_string()
                    .contains("envoyOtelAls"),
            ),
            (
                "istio telemetry",
                crate::istio::telemetry(p)
                    .to_string()
                    .contains(crate::istio::OTLP_LOG_PROVIDER),
            ),
            (
                "envoy gateway sink",
                settings.to_string().contains("\"OpenTelemetry\""),
            ),
        ]
    }

    #[test]
    fn every_target_exports_exactly_when_the_section_is_there() {
        for (p, on) in [(example(), true), (without_telemetry(), false)] {
            for (what, found) in exports(&p) {
                assert_eq!(found, on, "{what} with telemetry.otlp {on}");
            }
        }
    }

    #[test]
    fn the_envoy_logger_sends_otlp_http_to_the_collector() {
        let p = example();
        let o = p.otlp.as_ref().expect("the example exports");
        let log = access_log(o);
        let c = &log["typed_config"];
        assert_eq!(
            c["http_service"]["http_uri"]["uri"],
            "http://otel-collector.observability.svc.cluster.local:4318/v1/logs"
        );
        assert_eq!(c["http_service"]["http_uri"]["cluster"], CLUSTER);
        assert_eq!(c["log_name"], LOG_NAME);
        assert_eq!(
            c["resource_attributes"]["values"][0],
            json!({"key": "service.name", "value": {"string_value": "chokepoint"}})
        );
        assert_eq!(c["buffer_flush_interval"], "1.000s");
        assert_eq!(c["buffer_size_bytes"], 16384);
        assert_eq!(
            log["filter"]["extension_filter"]["typed_config"]["expression"],
            "'wasm.otlp.chokepoint.request_id' in filter_state"
        );
        let istio = istio_provider("x", o);
        assert_eq!(
            istio["envoyOtelAls"]["service"],
            "otel-collector.observability.svc.cluster.local"
        );
        assert_eq!(istio["envoyOtelAls"]["port"], 4317);
        let eg = envoy_gateway_setting(o);
        assert_eq!(eg["sinks"][0]["openTelemetry"]["port"], 4317);
        assert_eq!(
            eg["format"]["json"]["gen_ai.request.model"],
            "%FILTER_STATE(wasm.otlp.gen_ai.request.model:PLAIN)%"
        );
    }
}
