#!/usr/bin/env python3
"""The coding agents as their users run them, through the gateway and nowhere else.

Claude Code, Codex and Gemini CLI (npm, pinned; scripts/lib.sh's ensure_agents puts them in
.agents/) run headless through the local stack's gateway, with the settings docs/agents.md
gives (tools.py is where they are tested), in the scenarios of SCENARIOS, each a module of
this directory. one_prompt.py, for instance:
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
    the tool's check and is printed. fleet.py adds one more reachable address, the mock
    identity provider the token helper asks (fleet.py says what it proves).

The stack (chokepoint-dev, from a copy of envoy/'s policy files in a temp root) runs in its
own namespace, as in tests/lockdown/run.py, rather than on the host: the tools' namespace
then reaches exactly one address, and the stack's fixed default ports cannot collide with a
developer's stack. Every tool gets a fresh HOME (and its config home) in the temp root, so
nothing of this machine's user configuration is read or written.

Needs root. Binaries from CHOKEPOINT_BIN_DIR (default target/debug); the tools from
CHOKEPOINT_AGENTS_BIN (default .agents/node_modules/.bin). Prints each check and ends with
"N passed, M failed"; exit 1 on any failure."""

import os
import shutil
import sys
import tempfile
from pathlib import Path

import extras
import fleet
import guard
import harness
import loop
import mcp
import one_prompt
import refusals
from harness import AGENTS_BIN, GATEWAY, GATEWAY_IP, NS, TEAM, AccessLog, Context, Watcher, check, lock_client, resolv_conf
from netns import BIN, CLIENT_IP, GATEWAY_PORT, sh, stop
from tools import TOOLS

# In order; each is a module with run(ctx, tools).
SCENARIOS = [one_prompt, extras, loop, guard, mcp, refusals, fleet]


def main():
    sys.stdout.reconfigure(line_buffering=True)
    if os.geteuid() != 0:
        print("agents: needs root (network namespaces, iptables)\n0 passed, 1 failed")
        return 1
    tools = sys.argv[1:] or [name for name, _, _, _ in TOOLS]
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
        ctx = Context(tmp, env, token, AccessLog(env["CHOKEPOINT_ACCESS_LOG"]), watcher)
        for scenario in SCENARIOS:
            print(f"---- {scenario.__name__} ----")
            scenario.run(ctx, tools)
    except Exception as e:
        check(False, f"agents test aborted: {e!r}")
    finally:
        stop(stack)
        if watcher:
            stop(watcher.proc)
        NS.close()
        if netns_etc:
            shutil.rmtree(netns_etc, ignore_errors=True)
        if not all(harness.results) and log_path.exists():
            print("---- chokepoint-dev output ----\n" + log_path.read_text(errors="replace")[-4000:])
        if os.environ.get("CHOKEPOINT_KEEP_TMP"):
            print(f"      kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    passed = sum(harness.results)
    print(f"{passed} passed, {len(harness.results) - passed} failed")
    return 0 if passed == len(harness.results) and harness.results else 1


if __name__ == "__main__":
    sys.exit(main())
