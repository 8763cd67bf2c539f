"""The Istio mesh config fragment chokepoint renders (`istio-meshconfig`): a `meshConfig:`
document a mesh admin merges into istiod's mesh config (Helm values, IstioOperator
`spec.meshConfig`, the `istio` ConfigMap's `mesh` key). No CRD describes it, so it is
held to the fields of istio/api's `mesh/v1alpha1/config.proto` at tag 1.30.3
(2e43f07b30b6744bc8252fce39fb58b03f85ff8b) that the fragment uses, as protojson names
them: MeshConfig.extension_providers (57), ExtensionProvider.name (1) and its
`provider` oneof's envoy_file_access_log (11), EnvoyFileAccessLogProvider.path (1),
log_format (2; a oneof of text (1) and labels (2)) and omit_empty_values (3); with
`telemetry.otlp`, the oneof's envoy_otel_als (14), EnvoyOpenTelemetryLogProvider.service
(1), port (2), log_name (3) and log_format (4; text (1), labels (2)). Any other
field is rejected: istiod would reject an unknown one, and a provider this fragment does
not render has no business in it."""

import copy

import jsonschema

_CLOSED = {"type": "object", "additionalProperties": False}

SCHEMA = {
    **_CLOSED,
    "required": ["meshConfig"],
    "properties": {"meshConfig": {
        **_CLOSED,
        "properties": {"extensionProviders": {"type": "array", "items": {
            **_CLOSED,
            # name is REQUIRED, and so is exactly one provider of the oneof.
            "required": ["name"],
            "oneOf": [{"required": ["envoyFileAccessLog"]}, {"required": ["envoyOtelAls"]}],
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "envoyOtelAls": {
                    **_CLOSED,
                    # service and port are REQUIRED.
                    "required": ["service", "port"],
                    "properties": {
                        "service": {"type": "string", "minLength": 1},
                        "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                        "logName": {"type": "string"},
                        "logFormat": {**_CLOSED, "properties": {
                            "text": {"type": "string"},
                            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                        }},
                    },
                },
                "envoyFileAccessLog": {
                    **_CLOSED,
                    "properties": {
                        "path": {"type": "string"},
                        "logFormat": {**_CLOSED, "maxProperties": 1, "properties": {
                            "text": {"type": "string"},
                            "labels": {"type": "object"},
                        }},
                        "omitEmptyValues": {"type": "boolean"},
                    },
                },
            },
        }}},
    }},
}
_VALIDATOR = jsonschema.Draft7Validator(SCHEMA)


def is_mesh_config(doc):
    return isinstance(doc, dict) and "meshConfig" in doc and "kind" not in doc


def problems(doc):
    """Readable problems of one fragment; none when valid."""
    out = []
    for e in _VALIDATOR.iter_errors(doc):
        where = ".".join(str(p) for p in e.absolute_path) or "(root)"
        out.append(f"{where}: {e.message}")
    names = [p.get("name") for p in (doc.get("meshConfig") or {}).get("extensionProviders") or []
             if isinstance(p, dict)]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        out.append(f"meshConfig.extensionProviders: duplicate name {dup} (names must be unique)")
    return out


def mutation_test(doc):
    """[(ok, description)]: an unknown field at each closed object must be rejected."""
    out = []
    targets = [("meshConfig", ("meshConfig",))]
    for i, p in enumerate(doc["meshConfig"].get("extensionProviders", [])):
        targets.append((f"extensionProviders[{i}]", ("meshConfig", "extensionProviders", i)))
        for kind in ("envoyFileAccessLog", "envoyOtelAls"):
            if kind in p:
                targets.append((f"extensionProviders[{i}].{kind}", ("meshConfig", "extensionProviders", i, kind)))
    for desc, path in targets:
        mutant = copy.deepcopy(doc)
        node = mutant
        for k in path:
            node = node[k]
        node["chokepointTypo"] = 1
        rejected = any("chokepointTypo" in p for p in problems(mutant))
        out.append((rejected, f"chokepointTypo at {desc} {'rejected' if rejected else 'NOT rejected'}"))
    return out
