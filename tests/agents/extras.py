"""Each tool's own extras through the gateway:
  * prompt caching: each tool runs twice over the same long project context (its context
    file: CLAUDE.md, AGENTS.md, GEMINI.md) in one work directory, the second run resuming
    the first (Claude Code `--continue`, Codex `exec resume --last`) or starting afresh
    (Gemini CLI); the mock provider caches as each provider does, from the requests. The
    second run's records show cache reads; every record's tokens equal the tool's own
    report; every record's cost is what envoy/prices.yaml makes of its tokens (cache reads
    at the cached rate, writes at the cache-write rate, Anthropic's 1-hour writes at twice
    the input rate), and for Claude Code also its own dollar figure. Claude Code runs
    once more with ENABLE_PROMPT_CACHING_1H, its documented switch to 1-hour writes;
  * Anthropic betas: what Claude Code sends in anthropic-beta (its default list, plus one
    added with ANTHROPIC_BETAS) reaches the provider unchanged, and so does a beta-only
    request field added with CLAUDE_CODE_EXTRA_BODY;
  * discovery and counting, as a user sets them off: Claude Code's gateway model discovery
    (CLAUDE_CODE_ENABLE_GATEWAY_MODEL_DISCOVERY), Gemini CLI's countTokens (a prompt with
    an image), `codex doctor`'s probes; and, sent to the gateway as the tools' SDKs send
    them, the calls only interactive features make (Claude Code's count_tokens, the model
    lists of all three). Counting reaches the model's provider without the caller's JWT,
    model lists are answered by the gateway itself, nothing is charged as a completion,
    and Gemini CLI's `?alt=sse` reaches the provider."""

import base64
import fnmatch
import json
import subprocess
from decimal import Decimal

import yaml

from harness import GATEWAY, NS, by_model, check, in_ns, provider_requests, run_tool, tool_cost_matches
from netns import ROOT
from tools import claude, claude_usage, codex, codex_usage, gemini, gemini_usage

# About 12,000 prompt tokens by the mock's estimate (characters / 4): past every
# provider's caching minimum (Gemini's 4096 included).
CONTEXT = "# Project notes\n\n" + "".join(
    f"- Rule {i}: keep module {i} small, named for what it does, and tested by a table.\n" for i in range(600))
FIRST = "Summarise the project rules in one sentence."
SECOND = "Now name the rule about tests in one sentence."
FIELDS = ("input_tokens", "output_tokens", "cached_input_tokens", "cache_creation_input_tokens")


# ---- prices, as the gateway reads envoy/prices.yaml --------------------------------------

def _micros(usd):
    return int(Decimal(str(usd)) * 1_000_000)


def price_of(model):
    """The entry pricing `model`: its own, else the most specific glob."""
    models = yaml.safe_load((ROOT / "envoy" / "prices.yaml").read_text())["models"]
    if model in models:
        return models[model]
    globs = sorted((p for p in models if "*" in p), key=lambda p: (-len(p.replace("*", "")), p))
    return next((models[p] for p in globs if fnmatch.fnmatchcase(model, p)), None)


def expected_cost(record, one_hour_writes=False):
    """Micro-dollars for a record's tokens, rounded up as the gateway does; the optional
    rates default to the input rate, the 1-hour cache write to twice it."""
    p = price_of(record["model"])
    if p is None:
        return None
    long = p.get("long_context")
    if long and record["input_tokens"] > long["above_input_tokens"]:
        p = long
    inp = _micros(p["input_per_mtok_usd"])
    rate = {k: _micros(p[k]) if k in p else inp for k in ("cached_input_per_mtok_usd", "cache_write_per_mtok_usd")}
    write_1h = _micros(p["cache_write_1h_per_mtok_usd"]) if "cache_write_1h_per_mtok_usd" in p else 2 * inp
    created = record["cache_creation_input_tokens"]
    w1h = created if one_hour_writes else 0
    uncached = max(record["input_tokens"] - record["cached_input_tokens"] - created, 0)
    total = (uncached * inp + record["cached_input_tokens"] * rate["cached_input_per_mtok_usd"]
             + (created - w1h) * rate["cache_write_per_mtok_usd"] + w1h * write_1h
             + record["output_tokens"] * _micros(p["output_per_mtok_usd"]))
    return -(-total // 1_000_000)


# ---- caching: two runs over one context ----------------------------------------------------

def run_once(ctx, label, binary, args, env, work, usage_of):
    offset, seen = ctx.log.size(), len(provider_requests(ctx.env))
    try:
        out, took = run_tool(binary, args, env, work)
    except subprocess.TimeoutExpired as e:
        check(False, f"{label}: answers in time", f"stdout: {e.stdout}\n      stderr: {e.stderr}")
        return None
    if not check(out.returncode == 0, f"{label}: exits 0 ({took:.1f} s)",
                 f"exit {out.returncode}\n      stdout: {out.stdout[-3000:]}\n      stderr: {out.stderr[-3000:]}"):
        return None
    try:
        _, reported, cost_usd = usage_of(out.stdout)
    except (ValueError, KeyError, TypeError) as e:
        check(False, f"{label}: prints its usage", f"{e!r}\n      stdout: {out.stdout[-3000:]}")
        return None
    records = ctx.log.since(offset)
    upstream = provider_requests(ctx.env)[seen:]
    return records, reported, cost_usd, upstream


def cached_twice(ctx, name, binary, first, second, usage_of, context_file, one_hour=False, resumed=True):
    """Runs `first` then `second` (each (args, env)) in one work directory holding the
    long context; checks the second read the cache and every record's tokens and cost.
    `resumed`: the second run continues the first's session, whose whole usage it reports."""
    work = ctx.tmp / f"work-extras-{name}"
    work.mkdir()
    (work / context_file).write_text(CONTEXT)
    runs, before, cost_before = [], {}, 0.0
    for i, (args, env) in enumerate((first, second), 1):
        got = run_once(ctx, f"{name} run {i}", binary, args, env, work, usage_of)
        if got is None:
            return None
        records, total, total_usd, upstream = got
        runs.append(got)
        # A resumed session reports its whole usage, the earlier run's included.
        reported = {m: {f: n - before.get(m, {}).get(f, 0) for f, n in u.items()} for m, u in total.items()}
        reported = {m: u for m, u in reported.items() if any(u.values())}
        cost_usd = None if total_usd is None else total_usd - cost_before
        if resumed:
            before, cost_before = total, total_usd or 0.0
        fields = sorted({f for u in reported.values() for f in u})
        booked = by_model(records, fields, all_models="*" in reported)
        summary = ", ".join(f"{r['model']} in {r['input_tokens']} read {r['cached_input_tokens']} "
                            f"write {r['cache_creation_input_tokens']} out {r['output_tokens']} "
                            f"${r['cost_micros'] / 1e6:.6f}" for r in records)
        print(f"      run {i}: {summary}")
        check(records and booked == reported, f"{name} run {i}: the records' tokens equal the tool's own report {reported}",
              f"records: {booked}")
        want = [expected_cost(r, one_hour) for r in records]
        got_costs = [r["cost_micros"] for r in records]
        check(records and want == got_costs,
              f"{name} run {i}: each record costs what envoy/prices.yaml makes of its tokens {got_costs}"
              + (" (1-hour cache writes)" if one_hour else ""), f"expected {want}")
        if cost_usd is not None:
            # The gateway rounds each request up to the micro-dollar; the tool sums
            # unrounded figures (each run here is one request).
            micros = sum(got_costs)
            check(len(records) == 1 and tool_cost_matches(cost_usd, records),
                  f"{name} run {i}: its own cost ${cost_usd:.7f} is the records' {micros} micro-dollars, rounded up",
                  f"tool: {cost_usd!r}")
        check(upstream and not any(ctx.token in v for r in upstream for _, v in r["headers"]),
              f"{name} run {i}: the provider got {len(upstream)} request(s), none with the caller's JWT")
    read = sum(r["cached_input_tokens"] for r in runs[1][0])
    check(read > 0, f"{name}: the second run read {read} prompt tokens from the cache")
    return runs


def caching(ctx, tools):
    tmp, token = ctx.tmp, ctx.token
    if "claude" in tools:
        for tag, extra in (("", {}), ("-1h", {"ENABLE_PROMPT_CACHING_1H": "1"})):
            args, env, _ = claude(tmp, token, FIRST, tag=f"-cache{tag}")
            env.update(extra)
            runs = cached_twice(ctx, f"claude{tag}", "claude", (args, env),
                                (["--continue", "-p", SECOND, "--output-format", "json"], env),
                                claude_usage, "CLAUDE.md", one_hour=bool(extra))
            if runs:
                sent = [json.loads(r["body"]) for run in runs for r in run[3] if r["path"].startswith("/v1/messages")]
                ttls = sorted({(c.get("cache_control") or {}).get("ttl", "5m") for b in sent for c in blocks(b)
                               if c.get("cache_control")})
                check(ttls == (["1h"] if extra else ["5m"]), f"claude{tag}: Claude Code's cache breakpoints ask for {ttls}")
                writes = sum(r["cache_creation_input_tokens"] for run in runs for r in run[0])
                check(writes > 0, f"claude{tag}: its records count {writes} cache-write tokens")
    if "codex" in tools:
        args, env, _ = codex(tmp, token, FIRST, tag="-cache")
        resume = ["exec", "--json", "--skip-git-repo-check", "resume", "--last", SECOND]
        cached_twice(ctx, "codex", "codex", (args, env), (resume, env), codex_usage, "AGENTS.md")
    if "gemini" in tools:
        args, env, _ = gemini(tmp, token, FIRST, tag="-cache")
        runs = cached_twice(ctx, "gemini", "gemini", (args, env), (["-p", SECOND, "--output-format", "json"], env),
                            gemini_usage, "GEMINI.md", resumed=False)
        if runs:
            streamed = [r["path"] for run in runs for r in run[3] if ":streamGenerateContent" in r["path"]]
            check(streamed and all(p.endswith("?alt=sse") for p in streamed),
                  f"gemini: streamGenerateContent reached the provider with its query kept ({streamed[:1]})")


def blocks(body):
    """Every block of a Messages request that can carry cache_control."""
    out = list(body.get("tools") or [])
    system = body.get("system")
    out += system if isinstance(system, list) else []
    for m in body.get("messages") or []:
        out += m["content"] if isinstance(m.get("content"), list) else []
    return [b for b in out if isinstance(b, dict)]


# ---- Anthropic betas -----------------------------------------------------------------------

ADDED_BETA = "chokepoint-probe-2099-01-01"
# A beta-only request field (the MCP connector's), added with Claude Code's own setting.
EXTRA_BODY = {"mcp_servers": [{"type": "url", "url": "https://mcp.example.invalid/sse", "name": "probe"}]}


def betas(ctx, tools):
    if "claude" not in tools:
        return
    headers = []
    for tag, extra in (("-nobeta", {}), ("-beta", {"ANTHROPIC_BETAS": ADDED_BETA,
                                                  "CLAUDE_CODE_EXTRA_BODY": json.dumps(EXTRA_BODY)})):
        args, env, _ = claude(ctx.tmp, ctx.token, tag=tag)
        env.update(extra)
        work = ctx.tmp / f"work-extras-claude{tag}"
        work.mkdir()
        got = run_once(ctx, f"claude{tag}", "claude", args, env, work, claude_usage)
        if got is None:
            return
        sent = [r for r in got[3] if r["path"].startswith("/v1/messages")]
        headers.append([dict(r["headers"]).get("anthropic-beta", "") for r in sent])
        if extra:
            bodies = [json.loads(r["body"]) for r in sent]
            check(bodies and all(b.get("mcp_servers") == EXTRA_BODY["mcp_servers"] for b in bodies),
                  "claude: a beta-only request field (mcp_servers, from CLAUDE_CODE_EXTRA_BODY) reached the provider as sent")
    default, added = headers
    print(f"      default anthropic-beta: {default[:1]}")
    # Claude Code puts ANTHROPIC_BETAS among its own (after its first three).
    check(default and added and all(ADDED_BETA in a.split(",")
                                    and [b for b in a.split(",") if b != ADDED_BETA] == d.split(",")
                                    for d, a in zip(default, added)),
          f"claude: anthropic-beta reached the provider as Claude Code builds it (its default list and {ADDED_BETA})",
          f"without ANTHROPIC_BETAS: {default}\n      with: {added}")


# ---- discovery and counting ----------------------------------------------------------------

def through_gateway(ctx, method, path, headers, body=None):
    """One request from the tools' namespace to the gateway: (status, JSON or text)."""
    args = ["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "-X", method, f"{GATEWAY}{path}"]
    for k, v in headers.items():
        args += ["-H", f"{k}: {v}"]
    if body is not None:
        args += ["-H", "content-type: application/json", "--data-binary", json.dumps(body)]
    out = in_ns(NS.client, *args).stdout
    text, _, status = out.rpartition("\n")
    try:
        return int(status), json.loads(text)
    except ValueError:
        return int(status or 0), text


def discovery(ctx, tools):
    t = ctx.token
    anthropic = {"x-api-key": t, "anthropic-version": "2023-06-01", "user-agent": "claude-cli/2.1.332 (external, sdk-cli)"}
    question = {"role": "user", "content": "How many tokens is this?"}
    # (tool, what, method, path as the tool sends it, headers, body, provider path prefix)
    calls = [
        ("claude", "count_tokens (its SDK's beta path)", "POST", "/v1/messages/count_tokens?beta=true",
         dict(anthropic, **{"anthropic-beta": "claude-code-20250219,token-counting-2024-11-01"}),
         {"model": "claude-opus-5-5", "messages": [question]}, "/v1/messages/count_tokens?beta=true"),
        ("claude", "model discovery", "GET", "/v1/models?limit=1000", anthropic, None, None),
        ("gemini", "countTokens", "POST", "/v1beta/models/gemini-3.8-flash:countTokens",
         {"x-goog-api-key": t, "user-agent": "GeminiCLI/0.61.0/gemini-3.8-flash (linux; x64)"},
         {"contents": [{"role": "user", "parts": [{"text": "How many tokens is this?"}]}]},
         "/v1beta/models/gemini-3.8-flash:countTokens"),
        ("gemini", "model list", "GET", "/v1beta/models?pageSize=1000",
         {"x-goog-api-key": t, "user-agent": "GeminiCLI/0.61.0/gemini-3.8-flash (linux; x64)"}, None, None),
        ("codex", "model list", "GET", "/v1/models?client_version=0.171.0",
         {"authorization": f"Bearer {t}", "originator": "codex_exec", "user-agent": "codex_exec/0.171.0"}, None, None),
    ]
    for tool, what, method, path, headers, body, upstream_path in calls:
        if tool not in tools:
            continue
        offset, seen = ctx.log.size(), len(provider_requests(ctx.env))
        status, answer = through_gateway(ctx, method, path, headers, body)
        records = ctx.log.since(offset, settle=0.8, limit=5)
        upstream = provider_requests(ctx.env)[seen:]
        label = f"{tool}: {what} ({method} {path.split('?')[0]})"
        print(f"      {label}: {status} {json.dumps(answer)[:160]}")
        print(f"      records: {json.dumps(records)[:600]}")
        check(status == 200, f"{label}: the gateway answers it", json.dumps(answer)[:500])
        if upstream_path is None:
            # Model lists: the gateway answers from its policy (the models it routes).
            ids = [m.get("id") for m in answer.get("data", [])] if isinstance(answer, dict) else []
            check(not upstream and records and all(r["decision"] == "answered" for r in records) and ids,
                  f"{label}: the gateway lists its own models ({len(ids)}), nothing goes upstream",
                  f"provider got: {[r['path'] for r in upstream]}")
            if isinstance(answer, dict):
                print(f"      list keys: {sorted(answer)}; first: {json.dumps((answer.get('data') or [{}])[0])[:300]}")
        else:
            check(upstream and upstream[0]["path"].startswith(upstream_path)
                  and not any(t in v for r in upstream for _, v in r["headers"]),
                  f"{label}: it reaches the provider at {upstream_path} without the caller's JWT",
                  f"provider got: {[r['path'] for r in upstream]}")
        check(all(r["output_tokens"] == 0 and r["cost_micros"] == 0 for r in records),
              f"{label}: not charged as a completion ({len(records)} record(s), "
              f"{sum(r['cost_micros'] for r in records)} micro-dollars)", json.dumps(records)[:800])


# A 1x1 PNG: Gemini CLI counts a prompt's tokens with countTokens when it holds media.
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==")


def discovery_by_tools(ctx, tools):
    """The discovery and counting calls a user's setting or command makes the tools send:
    Claude Code's gateway model discovery (CLAUDE_CODE_ENABLE_GATEWAY_MODEL_DISCOVERY),
    Gemini CLI's countTokens (a prompt with an image, @pic.png), `codex doctor`'s probe
    of the provider's model list."""
    runs = []
    if "claude" in tools:
        args, env, _ = claude(ctx.tmp, ctx.token, tag="-discovery")
        env["CLAUDE_CODE_ENABLE_GATEWAY_MODEL_DISCOVERY"] = "1"
        runs.append(("claude", "claude", args, env, "model discovery"))
    if "gemini" in tools:
        args, env, _ = gemini(ctx.tmp, ctx.token, "Describe @pic.png in one sentence.", tag="-discovery")
        runs.append(("gemini", "gemini", args, env, "countTokens"))
    if "codex" in tools:
        _, env, _ = codex(ctx.tmp, ctx.token, tag="-discovery")
        runs.append(("codex", "codex", ["doctor"], env, "its provider probe"))
    for name, binary, args, env, what in runs:
        work = ctx.tmp / f"work-extras-{name}-discovery"
        work.mkdir()
        (work / "pic.png").write_bytes(PNG)
        offset, seen = ctx.log.size(), len(provider_requests(ctx.env))
        try:
            out, took = run_tool(binary, args, env, work)
        except subprocess.TimeoutExpired as e:
            check(False, f"{name} ({what}): finishes in time", f"{e.stdout}\n      {e.stderr}")
            continue
        records = ctx.log.since(offset)
        upstream = provider_requests(ctx.env)[seen:]
        print(f"      {name} {' '.join(args[:1])}: exit {out.returncode} in {took:.1f} s; provider got "
              f"{[r['path'] for r in upstream]}; records: "
              + ", ".join(f"{r['decision']} {r['model']} {r['format']} {r['cost_micros']}" for r in records))
        if name == "gemini":
            counts = [r for r in upstream if r["path"].endswith(":countTokens")]
            check(counts and all("inlineData" in r["body"] for r in counts),
                  f"gemini: a prompt with an image sends countTokens ({len(counts)}), with the image, to the provider",
                  out.stderr[-1500:])
            counted = [r for r in records if r["model"] and r["format"] is None]
            check(counted and all(r["cost_micros"] == 0 and r["output_tokens"] == 0 for r in counted),
                  f"gemini: its countTokens records ({len(counted)}) cost nothing")
        elif name == "codex":
            # `codex doctor` probes the provider's routes without its key: the gateway
            # refuses them (401), which doctor takes for "route exists".
            refused = [r for r in records if r["decision"] == "unauthenticated"]
            check(out.returncode == 0 and "route exists" in out.stdout and refused and not upstream
                  and all(r["cost_micros"] == 0 for r in records),
                  f"codex: `codex doctor` probes the gateway without a key; it refuses them "
                  f"({len(refused)} x 401), nothing goes upstream, and doctor finds the routes",
                  f"exit {out.returncode}\n      {out.stdout[-1500:]}")
        else:
            listed = [r for r in records if r["decision"] == "answered" and r["model"] is None]
            check(listed and all(r["cost_micros"] == 0 and r["client"] for r in listed),
                  f"{name}: {what} asks the gateway for its models, which answers itself ({len(listed)} record(s), "
                  f"no cost)", f"exit {out.returncode}\n      {out.stdout[-1500:]}\n      {out.stderr[-1500:]}")


def run(ctx, tools):
    caching(ctx, tools)
    betas(ctx, tools)
    discovery_by_tools(ctx, tools)
    discovery(ctx, tools)
