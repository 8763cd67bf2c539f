//! The policy file's `mcp:` section: refused with the field and its line when wrong, and
//! rendered into the filter's `mcp` configuration and each delivery's routing.

use std::path::PathBuf;

use chokepoint_render::bundle::{self, Options};
use chokepoint_render::overrides::Override;
use chokepoint_render::plugin::{self, Target};
use chokepoint_render::policy::Policy;
use serde_json::{json, Value};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

const MCP: &str = "
mcp:
  public_url: https://ai.example.com
  servers:
    - name: everything
      url: http://127.0.0.1:3001/mcp
      credential: {header: authorization, scheme: Bearer, env: EVERYTHING_MCP_TOKEN}
      tools:
        - match: get-env
          deny: true
        - match: \"trigger-*\"
          allow_groups: [research]
          allow_tenants: []
      prompts: []
      resources:
        - match: \"demo://resource/static/document/*\"
          allow_groups: [research]
    - name: docs-search
      url: https://mcp.docs.example.com/v1/mcp
";

/// The mesh example with the `mcp` section above.
fn with_mcp() -> String {
    let text = std::fs::read_to_string(root().join("envoy/examples/policy.yaml")).unwrap();
    format!("{text}{MCP}")
}

fn parse(text: &str) -> Result<Policy, chokepoint_render::policy::PolicyError> {
    Policy::parse(text, "policy.yaml", &root().join("envoy/examples"))
}

fn policy() -> Policy {
    parse(&with_mcp()).unwrap_or_else(|e| panic!("{e}"))
}

/// `with_mcp()` with `old` replaced by `new` (which must be there).
fn broken(old: &str, new: &str) -> String {
    let text = with_mcp();
    assert!(text.contains(old), "the fixture no longer contains {old:?}");
    text.replacen(old, new, 1)
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("{needle:?} not in the file"))
}

#[test]
fn broken_mcp_sections_name_field_and_line() {
    let server = "    - name: everything\n      url: http://127.0.0.1:3001/mcp\n";
    let rule = "        - match: get-env\n          deny: true\n";
    // (what, broken text, field, text on the line the error must point at, message part)
    let cases: Vec<(&str, String, &str, &str, &str)> = vec![
        (
            "unknown server field",
            broken(server, &format!("{server}      timeout: 5\n")),
            "mcp.servers[0].timeout",
            "timeout: 5",
            "unknown field `timeout`",
        ),
        (
            "unknown rule field",
            broken(rule, &format!("{rule}          allow_users: [a]\n")),
            "mcp.servers[0].tools[0].allow_users",
            "allow_users:",
            "unknown field `allow_users`",
        ),
        (
            "unknown credential field",
            broken(
                "env: EVERYTHING_MCP_TOKEN}",
                "env: EVERYTHING_MCP_TOKEN, value: x}",
            ),
            "mcp.servers[0].credential.value",
            "value: x",
            "unknown field `value`",
        ),
        (
            "unknown section field",
            broken("  public_url:", "  public_urls:"),
            "mcp.public_urls",
            "public_urls:",
            "unknown field",
        ),
        (
            "server without url",
            broken("      url: http://127.0.0.1:3001/mcp\n", ""),
            "mcp.servers[0]",
            "- name: everything",
            "missing field `url`",
        ),
        (
            "upper-case name",
            broken("- name: everything", "- name: Everything"),
            "mcp.servers[0].name",
            "name: Everything",
            "1-64 characters of a-z, 0-9 and -",
        ),
        (
            "leading dash",
            broken("- name: everything", "- name: -everything"),
            "mcp.servers[0].name",
            "name: -everything",
            "not starting or ending with -",
        ),
        (
            "trailing dash",
            broken("- name: docs-search", "- name: docs-"),
            "mcp.servers[1].name",
            "name: docs-",
            "not starting or ending with -",
        ),
        (
            "name too long",
            broken(
                "- name: docs-search",
                &format!("- name: {}", "a".repeat(65)),
            ),
            "mcp.servers[1].name",
            "aaaaaaaaaaaaaaaaaaaa",
            "1-64 characters",
        ),
        (
            "duplicate name",
            broken("- name: docs-search", "- name: everything  # again"),
            "mcp.servers[1].name",
            "everything  # again",
            "duplicate MCP server \"everything\"",
        ),
        (
            "url without path",
            broken(
                "url: http://127.0.0.1:3001/mcp",
                "url: http://127.0.0.1:3001",
            ),
            "mcp.servers[0].url",
            "url: http://127.0.0.1:3001",
            "needs the server's MCP endpoint path",
        ),
        (
            "url not http",
            broken(
                "url: http://127.0.0.1:3001/mcp",
                "url: ws://127.0.0.1:3001/mcp",
            ),
            "mcp.servers[0].url",
            "ws://127.0.0.1:3001/mcp",
            "must start with http:// or https://",
        ),
        (
            "url with credentials",
            broken(
                "url: https://mcp.docs.example.com/v1/mcp",
                "url: https://u:p@mcp.docs.example.com/v1/mcp",
            ),
            "mcp.servers[1].url",
            "u:p@mcp",
            "must not carry credentials",
        ),
        (
            "ca_file on http",
            broken(server, &format!("{server}      ca_file: ca.pem\n")),
            "mcp.servers[0].ca_file",
            "ca_file: ca.pem",
            "applies to an https URL only",
        ),
        (
            "public_url with a path",
            broken(
                "public_url: https://ai.example.com",
                "public_url: https://ai.example.com/gw",
            ),
            "mcp.public_url",
            "public_url: https://ai.example.com/gw",
            "without a path",
        ),
        (
            "public_url with a query",
            broken(
                "public_url: https://ai.example.com",
                "public_url: https://ai.example.com/?x=1",
            ),
            "mcp.public_url",
            "public_url: https://ai.example.com/?x=1",
            "query or fragment",
        ),
        (
            "public_url relative",
            broken(
                "public_url: https://ai.example.com",
                "public_url: ai.example.com",
            ),
            "mcp.public_url",
            "public_url: ai.example.com",
            "must start with http:// or https://",
        ),
        (
            "no servers",
            format!(
                "{}\nmcp:\n  servers: []\n",
                std::fs::read_to_string(root().join("envoy/examples/policy.yaml")).unwrap()
            ),
            "mcp.servers",
            "servers: []",
            "names no server",
        ),
        (
            "credential env not a variable name",
            broken("env: EVERYTHING_MCP_TOKEN", "env: everything-token"),
            "mcp.servers[0].credential.env",
            "env: everything-token",
            "not an environment variable name",
        ),
        (
            "credential header hop-by-hop",
            broken("{header: authorization,", "{header: connection,"),
            "mcp.servers[0].credential.header",
            "header: connection",
            "hop-by-hop",
        ),
        (
            "credential header pseudo",
            broken("{header: authorization,", "{header: \":authority\","),
            "mcp.servers[0].credential.header",
            "header: \":authority\"",
            "pseudo-header",
        ),
        (
            "credential header the gateway's own",
            broken("{header: authorization,", "{header: x-chokepoint-user,"),
            "mcp.servers[0].credential.header",
            "header: x-chokepoint-user",
            "the gateway's own headers",
        ),
        (
            "credential header MCP's own",
            broken("{header: authorization,", "{header: mcp-session-id,"),
            "mcp.servers[0].credential.header",
            "header: mcp-session-id",
            "MCP transport header",
        ),
        (
            "credential header not a token",
            broken("{header: authorization,", "{header: \"x auth\","),
            "mcp.servers[0].credential.header",
            "header: \"x auth\"",
            "not a header name",
        ),
        (
            "credential header upper-case",
            broken("{header: authorization,", "{header: X-Api-Key,"),
            "mcp.servers[0].credential.header",
            "header: X-Api-Key",
            "lowercase",
        ),
        (
            "credential scheme with a space",
            broken("scheme: Bearer,", "scheme: \"Bearer x\","),
            "mcp.servers[0].credential.scheme",
            "scheme: \"Bearer x\"",
            "not an authentication scheme",
        ),
        (
            "credential without env",
            broken(", env: EVERYTHING_MCP_TOKEN}", "}"),
            "mcp.servers[0].credential",
            "credential: {header: authorization",
            "missing field `env`",
        ),
        (
            "deny with allow lists",
            broken(rule, &format!("{rule}          allow_groups: [research]\n")),
            "mcp.servers[0].tools[0].deny",
            "deny: true",
            "not both",
        ),
        (
            "empty match",
            broken("- match: get-env", "- match: \"\""),
            "mcp.servers[0].tools[0].match",
            "- match: \"\"",
            "a name or a `*` glob",
        ),
        (
            "allow lists naming nobody",
            broken(
                "allow_groups: [research]\n          allow_tenants: []",
                "allow_groups: []",
            ),
            "mcp.servers[0].tools[1].allow_groups",
            "allow_groups: []",
            "lists nobody",
        ),
        (
            "empty group",
            broken(
                "allow_groups: [research]\n          allow_tenants",
                "allow_groups: [\"\"]\n          allow_tenants",
            ),
            "mcp.servers[0].tools[1].allow_groups",
            "allow_groups: [\"\"]",
            "empty group",
        ),
        (
            "rule in resources",
            broken(
                "allow_groups: [research]\n    - name: docs",
                "allow_group: [research]\n    - name: docs",
            ),
            "mcp.servers[0].resources[0].allow_group",
            "allow_group: [research]",
            "unknown field",
        ),
        (
            "deny not a bool",
            broken("deny: true", "deny: yes please"),
            "mcp.servers[0].tools[0].deny",
            "deny: yes please",
            "invalid type",
        ),
    ];
    for (what, text, field, line_text, message) in cases {
        let err = parse(&text).expect_err(what);
        assert_eq!(err.field, field, "{what}: {err}");
        assert_eq!(
            err.line,
            Some(line_of(&text, line_text)),
            "{what}: wrong line in {err}"
        );
        assert!(err.message.contains(message), "{what}: {err}");
        assert!(
            err.to_string().starts_with(&format!(
                "policy.yaml:{}: {field}: ",
                line_of(&text, line_text)
            )),
            "{what}: {err}"
        );
    }
}

/// The filter's `mcp` section, exactly in the shape the filter parses.
#[test]
fn the_filter_gets_servers_clusters_paths_credentials_and_rules() {
    let c = plugin::plugin_config(&policy(), Target::Envoy);
    assert_eq!(
        c["mcp"],
        json!({
            "public_url": "https://ai.example.com",
            "servers": [
                {"name": "everything", "cluster": "mcp_everything", "path": "/mcp",
                 "authority": "127.0.0.1:3001",
                 "credential": {"header": "authorization", "prefix": "Bearer ", "env": "EVERYTHING_MCP_TOKEN"},
                 "tools": [{"match": "get-env", "deny": true},
                           {"match": "trigger-*", "allow_groups": ["research"], "allow_tenants": []}],
                 "prompts": [],
                 "resources": [{"match": "demo://resource/static/document/*", "allow_groups": ["research"]}]},
                {"name": "docs-search", "cluster": "mcp_docs-search", "path": "/v1/mcp",
                 "authority": "mcp.docs.example.com",
                 "tools": [], "prompts": [], "resources": []},
            ]
        })
    );
    // The filter takes it as it is.
    let mut filter_config = c.clone();
    filter_config["mcp"]["public_url"] = json!("https://ai.example.com");
    chokepoint_filter::config::Config::parse(filter_config.to_string().as_bytes())
        .expect("the filter parses the rendered configuration");
    // Istio's generated cluster names, as for providers.
    let c = plugin::plugin_config(&policy(), Target::Istio);
    assert_eq!(
        c["mcp"]["servers"][0]["cluster"],
        "outbound|3001||127.0.0.1"
    );
    assert_eq!(
        c["mcp"]["servers"][1]["cluster"],
        "outbound|443||mcp.docs.example.com"
    );
    // A scheme-less credential has an empty prefix; the variable is the VM's to read.
    let text = broken("scheme: Bearer, ", "").replace("header: authorization", "header: x-api-key");
    let p = parse(&text).unwrap();
    let c = plugin::plugin_config(&p, Target::Envoy);
    assert_eq!(
        c["mcp"]["servers"][0]["credential"],
        json!({"header": "x-api-key", "prefix": "", "env": "EVERYTHING_MCP_TOKEN"})
    );
    assert!(plugin::env_keys(&p).contains(&"EVERYTHING_MCP_TOKEN".to_string()));
    // No mcp section, no mcp key.
    let plain = Policy::load(&root().join("envoy/examples/policy.yaml")).unwrap();
    assert!(plugin::plugin_config(&plain, Target::Envoy)
        .get("mcp")
        .is_none());
}

fn render(policy: &Policy, target: &str, o: &Options) -> Value {
    let text = bundle::render(policy, target, o).unwrap_or_else(|e| panic!("{target}: {e}"));
    chokepoint_render::yaml::load(&text)
        .unwrap_or_else(|e| panic!("{target}: {e}\n{text}"))
        .value
}

fn find<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {list}"))
}

/// The plugin configuration a bootstrap carries inline.
fn inline_plugin(boot: &Value) -> Value {
    let hcm =
        &boot["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
    let wasm = find(&hcm["http_filters"], "chokepoint");
    serde_json::from_str(
        wasm["typed_config"]["config"]["configuration"]["value"]
            .as_str()
            .unwrap(),
    )
    .unwrap()
}

#[test]
fn envoy_routes_mcp_without_retries_or_timeouts_before_the_catch_all() {
    let o = Options::default();
    let boot = render(&policy(), "bootstrap", &o);
    let hcm =
        &boot["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
    let routes = hcm["route_config"]["virtual_hosts"][0]["routes"]
        .as_array()
        .unwrap();
    assert_eq!(routes.len(), 2, "{routes:?}");
    let mcp = &routes[0];
    assert_eq!(
        mcp["match"]["headers"],
        json!([{"name": "x-chokepoint-cluster", "string_match": {"prefix": "mcp_"}}])
    );
    assert_eq!(
        mcp["request_headers_to_remove"],
        json!(["x-chokepoint-cluster"])
    );
    let r = &mcp["route"];
    assert_eq!(r["cluster_header"], "x-chokepoint-cluster");
    assert!(
        r.get("retry_policy").is_none(),
        "a tools/call must not be retried: {r}"
    );
    assert_eq!(r["timeout"], "0s");
    assert_eq!(r["idle_timeout"], "3600s");
    assert_eq!(r["auto_host_rewrite"], true);
    // The catch-all still comes last, with its retries.
    assert_eq!(routes[1]["match"], json!({"prefix": "/"}));
    assert!(routes[1]["route"].get("retry_policy").is_some());

    let clusters = &boot["static_resources"]["clusters"];
    // An IP endpoint: STATIC, plain http.
    let everything = find(clusters, "mcp_everything");
    assert_eq!(everything["type"], "STATIC");
    assert!(everything.get("transport_socket").is_none());
    let opts = &everything["typed_extension_protocol_options"]
        ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];
    let filters = opts["http_filters"].as_array().unwrap();
    assert_eq!(filters.len(), 2, "{filters:?}");
    assert_eq!(
        filters[0]["typed_config"]["mutations"]["request_mutations"],
        json!([{"append": {
            "header": {"key": "authorization", "value": "Bearer %ENVIRONMENT(EVERYTHING_MCP_TOKEN)%"},
            "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
        }}])
    );
    assert_eq!(filters[1]["name"], "envoy.filters.http.upstream_codec");
    // A DNS name over TLS, verified against the host; no credential, but still filters of
    // its own so the router's wasm injector (which refuses a non-provider) never runs.
    let docs = find(clusters, "mcp_docs-search");
    assert_eq!(docs["type"], "STRICT_DNS");
    let tls = &docs["transport_socket"]["typed_config"];
    assert_eq!(tls["sni"], "mcp.docs.example.com");
    let text = serde_json::to_string(tls).unwrap();
    assert!(text.contains(r#""exact":"mcp.docs.example.com""#), "{text}");
    let filters = docs["typed_extension_protocol_options"]
        ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]["http_filters"]
        .as_array()
        .unwrap();
    assert_eq!(filters.len(), 1, "{filters:?}");
    assert_eq!(filters[0]["name"], "envoy.filters.http.upstream_codec");
    // The VM may read the credential (downstream injection reads it there).
    let wasm = find(&hcm["http_filters"], "chokepoint");
    let env =
        &wasm["typed_config"]["config"]["vm_config"]["environment_variables"]["host_env_keys"];
    assert!(
        env.as_array()
            .unwrap()
            .contains(&json!("EVERYTHING_MCP_TOKEN")),
        "{env}"
    );
    assert_eq!(
        inline_plugin(&boot)["mcp"]["public_url"],
        "https://ai.example.com"
    );

    // Downstream: the filter sets the credential; the clusters have no filters.
    let down =
        parse(&with_mcp().replace("key_injection: upstream", "key_injection: downstream")).unwrap();
    let boot = render(&down, "bootstrap", &o);
    for name in ["mcp_everything", "mcp_docs-search"] {
        let c = find(&boot["static_resources"]["clusters"], name);
        assert!(c.get("typed_extension_protocol_options").is_none(), "{c}");
    }
    let plugin = inline_plugin(&boot);
    assert_eq!(plugin["key_injection"], "downstream");
    assert_eq!(
        plugin["mcp"]["servers"][0]["credential"]["env"],
        "EVERYTHING_MCP_TOKEN"
    );

    // Without mcp, one route as before.
    let plain = Policy::load(&root().join("envoy/examples/policy.yaml")).unwrap();
    let boot = render(&plain, "bootstrap", &o);
    let routes = &boot["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        ["typed_config"]["route_config"]["virtual_hosts"][0]["routes"];
    assert_eq!(routes.as_array().unwrap().len(), 1);
}

/// Without `public_url` a listener's render names its own URL; a mesh's refuses.
#[test]
fn public_url_defaults_to_the_listener_and_meshes_require_it() {
    let text = broken("  public_url: https://ai.example.com\n", "");
    let p = parse(&text).unwrap();
    let o = Options {
        port: 10123,
        ..Options::default()
    };
    let boot = render(&p, "bootstrap", &o);
    assert_eq!(
        inline_plugin(&boot)["mcp"]["public_url"],
        "http://127.0.0.1:10123"
    );
    let plugin: Value =
        serde_json::from_str(&bundle::render(&p, "plugin-config", &o).unwrap()).unwrap();
    assert_eq!(plugin["mcp"]["public_url"], "http://127.0.0.1:10123");
    let ecds = render(&p, "ecds", &o);
    let value = ecds["resources"][0]["typed_config"]["config"]["configuration"]["value"]
        .as_str()
        .unwrap();
    assert!(
        value.contains(r#""public_url":"http://127.0.0.1:10123""#),
        "{value}"
    );
    for target in [
        "istio-wasmplugin",
        "istio-trafficextension",
        "istio-envoyfilter",
        "envoy-gateway",
    ] {
        let err = bundle::render(&p, target, &o).expect_err(target);
        assert!(
            err.contains("mcp.public_url is required") && err.contains("RFC 9728"),
            "{target}: {err}"
        );
    }
}

/// The local policy file's server: loopback, overridable by name as scripts/run does for
/// providers, the credential from the environment, get-env closed, trigger-* for research.
#[test]
fn the_local_policy_file_has_the_everything_server() {
    // The dev JWKS file exists once scripts/run has run; a fetched one renders alike.
    let ov = [
        Override::new(
            "issuers[issuer=https://dev.chokepoint.local].jwks",
            json!({"uri": "https://dev.chokepoint.local/jwks.json"}),
        ),
        Override::new(
            "mcp.servers[name=everything].url",
            "http://127.0.0.1:40123/mcp",
        ),
    ];
    let p = Policy::load_with(&root().join("envoy/chokepoint.yaml"), &ov)
        .unwrap_or_else(|e| panic!("{e}"));
    let c = plugin::plugin_config(&p, Target::Envoy);
    let s = &c["mcp"]["servers"][0];
    assert_eq!(s["name"], "everything");
    assert_eq!(s["cluster"], "mcp_everything");
    assert_eq!(s["path"], "/mcp");
    assert_eq!(
        s["credential"],
        json!({"header": "authorization", "prefix": "Bearer ", "env": "CHOKEPOINT_MCP_EVERYTHING_TOKEN"})
    );
    assert_eq!(
        s["tools"],
        json!([{"match": "get-env", "deny": true}, {"match": "trigger-*", "allow_groups": ["research"]}])
    );
    let boot = render(&p, "bootstrap", &Options::default());
    let everything = find(&boot["static_resources"]["clusters"], "mcp_everything");
    assert_eq!(
        everything["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
            ["socket_address"],
        json!({"address": "127.0.0.1", "port_value": 40123})
    );
}
