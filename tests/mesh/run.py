#!/usr/bin/env python3
"""The `mesh` test layer: every mesh delivery carries real traffic in real Envoy 1.40.

Writes a mesh policy file (providers at https://<name>.mesh.test:<port>, the IdP's JWKS
over https, the policy service at its Kubernetes Service), starts Redis and the policy
service from the Kubernetes manifests rendered from it (deployment.py, pod.py: their
probes, Services, Secrets and limit sets checked on the way), the mock provider and the
mock identity provider on 127.0.0.1, with a TLS front (tls_front.py, a test CA) so the
provider and JWKS hosts are reached over TLS, by SNI, with a certificate for their name.
Renders each delivery target with chokepoint-config,
translates the rendered resources into the Envoy configuration the mesh would build
(istio.py, envoy_gateway.py), starts Envoy with it and runs the same checks through each:
a completion (OpenAI chat, Anthropic messages), a stream whose chunks arrive as sent, 401s,
a 429 from a limit set through the admin API, the JWKS fetched through the mesh's cluster,
each request's usage record in the mesh's access log and in the ledger, the policy
service reached through the mesh's cluster at the port its rendered Service maps; then
what each delivery does with a body's model for another provider of its API and with a
compressed answer: served where the filter holds the headers, else a quick 400 and an
estimate. The gateway's own environment comes from its rendered settings (Istio's
gateway patch, Envoy Gateway's EnvoyProxy) and the Secret the test creates for it.

Prints each check, then `N passed, M failed`; exit 1 on any failure, with the logs.
Usage: run.py [TARGET...]   (default: every delivery)
"""

import datetime
import hashlib
import hmac
import http.client
import importlib
import importlib.util
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import types
import urllib.error
import urllib.request
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from deployment import Deployment, secret  # noqa: E402
from mocks import Mocks  # noqa: E402
from pod import PodError, resolve_env  # noqa: E402
from proc import Proc, free_port  # noqa: E402
from tls_front import TlsFront, make_ca  # noqa: E402

# site.py shares its name with Python's own `site` module, imported at start-up: load it
# by path.
_spec = importlib.util.spec_from_file_location("mesh_site", HERE / "site.py")
_site = sys.modules["mesh_site"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_site)
Site = _site.Site

ROOT = HERE.parent.parent
BIN = Path(os.environ.get("CHOKEPOINT_BIN_DIR", ROOT / "target/debug"))
WASM = Path(os.environ.get("CHOKEPOINT_WASM", ROOT / "target/wasm/chokepoint_filter.wasm"))
ENVOY = Path(os.environ.get("CHOKEPOINT_ENVOY", ROOT / ".venv/bin/envoy"))
ISSUER = "https://idp.mesh.test"
GATEWAY_HOST = "ai.mesh.test"
NAMESPACE = "chokepoint"
POLICY_HOST = f"chokepoint-policy.{NAMESPACE}.svc.cluster.local"
# The policy service's Service port (the gateway's) and its admin Service.
POLICY_PORT = 8081
POLICY_ADMIN = (f"chokepoint-policy-admin.{NAMESPACE}.svc.cluster.local", 8082)
SECRETS = {"policy_token": "chokepoint-policy-token", "admin_token": "chokepoint-admin-token",
           "gateway_keys": "chokepoint-gateway-keys"}
# Where each mesh runs its gateway pods, which read the gateway Secret.
GATEWAY_NAMESPACE = {"istio": "istio-system", "envoy_gateway": "envoy-gateway-system"}
# A limit set of the policy file, for the ConfigMap the Deployment mounts: the service
# reads it at start.
SEEDED = {"scope": "model:mesh-seeded", "rpm": 7}
# How long a request may take before it counts as hung.
REQUEST_TIMEOUT = 5

# (render target, the module that translates it, its function). Each renders from the
# same policy file; `extra` targets are rendered alongside (what the mesh admin also
# applies).
DELIVERIES = [
    ("istio-envoyfilter", "istio", "envoyfilter"),
    ("istio-wasmplugin", "istio", "wasmplugin"),
    ("istio-trafficextension", "istio", "trafficextension"),
    ("envoy-gateway", "envoy_gateway", "bootstrap"),
]
EXTRA_TARGETS = {"istio": ["istio-meshconfig"]}


class Checks:
    def __init__(self):
        self.passed = self.failed = 0

    def check(self, ok, what, detail=""):
        if ok:
            self.passed += 1
            print(f"  ok    {what}", flush=True)
        else:
            self.failed += 1
            print(f"  FAIL  {what}{': ' + detail if detail else ''}", flush=True)
        return ok


def user_uuid(salt, subject):
    """filter/src/identity/pseudonym.rs: user_uuid, the UUID the gateway derives."""
    iss = ISSUER.encode()
    d = bytearray(hmac.new(salt.encode(), struct.pack(">Q", len(iss)) + iss + subject.encode(),
                           hashlib.sha256).digest()[:16])
    d[6] = (d[6] & 0x0F) | 0x80
    d[8] = (d[8] & 0x3F) | 0x80
    h = d.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def policy_file(path, tls_port, ca, access_log):
    """The mesh deployment's policy file (envoy/examples/policy.yaml's vocabulary)."""
    doc = {
        "version": 1,
        "gateway": {"failure_mode": "closed", "policy_timeout_ms": 1000, "key_injection": "upstream",
                    "uuid_salt_env": "CHOKEPOINT_UUID_SALT", "default_max_output_tokens": 64,
                    "token_sources": [{"header": "authorization", "scheme": "Bearer"}, {"header": "x-api-key"}]},
        "issuers": [{"issuer": ISSUER, "audiences": ["chokepoint"],
                     "jwks": {"uri": f"https://idp.mesh.test:{tls_port}/jwks.json", "ca_file": str(ca),
                              "refresh_secs": 300},
                     "claims": {"tenant": "tenant", "groups": "groups"}}],
        "providers": [
            {"name": "openai", "kind": "openai", "base_url": f"https://openai.mesh.test:{tls_port}/v1",
             "key_env": "OPENAI_API_KEY", "ca_file": str(ca)},
            {"name": "anthropic", "kind": "anthropic", "base_url": f"https://anthropic.mesh.test:{tls_port}",
             "key_env": "ANTHROPIC_API_KEY", "ca_file": str(ca)},
            # A second provider of the OpenAI API (a self-hosted server), which a model
            # named in the body reaches only where the headers can wait for the body.
            {"name": "vllm", "kind": "openai", "base_url": f"https://vllm.mesh.test:{tls_port}/v1",
             "key_env": "VLLM_API_KEY", "ca_file": str(ca)},
        ],
        "models": {"routes": [{"model": "gpt-*", "providers": ["openai"]},
                              {"model": "claude-*", "providers": ["anthropic"]},
                              {"model": "llama-*", "providers": ["vllm"]}]},
        "prices": {"file": str(ROOT / "envoy/prices.yaml")},
        "limits": [SEEDED],
        "policy_service": {"url": f"http://{POLICY_HOST}:{POLICY_PORT}"},
        "audit": {"access_log": str(access_log), "usage": {"flush_ms": 200}},
        "deploy": {"namespace": NAMESPACE, "hostnames": [GATEWAY_HOST], "secrets": SECRETS,
                   "wasm_image": "oci://registry.mesh.test/chokepoint/filter:test",
                   "istio": {"namespace": "istio-system", "selector": {"istio": "ingressgateway"},
                             "fail_strategy": "FAIL_CLOSE"},
                   "envoy_gateway": {"gateway": "eg", "proxy_namespace": GATEWAY_NAMESPACE["envoy_gateway"]}},
    }
    path.write_text(json.dumps(doc, indent=1))


def render(policy, target):
    out = subprocess.run([BIN / "chokepoint-config", "render", str(policy), target],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"chokepoint-config render {target} failed:\n{out.stderr}")
    return [d for d in yaml.safe_load_all(out.stdout) if d is not None]


# The access log's flush interval each mesh's proxies run with: istio-agent passes
# `--file-flush-interval-msec 1000` itself and takes no other (pkg/envoy/proxy.go: args),
# Envoy Gateway passes none of its own and appends the EnvoyProxy's `spec.extraArgs`
# (internal/infrastructure/common/proxy_args.go: BuildProxyArgs).
ISTIO_AGENT_FLAGS = ["--file-flush-interval-msec", "1000"]


def proxy_flags(module, docs):
    """The Envoy flags the mesh's control plane starts its proxy with, of those that
    change what the checks see (the access log's flush interval)."""
    if module == "istio":
        return ISTIO_AGENT_FLAGS
    (proxy,) = [d for d in docs if d["kind"] == "EnvoyProxy"]
    return list(proxy["spec"].get("extraArgs", []))


class Gateway:
    """One Envoy, started from a translated bootstrap with the mesh's flags."""

    def __init__(self, site, bootstrap, env, flags):
        cfg = site.run_dir / "envoy.json"
        cfg.write_text(json.dumps(bootstrap, indent=1))
        self.site = site
        self.proc = Proc("envoy", [str(ENVOY), "-c", str(cfg), "--use-dynamic-base-id", "--concurrency", "1",
                                   "-l", "warn", "--component-log-level", "wasm:info", *flags],
                         site.run_dir / "envoy.log", env)
        self.admin = f"http://127.0.0.1:{site.admin_port}"
        deadline = time.monotonic() + 30
        while get(f"{self.admin}/ready")[0] != 200:
            if not self.proc.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"Envoy did not become ready:\n{self.proc.tail()}")
            time.sleep(0.1)

    def stat(self, name):
        # The filter is a regular expression; cluster names hold `|` and `.`.
        _, text = get(f"{self.admin}/stats?filter={urllib.request.quote('^' + re.escape(name) + '$')}")
        return sum(int(line.rsplit(": ", 1)[1]) for line in text.splitlines()
                   if line.rsplit(": ", 1)[-1].isdigit())

    def stop(self):
        self.proc.stop()


def get(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=REQUEST_TIMEOUT) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except OSError as e:
        return 0, f"{type(e).__name__}: {e}"


def call(port, method, path, token=None, body=None, headers=None, stream=False):
    """(status, body, chunk arrival times) of one request to the gateway; status 0 when
    nothing answered within REQUEST_TIMEOUT (a hang)."""
    h = {"host": GATEWAY_HOST, **(headers or {})}
    if token:
        h["authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    if data is not None:
        h["content-type"] = "application/json"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
    try:
        conn.request(method, path, body=data, headers=h)
        r = conn.getresponse()
        chunks, times = [], []
        while True:
            c = r.read1(65536) if stream else r.read()
            if not c:
                break
            chunks.append(c)
            times.append(time.monotonic())
            if not stream:
                break
        return r.status, b"".join(chunks).decode(errors="replace"), times
    except OSError as e:
        return 0, f"no answer in {REQUEST_TIMEOUT}s ({type(e).__name__}: {e})", []
    finally:
        conn.close()


def chat(model="gpt-4o-mini", stream=False):
    return {"model": model, "max_tokens": 20, "stream": stream,
            "messages": [{"role": "user", "content": "hello mesh"}]}


def gateway_env(policy, docs, module, secrets):
    """The gateway container's environment as its mesh sets it from the rendered resources
    and the test's Secrets: Istio's from the gateway patch (`istio-gateway-keys`: envFrom
    on the `istio-proxy` container), Envoy Gateway's from the EnvoyProxy's
    `spec.provider.kubernetes.envoyDeployment.container.env` (its proxy Deployment's
    container: internal/infrastructure/kubernetes/proxy/resource.go: expectedProxyContainers,
    expectedContainerEnv)."""
    ns = GATEWAY_NAMESPACE[module]
    if module == "istio":
        (patch,) = render(policy, "istio-gateway-keys")
        (container,) = [c for c in patch["spec"]["template"]["spec"]["containers"] if c["name"] == "istio-proxy"]
        return resolve_env(container.get("env"), secrets, ns, env_from=container.get("envFrom", []))
    (proxy,) = [d for d in docs if d["kind"] == "EnvoyProxy"]
    container = proxy["spec"].get("provider", {}).get("kubernetes", {}).get("envoyDeployment", {}).get("container", {})
    return resolve_env(container.get("env"), secrets, ns, env_from=container.get("envFrom", []))


def run_delivery(target, module, fn, env, c):
    """Renders `target`, translates it, starts Envoy and runs every check through it."""
    run_dir = env["base"] / target
    run_dir.mkdir()
    site = Site(run_dir=run_dir, listen_port=free_port(), admin_port=free_port(), wasm_path=WASM,
                wasm_sha256=env["wasm_sha256"], addresses=env["addresses"], services=env["services"],
                access_log=run_dir / "usage.log")
    policy = run_dir / "policy.yaml"
    policy_file(policy, env["tls"].port, env["ca"], site.access_log)
    docs = render(policy, target)
    for extra in EXTRA_TARGETS.get(module, []):
        docs += render(policy, extra)
    bootstrap = getattr(importlib.import_module(module), fn)(docs, site)
    svc, tokens, salt = env["svc"], env["tokens"], env["salt"]
    env["idp_handshakes"] = env["tls"].handshakes["idp.mesh.test"]
    gw = Gateway(site, bootstrap, dict(gateway_env(policy, docs, module, env["secrets"]), PATH=os.environ["PATH"]),
                 proxy_flags(module, docs))
    print(f"{target}: Envoy on :{site.listen_port} ({module}.{fn})", flush=True)
    failed_before = c.failed
    try:
        checks(target, site, gw, svc, env, tokens, salt, c)
    finally:
        gw.stop()
        if c.failed > failed_before:
            print(f"----- {target}: envoy log -----\n{gw.proc.tail(12000)}", flush=True)


def checks(target, site, gw, svc, env, tokens, salt, c):
    port = site.listen_port
    # The cluster each mesh has for the IdP's host: Istio's for its ServiceEntry, the
    # EnvoyFilter's own, Envoy Gateway's for the HTTPRoute's fourth rule (openai, anthropic,
    # vllm, then the JWKS host).
    jwks_cluster = {"istio-envoyfilter": "jwks_0",
                    "envoy-gateway": "httproute/chokepoint/chokepoint/rule/3"}.get(
        target, f"outbound|{env['tls'].port}||idp.mesh.test")
    # The IdP's JWKS, fetched by the filter through the cluster the mesh would have, at
    # start: until then its tokens get 503 jwks_unavailable (as the local stack, wait).
    deadline = time.monotonic() + 20
    while True:
        code, body, _ = call(port, "GET", "/v1/models", token=tokens[f"{target}-models"])
        if "jwks_unavailable" not in body or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    c.check(code == 200, f"{target}: GET /v1/models with a token of the mock IdP -> 200", f"{code} {body[:300]}")
    c.check(gw.stat(f"cluster.{jwks_cluster}.upstream_rq_200") >= 1,
            f"{target}: the JWKS came through cluster {jwks_cluster}", f"stat {gw.stat(f'cluster.{jwks_cluster}.upstream_rq')}")
    c.check(env["tls"].handshakes["idp.mesh.test"] > env["idp_handshakes"],
            f"{target}: ... over TLS to idp.mesh.test (SNI, its certificate)", f"{env['tls'].refused[-3:]}")
    code, body, _ = call(port, "GET", "/v1/models")
    c.check(code == 401, f"{target}: no token -> 401", f"{code} {body[:200]}")
    code, body, _ = call(port, "POST", "/v1/chat/completions", token=tokens["forged"], body=chat())
    c.check(code == 401, f"{target}: a token the IdP did not sign -> 401", f"{code} {body[:200]}")

    subject = f"{target}-user"
    code, body, _ = call(port, "POST", "/v1/chat/completions", token=tokens[subject], body=chat())
    c.check(code == 200 and '"choices"' in body, f"{target}: OpenAI chat completion -> 200", f"{code} {body[:300]}")
    # A provider serves its API on its own name: the request must carry it as Host, as
    # the client's (the gateway's name) would not be. With or without the port: Gateway
    # API's URLRewrite hostname cannot hold one (real providers are on 443, where the
    # two are the same).
    host = _last_host(svc, "/v1/chat/completions")
    c.check(host.rsplit(":", 1)[0] == "openai.mesh.test",
            f"{target}: ... reached the provider with Host openai.mesh.test", f"Host {host}")
    code, body, _ = call(port, "POST", "/v1/messages", token=tokens[subject],
                         headers={"anthropic-version": "2023-06-01"},
                         body={"model": "claude-sonnet-4-5", "max_tokens": 20,
                               "messages": [{"role": "user", "content": "hello mesh"}]})
    c.check(code == 200 and '"content"' in body, f"{target}: Anthropic messages -> 200", f"{code} {body[:300]}")
    start = time.monotonic()
    code, body, times = call(port, "POST", "/v1/chat/completions", token=tokens[subject], body=chat(stream=True),
                             headers={"x-mock-event-delay-ms": "250", "x-mock-words": "6"}, stream=True)
    spread = (times[-1] - times[0]) if times else 0
    c.check(code == 200 and "[DONE]" in body and len(times) >= 3 and spread >= 0.75,
            f"{target}: a stream's chunks arrive as sent ({len(times)} reads over {spread:.2f}s)",
            f"{code} after {time.monotonic() - start:.1f}s: {body[:200]}")

    # A coding agent's request: the conversation so far, far past the 32 KiB a proxy's
    # buffers hold by default, which the filter reads whole before it decides.
    big = chat()
    big["messages"][0]["content"] = "context line\n" * 16000
    code, body, _ = call(port, "POST", "/v1/chat/completions", token=tokens[f"{target}-big"], body=big)
    c.check(code == 200 and '"choices"' in body, f"{target}: a 208 KB prompt -> 200", f"{code} {body[:300]}")

    uuid = user_uuid(salt, subject)
    # One counted record for each of the three answered requests: the OpenAI chat, the
    # Anthropic message and the stream.
    records = _usage_records(site.access_log, uuid, 3)
    kinds = sorted((r.get("provider"), r.get("stream")) for r in records)
    c.check(kinds == [("anthropic", False), ("openai", False), ("openai", True)],
            f"{target}: the usage records in the mesh's access log ({site.access_log.name})",
            f"completed records for {uuid}: {kinds}; log: {_head(site.access_log)}")
    ledger = _ledger(svc, uuid, 3)
    c.check(ledger.get("requests", 0) >= 3, f"{target}: ... and in the ledger (admin API)", json.dumps(ledger)[:300])

    reduced(target, site, svc, tokens[f"{target}-reduced"], user_uuid(salt, f"{target}-reduced"), c)

    limited = f"{target}-limited"
    code, body = _put_limit(svc, user_uuid(salt, limited), {"rpm": 1})
    c.check(code == 200, f"{target}: rpm 1 set through the admin API", f"{code} {body[:200]}")
    first = call(port, "POST", "/v1/chat/completions", token=tokens[limited], body=chat())[0]
    code, body, _ = call(port, "POST", "/v1/chat/completions", token=tokens[limited], body=chat())
    c.check(first == 200 and code == 429, f"{target}: the second request in the minute -> 429",
            f"first {first}, second {code} {body[:200]}")
    # A dollar budget smaller than the request's worst case: refused before its body leaves.
    broke = f"{target}-budget"
    code, body = _put_limit(svc, user_uuid(salt, broke), {"usd_micros": 1, "period": "day"})
    c.check(code == 200, f"{target}: a one-micro-dollar daily budget set through the admin API", f"{code} {body[:200]}")
    code, body, _ = call(port, "POST", "/v1/chat/completions", token=tokens[broke], body=chat())
    c.check(code == 429 and "budget_exceeded" in body, f"{target}: a request past the budget -> 429 budget_exceeded",
            f"{code} {body[:200]}")

    # The policy service's cluster as this mesh names it (the EnvoyFilter's own, Istio's
    # for the Service, Envoy Gateway's for the HTTPRoute's policy rule after the four
    # hosts': openai, anthropic, vllm, the IdP), reaching the pod port the rendered Service
    # maps its port to.
    cluster = {"istio-envoyfilter": "chokepoint_policy",
               "envoy-gateway": f"httproute/{NAMESPACE}/chokepoint/rule/4"}.get(
        target, f"outbound|{POLICY_PORT}||{POLICY_HOST}")
    want = env["services"].get((POLICY_HOST, POLICY_PORT))
    hosts = _cluster_hosts(gw, cluster)
    decisions = gw.stat(f"cluster.{cluster}.upstream_rq_200")
    c.check(want is not None and hosts == [want] and decisions >= 1,
            f"{target}: the policy service's cluster {cluster} reaches {want}, the pod port behind Service "
            f"port {POLICY_PORT} ({decisions} answers 200)", f"endpoints {hosts}, answers 200: {decisions}")


def _cluster_hosts(gw, name):
    """[(ip, port)] of a cluster's endpoints, as the running Envoy holds them."""
    _, text = get(f"{gw.admin}/clusters?format=json")
    try:
        (cluster,) = [c for c in json.loads(text)["cluster_statuses"] if c["name"] == name]
    except (ValueError, KeyError):
        return []
    return [(h["address"]["socket_address"]["address"], h["address"]["socket_address"]["port_value"])
            for h in cluster.get("host_statuses", [])]


# The deliveries whose filter holds the headers while it reads the body (Envoy's
# allow_on_headers_stop_iteration, which only the EnvoyFilter can set); the others run
# with hold_headers false (docs/deployment.md, "What each delivery supports").
HOLDS_HEADERS = {"istio-envoyfilter"}


def reduced(target, site, svc, token, uuid, c):
    """What a delivery does with the two features the mesh deliveries lack: a model named
    in the body routed to another provider than its API's first, and a compressed answer.
    Where the delivery cannot, the answer must still be quick and clear, never a hang."""
    held = target in HOLDS_HEADERS
    port = site.listen_port
    before = len(_mock_requests(svc, "/v1/chat/completions"))
    start = time.monotonic()
    code, body, _ = call(port, "POST", "/v1/chat/completions", token=token, body=chat("llama-3.1-8b"))
    took = time.monotonic() - start
    sent = _mock_requests(svc, "/v1/chat/completions")[before:]
    if held:
        host = next((v for k, v in sent[-1]["headers"] if k == "host"), "") if sent else "(no request)"
        c.check(code == 200 and host.startswith("vllm.mesh.test"),
                f"{target}: a body's model routed to the API's second provider (vllm) -> 200",
                f"{code} {body[:200]}; Host {host}")
    else:
        code_in_body = ""
        try:
            code_in_body = json.loads(body)["error"]["code"]
        except (ValueError, KeyError, TypeError):
            pass
        c.check(code == 400 and code_in_body == "model_not_routable" and took < 2 and not sent,
                f"{target}: a body's model for another provider than the API's first -> "
                f"400 model_not_routable in {took * 1000:.0f} ms, nothing answered upstream",
                f"{code} {body[:200]}; {len(sent)} request(s) reached the mock")
    # An upstream that compresses although asked for identity: inflated before the filter
    # counts it where the delivery has Envoy's decompressor, else charged by estimate.
    code, body, _ = call(port, "POST", "/v1/chat/completions", token=token, body=chat(),
                         headers={"x-mock-content-encoding": "gzip"})
    record = _record_of(site.access_log, uuid, "gpt-4o-mini")
    if held:
        c.check(code == 200 and '"choices"' in body and record.get("estimated") is False,
                f"{target}: a gzip answer is inflated and counted exactly", f"{code} {body[:100]!r}; {record}")
    else:
        c.check(code == 200 and record.get("estimated") is True and record.get("output_tokens", 0) > 0,
                f"{target}: a gzip answer passes through and is charged by estimate", f"{code}; {record}")


def _log_records(path):
    """Every JSON object line of an access log (none while it does not exist yet)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if isinstance(r, dict):
            out.append(r)
    return out


def _record_of(path, uuid, model, seconds=5):
    """The access log's record of the user's request for `model` (one per test user)."""
    deadline = time.monotonic() + seconds
    while True:
        for r in _log_records(path):
            if r.get("user") == uuid and r.get("model") == model:
                return r
        if time.monotonic() > deadline:
            return {}
        time.sleep(0.2)


def _mock_requests(svc, path):
    _, text = get(f"http://127.0.0.1:{svc.mock_port}/__mock/requests")
    try:
        return [r for r in json.loads(text) if r["path"] == path]
    except (ValueError, KeyError, TypeError):
        return []


def _last_host(svc, path):
    """The Host header of the last request the mock provider got on `path`."""
    _, text = get(f"http://127.0.0.1:{svc.mock_port}/__mock/requests")
    try:
        hits = [r for r in json.loads(text) if r["path"] == path]
    except (ValueError, KeyError, TypeError):
        return f"(mock request log unreadable: {text[:200]})"
    if not hits:
        return "(no request)"
    return next((v for k, v in hits[-1]["headers"] if k == "host"), "(none)")


def _head(path, n=600):
    try:
        return path.read_text()[:n] or "(empty)"
    except OSError:
        return "(no file)"


def _usage_records(path, uuid, want, seconds=5):
    deadline = time.monotonic() + seconds
    while True:
        found = [r for r in _log_records(path)
                 if r.get("user") == uuid and r.get("completed") and r.get("status") == 200
                 and r.get("output_tokens", 0) > 0]
        if len(found) >= want or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def _ledger(svc, uuid, want, seconds=10):
    day = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    deadline = time.monotonic() + seconds
    while True:
        code, text = get(f"{svc.policy_admin}/v1/admin/usage?scope=user&id={uuid}&period={day}",
                         {"authorization": f"Bearer {svc.admin_token}"})
        try:
            ledger = json.loads(text) if code == 200 else {"status": code, "body": text}
        except ValueError:
            ledger = {"body": text}
        if ledger.get("requests", 0) >= want or time.monotonic() > deadline:
            return ledger
        time.sleep(0.2)


def _put_limit(svc, uuid, limits):
    req = urllib.request.Request(f"{svc.policy_admin}/v1/admin/limits/user/{uuid}", method="PUT",
                                 data=json.dumps(limits).encode(),
                                 headers={"authorization": f"Bearer {svc.admin_token}",
                                          "content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=REQUEST_TIMEOUT) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def mint(key, subject, issuer=ISSUER):
    out = subprocess.run([BIN / "chokepoint-token", subject, "--key", key, "--issuer", issuer,
                          "--tenant", "acme", "--groups", "ml"], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def main(argv):
    targets = argv or [t for t, _, _ in DELIVERIES]
    unknown = set(targets) - {t for t, _, _ in DELIVERIES}
    if unknown:
        sys.exit(f"unknown delivery {sorted(unknown)}; known: {[t for t, _, _ in DELIVERIES]}")
    for what in (BIN / "chokepoint-config", WASM, ENVOY):
        if not what.exists():
            sys.exit(f"{what} not found (scripts/test mesh builds it)")
    base = Path(tempfile.mkdtemp(prefix="chokepoint-mesh-"))
    key = base / "idp-key.json"
    jwks = base / "idp-jwks.json"
    jwks.write_text(subprocess.run([BIN / "chokepoint-token", "--jwks", "--key", key],
                                   capture_output=True, text=True, check=True).stdout)
    mocks = Mocks(base, BIN)
    # The images' PATH: the repository's binaries, then this machine's (redis-server).
    dep = Deployment(base, f"{BIN}:{os.environ['PATH']}", NAMESPACE, SECRETS)
    c = Checks()
    front = None
    try:
        mocks.start(jwks)
        ca, leaves = make_ca(base / "tls", ["openai.mesh.test", "anthropic.mesh.test", "vllm.mesh.test",
                                               "idp.mesh.test"])
        front = TlsFront(leaves, {"openai.mesh.test": mocks.mock_port, "anthropic.mesh.test": mocks.mock_port,
                                  "vllm.mesh.test": mocks.mock_port, "idp.mesh.test": mocks.idp_port})
        # The mesh layer's own policy file, from which the Kubernetes targets are rendered
        # (each delivery's differs only in its access log's path).
        policy = base / "policy.yaml"
        policy_file(policy, front.port, ca, base / "usage.log")
        try:
            dep.start(c, lambda target: render(policy, target))
            svc = types.SimpleNamespace(mock_port=mocks.mock_port, admin_token=dep.admin_token,
                                        policy_admin=dep.admin_url(*POLICY_ADMIN))
        except (PodError, RuntimeError, KeyError) as e:
            c.check(False, "the policy service and Redis started from their rendered manifests, "
                           "the admin API at its Service", f"{type(e).__name__}: {e}")
            return finish(c, base, mocks, dep, front)
        code, body = get(f"{svc.policy_admin}/v1/admin/limits/{SEEDED['scope'].replace(':', '/')}",
                         {"authorization": f"Bearer {dep.admin_token}"})
        c.check(code == 200 and json.loads(body).get("limits", {}).get("rpm") == SEEDED["rpm"],
                f"kubernetes-policy: the limit set of the mounted ConfigMap is in force ({SEEDED['scope']} "
                f"rpm {SEEDED['rpm']}, admin API)", f"{code} {body[:300]}")
        salt = dep.uuid_salt
        # The gateway Secret, in the namespace of each mesh's gateway pods, with the keys
        # its rendered header lists (render/src/plugin.rs: env_keys).
        gateway_keys = {"CHOKEPOINT_UUID_SALT": salt, "CHOKEPOINT_POLICY_TOKEN": dep.policy_token,
                        "OPENAI_API_KEY": mocks.mock_key, "ANTHROPIC_API_KEY": mocks.mock_key,
                        "VLLM_API_KEY": mocks.mock_key}
        names = [t for t, _, _ in DELIVERIES]
        subjects = [f"{t}-{s}" for t in names for s in ("models", "user", "limited", "reduced", "big", "budget")]
        tokens = {s: mint(key, s) for s in subjects}
        # Signed by a key the IdP does not publish.
        tokens["forged"] = mint(base / "other-key.json", "forged")
        env = {
            "base": base, "svc": svc, "tls": front, "ca": ca, "tokens": tokens, "salt": salt,
            "wasm_sha256": hashlib.sha256(WASM.read_bytes()).hexdigest(),
            "addresses": {h: "127.0.0.1" for h in ("openai.mesh.test", "anthropic.mesh.test", "vllm.mesh.test",
                                                   "idp.mesh.test")},
            "services": dep.services,
            "secrets": dep.secrets + [secret(ns, SECRETS["gateway_keys"], gateway_keys)
                                      for ns in GATEWAY_NAMESPACE.values()],
        }
        for target, module, fn in DELIVERIES:
            if target not in targets:
                continue
            try:
                run_delivery(target, module, fn, env, c)
            except Exception as e:  # noqa: BLE001 - one delivery's failure must not hide the others'
                c.check(False, f"{target}: translated and started", f"{type(e).__name__}: {e}")
    except BaseException:
        finish(c, base, mocks, dep, front, raising=True)
        raise
    return finish(c, base, mocks, dep, front)


def finish(c, base, mocks, dep, front, raising=False):
    """Stops everything; prints the logs when a check failed (or the run broke off)."""
    if front:
        front.stop()
    if c.failed or raising:
        print(mocks.logs() + dep.logs())
    dep.stop()
    mocks.stop()
    if c.failed or raising:
        print(f"every file of the run (configurations, logs): {base}")
    else:
        shutil.rmtree(base, ignore_errors=True)
    print(f"{c.passed} passed, {c.failed} failed")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
