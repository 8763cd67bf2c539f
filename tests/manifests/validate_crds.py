#!/usr/bin/env python3
"""Offline CRD validation of the Kubernetes manifests chokepoint renders for mesh admins.

Validates every document of the given YAML files against the official CRDs vendored in
tests/schemas/ (Istio WasmPlugin, EnvoyFilter, TrafficExtension, ServiceEntry,
DestinationRule, VirtualService; Envoy Gateway EnvoyExtensionPolicy, Backend, EnvoyProxy;
Gateway API HTTPRoute, BackendTLSPolicy), the way the API server would with
`kubectl apply --validate=strict`, without a cluster:

  * schema: each served version's openAPIV3Schema, converted to draft-7 JSON Schema as
    tests/schemas/README.md describes (unknown fields rejected except in free-form
    nodes, int-or-string, nullable, int32/int64 bounds, root apiVersion/kind/metadata);
  * CEL: every x-kubernetes-validations rule, evaluated by a CEL library (cel-python, with
    the Kubernetes extension functions the rules use: k8s_cel.py) at the node that carries
    it, on the object with the CRD's defaults applied, as the API server does. A rule that
    does not compile fails the self-test (--list-cel lists every rule);
  * list types: x-kubernetes-list-type map (unique keys, e.g. vmConfig.env[].name) and set;
  * extra checks that are not CRD rules but break the deployment just the same
    (marked [extra]): metadata.name/namespace/labels syntax, sha256 vs an @sha256: digest
    in a WasmPlugin url, EnvoyExtensionPolicy sha256 shape;
  * YAML: duplicate keys are errors (strict decoding), timestamps stay strings.

Built-in kinds (the core, apps and networking.k8s.io groups: Deployment, StatefulSet,
Service, ConfigMap, NetworkPolicy, ...) are validated against the official Kubernetes
schema instead, strict, plus the API server's own checks (builtin_kinds.py).
Documents whose kind has no CRD here (Gateway, Telemetry, ...) are reported as
"skipped (no CRD here)", an error only with --strict-kinds. A kind we do have under the
wrong group, or a version that is not served, is an error.

Every file given is also mutation-tested: `chokepointTypo: 1` is inserted at spec root and
in nested objects, and each mutant must be rejected. --self-test runs the built-in tables
of good and broken manifests (and the fixtures in samples/) and the CEL engine's own cases
first, so the validator cannot silently pass everything.

Usage: validate_crds.py [--self-test] [--strict-kinds] [--list-cel] [FILES...]
Ends with one line "N passed, M failed ..."; exits 1 on any failure.
"""

import argparse
import copy
import difflib
import json
import os
import re
import sys
from pathlib import Path

try:
    import jsonschema
    import yaml
except ImportError as e:  # pragma: no cover
    sys.exit(f"error: {e}: pip install jsonschema pyyaml (scripts/validate-manifests does this)")

import builtin_kinds  # noqa: E402  (beside this file)
import k8s_cel  # noqa: E402
import mesh_config  # noqa: E402

HERE = Path(__file__).resolve().parent
SCHEMA_DIR = HERE.parent / "schemas"
SAMPLES_DIR = HERE / "samples"

# --------------------------------------------------------------------------------------
# YAML loading: strict like the API server's decoder (duplicate keys are errors) and with
# timestamps kept as strings (sigs.k8s.io/yaml does the same).

_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ManifestLoader(_Base):
    pass


ManifestLoader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for ch, resolvers in _Base.yaml_implicit_resolvers.items()
}


def _construct_mapping_strict(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue  # `<<: *anchor` keys may be overridden by explicit ones
        key = loader.construct_object(key_node, deep=deep)
        try:
            dup = key in seen
        except TypeError:
            continue
        if dup:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (the API server's strict decoding rejects it)",
                key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


ManifestLoader.add_constructor("tag:yaml.org,2002:map", _construct_mapping_strict)


def load_documents(text):
    """All documents of a YAML stream; empty documents dropped. Raises yaml.YAMLError."""
    return [d for d in yaml.load_all(text, Loader=ManifestLoader) if d is not None]


# --------------------------------------------------------------------------------------
# Paths and problems.

_IDENT = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$-]*$")


def fmt_path(parts):
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif p == "[]":
            out += "[]"
        elif _IDENT.match(str(p)):
            out += ("." if out else "") + str(p)
        else:
            out += f"[{json.dumps(str(p))}]"
    return out or "(root)"


class Problem:
    """One error: where (JSON path), what, and which check found it."""

    def __init__(self, path, message, source):
        self.path = path if isinstance(path, str) else fmt_path(path)
        self.message = message
        self.source = source  # schema | CEL | list | extra | yaml | kind

    def __str__(self):
        tag = "" if self.source == "schema" else f"[{self.source}] "
        return f"{self.path}: {tag}{self.message}"


# --------------------------------------------------------------------------------------
# CRD loading and the OpenAPI v3 -> draft-7 conversion.

INT_BOUNDS = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
LITERAL_KEYS = {"default", "enum", "example", "const"}


def convert(node, is_root=False):
    """OpenAPI v3 schema with Kubernetes extensions -> draft-7 JSON Schema."""
    if isinstance(node, list):
        return [convert(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for k, v in node.items():
        if k.startswith("x-kubernetes-") or k in ("nullable", "description"):
            continue
        if k in ("properties", "patternProperties", "definitions"):
            out[k] = {pk: convert(pv) for pk, pv in v.items()}
        elif k in LITERAL_KEYS:
            out[k] = copy.deepcopy(v)
        else:
            out[k] = convert(v)
    # allOf made only of enums (controller-gen emits this): one enum, the intersection.
    if "allOf" in out and all(isinstance(s, dict) and set(s) == {"enum"} for s in out["allOf"]):
        allowed = out["allOf"][0]["enum"]
        for s in out["allOf"][1:]:
            allowed = [x for x in allowed if x in s["enum"]]
        del out["allOf"]
        out["enum"] = allowed
    if node.get("x-kubernetes-int-or-string") and "anyOf" not in out:
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    fmt = node.get("format")
    if fmt in INT_BOUNDS:
        lo, hi = INT_BOUNDS[fmt]
        out["minimum"] = max(out.get("minimum", lo), lo)
        out["maximum"] = min(out.get("maximum", hi), hi)
    if node.get("nullable"):
        t = out.get("type")
        if isinstance(t, str):
            out["type"] = [t, "null"]
        if "enum" in out and None not in out["enum"]:
            out["enum"] = out["enum"] + [None]
    preserve = node.get("x-kubernetes-preserve-unknown-fields") is True
    if ("properties" in node or node.get("type") == "object") and not preserve \
            and "additionalProperties" not in node:
        out["additionalProperties"] = False
    if is_root:
        props = out.setdefault("properties", {})
        props["apiVersion"] = {"type": "string"}
        props["kind"] = {"type": "string"}
        props["metadata"] = {"type": "object"}  # ObjectMeta: checked separately (check_metadata)
        if not preserve and "additionalProperties" not in node:
            out["additionalProperties"] = False
    return out


class CrdVersion:
    def __init__(self, crd, raw_schema):
        self.crd = crd
        self.raw = raw_schema
        self.schema = convert(raw_schema, is_root=True)
        jsonschema.Draft7Validator.check_schema(self.schema)
        self.validator = jsonschema.Draft7Validator(self.schema)


class Crd:
    def __init__(self, doc, path):
        spec = doc["spec"]
        self.file = path
        self.group = spec["group"]
        self.kind = spec["names"]["kind"]
        self.versions = {}
        for v in spec["versions"]:
            if v.get("served"):
                self.versions[v["name"]] = CrdVersion(self, v["schema"]["openAPIV3Schema"])


def load_crds(schema_dir=SCHEMA_DIR):
    crds = {}
    files = sorted(Path(schema_dir).glob("*.crd.yaml"))
    if not files:
        raise SystemExit(f"error: no *.crd.yaml in {schema_dir}")
    for f in files:
        for doc in yaml.load_all(f.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
            if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                crd = Crd(doc, f)
                crds[(crd.group, crd.kind)] = crd
    return crds


# --------------------------------------------------------------------------------------
# CEL rules (k8s_cel.py evaluates them). Those chokepoint's manifests rely on: the
# self-test fails if a CRD refresh drops one of them or changes its text so that it no
# longer compiles.
REQUIRED_CEL = {
    "WasmPlugin": [
        "only one of targetRefs or selector can be set",
        "value may only be set when valueFrom is INLINE",
        "url must have schema one of [http, https, file, oci]",
    ],
    "TrafficExtension": [
        "only one of targetRefs or selector can be set",
        "exactly one of wasm or lua must be set",
        "value may only be set when valueFrom is INLINE",
        "url must have schema one of [http, https, file, oci]",
    ],
    "EnvoyFilter": ["only one of targetRefs or workloadSelector can be set"],
    "EnvoyExtensionPolicy": [
        "either targetRef or targetRefs must be used",
        "this policy can only have a targetRef.group of gateway.networking.k8s.io",
        "this policy can only have a targetRefs[*].group of gateway.networking.k8s.io",
        "If type is HTTP, http field needs to be set.",
        "If type is Image, image field needs to be set.",
        "only support Secret kind.",
    ],
}


def iter_cel_rules(schema, path=()):
    """(schema path, rule dict) for every x-kubernetes-validations rule in a raw schema."""
    if isinstance(schema, dict):
        for r in schema.get("x-kubernetes-validations", []) or []:
            yield fmt_path(path), r
        for k, sub in (schema.get("properties") or {}).items():
            yield from iter_cel_rules(sub, path + (k,))
        if isinstance(schema.get("items"), dict):
            yield from iter_cel_rules(schema["items"], path + ("[]",))
        if isinstance(schema.get("additionalProperties"), dict):
            yield from iter_cel_rules(schema["additionalProperties"], path + ("*",))


# --------------------------------------------------------------------------------------
# Walks over (raw schema, value): defaults, CEL, list types.

def _type_ok(schema, value):
    t = schema.get("type")
    if value is None:
        return False
    if t == "object":
        return isinstance(value, dict)
    if t == "array":
        return isinstance(value, list)
    if t == "string":
        return isinstance(value, str)
    if t == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if t == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if t == "boolean":
        return isinstance(value, bool)
    return True


def _child_schema(schema, key):
    props = schema.get("properties") or {}
    if key in props:
        return props[key]
    ap = schema.get("additionalProperties")
    return ap if isinstance(ap, dict) else None


def apply_defaults(schema, value):
    """Structural defaulting, as the API server does before CEL runs."""
    if not isinstance(schema, dict):
        return
    if isinstance(value, dict):
        for k, sub in (schema.get("properties") or {}).items():
            if value.get(k) is None and isinstance(sub, dict) and "default" in sub:
                value[k] = copy.deepcopy(sub["default"])
        for k, v in value.items():
            sub = _child_schema(schema, k)
            if sub is not None:
                apply_defaults(sub, v)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for v in value:
            apply_defaults(schema["items"], v)


def check_semantics(schema, value, path, problems):
    """CEL rules and list-type uniqueness, recursively. `value` has defaults applied."""
    if not isinstance(schema, dict) or value is None:
        return
    if not _type_ok(schema, value):
        return  # the schema check reports it; the API server would not run CEL here either
    for below, message in k8s_cel.failures(schema, value):
        problems.append(Problem(list(path) + below, message, "CEL"))
    if isinstance(value, list):
        lt = schema.get("x-kubernetes-list-type")
        if lt == "map":
            keys = schema.get("x-kubernetes-list-map-keys") or []
            seen = {}
            for i, item in enumerate(value):
                if not isinstance(item, dict) or any(item.get(k) is None for k in keys):
                    continue
                kv = tuple(json.dumps(item.get(k), sort_keys=True) for k in keys)
                if kv in seen:
                    desc = ", ".join(f"{k}={item.get(k)!r}" for k in keys)
                    problems.append(Problem(list(path) + [i], f"duplicate entry {desc} (also at "
                                            f"[{seen[kv]}]; list-type map keyed by {', '.join(keys)})", "list"))
                else:
                    seen[kv] = i
        elif lt == "set":
            seen = {}
            for i, item in enumerate(value):
                kv = json.dumps(item, sort_keys=True)
                if kv in seen:
                    problems.append(Problem(list(path) + [i], f"duplicate value {item!r} (also at "
                                            f"[{seen[kv]}]; list-type set)", "list"))
                else:
                    seen[kv] = i
        items = schema.get("items")
        if isinstance(items, dict):
            for i, v in enumerate(value):
                check_semantics(items, v, list(path) + [i], problems)
    elif isinstance(value, dict):
        if schema.get("x-kubernetes-preserve-unknown-fields") is True and not schema.get("properties"):
            return
        for k, v in value.items():
            if path == [] and k == "metadata":
                continue
            sub = _child_schema(schema, k)
            if sub is not None:
                check_semantics(sub, v, list(path) + [k], problems)


def closed_objects(schema, value, path=()):
    """Paths of the objects in `value` where the schema rejects unknown fields."""
    if not isinstance(schema, dict):
        return
    if isinstance(value, dict):
        if schema.get("x-kubernetes-preserve-unknown-fields") is True:
            return
        ap = schema.get("additionalProperties")
        if ap is not None:
            if isinstance(ap, dict):
                for k, v in value.items():
                    yield from closed_objects(ap, v, path + (k,))
            return
        if "properties" in schema or schema.get("type") == "object":
            yield path
        for k, v in value.items():
            sub = (schema.get("properties") or {}).get(k)
            if sub is not None:
                yield from closed_objects(sub, v, path + (k,))
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, v in enumerate(value):
            yield from closed_objects(schema["items"], v, path + (i,))


# --------------------------------------------------------------------------------------
# Schema errors, made readable.

def _short(value):
    if isinstance(value, dict):
        return f"an object ({len(value)} fields)"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    r = repr(value)
    return r if len(r) <= 80 else r[:60] + "...'"


def _schema_problems(version, obj):
    out = []
    for err in version.validator.iter_errors(obj):
        path = list(err.absolute_path)
        if err.validator == "additionalProperties" and isinstance(err.instance, dict):
            known = list((err.schema.get("properties") or {}).keys())
            for extra in sorted(k for k in err.instance if k not in known):
                hint = difflib.get_close_matches(str(extra), known, n=1, cutoff=0.75)
                tip = f'did you mean "{hint[0]}"? ' if hint else ""
                listed = ", ".join(known) if len(known) <= 16 else f"{len(known)} fields"
                out.append(Problem(path + [extra], f'unknown field "{extra}" ({tip}known here: {listed}; '
                                   f"rejected by kubectl apply --validate=strict, dropped otherwise)", "schema"))
            continue
        if err.validator == "type" and err.instance is None:
            msg = (f"null value where {err.validator_value} is expected (an empty YAML value? the "
                   f"API server drops it silently)")
        elif err.validator == "required":
            missing = re.match(r"'([^']+)' is a required property", err.message)
            msg = f'required field "{missing.group(1)}" is missing' if missing else err.message
        elif err.validator == "oneOf" and all(isinstance(s, dict) and ("required" in s or "not" in s)
                                              for s in err.validator_value):
            names = [s["required"][0] for s in err.validator_value if "required" in s]
            msg = f"at most one of {', '.join(names)} may be set"
        else:
            msg = err.message
            r = repr(err.instance)
            if len(r) > 80 and msg.startswith(r):
                msg = _short(err.instance) + msg[len(r):]
            if len(msg) > 400:
                msg = msg[:400] + "..."
        out.append(Problem(path, msg, "schema"))
    return out


# --------------------------------------------------------------------------------------
# Extra checks (not CRD rules; each one breaks the deployment anyway).

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
SHA256_HEX = re.compile(r"^[a-f0-9]{64}$")


def _label_key_ok(k):
    prefix, _, name = k.rpartition("/")
    if prefix and (len(prefix) > 253 or not DNS1123_SUBDOMAIN.match(prefix)):
        return False
    return 0 < len(name) <= 63 and bool(LABEL_NAME.match(name))


def check_metadata(obj):
    out = []
    md = obj.get("metadata")
    if not isinstance(md, dict):
        return [Problem(["metadata"], "metadata must be an object with at least a name", "extra")]
    name = md.get("name")
    if name is None and not md.get("generateName"):
        out.append(Problem(["metadata"], 'required field "name" is missing', "extra"))
    elif name is not None and (not isinstance(name, str) or len(name) > 253 or not DNS1123_SUBDOMAIN.match(name)):
        out.append(Problem(["metadata", "name"], f"{name!r} is not a DNS-1123 subdomain (lowercase "
                           "alphanumerics, '-', '.'; at most 253)", "extra"))
    ns = md.get("namespace")
    if ns is not None and (not isinstance(ns, str) or len(ns) > 63 or not DNS1123_LABEL.match(ns)):
        out.append(Problem(["metadata", "namespace"], f"{ns!r} is not a DNS-1123 label", "extra"))
    for field in ("labels", "annotations"):
        m = md.get(field)
        if m is None:
            continue
        if not isinstance(m, dict):
            out.append(Problem(["metadata", field], "must be a map of strings", "extra"))
            continue
        for k, v in m.items():
            if not isinstance(v, str):
                out.append(Problem(["metadata", field, k], f"value {v!r} must be a string (quote it)", "extra"))
            elif field == "labels" and (len(v) > 63 or not LABEL_VALUE.match(v)):
                out.append(Problem(["metadata", field, k], f"invalid label value {v!r}", "extra"))
            if not isinstance(k, str) or not _label_key_ok(k):
                out.append(Problem(["metadata", field, k], f"invalid {field[:-1]} key {k!r}", "extra"))
    return out


def _check_wasm_digest(spec, path):
    """Istio: a url pinned with @sha256:<d> and a sha256 field must agree [IA]."""
    if not isinstance(spec, dict) or not isinstance(spec.get("url"), str):
        return []
    m = re.search(r"@sha256:([0-9a-f]{64})", spec["url"])
    sha = spec.get("sha256")
    if m and isinstance(sha, str) and sha and sha != m.group(1):
        return [Problem(path + ["sha256"], f"does not match the digest in url (@sha256:{m.group(1)[:12]}...); "
                        "istio-agent rejects the module", "extra")]
    return []


def check_extra(kind, obj):
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return []
    out = []
    if kind == "WasmPlugin":
        out += _check_wasm_digest(spec, ["spec"])
    elif kind == "TrafficExtension":
        out += _check_wasm_digest(spec.get("wasm"), ["spec", "wasm"])
    elif kind == "EnvoyExtensionPolicy":
        for i, w in enumerate(spec.get("wasm") or []):
            code = w.get("code") if isinstance(w, dict) else None
            if not isinstance(code, dict):
                continue
            for src in ("http", "image"):
                sha = (code.get(src) or {}).get("sha256") if isinstance(code.get(src), dict) else None
                if sha is not None and not (isinstance(sha, str) and SHA256_HEX.match(sha)):
                    out.append(Problem(["spec", "wasm", i, "code", src, "sha256"],
                                       f"{sha!r} is not 64 lowercase hex characters; Envoy Gateway would "
                                       "never match the module's checksum", "extra"))
    return out


# --------------------------------------------------------------------------------------
# Validating one object.

class Result:
    def __init__(self, status, label, problems=(), version=None, builtin=False):
        self.status = status  # ok | invalid | skipped
        self.label = label
        self.problems = list(problems)
        self.version = version
        # Validated against the Kubernetes schema (builtin_kinds), not a CRD.
        self.builtin = builtin


def describe(obj):
    if not isinstance(obj, dict):
        return "(not a mapping)"
    md = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    return f"{obj.get('kind', '?')}/{md.get('name', md.get('generateName', '?'))}"


def validate_object(obj, crds, strict_kinds=False):
    label = describe(obj)
    if not isinstance(obj, dict):
        return Result("invalid", label, [Problem([], "a document must be a mapping (a Kubernetes object)", "kind")])
    api, kind = obj.get("apiVersion"), obj.get("kind")
    if not isinstance(api, str) or not isinstance(kind, str) or not api or not kind:
        return Result("invalid", label, [Problem([], "apiVersion and kind are required", "kind")])
    group, _, version = api.rpartition("/")
    crd = crds.get((group, kind))
    if crd is None:
        same_kind = [c for c in crds.values() if c.kind == kind]
        if same_kind:
            want = ", ".join(f"{c.group}/{v}" for c in same_kind for v in c.versions)
            return Result("invalid", label, [Problem(["apiVersion"], f"{kind} is not served as {api} "
                                                     f"(served: {want})", "kind")])
        if builtin_kinds.knows(group, kind):
            problems = [Problem(path, message, source) for path, message, source in builtin_kinds.problems(obj)]
            problems += check_metadata(obj)
            problems.sort(key=lambda p: p.path)
            return Result("invalid" if problems else "ok", label, problems, builtin=True)
        if strict_kinds:
            return Result("invalid", label, [Problem(["kind"], f"no CRD here for {api} {kind} (--strict-kinds)",
                                                     "kind")])
        return Result("skipped", label)
    ver = crd.versions.get(version)
    if ver is None:
        want = ", ".join(f"{crd.group}/{v}" for v in crd.versions)
        return Result("invalid", label, [Problem(["apiVersion"], f"{kind} has no served version {version!r} "
                                                 f"(served: {want})", "kind")])
    problems = _schema_problems(ver, obj)
    defaulted = copy.deepcopy(obj)
    apply_defaults(ver.raw, defaulted)
    check_semantics(ver.raw, defaulted, [], problems)
    problems += check_metadata(obj)
    problems += check_extra(kind, obj)
    problems.sort(key=lambda p: p.path)
    return Result("invalid" if problems else "ok", label, problems, ver)


def is_k8s_object(obj):
    return isinstance(obj, dict) and isinstance(obj.get("apiVersion"), str) and isinstance(obj.get("kind"), str)


def expand_lists(obj, prefix):
    """kind: List (v1) documents hold objects under items[]."""
    if isinstance(obj, dict) and obj.get("kind") == "List" and obj.get("apiVersion") == "v1" \
            and isinstance(obj.get("items"), list):
        for j, item in enumerate(obj["items"]):
            yield f"{prefix} items[{j}]", item
    else:
        yield prefix, obj


# --------------------------------------------------------------------------------------
# Mutation test: a validator that accepts `chokepointTypo` anywhere it should not is broken.

TYPO = "chokepointTypo"


def _set_at(obj, path, key, value):
    node = obj
    for p in path:
        node = node[p]
    node[key] = value


def mutation_targets(ver, obj):
    """[(description, path)] where inserting TYPO must be rejected: spec root, the
    shallowest and the deepest nested closed object under spec."""
    if not isinstance(obj.get("spec"), dict):
        return []
    paths = [p for p in closed_objects(ver.raw, obj) if len(p) >= 1 and p[0] == "spec"]
    targets = [("spec root", ("spec",))] if ("spec",) in paths else []
    nested = [p for p in paths if len(p) >= 2]
    if nested:
        shallow = min(nested, key=len)
        deep = max(nested, key=len)
        targets.append(("nested " + fmt_path(shallow), shallow))
        if deep != shallow:
            targets.append(("nested " + fmt_path(deep), deep))
    return targets


def mutation_test(obj, crds):
    """[(ok, description)] for each mutant of one object that has a CRD (or a built-in
    schema) here."""
    base = validate_object(obj, crds)
    if base.builtin and any(p.source == "kind" for p in base.problems):
        return []  # no schema for it: nothing to mutate against (as with an unserved CRD version)
    if base.builtin:
        paths = builtin_kinds.mutation_paths(obj)
        where = {(): "object root", ("spec",): "spec root"}
        targets = [(where.get(p) or "nested " + fmt_path(p), p) for p in paths]
    elif base.version is None:
        return []
    else:
        targets = mutation_targets(base.version, obj)
    out = []
    if not targets:
        return [(False, "no closed object under spec to mutate (is spec free-form?)")]
    for desc, path in targets:
        mutant = copy.deepcopy(obj)
        _set_at(mutant, path, TYPO, 1)
        want = fmt_path(list(path) + [TYPO])
        res = validate_object(mutant, crds)
        hit = [p for p in res.problems if p.path == want and "unknown field" in p.message]
        if hit:
            out.append((True, f"{TYPO} at {desc} rejected"))
        else:
            got = "; ".join(str(p) for p in res.problems) or "accepted"
            out.append((False, f"{TYPO} at {desc} NOT rejected as {want} (got: {got})"))
    return out


# --------------------------------------------------------------------------------------
# Files.

class Tally:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.skipped = 0
        self.other_files = 0

    def add(self, ok):
        if ok:
            self.passed += 1
        else:
            self.failed += 1


# A strategic-merge patch (`kubectl patch --patch-file`) says what it patches in a comment
# line of the file's header; it is validated as that kind, merged into the least object
# of it the schema accepts.
PATCH_MARK = re.compile(r"^# patch: (\S+) (\S+)$")


def patch_target(text):
    for line in text.splitlines():
        if not line.startswith("#"):
            return None
        m = PATCH_MARK.match(line)
        if m:
            return m.group(1), m.group(2)
    return None


def _merge(base, patch):
    for k, v in patch.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = copy.deepcopy(v)
    return base


def wrap_patch(api, kind, patch):
    """The patch merged into the least object of its kind: a workload gets a selector
    and matching template labels, the fields a patch leaves to the live object."""
    base = {"apiVersion": api, "kind": kind, "metadata": {"name": "patched"}}
    if kind in ("Deployment", "StatefulSet", "DaemonSet"):
        labels = {"chokepoint.patched": "true"}
        base["spec"] = {"selector": {"matchLabels": labels}, "template": {"metadata": {"labels": dict(labels)}}}
    return _merge(base, patch) if isinstance(patch, dict) else patch


def validate_file(path, crds, tally, args, mutate=True):
    name = str(path)
    try:
        text = Path(path).read_text()
        docs = load_documents(text)
        target = patch_target(text)
        if target:
            docs = [wrap_patch(target[0], target[1], d) for d in docs]
    except OSError as e:
        print(f"{name}: cannot read: {e}")
        tally.add(False)
        return
    except yaml.YAMLError as e:
        print(f"{name}: [yaml] {str(e).replace(chr(10), ' ')}")
        tally.add(False)
        return
    if not docs:
        print(f"{name}: no documents")
        tally.add(False)
        return
    if all(mesh_config.is_mesh_config(d) for d in docs):
        for i, doc in enumerate(docs):
            found = mesh_config.problems(doc)
            tally.add(not found)
            print(f"{name}: doc {i} meshConfig: " + ("ok (istio/api mesh/v1alpha1 1.30.3)" if not found else ""))
            for p in found:
                print(f"{name}: doc {i} meshConfig: {p}")
            if mutate and not found:
                for ok, desc in mesh_config.mutation_test(doc):
                    tally.add(ok)
                    print(f"{name}: doc {i} meshConfig: mutation: {'ok' if ok else 'FAIL'}: {desc}")
        return
    if not any(is_k8s_object(o) for d in docs for _, o in expand_lists(d, "")) and not args.strict_kinds:
        # An Envoy bootstrap, a policy file, ...: YAML next to the manifests, not a manifest.
        tally.other_files += 1
        print(f"{name}: skipped (not a Kubernetes manifest: no document has apiVersion and kind)")
        return
    for i, doc in enumerate(docs):
        for where, obj in expand_lists(doc, f"doc {i}"):
            res = validate_object(obj, crds, args.strict_kinds)
            head = f"{name}: {where} {res.label}"
            if res.status == "skipped":
                tally.skipped += 1
                print(f"{head}: skipped (no CRD here)")
                continue
            tally.add(res.status == "ok")
            if res.status == "ok":
                print(f"{head}: ok ({obj.get('apiVersion')})")
            for p in res.problems:
                print(f"{head}: {p}")
            if mutate:
                for ok, desc in mutation_test(obj, crds):
                    tally.add(ok)
                    print(f"{head}: mutation: {'ok' if ok else 'FAIL'}: {desc}")


def list_cel(crds):
    total, broken = 0, 0
    for (group, kind), crd in sorted(crds.items(), key=lambda x: x[0][1]):
        for vname, ver in crd.versions.items():
            rules = [(at, k8s_cel.rule(r)) for at, r in iter_cel_rules(ver.raw)]
            bad = sum(1 for _, r in rules if r.error)
            total, broken = total + len(rules), broken + bad
            print(f"{kind} {group}/{vname}: {len(rules) - bad} of {len(rules)} CEL rules compile")
            for at, r in rules:
                print(f"  {'ok  ' if not r.error else 'FAIL'} {at}: {r.message[:100]}"
                      + (f" ({r.error})" if r.error else ""))
    print(f"{total - broken} of {total} CEL rules compile")


# --------------------------------------------------------------------------------------
# Self-test tables.

SHA_A = "6f1ed002ab5595859014ebf0951522d9ea3b4e5a6c0f1a9a2c7e3f1b0d4e5a6b"
SHA_B = "0a4c7e1b5d9f2a6c8e0b3d5f7a9c1e3b5d7f9a1c3e5b7d9f1a3c5e7b9d1f3a5c"

PLUGIN_CONFIG = {
    "issuers": [{
        "issuer": "https://login.example.com/",
        "audiences": ["chokepoint"],
        "jwks_uri": {"cluster": "outbound|443||login.example.com", "path": "/.well-known/jwks.json",
                     "authority": "login.example.com", "refresh_secs": 300},
        "algorithms": ["RS256", "ES256"],
        "tenant_claim": "tenant",
    }],
    "token_sources": [{"header": "authorization", "scheme": "Bearer"}, {"cookie": "cp_session"}],
    "uuid_salt_env": "CHOKEPOINT_UUID_SALT",
    "policy": {"cluster": "outbound|8081||chokepoint-policy.chokepoint.svc.cluster.local",
               "timeout_ms": 1000, "failure_mode": "closed"},
    "providers": [{"name": "openai", "api": "openai", "cluster": "outbound|443||api.openai.com",
                   "key_env": "OPENAI_API_KEY"}],
    "models": {"aliases": {"default": "gpt-4.1-mini"},
               "routes": [{"model": "gpt-4*", "providers": ["openai"], "allow_groups": ["ml"]}]},
    "prices": {"models": {"gpt-4.1-mini": {"input_per_mtok_usd": "0.40", "output_per_mtok_usd": "1.60"}}},
    "enforce_output_cap": True,
    "max_request_body_bytes": 1048576,
}
PLUGIN_CONFIG_JSON = json.dumps(PLUGIN_CONFIG, separators=(",", ":"))

GOOD = {}

GOOD["wasmplugin-oci"] = {
    "apiVersion": "extensions.istio.io/v1alpha1",
    "kind": "WasmPlugin",
    "metadata": {"name": "chokepoint", "namespace": "istio-ingress",
                 "labels": {"app.kubernetes.io/name": "chokepoint", "app.kubernetes.io/version": "0.1.0"}},
    "spec": {
        "selector": {"matchLabels": {"istio": "ingressgateway", "app.kubernetes.io/instance": "ai-gateway"}},
        "url": "oci://ghcr.io/example/chokepoint-filter:0.1.0",
        "sha256": SHA_A,
        "imagePullPolicy": "IfNotPresent",
        "imagePullSecret": "ghcr-pull",
        "phase": "AUTHN",
        "priority": 100,
        "failStrategy": "FAIL_CLOSE",
        "pluginName": "chokepoint",
        "type": "HTTP",
        "match": [{"mode": "CLIENT_AND_SERVER", "ports": [{"number": 443}, {"number": 8443}]}],
        "vmConfig": {"env": [
            {"name": "OPENAI_API_KEY", "valueFrom": "HOST"},
            {"name": "CHOKEPOINT_UUID_SALT", "valueFrom": "HOST"},
            {"name": "CHOKEPOINT_DEPLOYMENT", "value": "production"},
        ]},
        "pluginConfig": copy.deepcopy(PLUGIN_CONFIG),
    },
}

_ROUTER_MATCH = {
    "context": "GATEWAY",
    "listener": {"filterChain": {"filter": {
        "name": "envoy.filters.network.http_connection_manager",
        "subFilter": {"name": "envoy.filters.http.router"}}}},
}

_WASM_FILTER_CONFIG = {
    "name": "chokepoint",
    "root_id": "chokepoint",
    "allow_on_headers_stop_iteration": True,
    "failure_policy": "FAIL_CLOSED",
    "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": PLUGIN_CONFIG_JSON},
    "vm_config": {
        "vm_id": "chokepoint",
        "runtime": "envoy.wasm.runtime.v8",
        "code": {"local": {"filename": "/var/local/lib/wasm/chokepoint_filter.wasm"}},
        "environment_variables": {"host_env_keys": ["CHOKEPOINT_UUID_SALT", "OPENAI_API_KEY"]},
    },
}

GOOD["envoyfilter-insert-before-router"] = {
    "apiVersion": "networking.istio.io/v1alpha3",
    "kind": "EnvoyFilter",
    "metadata": {"name": "chokepoint", "namespace": "istio-ingress"},
    "spec": {
        "workloadSelector": {"labels": {"istio": "ingressgateway"}},
        "priority": 10,
        "configPatches": [{
            "applyTo": "HTTP_FILTER",
            "match": copy.deepcopy(_ROUTER_MATCH),
            "patch": {"operation": "INSERT_BEFORE", "value": {
                "name": "chokepoint",
                "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                                 "config": copy.deepcopy(_WASM_FILTER_CONFIG)}}},
        }],
    },
}

_ECDS_CONFIG = copy.deepcopy(_WASM_FILTER_CONFIG)
_ECDS_CONFIG["vm_config"]["code"] = {"remote": {
    "http_uri": {"uri": "https://artifacts.example.com/chokepoint/0.1.0/chokepoint_filter.wasm",
                 "timeout": "30s"},
    "sha256": SHA_B}}

GOOD["envoyfilter-ecds"] = {
    "apiVersion": "networking.istio.io/v1alpha3",
    "kind": "EnvoyFilter",
    "metadata": {"name": "chokepoint-ecds", "namespace": "istio-ingress"},
    "spec": {
        "workloadSelector": {"labels": {"istio": "ingressgateway"}},
        "configPatches": [
            {"applyTo": "EXTENSION_CONFIG", "patch": {"operation": "ADD", "value": {
                "name": "istio-ingress/chokepoint",
                "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                                 "config": _ECDS_CONFIG}}}},
            {"applyTo": "HTTP_FILTER", "match": copy.deepcopy(_ROUTER_MATCH), "patch": {
                "operation": "INSERT_BEFORE", "value": {
                    "name": "istio-ingress/chokepoint",
                    "config_discovery": {
                        "config_source": {"ads": {}, "initial_fetch_timeout": "0s"},
                        "type_urls": ["type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"]}}}},
        ],
    },
}

GOOD["trafficextension"] = {
    "apiVersion": "extensions.istio.io/v1alpha1",
    "kind": "TrafficExtension",
    "metadata": {"name": "chokepoint", "namespace": "istio-ingress"},
    "spec": {
        "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "ai-gateway"}],
        "phase": "AUTHN",
        "priority": 100,
        "match": [{"mode": "CLIENT", "ports": [{"number": 443}]}],
        "wasm": {
            "url": "oci://ghcr.io/example/chokepoint-filter:0.1.0",
            "sha256": SHA_A,
            "failStrategy": "FAIL_CLOSE",
            "pluginName": "chokepoint",
            "type": "HTTP",
            "vmConfig": {"env": [{"name": "OPENAI_API_KEY", "valueFrom": "HOST"},
                                 {"name": "CHOKEPOINT_UUID_SALT", "valueFrom": "HOST"}]},
            "pluginConfig": copy.deepcopy(PLUGIN_CONFIG),
        },
    },
}

GOOD["eep-image"] = {
    "apiVersion": "gateway.envoyproxy.io/v1alpha1",
    "kind": "EnvoyExtensionPolicy",
    "metadata": {"name": "chokepoint", "namespace": "ai-gateway"},
    "spec": {
        "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "llm-providers"}],
        "wasm": [{
            "name": "chokepoint",
            "rootID": "chokepoint",
            "code": {"type": "Image", "image": {
                "url": "oci://ghcr.io/example/chokepoint-filter:0.1.0",
                "sha256": SHA_A,
                "pullSecretRef": {"name": "ghcr-pull"}}},
            "config": copy.deepcopy(PLUGIN_CONFIG),
            "env": {"hostKeys": ["CHOKEPOINT_UUID_SALT", "OPENAI_API_KEY"]},
            "failOpen": False,
        }],
    },
}

GOOD["httproute"] = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "HTTPRoute",
    "metadata": {"name": "llm-providers", "namespace": "ai-gateway"},
    "spec": {
        "parentRefs": [{"name": "ai-gateway", "sectionName": "https"}],
        "hostnames": ["llm.example.com"],
        "rules": [{
            "matches": [{"path": {"type": "PathPrefix", "value": "/v1/"}}],
            "backendRefs": [{"group": "gateway.envoyproxy.io", "kind": "Backend", "name": "openai", "port": 443}],
            "timeouts": {"request": "600s"},
        }],
    },
}

# Upstream TLS to a provider host, as chokepoint renders it for each mesh.
GOOD["serviceentry-external"] = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "ServiceEntry",
    "metadata": {"name": "api-openai-com", "namespace": "istio-system"},
    "spec": {
        "hosts": ["api.openai.com"],
        "location": "MESH_EXTERNAL",
        "resolution": "DNS",
        "ports": [{"number": 443, "name": "http-provider", "protocol": "HTTP"}],
    },
}

GOOD["destinationrule-tls-origination"] = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "DestinationRule",
    "metadata": {"name": "api-openai-com", "namespace": "istio-system"},
    "spec": {
        "host": "api.openai.com",
        "trafficPolicy": {"tls": {"mode": "SIMPLE", "sni": "api.openai.com", "subjectAltNames": ["api.openai.com"]}},
    },
}

GOOD["backend-system-ca"] = {
    "apiVersion": "gateway.envoyproxy.io/v1alpha1",
    "kind": "Backend",
    "metadata": {"name": "api-openai-com", "namespace": "ai-gateway"},
    "spec": {
        "endpoints": [{"fqdn": {"hostname": "api.openai.com", "port": 443}}],
        "tls": {"wellKnownCACertificates": "System", "sni": "api.openai.com"},
    },
}

GOOD["backendtlspolicy-system-ca"] = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "BackendTLSPolicy",
    "metadata": {"name": "api-openai-com", "namespace": "ai-gateway"},
    "spec": {
        "targetRefs": [{"group": "gateway.envoyproxy.io", "kind": "Backend", "name": "api-openai-com"}],
        "validation": {"wellKnownCACertificates": "System", "hostname": "api.openai.com"},
    },
}

GOOD["envoyproxy-usage-log"] = {
    "apiVersion": "gateway.envoyproxy.io/v1alpha1",
    "kind": "EnvoyProxy",
    "metadata": {"name": "chokepoint", "namespace": "ai-gateway"},
    "spec": {"telemetry": {"accessLog": {"settings": [
        {"type": "Route", "format": {"type": "Text", "text": "%FILTER_STATE(wasm.chokepoint_usage:PLAIN)%\n"},
         "sinks": [{"type": "File", "file": {"path": "/dev/stdout"}}]},
        {"sinks": [{"type": "File", "file": {"path": "/dev/stdout"}}]},
    ]}}},
}

CA_REFS = [{"group": "", "kind": "ConfigMap", "name": "chokepoint-ca-models-corp"}]


def _edit(base, fn):
    obj = copy.deepcopy(GOOD[base])
    fn(obj)
    return obj


def _rename(d, old, new):
    d[new] = d.pop(old)


# More good variants: each exercises a converter rule that could over-reject.
GOOD_VARIANTS = {
    "wasmplugin-targetRefs-no-scheme-url": _edit("wasmplugin-oci", lambda o: (
        o["spec"].pop("selector"),
        o["spec"].update(url="ghcr.io/example/chokepoint-filter:0.1.0",
                         targetRefs=[{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "ai-gw"}]))),
    "wasmplugin-priority-null (nullable)": _edit("wasmplugin-oci", lambda o: o["spec"].update(priority=None)),
    "wasmplugin-file-url-no-scope": _edit("wasmplugin-oci", lambda o: (
        o["spec"].pop("selector"), o["spec"].pop("sha256"),
        o["spec"].update(url="file:///var/local/lib/wasm/chokepoint_filter.wasm"))),
    "wasmplugin-https-url-fail-open": _edit("wasmplugin-oci", lambda o: o["spec"].update(
        url="https://artifacts.example.com/chokepoint/0.1.0/chokepoint_filter.wasm",
        failStrategy="FAIL_OPEN", phase="UNSPECIFIED_PHASE", imagePullPolicy="Always")),
    "wasmplugin-digest-url-matching-sha256": _edit("wasmplugin-oci", lambda o: o["spec"].update(
        url=f"oci://ghcr.io/example/chokepoint-filter@sha256:{SHA_A}")),
    "wasmplugin-registry-port-with-scheme": _edit("wasmplugin-oci", lambda o: o["spec"].update(
        url="oci://registry.internal:5000/chokepoint-filter:0.1.0")),
    "wasmplugin-empty-sha256-priority-negative": _edit("wasmplugin-oci", lambda o: o["spec"].update(
        sha256="", priority=-5)),
    "envoyfilter-filterClass-sidecar": _edit("envoyfilter-insert-before-router", lambda o: (
        o["spec"]["configPatches"][0].update(
            match={"context": "SIDECAR_INBOUND", "listener": {"portNumber": 8080, "filterChain": {
                "filter": {"name": "envoy.filters.network.http_connection_manager"}}},
                "proxy": {"proxyVersion": "^1\\.30.*", "metadata": {"ISTIO_VERSION": "1.30.3"}}}),
        o["spec"]["configPatches"][0]["patch"].update(operation="ADD", filterClass="AUTHN"))),
    "envoyfilter-targetRefs": _edit("envoyfilter-insert-before-router", lambda o: (
        o["spec"].pop("workloadSelector"),
        o["spec"].update(targetRefs=[{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "ai-gw"}]))),
    "eep-http-code-targetRef-gateway": _edit("eep-image", lambda o: (
        o["spec"].pop("targetRefs"),
        o["spec"].update(targetRef={"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "ai-gw",
                                    "sectionName": "https"}),
        o["spec"]["wasm"][0].update(code={"type": "HTTP", "http": {
            "url": "https://artifacts.example.com/chokepoint/0.1.0/chokepoint_filter.wasm", "sha256": SHA_B}}))),
    "eep-targetSelectors-pullPolicy": _edit("eep-image", lambda o: (
        o["spec"].pop("targetRefs"),
        o["spec"].update(targetSelectors=[{"kind": "HTTPRoute", "matchLabels": {"chokepoint.example.com/enabled": "true"}}]),
        o["spec"]["wasm"][0]["code"]["image"].pop("sha256"),
        o["spec"]["wasm"][0]["code"].update(pullPolicy="Always"))),
    "httproute-v1beta1": _edit("httproute", lambda o: o.update(apiVersion="gateway.networking.k8s.io/v1beta1")),
    "httproute-service-backend": _edit("httproute", lambda o: o["spec"]["rules"][0].update(
        backendRefs=[{"name": "openai-egress", "port": 443, "weight": 1}])),
    "httproute-two-listeners-rewrite-regex": _edit("httproute", lambda o: (
        o["spec"].update(parentRefs=[{"name": "ai-gateway", "sectionName": "https"},
                                     {"name": "ai-gateway", "sectionName": "http"}]),
        o["spec"]["rules"][0].update(
            filters=[{"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/v1/"}}}],
            matches=[{"path": {"type": "PathPrefix", "value": "/openai/v1/"}}],
            timeouts={"request": "10m", "backendRequest": "600s"}),
        o["spec"]["rules"].append({"matches": [{"path": {"type": "RegularExpression", "value": "^/v1/(chat|responses)//?.*"},
                                                "headers": [{"name": "x-chokepoint-tenant", "value": "ml"}]}],
                                   "backendRefs": [{"name": "openai-egress", "port": 443}]}))),
    "destinationrule-idle-timeout-in-microseconds": _edit("destinationrule-tls-origination", lambda o: o["spec"][
        "trafficPolicy"].update(connectionPool={"http": {"idleTimeout": "1500µs"}})),
    "destinationrule-private-ca-credential": _edit("destinationrule-tls-origination", lambda o: o["spec"]["trafficPolicy"][
        "tls"].update(credentialName="chokepoint-ca-models-corp")),
    "backend-private-ca": _edit("backend-system-ca", lambda o: (
        o["spec"]["tls"].pop("wellKnownCACertificates"),
        o["spec"]["tls"].update(caCertificateRefs=CA_REFS))),
    "backendtlspolicy-private-ca": _edit("backendtlspolicy-system-ca", lambda o: (
        o["spec"]["validation"].pop("wellKnownCACertificates"),
        o["spec"]["validation"].update(caCertificateRefs=CA_REFS))),
}
GOOD.update(GOOD_VARIANTS)

# A built-in kind, checked against the Kubernetes schema (builtin_kinds.py).
GOOD["networkpolicy"] = {
    "apiVersion": "networking.k8s.io/v1",
    "kind": "NetworkPolicy",
    "metadata": {"name": "chokepoint-policy", "namespace": "chokepoint"},
    "spec": {
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "chokepoint-policy"}},
        "policyTypes": ["Ingress"],
        "ingress": [
            {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "istio-system"}},
                       "podSelector": {"matchLabels": {"istio": "ingressgateway"}}}],
             "ports": [{"protocol": "TCP", "port": 8081}]},
            {"from": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"chokepoint-policy-admin": "true"}}}],
             "ports": [{"protocol": "TCP", "port": 8082}]},
        ],
    },
}

# The policy service and its Redis, as a cluster runs them (core and apps kinds).
_POD_LABELS = {"app.kubernetes.io/name": "chokepoint-policy"}
_CONTAINER = {
    "name": "policy",
    "image": "registry.example.com/chokepoint/policy:0.1.0",
    "command": ["chokepoint-policy"],
    "args": ["serve", "--listen=0.0.0.0:8081", "--admin-listen=0.0.0.0:8082"],
    "env": [{"name": "CHOKEPOINT_POLICY_TOKEN",
             "valueFrom": {"secretKeyRef": {"name": "chokepoint-policy-token", "key": "CHOKEPOINT_POLICY_TOKEN"}}}],
    "ports": [{"name": "gateway", "containerPort": 8081, "protocol": "TCP"},
              {"name": "admin", "containerPort": 8082, "protocol": "TCP"}],
    "readinessProbe": {"httpGet": {"path": "/healthz", "port": "gateway"}, "periodSeconds": 5},
    "livenessProbe": {"httpGet": {"path": "/healthz", "port": "admin"}, "failureThreshold": 6},
    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "256Mi"}},
    "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]}},
}
GOOD["deployment"] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "chokepoint-policy", "namespace": "chokepoint", "labels": _POD_LABELS},
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": _POD_LABELS},
        "template": {"metadata": {"labels": _POD_LABELS},
                     "spec": {"serviceAccountName": "chokepoint-policy",
                              "securityContext": {"runAsNonRoot": True, "runAsUser": 65532,
                                                  "seccompProfile": {"type": "RuntimeDefault"}},
                              "containers": [_CONTAINER]}},
    },
}
GOOD["statefulset"] = {
    "apiVersion": "apps/v1",
    "kind": "StatefulSet",
    "metadata": {"name": "chokepoint-redis", "namespace": "chokepoint"},
    "spec": {
        "serviceName": "chokepoint-redis",
        "replicas": 1,
        "selector": {"matchLabels": {"app.kubernetes.io/name": "chokepoint-redis"}},
        "template": {"metadata": {"labels": {"app.kubernetes.io/name": "chokepoint-redis"}},
                     "spec": {"containers": [{"name": "redis", "image": "redis:7.4",
                                              "ports": [{"name": "redis", "containerPort": 6379}],
                                              "livenessProbe": {"tcpSocket": {"port": "redis"}},
                                              "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]}},
        "volumeClaimTemplates": [{"metadata": {"name": "data"},
                                  "spec": {"accessModes": ["ReadWriteOnce"],
                                           "resources": {"requests": {"storage": "1Gi"}}}}],
    },
}
GOOD["service"] = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "chokepoint-policy", "namespace": "chokepoint"},
    "spec": {"selector": _POD_LABELS,
             "ports": [{"name": "http", "port": 8081, "targetPort": "gateway", "appProtocol": "http"}]},
}
GOOD["configmap"] = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "chokepoint-policy-limits", "namespace": "chokepoint"},
    "data": {"limits.json": '{"user:*": {"rpm": 60}}\n'},
}
GOOD["serviceaccount"] = {
    "apiVersion": "v1",
    "kind": "ServiceAccount",
    "metadata": {"name": "chokepoint-policy", "namespace": "chokepoint"},
    "automountServiceAccountToken": False,
}


def _container(fn):
    return lambda o: fn(o["spec"]["template"]["spec"]["containers"][0])


# Broken manifests: (name, object, [(expected path, regex on the message)]). Each must fail
# with every expected problem and with no problem at any other path.
BAD = [
    # The audit log: a usage record that would never be written.
    ("envoyproxy text format without text", _edit("envoyproxy-usage-log", lambda o: o["spec"]["telemetry"][
        "accessLog"]["settings"][0]["format"].pop("text")),
     [("spec.telemetry.accessLog.settings[0].format", r"\[CEL\] If AccessLogFormat type is Text, text field needs to be set")]),
    ("envoyproxy file sink without file", _edit("envoyproxy-usage-log", lambda o: o["spec"]["telemetry"][
        "accessLog"]["settings"][0]["sinks"][0].pop("file")),
     [("spec.telemetry.accessLog.settings[0].sinks[0]", r"\[CEL\] If AccessLogSink type is File, file field needs to be set")]),
    # Upstream TLS: what would leave a provider's name unchecked or the trust undefined.
    ("destinationrule tls.subjectAltName (singular)", _edit("destinationrule-tls-origination", lambda o: _rename(
        o["spec"]["trafficPolicy"]["tls"], "subjectAltNames", "subjectAltName")),
     [("spec.trafficPolicy.tls.subjectAltName", r'unknown field "subjectAltName" \(did you mean "subjectAltNames"')]),
    ("destinationrule tls mode TLS", _edit("destinationrule-tls-origination", lambda o: o["spec"]["trafficPolicy"][
        "tls"].update(mode="TLS")),
     [("spec.trafficPolicy.tls.mode", r"'TLS' is not one of")]),
    ("serviceentry wildcard host", _edit("serviceentry-external", lambda o: o["spec"].update(hosts=["*"])),
     [("spec.hosts[0]", r"\[CEL\] hostname cannot be wildcard")]),
    ("backendtlspolicy without hostname", _edit("backendtlspolicy-system-ca", lambda o: o["spec"]["validation"].pop("hostname")),
     [("spec.validation", r'required field "hostname" is missing')]),
    ("backendtlspolicy without any CA", _edit("backendtlspolicy-system-ca", lambda o: o["spec"]["validation"].pop(
        "wellKnownCACertificates")),
     [("spec.validation", r"\[CEL\] must specify either CACertificateRefs or WellKnownCACertificates")]),
    ("backendtlspolicy system and private CA", _edit("backendtlspolicy-system-ca", lambda o: o["spec"]["validation"].update(
        caCertificateRefs=CA_REFS)),
     [("spec.validation", r"\[CEL\] must not contain both CACertificateRefs and WellKnownCACertificates")]),
    ("backendtlspolicy hostname with a port", _edit("backendtlspolicy-system-ca", lambda o: o["spec"]["validation"].update(
        hostname="api.openai.com:443")),
     [("spec.validation.hostname", r"does not match")]),
    ("backend system and private CA", _edit("backend-system-ca", lambda o: o["spec"]["tls"].update(caCertificateRefs=CA_REFS)),
     [("spec.tls", r"\[CEL\] must not contain both CACertificateRefs and WellKnownCACertificates")]),
    ("backend DynamicResolver with endpoints", _edit("backend-system-ca", lambda o: o["spec"].update(
        type="DynamicResolver")),
     [("spec", r"\[CEL\] DynamicResolver type cannot have endpoints specified")]),
    ("backendtlspolicy same target twice", _edit("backendtlspolicy-system-ca", lambda o: o["spec"]["targetRefs"].append(
        dict(o["spec"]["targetRefs"][0]))),
     [("spec.targetRefs", r"\[CEL\] sectionName must be unique when targetRefs includes 2 or more references")]),
    ("serviceentry duplicate port number", _edit("serviceentry-external", lambda o: o["spec"]["ports"].append(
        {"number": 443, "name": "https-provider", "protocol": "HTTPS"})),
     [("spec.ports", r"\[CEL\] port number cannot be duplicated")]),
    ("destinationrule idle timeout below 1ms", _edit("destinationrule-tls-origination", lambda o: o["spec"][
        "trafficPolicy"].update(connectionPool={"http": {"idleTimeout": "500us"}})),
     [("spec.trafficPolicy.connectionPool.http.idleTimeout", r"\[CEL\] must be a valid duration greater than 1ms")]),
    ("backend endpoint fqdn and ip", _edit("backend-system-ca", lambda o: o["spec"]["endpoints"][0].update(
        ip={"address": "10.0.0.5", "port": 443})),
     [("spec.endpoints[0]", r"\[CEL\] only one of fqdn, ip or unix can be specified")]),
    ("wasmplugin spec.phaze", _edit("wasmplugin-oci", lambda o: _rename(o["spec"], "phase", "phaze")),
     [("spec.phaze", r'unknown field "phaze" \(did you mean "phase"\?')]),
    ("wasmplugin vmConfig.env[].nmae", _edit("wasmplugin-oci", lambda o: _rename(o["spec"]["vmConfig"]["env"][0], "name", "nmae")),
     [("spec.vmConfig.env[0].nmae", r'unknown field "nmae"'), ("spec.vmConfig.env[0]", r'required field "name" is missing')]),
    ("envoyfilter patch.operaton", _edit("envoyfilter-insert-before-router",
                                         lambda o: _rename(o["spec"]["configPatches"][0]["patch"], "operation", "operaton")),
     [("spec.configPatches[0].patch.operaton", r'unknown field "operaton" \(did you mean "operation"')]),
    ("eep wasm[].failopen", _edit("eep-image", lambda o: _rename(o["spec"]["wasm"][0], "failOpen", "failopen")),
     [("spec.wasm[0].failopen", r'unknown field "failopen" \(did you mean "failOpen"')]),
    ("httproute rules[].backendRef", _edit("httproute", lambda o: _rename(o["spec"]["rules"][0], "backendRefs", "backendRef")),
     [("spec.rules[0].backendRef", r'unknown field "backendRef" \(did you mean "backendRefs"')]),
    ("networkpolicy ports[].prot", _edit("networkpolicy", lambda o: _rename(o["spec"]["ingress"][0]["ports"][0], "protocol", "prot")),
     [("spec.ingress[0].ports[0].prot", r'unknown field "prot"')]),
    ("networkpolicy ingress not a list", _edit("networkpolicy", lambda o: o["spec"].update(ingress={"from": []})),
     [("spec.ingress", r"is not of type 'array'")]),
    ("networkpolicy label value not a string",
     _edit("networkpolicy", lambda o: o["spec"]["podSelector"]["matchLabels"].update(tier=1)),
     [("spec.podSelector.matchLabels.tier", r"is not of type 'string'")]),
    # Core and apps kinds: a misspelt field anywhere is refused where it is.
    ("deployment containers[].imagee", _edit("deployment", _container(lambda c: _rename(c, "image", "imagee"))),
     [("spec.template.spec.containers[0].imagee", r'unknown field "imagee"')]),
    ("deployment readOnlyRootFileSystem",
     _edit("deployment", _container(lambda c: _rename(c["securityContext"], "readOnlyRootFilesystem",
                                                        "readOnlyRootFileSystem"))),
     [("spec.template.spec.containers[0].securityContext.readOnlyRootFileSystem",
       r'unknown field "readOnlyRootFileSystem"')]),
    ("deployment secretKeyRef.namespace",
     _edit("deployment", _container(lambda c: c["env"][0]["valueFrom"]["secretKeyRef"].update(namespace="x"))),
     [("spec.template.spec.containers[0].env[0].valueFrom.secretKeyRef.namespace", r'unknown field "namespace"')]),
    ("deployment: every misspelt field, not only the first",
     _edit("deployment", lambda o: (_rename(o["spec"], "replicas", "replica"),
                                    _container(lambda c: _rename(c, "image", "imagee"))(o))),
     [("spec.replica", r'unknown field "replica"'),
      ("spec.template.spec.containers[0].imagee", r'unknown field "imagee"')]),
    ("deployment replicas as a string", _edit("deployment", lambda o: o["spec"].update(replicas="2")),
     [("spec.replicas", r"is not of type 'integer'")]),
    ("deployment selector off its template [extra]",
     _edit("deployment", lambda o: o["spec"].update(selector={"matchLabels": {"app.kubernetes.io/name": "x"}})),
     [("spec.selector", r"does not match template labels")]),
    ("deployment probe on an undeclared port [extra]",
     _edit("deployment", _container(lambda c: c["readinessProbe"]["httpGet"].update(port="http"))),
     [("spec.template.spec.containers[0].readinessProbe.httpGet.port", r"does not declare")]),
    ("deployment port name over 15 characters [extra]",
     _edit("deployment", _container(lambda c: (c["ports"][1].update(name="admin-listener-port"),
                                               c["livenessProbe"]["httpGet"].update(port="admin-listener-port")))),
     [("spec.template.spec.containers[0].ports[1].name", r"not an IANA service name")]),
    ("statefulset volumeClaimTemplate (singular)",
     _edit("statefulset", lambda o: _rename(o["spec"], "volumeClaimTemplates", "volumeClaimTemplate")),
     [("spec.volumeClaimTemplate", r'unknown field "volumeClaimTemplate"')]),
    ("statefulset without serviceName's type", _edit("statefulset", lambda o: o["spec"].update(serviceName=1)),
     [("spec.serviceName", r"is not of type 'string'")]),
    ("service ports[].targetport", _edit("service", lambda o: _rename(o["spec"]["ports"][0], "targetPort", "targetport")),
     [("spec.ports[0].targetport", r'unknown field "targetport"')]),
    ("configmap datas", _edit("configmap", lambda o: _rename(o, "data", "datas")),
     [("datas", r'unknown field "datas"')]),
    ("serviceaccount automountServiceAccountTokens",
     _edit("serviceaccount", lambda o: _rename(o, "automountServiceAccountToken", "automountServiceAccountTokens")),
     [("automountServiceAccountTokens", r'unknown field "automountServiceAccountTokens"')]),
    ("a misspelt core kind", _edit("service", lambda o: o.update(kind="Servise")),
     [("apiVersion", r"Couldn't find schema for kind Servise")]),
    ("deployment in apps/v1beta2 (gone since 1.16)", _edit("deployment", lambda o: o.update(apiVersion="apps/v1beta2")),
     [("apiVersion", r"Couldn't find schema for kind Deployment")]),
    ("networkpolicy v1beta1", _edit("networkpolicy", lambda o: o.update(apiVersion="networking.k8s.io/v1beta1")),
     [("apiVersion", r"Couldn't find schema for kind NetworkPolicy")]),
    ("networkpolicy protocol TPC [extra]",
     _edit("networkpolicy", lambda o: o["spec"]["ingress"][1]["ports"][0].update(protocol="TPC")),
     [("spec.ingress[1].ports[0].protocol", r"not one of TCP, UDP, SCTP")]),
    ("networkpolicy port 0 and policy type [extra]",
     _edit("networkpolicy", lambda o: (o["spec"]["ingress"][0]["ports"][0].update(port=0),
                                       o["spec"].update(policyTypes=["Inbound"]))),
     [("spec.ingress[0].ports[0].port", r"is not a port"), ("spec.policyTypes[0]", r"not one of Ingress, Egress")]),
    ("networkpolicy selector label key [extra]",
     _edit("networkpolicy", lambda o: o["spec"]["ingress"][1]["from"][0]["podSelector"]["matchLabels"].update({"-bad": "x"})),
     [("spec.ingress[1].from[0].podSelector.matchLabels[\"-bad\"]", r"invalid label key")]),
    ("wasmplugin bad phase enum", _edit("wasmplugin-oci", lambda o: o["spec"].update(phase="AUTHENTICATION")),
     [("spec.phase", r"'AUTHENTICATION' is not one of")]),
    ("wasmplugin string priority", _edit("wasmplugin-oci", lambda o: o["spec"].update(priority="100")),
     [("spec.priority", r"'100' is not of type 'integer', 'null'")]),
    ("wasmplugin selector and targetRefs", _edit("wasmplugin-oci", lambda o: o["spec"].update(
        targetRefs=[{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "ai-gw"}])),
     [("spec", r"\[CEL\] only one of targetRefs or selector can be set")]),
    ("wasmplugin selector and hidden targetRef", _edit("wasmplugin-oci", lambda o: o["spec"].update(
        targetRef={"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "ai-gw"})),
     [("spec", r"\[CEL\] only one of targetRefs or selector can be set")]),
    ("wasmplugin env value with valueFrom HOST", _edit("wasmplugin-oci", lambda o: o["spec"]["vmConfig"]["env"][0].update(
        value="sk-live-not-here")),
     [("spec.vmConfig.env[0]", r"\[CEL\] value may only be set when valueFrom is INLINE")]),
    ("eep code.type Image with code.http", _edit("eep-image", lambda o: o["spec"]["wasm"][0]["code"].update(
        http={"url": "https://artifacts.example.com/chokepoint_filter.wasm"})),
     [("spec.wasm[0].code", r"\[CEL\] If type is HTTP, http field needs to be set\.")]),
    ("wasmplugin sha256 of wrong length", _edit("wasmplugin-oci", lambda o: o["spec"].update(sha256=SHA_A[:63])),
     [("spec.sha256", r"does not match '\(\^\$\|\^\[a-f0-9\]\{64\}\$\)'")]),
    # Beyond the brief's list: what renderers commonly get wrong.
    ("wasmplugin sha256 uppercase", _edit("wasmplugin-oci", lambda o: o["spec"].update(sha256=SHA_A.upper())),
     [("spec.sha256", r"does not match")]),
    ("wasmplugin sha256 with sha256: prefix", _edit("wasmplugin-oci", lambda o: o["spec"].update(sha256="sha256:" + SHA_A)),
     [("spec.sha256", r"does not match")]),
    ("wasmplugin sha256 vs url digest", _edit("wasmplugin-oci", lambda o: o["spec"].update(
        url=f"oci://ghcr.io/example/chokepoint-filter@sha256:{SHA_B}")),
     [("spec.sha256", r"\[extra\] does not match the digest in url")]),
    ("wasmplugin failStrategy Envoy spelling FAIL_CLOSED", _edit("wasmplugin-oci", lambda o: o["spec"].update(failStrategy="FAIL_CLOSED")),
     [("spec.failStrategy", r"'FAIL_CLOSED' is not one of \['FAIL_CLOSE', 'FAIL_OPEN', 'FAIL_RELOAD'\]")]),
    ("wasmplugin match mode INBOUND", _edit("wasmplugin-oci", lambda o: o["spec"]["match"][0].update(mode="INBOUND")),
     [("spec.match[0].mode", r"'INBOUND' is not one of")]),
    ("wasmplugin match as object", _edit("wasmplugin-oci", lambda o: o["spec"].update(match={"mode": "CLIENT"})),
     [("spec.match", r"is not of type 'array'")]),
    ("wasmplugin url ftp://", _edit("wasmplugin-oci", lambda o: o["spec"].update(url="ftp://example.com/f.wasm")),
     [("spec.url", r"\[CEL\] url must have schema one of")]),
    ("wasmplugin url registry:port without oci://", _edit("wasmplugin-oci", lambda o: o["spec"].update(
        url="registry.internal:5000/chokepoint-filter:0.1.0")),
     [("spec.url", r"\[CEL\] url must have schema one of")]),
    ("wasmplugin no url", _edit("wasmplugin-oci", lambda o: o["spec"].pop("url")),
     [("spec", r'required field "url" is missing')]),
    ("wasmplugin pluginConfig as JSON string", _edit("wasmplugin-oci", lambda o: o["spec"].update(pluginConfig=PLUGIN_CONFIG_JSON)),
     [("spec.pluginConfig", r"is not of type 'object'")]),
    ("wasmplugin duplicate env name", _edit("wasmplugin-oci", lambda o: o["spec"]["vmConfig"]["env"].append(
        {"name": "OPENAI_API_KEY", "value": "x"})),
     [("spec.vmConfig.env[3]", r"\[list\] duplicate entry name='OPENAI_API_KEY' \(also at \[0\]")]),
    ("wasmplugin duplicate match port", _edit("wasmplugin-oci", lambda o: o["spec"]["match"][0]["ports"].append({"number": 443})),
     [("spec.match[0].ports[2]", r"\[list\] duplicate entry number=443")]),
    ("wasmplugin env valueFrom SECRET", _edit("wasmplugin-oci", lambda o: o["spec"]["vmConfig"]["env"][0].update(valueFrom="SECRET")),
     [("spec.vmConfig.env[0].valueFrom", r"'SECRET' is not one of \['INLINE', 'HOST'\]")]),
    ("wasmplugin targetRefs cross-namespace", _edit("wasmplugin-oci", lambda o: (o["spec"].pop("selector"), o["spec"].update(
        targetRefs=[{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw", "namespace": "other"}]))),
     [("spec.targetRefs[0].namespace", r"\[CEL\] cross namespace referencing is not currently supported")]),
    ("wasmplugin matchLabels wildcard", _edit("wasmplugin-oci", lambda o: o["spec"]["selector"]["matchLabels"].update(app="*")),
     [("spec.selector.matchLabels.app", r"\[CEL\] wildcard not allowed in label value match")]),
    ("wasmplugin selector.labels (EnvoyFilter shape)", _edit("wasmplugin-oci", lambda o: _rename(o["spec"]["selector"], "matchLabels", "labels")),
     [("spec.selector.labels", r'unknown field "labels"')]),
    ("wasmplugin priority beyond int32", _edit("wasmplugin-oci", lambda o: o["spec"].update(priority=2**31)),
     [("spec.priority", r"greater than the maximum of 2147483647")]),
    ("wasmplugin null selector", _edit("wasmplugin-oci", lambda o: o["spec"].update(selector=None)),
     [("spec.selector", r"null value where object is expected")]),
    ("wasmplugin v1beta1 not served", _edit("wasmplugin-oci", lambda o: o.update(apiVersion="extensions.istio.io/v1beta1")),
     [("apiVersion", r"\[kind\] WasmPlugin has no served version 'v1beta1' \(served: extensions.istio.io/v1alpha1\)")]),
    ("wasmplugin wrong group", _edit("wasmplugin-oci", lambda o: o.update(apiVersion="networking.istio.io/v1alpha3")),
     [("apiVersion", r"\[kind\] WasmPlugin is not served as networking.istio.io/v1alpha3")]),
    ("wasmplugin bad metadata.name", _edit("wasmplugin-oci", lambda o: o["metadata"].update(name="Chokepoint_Filter")),
     [("metadata.name", r"\[extra\] 'Chokepoint_Filter' is not a DNS-1123 subdomain")]),
    ("wasmplugin unknown root field", _edit("wasmplugin-oci", lambda o: o.update(specs={})),
     [("specs", r'unknown field "specs" \(did you mean "spec"')]),
    ("wasmplugin no spec", _edit("wasmplugin-oci", lambda o: o.pop("spec")),
     [("(root)", r'required field "spec" is missing')]),
    ("envoyfilter targetRefs and workloadSelector", _edit("envoyfilter-insert-before-router", lambda o: o["spec"].update(
        targetRefs=[{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "ai-gw"}])),
     [("spec", r"\[CEL\] only one of targetRefs or workloadSelector can be set")]),
    ("envoyfilter workloadSelector.matchLabels", _edit("envoyfilter-insert-before-router", lambda o: _rename(
        o["spec"]["workloadSelector"], "labels", "matchLabels")),
     [("spec.workloadSelector.matchLabels", r'unknown field "matchLabels"')]),
    ("envoyfilter context SIDECAR", _edit("envoyfilter-insert-before-router", lambda o: o["spec"]["configPatches"][0]["match"].update(
        context="SIDECAR")),
     [("spec.configPatches[0].match.context", r"'SIDECAR' is not one of")]),
    ("envoyfilter applyTo HTTP_FILTERS", _edit("envoyfilter-insert-before-router", lambda o: o["spec"]["configPatches"][0].update(
        applyTo="HTTP_FILTERS")),
     [("spec.configPatches[0].applyTo", r"'HTTP_FILTERS' is not one of")]),
    ("envoyfilter match listener and cluster", _edit("envoyfilter-insert-before-router", lambda o: o["spec"]["configPatches"][0]["match"].update(
        cluster={"service": "x"})),
     [("spec.configPatches[0].match", r"at most one of listener, routeConfiguration, cluster, waypoint may be set")]),
    ("envoyfilter subFilter as string", _edit("envoyfilter-insert-before-router", lambda o: o["spec"]["configPatches"][0]["match"]["listener"]["filterChain"]["filter"].update(
        subFilter="envoy.filters.http.router")),
     [("spec.configPatches[0].match.listener.filterChain.filter.subFilter", r"is not of type 'object'")]),
    ("envoyfilter waypoint without WAYPOINT context", _edit("envoyfilter-insert-before-router", lambda o: (
        o["spec"]["configPatches"][0]["match"].pop("listener"),
        o["spec"]["configPatches"][0]["match"].update(waypoint={"portNumber": 80}))),
     [("spec.configPatches[0].match", r"\[CEL\] only support waypointMatch when context is WAYPOINT")]),
    ("trafficextension selector and targetRefs", _edit("trafficextension", lambda o: o["spec"].update(
        selector={"matchLabels": {"istio": "ingressgateway"}})),
     [("spec", r"\[CEL\] only one of targetRefs or selector can be set")]),
    ("trafficextension wasm and lua", _edit("trafficextension", lambda o: o["spec"].update(lua={"inlineCode": "x"})),
     [("spec", r"\[CEL\] exactly one of wasm or lua must be set"), ("spec", r"at most one of wasm, lua may be set")]),
    ("trafficextension neither wasm nor lua", _edit("trafficextension", lambda o: o["spec"].pop("wasm")),
     [("spec", r"\[CEL\] exactly one of wasm or lua must be set")]),
    ("trafficextension env value with HOST", _edit("trafficextension", lambda o: o["spec"]["wasm"]["vmConfig"]["env"][1].update(value="s")),
     [("spec.wasm.vmConfig.env[1]", r"\[CEL\] value may only be set when valueFrom is INLINE")]),
    ("trafficextension url scheme", _edit("trafficextension", lambda o: o["spec"]["wasm"].update(url="s3://bucket/f.wasm")),
     [("spec.wasm.url", r"\[CEL\] url must have schema one of")]),
    ("trafficextension WasmPlugin shape (url at spec)", _edit("trafficextension", lambda o: o["spec"].update(url="oci://x/y:1")),
     [("spec.url", r'unknown field "url"')]),
    ("trafficextension phase UNSPECIFIED_PHASE", _edit("trafficextension", lambda o: o["spec"].update(phase="UNSPECIFIED_PHASE")),
     [("spec.phase", r"'UNSPECIFIED_PHASE' is not one of \['UNSPECIFIED', 'AUTHN', 'AUTHZ', 'STATS'\]")]),
    ("eep no target", _edit("eep-image", lambda o: o["spec"].pop("targetRefs")),
     [("spec", r"\[CEL\] either targetRef or targetRefs must be used")]),
    ("eep targetRef and targetRefs", _edit("eep-image", lambda o: o["spec"].update(
        targetRef={"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw"})),
     [("spec", r"\[CEL\] either targetRef or targetRefs must be used")]),
    ("eep targetRefs core group", _edit("eep-image", lambda o: o["spec"]["targetRefs"][0].update(group="")),
     [("spec", r"\[CEL\] this policy can only have a targetRefs\[\*\]\.group of gateway\.networking\.k8s\.io")]),
    ("eep targetRefs without group", _edit("eep-image", lambda o: o["spec"]["targetRefs"][0].pop("group")),
     [("spec.targetRefs[0]", r'required field "group" is missing'),
      ("spec", r"\[CEL\] this policy can only have a targetRefs\[\*\]\.group")]),
    ("eep targetRefs with namespace", _edit("eep-image", lambda o: o["spec"]["targetRefs"][0].update(namespace="ai-gateway")),
     [("spec.targetRefs[0].namespace", r'unknown field "namespace" \(known here: group, kind, name, sectionName')]),
    ("eep rootId spelling", _edit("eep-image", lambda o: _rename(o["spec"]["wasm"][0], "rootID", "rootId")),
     [("spec.wasm[0].rootId", r'unknown field "rootId" \(did you mean "rootID"')]),
    ("eep targetRefs kind Service", _edit("eep-image", lambda o: o["spec"]["targetRefs"][0].update(kind="Service")),
     [("spec", r"\[CEL\] this policy can only have a targetRefs\[\*\]\.kind")]),
    ("eep code.type HTTP without http", _edit("eep-image", lambda o: o["spec"]["wasm"][0]["code"].update(type="HTTP")),
     [("spec.wasm[0].code", r"\[CEL\] If type is HTTP, http field needs to be set\."),
      ("spec.wasm[0].code", r"\[CEL\] If type is Image, image field needs to be set\.")]),
    ("eep code.type lowercase image", _edit("eep-image", lambda o: o["spec"]["wasm"][0]["code"].update(type="image")),
     [("spec.wasm[0].code.type", r"'image' is not one of \['HTTP', 'Image'\]"),
      ("spec.wasm[0].code", r"\[CEL\] If type is Image, image field needs to be set\.")]),
    ("eep code.url flattened", _edit("eep-image", lambda o: (o["spec"]["wasm"][0]["code"].pop("image"),
                                                            o["spec"]["wasm"][0]["code"].update(url="oci://x/y:1"))),
     [("spec.wasm[0].code.url", r'unknown field "url"'),
      ("spec.wasm[0].code", r"\[CEL\] If type is Image, image field needs to be set\.")]),
    ("eep env as Istio list", _edit("eep-image", lambda o: o["spec"]["wasm"][0].update(
        env=[{"name": "OPENAI_API_KEY", "valueFrom": "HOST"}])),
     [("spec.wasm[0].env", r"is not of type 'object'")]),
    ("eep image sha256 wrong length", _edit("eep-image", lambda o: o["spec"]["wasm"][0]["code"]["image"].update(sha256=SHA_A[:40])),
     [("spec.wasm[0].code.image.sha256", r"\[extra\] '[0-9a-f]{40}' is not 64 lowercase hex")]),
    ("eep pullSecretRef kind ConfigMap", _edit("eep-image", lambda o: o["spec"]["wasm"][0]["code"]["image"]["pullSecretRef"].update(
        kind="ConfigMap")),
     [("spec.wasm[0].code.image.pullSecretRef", r"\[CEL\] only support Secret kind\.")]),
    ("eep mergeType on a Gateway target", _edit("eep-image", lambda o: (o["spec"]["targetRefs"][0].update(kind="Gateway"),
                                                                       o["spec"].update(mergeType="StrategicMerge"))),
     [("spec", r"\[CEL\] mergeType can only be used with xRoute targets")]),
    ("eep more than 16 wasm", _edit("eep-image", lambda o: o["spec"].update(wasm=o["spec"]["wasm"] * 17)),
     [("spec.wasm", r"a list of 17 is too long")]),
    ("httproute path type Prefix", _edit("httproute", lambda o: o["spec"]["rules"][0]["matches"][0]["path"].update(type="Prefix")),
     [("spec.rules[0].matches[0].path.type", r"'Prefix' is not one of"),
      ("spec.rules[0].matches[0].path", r"\[CEL\] type must be one of \['Exact', 'PathPrefix', 'RegularExpression'\]")]),
    ("httproute path value without leading /", _edit("httproute", lambda o: o["spec"]["rules"][0]["matches"][0]["path"].update(value="v1/")),
     [("spec.rules[0].matches[0].path", r"\[CEL\] value must be an absolute path and start with '/'")]),
    ("httproute path value with //", _edit("httproute", lambda o: o["spec"]["rules"][0]["matches"][0]["path"].update(value="/v1//chat")),
     [("spec.rules[0].matches[0].path", r"\[CEL\] must not contain '//'")]),
    ("httproute path value with space", _edit("httproute", lambda o: o["spec"]["rules"][0]["matches"][0]["path"].update(value="/v1/chat completions")),
     [("spec.rules[0].matches[0].path", r"\[CEL\] must only contain valid characters")]),
    ("httproute backendRequest timeout > request", _edit("httproute", lambda o: o["spec"]["rules"][0]["timeouts"].update(backendRequest="11m")),
     [("spec.rules[0].timeouts", r"\[CEL\] backendRequest timeout cannot be longer than request timeout")]),
    ("httproute same parent twice without sectionName", _edit("httproute", lambda o: o["spec"].update(
        parentRefs=[{"name": "ai-gateway", "sectionName": "https"}, {"name": "ai-gateway"}])),
     [("spec.parentRefs", r"\[CEL\] sectionName must be specified when parentRefs includes 2")]),
    ("httproute same parent and sectionName twice", _edit("httproute", lambda o: o["spec"].update(
        parentRefs=[{"name": "ai-gateway", "sectionName": "https"}, {"name": "ai-gateway", "sectionName": "https"}])),
     [("spec.parentRefs", r"\[CEL\] sectionName must be unique when parentRefs includes 2")]),
    ("httproute URLRewrite prefix with two matches", _edit("httproute", lambda o: o["spec"]["rules"][0].update(
        matches=[{"path": {"type": "PathPrefix", "value": "/v1/"}}, {"path": {"type": "PathPrefix", "value": "/openai/v1/"}}],
        filters=[{"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/v1/"}}}])),
     [("spec.rules[0]", r"\[CEL\] When using URLRewrite filter with path.replacePrefixMatch, exactly one PathPrefix match")]),
    ("httproute filter type without its field", _edit("httproute", lambda o: o["spec"]["rules"][0].update(
        filters=[{"type": "RequestHeaderModifier", "responseHeaderModifier": {"remove": ["server"]}}])),
     [("spec.rules[0].filters[0]", r"\[CEL\] filter.requestHeaderModifier must be specified for RequestHeaderModifier"),
      ("spec.rules[0].filters[0]", r"\[CEL\] filter.responseHeaderModifier must be nil if the filter.type is not")]),
    ("httproute more than 128 matches in all", _edit("httproute", lambda o: o["spec"].update(rules=[
        {"matches": [{"path": {"type": "Exact", "value": f"/v1/m{r}-{i}"}} for i in range(43)],
         "backendRefs": [{"name": "openai-egress", "port": 443}]} for r in range(3)])),
     [("spec.rules", r"\[CEL\] While 16 rules and 64 matches per rule are allowed, the total number of matches")]),
    ("httproute filter repeated", _edit("httproute", lambda o: o["spec"]["rules"][0].update(
        filters=[{"type": "RequestHeaderModifier", "requestHeaderModifier": {"remove": ["a"]}},
                 {"type": "RequestHeaderModifier", "requestHeaderModifier": {"remove": ["b"]}}])),
     [("spec.rules[0].filters", r"\[CEL\] RequestHeaderModifier filter cannot be repeated")]),
    ("httproute v1alpha2 not served", _edit("httproute", lambda o: o.update(apiVersion="gateway.networking.k8s.io/v1alpha2")),
     [("apiVersion", r"HTTPRoute has no served version 'v1alpha2'")]),
    ("httproute string port", _edit("httproute", lambda o: o["spec"]["rules"][0]["backendRefs"][0].update(port="443")),
     [("spec.rules[0].backendRefs[0].port", r"'443' is not of type 'integer'")]),
]

# Raw YAML cases: the loader's own checks and `kind: List`.
YAML_CASES = [
    ("yaml duplicate key", False, "apiVersion: extensions.istio.io/v1alpha1\nkind: WasmPlugin\nmetadata: {name: a}\n"
     "spec:\n  url: oci://x/y:1\n  phase: AUTHN\n  phase: AUTHZ\n", r"duplicate key 'phase'"),
    ("yaml timestamp-looking label stays a string", True, "apiVersion: extensions.istio.io/v1alpha1\nkind: WasmPlugin\n"
     "metadata: {name: a, annotations: {released: 2025-01-31}}\nspec: {url: 'oci://x/y:1'}\n", None),
    ("yaml multi-document with skipped kinds", True, "apiVersion: v1\nkind: Secret\nmetadata: {name: ghcr-pull}\n"
     "type: kubernetes.io/dockerconfigjson\n---\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n"
     "metadata: {name: gw}\nspec: {gatewayClassName: eg, listeners: [{name: http, protocol: HTTP, port: 80}]}\n"
     "---\napiVersion: extensions.istio.io/v1alpha1\nkind: WasmPlugin\nmetadata: {name: a}\nspec: {url: 'oci://x/y:1'}\n",
     None),
    ("yaml anchors and merge keys", True, "apiVersion: extensions.istio.io/v1alpha1\nkind: WasmPlugin\n"
     "metadata: {name: a, labels: &l {app: x}}\nspec:\n  url: oci://x/y:1\n  selector:\n    matchLabels:\n"
     "      <<: *l\n      app: y\n", None),
    ("yaml kind List items validated", False, "apiVersion: v1\nkind: List\nitems:\n- apiVersion: extensions.istio.io/v1alpha1\n"
     "  kind: WasmPlugin\n  metadata: {name: a}\n  spec: {url: 'oci://x/y:1', phaze: AUTHN}\n", r'unknown field "phaze"'),
]

# The WasmPlugin CRD's url rule, `isURL(self) ? (url(self).getScheme() in [...]) : ...`, with
# url() as Go's net/url parses.
URL_CASES = [
    ("oci://ghcr.io/example/chokepoint-filter:0.1.0", True),
    ("ghcr.io/example/chokepoint-filter:0.1.0", True),
    ("ghcr.io/example/chokepoint-filter@sha256:" + SHA_A, True),
    ("10.0.0.5:5000/chokepoint-filter:1", True),
    ("file:///var/local/lib/wasm/chokepoint_filter.wasm", True),
    ("https://artifacts.example.com/f.wasm?x=1", True),
    ("OCI://ghcr.io/x/y:1", True),
    ("localhost:5000/chokepoint-filter:1", False),
    ("registry.internal:5000/chokepoint-filter:1", False),
    ("ftp://example.com/f.wasm", False),
    ("s3://bucket/f.wasm", False),
    ("git+https://example.com/f.wasm", False),
    ("ghcr.io:443/example/chokepoint-filter:1", False),
    # Not a URL at all, yet accepted: the rule's fallback parses "http://" + self, where
    # "http:" becomes the host and the rest a path. The CEL rule checks the scheme only.
    ("http://exa mple.com/f.wasm", True),
    ("https://example.com:port/f.wasm", True),
]


def _rules(*rules, **props):
    """A schema node carrying `rules` (rule texts or rule dicts), with `props` as its
    properties."""
    node = {"x-kubernetes-validations": [r if isinstance(r, dict) else {"rule": r} for r in rules]}
    if props:
        node.update(type="object", properties=props)
    return node


STR, NUM = {"type": "string"}, {"type": "number"}

# The CEL engine (k8s_cel.py): (name, schema node, value, [(expected path, regex on the
# message)]), checked as validate_object does (defaults, then the rules at every node); no
# expected problem means every rule holds.
CEL_CASES = [
    # The Kubernetes extension functions cel-python lacks, as the vendored rules use them.
    ("isURL absolute", _rules("isURL(self)"), "https://example.com/f.wasm", []),
    ("isURL path", _rules("isURL(self)"), "/v1/chat", []),
    ("isURL host without scheme", _rules("isURL(self)"), "example.com/f.wasm", [("(root)", r"failed rule: isURL")]),
    ("url scheme lowercased", _rules("url(self).getScheme() == 'oci'"), "OCI://ghcr.io/x:1", []),
    ("url scheme of host:port/path (Go reads the host as a scheme)",
     _rules("url(self).getScheme() == 'localhost'"), "localhost:5000/img", []),
    ("url empty is an error", _rules("url(self).getScheme() == ''"), "", [("(root)", r"evaluation error: empty url")]),
    ("getScheme of a string is an error", _rules("self.getScheme() == ''"), "/x", [("(root)", r"evaluation error")]),
    ("upperAscii leaves non-ASCII", _rules("self.upperAscii() == 'éPOST'"), "épost", []),
    ("substring", _rules('self.substring(7, 8) == "/" && self.substring(2) == "ix:///x"'), "unix:///x", []),
    ("substring out of range", _rules('self.substring(7, 8) == "/"'), "unix://",
     [("(root)", r"evaluation error: index out of range: substring\(7, 8\)")]),
    ("duration in Go's syntax: µs and μs", _rules("duration(self) >= duration('1ms')"), "1500µs", []),
    ("duration: 900μs below 1ms", _rules("duration(self) >= duration('1ms')"), "900μs",
     [("(root)", r"failed rule: duration")]),
    ("duration: 1h30m, 1.5h, 5400s",
     _rules("duration(self) == duration('1.5h') && duration('5400s') == duration(self)"), "1h30m", []),
    ("duration: 0 without unit", _rules("duration(self) == duration('0s')"), "0", []),
    ("duration: no day unit", _rules("duration(self) > duration('0s')"), "1d",
     [("(root)", r"evaluation error: time: invalid duration '1d'")]),
    ("duration: unit required", _rules("duration(self) > duration('0s')"), "10",
     [("(root)", r"invalid duration '10'")]),
    ("size counts characters", _rules("size(self) == 5 && self.size() == 5"), "héllo", []),
    ("matches is RE2, unanchored", _rules("self.matches('[0-9]+') && !self.matches('^[0-9]+$')"), "v1", []),
    ("unsupported function", _rules("self.lowerAscii() == 'a'"), "A",
     [("(root)", r"cannot evaluate: rule uses unsupported function lowerAscii")]),
    ("cel-python's own reduce() is not Kubernetes'", _rules("isIP(self) || self.reduce(x, x)"), "A",
     [("(root)", r"unsupported function isIP, reduce")]),
    ("syntax error", _rules("self.a =="), {}, [("(root)", r"cannot evaluate: does not compile")]),
    # How the API server hands a value to CEL.
    ("reserved and punctuated names escaped",
     _rules("self.__namespace__ == 'ns' && self.a__dash__b == 1 && self.x__dot__y == 2",
            **{"namespace": STR, "a-b": {"type": "integer"}, "x.y": {"type": "integer"}}),
     {"namespace": "ns", "a-b": 1, "x.y": 2}, []),
    ("null of a non-nullable field is absent", _rules("!has(self.a)", a=STR), {"a": None}, []),
    ("null of a nullable field stays", _rules("has(self.a) && self.a == null", a=dict(STR, nullable=True)),
     {"a": None}, []),
    ("number fields are doubles", _rules("self.w == 1.0", w=NUM), {"w": 1}, []),
    ("defaults applied first", _rules("self.mode == 'A'", mode=dict(STR, default="A")), {}, []),
    ("rules at nested nodes and list items",
     _rules("size(self.xs) == 2", xs={"type": "array", "items": _rules("self != 'b'")}), {"xs": ["a", "b"]},
     [("xs[1]", r"failed rule: self != 'b'")]),
    ("an absent field read is an evaluation error", _rules({"rule": "self.b == 1", "message": "b must be 1"}, b=NUM),
     {}, [("(root)", r"b must be 1 \(evaluation error: no such member in mapping: 'b'\)")]),
    # The rule's own fields.
    ("messageExpression, reason and fieldPath",
     _rules({"rule": "self.a != 'x'", "message": "static", "messageExpression": "'a is ' + self.a",
             "reason": "FieldValueForbidden", "fieldPath": ".a"}, a=STR), {"a": "x"}, [("a", r"Forbidden: a is x$")]),
    ("messageExpression that fails: message instead",
     _rules({"rule": "false", "message": "static", "messageExpression": "self.missing"}), {}, [("(root)", r"static$")]),
    ("fieldPath with brackets", _rules({"rule": "false", "fieldPath": ".m['k.v']"}, m={"type": "object"}), {},
     [('m["k.v"]', r"failed rule: false")]),
    ("unknown reason", _rules({"rule": "true", "reason": "Nope"}), {}, [("(root)", r"unknown reason 'Nope'")]),
    ("transition rule not run on create", _rules("self == oldSelf"), "a", []),
]


def _run_cel_case(name, schema, value, expected, tally, quiet):
    obj = copy.deepcopy(value)
    apply_defaults(schema, obj)
    problems = []
    check_semantics(schema, obj, [], problems)
    missing = [(p, rx) for p, rx in expected if not any(q.path == p and re.search(rx, q.message) for q in problems)]
    stray = [q for q in problems if q.path not in {p for p, _ in expected}]
    ok = not missing and not stray
    tally.add(ok)
    if not ok or not quiet:
        print(f"self-test: {'ok  ' if ok else 'FAIL'} cel/{name}"
              + ("" if ok else f": expected {expected}; got: " + ("; ".join(map(str, problems)) or "no problem")))


def _run_expectations(name, obj, expected, crds, tally, quiet):
    res = validate_object(obj, crds)
    problems = res.problems
    missing = [(p, rx) for p, rx in expected if not any(q.path == p and re.search(rx, str(q)) for q in problems)]
    stray = [q for q in problems if q.path not in {p for p, _ in expected}]
    ok = res.status == "invalid" and not missing and not stray
    tally.add(ok)
    if ok:
        if not quiet:
            print(f"self-test: ok   bad/{name}: " + " | ".join(str(q) for q in problems))
    else:
        print(f"self-test: FAIL bad/{name}: expected {expected}; got: "
              + ("; ".join(str(q) for q in problems) or f"{res.status}, no problem"))


def self_test(crds, tally, quiet=False):
    def report(ok, what):
        tally.add(ok)
        if not ok or not quiet:
            print(f"self-test: {'ok  ' if ok else 'FAIL'} {what}")

    kinds = {c.kind for c in crds.values()}
    report(kinds >= {"WasmPlugin", "EnvoyFilter", "TrafficExtension", "EnvoyExtensionPolicy", "HTTPRoute"},
           f"CRDs loaded: {', '.join(sorted(kinds))}")
    # Every CEL rule of every CRD compiles (with no function the engine lacks).
    for (group, kind), crd in sorted(crds.items(), key=lambda x: x[0][1]):
        for vname, ver in crd.versions.items():
            rules = [(at, k8s_cel.rule(r)) for at, r in iter_cel_rules(ver.raw)]
            bad = [f"\n    {at}: {r.message}: {r.error}" for at, r in rules if r.error]
            report(not bad, f"CEL: {kind} {group}/{vname}: {len(rules) - len(bad)} of {len(rules)} rules compile"
                   + "".join(bad))
    # The CEL rules chokepoint relies on are present in the CRDs.
    for kind, messages in REQUIRED_CEL.items():
        crd = next((c for c in crds.values() if c.kind == kind), None)
        for msg in messages:
            found = [r for v in (crd.versions.values() if crd else []) for _, r in iter_cel_rules(v.raw)
                     if r.get("message") == msg]
            report(bool(found), f"CEL rule present: {kind}: {msg}" + ("" if found else " (NOT IN CRD)"))
    for name, schema, value, expected in CEL_CASES:
        _run_cel_case(name, schema, value, expected, tally, quiet)
    wp = next(c for c in crds.values() if c.kind == "WasmPlugin")
    url_node = next(iter(wp.versions.values())).raw["properties"]["spec"]["properties"]["url"]
    for url, want in URL_CASES:
        got = not k8s_cel.failures(url_node, url)
        report(got == want, f"url rule: {url!r} {'accepted' if want else 'rejected'}"
               + ("" if got == want else f" (got {'accepted' if got else 'rejected'})"))
    # Good manifests pass, with no problem at all, and every mutant of them is rejected.
    for name, obj in GOOD.items():
        res = validate_object(obj, crds)
        report(res.status == "ok", f"good/{name}" + "".join(f"\n    {p}" for p in res.problems))
        for ok, desc in mutation_test(obj, crds):
            report(ok, f"good/{name}: mutation: {desc}")
    for name, obj, expected in BAD:
        _run_expectations(name, obj, expected, crds, tally, quiet)
    for name, want_ok, text, rx in YAML_CASES:
        try:
            docs = load_documents(text)
            objs = [o for i, d in enumerate(docs) for _, o in expand_lists(d, str(i))]
            results = [validate_object(o, crds) for o in objs]
            lines = [str(p) for r in results for p in r.problems]
            ok_now = all(r.status in ("ok", "skipped") for r in results)
        except yaml.YAMLError as e:
            ok_now, lines = False, [str(e).replace("\n", " ")]
        good = ok_now == want_ok and (rx is None or any(re.search(rx, x) for x in lines))
        report(good, f"{name}" + ("" if good else f": got {lines or 'no problem'}"))
    no_crd = GOOD["wasmplugin-oci"] | {"kind": "Gateway", "apiVersion": "gateway.networking.k8s.io/v1"}
    report(validate_object(no_crd, crds).status == "skipped"
           and validate_object(no_crd, crds, True).status == "invalid",
           "--strict-kinds turns a kind with no CRD into an error")
    # The mutation test itself catches a converter that leaves objects open (the failure
    # mode of plain JSON Schema on an openAPIV3Schema).
    def reopen(node):
        if isinstance(node, dict):
            return {k: reopen(v) for k, v in node.items() if not (k == "additionalProperties" and v is False)}
        return [reopen(x) for x in node] if isinstance(node, list) else node
    wp = next(c for c in crds.values() if c.kind == "WasmPlugin")
    broken = copy.copy(wp)
    broken.versions = {}
    for vname, ver in wp.versions.items():
        bv = copy.copy(ver)
        bv.validator = jsonschema.Draft7Validator(reopen(ver.schema))
        broken.versions[vname] = bv
    open_crds = dict(crds)
    open_crds[(wp.group, wp.kind)] = broken
    muts = mutation_test(GOOD["wasmplugin-oci"], open_crds)
    report(bool(muts) and not any(ok for ok, _ in muts),
           f"mutation test flags a validator with open objects ({len(muts)} mutants accepted by it)")
    # The same for built-in kinds: a schema that let unknown fields through is caught.
    strict = builtin_kinds.problems
    builtin_kinds.problems = lambda obj: []
    try:
        muts = mutation_test(GOOD["networkpolicy"], crds)
    finally:
        builtin_kinds.problems = strict
    report(bool(muts) and not any(ok for ok, _ in muts),
           f"mutation test flags a NetworkPolicy validator that accepts anything ({len(muts)} mutants accepted)")
    # File handling: non-Kubernetes YAML is skipped, a document without kind among manifests
    # is an error, a broken manifest fails the file.
    import contextlib
    import io
    import tempfile
    file_cases = [
        ("file: Envoy bootstrap / policy YAML skipped", "node: {id: x}\nstatic_resources: {}\n", (0, 0, 0, 1)),
        ("file: document without kind among manifests", "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n"
         "metadata: {name: s}\n---\n"
         "metadata: {name: x}\nspec: {url: 'oci://x/y:1'}\n", (0, 1, 1, 0)),
        ("file: broken WasmPlugin fails, its mutants are still rejected",
         yaml.safe_dump(_edit("wasmplugin-oci", lambda o: o["spec"].update(phase="AUTHX"))), (3, 1, 0, 0)),
    ]
    patch = ("# patch: apps/v1 Deployment\nspec:\n  template:\n    spec:\n      containers:\n"
             "        - name: istio-proxy\n          envFrom:\n            - secretRef: {name: keys}\n")
    file_cases += [
        # The object root, spec root, and the shallowest and deepest objects of spec.
        ("file: a Deployment patch is validated as a Deployment", patch, (5, 0, 0, 0)),
        # A typo inside the misspelt field is not reported at its own path: the whole field is.
        ("file: a misspelt field in a patch fails", patch.replace("envFrom", "envfrom"), (3, 2, 0, 0)),
        ("file: a patch's kind must exist", patch.replace("Deployment", "Deploymnet"), (0, 1, 0, 0)),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for what, text, want in file_cases:
            f = Path(tmp) / "m.yaml"
            f.write_text(text)
            t = Tally()
            with contextlib.redirect_stdout(io.StringIO()):
                validate_file(f, crds, t, argparse.Namespace(strict_kinds=False))
            got = (t.passed, t.failed, t.skipped, t.other_files)
            report(got == want, what + ("" if got == want else
                                        f": (passed, failed, skipped, other files) = {got}, want {want}"))
    # The fixtures under samples/ are valid manifests (and get mutation-tested too).
    samples = sorted(SAMPLES_DIR.glob("*.yaml"))
    report(len(samples) >= 2, f"fixtures in {SAMPLES_DIR.relative_to(HERE.parent.parent)}: {len(samples)}")
    for f in samples:
        docs = load_documents(f.read_text())
        for i, doc in enumerate(docs):
            for where, obj in expand_lists(doc, f"doc {i}"):
                res = validate_object(obj, crds)
                if res.status == "skipped":
                    continue
                report(res.status == "ok", f"sample {f.name} {where} {res.label}"
                       + "".join(f"\n    {p}" for p in res.problems))
                for ok, desc in mutation_test(obj, crds):
                    report(ok, f"sample {f.name} {where}: mutation: {desc}")
    # The mesh config fragment (mesh_config.py): the rendered shape passes, and what
    # istiod or the Telemetry API would not take fails.
    good = {"meshConfig": {"extensionProviders": [{"name": "chokepoint-usage", "envoyFileAccessLog": {
        "path": "/dev/stdout", "logFormat": {"text": "%FILTER_STATE(wasm.chokepoint_usage:PLAIN)%\n"}}}]}}
    report(not mesh_config.problems(good), "meshConfig: an envoyFileAccessLog provider passes")
    for ok, desc in mesh_config.mutation_test(good):
        report(ok, f"meshConfig: mutation: {desc}")
    provider = good["meshConfig"]["extensionProviders"][0]
    for what, bad in [
        ("no name", {"envoyFileAccessLog": provider["envoyFileAccessLog"]}),
        ("no provider", {"name": "x"}),
        ("text and labels at once (a oneof)", {"name": "x", "envoyFileAccessLog": {
            "logFormat": {"text": "a", "labels": {}}}}),
        ("logFormat.txt", {"name": "x", "envoyFileAccessLog": {"logFormat": {"txt": "a"}}}),
        ("path as a number", {"name": "x", "envoyFileAccessLog": {"path": 1}}),
    ]:
        found = mesh_config.problems({"meshConfig": {"extensionProviders": [bad]}})
        report(bool(found), f"meshConfig: {what} rejected" + ("" if found else " (NOT rejected)"))
    twice = {"meshConfig": {"extensionProviders": [provider, provider]}}
    report(bool(mesh_config.problems(twice)), "meshConfig: a provider name twice rejected")


# --------------------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="*", help="YAML manifests (multi-document)")
    ap.add_argument("--self-test", action="store_true", help="run the built-in good/broken tables first")
    ap.add_argument("--strict-kinds", action="store_true", help="a kind with no CRD here is an error")
    ap.add_argument("--list-cel", action="store_true", help="list every CEL rule and whether it compiles")
    ap.add_argument("--no-mutations", action="store_true", help="skip the chokepointTypo mutation test of FILES")
    ap.add_argument("--schemas", default=str(SCHEMA_DIR), help="directory of *.crd.yaml (default: %(default)s)")
    ap.add_argument("-q", "--quiet", action="store_true", help="self-test: print failures only")
    ap.add_argument("--examples", action="store_true",
                    help="without FILES: every manifest under envoy/examples/ (what chokepoint renders)")
    args = ap.parse_args(argv)
    if args.examples and not args.files:
        examples = HERE.parent.parent / "envoy" / "examples"
        args.files = sorted(os.path.relpath(p) for p in examples.rglob("*")
                            if p.is_file() and p.suffix in (".yaml", ".yml"))
        if not args.files:
            print("no manifests under envoy/examples/ (none rendered yet): running the self-test only",
                  file=sys.stderr)
    if args.files:
        print(f"validating {len(args.files)} manifest file(s) against {Path(args.schemas).name}/ "
              "(after the self-test)" if args.self_test else f"validating {len(args.files)} manifest file(s)",
              file=sys.stderr)

    crds = load_crds(args.schemas)
    if args.list_cel:
        list_cel(crds)
        return 0
    if not args.self_test and not args.files:
        ap.error("give FILES and/or --self-test")
    st, mf = Tally(), Tally()
    if args.self_test:
        self_test(crds, st, args.quiet)
    for f in args.files:
        validate_file(f, crds, mf, args, mutate=not args.no_mutations)
    passed, failed = st.passed + mf.passed, st.failed + mf.failed
    parts = []
    if args.self_test:
        parts.append(f"self-test {st.passed}/{st.passed + st.failed}")
    if args.files:
        parts.append(f"{len(args.files)} file(s): {mf.passed}/{mf.passed + mf.failed} documents+mutations ok, "
                     f"{mf.skipped} document(s) skipped (no CRD here)")
        if mf.other_files:
            parts.append(f"{mf.other_files} non-Kubernetes YAML file(s) skipped")
    print(f"{passed} passed, {failed} failed ({'; '.join(parts)})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
