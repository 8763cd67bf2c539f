"""Built-in Kubernetes kinds chokepoint renders (NetworkPolicy), validated offline against
the official Kubernetes OpenAPI schema as the PyPI package kubernetes-validate ships it
(pinned by scripts/validate-manifests), in its strict form: unknown fields are errors, as
with `kubectl apply --validate=strict`.

The schema carries types and fields but not the checks the API server adds in code, so
the ones a NetworkPolicy needs are here too ([extra]): policyTypes and protocol values,
port ranges, label selector syntax.

Problems come back as (path parts, message, source) for validate_crds.py to report.
"""

import re

try:
    import kubernetes_validate
except ImportError as e:  # pragma: no cover
    raise SystemExit(f"error: {e}: pip install kubernetes-validate (scripts/validate-manifests does this)")

# The Kubernetes version whose schema applies (the newest kubernetes-validate 1.37.0 has).
KUBERNETES_VERSION = "1.37"

# (API group, kind) validated here; other built-in kinds stay "no CRD here".
KINDS = {("networking.k8s.io", "NetworkPolicy")}

# Maps whose keys are data, not fields: a typo inserted there is a label, not an error.
FREE_FORM = {"matchLabels", "labels", "annotations"}

_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def knows(group, kind):
    return (group, kind) in KINDS


def schema_problems(obj):
    """The first schema violation, as the strict schema reports it (an unknown field is
    reported at its own path, as the CRD validator does)."""
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        return []
    except kubernetes_validate.utils.SchemaNotFoundError as e:
        return [(["apiVersion"], e.message, "kind")]
    except kubernetes_validate.ValidationError as e:
        path = list(e.absolute_path)
        if e.validator == "additionalProperties" and isinstance(e.instance, dict):
            known = set((e.schema or {}).get("properties", {}))
            return [(path + [k], f'unknown field "{k}" (rejected by kubectl apply --validate=strict)', "schema")
                    for k in e.instance if k not in known]
        return [(path, e.message, "schema")]


def _label_key_ok(key):
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS1123_SUBDOMAIN.match(prefix)):
        return False
    return 0 < len(name) <= 63 and bool(_LABEL_NAME.match(name))


def _selector(sel, path):
    out = []
    if not isinstance(sel, dict):
        return out
    for k, v in (sel.get("matchLabels") or {}).items():
        if not _label_key_ok(str(k)):
            out.append((path + ["matchLabels", k], f"invalid label key {k!r}", "extra"))
        if not isinstance(v, str) or len(v) > 63 or not _LABEL_VALUE.match(v):
            out.append((path + ["matchLabels", k], f"invalid label value {v!r}", "extra"))
    return out


def _ports(ports, path):
    out = []
    for i, p in enumerate(ports or []):
        if not isinstance(p, dict):
            continue
        proto = p.get("protocol", "TCP")
        if proto not in ("TCP", "UDP", "SCTP"):
            out.append((path + [i, "protocol"], f"{proto!r} is not one of TCP, UDP, SCTP", "extra"))
        port = p.get("port")
        if isinstance(port, int) and not 1 <= port <= 65535:
            out.append((path + [i, "port"], f"{port} is not a port (1-65535)", "extra"))
        end = p.get("endPort")
        if end is not None and not (isinstance(port, int) and isinstance(end, int) and port <= end <= 65535):
            out.append((path + [i, "endPort"], "needs a numeric port no greater than it, at most 65535", "extra"))
    return out


def api_server_problems(obj):
    """What the API server refuses in a NetworkPolicy beyond the schema."""
    spec = obj.get("spec")
    if obj.get("kind") != "NetworkPolicy" or not isinstance(spec, dict):
        return []
    out = _selector(spec.get("podSelector"), ["spec", "podSelector"])
    for i, t in enumerate(spec.get("policyTypes") or []):
        if t not in ("Ingress", "Egress"):
            out.append((["spec", "policyTypes", i], f"{t!r} is not one of Ingress, Egress", "extra"))
    for direction, peers in (("ingress", "from"), ("egress", "to")):
        for i, rule in enumerate(spec.get(direction) or []):
            if not isinstance(rule, dict):
                continue
            base = ["spec", direction, i]
            out += _ports(rule.get("ports"), base + ["ports"])
            for j, peer in enumerate(rule.get(peers) or []):
                if not isinstance(peer, dict):
                    continue
                for sel in ("podSelector", "namespaceSelector"):
                    out += _selector(peer.get(sel), base + [peers, j, sel])
    return out


def problems(obj):
    found = schema_problems(obj)
    # The API server's checks read a shape the schema has already accepted.
    return found or api_server_problems(obj)


def mutation_paths(obj):
    """Where an unknown field must be refused: spec root, and the shallowest and the
    deepest object nested under spec (free-form maps excluded)."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return []
    nested = []

    def walk(node, path):
        if isinstance(node, dict):
            if len(path) >= 2:
                nested.append(tuple(path))
            for k, v in node.items():
                if k not in FREE_FORM:
                    walk(v, path + [k])
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, path + [i])

    walk(spec, ["spec"])
    paths = [("spec",)]
    if nested:
        shallow, deep = min(nested, key=len), max(nested, key=len)
        paths += [shallow] if deep == shallow else [shallow, deep]
    return paths
