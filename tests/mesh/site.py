"""What a mesh delivery's translation is given: the machine the mesh's Envoy runs on.

A delivery module (tests/mesh/istio.py, tests/mesh/envoy_gateway.py) exposes functions
`(docs: list[dict], site: Site) -> dict`: from the rendered resources of one target, the
Envoy bootstrap that the mesh's control plane would give its gateway, with the addresses,
ports and files of this machine where the mesh would have its own. Any extra file the
gateway reads (an ECDS resource, say) is written into `site.run_dir`.
"""

import ipaddress
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Site:
    # Where a translation writes its files (ECDS file, access log).
    run_dir: Path
    # The gateway listener (127.0.0.1).
    listen_port: int
    # Envoy admin (127.0.0.1).
    admin_port: int
    # The filter .wasm as the mesh's agent holds it (a local file), and its sha256.
    wasm_path: Path
    wasm_sha256: str
    # DNS stand-in: every host name in the manifests -> an IP.
    addresses: dict[str, str]
    # A Kubernetes Service's name and port -> the endpoint EDS (or, behind its cluster IP,
    # kube-proxy) gives for it: its pod's targetPort (tests/mesh/pod.py: service_endpoints).
    services: dict[tuple[str, int], tuple[str, int]]
    # Where the mesh's access log must be written.
    access_log: Path

    def endpoint(self, host, port):
        """(ip, port) a connection to host:port reaches: a Service's pod, or the host's
        address on the same port."""
        if (host, port) in self.services:
            return self.services[(host, port)]
        if host not in self.addresses and _is_ip(host):
            # An address needs no resolving (an ip Backend endpoint).
            return host, port
        if host not in self.addresses:
            raise KeyError(f"{host}:{port} is neither a rendered Service's port "
                           f"({sorted(f'{h}:{p}' for h, p in self.services)}) nor a known host")
        return self.addresses[host], port


def _is_ip(host):
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False
