"""The policy service and its Redis as the mesh admin deploys them: rendered from the mesh
layer's policy file (targets `kubernetes-redis`, `kubernetes-policy`) and started by
pod.py from the rendered StatefulSet and Deployment, with the Secrets the test creates;
and the checks that the manifests hold together: each pod gets ready by its own probes,
answers its liveness probe, and each Service's targetPort is a port its pod declares.
"""

import secrets

from pod import LOCALHOST, Pod, service_endpoints


def secret(namespace, name, values):
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": namespace}, "stringData": values}


class Deployment:
    """`path`: the images' PATH on this machine; `secret_names`: the policy file's
    `deploy.secrets`."""

    def __init__(self, run, path, namespace, secret_names):
        self.run, self.path = run, path
        self.policy_token = secrets.token_hex(32)
        self.admin_token = "ck-admin-" + secrets.token_hex(16)
        # The gateway's pseudonym salt: the service derives the same user UUIDs from a
        # company token as the gateway records (its pages' viewers).
        self.uuid_salt = secrets.token_hex(32)
        # What the mesh admin creates first (docs/deployment.md): the two tokens and the
        # salt, under the keys the service reads them by.
        self.secrets = [
            secret(namespace, secret_names["policy_token"], {"CHOKEPOINT_POLICY_TOKEN": self.policy_token,
                                                             "CHOKEPOINT_UUID_SALT": self.uuid_salt}),
            secret(namespace, secret_names["admin_token"], {"CHOKEPOINT_ADMIN_TOKEN": self.admin_token}),
        ]
        self.pods = []
        # {(host, port): (ip, port)} of every rendered Service.
        self.services = {}

    def start(self, c, render):
        """Starts Redis, then the policy service, from `render(target) -> docs`; runs the
        checks of their manifests."""
        redis_docs = render("kubernetes-redis")
        (sts,) = [d for d in redis_docs if d["kind"] == "StatefulSet"]
        # redis-server binds every interface unless `--bind` says otherwise; a pod's
        # "every interface" is its own IP, here 127.0.0.1.
        redis = self._pod(sts, redis_docs, bind_args=("--bind", LOCALHOST))
        self._checks(c, "kubernetes-redis", redis, redis_docs)
        policy_docs = render("kubernetes-policy")
        (dep,) = [d for d in policy_docs if d["kind"] == "Deployment"]
        policy = self._pod(dep, policy_docs)
        self._checks(c, "kubernetes-policy", policy, policy_docs)
        return policy

    def _pod(self, workload, docs, bind_args=()):
        pod = Pod(workload, docs, self.secrets, self.run, self.path, self.services, bind_args)
        self.pods.append(pod)
        pod.wait_ready()
        return pod

    def _checks(self, c, target, pod, docs):
        print(f"{target}: {pod.name} started as rendered with {len(pod.substitutions)} substitutions, "
              f"ready by its readinessProbe ({pod.dir / 'command'})", flush=True)
        ok, seen = pod.probe("livenessProbe")
        c.check(ok, f"{target}: {pod.name}'s livenessProbe passes ({seen})", seen)
        ok, seen = pod.probe("readinessProbe")
        c.check(ok, f"{target}: {pod.name}'s readinessProbe passes ({seen})", seen)
        mapped, problems = service_endpoints([d for d in docs if d["kind"] == "Service"], [pod])
        names = sorted({f"{h.split('.')[0]}:{p}" for h, p in mapped})
        c.check(mapped and not problems,
                f"{target}: the Services' targetPorts are ports {pod.name} declares ({', '.join(names)})",
                "; ".join(problems) or "no Service")
        self.services.update(mapped)

    def admin_url(self, host, port):
        ip, p = self.services[(host, port)]
        return f"http://{ip}:{p}"

    def stop(self):
        for p in reversed(self.pods):
            p.stop()

    def logs(self):
        return "".join(f"----- pod {p.name} ({p.proc.log}) -----\n{p.proc.tail()}\n" for p in self.pods)

