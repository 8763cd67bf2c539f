"""A process of the mesh layer (Envoy, a mock, a pod's container): started in a session of
its own with its output in a log file, stopped by its PID."""

import os
import signal
import socket
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


def free_port():
    """A port of 127.0.0.1 nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

