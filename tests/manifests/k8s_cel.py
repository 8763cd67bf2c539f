"""The CEL rules of a CRD (x-kubernetes-validations), evaluated as the API server does.

The API server runs each rule with cel-go at the node that carries it, `self` bound to the
node's value after defaulting, with Kubernetes' extension libraries. Here the CEL library
is cel-python (pinned by scripts/validate-manifests), plus what Kubernetes does around it:

  * the value as the API server types it (to_cel): an object's fields are the schema's
    properties, their names escaped as Kubernetes escapes them (`namespace` ->
    `__namespace__`, `a-b` -> `a__dash__b`); null values of non-nullable fields are
    dropped (so has() is false); `number` fields are doubles; maps keep their keys;
  * the extension functions the vendored CRDs' rules call that cel-python lacks: isURL(),
    url() and getScheme() (Go's net/url.ParseRequestURI, as Kubernetes' URL library),
    upperAscii() and substring() (cel-go's strings library), and duration() with Go's
    syntax ("1h30m", "1500µs", "0"; not "1d"). A rule that calls any function outside
    CEL's standard set and these does not compile: "rule uses unsupported function X";
  * messageExpression, reason and fieldPath; an evaluation error is a failure of the rule,
    reported with it (the API server does the same). Transition rules (those that read
    oldSelf) are not run, as on any create. CEL's cost limits are not enforced.

cel-python rather than common-expression-language (cel-rust) 0.10: the latter counts a
string's size() in UTF-8 bytes (the Backend rule `size(self) <= 108` is wrong for
non-ASCII paths), cannot parse "µs" durations (the Istio `duration(self) >= duration('1ms')`
rules reject "1500µs"), and its built-in functions cannot be replaced.
"""

import functools
import json
import logging
import re

try:
    import celpy
    from celpy import celtypes
except ImportError as e:  # pragma: no cover
    raise SystemExit(f"error: {e}: pip install cel-python (scripts/validate-manifests does this)")

# cel-python logs every failed evaluation; a failed rule is reported as a problem instead.
logging.getLogger("celpy").setLevel(logging.CRITICAL)

# --------------------------------------------------------------------------------------
# Values: Kubernetes' view of an object under its structural schema.

CEL_RESERVED = {"true", "false", "null", "in", "as", "break", "const", "continue", "else", "for", "function",
                "if", "import", "let", "loop", "package", "namespace", "return", "var", "void", "while"}
_ESCAPABLE = re.compile(r"^[a-zA-Z_./-][a-zA-Z0-9_./-]*$")


def escape_field(name):
    """A property name as CEL sees it (k8s.io/apiserver/pkg/cel escaping); None when the
    name cannot be escaped, and the field is then not visible to rules."""
    if name in CEL_RESERVED:
        return f"__{name}__"
    if not _ESCAPABLE.match(name):
        return None
    return name.replace("__", "__underscores__").replace(".", "__dot__").replace("-", "__dash__") \
        .replace("/", "__slash__")


def to_cel(schema, value):
    """`value` (plain YAML data, defaults applied) as the API server hands it to CEL."""
    if not isinstance(schema, dict):
        return value
    if isinstance(value, dict):
        props = schema.get("properties")
        if props is not None:
            out = {}
            for k, v in value.items():
                sub = props.get(k)
                name = escape_field(k)
                if sub is None or name is None or (v is None and not sub.get("nullable")):
                    continue
                out[name] = to_cel(sub, v)
            return out
        ap = schema.get("additionalProperties")
        if isinstance(ap, dict):
            return {k: to_cel(ap, v) for k, v in value.items() if v is not None or ap.get("nullable")}
        return value
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [to_cel(schema["items"], v) for v in value]
    if schema.get("type") == "number" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


# --------------------------------------------------------------------------------------
# Kubernetes' URL library: url(), isURL() and getScheme() are Go's net/url.ParseRequestURI.

_HEX = set("0123456789abcdefABCDEF")
_HOST_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~!$&'()*+,;=:[]<>\"")
_USERINFO_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._:~!$&'()*+,;=%@")


def _go_get_scheme(raw):
    # net/url.getScheme
    for i, c in enumerate(raw):
        if c.isascii() and c.isalpha():
            continue
        if (c.isascii() and c.isdigit()) or c in "+-.":
            if i == 0:
                return "", raw
            continue
        if c == ":":
            if i == 0:
                raise ValueError("missing protocol scheme")
            return raw[:i], raw[i + 1:]
        return "", raw
    return "", raw


def _go_unescape(s, host=False):
    i = 0
    while i < len(s):
        c = s[i]
        if c == "%":
            if i + 2 >= len(s) or s[i + 1] not in _HEX or s[i + 2] not in _HEX:
                raise ValueError("invalid URL escape")
            if host and int(s[i + 1], 16) < 8 and s[i:i + 3] != "%25":
                raise ValueError("invalid URL escape in host")
            i += 3
            continue
        if host and ord(c) < 0x80 and c not in _HOST_OK:
            raise ValueError(f"invalid character {c!r} in host name")
        i += 1


def _go_parse_host(host):
    if host.startswith("["):
        i = host.rfind("]")
        if i < 0:
            raise ValueError("missing ']' in host")
        port = host[i + 1:]
    else:
        i = host.rfind(":")
        port = host[i:] if i >= 0 else ""
    if port and not (port[0] == ":" and all(c.isascii() and c.isdigit() for c in port[1:])):
        raise ValueError(f"invalid port {port!r} after host")
    _go_unescape(host, host=True)


def go_parse_request_uri(raw):
    """Scheme (lowercase) of `raw` as Go's net/url.ParseRequestURI sees it; ValueError when it
    fails."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in raw):
        raise ValueError("invalid control character in URL")
    if raw == "":
        raise ValueError("empty url")
    scheme, rest = _go_get_scheme(raw)
    scheme = scheme.lower()
    if rest.endswith("?") and rest.count("?") == 1:
        rest = rest[:-1]
    else:
        rest = rest.split("?", 1)[0]
    if not rest.startswith("/"):
        if scheme:
            return scheme  # opaque, e.g. "localhost:5000/img" has scheme "localhost"
        raise ValueError("invalid URI for request")
    if scheme and rest.startswith("//"):
        authority, sep, path = rest[2:].partition("/")
        rest = sep + path
        at = authority.rfind("@")
        _go_parse_host(authority[at + 1:])
        if at >= 0 and not all(c in _USERINFO_OK or ord(c) >= 0x80 for c in authority[:at]):
            raise ValueError("invalid userinfo")
    _go_unescape(rest)
    return scheme


class URL:
    """The value url() returns; its getters read what parsing found."""

    def __init__(self, raw):
        self.scheme = go_parse_request_uri(raw)


def _is_url(s):
    try:
        go_parse_request_uri(_string(s))
        return celtypes.BoolType(True)
    except ValueError:
        return celtypes.BoolType(False)


def _url(s):
    return URL(_string(s))  # a ValueError becomes the rule's evaluation error


def _get_scheme(u):
    if not isinstance(u, URL):
        raise TypeError("no such overload: getScheme")
    return celtypes.StringType(u.scheme)


# --------------------------------------------------------------------------------------
# cel-go's strings library (what the rules use of it) and Go's duration syntax.

def _string(s):
    if not isinstance(s, str):
        raise TypeError(f"no such overload: expected a string, got {type(s).__name__}")
    return str(s)


def _upper_ascii(s):
    return celtypes.StringType("".join(chr(ord(c) - 32) if "a" <= c <= "z" else c for c in _string(s)))


def _substring(s, start, end=None):
    s = _string(s)
    end = len(s) if end is None else int(end)
    if not 0 <= int(start) <= end <= len(s):
        raise ValueError(f"index out of range: substring({start}, {end}) of a string of length {len(s)}")
    return celtypes.StringType(s[int(start):end])


_DURATION_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_NS = {"ns": 1, "us": 10**3, "µs": 10**3, "μs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9,
            "h": 3600 * 10**9}


def go_duration_ns(text):
    """Nanoseconds in a Go duration string (time.ParseDuration); ValueError if it is not one."""
    s = text[1:] if text[:1] in ("-", "+") else text
    if s == "0":
        return 0
    total, pos = 0, 0
    while pos < len(s) or pos == 0:
        m = _DURATION_PART.match(s, pos)
        if not m or m.group(1) in ("", "."):
            raise ValueError(f"time: invalid duration {text!r}")
        whole, _, frac = m.group(1).partition(".")
        unit = _UNIT_NS[m.group(2)]
        total += int(whole or "0") * unit + (int(frac) * unit // 10 ** len(frac) if frac else 0)
        pos = m.end()
    if total > 2**63 - 1:
        raise ValueError(f"time: invalid duration {text!r}")
    return -total if text[:1] == "-" else total


def _duration(value):
    if isinstance(value, celtypes.DurationType):
        return value
    ns = go_duration_ns(_string(value))
    return celtypes.DurationType(seconds=ns // 10**9, nanos=ns % 10**9)


EXTENSIONS = {
    "isURL": _is_url,
    "url": _url,
    "getScheme": _get_scheme,
    "upperAscii": _upper_ascii,
    "substring": _substring,
    "duration": _duration,
}
# CEL's standard functions and macros (cel-python has a few of its own, such as reduce(),
# that Kubernetes does not: a rule calling one must not pass here and fail on a cluster).
STANDARD = {"size", "contains", "startsWith", "endsWith", "matches", "type", "dyn", "bool", "bytes", "double",
            "int", "uint", "string", "timestamp", "getDate", "getDayOfMonth", "getDayOfWeek", "getDayOfYear",
            "getFullYear", "getMonth", "getHours", "getMilliseconds", "getMinutes", "getSeconds",
            "has", "all", "exists", "exists_one", "map", "filter"}

# --------------------------------------------------------------------------------------
# Rules.

_ENV = celpy.Environment()
_REASONS = {"FieldValueInvalid": "", "FieldValueForbidden": "Forbidden: ", "FieldValueRequired": "Required value: ",
            "FieldValueDuplicate": "Duplicate value: "}
_FIELD_PATH_PART = re.compile(r"\.([A-Za-z0-9_$-]+)|\['([^']*)'\]|\[\"([^\"]*)\"\]")


class CompileError(Exception):
    pass


def _references(tree):
    """(functions called, identifiers read) in a cel-python parse tree."""
    functions, idents = set(), set()
    for node in tree.iter_subtrees():
        if node.data == "ident_arg":
            functions.add(str(node.children[0]))
        elif node.data == "member_dot_arg":
            functions.add(str(node.children[1]))
        elif node.data == "ident":
            idents.add(str(node.children[0]))
    return functions, idents


@functools.lru_cache(maxsize=None)
def _compile(text):
    """(program, identifiers read); CompileError for a syntax error or a function this
    module cannot provide."""
    try:
        tree = _ENV.compile(text)
    except celpy.CELParseError as e:
        raise CompileError(f"does not compile: {' '.join(str(e).split())}") from None
    functions, idents = _references(tree)
    unsupported = sorted(functions - STANDARD - set(EXTENSIONS))
    if unsupported:
        raise CompileError(f"rule uses unsupported function {', '.join(unsupported)}")
    return _ENV.program(tree, functions=EXTENSIONS), idents


def parse_field_path(text):
    """A rule's fieldPath (`.a.b`, `.a['b.c']`) as path parts."""
    parts, pos = [], 0
    while pos < len(text):
        m = _FIELD_PATH_PART.match(text, pos)
        if not m:
            raise CompileError(f"fieldPath {text!r} is not a relative JSON path such as .a['b']")
        parts.append(next(g for g in m.groups() if g is not None))
        pos = m.end()
    return parts


def _describe(err):
    """The useful part of a cel-python evaluation error: an extension function's own
    message (cel-python wraps its ValueError as "return error for overflow"), else the
    error's."""
    message, cause, cause_args = (list(err.args) + [None, None, None])[:3]
    if cause is ValueError and cause_args:
        return str(cause_args[0])
    return str(message)


class Rule:
    """One entry of x-kubernetes-validations, compiled. `error` says why it cannot be
    evaluated (then every evaluation fails with it)."""

    def __init__(self, spec):
        self.text = " ".join(spec["rule"].split())
        self.message = spec.get("message") or f"failed rule: {self.text}"
        self.error = None
        self.transition = False
        self.program = self.message_program = None
        self.field_path = []
        self.outcomes = {}  # failure() by the JSON of the value: manifests repeat whole subtrees
        self.prefix = _REASONS.get(spec.get("reason"), "")
        try:
            if spec.get("reason", "FieldValueInvalid") not in _REASONS:
                raise CompileError(f"unknown reason {spec['reason']!r}")
            self.field_path = parse_field_path(spec.get("fieldPath") or "")
            self.program, idents = _compile(spec["rule"])
            self.transition = "oldSelf" in idents and not spec.get("optionalOldSelf")
            if spec.get("messageExpression"):
                self.message_program, _ = _compile(spec["messageExpression"])
        except CompileError as e:
            self.error = str(e)

    def failure(self, activation):
        """None when the rule holds for the activation ({"self": CEL value}), else the
        message to report."""
        if self.error:
            return f"{self.message} (cannot evaluate: {self.error})"
        if self.transition:
            return None  # oldSelf: an update rule; the API server skips it on create
        try:
            result = self.program.evaluate(activation)
        except celpy.CELEvalError as e:
            return f"{self._message(activation)} (evaluation error: {_describe(e)})"
        if not isinstance(result, celtypes.BoolType):
            return f"{self._message(activation)} (evaluation error: the rule returned {type(result).__name__})"
        return None if result else self._message(activation)

    def _message(self, activation):
        text = self.message
        if self.message_program is not None:
            try:
                got = self.message_program.evaluate(activation)
            except celpy.CELEvalError:
                got = None  # as the API server: the static message instead
            if isinstance(got, str) and got.strip() and "\n" not in got:
                text = str(got)
        return self.prefix + text


@functools.lru_cache(maxsize=None)
def _rule(items):
    return Rule(dict(items))


def rule(spec):
    """The compiled Rule for one x-kubernetes-validations entry (compiled once per text)."""
    return _rule(tuple(sorted(spec.items())))


def failures(schema, value):
    """[(path parts below the node, message)] for each rule at `schema` that `value` (plain
    data, defaults applied) breaks."""
    specs = schema.get("x-kubernetes-validations") or []
    if not specs:
        return []
    data = to_cel(schema, value)
    key = json.dumps(data, sort_keys=True)
    activation = None
    out = []
    for spec in specs:
        r = rule(spec)
        if key not in r.outcomes:
            activation = activation or {"self": celpy.json_to_cel(data)}
            r.outcomes[key] = r.failure(activation)
        if r.outcomes[key] is not None:
            out.append((r.field_path, r.outcomes[key]))
    return out
