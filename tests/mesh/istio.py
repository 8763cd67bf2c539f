"""What istiod and istio-agent give an Istio ingress gateway from chokepoint's rendered
Istio resources, as an Envoy bootstrap (tests/mesh/site.py says what a delivery gets).

Each piece follows Istio's own source, cited next to it as `path: function`, at
istio/istio 86c9f01fd73 (master, 2026-08-22; `fetch github:istio/istio`). What the xDS
streams would carry is written statically: listeners, routes and clusters into the
bootstrap, the ECDS resource into a file the filter's `config_discovery` watches (istiod
serves it over ADS; the agent rewrites it first, see `_agent_rewrite`). Istio's own
proxy filters that upstream Envoy lacks (`istio.alpn`, `istio.stats`, metadata
exchange) are left out: none of them reads or changes these requests. A host name
becomes the address `site.addresses` gives it, where Envoy would resolve it by DNS (a
ServiceEntry's `resolution: DNS`) or get it from EDS (a Kubernetes Service).

Nothing is set that the resources cannot express: in particular the Wasm filter of a
WasmPlugin or TrafficExtension has no `allow_on_headers_stop_iteration` (no field of
theirs reaches it); the EnvoyFilter's own patch sets it.
"""

import copy
import json
from pathlib import Path

WASM_TYPE = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"
RBAC_TYPE = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"
# pilot/pkg/model/extensions.go: TrafficExtensionResourceNamePrefix.
TE_PREFIX = "extensions.istio.io/trafficextension/"
# pilot/pkg/config/kube/extensions/translate.go: syntheticMarker.
WASMPLUGIN_MARKER = "~istio-translated-wasmplugin"
# The Gateway the rendered VirtualService binds to, as a mesh admin declares it (one HTTP
# server on the gateway's port for the VirtualService's hosts).
GATEWAY_NAME = "chokepoint-gateway"


def wasmplugin(docs, site):
    """A WasmPlugin: istiod turns it into a synthetic TrafficExtension first
    (pilot/pkg/config/kube/extensions/translate.go: translateWasmPlugin, named
    `<name>~istio-translated-wasmplugin`), then builds it as one."""
    (wp,) = _kind(docs, "WasmPlugin")
    s = wp["spec"]
    wasm = {k: s[k] for k in ("url", "sha256", "imagePullPolicy", "imagePullSecret", "pluginConfig",
                               "pluginName", "failStrategy", "vmConfig", "type") if k in s}
    te = {"metadata": {**wp["metadata"], "name": wp["metadata"]["name"] + WASMPLUGIN_MARKER},
          "spec": {"phase": s.get("phase"), "priority": s.get("priority"), "wasm": wasm}}
    return _extension_gateway(docs, site, te)


def trafficextension(docs, site):
    """A TrafficExtension with `spec.wasm`."""
    (te,) = _kind(docs, "TrafficExtension")
    return _extension_gateway(docs, site, te)


def envoyfilter(docs, site):
    """The gateway Istio builds for the VirtualService-less port, with the EnvoyFilter's
    patches applied (pilot/pkg/networking/core/envoyfilter/: cluster_patch.go
    ApplyClusterMerge for CLUSTER ADD, listener_patch.go patchHTTPFilter for HTTP_FILTER
    INSERT_BEFORE/MERGE, rc_patch.go patchVirtualHosts for VIRTUAL_HOST ADD)."""
    (ef,) = _kind(docs, "EnvoyFilter")
    patches = copy.deepcopy(ef["spec"]["configPatches"])
    _mount_wasm(patches, site)
    filters = _gateway_http_filters([])
    clusters = []
    # gateway.go: buildGatewayHTTPRouteConfig: with no VirtualService on the server, one
    # `blackhole:<port>` vhost for `*` with no routes (404 NR).
    vhosts = [{"name": f"blackhole:{site.listen_port}", "domains": ["*"], "routes": []}]
    for p in patches:
        assert p["match"].get("context") == "GATEWAY", f"patch for another context: {p['match']}"
        op, value = p["patch"]["operation"], p["patch"]["value"]
        where = (p["applyTo"], op)
        if where == ("CLUSTER", "ADD"):
            clusters.append(_resolve(value, site))
        elif where == ("HTTP_FILTER", "INSERT_BEFORE"):
            sub = p["match"]["listener"]["filterChain"]["filter"]["subFilter"]["name"]
            at = next(i for i, f in enumerate(filters) if f["name"] == sub)
            filters.insert(at, value)
        elif where == ("HTTP_FILTER", "MERGE"):
            sub = p["match"]["listener"]["filterChain"]["filter"]["subFilter"]["name"]
            target = next(f for f in filters if f["name"] == sub)
            _proto_merge(target, value)
        elif where == ("VIRTUAL_HOST", "ADD"):
            vhosts.append(value)
        else:
            raise ValueError(f"unexpected EnvoyFilter patch {where}")
    route_config = _route_config(site, vhosts)
    return _bootstrap(site, filters, route_config, clusters, _access_logs(docs))


# --------------------------------------------------------------------------------------
# The Wasm filter of a TrafficExtension (and so of a WasmPlugin).

def _extension_gateway(docs, site, te):
    ns, name = te["metadata"]["namespace"], te["metadata"]["name"]
    resource_name = TE_PREFIX + f"{ns}.{name}"
    spec = te["spec"]
    assert spec.get("phase") == "AUTHN", f"phase {spec.get('phase')}: only AUTHN is placed here"
    # extension/extensionfilter.go: toEnvoyHTTPTrafficExtension: a Wasm extension is an
    # HTTP filter named after the resource, its config by ECDS (defaultConfigSource: ADS,
    # initial_fetch_timeout 0, so the listener waits for it), Wasm or RBAC type.
    ecds_path = Path(site.run_dir) / "ecds.json"
    wasm_filter = {
        "name": resource_name,
        "config_discovery": {
            "config_source": {"path_config_source": {"path": str(ecds_path)},
                              "resource_api_version": "V3", "initial_fetch_timeout": "0s"},
            "type_urls": [WASM_TYPE, RBAC_TYPE],
        },
    }
    # extension/extensionfilter.go: InsertedTrafficExtensionConfigurations: the ECDS
    # resource, a TypedExtensionConfig of that name holding the built Wasm filter.
    resource = {"@type": "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
                "name": resource_name, "typed_config": _agent_rewrite(_http_wasm(te), site)}
    ecds_path.write_text(json.dumps({"version_info": "1", "resources": [resource]}))
    # listener_builder.go: buildHTTPConnectionManager: the AUTHN phase's extensions come
    # first (after ext_authz of CUSTOM AuthorizationPolicies, none here), before Istio's
    # authn, authz and stats filters.
    filters = _gateway_http_filters([wasm_filter])
    route_config = _route_config(site, _gateway_vhosts(docs, site))
    clusters = _registry_clusters(docs, site, spec["wasm"].get("pluginConfig", {}))
    return _bootstrap(site, filters, route_config, clusters, _access_logs(docs))


def _http_wasm(te):
    """pilot/pkg/model/extensions.go: TrafficExtensionWrapper.buildWasmConfig and
    buildVMConfig, for an HTTP plugin."""
    ns, name = te["metadata"]["namespace"], te["metadata"]["name"]
    w = te["spec"]["wasm"]
    assert w.get("type", "HTTP") == "HTTP"
    config = {
        # Name: namespace.name; RootId: pluginName.
        "name": f"{ns}.{name}",
        "root_id": w.get("pluginName", ""),
        "vm_config": _vm_config(te, w),
    }
    # pluginConfig, when not empty, as its JSON in a StringValue (protomarshal.ToJSON).
    if w.get("pluginConfig"):
        config["configuration"] = {"@type": "type.googleapis.com/google.protobuf.StringValue",
                                   "value": json.dumps(w["pluginConfig"])}
    # failStrategy: FAIL_OPEN, FAIL_CLOSE, FAIL_RELOAD map one to one; unset leaves Envoy's
    # default (FAIL_CLOSED).
    policy = {"FAIL_OPEN": "FAIL_OPEN", "FAIL_CLOSE": "FAIL_CLOSED", "FAIL_RELOAD": "FAIL_RELOAD"}
    if w.get("failStrategy") in policy:
        config["failure_policy"] = policy[w["failStrategy"]]
    return {"@type": WASM_TYPE, "config": config}


def _vm_config(te, w):
    """buildVMConfig: runtime v8 (defaultRuntime), no vm_id; the code as buildDataSource
    makes it (a `file://` URL is a local file, anything else a remote fetch with cluster
    `_` and the sha256); the image pull settings and resource version as ISTIO_META_*
    key_values for the agent; vmConfig.env: INLINE as key_values, HOST as host_env_keys."""
    url = w["url"] if "://" in w["url"] else "oci://" + w["url"]
    if url.startswith("file://"):
        code = {"local": {"filename": url[len("file://"):]}}
    else:
        code = {"remote": {"http_uri": {"uri": url, "cluster": "_", "timeout": "30s"},
                           "sha256": w.get("sha256", "")}}
    key_values = {}
    if w.get("imagePullSecret"):
        key_values["ISTIO_META_WASM_IMAGE_PULL_SECRET"] = w["imagePullSecret"]
    if w.get("imagePullPolicy"):
        key_values["ISTIO_META_WASM_IMAGE_PULL_POLICY"] = w["imagePullPolicy"]
    key_values["ISTIO_META_WASM_PLUGIN_RESOURCE_VERSION"] = te["metadata"].get("resourceVersion", "1")
    env = {"key_values": key_values}
    entries = (w.get("vmConfig") or {}).get("env") or []
    if entries:
        for e in entries:
            if e.get("valueFrom", "INLINE") == "INLINE":
                key_values[e["name"]] = e.get("value", "")
        env["host_env_keys"] = [e["name"] for e in entries if e.get("valueFrom") == "HOST"]
    return {"runtime": "envoy.wasm.runtime.v8", "code": code, "environment_variables": env}


def _agent_rewrite(wasm, site):
    """What istio-agent does to the ECDS resource before Envoy sees it
    (pkg/wasm/convert.go: rewriteVMConfig): it fetches a remote module into its cache
    (checking the sha256 when one is given: for OCI, the image manifest's digest), points
    `code` at the local file, and strips the ISTIO_META_* key_values (dropping the
    environment block when nothing is left). The cached file is the site's .wasm."""
    wasm = copy.deepcopy(wasm)
    vm = wasm["config"]["vm_config"]
    remote = vm["code"].get("remote")
    if remote is not None:
        if remote["http_uri"]["uri"].startswith(("http://", "https://")) and remote["sha256"]:
            assert remote["sha256"] == site.wasm_sha256, "the module's sha256 differs from the file's"
        vm["code"] = {"local": {"filename": str(site.wasm_path)}}
    env = vm.get("environment_variables", {})
    kv = {k: v for k, v in env.get("key_values", {}).items() if not k.startswith("ISTIO_META_")}
    if kv:
        env["key_values"] = kv
    else:
        env.pop("key_values", None)
    if not env.get("host_env_keys") and not kv:
        vm.pop("environment_variables", None)
    return wasm


# --------------------------------------------------------------------------------------
# The gateway: listener, HTTP connection manager, routes.

def _gateway_http_filters(phase_authn):
    """listener_builder.go: buildHTTPConnectionManager's chain on a gateway, as far as
    upstream Envoy has the filters: AUTHN-phase extensions, (Istio authn/authz: none
    without RequestAuthentication/AuthorizationPolicy), grpc_stats, fault, cors, router
    (xds/filters/filters.go: GrpcStats, Fault, Cors, BuildRouterFilter)."""
    def typed(name, t, **cfg):
        return {"name": name, "typed_config": {"@type": t, **cfg}}
    return [
        *phase_authn,
        typed("envoy.filters.http.grpc_stats", "type.googleapis.com/envoy.extensions.filters.http.grpc_stats.v3.FilterConfig",
              emit_filter_state=True, stats_for_all_methods=False),
        typed("envoy.filters.http.fault", "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"),
        typed("envoy.filters.http.cors", "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors"),
        typed("envoy.filters.http.router", "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"),
    ]


def _route_config(site, vhosts):
    # gateway.go: buildGatewayHTTPRouteConfig: named after the port (`http.<port>`),
    # clusters not validated, the port ignored in host matching.
    return {"name": f"http.{site.listen_port}", "virtual_hosts": vhosts,
            "validate_clusters": False, "ignore_port_in_host_matching": True}


def _gateway_vhosts(docs, site):
    """gateway.go: buildGatewayHTTPRouteConfig: per host of a VirtualService bound to the
    gateway, a vhost `<host>:<port>` with the VirtualService's routes in order
    (route/route.go: TranslateRoute)."""
    vhosts = []
    for vs in _kind(docs, "VirtualService"):
        if GATEWAY_NAME not in vs["spec"].get("gateways", []):
            continue
        routes = [_translate_route(r) for r in vs["spec"]["http"]]
        for host in vs["spec"]["hosts"]:
            vhosts.append({"name": f"{host}:{site.listen_port}", "domains": [host],
                           "routes": routes, "include_request_attempt_count": True})
    assert vhosts, f"no VirtualService bound to {GATEWAY_NAME}"
    return vhosts


def _translate_route(r):
    """route/route.go: TranslateRoute for one http route of a VirtualService."""
    out = {"match": {"prefix": "/"}}
    matches = r.get("match") or [{}]
    assert len(matches) == 1, "one match per route here"
    # TranslateRouteMatch / translateHeaderMatch: an exact header match.
    headers = [{"name": name, "string_match": {"exact": m["exact"]}}
               for name, m in (matches[0].get("headers") or {}).items()]
    if headers:
        out["match"]["headers"] = headers
    if "directResponse" in r:
        # ApplyDirectResponse.
        out["direct_response"] = {"status": r["directResponse"]["status"]}
        return out
    # TranslateHeadersOperations: request.remove -> request_headers_to_remove.
    remove = ((r.get("headers") or {}).get("request") or {}).get("remove")
    if remove:
        out["request_headers_to_remove"] = remove
    (dest,) = r["route"]
    d = dest["destination"]
    action = {
        # GetDestinationCluster: outbound|<port>||<host>.
        "cluster": f"outbound|{d['port']['number']}||{d['host']}",
    }
    # setTimeout: the VirtualService's timeout, also as max_grpc_timeout; 0s without one.
    timeout = r.get("timeout", "0s")
    action["timeout"] = timeout
    action["max_grpc_timeout"] = timeout
    # applyHTTPRouteDestination: only rewrite.authority rewrites the Host
    # (host_rewrite_literal); without it the upstream gets the client's.
    authority = (r.get("rewrite") or {}).get("authority")
    if authority:
        action["host_rewrite_literal"] = authority
    # retry/retry.go: ConvertPolicy (DefaultPolicy without `retries`).
    retries = r.get("retries")
    if retries is None:
        action["retry_policy"] = _retry_policy(2, "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes", [])
    elif retries.get("attempts", 0) > 0:
        retry_on, codes = _parse_retry_on(retries.get("retryOn", ""))
        action["retry_policy"] = _retry_policy(
            retries["attempts"], retry_on or "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes", codes)
    out["route"] = action
    return out


def _parse_retry_on(text):
    """retry/retry.go: parseRetryOn: numbers become retriable status codes."""
    codes, names = [], []
    for part in (p.strip() for p in text.split(",")):
        if part.isdigit():
            codes.append(int(part))
        elif part:
            names.append(part)
    retry_on = ",".join(names)
    if codes and "retriable-status-codes" not in retry_on:
        retry_on += ",retriable-status-codes"
    return retry_on, codes


def _retry_policy(attempts, retry_on, codes):
    # retry/retry.go: newRetryPolicy: previous_hosts predicate, 5 host selection attempts.
    p = {"retry_on": retry_on, "num_retries": attempts, "host_selection_retry_max_attempts": 5,
         "retry_host_predicate": [{"name": "envoy.retry_host_predicates.previous_hosts",
                                   "typed_config": {"@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"}}]}
    if codes:
        p["retriable_status_codes"] = codes
    return p


def _access_logs(docs):
    """The HCM's access logs from the Telemetry API (listener_builder.go:
    buildHTTPConnectionManager -> accesslog.go: setHTTPAccessLog): each provider a
    Telemetry's accessLogging names, looked up in meshConfig.extensionProviders; an
    envoyFileAccessLog one is a file access log of its path and text format, with a
    newline added when missing (model/telemetry_logging.go: fileAccessLogFromTelemetry,
    buildFileAccessTextLogFormat, fileAccessLogFormat). Without Telemetry, none (Istio's
    default mesh config has no accessLogFile)."""
    mesh = next((d["meshConfig"] for d in docs if "meshConfig" in d and "kind" not in d), {})
    providers = {p["name"]: p for p in mesh.get("extensionProviders", [])}
    logs = []
    for t in _kind(docs, "Telemetry"):
        for al in t["spec"].get("accessLogging", []):
            if al.get("disabled"):
                continue
            for ref in al.get("providers", []):
                prov = providers.get(ref["name"])
                assert prov is not None, f"Telemetry names provider {ref['name']}, meshConfig has none"
                f = prov["envoyFileAccessLog"]
                text = (f.get("logFormat") or {}).get("text")
                assert text, "only a text format is translated here"
                if not text.endswith("\n"):
                    text += "\n"
                logs.append({"name": "envoy.access_loggers.file", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
                    "path": f.get("path") or "/dev/stdout",
                    "log_format": {"text_format_source": {"inline_string": text}}}})
    return logs


def _bootstrap(site, http_filters, route_config, clusters, access_logs):
    """gateway.go: buildGatewayListeners / buildGatewayConnectionManager and
    listener_builder.go: buildHTTPConnectionManager: a plain-HTTP server on the port,
    use_remote_address (a gateway is the edge), normalize_path (mesh default BASE),
    escaped slashes kept, no stream idle timeout, websocket upgrades, UUID request ids."""
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": f"outbound_0.0.0.0_{site.listen_port}",
        "codec_type": "AUTO",
        "use_remote_address": True,
        "normalize_path": True,
        "path_with_escaped_slashes_action": "KEEP_UNCHANGED",
        "stream_idle_timeout": "0s",
        "upgrade_configs": [{"upgrade_type": "websocket"}],
        "request_id_extension": {"typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.request_id.uuid.v3.UuidRequestIdConfig",
            "use_request_id_for_trace_sampling": True}},
        "access_log": access_logs,
        "route_config": route_config,
        "http_filters": http_filters,
    }
    return {
        "node": {"id": "router~127.0.0.1~istio-ingressgateway.istio-system~istio-system.svc.cluster.local",
                 "cluster": "istio-ingressgateway.istio-system"},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": site.admin_port}}},
        "static_resources": {
            "listeners": [{
                # gateway.go: getListenerName: <bind>_<port>.
                "name": "gateway",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": site.listen_port}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}],
            }],
            "clusters": clusters,
        },
    }


# --------------------------------------------------------------------------------------
# Clusters: ServiceEntry + DestinationRule, and Kubernetes Services.

def _registry_clusters(docs, site, plugin_config):
    """cluster.go: buildOutboundClusters: one cluster per host and port of every service
    the gateway sees (without PILOT_FILTER_GATEWAY_CLUSTER_CONFIG, which is off by
    default, all of them, routed to or not: so the JWKS host's cluster exists too)."""
    drs = {d["spec"]["host"]: d for d in _kind(docs, "DestinationRule")}
    secrets = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "Secret"}
    out = []
    for se in _kind(docs, "ServiceEntry"):
        spec = se["spec"]
        assert spec.get("resolution") == "DNS" and spec.get("location") == "MESH_EXTERNAL"
        for host in spec["hosts"]:
            for port in spec["ports"]:
                c = _cluster(f"outbound|{port['number']}||{host}", host, port["number"], site)
                dr = drs.get(host)
                tls = ((dr or {}).get("spec", {}).get("trafficPolicy") or {}).get("tls")
                if tls:
                    c["transport_socket"] = _upstream_tls(tls, secrets, site)
                out.append(c)
    # The policy service is a Kubernetes Service in the mesh: istiod builds the same
    # `outbound|<port>||<host>` cluster for it, its endpoints by EDS the pods' targetPort
    # (the site's Service endpoints). Plain HTTP: the policy service runs without a
    # sidecar (with one, auto mTLS).
    svc_host, _, svc_port = plugin_config["policy"]["authority"].rpartition(":")
    if not any(c["name"] == plugin_config["policy"]["cluster"] for c in out):
        out.append(_cluster(plugin_config["policy"]["cluster"], svc_host, int(svc_port), site))
    return out


def _cluster(name, host, port, site):
    """cluster_builder.go: buildCluster: connect timeout (mesh default 10s), round robin,
    the endpoints (STRICT_DNS on the host name for a DNS ServiceEntry; the address the
    site resolves it to here; a Kubernetes Service's pod, by EDS)."""
    ip, port = site.endpoint(host, port)
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "10s",
        "lb_policy": "ROUND_ROBIN",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {
            "address": {"socket_address": {"address": ip, "port_value": port}}}}]}]},
    }


def _upstream_tls(tls, secrets, site):
    """cluster_tls.go: buildUpstreamClusterTLSContext / constructUpstreamTLS for SIMPLE:
    the DestinationRule's sni, and a combined validation context: the subjectAltNames as
    exact SAN matchers plus the roots by SDS (the Secret `credentialName` names, its
    `cacert` key, for a gateway; else the system roots). The SDS secret is written as a
    file the validation context reads."""
    assert tls["mode"] == "SIMPLE", f"TLS mode {tls['mode']}"
    if tls.get("credentialName"):
        pem = secrets[tls["credentialName"]]["stringData"]["cacert"]
        ca = Path(site.run_dir) / f"{tls['credentialName']}.pem"
        ca.write_text(pem)
        trusted = {"filename": str(ca)}
    else:
        trusted = {"filename": "/etc/ssl/certs/ca-certificates.crt"}
    ctx = {
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        "common_tls_context": {"validation_context": {
            "trusted_ca": trusted,
            "match_typed_subject_alt_names": [{"san_type": "DNS", "matcher": {"exact": n}}
                                              for n in tls.get("subjectAltNames", [])]}},
    }
    if tls.get("sni"):
        ctx["sni"] = tls["sni"]
    return {"name": "envoy.transport_sockets.tls", "typed_config": ctx}


def _resolve(cluster, site):
    """An EnvoyFilter's own cluster, with its DNS names as the site resolves them (a
    Service's name: its cluster IP, which kube-proxy forwards to a pod's targetPort)."""
    c = copy.deepcopy(cluster)
    if c.get("type") in ("STRICT_DNS", "LOGICAL_DNS"):
        c["type"] = "STATIC"
        c.pop("dns_lookup_family", None)
    for group in (c.get("load_assignment") or {}).get("endpoints", []):
        for ep in group.get("lb_endpoints", []):
            sa = ep["endpoint"]["address"]["socket_address"]
            if sa["address"] in site.addresses or (sa["address"], sa["port_value"]) in site.services:
                sa["address"], sa["port_value"] = site.endpoint(sa["address"], sa["port_value"])
    return c


def _mount_wasm(node, site):
    """The .wasm path an EnvoyFilter's Wasm filters name is where the gateway Deployment
    mounts the file (a volume); the site's file is mounted there."""
    if isinstance(node, dict):
        local = (node.get("code") or {}).get("local")
        if "runtime" in node and local and "filename" in local:
            local["filename"] = str(site.wasm_path)
        for v in node.values():
            _mount_wasm(v, site)
    elif isinstance(node, list):
        for v in node:
            _mount_wasm(v, site)


def _proto_merge(dst, src):
    """Protobuf merge as Istio's MERGE does (proto.Merge): fields set in src replace
    scalars, merge messages, append to lists."""
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            _proto_merge(dst[k], v)
        elif isinstance(v, list) and isinstance(dst.get(k), list):
            dst[k].extend(v)
        else:
            dst[k] = copy.deepcopy(v)


def _kind(docs, kind):
    return [d for d in docs if d.get("kind") == kind]
