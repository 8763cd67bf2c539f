"""A private Redis and the policy service on free ports, for the spend page's browser test
(run.py) and benchmark (bench.py): Redis on a unix socket in a temp dir, the service from
$CHOKEPOINT_BIN_DIR (default target/debug) with an admin and a gateway token. Both are
stopped by PID on exit, and the service's log is kept in the test's log directory."""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness import http, wait_until  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent.parent
ADMIN_TOKEN = "ui-test-admin-token-7c41"
GATEWAY_TOKEN = "ui-test-gateway-token-2b9e-0123456789"


class Stack:
    def __init__(self, logs, audit_max_len=None):
        self.logs = Path(logs)
        self.logs.mkdir(parents=True, exist_ok=True)
        self.audit_max_len = audit_max_len
        self.procs = []

    def __enter__(self):
        self.dir = tempfile.TemporaryDirectory(prefix="chokepoint-ui-")
        sock = Path(self.dir.name) / "redis.sock"
        self.procs.append(subprocess.Popen(
            ["redis-server", "--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700",
             "--save", "", "--appendonly", "no", "--dir", self.dir.name],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        if not wait_until(sock.exists, 10):
            raise RuntimeError("redis-server did not start")
        bin_dir = Path(os.environ.get("CHOKEPOINT_BIN_DIR", ROOT / "target" / "debug"))
        addr, admin_addr = Path(self.dir.name) / "addr", Path(self.dir.name) / "admin-addr"
        args = [str(bin_dir / "chokepoint-policy"), "serve", "--listen", "127.0.0.1:0",
                "--admin-listen", "127.0.0.1:0", "--addr-file", str(addr),
                "--admin-addr-file", str(admin_addr), "--redis", f"unix://{sock}",
                "--requests-per-window", "100000"]
        if self.audit_max_len:
            args += ["--audit-max-len", str(self.audit_max_len)]
        env = dict(os.environ, CHOKEPOINT_ADMIN_TOKEN=ADMIN_TOKEN,
                   CHOKEPOINT_POLICY_TOKEN=GATEWAY_TOKEN)
        self.log = open(self.logs / "policy.log", "w")
        self.procs.append(subprocess.Popen(args, env=env, stdout=self.log, stderr=subprocess.STDOUT))
        if not wait_until(lambda: addr.exists() and admin_addr.exists()
                          and addr.read_text().strip() and admin_addr.read_text().strip(), 20):
            raise RuntimeError(f"the policy service did not start: see {self.logs / 'policy.log'}")
        self.gateway = f"http://{addr.read_text().strip()}"
        self.admin = f"http://{admin_addr.read_text().strip()}"
        return self

    def __exit__(self, *exc):
        for proc in reversed(self.procs):
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.log.close()
        self.dir.cleanup()

    def book(self, records):
        status, body = http("POST", f"{self.gateway}/v1/usage", GATEWAY_TOKEN, {"records": records})
        if status != 200 or json.loads(body).get("dead_lettered"):
            raise RuntimeError(f"POST /v1/usage: {status} {body[:500]}")
        return json.loads(body)

    def authorize(self, body):
        status, answer = http("POST", f"{self.gateway}/v1/authorize", GATEWAY_TOKEN, body)
        if status != 200:
            raise RuntimeError(f"POST /v1/authorize: {status} {answer[:500]}")
        return json.loads(answer)

    def api(self, method, path, body=None):
        status, answer = http(method, f"{self.admin}{path}", ADMIN_TOKEN, body)
        if status != 200:
            raise RuntimeError(f"{method} {path}: {status} {answer[:500]}")
        return json.loads(answer)


def now_ms():
    return int(time.time() * 1000)
