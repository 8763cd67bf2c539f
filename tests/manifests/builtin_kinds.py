"""Built-in Kubernetes kinds chokepoint renders (the core, apps and networking.k8s.io
groups: ServiceAccount, ConfigMap, Service, Deployment, StatefulSet, NetworkPolicy, ...),
validated offline against the official Kubernetes OpenAPI schema as the PyPI package
kubernetes-validate ships it (pinned by scripts/validate-manifests), in its strict form:
unknown fields are errors, as with `kubectl apply --validate=strict`. A kind of those
groups the schema does not have (a misspelt one) is an error too.

The schema carries types and fields but not the checks the API server adds in code, so
the ones these objects need are here too ([extra]): NetworkPolicy policyTypes and
protocol values, port ranges, label selector syntax; a workload's selector matching its
pod template's labels, container port names (IANA service names, unique), and probes
naming a port their container has.

Problems come back as (path parts, message, source) for validate_crds.py to report.
"""

import re

try:
    import kubernetes_validate
except ImportError as e:  # pragma: no cover
    raise SystemExit(f"error: {e}: pip install kubernetes-validate (scripts/validate-manifests does this)")

# The Kubernetes version whose schema applies (the newest kubernetes-validate 1.37.0 has).
KUBERNETES_VERSION = "1.37"

# The API groups validated here ("" is core); other groups' kinds need a CRD.
GROUPS = {"", "apps", "networking.k8s.io"}

# Maps whose keys are data, not fields: a typo inserted there is a label, not an error.
FREE_FORM = {"matchLabels", "labels", "annotations", "data", "binaryData", "stringData",
             "requests", "limits", "nodeSelector"}
# The same, at one place of one kind: a Service's selector is a plain label map.
FREE_FORM_AT = {("Service", ("spec", "selector"))}
_IANA_SVC_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")

_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def knows(group, kind):
    return group in GROUPS


_VALIDATORS = {}


def _validator(api_version, kind):
    """The strict schema's validator for a kind, as kubernetes_validate.validate builds it
    (kubernetes_validate/utils.py: the same schema files and registry), kept so that every
    violation can be listed, not only the first (validate() raises on that one)."""
    key = (api_version, kind)
    if key not in _VALIDATORS:
        from kubernetes_validate import utils
        import jsonschema
        from referencing import Registry, Resource
        # rbac.authorization.k8s.io/v1 -> rbac-v1; v1 stays v1.
        api = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
        version = [v for v in utils.all_versions()
                   if utils.major_minor(v) <= utils.major_minor(KUBERNETES_VERSION)][-1]
        folder = f"v{version}-local-strict"
        schema = utils.schema_contents(f"kubernetes-json-schema/{folder}/{kind.lower()}-{api}.json",
                                       KUBERNETES_VERSION)
        defs = utils.schema_contents(f"kubernetes-json-schema/{folder}/_definitions.json", KUBERNETES_VERSION)
        registry = Resource.from_contents(defs) @ (Resource.from_contents(schema) @ Registry())
        _VALIDATORS[key] = jsonschema.validators.Draft202012Validator(schema, registry=registry)
    return _VALIDATORS[key]


def _as_problems(e):
    path = list(e.absolute_path)
    if e.validator == "additionalProperties" and isinstance(e.instance, dict):
        known = set((e.schema or {}).get("properties", {}))
        return [(path + [k], f'unknown field "{k}" (rejected by kubectl apply --validate=strict)', "schema")
                for k in e.instance if k not in known]
    return [(path, e.message, "schema")]


def schema_problems(obj):
    """Every schema violation, as the strict schema reports it (an unknown field is
    reported at its own path, as the CRD validator does)."""
    try:
        # Its own checks first: the version, the kind's schema existing, the first error.
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        return []
    except kubernetes_validate.utils.SchemaNotFoundError as e:
        return [(["apiVersion"], e.message, "kind")]
    except kubernetes_validate.ValidationError as first:
        try:
            errors = list(_validator(obj["apiVersion"], obj["kind"]).iter_errors(obj))
        except (OSError, KeyError):  # pragma: no cover: the schema validate() just used
            return _as_problems(first)
        return [p for e in errors for p in _as_problems(e)] or _as_problems(first)


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


def _container_problems(c, path):
    """Port names as the API server takes them (IANA service names: at most 15
    characters, a letter among them, no double dash; unique in the pod), and probes that
    name a port this container has (a name it lacks fails at run time, not at apply)."""
    out = []
    names = []
    for i, p in enumerate(c.get("ports") or []):
        name = p.get("name") if isinstance(p, dict) else None
        if name is None:
            continue
        if not (len(name) <= 15 and _IANA_SVC_NAME.match(name) and "--" not in name
                and re.search("[a-z]", name)):
            out.append((path + ["ports", i, "name"], f"{name!r} is not an IANA service name "
                        "(at most 15 of a-z, 0-9, -, with a letter)", "extra"))
        if name in names:
            out.append((path + ["ports", i, "name"], f"duplicate port name {name!r}", "extra"))
        names.append(name)
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        spec = c.get(probe)
        if not isinstance(spec, dict):
            continue
        for handler in ("httpGet", "tcpSocket", "grpc"):
            port = (spec.get(handler) or {}).get("port") if isinstance(spec.get(handler), dict) else None
            if isinstance(port, str) and port not in names:
                out.append((path + [probe, handler, "port"], f"names port {port!r}, which the container "
                            "does not declare", "extra"))
    return out


def _workload_problems(obj):
    """Deployment and StatefulSet: the selector must select the pod template (the API
    server: "selector does not match template labels"), and the containers' ports and
    probes must agree."""
    spec = obj.get("spec")
    if obj.get("kind") not in ("Deployment", "StatefulSet") or not isinstance(spec, dict):
        return []
    out = _selector(spec.get("selector"), ["spec", "selector"])
    template = spec.get("template") or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    wanted = (spec.get("selector") or {}).get("matchLabels") or {}
    if any(labels.get(k) != v for k, v in wanted.items()):
        out.append((["spec", "selector"], "does not match template labels", "extra"))
    for i, c in enumerate((template.get("spec") or {}).get("containers") or []):
        if isinstance(c, dict):
            out += _container_problems(c, ["spec", "template", "spec", "containers", i])
    return out


def api_server_problems(obj):
    """What the API server refuses beyond the schema."""
    spec = obj.get("spec")
    if obj.get("kind") in ("Deployment", "StatefulSet"):
        return _workload_problems(obj)
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
    """Where an unknown field must be refused: the object's root, spec's, and the
    shallowest and the deepest object nested under spec (free-form maps excluded)."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [()]
    nested = []
    kind = obj.get("kind")

    def walk(node, path):
        if isinstance(node, dict):
            if len(path) >= 2:
                nested.append(tuple(path))
            for k, v in node.items():
                if k not in FREE_FORM and (kind, tuple(path + [k])) not in FREE_FORM_AT:
                    walk(v, path + [k])
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, path + [i])

    walk(spec, ["spec"])
    paths = [(), ("spec",)]
    if nested:
        shallow, deep = min(nested, key=len), max(nested, key=len)
        paths += [shallow] if deep == shallow else [shallow, deep]
    return paths
