"""What the network-namespace proofs (tests/lockdown/run.py, tests/agents/run.py) share: two
namespaces joined by a veth pair, nothing of the host's own interfaces used, and the local
stack started inside one of them.

  * "gw" holds the stack (`chokepoint-dev`: Redis, the policy service, the mock provider,
    Envoy with the filter) on its loopback, at chokepoint-dev's default ports (the
    namespace is private, so they cannot collide), and addresses on its veth end that reach
    stack ports by DNAT;
  * "client" is where the code under test runs, with only 10.77.0.2 and its loopback.

Needs root (ip netns, iptables)."""

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(os.environ.get("CHOKEPOINT_BIN_DIR", ROOT / "target" / "debug"))
ENVOY = Path(os.environ.get("CHOKEPOINT_ENVOY", ROOT / ".venv" / "bin" / "envoy"))
WASM = Path(os.environ.get("CHOKEPOINT_WASM", ROOT / "target" / "wasm" / "chokepoint_filter.wasm"))

CLIENT_IP = "10.77.0.2"
GATEWAY_PORT, MOCK_PORT = 10000, 8090  # chokepoint-dev's defaults, on the gw namespace's loopback


def sh(*args, check_rc=True, **kw):
    out = subprocess.run(list(args), capture_output=True, text=True, **kw)
    if check_rc and out.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: exit {out.returncode}: {out.stderr.strip()}")
    return out


def in_ns(ns, *args, **kw):
    return sh("ip", "netns", "exec", ns, *args, **kw)


def stop(proc):
    """SIGTERM to a process group started with start_new_session, SIGKILL after 10 s."""
    if proc and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


class Namespaces:
    """The gw and client namespaces, named after `tag` (unique per run), removed by close()."""

    def __init__(self, tag):
        self.gw, self.client = f"{tag}-gw", f"{tag}-client"
        self.gw_if, self.client_if = f"{tag}g", f"{tag}c"

    def create(self, gw_addresses, dnat):
        """gw_addresses on the gw veth end; dnat maps (address, port) there to the same port
        on the gw namespace's loopback."""
        sh("ip", "netns", "add", self.gw)
        sh("ip", "netns", "add", self.client)
        sh("ip", "link", "add", self.gw_if, "netns", self.gw, "type", "veth",
           "peer", "name", self.client_if, "netns", self.client)
        for ns in (self.gw, self.client):
            in_ns(ns, "ip", "link", "set", "lo", "up")
        for ip in gw_addresses:
            in_ns(self.gw, "ip", "addr", "add", f"{ip}/24", "dev", self.gw_if)
        in_ns(self.gw, "ip", "link", "set", self.gw_if, "up")
        in_ns(self.client, "ip", "addr", "add", f"{CLIENT_IP}/24", "dev", self.client_if)
        in_ns(self.client, "ip", "link", "set", self.client_if, "up")
        # The stack listens on the gw namespace's loopback; its veth addresses reach it by
        # DNAT (route_localnet lets a packet from the veth be routed to 127.0.0.1).
        in_ns(self.gw, "sysctl", "-qw", f"net.ipv4.conf.{self.gw_if}.route_localnet=1")
        for ip, port in dnat:
            in_ns(self.gw, "iptables", "-t", "nat", "-A", "PREROUTING", "-d", ip, "-p", "tcp",
                  "--dport", str(port), "-j", "DNAT", "--to-destination", f"127.0.0.1:{port}")

    def expose(self, ip, port):
        """One more address on the gw veth end, reaching `port` on the gw namespace's
        loopback by DNAT, as create() does for its own."""
        in_ns(self.gw, "ip", "addr", "add", f"{ip}/24", "dev", self.gw_if)
        in_ns(self.gw, "iptables", "-t", "nat", "-A", "PREROUTING", "-d", ip, "-p", "tcp",
              "--dport", str(port), "-j", "DNAT", "--to-destination", f"127.0.0.1:{port}")

    def start_stack(self, tmp, log, policy_files=("chokepoint.yaml", "prices.yaml")):
        """chokepoint-dev in the gw namespace, from copies of envoy/'s policy files in its
        own root `tmp` (so a developer's .chokepoint is left alone); (process, dev.env)."""
        (tmp / "envoy").mkdir(exist_ok=True)
        for f in policy_files:
            shutil.copy(ROOT / "envoy" / f, tmp / "envoy" / f)
        env = {k: v for k, v in os.environ.items()
               if not (k.endswith("_API_KEY") or k.endswith("_BASE_URL") or k == "AZURE_OPENAI_ENDPOINT")}
        env.update(CHOKEPOINT_BIN_DIR=str(BIN), CHOKEPOINT_ENVOY=str(ENVOY), CHOKEPOINT_WASM=str(WASM),
                   CHOKEPOINT_MCP_DIR=str(ROOT / ".mcp"))
        proc = subprocess.Popen(["ip", "netns", "exec", self.gw, str(BIN / "chokepoint-dev"), "--root", str(tmp),
                                 "--gateway-port", str(GATEWAY_PORT), "--mock-port", str(MOCK_PORT)],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
        dev_env = tmp / ".chokepoint" / "dev.env"
        deadline = time.time() + 180
        while time.time() < deadline:
            if proc.poll() is not None:
                raise RuntimeError("chokepoint-dev exited early")
            if dev_env.exists() and dev_env.stat().st_size > 0:
                return proc, dict(line.split("=", 1) for line in dev_env.read_text().splitlines() if "=" in line)
            time.sleep(0.5)
        raise RuntimeError("no dev.env after 180 s")

    def close(self):
        for ns in (self.client, self.gw):
            sh("ip", "netns", "del", ns, check_rc=False)
