"""The processes around the mesh's gateway, each on 127.0.0.1 and a port of its own
choosing, as dev/src/stack/ starts them for the local stack: Redis, the policy service,
the mock provider, the mock identity provider, and Envoy. Each is stopped by its PID."""

import os
import secrets
import signal
import subprocess
import time
from pathlib import Path


class Proc:
    def __init__(self, name, argv, log, env=None):
        self.name, self.log = name, Path(log)
        self.p = subprocess.Popen(argv, stdout=open(self.log, "wb"), stderr=subprocess.STDOUT,
                                  env=env, start_new_session=True)

    def alive(self):
        return self.p.poll() is None

    def stop(self):
        if self.alive():
            os.kill(self.p.pid, signal.SIGTERM)
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self.p.pid, signal.SIGKILL)
                self.p.wait()

    def tail(self, n=6000):
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""


def wait_file(path, proc, seconds=15):
    """The text of `path` once `proc` has written it (an --addr-file)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")
        time.sleep(0.05)
    raise RuntimeError(f"{proc.name} wrote no {path.name} in {seconds}s:\n{proc.tail()}")


def port_of(addr):
    return int(addr.rsplit(":", 1)[1])


class Services:
    """Redis, the policy service, the mock provider and the mock IdP, started in `run`
    from the binaries in `bin_dir` (dev/src/stack/{redis.rs,mod.rs})."""

    def __init__(self, run, bin_dir):
        self.run, self.bin = Path(run), Path(bin_dir)
        self.procs = []
        self.admin_token = "ck-admin-" + secrets.token_hex(16)
        self.policy_token = secrets.token_hex(32)
        self.mock_key = "sk-mock-" + secrets.token_hex(16)

    def start(self, jwks_file):
        sock = self.run / "redis.sock"
        redis = self._spawn("redis", ["redis-server", "--port", "0", "--unixsocket", str(sock),
                                      "--unixsocketperm", "700", "--save", "", "--appendonly", "no",
                                      "--dir", str(self.run)])
        deadline = time.monotonic() + 10
        while not sock.exists():
            if time.monotonic() > deadline or not redis.alive():
                raise RuntimeError(f"redis did not start:\n{redis.tail()}")
            time.sleep(0.05)
        env = dict(os.environ, CHOKEPOINT_POLICY_TOKEN=self.policy_token,
                   CHOKEPOINT_ADMIN_TOKEN=self.admin_token, CHOKEPOINT_REDIS_URL=f"unix://{sock}")
        policy = self._spawn("policy", [self.bin / "chokepoint-policy", "serve",
                                        "--listen", "127.0.0.1:0", "--addr-file", self.run / "policy.addr",
                                        "--admin-listen", "127.0.0.1:0", "--admin-addr-file", self.run / "policy-admin.addr"],
                             env=env)
        self.policy_port = port_of(wait_file(self.run / "policy.addr", policy))
        self.policy_admin = "http://" + wait_file(self.run / "policy-admin.addr", policy)
        mock = self._spawn("mock", [self.bin / "chokepoint-mock", "--listen", "127.0.0.1:0", "--name", "mesh-mock",
                                    "--addr-file", self.run / "mock.addr"],
                           env=dict(os.environ, CHOKEPOINT_MOCK_API_KEY=self.mock_key))
        self.mock_port = port_of(wait_file(self.run / "mock.addr", mock))
        idp = self._spawn("idp", [self.bin / "chokepoint-idp", "--listen", "127.0.0.1:0",
                                  "--jwks-file", jwks_file, "--addr-file", self.run / "idp.addr"])
        self.idp_port = port_of(wait_file(self.run / "idp.addr", idp))

    def _spawn(self, name, argv, env=None):
        p = Proc(name, [str(a) for a in argv], self.run / f"{name}.log", env)
        self.procs.append(p)
        return p

    def stop(self):
        for p in reversed(self.procs):
            p.stop()

    def logs(self):
        return "".join(f"----- {p.name} ({p.log}) -----\n{p.tail()}\n" for p in self.procs)
