"""Records real MCP traffic into filter/fixtures/mcp/: real clients, real servers, the
recording proxy (record_proxy.py) in between, one JSON file per client session.

    python3 tests/mcp/record.py            # re-record the fixtures (after a version bump)
    python3 tests/mcp/record.py --check    # record into a temp dir, hold the traffic to the
                                           # checks and its shape to the committed fixtures

The clients and servers, at the versions pinned below (scripts/lib.sh ensure_mcp installs
them; these pins must equal its MCP_PACKAGES and MCP_SDK):
- @modelcontextprotocol/server-everything, the reference server, in its Streamable HTTP
  mode (`streamableHttp`, port from $PORT), on a free loopback port;
- modern_server.py, a small server on the Python `mcp` SDK, which speaks revision
  2026-07-28 (the reference server does not yet);
- the Python `mcp` SDK's Streamable HTTP client (python_client.py), against both servers;
- the MCP Inspector CLI (`--method tools/list`, `--method tools/call`) against the
  reference server;
- Claude Code (pinned by ensure_agents) checking the reference server's health with
  `claude mcp list`: its handshake and first tools/list, as it connects before any prompt.
Nothing leaves 127.0.0.1: as root, everything after the installs runs in a network
namespace of its own that has only a loopback interface (Claude Code is run only there).
No secrets are involved: no server here takes a credential.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record_proxy import RecordingProxy  # noqa: E402

SERVER_EVERYTHING = "2026.8.31"
INSPECTOR_CLI = "1.0.3"
MCP_SDK = "2.3.0"
CLAUDE_CODE = "2.1.332"

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
FIXTURES = ROOT / "filter" / "fixtures" / "mcp"
MCP_DIR = ROOT / ".mcp"
MCP_VENV = Path(os.environ.get("MCP_VENV", ROOT / ".venv-mcp"))
NODE_MODULES = MCP_DIR / "node_modules"
INSPECTOR_BUILD = NODE_MODULES / "@modelcontextprotocol" / "inspector-cli" / "build"
AGENTS_MODULES = ROOT / ".agents" / "node_modules"

# What each Python SDK session calls: a simple tool, then one that streams progress.
EVERYTHING_CALLS = ["echo", '{"message": "hello"}', "trigger-long-running-operation",
                    '{"duration": 2, "steps": 4}']
MODERN_CALLS = ["add", '{"a": 2, "b": 3}', "count_slowly", '{"steps": 3}']
# Methods whose Mcp-Name header mirrors a body field (2026-07-28, Standard Request Headers).
NAME_FIELD = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}
NEW_REVISION = "2026-07-28"


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def check_pins():
    """The pins above are lib.sh's, and what is installed is what is pinned."""
    lib = (ROOT / "scripts" / "lib.sh").read_text()
    want = {
        "MCP_PACKAGES": f'"@modelcontextprotocol/server-everything@{SERVER_EVERYTHING}" '
                        f'"@modelcontextprotocol/inspector-cli@{INSPECTOR_CLI}"',
        "MCP_SDK": f'"mcp=={MCP_SDK}"',
    }
    for name, value in want.items():
        if not re.search(rf"^{name}=\(?{re.escape(value)}\)?$", lib, re.M):
            fail(f"scripts/lib.sh {name} is not {value}")
    if f'"@anthropic-ai/claude-code@{CLAUDE_CODE}"' not in lib:
        fail(f"scripts/lib.sh AGENT_PACKAGES does not pin claude-code {CLAUDE_CODE}")
    meta = json.loads((AGENTS_MODULES / "@anthropic-ai" / "claude-code" / "package.json").read_text())
    if meta["version"] != CLAUDE_CODE:
        fail(f"claude-code {meta['version']} installed, {CLAUDE_CODE} pinned")
    for pkg, version in (("server-everything", SERVER_EVERYTHING), ("inspector-cli", INSPECTOR_CLI)):
        meta = json.loads((NODE_MODULES / "@modelcontextprotocol" / pkg / "package.json").read_text())
        if meta["version"] != version:
            fail(f"{pkg} {meta['version']} installed, {version} pinned")
    got = subprocess.run([MCP_VENV / "bin" / "python", "-c",
                          "import importlib.metadata as m; print(m.version('mcp'))"],
                         capture_output=True, text=True, check=True).stdout.strip()
    if got != MCP_SDK:
        fail(f"mcp {got} installed in {MCP_VENV}, {MCP_SDK} pinned")


def install():
    env = dict(os.environ, MCP_VENV=str(MCP_VENV))
    subprocess.run(["bash", "-c", f'source "{ROOT}/scripts/lib.sh" && ensure_mcp && ensure_agents'],
                   env=env, check=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, log, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            fail(f"server exited with {proc.returncode}:\n{log.read_text()}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    fail(f"nothing listens on {port} after {timeout}s:\n{log.read_text()}")


def start(args, tmp, name, env=None, cwd=None):
    log = tmp / f"{name}.log"
    proc = subprocess.Popen(args, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            env=env, cwd=cwd or tmp)
    return proc, log


def record(name, upstream, client_args, cwd, tmp):
    """Runs one client session through a fresh recording proxy; returns the exchanges and
    what the client printed."""
    proxy = RecordingProxy(upstream)
    proxy.start()
    url = proxy.url + "/mcp"
    if callable(client_args):
        client_args(url)
        run = subprocess.CompletedProcess([], 0, "", "")
    else:
        args = [a.replace("{url}", url) for a in client_args]
        run = subprocess.run(args, capture_output=True, text=True, cwd=cwd, timeout=120)
    # The GET stream, if the client opened one, ends when the session is deleted.
    idle = proxy.wait_idle(10)
    proxy.stop()
    if run.returncode != 0:
        fail(f"{name}: client exited {run.returncode}\n{run.stdout}\n{run.stderr}")
    if not idle:
        fail(f"{name}: an exchange was still open 10 s after the client exited")
    (tmp / f"{name}.client.out").write_text(run.stdout)
    return proxy.exchanges, run.stdout


def crafted(url, requests):
    """Sends hand-made requests (the ones no conforming client sends: a header that
    disagrees with the body, a missing header, a batch, a GET where the revision has none),
    so the fixtures hold the server's own answer to each."""
    for method, headers, body in requests:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                resp.read()
        except urllib.error.HTTPError as e:
            e.read()


def modern_meta():
    return {"_meta": {"io.modelcontextprotocol/protocolVersion": NEW_REVISION,
                      "io.modelcontextprotocol/clientInfo": {"name": "chokepoint-record", "version": "1"},
                      "io.modelcontextprotocol/clientCapabilities": {}}}


def crafted_modern(url):
    accept = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json",
              "MCP-Protocol-Version": NEW_REVISION}
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "add", "arguments": {"a": 1, "b": 2}, **modern_meta()}}
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": modern_meta()}
    crafted(url, [
        ("POST", {**accept, "Mcp-Method": "tools/call", "Mcp-Name": "count_slowly"}, call),
        ("POST", {**accept, "Mcp-Method": "tools/call"}, call),
        ("POST", {**accept, "Mcp-Method": "tools/list", "Mcp-Name": "add"}, call),
        ("POST", {**accept, "Mcp-Method": "tools/list", "MCP-Protocol-Version": "2099-01-01"}, listing),
        ("POST", {**accept, "Mcp-Method": "tools/list"}, [listing]),
        ("GET", {"Accept": "text/event-stream", "MCP-Protocol-Version": NEW_REVISION}, None),
    ])


def crafted_legacy(url):
    accept = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                       "clientInfo": {"name": "chokepoint-record", "version": "1"}}}
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    crafted(url, [
        ("POST", {**accept, "MCP-Protocol-Version": "2025-11-25"}, listing),
        ("POST", {"Accept": "application/json", "Content-Type": "application/json"}, init),
        ("POST", accept, [init]),
    ])


def claude_code_session(tmp):
    """`claude mcp add` then `claude mcp list`, in a home of its own: the health check
    connects to the server as a real session would begin."""

    def run(url):
        home = tmp / "claude-home"
        home.mkdir(exist_ok=True)
        env = dict(os.environ, HOME=str(home), CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
                   DISABLE_TELEMETRY="1")
        claude = str(AGENTS_MODULES / ".bin" / "claude")
        for args in (["mcp", "add", "--transport", "http", "everything", url], ["mcp", "list"]):
            done = subprocess.run([claude, *args], capture_output=True, text=True, env=env,
                                  cwd=home, timeout=60)
            if done.returncode != 0:
                fail(f"claude {' '.join(args)}: exit {done.returncode}\n{done.stdout}\n{done.stderr}")
        if "Connected" not in done.stdout:
            fail(f"claude mcp list did not connect:\n{done.stdout}\n{done.stderr}")

    return run


def isolate():
    """Re-runs this script in a network namespace with only loopback (root and unshare
    needed); returns False when it cannot, and the caller runs here, without Claude Code."""
    if "--in-netns" in sys.argv:
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        return True
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        return False
    args = ["unshare", "-n", sys.executable, __file__, *sys.argv[1:], "--in-netns"]
    sys.exit(subprocess.run(args).returncode)


def header(headers, name):
    return next((v for k, v in headers if k.lower() == name), None)


def rpc_of(exchange):
    """The JSON-RPC request in a POST body, or None (GET, DELETE, not JSON)."""
    text = exchange["request"]["body"].get("text") or ""
    try:
        body = json.loads(text)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def shape(exchanges):
    """What must stay the same between two recordings: per exchange, the HTTP method, the
    JSON-RPC method, the status and the answer's content type, in order; a GET stream
    opens concurrently with the next POST, so GETs are compared as a set."""
    ordered, streams = [], []
    for ex in exchanges:
        rpc = rpc_of(ex) or {}
        resp = ex.get("response", {})
        ctype = (header(resp.get("headers", []), "content-type") or "").split(";")[0]
        row = [ex["request"]["method"], rpc.get("method"), resp.get("status"), ctype]
        (streams if row[0] == "GET" else ordered).append(row)
    return ordered + sorted(streams, key=str)


def check_session(name, exchanges):
    """The rules of the transport the gateway will rely on, held to the recorded traffic."""
    if not exchanges:
        fail(f"{name}: nothing recorded")
    modern = False
    for ex in exchanges:
        req, resp = ex["request"], ex.get("response")
        if resp is None:
            fail(f"{name} #{ex['seq']}: no response recorded")
        headers = req["headers"]
        version = header(headers, "mcp-protocol-version")
        if req["method"] != "POST":
            continue
        accept = header(headers, "accept") or ""
        if "application/json" not in accept or "text/event-stream" not in accept:
            fail(f"{name} #{ex['seq']}: POST Accept is {accept!r}")
        rpc = rpc_of(ex)
        if rpc is None:
            fail(f"{name} #{ex['seq']}: POST body is not one JSON-RPC object")
        if "id" not in rpc and resp["status"] != 202:
            fail(f"{name} #{ex['seq']}: notification answered {resp['status']}, not 202")
        if version == NEW_REVISION and resp["status"] == 200:
            modern = True
            if header(headers, "mcp-method") != rpc.get("method"):
                fail(f"{name} #{ex['seq']}: Mcp-Method {header(headers, 'mcp-method')!r} "
                     f"!= body method {rpc.get('method')!r}")
            field = NAME_FIELD.get(rpc.get("method"))
            if field and header(headers, "mcp-name") != rpc.get("params", {}).get(field):
                fail(f"{name} #{ex['seq']}: Mcp-Name does not mirror params.{field}")
    return modern


def summarize(name, exchanges):
    print(f"\n{name}: {len(exchanges)} exchanges")
    for ex in exchanges:
        req, resp = ex["request"], ex["response"]
        rpc = rpc_of(ex) or {}
        h = req["headers"]
        rpc_method = rpc.get("method") or ("(response)" if "result" in rpc else "")
        ctype = (header(resp["headers"], "content-type") or "-").split(";")[0]
        size = sum(len(c.get("text", c.get("base64", ""))) for c in resp["chunks"])
        mirrored = " ".join(f"{k}={header(h, k)}" for k in ("mcp-method", "mcp-name") if header(h, k))
        print(f"  {req['method']:6} {rpc_method:32} {resp['status']} {ctype:18} "
              f"{len(resp['chunks']):3} chunks {size:6} B  version={header(h, 'mcp-protocol-version')} "
              f"session={'yes' if header(h, 'mcp-session-id') else 'no'} {mirrored}")


def main():
    checking = "--check" in sys.argv[1:]
    if "--in-netns" not in sys.argv:
        install()
    check_pins()
    isolated = isolate()
    tmp = Path(tempfile.mkdtemp(prefix="mcp-record-"))
    out_dir = tmp / "fixtures" if checking else FIXTURES
    out_dir.mkdir(parents=True, exist_ok=True)
    procs = []
    try:
        ev_port, modern_port = free_port(), free_port()
        env = dict(os.environ, PORT=str(ev_port))
        everything, ev_log = start(["node", NODE_MODULES / ".bin" / "mcp-server-everything",
                                    "streamableHttp"], tmp, "everything", env=env)
        procs.append(everything)
        modern, modern_log = start([MCP_VENV / "bin" / "python", HERE / "modern_server.py",
                                    str(modern_port)], tmp, "modern")
        procs.append(modern)
        wait_port(ev_port, everything, ev_log)
        wait_port(modern_port, modern, modern_log)
        python = [str(MCP_VENV / "bin" / "python"), str(HERE / "python_client.py"), "{url}", "auto"]
        # The Inspector CLI v1 finds its own package.json relative to the working directory
        # (build/index.js, callMethod): run it from its build directory.
        inspector = ["node", str(INSPECTOR_BUILD / "cli.js"), "--cli", "{url}", "--transport", "http"]
        sessions = [
            ("python_sdk_everything", f"http://127.0.0.1:{ev_port}", python + EVERYTHING_CALLS,
             "mcp (Python SDK)", MCP_SDK, "server-everything", SERVER_EVERYTHING),
            ("python_sdk_modern", f"http://127.0.0.1:{modern_port}", python + MODERN_CALLS,
             "mcp (Python SDK)", MCP_SDK, "modern_server.py (Python SDK)", MCP_SDK),
            ("inspector_cli_tools_list", f"http://127.0.0.1:{ev_port}",
             inspector + ["--method", "tools/list"],
             "inspector-cli", INSPECTOR_CLI, "server-everything", SERVER_EVERYTHING),
            ("inspector_cli_tools_call", f"http://127.0.0.1:{ev_port}",
             inspector + ["--method", "tools/call", "--tool-name", "get-sum", "--tool-arg", "a=1", "b=2"],
             "inspector-cli", INSPECTOR_CLI, "server-everything", SERVER_EVERYTHING),
        ]
        sessions += [
            ("crafted_modern_errors", f"http://127.0.0.1:{modern_port}", crafted_modern,
             "crafted (urllib)", "-", "modern_server.py (Python SDK)", MCP_SDK),
            ("crafted_legacy_errors", f"http://127.0.0.1:{ev_port}", crafted_legacy,
             "crafted (urllib)", "-", "server-everything", SERVER_EVERYTHING),
        ]
        if isolated:
            sessions.append(("claude_code_mcp_list", f"http://127.0.0.1:{ev_port}", claude_code_session(tmp),
                             "claude-code", CLAUDE_CODE, "server-everything", SERVER_EVERYTHING))
        else:
            print("skipped claude_code_mcp_list: needs root for an isolated network namespace")
        problems = []
        for name, upstream, args, client, client_v, server, server_v in sessions:
            cwd = INSPECTOR_BUILD if not callable(args) and args[0] == "node" else tmp
            exchanges, printed = record(name, upstream, args, cwd, tmp)
            modern_seen = check_session(name, exchanges) if not name.startswith("crafted") else True
            negotiated = next((header(ex["request"]["headers"], "mcp-protocol-version")
                               for ex in exchanges[::-1]
                               if header(ex["request"]["headers"], "mcp-protocol-version")), None)
            if name == "python_sdk_modern" and not modern_seen:
                fail(f"{name}: no {NEW_REVISION} exchange with mirrored headers")
            fixture = {
                "client": client, "client_version": client_v,
                "server": server, "server_version": server_v,
                "negotiated_protocol_version": negotiated,
                "exchanges": exchanges,
            }
            path = out_dir / f"{name}.json"
            path.write_text(json.dumps(fixture, indent=1, ensure_ascii=False) + "\n")
            summarize(name, exchanges)
            if name.startswith("python_sdk"):
                print(f"  client: {printed.strip()}")
            if checking:
                committed = FIXTURES / f"{name}.json"
                if not committed.exists():
                    problems.append(f"{name}: no committed fixture")
                else:
                    old = shape(json.loads(committed.read_text())["exchanges"])
                    if old != shape(exchanges):
                        problems.append(f"{name}: shape changed\n  committed {old}\n  recorded  {shape(exchanges)}")
        if problems:
            fail("\n".join(problems))
        print(f"\nok: {len(sessions)} sessions recorded into {out_dir.relative_to(ROOT) if not checking else out_dir}")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        if os.environ.get("CHOKEPOINT_KEEP_TMP") != "1":
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
