#!/usr/bin/env python3
"""No second path, proven on this machine: a client that may reach only the gateway.

Two network namespaces joined by a veth pair, nothing of the host's own interfaces used:
  * "gw" holds the local stack (`chokepoint-dev`: Redis, the policy service, the mock
    provider, Envoy with the filter) on its loopback, and three addresses on its veth end
    standing for what a cluster would have: the gateway's pod (10.77.0.1, DNAT to the
    gateway listener), cluster DNS (10.77.0.53; a UDP echo answers port 53 on every
    address, so only the client's rules decide who hears back) and the provider
    on the internet (10.77.0.9, DNAT to the mock provider);
  * "client" is a workload pod of a locked-down namespace (10.77.0.2).
The client's egress rules are derived from the NetworkPolicy that `chokepoint-config render
envoy/examples/policy.yaml envoy-gateway-lockdown` renders for its namespace, peer by peer
(`egress_rules`), and installed in its OUTPUT chain. Checks: before the rules, the mock
provider answers the client directly (so the refusal below is the rules' doing); after
them, the direct call gets no connection, DNS still answers, DNS-port traffic to the
provider's address does not, and the same call through the gateway is answered and booked
in the ledger.

Needs root (ip netns, iptables). Standalone: tests/lockdown/run.py; binaries from
CHOKEPOINT_BIN_DIR (default target/debug), the renderer from CHOKEPOINT_CONFIG_BIN (default
CHOKEPOINT_BIN_DIR/chokepoint-config), Envoy and the .wasm as scripts/run finds them.
Prints each check and ends with "N passed, M failed"; exit 1 on any failure.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from netns import BIN, GATEWAY_PORT, MOCK_PORT, ROOT, Namespaces, in_ns, sh, stop  # noqa: E402

CONFIG = Path(os.environ.get("CHOKEPOINT_CONFIG_BIN", BIN / "chokepoint-config"))

NS = Namespaces(f"cpl{os.getpid()}")
GW_NS, CLIENT_NS = NS.gw, NS.client
GATEWAY_POD_IP, DNS_POD_IP, PROVIDER_IP = "10.77.0.1", "10.77.0.53", "10.77.0.9"
TEAM = f"lockdown-{os.getpid()}"

# The pods of the stand-in cluster: namespace, labels as their controllers set them
# (not taken from the policy being tested), address.
PODS = [
    ("envoy-gateway-system", {
        "app.kubernetes.io/name": "envoy", "app.kubernetes.io/component": "proxy",
        "app.kubernetes.io/managed-by": "envoy-gateway",
        "gateway.envoyproxy.io/owning-gateway-name": "eg",
        "gateway.envoyproxy.io/owning-gateway-namespace": "chokepoint",
        "pod-template-hash": "5d8f7c9b6"}, GATEWAY_POD_IP),
    ("kube-system", {"k8s-app": "kube-dns", "pod-template-hash": "7db6d8ff4d"}, DNS_POD_IP),
]

results = []


def check(ok, what, detail=""):
    results.append(bool(ok))
    print(f"{'PASS' if ok else 'FAIL'}  {what}" + (f"\n      {detail}" if detail and not ok else ""))
    return ok


# ---- from the rendered NetworkPolicy to the client's rules --------------------------------

def selects(selector, labels):
    """A LabelSelector of matchLabels (the only form the lockdown renders) against labels;
    matchExpressions are refused rather than misread."""
    if "matchExpressions" in selector:
        raise ValueError(f"matchExpressions not supported here: {selector}")
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def peer_addresses(peer, policy_namespace):
    """The addresses a NetworkPolicy egress peer admits in the stand-in cluster: ipBlock
    as written; pods by namespaceSelector (absent: the policy's own namespace) and
    podSelector (absent: every pod)."""
    if "ipBlock" in peer:
        if peer["ipBlock"].get("except"):
            raise ValueError("ipBlock.except not supported here")
        return [peer["ipBlock"]["cidr"]]
    out = []
    for namespace, labels, ip in PODS:
        ns_labels = {"kubernetes.io/metadata.name": namespace}
        ns_ok = (selects(peer["namespaceSelector"], ns_labels) if "namespaceSelector" in peer
                 else namespace == policy_namespace)
        if ns_ok and selects(peer.get("podSelector", {}), labels):
            out.append(f"{ip}/32")
    return out


def egress_rules(np):
    """iptables OUTPUT rules that enforce one NetworkPolicy's egress on the client:
    with Egress in policyTypes everything not allowed is dropped (the chain's policy);
    each rule's `to` peers (none: anywhere) times its `ports` (none: every port) are
    allowed; replies to allowed connections pass (NetworkPolicy is stateful), and so does
    the pod's own loopback, which no NetworkPolicy governs."""
    spec = np["spec"]
    assert "Egress" in spec["policyTypes"], "not an egress policy"
    rules = [["-A", "OUTPUT", "-o", "lo", "-j", "ACCEPT"],
             ["-A", "OUTPUT", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"]]
    for rule in spec.get("egress", []):
        peers = rule.get("to")
        addresses = (["0.0.0.0/0"] if peers is None else
                     [a for p in peers for a in peer_addresses(p, np["metadata"]["namespace"])])
        ports = rule.get("ports") or [None]
        for a in addresses:
            for port in ports:
                r = ["-A", "OUTPUT", "-d", a]
                if port is not None:
                    if "endPort" in port or not isinstance(port.get("port"), int):
                        raise ValueError(f"port form not supported here: {port}")
                    r += ["-p", port.get("protocol", "TCP").lower(), "--dport", str(port["port"])]
                rules.append(r + ["-j", "ACCEPT"])
    return rules


# ---- the stand-in cluster ------------------------------------------------------------------

def udp_echo():
    """Cluster DNS's stand-in: answers each datagram to port 53 with its bytes, on every
    address of the gw namespace, so that only the client's rules decide who hears back."""
    code = ("import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
            "s.bind(('0.0.0.0',53))\n"
            "while True:\n d,a=s.recvfrom(512)\n s.sendto(d,a)\n")
    return subprocess.Popen(["ip", "netns", "exec", GW_NS, sys.executable, "-c", code],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def udp_answered(ip):
    code = ("import socket,sys\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.settimeout(2)\n"
            f"s.sendto(b'q',('{ip}',53))\n"
            "try:\n sys.exit(0 if s.recvfrom(512)[0]==b'q' else 1)\nexcept OSError:\n sys.exit(1)\n")
    return in_ns(CLIENT_NS, sys.executable, "-c", code, check_rc=False).returncode == 0


def curl(url, *args):
    """From the client: (curl's exit code, HTTP status, body)."""
    out = in_ns(CLIENT_NS, "curl", "-sS", "--connect-timeout", "2", "--max-time", "10", "-o", "-",
                "-w", "\n%{http_code}", *args, url, check_rc=False)
    body, _, status = out.stdout.rpartition("\n")
    return out.returncode, status, body + out.stderr


def chat(url, token):
    return curl(f"{url}/v1/chat/completions", "-H", f"authorization: Bearer {token}",
                "-H", "content-type: application/json",
                "-d", json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}))


def team_requests(env):
    """The requests the ledger holds for TEAM this month (the admin CLI, in the gw namespace)."""
    out = in_ns(GW_NS, str(BIN / "chokepoint-policy"), "usage", "--team", TEAM, "--json",
                "--admin-url", env["CHOKEPOINT_POLICY_ADMIN_URL"], check_rc=False,
                env={**os.environ, "CHOKEPOINT_ADMIN_TOKEN": env["CHOKEPOINT_ADMIN_TOKEN"]})
    if out.returncode != 0:
        return None, out.stderr
    return json.loads(out.stdout), out.stdout


def main():
    sys.stdout.reconfigure(line_buffering=True)
    if os.geteuid() != 0:
        print("lockdown: needs root (network namespaces, iptables)\n0 passed, 1 failed")
        return 1
    tmp = Path(tempfile.mkdtemp(prefix="chokepoint-lockdown-"))
    log_path = tmp / "chokepoint-dev.log"
    stack = echo = None
    try:
        rendered = sh(str(CONFIG), "render", str(ROOT / "envoy/examples/policy.yaml"), "envoy-gateway-lockdown").stdout
        policies = [d for d in yaml.safe_load_all(rendered) if d]
        check(policies and all(d["kind"] == "NetworkPolicy" for d in policies),
              f"envoy-gateway-lockdown renders {len(policies)} NetworkPolicies", rendered)
        np = policies[0]
        print(f"      the client stands for a pod of {np['metadata']['namespace']!r}; its egress rules:")
        rules = egress_rules(np)
        for r in rules:
            print("        iptables " + " ".join(r))

        NS.create((GATEWAY_POD_IP, DNS_POD_IP, PROVIDER_IP),
                  ((GATEWAY_POD_IP, GATEWAY_PORT), (PROVIDER_IP, MOCK_PORT)))
        echo = udp_echo()
        with open(log_path, "w") as log:
            stack, env = NS.start_stack(tmp, log)
        gateway = f"http://{GATEWAY_POD_IP}:{GATEWAY_PORT}"
        provider = f"http://{PROVIDER_IP}:{MOCK_PORT}"
        token = sh(str(BIN / "chokepoint-token"), "lockdown-user", "--tenant", TEAM,
                   "--key", str(tmp / ".chokepoint" / "dev-key.json")).stdout.strip()

        rc, status, body = chat(provider, "sk-anything")
        check(rc == 0 and status.isdigit() and status != "000",
              f"before the lockdown the client reaches the provider directly (HTTP {status})", body)
        check(udp_answered(PROVIDER_IP), "before the lockdown port 53 of the provider's address answers")

        in_ns(CLIENT_NS, "iptables", "-P", "OUTPUT", "DROP")
        for r in rules:
            in_ns(CLIENT_NS, "iptables", *r)

        rc, status, body = chat(provider, "sk-anything")
        check(rc != 0 and status == "000",
              f"locked down, the direct call to the provider gets no connection (curl exit {rc})", body)
        check(udp_answered(DNS_POD_IP), "locked down, cluster DNS still answers")
        check(not udp_answered(PROVIDER_IP), "locked down, port 53 elsewhere (the provider's address) does not")

        before, raw = team_requests(env)
        check(before is not None, "the ledger answers for the team", raw)
        rc, status, body = chat(gateway, token)
        check(status == "200" and '"chat.completion"' in body,
              f"the same call through the gateway is answered (HTTP {status})", body)
        booked = False
        deadline = time.time() + 15
        while time.time() < deadline and not booked:
            after, raw = team_requests(env)
            booked = after is not None and json.dumps(after) != json.dumps(before) and '"requests": 1' in json.dumps(after)
            time.sleep(0.3)
        check(booked, f"the gateway's call is booked in the ledger for team {TEAM}",
              f"before: {before}\n      after: {raw}")
        log_text = Path(env["CHOKEPOINT_ACCESS_LOG"]).read_text(errors="replace")
        check(f'"{TEAM}"' in log_text, "and written to the usage access log")
    except Exception as e:
        check(False, f"lockdown test aborted: {e!r}")
    finally:
        stop(stack)
        stop(echo)
        NS.close()
        if not all(results) and log_path.exists():
            print("---- chokepoint-dev output ----\n" + log_path.read_text(errors="replace")[-6000:])
        shutil.rmtree(tmp, ignore_errors=True)
    passed = sum(results)
    print(f"{passed} passed, {len(results) - passed} failed")
    return 0 if passed == len(results) and results else 1


if __name__ == "__main__":
    sys.exit(main())
