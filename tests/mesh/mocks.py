"""The mock provider and the mock identity provider, on 127.0.0.1 and ports of their own
choosing, as dev/src/stack/mod.rs starts them for the local stack."""

import os
import secrets
from pathlib import Path

from proc import Proc, port_of, wait_file


class Mocks:
    def __init__(self, run, bin_dir):
        self.run, self.bin = Path(run), Path(bin_dir)
        self.procs = []
        self.mock_key = "sk-mock-" + secrets.token_hex(16)

    def start(self, jwks_file):
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
