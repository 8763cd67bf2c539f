"""What the agents layer's scenarios share: the namespaces the tools run in (only the
gateway reachable, everything else caught), the checks, the gateway's records (its access
log), what the mock provider received, and running a tool.

Each scenario is a module with `run(ctx, tools)` (tools: the tool names asked for, all by
default) that calls `check` for what it proves; tests/agents/run.py starts the stack once
and runs them in order."""

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from netns import GATEWAY_PORT, MOCK_PORT, ROOT, Namespaces, in_ns  # noqa: E402

from dataclasses import dataclass  # noqa: E402

AGENTS_BIN = Path(os.environ.get("CHOKEPOINT_AGENTS_BIN", ROOT / ".agents" / "node_modules" / ".bin"))
NS = Namespaces(f"cpa{os.getpid()}")
GATEWAY_IP = "10.77.0.1"
GATEWAY = f"http://{GATEWAY_IP}:{GATEWAY_PORT}"
CATCH_PORT = 15001  # escape_watch.py's TCP catcher, in the client namespace
TEAM = "agents"
TOOL_TIMEOUT = 90

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


def allow(ip, port):
    """Lets the client namespace reach one more service, at `ip` on the gw veth end and
    `port` on the gw namespace's loopback (the identity provider the token helper asks):
    a connection there is neither caught nor rejected. Inserted ahead of lock_client()'s
    rules, so REJECT stays last (rejected_packets)."""
    NS.expose(ip, port)
    c = NS.client
    in_ns(c, "iptables", "-t", "nat", "-I", "OUTPUT", "1", "-d", ip, "-p", "tcp", "--dport", str(port), "-j", "RETURN")
    in_ns(c, "iptables", "-I", "OUTPUT", "1", "-d", ip, "-p", "tcp", "--dport", str(port), "-j", "ACCEPT")


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


def run_command(argv, env, cwd, etc=None):
    """Any command in the client namespace (a wrapper around a tool, say). With `etc`, a
    directory laid over /etc in a mount namespace of the command's own (an overlay:
    /etc's files plus etc's), so a tool reads system-wide settings an administrator would
    deploy without the host's /etc being written."""
    netns = ["ip", "netns", "exec", NS.client, *argv]
    if etc is None:
        cmd = netns
    else:
        upper, work = Path(etc), Path(etc).with_name(Path(etc).name + ".work")
        work.mkdir(exist_ok=True)
        mount = f"mount -t overlay overlay -o lowerdir=/etc,upperdir={upper},workdir={work} /etc"
        cmd = ["unshare", "--mount", "--propagation", "private", "sh", "-c", f'{mount} && exec "$@"', "sh", *netns]
    start = time.time()
    out = subprocess.run(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                         timeout=TOOL_TIMEOUT)
    return out, time.time() - start


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




@dataclass
class Context:
    """The running stack and what every scenario needs of it."""
    tmp: Path
    env: dict  # chokepoint-dev's dev.env
    token: str  # the agent user's JWT (also in tmp/token, which apiKeyHelper prints)
    log: AccessLog
    watcher: Watcher

    def admin(self, path):
        """GET on the policy service's admin API, as JSON (None when not JSON)."""
        out = in_ns(NS.gw, "curl", "-s", "-H", f"authorization: Bearer {self.env['CHOKEPOINT_ADMIN_TOKEN']}",
                    f"{self.env['CHOKEPOINT_POLICY_ADMIN_URL']}{path}").stdout
        try:
            return json.loads(out)
        except ValueError:
            return None


def tool_cost_matches(cost_usd, records):
    """A tool's own dollar figure against the records: the gateway rounds each request up
    to the micro-dollar and the tool sums unrounded figures, so the records' sum is the
    tool's rounded up, plus less than one micro-dollar for each record past the first."""
    floor = math.ceil(round(cost_usd * 1e6, 3))  # round(, 3): the float noise of the tool's sum
    return bool(records) and floor <= sum(r["cost_micros"] for r in records) < floor + len(records)


@dataclass
class Observed:
    """A tool's run and what the gateway, the provider and the client namespace saw of it."""
    out: subprocess.CompletedProcess
    took: float
    records: list  # the usage records it caused
    upstream: list  # the requests the mock provider got
    escapes: list  # what escape_watch.py caught (DNS queries, other connections)
    rejected: int  # other packets the namespace's last rule rejected

    def detail(self, tail=3000):
        return (f"exit {self.out.returncode}\n      stdout: {self.out.stdout[-tail:]}"
                f"\n      stderr: {self.out.stderr[-tail:]}")


def observe(ctx, what, run):
    """Runs `run()` (-> (CompletedProcess, seconds)) and collects what it caused; on a
    timeout, fails the check "`what` within TOOL_TIMEOUT" and returns None."""
    offset, upstream_seen, seen = ctx.log.size(), len(provider_requests(ctx.env)), len(ctx.watcher.events())
    in_ns(NS.client, "iptables", "-Z", "OUTPUT")
    try:
        out, took = run()
    except subprocess.TimeoutExpired as e:
        check(False, f"{what} within {TOOL_TIMEOUT} s", f"stdout: {e.stdout}\n      stderr: {e.stderr}")
        return None
    records = ctx.log.since(offset)
    return Observed(out, took, records, provider_requests(ctx.env)[upstream_seen:],
                    [e for e in ctx.watcher.events()[seen:] if e["kind"] != "ready"], rejected_packets())


def answered(label, run, usage_of):
    """What the tool printed of its answer and usage, `usage_of`'s (answer, usage, cost),
    once it exited 0; else None, with the failed check."""
    if not check(run.out.returncode == 0, f"{label}: exits 0 ({run.took:.1f} s)", run.detail()):
        return None
    try:
        return usage_of(run.out.stdout)
    except (ValueError, KeyError, TypeError) as e:
        check(False, f"{label}: prints its usage", f"{e!r}\n      stdout: {run.out.stdout[-3000:]}")
        return None


def reached_only(label, run, what="the gateway"):
    hosts = sorted({e.get("name") or e.get("to") for e in run.escapes})
    check(not hosts and run.rejected == 0, f"{label}: reached nothing but {what}",
          f"tried: {', '.join(hosts) or '-'}; other packets rejected: {run.rejected}")


def usage_matches(label, records, reported, cost_usd=None):
    """The records' tokens, summed per model (or over all when the tool does not say
    which), equal the tool's own report; its dollar figure, when it gives one, the
    records' cost."""
    fields = sorted({f for u in reported.values() for f in u})
    booked = by_model(records, fields, all_models=ALL_MODELS in reported)
    check(booked == reported, f"{label}: the records' tokens equal the tool's own report {reported}",
          f"records: {booked}")
    if cost_usd is not None:
        micros = sum(r["cost_micros"] for r in records)
        check(tool_cost_matches(cost_usd, records),
              f"{label}: its cost ${cost_usd:.6f} is the records' {micros} micro-dollars, each request rounded up",
              f"tool: {cost_usd!r}, records: {micros}")
