//! Envoy configuration built from the policy: the pieces (the wasm filter, the router
//! with the per-attempt key injector, the route, the clusters) and a whole bootstrap.
//! Istio's EnvoyFilter patches reuse the same pieces, so what a mesh receives is what
//! the local stack and the end-to-end tests run.

use serde_json::{json, Value};

use crate::otlp;
use crate::plugin::{self, Target};
use crate::policy::{Keys, McpServer, Policy, Provider};
use crate::policy_cluster;
use crate::tls::{self, CaBundle};
use crate::url::Url;

/// The filter's name, root id and VM id everywhere.
pub const FILTER: &str = "chokepoint";
pub const INJECTOR: &str = "chokepoint_keys";
pub const WASM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";

/// Where the .wasm comes from.
#[derive(Debug, Clone)]
pub enum Code {
    Local(String),
}

fn vm_config(policy: &Policy, code: &Code) -> Value {
    let Code::Local(path) = code;
    json!({
        "vm_id": FILTER,
        "runtime": "envoy.wasm.runtime.v8",
        "code": {"local": {"filename": path}},
        // Only the names: Envoy passes these variables of its own environment to the VM.
        "environment_variables": {"host_env_keys": plugin::env_keys(policy)},
    })
}

/// The gateway filter's `Wasm` message (the `typed_config` of the HTTP filter, and the
/// resource an ECDS file carries).
pub fn wasm_filter_config(policy: &Policy, code: &Code, target: Target) -> Value {
    json!({
        "@type": WASM_TYPE,
        "config": {
            "name": FILTER,
            "root_id": FILTER,
            // Lets the filter hold the headers while it reads the body (model, stream).
            "allow_on_headers_stop_iteration": true,
            "failure_policy": "FAIL_CLOSED",
            "configuration": {
                "@type": "type.googleapis.com/google.protobuf.StringValue",
                "value": plugin::plugin_config(policy, target).to_string(),
            },
            "vm_config": vm_config(policy, code),
        }
    })
}

/// The router, with the key injector as its upstream filter when keys are set per
/// attempt: retries and fallbacks then carry the key of the provider each attempt
/// goes to (read from the chosen endpoint's metadata).
pub fn router_filter(policy: &Policy, code: &Code) -> Value {
    let mut router = json!({
        "name": "envoy.filters.http.router",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
    });
    if policy.gateway.key_injection_upstream {
        router["typed_config"]["upstream_http_filters"] = json!([
            {
                "name": INJECTOR,
                "typed_config": {
                    "@type": WASM_TYPE,
                    "config": {
                        "name": INJECTOR,
                        "root_id": INJECTOR,
                        "failure_policy": "FAIL_CLOSED",
                        "configuration": {
                            "@type": "type.googleapis.com/google.protobuf.StringValue",
                            "value": plugin::injector_config(policy).to_string(),
                        },
                        "vm_config": vm_config(policy, code),
                    }
                }
            },
            upstream_codec()
        ]);
    }
    router
}

/// The gateway's routes: MCP's (with servers configured), then the catch-all.
pub fn routes(policy: &Policy) -> Vec<Value> {
    let mut out = Vec::new();
    if policy.mcp.is_some() {
        out.push(mcp_route());
    }
    out.push(route(!plugin::chains(policy).is_empty()));
    out
}

/// The catch-all route: the filter names the cluster after authorizing the request.
/// The retry priority that moves a retry to a chain's next provider is there only when
/// the policy has a fallback chain: Envoy builds it for every request the route serves
/// (about 1,300 instructions), and a provider's own cluster has one priority only.
pub fn route(chains: bool) -> Value {
    let mut r = json!({
        "match": {"prefix": "/"},
        // The header never leaves the gateway.
        "request_headers_to_remove": ["x-chokepoint-cluster"],
        "route": {
            "cluster_header": "x-chokepoint-cluster",
            // Completions can take minutes; the stream idle timeout guards stalls.
            "timeout": "600s",
            // DNS-named providers get their own Host; IP endpoints keep the client's.
            "auto_host_rewrite": true,
            // Fallback: a 429, a 5xx or an unreachable provider before any response byte
            // is retried; on a chain's aggregate cluster previous_priorities sends the
            // retry to the next provider of the chain.
            "retry_policy": {
                "retry_on": "5xx,reset,connect-failure,retriable-status-codes",
                "retriable_status_codes": [429],
                "num_retries": 2,
                "retry_priority": {
                    "name": "envoy.retry_priorities.previous_priorities",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig",
                        "update_frequency": 1,
                    }
                }
            }
        }
    });
    if !chains {
        if let Some(p) = r["route"]["retry_policy"].as_object_mut() {
            p.remove("retry_priority");
        }
    }
    r
}

/// The route of MCP requests, ahead of the catch-all: the filter names an MCP server's
/// cluster (`mcp_<name>`) after authorizing the request and has already rewritten the
/// path to the server's own.
pub fn mcp_route() -> Value {
    json!({
        "match": {
            "prefix": "/",
            "headers": [{"name": "x-chokepoint-cluster", "string_match": {"prefix": "mcp_"}}],
        },
        "request_headers_to_remove": ["x-chokepoint-cluster"],
        "route": {
            "cluster_header": "x-chokepoint-cluster",
            // No retry policy: a tools/call is not idempotent, and a reset after the
            // server started the tool must not run it twice.
            // No route timeout: an SSE answer lasts as long as the tool runs.
            "timeout": "0s",
            // The GET listening stream is silent until the server has something to
            // push; past the connection manager's 300s stream idle timeout a client
            // would reconnect every five minutes. An hour still reaps dead streams.
            "idle_timeout": MCP_IDLE_TIMEOUT,
            "auto_host_rewrite": true,
        }
    })
}

/// How long an MCP stream may carry nothing (see [`mcp_route`]).
pub const MCP_IDLE_TIMEOUT: &str = "3600s";

/// A cluster for one URL's host and port; for https, TLS that verifies the URL's host
/// name against the system CAs or the upstream's own `ca`.
pub(crate) fn url_cluster(
    name: &str,
    url: &Url,
    ca: Option<&CaBundle>,
    metadata: Option<Value>,
) -> Value {
    let mut endpoint = json!({
        "endpoint": {"address": {"socket_address": {"address": url.host, "port_value": url.port}}},
    });
    if let Some(m) = metadata {
        endpoint["metadata"] = m;
    }
    let mut c = json!({
        "name": name,
        "connect_timeout": "5s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [endpoint]}]},
    });
    if url.is_ip() {
        c["type"] = json!("STATIC");
    } else {
        c["type"] = json!("STRICT_DNS");
        c["dns_lookup_family"] = json!("V4_PREFERRED");
        // auto_host_rewrite uses the endpoint's hostname: the provider's own name.
        c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["hostname"] =
            json!(url.authority());
    }
    if url.tls {
        c["transport_socket"] = tls::envoy_transport_socket(url, ca);
    }
    c
}

/// The provider's cluster, its endpoint tagged with the provider's name so the wasm key
/// injector knows whose key an attempt through a fallback chain needs. With keys set
/// per attempt, a request routed straight to this cluster gets its key from Envoy's
/// native `header_mutation` instead: a cluster's own upstream filters replace the
/// router's, and cost about a third of a second wasm context per request. A chain's
/// aggregate cluster has no filters of its own, so its attempts keep the router's wasm
/// injector (a member cluster's filters do not run under an aggregate).
pub fn provider_cluster(p: &Provider, native_key: Option<&Value>) -> Value {
    let meta = json!({"filter_metadata": {"chokepoint": {"provider": p.name}}});
    let mut c = url_cluster(&p.cluster(), &p.url, p.ca.as_ref(), Some(meta));
    if let Some(filter) = native_key {
        c["typed_extension_protocol_options"] = json!({
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http_protocol_options": {}},
                "http_filters": [filter, upstream_codec()],
            }
        });
    }
    c
}

/// An MCP server's cluster. With keys set per attempt the cluster always has upstream
/// filters of its own: they replace the router's wasm key injector, which refuses an
/// endpoint that is no provider's. The credential is then Envoy's native header
/// mutation from the process's environment (`/config_dump` shows only the variable's
/// name); in `downstream` mode the filter sets it.
pub fn mcp_cluster(server: &McpServer, upstream_keys: bool) -> Value {
    let mut c = url_cluster(&server.cluster(), &server.url, server.ca.as_ref(), None);
    if upstream_keys {
        let mut filters: Vec<Value> = Vec::new();
        if let Some(cred) = &server.credential {
            filters.push(json!({
                "name": format!("{INJECTOR}.native"),
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
                    "mutations": {"request_mutations": [{"append": {
                        "header": {
                            "key": cred.header,
                            "value": format!("{}%ENVIRONMENT({})%", literal(&cred.prefix()), cred.env),
                        },
                        "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                    }}]},
                }
            }));
        }
        filters.push(upstream_codec());
        c["typed_extension_protocol_options"] = json!({
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http_protocol_options": {}},
                "http_filters": filters,
            }
        });
    }
    c
}

fn upstream_codec() -> Value {
    json!({
        "name": "envoy.filters.http.upstream_codec",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec"},
    })
}

/// `%` starts a command in Envoy's header formatter; a literal one is doubled.
fn literal(s: &str) -> String {
    s.replace('%', "%%")
}

/// The native key injector of each provider, by provider name: its key header set from
/// the Envoy process's environment (`%ENVIRONMENT(VAR)%`, so `/config_dump` shows only
/// the variable's name), other providers' key headers removed, and the provider named
/// to the client, as the wasm injector does. Header names and prefixes come from the
/// filter's own provider parser, so both injectors send the same headers.
pub fn native_key_filters(policy: &Policy) -> Vec<(String, Value)> {
    let raw = plugin::injector_config(policy)["inject_keys"]["providers"].clone();
    let parsed = serde_json::from_value(raw)
        .ok()
        .and_then(|raw| chokepoint_filter::providers::registry::parse(raw).ok())
        .unwrap_or_default();
    parsed
        .iter()
        .map(|p| {
            let mut request: Vec<Value> = Vec::new();
            for other in &parsed {
                let header = json!({"remove": other.key_header});
                if other.key_header != p.key_header && !request.contains(&header) {
                    request.push(header);
                }
            }
            request.push(json!({
                "append": {
                    "header": {
                        "key": p.key_header,
                        "value": format!("{}%ENVIRONMENT({})%", literal(&p.key_prefix), p.key_env),
                    },
                    "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                }
            }));
            let filter = json!({
                "name": format!("{INJECTOR}.native"),
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
                    "mutations": {
                        "request_mutations": request,
                        "response_mutations": [{"append": {
                            "header": {"key": chokepoint_filter::providers::key_injection::PROVIDER_HEADER, "value": literal(&p.name)},
                            "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                        }}],
                    }
                }
            });
            (p.name.clone(), filter)
        })
        .collect()
}

/// Every cluster the filter uses: providers, fallback chains, MCP servers, the policy
/// service, JWKS, guardrail services.
pub fn clusters(policy: &Policy) -> Vec<Value> {
    let native = if policy.gateway.key_injection_upstream {
        native_key_filters(policy)
    } else {
        Vec::new()
    };
    let mut out: Vec<Value> = policy
        .providers
        .iter()
        .map(|p| {
            let filter = native.iter().find(|(n, _)| *n == p.name).map(|(_, f)| f);
            provider_cluster(p, filter)
        })
        .collect();
    for chain in plugin::chains(policy) {
        let name = plugin::chain_cluster(&chain);
        let members: Vec<String> = chain.iter().map(|p| p.cluster()).collect();
        out.push(json!({
            "name": name,
            "connect_timeout": "5s",
            "lb_policy": "CLUSTER_PROVIDED",
            "cluster_type": {
                "name": "envoy.clusters.aggregate",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.clusters.aggregate.v3.ClusterConfig",
                    "clusters": members,
                }
            }
        }));
    }
    for s in policy.mcp.iter().flat_map(|m| &m.servers) {
        out.push(mcp_cluster(s, policy.gateway.key_injection_upstream));
    }
    if policy_cluster::balanced(policy) {
        out.push(policy_cluster::instances_cluster(policy));
    } else {
        out.push(url_cluster(
            plugin::POLICY_CLUSTER,
            &policy.policy_service.url,
            None,
            None,
        ));
    }
    if let Some(o) = &policy.otlp {
        out.push(url_cluster(otlp::CLUSTER, &o.url, None, None));
    }
    for (i, iss) in policy.issuers.iter().enumerate() {
        if let Keys::Uri { url, ca, .. } = &iss.keys {
            out.push(url_cluster(
                &plugin::jwks_cluster(i, url, Target::Envoy),
                url,
                ca.as_ref(),
                None,
            ));
        }
    }
    // Only the filter's callouts reach these: no route names them, and a client's
    // routing header is replaced by the filter's.
    for (check, s) in policy.guardrails.iter().flat_map(|g| g.services()) {
        out.push(url_cluster(&check.cluster(), &s.url, s.ca.as_ref(), None));
    }
    out
}

/// Envoy's gzip decompressor for responses only, between the filter and the router (a
/// response passes the filters in reverse): an upstream that compresses although the
/// filter asked for `accept-encoding: identity` still reaches the filter's accounting
/// as text, and the client gets it uncompressed. It advertises nothing upstream (that
/// would have every provider compress for Envoy to undo) and leaves requests alone.
pub fn response_decompressor() -> Value {
    let enabled = |on: bool, key: &str| json!({"default_value": on, "runtime_key": key});
    json!({
        "name": "envoy.filters.http.decompressor",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.decompressor.v3.Decompressor",
            "decompressor_library": {
                "name": "gzip",
                "typed_config": {"@type": "type.googleapis.com/envoy.extensions.compression.gzip.decompressor.v3.Gzip"},
            },
            "request_direction_config": {
                "common_config": {"enabled": enabled(false, "chokepoint.decompress_requests")},
                "advertise_accept_encoding": false,
            },
            "response_direction_config": {
                "common_config": {"enabled": enabled(true, "chokepoint.decompress_responses")},
            },
        }
    })
}

/// Envoy's own 413 (a body past the buffer limit, before the filter could answer) in
/// the error shape of the API called, as the filter answers: Anthropic's for its paths
/// or SDK (`anthropic-version`), Google's for Gemini's `models/{model}:method` paths,
/// OpenAI's otherwise. Mappers apply in order; the first that matches answers.
pub fn local_reply_config() -> Value {
    const MESSAGE: &str = "The request body is larger than the gateway accepts.";
    let too_large = json!({"status_code_filter": {"comparison": {"op": "EQ", "value": {"default_value": 413, "runtime_key": "chokepoint.413"}}}});
    let path = |matcher: Value| json!({"header_filter": {"header": {"name": ":path", "string_match": matcher}}});
    let anthropic = json!({"or_filter": {"filters": [
        path(json!({"prefix": "/v1/messages"})),
        {"header_filter": {"header": {"name": "anthropic-version", "present_match": true}}},
    ]}});
    let gemini = path(json!({"safe_regex": {"regex": "^/v1(beta)?/models/[^/?]+:.*"}}));
    let mapper = |only: Option<Value>, body: Value| {
        let filter = match only {
            Some(f) => json!({"and_filter": {"filters": [too_large.clone(), f]}}),
            None => too_large.clone(),
        };
        json!({
            "filter": filter,
            "body_format_override": {"content_type": "application/json", "json_format": body},
        })
    };
    json!({
        "mappers": [
            mapper(Some(anthropic), json!({"type": "error", "error": {
                "type": "request_too_large",
                "message": MESSAGE,
                "code": "request_too_large",
            }})),
            mapper(Some(gemini), json!({"error": {
                "code": "%RESPONSE_CODE%",
                "message": MESSAGE,
                "status": "INVALID_ARGUMENT",
                "details": [{
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "request_too_large",
                    "domain": "chokepoint",
                }],
            }})),
            mapper(None, json!({"error": {
                "message": MESSAGE,
                "type": "invalid_request_error",
                "param": null,
                "code": "request_too_large",
            }})),
        ]
    })
}

/// One usage record per request, as JSON, from the filter's state.
pub const USAGE_LOG_FORMAT: &str = "%FILTER_STATE(wasm.chokepoint_usage:PLAIN)%\n";

/// How often Envoy writes its file access logs (`--file-flush-interval-msec`; 10 s by
/// default), and so how much of the audit trail a killed Envoy can lose before it reaches
/// the file, the reconciler's only source. Envoy 1.40 has no bootstrap or per-logger field
/// for it (`CommandLineOptions.file_flush_interval` only): it is a command-line flag, so
/// every target that starts Envoy, or tells a control plane how to, passes this one.
pub const FILE_FLUSH_INTERVAL_MSEC: u32 = 200;

/// The audit trail: one usage record per request, as JSON, from the filter's state.
pub fn usage_access_log(path: &str) -> Value {
    json!({
        "name": "envoy.access_loggers.file",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
            "path": path,
            "log_format": {"text_format_source": {"inline_string": USAGE_LOG_FORMAT}},
        }
    })
}

fn request_access_log() -> Value {
    json!({
        "name": "envoy.access_loggers.stdout",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
            "log_format": {"json_format": {
                "time": "%START_TIME%",
                "request_id": "%REQ(X-REQUEST-ID)%",
                "method": "%REQ(:METHOD)%",
                "path": "%REQ(:PATH)%",
                "status": "%RESPONSE_CODE%",
                "details": "%RESPONSE_CODE_DETAILS%",
                "user": "%REQ(X-CHOKEPOINT-USER)%",
                "upstream": "%UPSTREAM_CLUSTER%",
                "duration_ms": "%DURATION%",
                "bytes_sent": "%BYTES_SENT%",
            }}
        }
    })
}

/// The usage records to the access log file (and, with `telemetry.otlp`, to the
/// collector), and one line per request to stdout.
fn access_logs(policy: &Policy) -> Vec<Value> {
    let mut logs = vec![usage_access_log(&policy.access_log)];
    if let Some(o) = &policy.otlp {
        logs.push(otlp::access_log(o));
    }
    logs.push(request_access_log());
    logs
}

/// How the bootstrap carries the filter's configuration.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// In the bootstrap itself.
    Inline,
    /// Through extension config discovery from this file: re-render it and rename it
    /// over the path to change routes, prices or limits without a restart.
    EcdsFile(String),
}

pub struct BootstrapParams {
    pub listen_address: String,
    pub gateway_port: u16,
    pub admin_address: String,
    pub admin_port: u16,
    pub code: Code,
    pub delivery: Delivery,
}

/// The name of the ECDS resource (and the HTTP filter that references it).
pub const ECDS_NAME: &str = "chokepoint";

pub fn bootstrap(policy: &Policy, p: &BootstrapParams) -> Value {
    let gateway_filter = match &p.delivery {
        Delivery::Inline => json!({
            "name": FILTER,
            "typed_config": wasm_filter_config(policy, &p.code, Target::Envoy),
        }),
        Delivery::EcdsFile(path) => json!({
            "name": ECDS_NAME,
            "config_discovery": {
                "config_source": {"path_config_source": {"path": path}, "resource_api_version": "V3"},
                "type_urls": [WASM_TYPE],
            }
        }),
    };
    let hcm = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "gateway",
        "codec_type": "AUTO",
        // Streams may idle between tokens for a while; bound it anyway.
        "stream_idle_timeout": "300s",
        // A client must send its whole request in time (a stalled body holds no budget:
        // authorization waits for the body); the response may stream far longer.
        "request_timeout": millis(policy.gateway.request_timeout_ms),
        "request_headers_timeout": millis((policy.gateway.request_timeout_ms / 5).max(100)),
        "local_reply_config": local_reply_config(),
        "access_log": access_logs(policy),
        "route_config": {
            "name": "gateway",
            "virtual_hosts": [{"name": "providers", "domains": ["*"], "routes": routes(policy)}],
        },
        "http_filters": [gateway_filter, response_decompressor(), router_filter(policy, &p.code)],
    });
    json!({
        // ECDS needs a node identity; harmless otherwise.
        "node": {"id": "chokepoint", "cluster": "chokepoint"},
        "admin": {"address": {"socket_address": {"address": p.admin_address, "port_value": p.admin_port}}},
        // V8 compiles the filter's module once per process with large temporary buffers,
        // which Envoy's allocator otherwise keeps for good (about 8 MiB of RSS). Returned
        // in the background, a few MiB a second.
        "memory_allocator_manager": {"bytes_to_release": MEMORY_RELEASE_BYTES, "memory_release_interval": "1s"},
        "static_resources": {
            "listeners": [{
                "name": "gateway",
                "address": {"socket_address": {"address": p.listen_address, "port_value": p.gateway_port}},
                // Above the filter's own body limit, so the filter answers 413 in the
                // API's shape first.
                "per_connection_buffer_limit_bytes": policy.gateway.max_request_body_bytes * 2,
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": hcm,
                }]}],
            }],
            "clusters": clusters(policy),
        }
    })
}

/// Freed heap returned to the system per second (see `memory_allocator_manager`).
pub const MEMORY_RELEASE_BYTES: u64 = 8 << 20;

fn millis(ms: u64) -> String {
    format!("{}.{:03}s", ms / 1000, ms % 1000)
}

/// The ECDS file for [`Delivery::EcdsFile`]: a DiscoveryResponse with the filter.
pub fn ecds_file(policy: &Policy, code: &Code, version: &str) -> Value {
    json!({
        "version_info": version,
        "resources": [{
            "@type": "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
            "name": ECDS_NAME,
            "typed_config": wasm_filter_config(policy, code, Target::Envoy),
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::overrides::Override;

    fn example(overrides: &[Override]) -> Policy {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        Policy::load_with(&root.join("envoy/examples/policy.yaml"), overrides)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_retry_priority_is_there_only_for_fallback_chains() {
        // The example's one chain is gpt-4o-mini's two OpenAI providers (Azure's API
        // differs: it is not retried into).
        let unchained = json!(["openai", "azure"]);
        for (what, overrides, want) in [
            ("the example's chains", vec![], true),
            (
                "no two providers of one API on a route",
                vec![Override::new(
                    "models.routes[model=gpt-4o-mini].providers",
                    unchained,
                )],
                false,
            ),
        ] {
            let policy = example(&overrides);
            assert_eq!(!plugin::chains(&policy).is_empty(), want, "{what}");
            let catch_all = routes(&policy).pop().expect("a catch-all route");
            let retry = &catch_all["route"]["retry_policy"];
            assert_eq!(
                retry["retry_on"],
                "5xx,reset,connect-failure,retriable-status-codes"
            );
            assert_eq!(retry.get("retry_priority").is_some(), want, "{what}");
        }
    }
}
