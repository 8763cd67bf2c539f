"""What Envoy Gateway gives its Envoy from chokepoint's rendered Envoy Gateway resources
(HTTPRoute, Backend, BackendTLSPolicy + ConfigMap, EnvoyExtensionPolicy, EnvoyProxy), as
an Envoy bootstrap (tests/mesh/site.py says what a delivery gets).

Each piece follows Envoy Gateway's own source, cited next to it as `path: function`, at
envoyproxy/gateway tag v1.9.0 (`fetch github:envoyproxy/gateway`; the CRDs in
tests/schemas/ are that tag's), with its default settings: the XDSNameSchemeV2 runtime
flag off (api/v1alpha1/envoygateway_helpers.go), no `mergeBackends`, the Backend API
enabled (`extensionApis.enableBackend`, without which every Backend is rejected:
internal/gatewayapi/validate.go: validateBackendRefBackend). What the xDS stream would
carry (listener, route configuration, clusters, secrets) is written statically into the
bootstrap; EG sends them over ADS, so its `rds`, `eds` and `sds_config: {ads: {}}` become
inline here. A host name becomes the address `site.addresses` gives it, where Envoy would
resolve it by DNS (a Backend's fqdn) or get it from EDS (a Kubernetes Service).

The Gateway itself is the mesh admin's, not rendered: like Envoy Gateway's quickstart,
`eg` in the route's namespace with one HTTP listener named `http` on port 80 (EG's Envoy
listens on 10080 for it; here on `site.listen_port`), no ClientTrafficPolicy.

Nothing is set that the resources cannot express: in particular the Wasm filter has no
`allow_on_headers_stop_iteration` (EG's `wasmConfig` never sets it and no field of the
EnvoyExtensionPolicy reaches it).
"""

import base64
import hashlib
import http.server
import json
import secrets
import threading

WASM_TYPE = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"
TLS_TYPE = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
HTTP_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
# The Gateway's listener, as the module's docstring assumes it.
LISTENER_SECTION = "http"
LISTENER_CONTAINER_PORT = 10080
# internal/xds/translator/globalresources.go: wasmHTTPServiceClusterName, wasmHTTPServiceHost,
# wasmHTTPServicePort; wasmHTTPServiceFQDN with EG's default namespace.
WASM_CLUSTER = "wasm_cluster"
WASM_SERVICE = "envoy-gateway.envoy-gateway-system.svc.cluster.local"
WASM_SERVICE_PORT = 18002
# internal/ir/xds.go: SystemTrustStoreSecretName; internal/utils/cert/cert.go: SystemCertPath.
SYSTEM_CA_SECRET = "system_ca_certificates"
SYSTEM_CA_FILE = "/etc/ssl/certs/ca-certificates.crt"
# internal/xds/translator/accesslog.go: EnvoyJSONLogFields, the JSON log EG writes when an
# access-log setting has no format.
EG_JSON_LOG = {
    "start_time": "%START_TIME%", "method": "%REQ(:METHOD)%",
    "x-envoy-origin-path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%", "protocol": "%PROTOCOL%",
    "response_code": "%RESPONSE_CODE%", "response_flags": "%RESPONSE_FLAGS%",
    "response_code_details": "%RESPONSE_CODE_DETAILS%",
    "connection_termination_details": "%CONNECTION_TERMINATION_DETAILS%",
    "upstream_transport_failure_reason": "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
    "bytes_received": "%BYTES_RECEIVED%", "bytes_sent": "%BYTES_SENT%", "duration": "%DURATION%",
    "x-envoy-upstream-service-time": "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
    "x-forwarded-for": "%REQ(X-FORWARDED-FOR)%", "user-agent": "%REQ(USER-AGENT)%",
    "x-request-id": "%REQ(X-REQUEST-ID)%", ":authority": "%REQ(:AUTHORITY)%",
    "upstream_host": "%UPSTREAM_HOST%", "upstream_cluster": "%UPSTREAM_CLUSTER%",
    "upstream_local_address": "%UPSTREAM_LOCAL_ADDRESS%",
    "downstream_local_address": "%DOWNSTREAM_LOCAL_ADDRESS%",
    "downstream_remote_address": "%DOWNSTREAM_REMOTE_ADDRESS%",
    "requested_server_name": "%REQUESTED_SERVER_NAME%", "route_name": "%ROUTE_NAME%",
}


def bootstrap(docs, site):
    """The Envoy configuration Envoy Gateway builds for the rendered resources."""
    (route,) = _kind(docs, "HTTPRoute")
    (eep,) = _kind(docs, "EnvoyExtensionPolicy")
    proxies = _kind(docs, "EnvoyProxy")
    ns = route["metadata"]["namespace"]
    gateway = route["spec"]["parentRefs"][0]["name"]
    # internal/gatewayapi/helpers.go: irListenerName.
    listener_name = f"{ns}/{gateway}/{LISTENER_SECTION}"
    wasm_filters, wasm_files = _wasm_filters(eep, site)
    routes, clusters, secrets_ = [], [], {}
    for i, rule in enumerate(route["spec"]["rules"]):
        for j, match in enumerate(rule.get("matches") or [{}]):
            for host in route["spec"]["hostnames"]:
                routes.append(_route(route, i, j, rule, match, host, wasm_filters))
        if rule.get("backendRefs"):
            cluster, secret = _cluster(route, i, rule, docs, site)
            clusters.append(cluster)
            if secret:
                secrets_[secret["name"]] = secret
    # internal/gatewayapi/sort.go: sortXdsIRMap, Gateway API precedence: more header
    # matches first, then the rules in order (sort.Stable), so the catch-all comes last.
    routes.sort(key=lambda r: -len(r["match"].get("headers", [])))
    clusters.append(_wasm_cluster(site, wasm_files))
    # internal/xds/translator/translator.go: addRouteToRouteConfig, one virtual host per
    # hostname, named `<listener>/<hostname with _ for .>` (virtualHostName).
    vhosts = []
    for host in route["spec"]["hostnames"]:
        under = host.replace(".", "_")
        vhosts.append({"name": f"{listener_name}/{under}", "domains": [host],
                       "routes": [r for r in routes if r["name"].endswith("/" + under)]})
    return {
        "node": {"id": "envoy-gateway-proxy", "cluster": f"{ns}/{gateway}"},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": site.admin_port}}},
        "static_resources": {
            "listeners": [_listener(listener_name, site, vhosts, wasm_filters, _access_logs(proxies, site),
                                    _buffer_limit(docs, gateway))],
            "clusters": clusters,
            "secrets": list(secrets_.values()),
        },
    }


def _kind(docs, kind):
    return [d for d in docs if d.get("kind") == kind]


def _buffer_limit(docs, gateway):
    """internal/xds/translator/listener.go: buildPerConnectionBufferLimitBytes, 32 KiB
    unless a ClientTrafficPolicy on the Gateway sets connection.bufferLimit
    (internal/gatewayapi/clienttrafficpolicy.go: translateListenerConnection; a plain
    integer is bytes)."""
    for p in _kind(docs, "ClientTrafficPolicy"):
        if any(t["kind"] == "Gateway" and t["name"] == gateway for t in p["spec"].get("targetRefs", [])):
            limit = p["spec"].get("connection", {}).get("bufferLimit")
            if limit is not None:
                return int(limit)
    return 32768


def _listener(name, site, vhosts, wasm_filters, access_logs, buffer_limit):
    """internal/xds/translator/listener.go: buildXdsTCPListener (named after the IR listener
    with XDSNameSchemeV2 off: xdsListenerName) and addHCMToXDSListener: the HCM with
    its defaults, the route configuration named like the listener (routeConfigName),
    EG's filters sorted by httpfilters.go: sortHTTPFilters (Wasm at 200+index, the
    router last) and the router from internal/xds/filters/wellknown.go:
    GenerateRouterFilter (Envoy's x-envoy-* headers suppressed by default)."""
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": f"http-{LISTENER_CONTAINER_PORT}",
        "codec_type": "AUTO",
        "access_log": access_logs,
        # RDS over ADS in EG; the same RouteConfiguration inline here.
        "route_config": {"name": name, "ignore_port_in_host_matching": True, "virtual_hosts": vhosts},
        "http_protocol_options": {},
        "server_header_transformation": "PASS_THROUGH",
        # listener.go: http2ProtocolOptions's defaults.
        "http2_protocol_options": {"max_concurrent_streams": 100, "initial_stream_window_size": 65536,
                                   "initial_connection_window_size": 1048576},
        "use_remote_address": True,
        "normalize_path": True,
        # internal/gatewayapi/listener.go: the IR listener's default PathSettings.
        "merge_slashes": True,
        "path_with_escaped_slashes_action": "UNESCAPE_AND_REDIRECT",
        "common_http_protocol_options": {"headers_with_underscores_action": "REJECT_REQUEST"},
        "http_filters": wasm_filters + [{
            "name": "envoy.filters.http.router",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
                             "suppress_envoy_headers": True},
        }],
    }
    return {
        "name": name,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": site.listen_port}},
        "per_connection_buffer_limit_bytes": buffer_limit,
        "default_filter_chain": {
            "name": name,
            "filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}],
        },
    }


def _access_logs(proxies, site):
    """internal/gatewayapi/listener.go: processAccessLog (no EnvoyProxy, or one without
    settings: EG's JSON log to stdout) and internal/xds/translator/accesslog.go:
    buildXdsAccessLog (a Text format with a File sink: Envoy's file logger with that
    format; only `type: Route` and untyped settings reach the HCM). The usage record's
    sink is the mesh's own file here: `site.access_log` stands for the policy file's
    `audit.access_log` path the EnvoyProxy names."""
    settings = [{"sinks": [{"type": "File", "file": {"path": "/dev/stdout"}}]}]
    if proxies:
        settings = proxies[0]["spec"]["telemetry"]["accessLog"]["settings"]
    logs = []
    for s in settings:
        if s.get("type", "Route") != "Route":
            continue
        fmt = s.get("format", {"type": "JSON"})
        for sink in s["sinks"]:
            path = sink["file"]["path"]
            if fmt["type"] == "Text":
                if "wasm.chokepoint_usage" in fmt["text"]:
                    path = str(site.access_log)
                log_format = {"text_format_source": {"inline_string": fmt["text"]}}
            else:
                log_format = {"json_format": fmt.get("json") or EG_JSON_LOG}
            logs.append({"name": "envoy.access_loggers.file", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
                "path": path, "log_format": log_format}})
    return logs


def _wasm_filters(eep, site):
    """internal/gatewayapi/envoyextensionpolicy.go: buildWasm, and
    internal/xds/translator/wasm.go: buildHCMWasmFilter / wasmConfig. One HCM filter per
    `spec.wasm` entry, named `envoy.filters.http.wasm/<irConfigNameForWasm>`, disabled
    (enabled per route, see _route); the VM id is that IR name (no VM shared between
    policies), the plugin's name the entry's `name`; `config` reaches the module as a
    JSON string; `failOpen` becomes the plugin's `fail_open`; `env.hostKeys` the VM's
    `host_env_keys`. The code is always remote: EG's controller pulls the OCI image,
    keeps the .wasm in its cache and serves it over its Wasm HTTP service
    (internal/wasm/httpserver.go: Get, an unguessable `/<base64url sha256(url+salt)>.wasm`
    path), and Envoy checks the sha256 of the .wasm it gets (not the image digest).
    Returns the filters and the files to serve, by path."""
    ns, name = eep["metadata"]["namespace"], eep["metadata"]["name"]
    out, files = [], {}
    for idx, w in enumerate(eep["spec"]["wasm"]):
        # helpers.go: irConfigName; envoyextensionpolicy.go: irConfigNameForWasm.
        ir_name = f"envoyextensionpolicy/{ns}/{name}/wasm/{idx}"
        url = w["code"]["image"]["url"]
        path = base64.urlsafe_b64encode(hashlib.sha256(url.encode() + secrets.token_bytes(16)).digest()).decode()
        # The controller's Wasm HTTP service, played by _serve_wasm. EG serves it over TLS
        # (mTLS with its client certificate, ALPN h2); this one speaks plain HTTP/1.1, so
        # the cluster differs only in transport (see _wasm_cluster).
        uri = f"http://{WASM_SERVICE}:{WASM_SERVICE_PORT}/{path}.wasm"
        config = {
            "name": w.get("name", ir_name),
            "vm_config": {
                "vm_id": ir_name,
                "runtime": "envoy.wasm.runtime.v8",
                "code": {"remote": {
                    "http_uri": {"uri": uri, "cluster": WASM_CLUSTER, "timeout": "10s"},
                    "sha256": site.wasm_sha256,
                    # wasm.go: wasmFetchNumRetries, wasmFetchBaseInterval, wasmFetchMaxInterval.
                    "retry_policy": {"num_retries": 10,
                                     "retry_back_off": {"base_interval": "1s", "max_interval": "30s"}},
                }},
            },
            "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                              "value": json.dumps(w.get("config", {}), separators=(",", ":"))},
            "fail_open": bool(w.get("failOpen", False)),
        }
        if w.get("env", {}).get("hostKeys"):
            config["vm_config"]["environment_variables"] = {"host_env_keys": w["env"]["hostKeys"]}
        if "rootID" in w:
            config["root_id"] = w["rootID"]
        out.append({"name": f"envoy.filters.http.wasm/{ir_name}", "disabled": True,
                    "typed_config": {"@type": WASM_TYPE, "config": config}})
        files[f"/{path}.wasm"] = site.wasm_path
    return out, files


def _wasm_cluster(site, files):
    """globalresources.go: createWasmHTTPServiceCluster: a DNS cluster for the
    controller's Wasm HTTP service. EG's has an mTLS transport socket to the controller
    and HTTP/2 (its setting's protocol is GRPC); the local stand-in serves HTTP/1.1 in
    the clear, the .wasm bytes and the sha256 Envoy checks are the same."""
    port = _serve_wasm(site, files)
    return {
        "name": WASM_CLUSTER,
        "connect_timeout": "10s",
        "type": "STRICT_DNS",
        "dns_lookup_family": "V4_PREFERRED",
        "load_assignment": {"cluster_name": WASM_CLUSTER, "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]},
    }


def _serve_wasm(site, files):
    """Serves the cached module like internal/wasm/httpserver.go: ServeHTTP (the mapped
    path or 404), for as long as this process runs (the harness outlives Envoy)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            path = files.get(self.path)
            if path is None:
                self.send_error(404)
                return
            body = path.read_bytes()
            self.send_response(200)
            self.send_header("content-type", "application/wasm")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt, *args):
            with open(site.run_dir / "wasm-http.log", "a") as f:
                f.write(fmt % args + "\n")

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]


def _route(route, i, j, rule, match, host, wasm_filters):
    """internal/gatewayapi/route.go: processHTTPRouteRule (one IR route per match, named
    `httproute/<ns>/<name>/rule/<i>/match/<j>`, `/<hostname>` appended per listener host
    in processHTTPRouteParentRefListener; a match without a path is PathPrefix `/`, the
    CRD's default) and internal/xds/translator/route.go: buildXdsRoute. A rule without
    backendRefs has no valid destination: a 500 direct response (processHTTPRouteRules,
    `backendWeights.Valid == 0`). Every route of the targeted HTTPRoute enables the Wasm
    filters with an empty FilterConfig (wasm.go: patchRoute, utils.go: enableFilterOnRoute)."""
    ns, name = route["metadata"]["namespace"], route["metadata"]["name"]
    path = match.get("path", {"type": "PathPrefix", "value": "/"})
    assert path["type"] == "PathPrefix", path
    m = {"prefix": path["value"]}
    headers = [{"name": h["name"], "string_match": {"exact": h["value"]}}
               for h in match.get("headers", []) if h.get("type", "Exact") == "Exact"]
    if headers:
        m["headers"] = headers
    r = {
        "name": f"httproute/{ns}/{name}/rule/{i}/match/{j}/{host.replace('.', '_')}",
        "match": m,
        "typed_per_filter_config": {f["name"]: {
            "@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig", "config": {}} for f in wasm_filters},
    }
    if not rule.get("backendRefs"):
        r["direct_response"] = {"status": 500}
        return r
    action = {"cluster": f"httproute/{ns}/{name}/rule/{i}",
              # route.go: buildUpgradeConfig's default.
              "upgrade_configs": [{"upgrade_type": "websocket"}]}
    for f in rule.get("filters", []):
        if f["type"] == "RequestHeaderModifier":
            # buildXdsRoute: RemoveRequestHeaders -> request_headers_to_remove.
            r.setdefault("request_headers_to_remove", []).extend(f["requestHeaderModifier"].get("remove", []))
        elif f["type"] == "URLRewrite":
            # route.go: buildXdsURLRewriteAction: a hostname -> host_rewrite_literal.
            action["host_rewrite_literal"] = f["urlRewrite"]["hostname"]
        else:
            raise ValueError(f"filter {f['type']} not translated")
    if "request" in rule.get("timeouts", {}):
        # route.go: getEffectiveRequestTimeout.
        action["timeout"] = rule["timeouts"]["request"]
    r["route"] = action
    return r


def _cluster(route, i, rule, docs, site):
    """One cluster per rule, named after it (helpers.go: irRouteDestinationName;
    translator.go: addRouteToRouteConfig -> processXdsCluster), built by
    internal/xds/translator/cluster.go: buildXdsCluster: least-request, 10 s connect
    timeout, a 32 KiB buffer limit; a Backend's fqdn is a DNS cluster (the
    `envoy.cluster.dns` extension, 30 s refresh, DNS TTL respected, V4_PREFERRED), a
    Service's endpoints come by EDS (here a static cluster of its address). TLS from the
    Backend and its BackendTLSPolicy (internal/gatewayapi/backendtlspolicy.go:
    applyBackendTLSSetting, the policy's hostname wins as SNI, its CA as trust) is a
    transport socket match named `<cluster>/tls/0` on the endpoint's metadata, and the
    cluster gets `auto_config` (h2 or HTTP/1.1 by ALPN)."""
    ns, name = route["metadata"]["namespace"], route["metadata"]["name"]
    cname = f"httproute/{ns}/{name}/rule/{i}"
    (ref,) = rule["backendRefs"]
    endpoint_meta, tls, secret = None, None, None
    if ref.get("kind") == "Backend":
        backend = _named(docs, "Backend", ref["name"])
        (ep,) = backend["spec"]["endpoints"]
        # An fqdn is resolved by DNS (here the site's map); an ip endpoint is the address.
        named = ep.get("fqdn") or {"hostname": ep["ip"]["address"], "port": ep["ip"]["port"]}
        host, port = named["hostname"], named["port"]
        policies = [p for p in _kind(docs, "BackendTLSPolicy")
                    if any(t["kind"] == "Backend" and t["name"] == ref["name"] for t in p["spec"]["targetRefs"])]
        if backend["spec"].get("tls") or policies:
            tls, secret = _upstream_tls(backend, policies, docs)
            endpoint_meta = {"filter_metadata": {"envoy.transport_socket_match": {"name": f"{cname}/tls/0"}}}
    else:
        # A Service in the route's namespace: its cluster-local name, resolved by EDS to
        # its pods' targetPort.
        host, port = f"{ref['name']}.{ref.get('namespace', ns)}.svc.cluster.local", ref["port"]
    ip, port = site.endpoint(host, port)
    lb_endpoint = {"endpoint": {"address": {"socket_address": {"address": ip, "port_value": port}}},
                   "load_balancing_weight": 1}
    if endpoint_meta:
        lb_endpoint["metadata"] = endpoint_meta
    c = {
        "name": cname,
        "connect_timeout": "10s",
        "per_connection_buffer_limit_bytes": 32768,
        "ignore_health_on_host_removal": True,
        "common_lb_config": {},
        "dns_lookup_family": "V4_PREFERRED",
        "load_balancing_policy": {"policies": [{"typed_extension_config": {
            "name": "envoy.load_balancing_policies.least_request",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest",
                             "locality_lb_config": {"locality_weighted_lb_config": {}}}}}]},
        "load_assignment": {"cluster_name": cname, "endpoints": [
            {"locality": {}, "lb_endpoints": [lb_endpoint], "load_balancing_weight": 1}]},
    }
    if ref.get("kind") == "Backend":
        c["cluster_type"] = {"name": "envoy.cluster.dns", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.clusters.dns.v3.DnsCluster",
            "dns_refresh_rate": "30s", "respect_dns_ttl": True, "dns_lookup_family": "V4_PREFERRED"}}
    else:
        c["type"] = "STATIC"
    if tls:
        c["transport_socket_matches"] = [{"name": f"{cname}/tls/0", "match": {"name": f"{cname}/tls/0"},
                                          "transport_socket": {"name": "envoy.transport_sockets.tls",
                                                               "typed_config": tls}}]
        # cluster.go: dummyTransportSocket, so the cluster passes validation; the match wins.
        c["transport_socket"] = {"name": "dummy.transport_socket", "typed_config": {
            "@type": TLS_TYPE, "common_tls_context": {}}}
        # cluster.go: buildTypedExtensionProtocolOptions, requiresAutoHTTPConfig.
        c["typed_extension_protocol_options"] = {HTTP_OPTIONS: {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "auto_config": {"http_protocol_options": {}, "http2_protocol_options": {
                "initial_stream_window_size": 65536, "initial_connection_window_size": 1048576}}}}
    return c, secret


def _named(docs, kind, name):
    (d,) = [d for d in _kind(docs, kind) if d["metadata"]["name"] == name]
    return d


def _upstream_tls(backend, policies, docs):
    """backendtlspolicy.go: mergeServerValidationTLSConfigs (the BackendTLSPolicy's
    hostname and CA over the Backend's), getBackendTLSBundle (a ConfigMap's `ca.crt`
    becomes a secret `<policy>/<ns>-ca`, `System` the shared system_ca_certificates)
    and translator.go: buildXdsUpstreamTLSSocketWthCert / buildValidationContext: SNI
    from the hostname, an exact DNS SAN match on it (no subjectAltNames given), the CA
    through SDS, TLS 1.2 to 1.3 (applyBackendTLSSetting's defaults)."""
    btls = backend["spec"].get("tls", {})
    sni, trust, owner = btls.get("sni"), btls, backend
    if policies:
        (p,) = policies
        sni, trust, owner = p["spec"]["validation"]["hostname"], p["spec"]["validation"], p
    if trust.get("wellKnownCACertificates") == "System":
        secret = {"name": SYSTEM_CA_SECRET, "validation_context": {"trusted_ca": {"filename": SYSTEM_CA_FILE}}}
    else:
        (ref,) = trust["caCertificateRefs"]
        pem = _named(docs, "ConfigMap", ref["name"])["data"]["ca.crt"]
        meta = owner["metadata"]
        secret = {"name": f"{meta['name']}/{meta['namespace']}-ca",
                  # EG sends the bytes (inline_bytes); the same PEM as a string here.
                  "validation_context": {"trusted_ca": {"inline_string": pem}}}
    tls = {
        "@type": TLS_TYPE,
        "sni": sni,
        "common_tls_context": {
            "tls_params": {"tls_minimum_protocol_version": "TLSv1_2", "tls_maximum_protocol_version": "TLSv1_3"},
            "combined_validation_context": {
                "default_validation_context": {"match_typed_subject_alt_names": [
                    {"san_type": "DNS", "matcher": {"exact": sni}}]},
                # An SdsSecretConfig without a config source names a static secret.
                "validation_context_sds_secret_config": {"name": secret["name"]},
            },
        },
    }
    return tls, secret
