"""A kubelet's part for one pod of a rendered Deployment or StatefulSet, on this machine: the
container's process runs with the command line, environment, files and ports its manifest
gives, so a test exercises what was rendered, not a hand-written command.

What is read (anything else the manifest holds is not):
- the workload (apps/v1 Deployment or StatefulSet): `metadata.namespace`,
  `spec.template.metadata.labels` (what a Service selects), `spec.template.spec.volumes`
  (`configMap.name`), a StatefulSet's `spec.volumeClaimTemplates`, and
  `spec.template.spec.containers`, exactly one, of which:
  - `command` + `args`: the process, `command[0]` looked up on the image's PATH (here the
    directories the caller gives: the repository's binaries stand for the image);
  - `env`: `value`, or `valueFrom.secretKeyRef` {name, key} of a Secret the test created in
    the pod's namespace; any other source, or a Secret or key the test did not create, is
    refused (`PodError`), as a kubelet refuses to start the container;
  - `ports` {name, containerPort};
  - `volumeMounts` {name, mountPath}: a ConfigMap volume is a directory with one file per
    key of its `data`, a claim template an empty directory;
  - `readinessProbe`, `livenessProbe`: `httpGet` {path, port}, `tcpSocket` {port},
    `exec` {command}; a port by name or number of the container's `ports`;
- Secret: `metadata` {name, namespace}, `stringData` or `data` (base64);
- ConfigMap: `metadata` {name, namespace}, `data`;
- Service: `metadata` {name, namespace}, `spec.selector`, `spec.ports` {port, targetPort}.
Not read: the image, resources, securityContext, the service account, replicas (one pod
runs), the update strategy.

The substitutions, each listed in `Pod.substitutions`, are the only differences from the
manifest; each stands for what a pod network or a volume would give:
- listen addresses: a pod has its own IP and ports; here pods share 127.0.0.1, so each
  containerPort gets a free port of 127.0.0.1, and an argument `0.0.0.0:PORT` (a listener
  on the pod network) or a port flag (`--port PORT`, `-p PORT`, also in an exec probe)
  becomes that port of 127.0.0.1; `bind_args` (the caller's, for a program that binds every
  interface unless told) put its listener on 127.0.0.1 too. A listener on a port the
  container does not declare is refused;
- Service addresses: `://HOST:PORT` in an argument or `env` value, where HOST:PORT is a
  Service of `services` (what cluster DNS and kube-proxy give), becomes the endpoint it
  maps to;
- mount paths: a path under a volumeMount's `mountPath` becomes the same path under the
  directory that stands for the volume.
"""

import base64
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from proc import Proc, free_port

LOCALHOST = "127.0.0.1"
PORT_FLAGS = ("--port", "-p")


class PodError(Exception):
    """The manifest asks for something a kubelet would refuse, or this machine cannot give."""


def secret_values(secrets):
    """{(namespace, name): {key: value}} of the test's Secret objects."""
    out = {}
    for s in secrets:
        assert s["apiVersion"] == "v1" and s["kind"] == "Secret", s
        values = {k: base64.b64decode(v).decode() for k, v in (s.get("data") or {}).items()}
        values.update(s.get("stringData") or {})
        out[(s["metadata"]["namespace"], s["metadata"]["name"])] = values
    return out


def resolve_env(env, secrets, namespace, rewrite=lambda v: v, env_from=()):
    """A container's environment as the process gets it: every key of each `envFrom`
    `secretRef`, then each `env` entry's `value` (through `rewrite`) or the Secret key its
    `valueFrom.secretKeyRef` names."""
    values = secret_values(secrets)
    out = {}
    for source in env_from:
        if set(source) != {"secretRef"}:
            raise PodError(f"envFrom: only `secretRef` is supported: {source}")
        name = source["secretRef"]["name"]
        if (namespace, name) not in values:
            raise PodError(f"envFrom: Secret {namespace}/{name} was not created "
                           f"(created: {sorted(f'{ns}/{n}' for ns, n in values)})")
        out.update(values[(namespace, name)])
    for e in env or []:
        name = e["name"]
        if "value" in e:
            out[name] = rewrite(e["value"])
            continue
        ref = (e.get("valueFrom") or {}).get("secretKeyRef")
        if ref is None:
            raise PodError(f"env {name}: only `value` and `valueFrom.secretKeyRef` are supported: {e}")
        secret = values.get((namespace, ref["name"]))
        if secret is None:
            raise PodError(f"env {name}: Secret {namespace}/{ref['name']} was not created "
                           f"(created: {sorted(f'{ns}/{n}' for ns, n in values)})")
        if ref["key"] not in secret:
            raise PodError(f"env {name}: Secret {namespace}/{ref['name']} has no key {ref['key']!r} "
                           f"(keys: {sorted(secret)})")
        out[name] = secret[ref["key"]]
    return out


class Pod:
    def __init__(self, workload, objects, secrets, run_dir, path, services=None, bind_args=()):
        """`objects`: the rendered documents (ConfigMaps are taken from them); `secrets`:
        the test's Secret objects; `path`: the image's PATH on this machine; `services`:
        {(host, port): (ip, port)}."""
        if workload["kind"] not in ("Deployment", "StatefulSet"):
            raise PodError(f"{workload['kind']} is not a workload this kubelet runs")
        self.name = workload["metadata"]["name"]
        self.namespace = workload["metadata"]["namespace"]
        template = workload["spec"]["template"]
        self.labels = template["metadata"]["labels"]
        spec = template["spec"]
        if len(spec["containers"]) != 1:
            raise PodError(f"{self.name}: {len(spec['containers'])} containers; one is supported")
        self.container = c = spec["containers"][0]
        self.dir = Path(run_dir) / "pods" / self.name
        self.dir.mkdir(parents=True)
        self.services = services or {}
        self.substitutions = []
        # containerPort -> the port of 127.0.0.1 that stands for it.
        self.declared = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
        self.ports = {p: free_port() for p in self.declared.values()}
        self.mounts = self._volumes(spec, workload, objects, c)
        argv = [self._arg(a) for a in c["command"] + c.get("args", [])]
        argv = self._port_flags(argv)
        if bind_args:
            argv += list(bind_args)
            self._note(f"{' '.join(bind_args)} appended", "the pod network's address is 127.0.0.1 here")
        exe = shutil.which(argv[0], path=path)
        if exe is None:
            raise PodError(f"{self.name}: command {argv[0]!r} not on the image's PATH {path}")
        self.argv = [exe] + argv[1:]
        env = resolve_env(c.get("env"), secrets, self.namespace, self._rewrite_services)
        env["PATH"] = path
        # An exec probe runs in the container: its port flags name the pod's ports too.
        self.exec_probes = {kind: self._port_flags(c[kind]["exec"]["command"])
                            for kind in ("readinessProbe", "livenessProbe") if "exec" in c.get(kind, {})}
        (self.dir / "command").write_text(
            "\n".join(self.argv) + "\n\n# substitutions\n" + "\n".join(self.substitutions) + "\n")
        self.proc = Proc(self.name, self.argv, self.dir / "container.log", env)

    # ---- the process's command line and files

    def _note(self, what, why):
        self.substitutions.append(f"{what}  ({why})")

    def _volumes(self, spec, workload, objects, c):
        """mountPath -> the directory that stands for the volume."""
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        claims = {t["metadata"]["name"] for t in workload["spec"].get("volumeClaimTemplates", [])}
        out = {}
        for m in c.get("volumeMounts", []):
            d = self.dir / "volumes" / m["name"]
            d.mkdir(parents=True)
            v = volumes.get(m["name"])
            if v and "configMap" in v:
                cms = [o for o in objects if o.get("kind") == "ConfigMap"
                       and o["metadata"]["name"] == v["configMap"]["name"]
                       and o["metadata"]["namespace"] == self.namespace]
                if not cms:
                    raise PodError(f"{self.name}: volume {m['name']}: no ConfigMap {v['configMap']['name']} rendered")
                for key, text in cms[0].get("data", {}).items():
                    (d / key).write_text(text)
            elif m["name"] not in claims:
                raise PodError(f"{self.name}: volume {m['name']}: neither a ConfigMap nor a claim template")
            out[m["mountPath"].rstrip("/")] = d
        return out

    def _arg(self, a):
        a = self._rewrite_services(a)

        def listen(m):
            port = int(m.group(2))
            if port not in self.ports:
                raise PodError(f"{self.name}: {a!r} listens on {port}, which the container does not declare "
                               f"(ports {self.declared})")
            return f"{LOCALHOST}:{self.ports[port]}"

        b = re.sub(r"(0\.0\.0\.0|\[::\]):(\d+)\b", listen, a)
        if b != a:
            self._note(f"{a} -> {b}", "a listener on the pod network")
        for mount, d in self.mounts.items():
            c = re.sub(rf"(^|[=:]){re.escape(mount)}(?=/|$)", lambda m: m.group(1) + str(d), b)
            if c != b:
                self._note(f"{b} -> {c}", f"volume mounted at {mount}")
                b = c
        return b

    def _port_flags(self, argv):
        out = list(argv)
        for i in range(1, len(out)):
            if out[i - 1] in PORT_FLAGS and out[i].isdigit():
                port = int(out[i])
                if port not in self.ports:
                    raise PodError(f"{self.name}: {out[i - 1]} {port}: a port the container does not declare "
                                   f"(ports {self.declared})")
                out[i] = str(self.ports[port])
                self._note(f"{out[i - 1]} {port} -> {out[i - 1]} {out[i]}", "a listener on the pod network")
        return out

    def _rewrite_services(self, text):
        def endpoint(m):
            key = (m.group(1), int(m.group(2)))
            if key not in self.services:
                return m.group(0)
            ip, port = self.services[key]
            self._note(f"{m.group(1)}:{m.group(2)} -> {ip}:{port}", "a Service's address")
            return f"://{ip}:{port}"

        return re.sub(r"://([A-Za-z0-9.-]+):(\d+)", endpoint, text)

    # ---- ports and probes

    def port(self, ref):
        """The port of 127.0.0.1 for a container port given by name or number."""
        number = self.declared.get(ref, ref)
        if number not in self.ports:
            raise PodError(f"{self.name}: port {ref!r} is not one the container declares ({self.declared})")
        return self.ports[number]

    def probe(self, kind):
        """(ok, what it saw) of the container's `readinessProbe` or `livenessProbe`."""
        p = self.container.get(kind)
        if p is None:
            return False, f"no {kind}"
        try:
            if "httpGet" in p:
                url = f"http://{LOCALHOST}:{self.port(p['httpGet']['port'])}{p['httpGet']['path']}"
                try:
                    with urllib.request.urlopen(url, timeout=p.get("timeoutSeconds", 1)) as r:
                        return r.status == 200, f"GET {p['httpGet']['path']} on {p['httpGet']['port']}: {r.status}"
                except urllib.error.HTTPError as e:
                    return False, f"GET {p['httpGet']['path']} on {p['httpGet']['port']}: {e.code} {e.read()[:200]!r}"
            if "tcpSocket" in p:
                with socket.create_connection((LOCALHOST, self.port(p["tcpSocket"]["port"])), timeout=1):
                    return True, f"TCP connect to {p['tcpSocket']['port']}"
            if "exec" in p:
                argv = self.exec_probes[kind]
                out = subprocess.run(argv, capture_output=True, text=True, timeout=5)
                return out.returncode == 0, f"{' '.join(argv)}: exit {out.returncode} {out.stdout.strip()[:100]}"
        except (OSError, subprocess.TimeoutExpired) as e:
            return False, f"{type(e).__name__}: {e}"
        raise PodError(f"{self.name}: {kind} {p}: only httpGet, tcpSocket and exec are supported")

    def wait_ready(self, seconds=20):
        """Until the readiness probe passes, as a Service sends a pod traffic only then."""
        deadline = time.monotonic() + seconds
        while True:
            ok, seen = self.probe("readinessProbe")
            if ok:
                return
            if not self.proc.alive():
                raise PodError(f"{self.name} exited: {' '.join(self.argv)}\n{self.proc.tail()}")
            if time.monotonic() > deadline:
                raise PodError(f"{self.name} not ready in {seconds}s ({seen}):\n{self.proc.tail()}")
            time.sleep(0.1)

    def stop(self):
        self.proc.stop()


def service_endpoints(services, pods):
    """({(host, port): (ip, port)}, problems): each Service's cluster names and ports, to the
    pod port its `targetPort` (a name or number of the selected pod's container ports)
    gives, as kube-proxy and EDS would route them; a problem for each Service that selects
    no pod or a targetPort no container declares."""
    out, problems = {}, []
    for s in services:
        name, ns = s["metadata"]["name"], s["metadata"]["namespace"]
        selector = s["spec"].get("selector") or {}
        chosen = [p for p in pods if p.namespace == ns and all(p.labels.get(k) == v for k, v in selector.items())]
        if len(chosen) != 1:
            problems.append(f"Service {ns}/{name} selects {len(chosen)} of the pods")
            continue
        pod = chosen[0]
        for port in s["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            if target not in pod.declared and target not in pod.ports:
                problems.append(f"Service {ns}/{name} port {port['port']}: targetPort {target!r} is not a port "
                                f"of {pod.name}'s container ({pod.declared})")
                continue
            for host in (f"{name}.{ns}.svc.cluster.local", f"{name}.{ns}.svc", f"{name}.{ns}"):
                out[(host, port["port"])] = (LOCALHOST, pod.port(target))
    return out, problems
