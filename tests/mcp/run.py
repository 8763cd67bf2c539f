#!/usr/bin/env python3
"""MCP through the gateway, with real MCP clients against the real reference server.

The stack is chokepoint-dev (what scripts/run starts), from a temp root holding copies of
envoy/'s policy files with this test's `mcp:` section, on free ports. It runs
@modelcontextprotocol/server-everything as the `everything` upstream; this test sends the
gateway to it through the recording proxy (record_proxy.py, CHOKEPOINT_MCP_EVERYTHING_URL),
so every check can say what reached the upstream, with which headers. The gateway's
credential for the server is a random secret of this run (CHOKEPOINT_MCP_EVERYTHING_TOKEN).

A second server, modern_server.py (the Python SDK's), is the `modern` upstream, for the
aggregate endpoint /mcp. Each check in CHECKS is real traffic: the Python `mcp` SDK's Streamable HTTP client
(sdk_calls.py, in .venv-mcp), the MCP Inspector CLI, and hand-made requests for what no
conforming client sends. The same calls go straight to the server too, and the answers
must agree except for what the policy removes.

Needs `scripts/lib.sh ensure_mcp` (scripts/test mcp installs it) and the stack's binaries.
Prints each check; on a failure the stack's logs; ends with "N passed, M failed".
"""

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from harness import wait_until  # noqa: E402
from record_proxy import RecordingProxy  # noqa: E402

ROOT = HERE.parents[1]
BIN = Path(os.environ.get("CHOKEPOINT_BIN_DIR", ROOT / "target" / "debug"))
ENVOY = Path(os.environ.get("CHOKEPOINT_ENVOY", ROOT / ".venv" / "bin" / "envoy"))
WASM = Path(os.environ.get("CHOKEPOINT_WASM", ROOT / "target" / "wasm" / "chokepoint_filter.wasm"))
MCP_PYTHON = Path(os.environ.get("MCP_VENV", ROOT / ".venv-mcp")) / "bin" / "python"
INSPECTOR_BUILD = ROOT / ".mcp" / "node_modules" / "@modelcontextprotocol" / "inspector-cli" / "build"
CREDENTIAL_ENV = "CHOKEPOINT_MCP_EVERYTHING_TOKEN"

# This test's policy: for server-everything, the tool that prints the server's environment
# denied to everyone, the trigger-* tools to the research group only; and modern_server.py
# (the Python SDK's, which also speaks 2026-07-28) as a second server, for the aggregate
# endpoint /mcp.
MCP_SECTION = """
mcp:
  servers:
    - name: everything
      url: http://127.0.0.1:3001/mcp
      credential: {{header: authorization, scheme: Bearer, env: {env}}}
      tools:
        - match: get-env
          deny: true
        - match: "trigger-*"
          allow_groups: [research]
    - name: modern
      url: http://127.0.0.1:{modern_port}/mcp
"""
DENIED = "get-env"
RESEARCH_ONLY = "trigger-"
LIMITED_TOOL, LIMITED_RPM = "get-tiny-image", 2
# Goes into a tool's arguments: it must reach the server and never the gateway's records.
SECRET_ARG = "chokepoint-canary-" + secrets.token_hex(8)
PROGRESS = ["progress", "trigger-long-running-operation", {"duration": 2, "steps": 4}]
# What the SDK does in the comparison, through the gateway and straight to the server.
PLAN = [
    ["tools/list"],
    ["tools/call", "echo", {"message": SECRET_ARG}],
    ["tools/call", "get-sum", {"a": 20, "b": 22}],
    ["resources/list"],
    ["resources/read", "demo://resource/static/document/architecture.md"],
    ["prompts/list"],
    ["prompts/get", "simple-prompt"],
    ["prompts/get", "args-prompt", {"city": "Lyon"}],
]
ACCEPT = "application/json, text/event-stream"

results = []


class Failed(Exception):
    pass


def expect(ok, what):
    if not ok:
        raise Failed(what)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- plain HTTP and a hand-driven MCP session -------------------------------------------------

def post(url, body, headers=None, method="POST", timeout=20):
    """(status, headers, body text, seconds) of one request; status 0 when nothing answered."""
    data = (body if isinstance(body, bytes) else json.dumps(body).encode()) if body is not None else None
    h = {"accept": ACCEPT, "content-type": "application/json"} if data is not None else {}
    h.update(headers or {})
    req = urllib.request.Request(url, data=data, method=method, headers=h)
    start = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers.items()), r.read().decode(errors="replace"), time.monotonic() - start
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers.items()), e.read().decode(errors="replace"), time.monotonic() - start
    except OSError as e:
        return 0, {}, str(e), time.monotonic() - start


def messages(text):
    """The JSON-RPC messages of an answer: one JSON body, or every SSE event's data."""
    text = text.strip()
    if text.startswith("{"):
        return [json.loads(text)]
    out = []
    for event in text.replace("\r\n", "\n").split("\n\n"):
        data = "\n".join(line[5:].lstrip(" ") for line in event.split("\n") if line.startswith("data:"))
        if data.strip():
            out.append(json.loads(data))
    return out


def answer(text, rid):
    """The response to request `rid` in an answer's messages, or None."""
    return next((m for m in messages(text) if m.get("id") == rid and ("result" in m or "error" in m)), None)


class RawSession:
    """A 2025-11-25 session driven by hand (initialize, initialized), for requests whose
    HTTP status and exact JSON-RPC error a client library would hide."""

    def __init__(self, url, token):
        self.url, self.headers, self.next_id = url, {"authorization": f"Bearer {token}"}, 1
        status, headers, text, _ = self.send("initialize", {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "chokepoint-mcp-test", "version": "1"}})
        expect(status == 200, f"initialize: {status} {text[:300]}")
        sid = next((v for k, v in headers.items() if k.lower() == "mcp-session-id"), None)
        expect(sid, f"initialize: no Mcp-Session-Id in {headers}")
        self.headers.update({"mcp-session-id": sid, "mcp-protocol-version": "2025-11-25"})
        status, _, text, _ = post(self.url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, self.headers)
        expect(status == 202, f"notifications/initialized: {status} {text[:200]}")

    def send(self, method, params=None, extra=None):
        rid, self.next_id = self.next_id, self.next_id + 1
        body = {"jsonrpc": "2.0", "id": rid, "method": method, **({"params": params} if params is not None else {})}
        status, headers, text, took = post(self.url, body, {**self.headers, **(extra or {})})
        self.last = (rid, took)
        return status, headers, text, took

    def call(self, name, args):
        """(HTTP status, the JSON-RPC response) of a tools/call."""
        status, _, text, _ = self.send("tools/call", {"name": name, "arguments": args})
        return status, answer(text, self.last[0]) or {"unparsed": text[:500]}

    def close(self):
        post(self.url, None, self.headers, method="DELETE")


# ---- the clients --------------------------------------------------------------------------------

def sdk(url, plan, token=None):
    out = subprocess.run([str(MCP_PYTHON), str(HERE / "sdk_calls.py"), url, json.dumps(plan), *([token] if token else [])],
                         capture_output=True, text=True, timeout=120)
    expect(out.returncode == 0, f"sdk_calls.py exited {out.returncode}:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")
    return json.loads(out.stdout)


def inspector(url, token, *method_args):
    """The Inspector CLI, run from its build directory (it finds its package.json relative to
    the working directory); its JSON output."""
    args = ["node", str(INSPECTOR_BUILD / "cli.js"), "--cli", url, "--transport", "http"]
    if token:
        args += ["--header", f"Authorization: Bearer {token}"]
    out = subprocess.run([*args, *method_args], capture_output=True, text=True, cwd=INSPECTOR_BUILD, timeout=60)
    expect(out.returncode == 0, f"inspector {' '.join(method_args)}: exit {out.returncode}\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return json.loads(out.stdout)


def names(listing, key="tools"):
    return sorted(t["name"] for t in listing[key])


# ---- the stack ----------------------------------------------------------------------------------

class Ctx:
    """What the checks share: URLs, tokens, the recording proxy, the stack's files."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.state = tmp / ".chokepoint"
        self.credential = secrets.token_hex(24)
        self.mcp_port, self.proxy_port, self.modern_port = free_port(), free_port(), free_port()
        self.modern = None
        self.ports = {k: free_port() for k in ("gateway", "admin", "policy", "policy-admin", "mock", "redis")}
        self.proxy = None
        self.stack = None
        self.log = None

    def start_modern(self):
        """modern_server.py, the second server (loopback only, as it binds)."""
        self.modern_log = open(self.tmp / "modern.log", "w")
        self.modern = subprocess.Popen([str(MCP_PYTHON), str(HERE / "modern_server.py"), str(self.modern_port)],
                                       stdout=self.modern_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

        def listening():
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", self.modern_port)) == 0

        expect(wait_until(lambda: self.modern.poll() is not None or listening(), 30) and self.modern.poll() is None,
               f"modern_server.py did not start: {(self.tmp / 'modern.log').read_text()[-2000:]}")

    def stop_modern(self):
        if self.modern and self.modern.poll() is None:
            self.modern.terminate()
            try:
                self.modern.wait(5)
            except subprocess.TimeoutExpired:
                self.modern.kill()
                self.modern.wait()

    def start_proxy(self):
        self.proxy = RecordingProxy(f"http://127.0.0.1:{self.mcp_port}", port=self.proxy_port)
        self.proxy.start()

    def start(self):
        (self.tmp / "envoy").mkdir()
        policy = (ROOT / "envoy" / "chokepoint.yaml").read_text()
        (self.tmp / "envoy" / "chokepoint.yaml").write_text(
            without_mcp(policy) + MCP_SECTION.format(env=CREDENTIAL_ENV, modern_port=self.modern_port))
        self.start_modern()
        shutil.copy(ROOT / "envoy" / "prices.yaml", self.tmp / "envoy" / "prices.yaml")
        self.start_proxy()
        env = {k: v for k, v in os.environ.items()
               if not (k.endswith("_API_KEY") or k.endswith("_BASE_URL") or k.startswith("CHOKEPOINT_MCP_"))}
        env.update({"CHOKEPOINT_MCP_EVERYTHING_URL": f"{self.proxy.url}/mcp", CREDENTIAL_ENV: self.credential,
                    "CHOKEPOINT_BIN_DIR": str(BIN), "CHOKEPOINT_ENVOY": str(ENVOY), "CHOKEPOINT_WASM": str(WASM),
                    "CHOKEPOINT_MCP_DIR": str(ROOT / ".mcp")})
        args = [str(BIN / "chokepoint-dev"), "--root", str(self.tmp), "--mcp-port", str(self.mcp_port)]
        for name, port in self.ports.items():
            args += [f"--{name}-port", str(port)]
        self.log = open(self.tmp / "chokepoint-dev.out", "w")
        self.stack = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
                                      env=env, start_new_session=True)
        dev_env = self.state / "dev.env"
        ready = wait_until(lambda: self.stack.poll() is not None or (dev_env.exists() and dev_env.stat().st_size), 120)
        expect(ready and self.stack.poll() is None, "chokepoint-dev did not start")
        self.env = dict(line.split("=", 1) for line in dev_env.read_text().splitlines() if "=" in line)
        self.gateway = self.env["CHOKEPOINT_URL"]
        self.url = self.env.get("CHOKEPOINT_MCP_URL", f"{self.gateway}/mcp/everything")
        self.direct = f"http://127.0.0.1:{self.mcp_port}/mcp"
        self.research = self.token("mcp-research", "research")
        self.plain = self.token("mcp-plain", "dev")

    def token(self, subject, groups, tenant="mcp"):
        out = subprocess.run([str(BIN / "chokepoint-token"), subject, "--tenant", tenant, "--groups", groups,
                              "--key", str(self.state / "dev-key.json")], capture_output=True, text=True, check=True)
        return out.stdout.strip()

    def upstream_since(self, mark):
        """The exchanges the upstream got after `mark` (a count of exchanges)."""
        self.proxy.wait_idle(5)
        return self.proxy.exchanges[mark:]

    def records(self, since, settle=1.0, want=None):
        """The usage records (JSON lines of the access log) written after byte `since`, once
        `want(records)` holds or none has arrived for `settle` seconds."""
        path = Path(self.env["CHOKEPOINT_ACCESS_LOG"])
        deadline, last, seen, recs = time.time() + 10, time.time(), -1, []
        while time.time() < deadline:
            lines = path.read_bytes()[since:].decode(errors="replace").splitlines() if path.exists() else []
            recs = [json.loads(line) for line in lines if line.startswith("{")]
            if want and want(recs):
                return recs
            if len(recs) != seen:
                seen, last = len(recs), time.time()
            elif time.time() - last >= settle:
                break
            time.sleep(0.2)
        return recs

    def log_size(self):
        path = Path(self.env["CHOKEPOINT_ACCESS_LOG"])
        return path.stat().st_size if path.exists() else 0

    def admin(self, method, path, body=None):
        status, _, text, _ = post(self.env["CHOKEPOINT_POLICY_ADMIN_URL"] + path, body,
                                  {"authorization": f"Bearer {self.env['CHOKEPOINT_ADMIN_TOKEN']}"}, method=method)
        return status, text

    def logs(self):
        """The tail of chokepoint-dev's output and of each component's log."""
        files = [("chokepoint-dev", self.tmp / "chokepoint-dev.out")]
        files += [(name, self.state / "run" / name) for name in ("envoy.log", "policy.log", "mcp-everything.log")]
        files.append(("modern_server.py", self.tmp / "modern.log"))
        files.append(("usage log", self.state / "run" / "usage.log"))
        return "\n".join(f"---- {name} ----\n{path.read_text(errors='replace')[-3000:]}"
                         for name, path in files if path.exists())

    def stop(self):
        if self.stack and self.stack.poll() is None:
            self.stack.terminate()
            try:
                self.stack.wait(20)
            except subprocess.TimeoutExpired:
                self.stack.kill()
                self.stack.wait()
        if self.proxy:
            self.proxy.stop()
        self.stop_modern()
        for f in (self.log, getattr(self, "modern_log", None)):
            if f:
                f.close()


def without_mcp(policy):
    """The policy file less a top-level `mcp:` section, which this test brings its own of."""
    out, skipping = [], False
    for line in policy.splitlines(keepends=True):
        if line.startswith("mcp:"):
            skipping = True
            continue
        if skipping and line.strip() and not line[0].isspace() and not line.startswith("#"):
            skipping = False
        if not skipping:
            out.append(line)
    return "".join(out).rstrip("\n") + "\n"


# ---- the checks ---------------------------------------------------------------------------------

def check_stack(ctx):
    expect(ctx.env.get("CHOKEPOINT_MCP_URL") == f"{ctx.gateway}/mcp/everything",
           f"dev.env CHOKEPOINT_MCP_URL is {ctx.env.get('CHOKEPOINT_MCP_URL')!r}")
    out = subprocess.run(["ss", "-Hltn", f"sport = :{ctx.mcp_port}"], capture_output=True, text=True).stdout
    local = sorted({line.split()[3] for line in out.splitlines() if line.strip()})
    expect(local == [f"127.0.0.1:{ctx.mcp_port}"], f"server-everything listens on {local}, not loopback only")
    # Straight to the server (the policy would refuse it through the gateway): the
    # process the stack started has none of the stack's secrets in its environment.
    got = sdk(ctx.direct, [["tools/call", DENIED, {}]])["steps"][0]
    text = json.dumps(got)
    env = json.loads(got["ok"]["content"][0]["text"])
    leaked = [k for k in env if any(w in k.upper() for w in ("TOKEN", "KEY", "SECRET", "SALT", "PASSWORD"))]
    expect(not leaked and ctx.credential not in text and ctx.env["CHOKEPOINT_ADMIN_TOKEN"] not in text,
           f"the server's environment holds {leaked or 'a secret of the stack'}")


def check_sdk_same_results(ctx):
    through = sdk(ctx.url, PLAN, ctx.research)
    direct = sdk(ctx.direct, PLAN)
    expect(through["protocol_version"] == direct["protocol_version"],
           f"negotiated {through['protocol_version']} through the gateway, {direct['protocol_version']} direct")
    for got, want in zip(through["steps"], direct["steps"]):
        expect("ok" in got, f"{got['op']} through the gateway: {got.get('error')}")
        if got["op"] == "tools/list":
            expect(DENIED in names(want["ok"]), f"the server lists no {DENIED}: {names(want['ok'])}")
            expect(names(got["ok"]) == [n for n in names(want["ok"]) if n != DENIED],
                   f"tools/list through the gateway {names(got['ok'])} is not the server's {names(want['ok'])} less {DENIED}")
            direct_tools = {t["name"]: t for t in want["ok"]["tools"]}
            for tool in got["ok"]["tools"]:
                expect(tool == direct_tools[tool["name"]], f"tool {tool['name']} differs through the gateway")
        else:
            expect(got == want, f"{got['op']}: through the gateway {json.dumps(got)[:400]} != direct {json.dumps(want)[:400]}")
    echo = through["steps"][1]["ok"]["content"][0]["text"]
    expect(SECRET_ARG in echo, f"echo answered {echo!r}")
    return f"{len(PLAN)} calls, protocol {through['protocol_version']}"


def check_sdk_progress(ctx):
    got = sdk(ctx.url, [PROGRESS], ctx.research)["steps"][0]
    expect("ok" in got, f"progress call: {got}")
    seen, end = got["ok"]["progress_s"], got["ok"]["result_s"]
    expect(len(seen) == 4, f"{len(seen)} progress notifications, 4 sent: {seen}")
    # Sent 0.5 s apart by the server: passed on as they come, the first is in hand well
    # before the result; buffered, they would all arrive with it.
    expect(end - seen[0] >= 1.0 and seen[-1] - seen[0] >= 1.0, f"progress at {seen} s, result at {end} s: not streamed")
    return f"progress at {seen} s, result at {end} s"


def check_groups(ctx):
    plain = names(sdk(ctx.url, [["tools/list"]], ctx.plain)["steps"][0]["ok"])
    research = names(sdk(ctx.url, [["tools/list"]], ctx.research)["steps"][0]["ok"])
    restricted = [n for n in research if n.startswith(RESEARCH_ONLY)]
    expect(restricted, f"no {RESEARCH_ONLY}* tool listed for the research group: {research}")
    expect(plain == [n for n in research if not n.startswith(RESEARCH_ONLY)],
           f"without the research group {plain}, with it {research}")
    mark = len(ctx.proxy.exchanges)
    s = RawSession(ctx.url, ctx.plain)
    status, msg = s.call(restricted[0], {})
    s.close()
    err = msg.get("error") or {}
    expect(status == 200 and err.get("code") == -32602, f"{restricted[0]} without the group: {status} {msg}")
    reached = [ex for ex in ctx.upstream_since(mark) if restricted[0] in ex["request"]["body"].get("text", "")]
    expect(not reached, f"the upstream got {restricted[0]} without the group")


def check_inspector(ctx):
    listed = inspector(ctx.url, ctx.research, "--method", "tools/list")
    direct = inspector(ctx.direct, None, "--method", "tools/list")
    expect(names(listed) == [n for n in names(direct) if n != DENIED],
           f"Inspector tools/list through the gateway {names(listed)}, direct {names(direct)}")
    called = inspector(ctx.url, ctx.research, "--method", "tools/call", "--tool-name", "get-sum",
                       "--tool-arg", "a=1", "b=2")
    text = json.dumps(called)
    expect("The sum of 1 and 2 is 3" in text, f"Inspector tools/call get-sum: {text[:300]}")
    refused = subprocess.run(["node", str(INSPECTOR_BUILD / "cli.js"), "--cli", ctx.url, "--transport", "http",
                              "--method", "tools/list"], capture_output=True, text=True, cwd=INSPECTOR_BUILD, timeout=60)
    expect(refused.returncode != 0, "the Inspector listed tools through the gateway without a token")


def check_no_passthrough(ctx):
    seen = ctx.upstream_since(0)
    expect(len(seen) >= 10, f"only {len(seen)} requests reached the upstream")
    tokens = (ctx.research, ctx.plain)
    for ex in seen:
        headers = ex["request"]["headers"]
        leaked = [k for k, v in headers if any(t in v for t in tokens)]
        expect(not leaked, f"the client's JWT reached the upstream in {leaked} (#{ex['seq']})")
        auth = [v for k, v in headers if k.lower() == "authorization"]
        expect(auth == [f"Bearer {ctx.credential}"], f"#{ex['seq']} reached the upstream with authorization {len(auth)} value(s), "
               f"not the gateway's credential")
    return f"{len(seen)} upstream requests, each with the gateway's credential only"


def check_unauthenticated(ctx):
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    expected = f'Bearer resource_metadata="{ctx.gateway}/.well-known/oauth-protected-resource/mcp/everything"'
    for why, headers in (("no token", {}), ("a bad token", {"authorization": "Bearer not.a.jwt"}),
                         ("a token of another key", {"authorization": "Bearer " + forged(ctx.research)})):
        status, h, text, _ = post(ctx.url, init, headers)
        www = next((v for k, v in h.items() if k.lower() == "www-authenticate"), None)
        expect(status == 401 and www and www.startswith(expected),
               f"{why}: {status}, WWW-Authenticate {www!r} (want {expected}), body {text[:200]}")
    status, h, text, _ = post(f"{ctx.gateway}/.well-known/oauth-protected-resource/mcp/everything", None, method="GET")
    expect(status == 200, f"resource metadata: {status} {text[:200]}")
    meta = json.loads(text)
    expect(meta.get("resource") == f"{ctx.gateway}/mcp/everything", f"resource metadata: resource {meta.get('resource')!r}")
    expect("https://dev.chokepoint.local" in meta.get("authorization_servers", []), f"authorization_servers {meta}")


def forged(token):
    """The token with its signature's bytes changed: well-formed, not signed by the issuer."""
    head, body, sig = token.split(".")
    return f"{head}.{body}.{sig[:-4]}{'AAAA' if not sig.endswith('AAAA') else 'BBBB'}"


def check_denied_tool(ctx):
    mark, since = len(ctx.proxy.exchanges), ctx.log_size()
    s = RawSession(ctx.url, ctx.research)
    status, msg = s.call(DENIED, {})
    s.close()
    err = msg.get("error") or {}
    expect(status == 200 and err.get("code") == -32602, f"tools/call {DENIED}: {status} {msg}")
    expect("policy" in err.get("message", "") and "mcp.servers[everything].tools[0]" in json.dumps(err),
           f"the error does not name the policy: {err}")
    expect(msg.get("id") == s.last[0], f"the error's id {msg.get('id')} is not the request's {s.last[0]}")
    reached = [ex for ex in ctx.upstream_since(mark) if DENIED in ex["request"]["body"].get("text", "")]
    expect(not reached, f"the upstream got the denied call: {reached[:1]}")
    recs = [r for r in ctx.records(since) if (r.get("mcp") or {}).get("name") == DENIED]
    expect(len(recs) == 1 and recs[0]["mcp"].get("rpc_error") == -32602,
           f"records of the denied call: {[brief(r) for r in recs]}")


def check_mismatch_and_batch(ctx):
    mark = len(ctx.proxy.exchanges)
    auth = {"authorization": f"Bearer {ctx.research}"}
    modern = {"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                        "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
                        "io.modelcontextprotocol/clientCapabilities": {}}}
    call = {"jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": "echo", "arguments": {"message": "x"}, **modern}}
    v = {"mcp-protocol-version": "2026-07-28"}
    cases = [
        ("Mcp-Name disagreeing", {**v, "mcp-method": "tools/call", "mcp-name": DENIED}, call, 400, -32020),
        ("Mcp-Method disagreeing", {**v, "mcp-method": "tools/list", "mcp-name": "echo"}, call, 400, -32020),
        ("Mcp-Name missing", {**v, "mcp-method": "tools/call"}, call, 400, -32020),
        ("a batch", {}, [call], 400, -32600),
    ]
    for why, headers, body, want_status, want_code in cases:
        status, _, text, _ = post(ctx.url, body, {**auth, **headers})
        msg = messages(text)[0] if text.strip().startswith(("{", "event", "data", "id")) else {}
        code = (msg.get("error") or {}).get("code")
        expect(status == want_status and code == want_code, f"{why}: {status} {text[:300]} (want {want_status}, {want_code})")
    reached = ctx.upstream_since(mark)
    expect(not reached, f"the upstream got {len(reached)} of the refused requests")
    return f"{len(cases)} refused, none reached the upstream"


def check_rate_limit(ctx):
    scope = f"everything%2F{LIMITED_TOOL}"
    status, text = ctx.admin("PUT", f"/v1/admin/limits/mcp_tool/{scope}", {"rpm": LIMITED_RPM})
    expect(status == 200, f"PUT mcp_tool limit: {status} {text[:300]}")
    user = ctx.token("mcp-limited", "dev")
    s = RawSession(ctx.url, user)
    got = [s.call(LIMITED_TOOL, {}) for _ in range(LIMITED_RPM + 1)]
    other = s.call("echo", {"message": "still allowed"})
    s.close()
    for status, msg in got[:LIMITED_RPM]:
        expect(status == 200 and "result" in msg, f"call within the limit refused: {status} {msg}")
    status, msg = got[-1]
    err = msg.get("error") or {}
    retry = (err.get("data") or {}).get("retry_after_ms")
    expect(status == 200 and err.get("code") == -31429 and isinstance(retry, int) and 0 < retry <= 60000,
           f"call {LIMITED_RPM + 1} in a minute at rpm {LIMITED_RPM}: {status} {msg}")
    expect(other[0] == 200 and "result" in other[1], f"another tool of the same user was refused: {other}")
    ctx.admin("DELETE", f"/v1/admin/limits/mcp_tool/{scope}")
    return f"call {LIMITED_RPM + 1} refused, retry after {retry} ms"


def brief(record):
    """What a failure message shows of a usage record."""
    return {k: record.get(k) for k in ("status", "decision", "error", "mcp")}


def check_records(ctx):
    since, mark = ctx.log_size(), len(ctx.proxy.exchanges)
    tenant = "mcp-records"  # this session's records are told from the others' by it
    sdk(ctx.url, PLAN[:3], ctx.token("mcp-records", "dev", tenant))
    seen = ctx.upstream_since(mark)
    want = sorted(ex["request"]["method"] if ex["request"]["method"] != "POST"
                  else json.loads(ex["request"]["body"]["text"]).get("method", "response") for ex in seen)
    recs = ctx.records(since, want=lambda rs: len([r for r in rs if r.get("tenant") == tenant]) >= len(want))
    mine = [r for r in recs if r.get("format") == "mcp" and r.get("tenant") == tenant]
    got = sorted(r["mcp"]["method"] for r in mine)
    expect(got == want, f"records {got}, requests {want}")
    for r in mine:
        m = r["mcp"]
        expect(m.get("server") == "everything" and isinstance(r.get("status"), int), f"record {r}")
    calls = [r for r in mine if r["mcp"]["method"] == "tools/call"]
    expect(sorted(r["mcp"].get("name") for r in calls) == ["echo", "get-sum"], f"tools/call records {calls}")
    expect(all(r["mcp"]["bytes_in"] > 0 and r["mcp"]["bytes_out"] > 0 and r["status"] == 200 for r in calls),
           f"tools/call records without bytes or status 200: {[brief(r) for r in calls]}")
    logs = [Path(ctx.env["CHOKEPOINT_ACCESS_LOG"]), ctx.state / "run" / "envoy.log", ctx.state / "run" / "policy.log"]
    leaked = [p.name for p in logs if p.exists() and SECRET_ARG in p.read_text(errors="replace")]
    expect(not leaked, f"a tool's argument is in {leaked}")
    ctx.recorded = (mine[0]["user"], sorted(f"everything/{r['mcp']['name']}" for r in calls), mine[0]["ts_ms"])
    return f"{len(mine)} records for {len(want)} requests"


def check_ledger(ctx):
    """The policy service's per-day MCP counts for the records check's user hold its two
    tool calls, one each, as the records do."""
    expect(getattr(ctx, "recorded", None), "no records to compare (the records check failed)")
    user, calls, ts_ms = ctx.recorded
    day = time.strftime("%Y-%m-%d", time.gmtime(ts_ms / 1000))
    path = f"/v1/admin/usage?by=mcp_tool&period={day}&user={user}"

    def tools():
        status, text = ctx.admin("GET", path)
        rows = json.loads(text).get("rows", []) if status == 200 else []
        return status, text, sorted(r["id"] for r in rows for _ in range(r["requests"]))

    wait_until(lambda: tools()[2] == calls, 10)
    status, text, booked = tools()
    expect(status == 200 and booked == calls, f"GET {path}: {status} {text[:500]} (the records: {calls})")
    expect(SECRET_ARG not in text, "a tool's argument is in the ledger")
    return f"{', '.join(booked)} booked once each"


def check_upstream_down(ctx):
    s = RawSession(ctx.url, ctx.research)
    since = ctx.log_size()
    ctx.proxy.stop()
    try:
        status, _, text, took = s.send("tools/call", {"name": "echo", "arguments": {"message": "down"}})
    finally:
        ctx.start_proxy()
    expect(took < 10, f"upstream down answered after {took:.1f} s")
    expect(status >= 500 or (answer(text, s.last[0]) or {}).get("error"), f"upstream down: {status}: {text[:300]}")
    recs = [r for r in ctx.records(since) if (r.get("mcp") or {}).get("method") == "tools/call"]
    expect(len(recs) == 1 and recs[0]["status"] == status,
           f"records of the failed call ({status} to the client): {[brief(r) for r in recs]}")
    return f"{status} in {took * 1000:.0f} ms"


def check_aggregate(ctx):
    """/mcp serves both servers as one, tools named <server>__<tool>, less what the policy
    removes, and routes a call to its server; with one server down the list still comes,
    without it, and at once."""
    url = f"{ctx.gateway}/mcp"
    mark = len(ctx.upstream_since(0))
    got = sdk(url, [["tools/list"], ["tools/call", "modern__add", {"a": 2, "b": 3}],
                    ["tools/call", "everything__get-sum", {"a": 20, "b": 22}]], ctx.plain)
    steps = got["steps"]
    expect(all("ok" in st for st in steps), f"through /mcp: {json.dumps(steps)[:600]}")
    listed = names(steps[0]["ok"])
    everything = names(sdk(ctx.direct, [["tools/list"]])["steps"][0]["ok"])
    want = sorted([f"everything__{n}" for n in everything if n != DENIED and not n.startswith(RESEARCH_ONLY)]
                  + ["modern__add", "modern__count_slowly"])
    expect(listed == want, f"/mcp lists {listed}, want {want}")
    added, summed = (json.dumps(st["ok"]) for st in steps[1:])
    expect('"5"' in added or ": 5" in added, f"modern__add answered {added[:300]}")
    expect("The sum of 20 and 22 is 42" in summed, f"everything__get-sum answered {summed[:300]}")
    # The gateway's own calls to the server (its session, the list) and the routed call
    # carry its credential too, never the client's token, and the call its own name.
    seen = ctx.upstream_since(mark)
    methods = [json.loads(ex["request"]["body"]["text"] or "{}").get("method") for ex in seen]
    expect({"tools/list", "tools/call"} <= set(methods), f"/mcp reached everything with {methods}")
    for ex in seen:
        auth = [v for k, v in ex["request"]["headers"] if k.lower() == "authorization"]
        expect(auth == [f"Bearer {ctx.credential}"] and ctx.plain not in json.dumps(ex["request"]),
               f"#{ex['seq']} ({(ex['request']['body']['text'] or '')[:80]}) reached everything without the gateway's "
               f"credential alone")
    expect(any('"name":"get-sum"' in (ex["request"]["body"]["text"] or "").replace(" ", "") for ex in seen),
           "the routed call did not reach everything as get-sum")
    ctx.stop_modern()
    start = time.monotonic()
    down = sdk(url, [["tools/list"]], ctx.plain)["steps"][0]
    took = time.monotonic() - start
    left = names(down.get("ok") or {"tools": []})
    expect(left == [n for n in want if n.startswith("everything__")] and took < 15,
           f"with modern down, /mcp listed {left} in {took:.1f} s: {json.dumps(down)[:300]}")
    return f"{len(listed)} tools of 2 servers; {len(left)} in {took:.1f} s with one down"


CHECKS = [
    ("stack: scripts/run's MCP URL, server-everything on loopback only, no secret in its environment", check_stack),
    ("python SDK through the gateway: same results as straight to the server, less the denied tool", check_sdk_same_results),
    ("python SDK: progress notifications stream through as the server sends them", check_sdk_progress),
    ("group-restricted tools: listed and callable with the research group only", check_groups),
    ("MCP Inspector CLI through the gateway: tools/list and tools/call; refused without a token", check_inspector),
    ("no token passthrough: the upstream gets the gateway's credential, never the client's JWT", check_no_passthrough),
    ("401 with WWW-Authenticate resource_metadata; the RFC 9728 metadata is public", check_unauthenticated),
    ("a denied tool: JSON-RPC -32602 naming the policy, upstream never called, recorded", check_denied_tool),
    ("header/body mismatch 400 -32020, a batch 400 -32600, upstream never called", check_mismatch_and_batch),
    ("an mcp_tool rpm limit: refused with -31429 and retry_after_ms", check_rate_limit),
    ("one usage record per request (method, name, status, bytes), never the arguments", check_records),
    ("the ledger by tool (GET /v1/admin/usage?by=mcp_tool)", check_ledger),
    ("upstream down: a prompt error, recorded", check_upstream_down),
    ("the aggregate /mcp: both servers' tools as <server>__<tool>, calls routed, one down left out", check_aggregate),
]


def main():
    sys.stdout.reconfigure(line_buffering=True)
    only = sys.argv[1:]
    missing = [p for p in (MCP_PYTHON, INSPECTOR_BUILD / "cli.js", BIN / "chokepoint-dev") if not p.exists()]
    if missing:
        print(f"mcp: missing {', '.join(map(str, missing))} (scripts/test mcp installs and builds them)\n0 passed, 1 failed")
        return 1
    tmp = Path(tempfile.mkdtemp(prefix="chokepoint-mcp-"))
    ctx = Ctx(tmp)
    started = time.monotonic()
    try:
        ctx.start()
        print(f"      stack up in {time.monotonic() - started:.1f} s: {ctx.url} -> proxy {ctx.proxy.url} -> {ctx.direct}")
        for what, fn in CHECKS:
            if only and not any(o in fn.__name__ for o in only):
                continue
            t = time.monotonic()
            try:
                note = fn(ctx)
                results.append(True)
                print(f"PASS  {what} ({time.monotonic() - t:.1f} s{'; ' + note if note else ''})")
            except Exception as e:
                results.append(False)
                print(f"FAIL  {what}\n      {e if isinstance(e, Failed) else repr(e)}")
    except Exception as e:
        results.append(False)
        print(f"FAIL  mcp test aborted: {e!r}")
    finally:
        ctx.stop()
        if not all(results):
            print(ctx.logs())
        if os.environ.get("CHOKEPOINT_KEEP_TMP"):
            print(f"      kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    passed = sum(results)
    print(f"      {time.monotonic() - started:.1f} s in all")
    print(f"{passed} passed, {len(results) - passed} failed")
    return 0 if results and passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
