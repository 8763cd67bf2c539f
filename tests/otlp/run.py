#!/usr/bin/env python3
"""OpenTelemetry export through the real Envoy (docs/telemetry.md): the local stack
(chokepoint-dev: Envoy with the filter, the policy service, mock providers, MCP's
reference server) from a copy of envoy/chokepoint.yaml with a `telemetry.otlp` section
pointing at the test bed's OTLP/HTTP receiver (tests/otlp/receiver.py, decoding with
opentelemetry-proto). Real traffic: OpenAI chat (plain and streamed), Anthropic messages
(streamed), Gemini generateContent, a refusal without a token (401), one by route group
(403), requests past the user's rate limit (429), and MCP (initialize, a tools/call, a
denied tool) through the gateway.

Checks, per request joined on chokepoint.request_id: the log record's attributes are
exactly the published fields (contract/schema/published/usage-record.v1.json), each equal
to its access-log record as `chokepoint-policy publish` (the contract's Rust mapping) makes
it, as text (Envoy's format strings carry strings), `-` where the record has no value; one
log record per access-log record, no more; the resource names service.name and log_name;
and no provider key, gateway secret or client token in any byte Envoy sent the collector.

Ends with "N passed, 0 failed", or names what failed with the stack's logs and exits 1.
Needs: target/debug/chokepoint-{dev,policy,mock,...}, the filter's .wasm, and the
receiver's venv (scripts/test otlp builds and installs them)."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness import wait_until  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent.parent
STATE = ROOT / ".chokepoint"
OUT = STATE / "test-logs" / "otlp"
DEV_ENV = STATE / "dev.env"
OTLP_PYTHON = ROOT / ".venv-otlp" / "bin" / "python"
SCHEMA = ROOT / "contract" / "schema" / "published" / "usage-record.v1.json"
BIN = Path(os.environ.get("CHOKEPOINT_BIN_DIR", ROOT / "target" / "debug"))
PROVIDER_VARS = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_BACKUP_API_KEY", "ANTHROPIC_API_KEY",
                 "ANTHROPIC_BASE_URL", "GEMINI_API_KEY", "GEMINI_BASE_URL", "AZURE_OPENAI_API_KEY",
                 "AZURE_OPENAI_ENDPOINT")
# The user's rate limit in the test's policy: low, so a few requests meet a 429.
RPM = 8


class Failed(Exception):
    pass


def check(ok, why):
    if not ok:
        raise Failed(why)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(url, body=None, token=None, headers=None):
    """(status, response headers, body text) of one POST; errors are answers too."""
    h = {"content-type": "application/json", **(headers or {})}
    if token:
        h["authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers=h)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode(errors="replace")


def policy_file(port):
    """The repository's policy file with the export on, a low rate limit, and the dev
    issuer's keys read from where the stack writes them."""
    text = (ROOT / "envoy" / "chokepoint.yaml").read_text()
    text = text.replace("file: ../.chokepoint/dev-jwks.json", "file: ../../dev-jwks.json")
    check("rpm: 60" in text, "envoy/chokepoint.yaml has no user rpm: 60 to lower")
    text = text.replace("rpm: 60", f"rpm: {RPM}", 1)
    check("\ntelemetry:" not in text, "envoy/chokepoint.yaml already has a telemetry section")
    text += f"\ntelemetry:\n  otlp:\n    endpoint: http://127.0.0.1:{port}\n    flush_ms: 100\n"
    path = OUT / "policy.yaml"
    path.write_text(text)
    shutil.copy(ROOT / "envoy" / "prices.yaml", OUT / "prices.yaml")
    return path


def start_receiver():
    port_file = OUT / "receiver.port"
    port_file.unlink(missing_ok=True)
    proc = subprocess.Popen([str(OTLP_PYTHON), str(Path(__file__).parent / "receiver.py"), str(port_file),
                             str(OUT / "received")], stdout=subprocess.DEVNULL,
                            stderr=open(OUT / "receiver.log", "w"))
    check(wait_until(port_file.exists, 20), "the OTLP receiver did not start")
    return proc, int(port_file.read_text())


def start_stack(policy):
    env = {k: v for k, v in os.environ.items() if k not in PROVIDER_VARS}  # the mock providers
    for name in ("GATEWAY", "ADMIN", "POLICY", "POLICY_ADMIN", "MOCK", "REDIS", "MCP"):
        env[f"CHOKEPOINT_{name}_PORT"] = str(free_port())
    env["CHOKEPOINT_CONFIG"] = str(policy)
    DEV_ENV.unlink(missing_ok=True)
    proc = subprocess.Popen([str(BIN / "chokepoint-dev"), "--root", str(ROOT)], stdin=subprocess.DEVNULL,
                            stdout=open(OUT / "stack.out", "w"), stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)

    def up():
        check(proc.poll() is None, "chokepoint-dev exited early")
        return DEV_ENV.exists() and DEV_ENV.stat().st_size > 0

    check(wait_until(up, 180, 0.5), "no .chokepoint/dev.env after 180 s")
    dev = {}
    for line in DEV_ENV.read_text().splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            dev[k] = v.strip('"')
    return proc, dev


def fresh_token():
    """A token for a user of this run only: the rate limit's count starts at zero (Redis
    keeps the stack's state between runs)."""
    user = f"otlp-{os.urandom(6).hex()}"
    out = subprocess.run([str(ROOT / "scripts" / "token"), user, "--tenant", "dev", "--groups", "dev"],
                         capture_output=True, text=True)
    check(out.returncode == 0, f"scripts/token: {out.stderr}")
    return out.stdout.strip()


def traffic(dev, token):
    """Every kind of exchange; returns [(what, status)]."""
    gw = dev["CHOKEPOINT_URL"]
    hello = [{"role": "user", "content": "Say hello"}]
    sent = []

    def send(what, path, body, tok=token, want=None, headers=None):
        status, h, text = call(gw + path, body, tok, headers)
        sent.append((what, status))
        check(want is None or status == want, f"{what}: {status}, not {want}: {text[:300]}")
        return status, h, text

    send("openai chat", "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": hello}, want=200)
    send("openai chat, streamed", "/v1/chat/completions",
         {"model": "gpt-4o-mini", "messages": hello, "stream": True}, want=200)
    send("anthropic messages, streamed", "/v1/messages",
         {"model": "claude-haiku-5-5", "max_tokens": 64, "messages": hello, "stream": True}, want=200,
         headers={"anthropic-version": "2023-06-01"})
    send("gemini generateContent", "/v1beta/models/gemini-2.5-flash:generateContent",
         {"contents": [{"role": "user", "parts": [{"text": "Say hello"}]}]}, want=200)
    send("no token", "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": hello}, tok=None, want=401)
    send("route group", "/v1/messages", {"model": "claude-opus-4-1", "max_tokens": 64, "messages": hello},
         want=403, headers={"anthropic-version": "2023-06-01"})

    mcp = dev.get("CHOKEPOINT_MCP_URL")
    check(mcp, "dev.env names no MCP URL")
    accept = {"accept": "application/json, text/event-stream"}
    status, h, _ = call(mcp, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "otlp-test", "version": "1"}}},
        token, accept)
    sent.append(("mcp initialize", status))
    check(status == 200, f"mcp initialize: {status}")
    session = {k.lower(): v for k, v in h.items()}.get("mcp-session-id")
    check(session, "mcp initialize: no Mcp-Session-Id")
    with_session = {**accept, "mcp-session-id": session, "mcp-protocol-version": "2025-11-25"}
    status, _, _ = call(mcp, {"jsonrpc": "2.0", "method": "notifications/initialized"}, token, with_session)
    sent.append(("mcp initialized", status))
    status, _, text = call(mcp, {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                                 "params": {"name": "echo", "arguments": {"message": "hi"}}}, token, with_session)
    sent.append(("mcp tools/call echo", status))
    check(status == 200 and "hi" in text, f"mcp tools/call echo: {status} {text[:300]}")
    status, _, text = call(mcp, {"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                                 "params": {"name": "get-env", "arguments": {}}}, token, with_session)
    sent.append(("mcp tools/call get-env (denied)", status))

    # Past the user's rate limit: a 429 comes within RPM more requests.
    for _ in range(RPM + 2):
        status, _, _ = send("rate limited", "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": hello})
        if status == 429:
            break
    check(sent[-1][1] == 429, f"no 429 after {RPM + 2} requests over a limit of {RPM} a minute")
    return sent


STARTED_MS = int(time.time() * 1000)


def access_log_records(dev):
    """This run's records (the stack's log may hold an earlier run's)."""
    lines = [ln for ln in Path(dev["CHOKEPOINT_ACCESS_LOG"]).read_text().splitlines() if ln.startswith("{")]
    return [r for r in map(json.loads, lines) if r.get("ts_ms", 0) >= STARTED_MS]


def published(path):
    """The access log through the contract's own mapping (chokepoint-policy publish)."""
    out = subprocess.run([str(BIN / "chokepoint-policy"), "publish", str(path)], capture_output=True, text=True)
    check(out.returncode == 0, f"chokepoint-policy publish: {out.stderr}")
    return [json.loads(ln) for ln in out.stdout.splitlines() if ln.strip()]


def as_text(v):
    """A published value as Envoy's format strings carry it (docs/telemetry.md)."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return json.dumps(v, separators=(",", ":"), ensure_ascii=False)
    return str(v)


def otlp_records():
    path = OUT / "received" / "records.jsonl"
    return [json.loads(ln) for ln in path.read_text().splitlines()] if path.exists() else []


def secrets(stack_pid, dev, token):
    """Every secret Envoy holds (its environment's keys, tokens and salt) and the client's."""
    found = {"client token": token, "client token's signature": token.rsplit(".", 1)[-1],
             "admin token": dev["CHOKEPOINT_ADMIN_TOKEN"]}
    pids = subprocess.run(["pgrep", "-s", str(stack_pid)], capture_output=True, text=True).stdout.split()
    for pid in pids:
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if b"envoy" not in cmd.split(b"\0")[0]:
            continue
        for item in environ.split(b"\0"):
            name, _, value = item.decode(errors="replace").partition("=")
            if any(w in name for w in ("KEY", "TOKEN", "SALT", "SECRET")) and len(value) >= 8:
                found[f"envoy's {name}"] = value
    check(any(n.startswith("envoy's") for n in found), "found no Envoy process to read its secrets from")
    return found


def main():
    sys.stdout.reconfigure(line_buffering=True)
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    fields = list(json.loads(SCHEMA.read_text())["properties"])
    receiver = stack = None
    passed = 0
    try:
        receiver, port = start_receiver()
        stack, dev = start_stack(policy_file(port))
        token = fresh_token()
        sent = traffic(dev, token)
        print("otlp: sent " + ", ".join(f"{w} {s}" for w, s in sent))

        # The access log and the export settle: one log record per access-log record.
        def settled():
            return len(access_log_records(dev)) >= len(sent) and len(otlp_records()) >= len(access_log_records(dev))

        wait_until(settled, 20)
        time.sleep(0.5)  # a flush after the last: nothing more may come
        records = access_log_records(dev)
        logs = otlp_records()
        check(len(records) >= len(sent) - 1, f"{len(records)} access-log records for {len(sent)} requests")
        check(len(logs) == len(records), f"{len(logs)} OTLP log records for {len(records)} access-log records")
        passed += 1

        (OUT / "usage.log").write_text("".join(json.dumps(r) + "\n" for r in records))
        want = {p["chokepoint.request_id"]: p for p in published(OUT / "usage.log")}
        got = {}
        for log in logs:
            attrs = log["attributes"]
            check(sorted(attrs) == sorted(fields), f"attributes {sorted(attrs)} are not the published fields")
            check(all(set(v) == {"string"} for v in attrs.values()), f"a non-string attribute: {attrs}")
            rid = attrs["chokepoint.request_id"]["string"]
            check(rid not in got, f"request {rid} exported twice")
            got[rid] = {k: v["string"] for k, v in attrs.items()}
            res = log["resource"]
            check(res.get("service.name") == {"string": "chokepoint"}, f"resource: {res}")
            check(res.get("log_name") == {"string": "chokepoint.usage"}, f"resource: {res}")
        check(set(got) == set(want), f"request ids differ: only exported {set(got) - set(want)}, "
                                     f"only logged {set(want) - set(got)}")
        passed += 1
        statuses = set()
        for rid, p in want.items():
            expected = {f: as_text(p.get(f)) for f in fields}
            diff = {f: (got[rid][f], expected[f]) for f in fields if got[rid][f] != expected[f]}
            check(not diff, f"request {rid}: exported != published (got, want): {diff}")
            statuses.add(expected["http.response.status_code"])
        for s in ("200", "401", "403", "429"):
            check(s in statuses, f"no exported record with status {s}: {sorted(statuses)}")
        ops = {g["gen_ai.operation.name"] for g in got.values()}
        providers = {g["gen_ai.provider.name"] for g in got.values()}
        check({"chat", "generate_content", "execute_tool"} <= ops, f"operations exported: {ops}")
        check({"openai", "anthropic", "gcp.gemini"} <= providers, f"providers exported: {providers}")
        check(any(g["chokepoint.stream"] == "true" for g in got.values()), "no streamed record exported")
        print(f"otlp: {len(got)} log records equal their access-log records as published "
              f"(statuses {sorted(statuses)}, operations {sorted(ops)}, providers {sorted(providers)})")
        passed += 1

        raw = b"".join(p.read_bytes() for p in sorted((OUT / "received" / "raw").iterdir()))
        held = secrets(stack.pid, dev, token)
        for name, value in held.items():
            check(value.encode() not in raw, f"{name} is in what Envoy sent the collector")
        requests = [json.loads(ln) for ln in (OUT / "received" / "requests.jsonl").read_text().splitlines()]
        check(all(r["content_type"] == "application/x-protobuf" for r in requests), f"requests: {requests}")
        print(f"otlp: none of {len(held)} secrets ({', '.join(sorted(held))}) in the {len(requests)} "
              f"export requests ({len(raw)} bytes)")
        passed += 1
    except Exception as e:  # any failure: named, with the stack's output
        out = OUT / "stack.out"
        print(f"otlp: {e!r}\n---- chokepoint-dev output ----\n{out.read_text(errors='replace') if out.exists() else ''}")
        for log in sorted((STATE / "run").glob("envoy*.log")):
            print(f"---- {log.name} (last 40 lines) ----\n" + "\n".join(log.read_text(errors="replace").splitlines()[-40:]))
        print(f"{passed} passed, 1 failed")
        return 1
    finally:
        if stack and stack.poll() is None:
            stack.send_signal(signal.SIGINT)
            try:
                stack.wait(timeout=10)
            except subprocess.TimeoutExpired:
                stack.kill()
        if receiver:
            receiver.terminate()
            receiver.wait(timeout=5)
    print(f"{passed} passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
