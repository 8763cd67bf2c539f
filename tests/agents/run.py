#!/usr/bin/env python3
"""The coding agents as their users run them, through the gateway and nowhere else.

Claude Code, Codex and Gemini CLI (npm, pinned; scripts/lib.sh's ensure_agents puts them in
.agents/) each answer one prompt headless through the local stack's gateway, with the
settings docs/agents.md gives (this file is where they are tested), and:
  * the tool exits 0 with an answer;
  * the gateway's usage records of the run (its access log) hold exactly the tokens the tool
    itself reports, per model; for Claude Code also its own dollar figure, to the
    micro-dollar;
  * Codex, with its default transport settings, first tries a WebSocket on /v1/responses;
    the gateway refuses it (403, counted by Envoy as downstream_rq_ws_on_non_ws_route) and
    Codex falls back to HTTP within seconds;
  * nothing escapes: the tools run in a network namespace (tests/netns.py) whose only route
    out is the gateway's address and port; every DNS query is answered NXDOMAIN and every
    other TCP connection is redirected to a catcher (tests/agents/escape_watch.py), which
    names each one; anything else is rejected and counted by iptables. Any of those fails
    the tool's check and is printed.

The stack (chokepoint-dev, from a copy of envoy/'s policy files in a temp root) runs in its
own namespace, as in tests/lockdown/run.py, rather than on the host: the tools' namespace
then reaches exactly one address, and the stack's fixed default ports cannot collide with a
developer's stack. Every tool gets a fresh HOME (and its config home) in the temp root, so
nothing of this machine's user configuration is read or written.

Needs root. Binaries from CHOKEPOINT_BIN_DIR (default target/debug); the tools from
CHOKEPOINT_AGENTS_BIN (default .agents/node_modules/.bin). Prints each check and ends with
"N passed, M failed"; exit 1 on any failure."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from netns import BIN, CLIENT_IP, GATEWAY_PORT, MOCK_PORT, ROOT, Namespaces, in_ns, sh, stop  # noqa: E402

AGENTS_BIN = Path(os.environ.get("CHOKEPOINT_AGENTS_BIN", ROOT / ".agents" / "node_modules" / ".bin"))
NS = Namespaces(f"cpa{os.getpid()}")
GATEWAY_IP = "10.77.0.1"
GATEWAY = f"http://{GATEWAY_IP}:{GATEWAY_PORT}"
CATCH_PORT = 15001  # escape_watch.py's TCP catcher, in the client namespace
TEAM = "agents"
PROMPT = "Reply with one short sentence."
TOOL_TIMEOUT = 90
# Envoy refuses the upgrade with 403 before the filter runs (no route allows WebSocket).
# Codex 0.171.0 retries the upgrade 7 times with backoff, about 6.8 s, before it falls back
# to HTTP, whatever the refusal: a server answering 426 Upgrade Required got the same 7
# attempts over 6.8 s.
WS_FALLBACK_MS = 10_000

# Every tool runs on its own default model, which the policy routes and prices:
# claude-opus-5-5 (Claude Code 2.1.332), gpt-6.2-sol (Codex), Gemini's "auto" (a routing
# call to gemini-3.5-flash-lite, then the model it picks).

results = []


def check(ok, what, detail=""):
    results.append(bool(ok))
    print(f"{'PASS' if ok else 'FAIL'}  {what}" + (f"\n      {detail}" if detail and not ok else ""))
    return ok


# ---- the client namespace: the gateway, else caught ----------------------------------------

def lock_client():
    """Only the gateway's address and port leave the client namespace. DNS goes to the
    watcher on the namespace's loopback (resolv.conf below); TCP to anywhere else is
    redirected to the watcher's catcher; the rest is rejected (and counted)."""
    c = NS.client
    in_ns(c, "iptables", "-t", "nat", "-A", "OUTPUT", "-d", GATEWAY_IP, "-p", "tcp", "--dport", str(GATEWAY_PORT),
          "-j", "RETURN")
    in_ns(c, "iptables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "!", "-d", "127.0.0.0/8",
          "-j", "REDIRECT", "--to-ports", str(CATCH_PORT))
    in_ns(c, "iptables", "-A", "OUTPUT", "-o", "lo", "-j", "ACCEPT")
    in_ns(c, "iptables", "-A", "OUTPUT", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT")
    in_ns(c, "iptables", "-A", "OUTPUT", "-d", GATEWAY_IP, "-p", "tcp", "--dport", str(GATEWAY_PORT), "-j", "ACCEPT")
    in_ns(c, "iptables", "-A", "OUTPUT", "-j", "REJECT")
    # No IPv6 address but loopback exists there; refuse it outright all the same.
    in_ns(c, "ip6tables", "-A", "OUTPUT", "!", "-o", "lo", "-j", "REJECT", check_rc=False)


def rejected_packets():
    """Packets the client's last OUTPUT rule (REJECT) has counted since the last reset."""
    out = in_ns(NS.client, "iptables", "-L", "OUTPUT", "-v", "-n", "-x").stdout.splitlines()
    return int(out[-1].split()[0])


def resolv_conf():
    """`ip netns exec` bind-mounts /etc/netns/NS/resolv.conf over /etc/resolv.conf."""
    d = Path("/etc/netns") / NS.client
    d.mkdir(parents=True, exist_ok=True)
    (d / "resolv.conf").write_text("nameserver 127.0.0.1\n")
    return d


class Watcher:
    def __init__(self, tmp):
        self.path = tmp / "escapes.jsonl"
        self.file = open(self.path, "w")
        self.proc = subprocess.Popen(["ip", "netns", "exec", NS.client, sys.executable,
                                      str(Path(__file__).with_name("escape_watch.py")), str(CATCH_PORT)],
                                     stdout=self.file, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 10
        while '"ready"' not in self.path.read_text():
            if time.time() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"escape watcher did not start: {self.path.read_text()}")
            time.sleep(0.1)

    def events(self):
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]


# ---- the gateway's records -------------------------------------------------------------------

class AccessLog:
    def __init__(self, path):
        self.path = Path(path)
        # Lines without a record (`-`) in what `since` read last.
        self.unseen = 0

    def size(self):
        return self.path.stat().st_size if self.path.exists() else 0

    def since(self, offset, settle=1.5, limit=15):
        """The records written after `offset`, once none has arrived for `settle` seconds
        (a record is written when its response ends, after the tool may have exited)."""
        deadline, last, seen = time.time() + limit, time.time(), -1
        while time.time() < deadline:
            lines = self.path.read_bytes()[offset:].decode().splitlines()
            # `-`: a request Envoy refused before the filter saw it, so it has no record.
            records = [json.loads(line) for line in lines if line and line != "-"]
            self.unseen = sum(1 for line in lines if line == "-")
            if len(records) != seen:
                seen, last = len(records), time.time()
            elif records and time.time() - last >= settle:
                break
            time.sleep(0.2)
        return records


ALL_MODELS = "*"  # a tool's report that does not say which model it counts


def by_model(records, fields, all_models=False):
    sums = {}
    for r in records:
        s = sums.setdefault(ALL_MODELS if all_models else r["model"], dict.fromkeys(fields, 0))
        for f in fields:
            s[f] += r[f]
    return sums


# ---- the tools ---------------------------------------------------------------------------------

def tool_env(home, extra):
    """What each tool runs with: a PATH with node, the temp HOME, no locale or terminal of
    this machine's user, and the tool's own settings."""
    env = {"PATH": f"{AGENTS_BIN}:/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8",
           "TERM": "dumb", "NO_COLOR": "1", "TMPDIR": str(home / "tmp"), "XDG_CONFIG_HOME": str(home / ".config"),
           "XDG_CACHE_HOME": str(home / ".cache"), "XDG_DATA_HOME": str(home / ".local" / "share")}
    (home / "tmp").mkdir(parents=True, exist_ok=True)
    env.update(extra)
    return env


def run_tool(name, args, env, cwd):
    start = time.time()
    out = subprocess.run(["ip", "netns", "exec", NS.client, str(AGENTS_BIN / name), *args], cwd=cwd, env=env,
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TOOL_TIMEOUT)
    return out, time.time() - start


def claude(tmp, token):
    """Claude Code: ANTHROPIC_BASE_URL at the gateway; the JWT from apiKeyHelper (a command
    whose output Claude Code sends as x-api-key, re-run as it expires) in the user's
    settings file; nonessential traffic (telemetry, error reports, update checks, feature
    flags) off by CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC."""
    home = tmp / "home-claude"
    (home / ".claude").mkdir(parents=True)
    helper = home / "chokepoint-token"
    helper.write_text(f"#!/bin/sh\ncat {tmp / 'token'}\n")
    helper.chmod(0o755)
    (home / ".claude" / "settings.json").write_text(json.dumps({
        "apiKeyHelper": str(helper),
        "env": {"ANTHROPIC_BASE_URL": GATEWAY, "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
                "DISABLE_AUTOUPDATER": "1", "DISABLE_TELEMETRY": "1", "DISABLE_ERROR_REPORTING": "1"},
    }, indent=2))
    env = tool_env(home, {"ANTHROPIC_BASE_URL": GATEWAY, "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
                          "DISABLE_AUTOUPDATER": "1", "DISABLE_TELEMETRY": "1", "DISABLE_ERROR_REPORTING": "1"})
    return ["-p", PROMPT, "--output-format", "json"], env, home


# What both Codex setups switch off: the update check, analytics and feedback uploads, and
# the plugin marketplaces (without them Codex fetches the curated marketplace from
# github.com / api.github.com and featured plugins from chatgpt.com at start).
CODEX_OFF = """check_for_update_on_startup = false

[analytics]
enabled = false

[feedback]
enabled = false

[features]
plugins = false
remote_plugin = false
plugin_sharing = false
"""


def codex(tmp, token):
    """Codex: a model provider of its own at the gateway, Responses API; the JWT from the
    environment variable its env_key names."""
    home = tmp / "home-codex"
    (home / ".codex").mkdir(parents=True)
    (home / ".codex" / "config.toml").write_text(f'''model_provider = "chokepoint"
{CODEX_OFF}
[model_providers.chokepoint]
name = "chokepoint"
base_url = "{GATEWAY}/v1"
env_key = "CHOKEPOINT_TOKEN"
wire_api = "responses"
''')
    env = tool_env(home, {"CODEX_HOME": str(home / ".codex"), "CHOKEPOINT_TOKEN": token})
    return ["exec", "--json", "--skip-git-repo-check", PROMPT], env, home


def codex_builtin(tmp, token):
    """Codex's built-in OpenAI provider moved to the gateway (openai_base_url), the JWT as
    CODEX_API_KEY: that provider prefers a WebSocket on /v1/responses, which the gateway
    refuses, and Codex falls back to HTTP."""
    home = tmp / "home-codex-builtin"
    (home / ".codex").mkdir(parents=True)
    (home / ".codex" / "config.toml").write_text(f'''openai_base_url = "{GATEWAY}/v1"
{CODEX_OFF}''')
    env = tool_env(home, {"CODEX_HOME": str(home / ".codex"), "CODEX_API_KEY": token})
    return ["exec", "--json", "--skip-git-repo-check", PROMPT], env, home


def gemini(tmp, token):
    """Gemini CLI: GOOGLE_GEMINI_BASE_URL at the gateway, the JWT as GEMINI_API_KEY, API-key
    auth selected in the user's settings file with usage statistics, telemetry and update
    checks off."""
    home = tmp / "home-gemini"
    (home / ".gemini").mkdir(parents=True)
    (home / ".gemini" / "settings.json").write_text(json.dumps({
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        "privacy": {"usageStatisticsEnabled": False},
        "telemetry": {"enabled": False},
        "general": {"disableAutoUpdate": True, "disableUpdateNag": True},
    }, indent=2))
    env = tool_env(home, {"GOOGLE_GEMINI_BASE_URL": GATEWAY, "GEMINI_API_KEY": token,
                          "GEMINI_CLI_TRUST_WORKSPACE": "true"})
    return ["-p", PROMPT, "--output-format", "json"], env, home


# ---- what each tool reports it used, in the records' terms ---------------------------------

def claude_usage(stdout):
    """--output-format json: one result object; modelUsage per model, total_cost_usd."""
    out = json.loads(stdout)
    usage = {m: {"input_tokens": u["inputTokens"], "output_tokens": u["outputTokens"],
                 "cached_input_tokens": u["cacheReadInputTokens"],
                 "cache_creation_input_tokens": u["cacheCreationInputTokens"]}
             for m, u in out["modelUsage"].items()}
    return out.get("result"), usage, out["total_cost_usd"]


def codex_usage(stdout):
    """--json: one event per line; the turn.completed events carry the usage, for every
    model the turn used (ALL_MODELS)."""
    events = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    answer = " ".join(e["item"].get("text", "") for e in events
                      if e.get("type") == "item.completed" and e["item"].get("type") == "agent_message")
    # Codex's usage field -> the record's
    names = {"input_tokens": "input_tokens", "output_tokens": "output_tokens",
             "cached_input_tokens": "cached_input_tokens", "reasoning_output_tokens": "reasoning_tokens",
             "cache_write_input_tokens": "cache_creation_input_tokens"}
    total = dict.fromkeys(names.values(), 0)
    for e in events:
        if e.get("type") == "turn.completed":
            for theirs, ours in names.items():
                total[ours] += e["usage"].get(theirs, 0)
    return answer, {ALL_MODELS: total}, None


def gemini_usage(stdout):
    """--output-format json: the answer and stats.models.<model>.tokens."""
    out = json.loads(stdout)
    usage = {m: {"input_tokens": s["tokens"]["prompt"], "output_tokens": s["tokens"]["candidates"],
                 "cached_input_tokens": s["tokens"].get("cached", 0), "reasoning_tokens": s["tokens"].get("thoughts", 0)}
             for m, s in out["stats"]["models"].items()}
    return out.get("response"), usage, None


# (name, binary, setup, usage parser)
TOOLS = [("claude", "claude", claude, claude_usage), ("codex", "codex", codex, codex_usage),
         ("codex-builtin", "codex", codex_builtin, codex_usage), ("gemini", "gemini", gemini, gemini_usage)]


def envoy_stat(env, name):
    out = in_ns(NS.gw, "curl", "-s", f"{env['CHOKEPOINT_ADMIN_URL']}/stats?filter=^{name}$").stdout
    return int(out.split(":")[1]) if ":" in out else 0


def provider_requests(env):
    """What reached the mock provider, as it recorded it (GET /__mock/requests)."""
    out = in_ns(NS.gw, "curl", "-s", f"http://127.0.0.1:{MOCK_PORT}/__mock/requests").stdout
    return json.loads(out)


def sent(request):
    """One line of what a tool sent, as the provider received it."""
    headers = {k: v for k, v in request["headers"]}
    try:
        body = json.loads(request["body"])
    except ValueError:
        body = {}
    parts = [request["method"] if "method" in request else "", request["path"].split("?")[0],
             f"ua={headers.get('user-agent', '-')!r:.60}"]
    for h in ("anthropic-beta", "anthropic-version", "x-claude-code-session-id", "session_id", "originator"):
        if h in headers:
            parts.append(f"{h}={headers[h]!r}")
    if isinstance(body, dict):
        parts.append(f"model={body.get('model', '-')}")
        tools = body.get("tools") or []
        parts.append(f"tools={len(tools)}")
        parts.append(f"stream={body.get('stream', '-')}")
    return " ".join(p for p in parts if p)


def one_tool(tmp, env, token, log, watcher, name, binary, setup, usage_of):
    args, tool_environment, home = setup(tmp, token)
    work = tmp / f"work-{name}"
    work.mkdir()
    offset, seen = log.size(), len(watcher.events())
    in_ns(NS.client, "iptables", "-Z", "OUTPUT")
    ws_before = envoy_stat(env, "http.gateway.downstream_rq_ws_on_non_ws_route")
    upstream_seen = len(provider_requests(env))
    started_ms = time.time() * 1000
    try:
        out, took = run_tool(binary, args, tool_environment, work)
    except subprocess.TimeoutExpired as e:
        check(False, f"{name}: answers within {TOOL_TIMEOUT} s", f"stdout: {e.stdout}\n      stderr: {e.stderr}")
        return
    if not check(out.returncode == 0, f"{name}: exits 0 ({took:.1f} s)",
                 f"exit {out.returncode}\n      stdout: {out.stdout[-3000:]}\n      stderr: {out.stderr[-3000:]}"):
        return
    try:
        answer, reported, cost_usd = usage_of(out.stdout)
    except (ValueError, KeyError, TypeError) as e:
        check(False, f"{name}: prints its usage", f"{e!r}\n      stdout: {out.stdout[-3000:]}")
        return
    check(answer, f"{name}: answered {answer!r:.80}", out.stdout[-2000:])
    records = log.since(offset)
    # A WebSocket upgrade Envoy refuses before the filter runs leaves no usage record, only
    # the access log's `-` for the missing one.
    refused = log.unseen
    fields = sorted({f for u in reported.values() for f in u})
    booked = by_model(records, fields, all_models=ALL_MODELS in reported)
    summary = ", ".join(f"{r['model']} {r['format']} {'stream' if r['stream'] else 'unary'} "
                        f"in {r['input_tokens']} out {r['output_tokens']} ${r['cost_micros'] / 1e6:.6f}"
                        for r in records)
    print(f"      {len(records)} record(s): {summary}")
    check(records and all(r["status"] == 200 for r in records),
          f"{name}: every request the gateway booked was answered (HTTP 200)", json.dumps(records)[:3000])
    check(booked == reported, f"{name}: the records' tokens equal the tool's own report {reported}",
          f"records: {booked}")
    if cost_usd is not None:
        micros = sum(r["cost_micros"] for r in records)
        check(round(cost_usd * 1e6) == micros,
              f"{name}: its cost ${cost_usd:.6f} equals the records' {micros} micro-dollars",
              f"tool: {cost_usd!r}, records: {micros}")
    attempts = envoy_stat(env, "http.gateway.downstream_rq_ws_on_non_ws_route") - ws_before
    if name == "codex":
        check(attempts == 0, f"codex: a provider of its own goes straight to HTTP (WebSocket attempts: {attempts})")
    if name == "codex-builtin":
        first_http = min(r["ts_ms"] - r["latency_ms"] for r in records) - started_ms if records else -1
        print(f"      WebSocket upgrades refused: {attempts}; first HTTP request {first_http / 1000:.2f} s after launch")
        check(attempts >= 1, "codex-builtin: tried a WebSocket on /v1/responses first and the gateway refused it")
        check(0 <= first_http < WS_FALLBACK_MS,
              f"codex-builtin: fell back to HTTP {first_http / 1000:.2f} s after launch (< {WS_FALLBACK_MS / 1000:.0f} s)")
    check(refused == attempts and all(r["request_id"] and r["ts_ms"] > 0 for r in records),
          f"{name}: each refused WebSocket upgrade ({attempts}) left no usage record, only Envoy's `-` ({refused})",
          "\n      ".join(json.dumps(r) for r in records))
    upstream = provider_requests(env)[upstream_seen:]
    for r in upstream:
        print(f"      provider got: {sent(r)}")
    check(upstream and not any(token in v for r in upstream for _, v in r["headers"]),
          f"{name}: the provider got {len(upstream)} request(s), none with the caller's JWT")
    attribution(name, env, records, upstream)
    escapes = watcher.events()[seen:]
    rejected = rejected_packets()
    hosts = sorted({e.get("name") or e.get("to") for e in escapes if e["kind"] != "ready"})
    check(not hosts and rejected == 0, f"{name}: reached nothing but the gateway",
          f"tried: {', '.join(hosts) or '-'}; other packets rejected: {rejected}")


# The client each tool's records must name (its user agent, or Codex's originator).
CLIENTS = {"claude": "claude-code/", "codex": "codex/", "codex-builtin": "codex/", "gemini": "gemini-cli/"}
# The headers the tools send their session id in (Gemini CLI sends none with an API key).
SESSION_HEADERS = ("x-claude-code-session-id", "session-id")


def attribution(name, env, records, upstream):
    """The records name the tool and the session it sent, and the admin API sums the
    session's spend to what its records cost."""
    clients = sorted({str(r.get("client")) for r in records})
    check(records and all(str(r.get("client")).startswith(CLIENTS[name]) for r in records),
          f"{name}: its records name the tool ({', '.join(clients)})")
    sent_sessions = {v for r in upstream for k, v in r["headers"] if k in SESSION_HEADERS}
    sessions = {r.get("session") for r in records}
    check(sessions == (sent_sessions or {None}),
          f"{name}: its records carry the session it sent ({', '.join(map(str, sorted(sent_sessions))) or 'none'})",
          f"records: {sessions}")
    if len(sent_sessions) != 1:
        return
    (session,) = sent_sessions
    day = time.strftime("%Y-%m-%d", time.gmtime())
    want = (len(records), sum(r["cost_micros"] for r in records))
    got, deadline = None, time.time() + 10
    while time.time() < deadline:
        out = in_ns(NS.gw, "curl", "-s", "-H", f"authorization: Bearer {env['CHOKEPOINT_ADMIN_TOKEN']}",
                    f"{env['CHOKEPOINT_POLICY_ADMIN_URL']}/v1/admin/usage?by=session&period={day}&id={session}").stdout
        try:
            rows = json.loads(out)["rows"]
        except (ValueError, KeyError, TypeError):
            rows = []
        got = (rows[0]["requests"], rows[0]["cost_micros"]) if rows else None
        if got == want:
            break
        time.sleep(0.3)
    check(got == want, f"{name}: the admin API sums its session to {want[0]} request(s), {want[1]} micro-dollars",
          f"got {got}")


def main():
    sys.stdout.reconfigure(line_buffering=True)
    if os.geteuid() != 0:
        print("agents: needs root (network namespaces, iptables)\n0 passed, 1 failed")
        return 1
    missing = sorted({b for _, b, _, _ in TOOLS if not (AGENTS_BIN / b).exists()})
    if missing:
        print(f"agents: {', '.join(missing)} not in {AGENTS_BIN} (scripts/test agents installs them)\n0 passed, 1 failed")
        return 1
    tmp = Path(tempfile.mkdtemp(prefix="chokepoint-agents-"))
    tmp.chmod(0o755)
    log_path = tmp / "chokepoint-dev.log"
    stack = watcher = netns_etc = None
    try:
        NS.create((GATEWAY_IP,), ((GATEWAY_IP, GATEWAY_PORT),))
        netns_etc = resolv_conf()
        with open(log_path, "w") as dev_log:
            stack, env = NS.start_stack(tmp, dev_log)
        token = sh(str(BIN / "chokepoint-token"), "agent-user", "--tenant", TEAM,
                   "--key", str(tmp / ".chokepoint" / "dev-key.json")).stdout.strip()
        (tmp / "token").write_text(token + "\n")
        watcher = Watcher(tmp)
        lock_client()
        print(f"      tools in {NS.client} ({CLIENT_IP}): only {GATEWAY} is reachable")
        log = AccessLog(env["CHOKEPOINT_ACCESS_LOG"])
        for name, binary, setup, usage_of in TOOLS:
            if sys.argv[1:] and name not in sys.argv[1:]:
                continue
            one_tool(tmp, env, token, log, watcher, name, binary, setup, usage_of)
    except Exception as e:
        check(False, f"agents test aborted: {e!r}")
    finally:
        stop(stack)
        if watcher:
            stop(watcher.proc)
        NS.close()
        if netns_etc:
            shutil.rmtree(netns_etc, ignore_errors=True)
        if not all(results) and log_path.exists():
            print("---- chokepoint-dev output ----\n" + log_path.read_text(errors="replace")[-4000:])
        if os.environ.get("CHOKEPOINT_KEEP_TMP"):
            print(f"      kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    passed = sum(results)
    print(f"{passed} passed, {len(results) - passed} failed")
    return 0 if passed == len(results) and results else 1


if __name__ == "__main__":
    sys.exit(main())
