"""What a tool does when the gateway refuses it or its answer breaks off.

A spent budget: a tenant whose daily dollar budget is spent; each tool, run as one of its
users, gives up at once after one refused request per call it makes, showing the
gateway's message (Codex shows its own quota text), and the provider gets nothing. The
gateway's refusal tells each tool in its provider's error shape that it is final
(filter/src/providers/reply.rs); the ledger charges none of it. A rate limit is not
final: Gemini CLI waits out the delay the refusal gives and is answered.

An interrupted turn: the mock provider cuts the answer stream a few events in
(`x-mock-cut-after`, sent by each tool with its custom headers). Each tool ends as it
does (Claude Code retries, then asks without streaming and answers; Codex reconnects 5
times and gives up; Gemini CLI gives up at once); every exchange the provider got is one
usage record of its own (matched by Envoy's x-request-id, which the provider received),
flagged `estimated` and charged by the rule of docs/architecture.md "count (the
response)", within bounds computed from what the mock received and sent (replayed
straight to it); the admin API sums the session to the records."""

import json
import math
import subprocess
import time

from harness import NS, GATEWAY, TOOL_TIMEOUT, check, in_ns, observe, run_tool, sent
from netns import BIN, MOCK_PORT, sh
from one_prompt import attribution
from tools import TOOLS, claude_usage

SPENT_TENANT = "spent"
SPENT_USER = "spent-user"
# A refusal is final for the tool: it gives up at once (each starts in 1-3 s).
GIVE_UP_S = 20
# The calls each tool makes for one prompt, each refused once: Gemini CLI first asks a
# small model which model should answer (its model router's classifier, generateContent
# on gemini-3.5-flash-lite), then makes the turn.
CALLS = {"claude": 1, "codex": 1, "gemini": 2}
# What each tool shows for a spent budget: the gateway's message, except Codex, which
# replaces any `insufficient_quota` error with its own text.
CODEX_QUOTA = "Quota exceeded. Check your plan and billing details."
# A tenant held to one request a minute.
PACED_TENANT = "paced"
PACED_USER = "paced-user"


def put_limits(ctx, scope, ident, body):
    out = in_ns(NS.gw, "curl", "-s", "-X", "PUT", "-H", f"authorization: Bearer {ctx.env['CHOKEPOINT_ADMIN_TOKEN']}",
                "-H", "content-type: application/json", "--data", json.dumps(body),
                f"{ctx.env['CHOKEPOINT_POLICY_ADMIN_URL']}/v1/admin/limits/{scope}/{ident}").stdout
    return json.loads(out)


def spend_once(token):
    """One small answered request, so the tenant has spent something before its budget is
    set below it."""
    body = {"model": "claude-opus-5-5", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
    return in_ns(NS.client, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
                 "-H", f"x-api-key: {token}", "-H", "anthropic-version: 2023-06-01",
                 "-H", "content-type: application/json", "--data", json.dumps(body),
                 f"{GATEWAY}/v1/messages").stdout


def tenant_requests(ctx, tenant):
    """Requests the ledger has charged to the tenant today."""
    day = time.strftime("%Y-%m-%d", time.gmtime())
    out = ctx.admin(f"/v1/admin/usage?scope=tenant&id={tenant}&period={day}")
    return (out or {}).get("requests")


def spent_budget(ctx, tools):
    tmp = ctx.tmp / "spent"
    tmp.mkdir()
    token = sh(str(BIN / "chokepoint-token"), SPENT_USER, "--tenant", SPENT_TENANT,
               "--key", str(ctx.tmp / ".chokepoint" / "dev-key.json")).stdout.strip()
    (tmp / "token").write_text(token + "\n")
    offset = ctx.log.size()
    status = spend_once(token)
    deadline = time.time() + 10
    # Booked in the ledger, and its record in the access log (Envoy flushes that on its
    # own timer): a late line would count as the first tool's.
    while (tenant_requests(ctx, SPENT_TENANT) != 1
           or not any(r.get("tenant") == SPENT_TENANT for r in ctx.log.since(offset))) \
            and time.time() < deadline:
        time.sleep(0.3)
    set_to = put_limits(ctx, "tenant", SPENT_TENANT, {"usd_micros": 1, "period": "day"})
    check(status == "200" and tenant_requests(ctx, SPENT_TENANT) == 1 and "limits" in set_to,
          f"tenant {SPENT_TENANT} spent its daily budget ($0.000001 after one answered request)",
          f"status {status}, ledger {tenant_requests(ctx, SPENT_TENANT)}, limits {set_to}")
    for name, binary, setup, _ in TOOLS:
        if name in tools and name in CALLS:
            refused(ctx, tmp, token, name, binary, setup)
    charged = tenant_requests(ctx, SPENT_TENANT)
    check(charged == 1, f"the refusals charged nothing (the ledger holds the tenant's one request: {charged})")


def refused(ctx, tmp, token, name, binary, setup):
    args, env, home = setup(tmp, token)
    work = tmp / f"work-{name}"
    work.mkdir()
    ran = observe(ctx, f"{name}: gives up on a spent budget", lambda: run_tool(binary, args, env, work))
    if not ran:
        return
    out, took, records, upstream = ran.out, ran.took, ran.records, ran.upstream
    output = out.stdout + out.stderr
    detail = ran.detail(2000)
    check(out.returncode != 0 and took < GIVE_UP_S,
          f"{name}: gives up on a spent budget (exit {out.returncode} after {took:.1f} s, < {GIVE_UP_S} s)", detail)
    message = f"tenant {SPENT_TENANT}'s daily budget of $0.000001 is spent"
    if name == "codex":
        check(CODEX_QUOTA in output, f"codex: says {CODEX_QUOTA!r} (its own text for insufficient_quota)", detail)
    else:
        shown = [line.strip() for line in output.splitlines() if message in line]
        # The line, from a few characters before the message.
        quote = shown[-1][max(shown[-1].find(message) - 40, 0):] if shown else ""
        check(shown, f"{name}: shows the gateway's message: {quote!r:.160}", detail)
    summary = ", ".join(f"{r['model']} {r['status']} {r['error']}" for r in records)
    calls = {(r["model"], r["stream"]) for r in records}
    check(len(records) == CALLS[name] and len(calls) == len(records)
          and all(r["status"] == 429 and r["decision"] == "denied" for r in records),
          f"{name}: one refused request per call it makes ({len(records)}: {summary}), none retried",
          "\n      ".join(json.dumps(r) for r in records))
    check(records and all(r["input_tokens"] == r["output_tokens"] == r["cost_micros"] == 0 and not r["estimated"]
                          for r in records),
          f"{name}: its refused records carry no tokens and no cost (nothing reached a provider)",
          "\n      ".join(json.dumps(r) for r in records))
    check(not upstream, f"{name}: the provider got nothing ({len(upstream)})",
          "\n      ".join(sent(r) for r in upstream))


def rate_limit_waited(ctx, tools):
    """A rate limit is not final: Gemini CLI, told when to come back (the RetryInfo in
    every 429 the gateway gives Gemini's API), waits that long and its retry is answered.
    Its two calls against a limit of one request a minute: the classifier's passes, the
    turn is refused, waited out and answered."""
    name, binary, setup, usage_of = next(t for t in TOOLS if t[0] == "gemini")
    tmp = ctx.tmp / "paced"
    tmp.mkdir()
    token = sh(str(BIN / "chokepoint-token"), PACED_USER, "--tenant", PACED_TENANT,
               "--key", str(ctx.tmp / ".chokepoint" / "dev-key.json")).stdout.strip()
    put_limits(ctx, "tenant", PACED_TENANT, {"rpm": 1})
    args, env, home = setup(tmp, token)
    work = tmp / f"work-{name}"
    work.mkdir()
    offset = ctx.log.size()
    try:
        out, took = run_tool(binary, args, env, work)
    except subprocess.TimeoutExpired as e:
        check(False, f"{name}: waits out a rate limit within {TOOL_TIMEOUT} s",
              f"stdout: {e.stdout}\n      stderr: {e.stderr}")
        return
    records = ctx.log.since(offset)
    refusals = [r for r in records if r["status"] == 429]
    detail = f"exit {out.returncode}\n      stdout: {out.stdout[-2000:]}\n      stderr: {out.stderr[-2000:]}"
    try:
        answer = usage_of(out.stdout)[0]
    except (ValueError, KeyError, TypeError):
        answer = None
    # One refusal only: the retry came no sooner than the limit allowed; and no later
    # than the refusal's delay (the window's rest, 60 s at most) plus Gemini CLI's jitter
    # (up to 20 % more).
    waited = (min((r["ts_ms"] for r in records if r["status"] == 200 and r["ts_ms"] > refusals[0]["ts_ms"]),
                  default=0) - refusals[0]["ts_ms"]) / 1000 if refusals else 0
    check(out.returncode == 0 and answer and len(refusals) == 1 and refusals[0]["error"] == "RESOURCE_EXHAUSTED"
          and 0 < waited <= 60 * 1.2 + 2,
          f"{name}: waits out a rate limit (rpm 1): one 429, retried {waited:.1f} s later and answered "
          f"in {took:.1f} s", detail + "\n      " + "\n      ".join(json.dumps(r) for r in records))


# ---- an interrupted turn ---------------------------------------------------------------------

# The mock answers 40 words, 300 ms apart, and cuts the stream after 6 events, when the
# answer has begun with text (Anthropic: message_start, content_block_start, ping, 3
# deltas; Responses: created, in_progress, output_item.added, content_part.added, 2
# deltas; Gemini: 6 chunks), 1.5 s into it: long enough for the rule's 10 tokens a second
# of unseen output to outweigh the text delivered.
CUT_AFTER, EVENT_MS = 6, 300
CUT = {"x-mock-cut-after": str(CUT_AFTER), "x-mock-words": "40", "x-mock-event-delay-ms": str(EVENT_MS)}
# Claude Code retries a broken stream 10 times by default, backing off to about 35 s
# between attempts; the test lets it retry twice (CLAUDE_CODE_MAX_RETRIES) to see the end.
CLAUDE_RETRIES = 2
# The gateway's own edits to a request body (its default output cap, the end user), at
# most this many bytes: the record's input estimate counts the body the client sent,
# the mock received the edited one.
EDIT_BYTES = 256
# What each tool does with a cut stream: the streamed attempts it makes, and what it says
# at the end. Claude Code then asks once more without streaming (the mock does not cut a
# whole answer) and answers; Codex reconnects 5 times (its stream_max_retries) and
# gives up; Gemini CLI gives up at once.
ATTEMPTS = {"claude": CLAUDE_RETRIES + 1, "codex": 6, "gemini": 1}
CUT_SAYS = {"claude": '"is_error":false', "codex": "stream disconnected before completion",
            "gemini": '"message": "terminated"'}


def sse_events(raw):
    """The JSON data of each complete event of a (possibly cut) SSE body."""
    events = []
    for block in raw.replace("\r\n", "\n").split("\n\n")[:-1]:
        data = "\n".join(line[5:].lstrip() for line in block.split("\n") if line.startswith("data:"))
        try:
            events.append(json.loads(data))
        except ValueError:
            pass
    return events


def what_was_sent(raw, path):
    """From the events the mock sent before the cut: the input it reported (None if no
    usage had come yet), the output it reported so far, and the text bytes delivered."""
    reported_in, reported_out, text = None, 0, b""
    for e in sse_events(raw):
        if path.startswith("/v1/messages"):
            if e.get("type") == "message_start":
                u = e["message"]["usage"]
                reported_in = u["input_tokens"] + u.get("cache_read_input_tokens", 0) + u.get(
                    "cache_creation_input_tokens", 0)
                reported_out = u["output_tokens"]
            if e.get("type") == "content_block_delta" and e["delta"].get("type") == "text_delta":
                text += e["delta"]["text"].encode()
        elif path.startswith("/v1/responses"):
            if e.get("type") == "response.output_text.delta":
                text += e["delta"].encode()
        else:
            u = e.get("usageMetadata") or {}
            if "promptTokenCount" in u:
                reported_in, reported_out = u["promptTokenCount"], u.get("candidatesTokenCount", 0)
            for c in e.get("candidates", []):
                for part in c.get("content", {}).get("parts", []):
                    if not part.get("thought"):
                        text += part.get("text", "").encode()
    return reported_in, reported_out, len(text)


def replay(request):
    """The mock's answer to the same request (same body, same x-mock-* controls), read
    straight from it: what it sent the gateway before the cut."""
    body = request["body"]
    args = ["curl", "-s", "-N", "-X", request["method"], "--data-binary", "@-"]
    for k, v in request["headers"]:
        if k not in ("host", "content-length", "transfer-encoding", "accept-encoding", "connection"):
            args += ["-H", f"{k}: {v}"]
    out = subprocess.run(["ip", "netns", "exec", NS.gw, *args, f"http://127.0.0.1:{MOCK_PORT}{request['path']}"],
                         input=body.encode(), capture_output=True, timeout=30)
    return out.stdout.decode(errors="replace")


def output_cap(request):
    """The request's own output bound as the provider got it (the gateway writes its
    default cap when the client sets none)."""
    body = json.loads(request["body"])
    return (body.get("max_tokens") or body.get("max_output_tokens")
            or (body.get("generationConfig") or {}).get("maxOutputTokens"))


def cut_turn(ctx, name, binary, setup):
    tmp = ctx.tmp / "cut"
    tmp.mkdir(exist_ok=True)
    (tmp / "token").write_text(ctx.token + "\n")
    args, env, home = setup(tmp, ctx.token, headers=CUT)
    if name == "claude":
        env["CLAUDE_CODE_MAX_RETRIES"] = str(CLAUDE_RETRIES)
    work = tmp / f"work-{name}"
    work.mkdir()
    ran = observe(ctx, f"{name}: gives up on a cut stream", lambda: run_tool(binary, args, env, work))
    if not ran:
        return
    out, took, records, upstream = ran.out, ran.took, ran.records, ran.upstream
    detail = ran.detail(2000)
    for r in upstream:
        print(f"      provider got: {sent(r)}")
    streamed = [r for r in upstream if "stream" in r["path"] or '"stream":true' in r["body"].replace(" ", "")]
    said = [line.strip() for line in (out.stdout + out.stderr).splitlines() if CUT_SAYS[name] in line]
    ok = (out.returncode == 0) == (name == "claude")
    check(ok and said and len(streamed) == ATTEMPTS[name],
          f"{name}: {len(streamed)} cut attempt(s), then in {took:.1f} s exit {out.returncode}: "
          f"{said[-1] if said else ''!r:.160}", detail)
    # Every exchange the provider got is one record of its own: Envoy's x-request-id,
    # which the provider received, is the record's trace_id.
    by_trace = {r["trace_id"]: r for r in records}
    sent_ids = [dict(r["headers"]).get("x-request-id") for r in upstream]
    check(sorted(by_trace) == sorted(sent_ids) and len({r["request_id"] for r in records}) == len(records),
          f"{name}: {len(records)} record(s), one per request the provider got ({len(upstream)}), "
          f"each its own request id", f"records {sorted(by_trace)}\n      provider {sorted(sent_ids)}")
    for r in streamed:
        rec = by_trace.get(dict(r["headers"]).get("x-request-id"))
        if rec:
            charged_per_rule(name, r, rec)
    if name == "claude":
        # Claude Code's own report counts every attempt's input (message_start's), cut
        # ones included, as the records do.
        try:
            _, usage, _ = claude_usage(out.stdout)
            reported = sum(u["input_tokens"] for u in usage.values())
        except (ValueError, KeyError, TypeError):
            reported = None
        booked = sum(r["input_tokens"] for r in records)
        check(reported == booked, f"claude: its own report counts the cut attempts' input as the records do "
              f"({reported} = {booked})", detail)
    # The records name the tool and its session, and the admin API sums the session to
    # them, cut attempts included.
    attribution(ctx, name, records, upstream)


def charged_per_rule(name, request, rec):
    """docs/architecture.md, count (the response): the input at least (as the provider
    reported it before the cut, else estimated from the request body), never zero output
    for an answer that began (at least the text delivered, ~4 bytes a token, and 10 tokens
    a second answering: the mock's delays before the cut at least, the record's latency at
    most), never past the request's own output cap."""
    reported_in, reported_out, text_bytes = what_was_sent(replay(request), request["path"])
    body = len(request["body"].encode())
    if reported_in is not None:
        inputs, want_in = (reported_in, reported_in), f"{reported_in} as reported"
    else:
        inputs = (math.ceil(max(body - EDIT_BYTES, 0) / 4), math.ceil(body / 4))
        want_in = f"{inputs[0]}..{inputs[1]} estimated from its {body}-byte body"
    cap = output_cap(request)
    answering_ms = (CUT_AFTER - 1) * EVENT_MS
    low = max(1, math.ceil(text_bytes / 4), reported_out, answering_ms * 10 // 1000)
    high = min(cap, max(low, rec["latency_ms"] * 10 // 1000))
    check(rec["estimated"] and not rec["completed"] and inputs[0] <= rec["input_tokens"] <= inputs[1]
          and low <= rec["output_tokens"] <= high,
          f"{name}: {rec['request_id'][:8]} charged per the rule: input {rec['input_tokens']} ({want_in}), "
          f"output {rec['output_tokens']} ({low}..{high}: {text_bytes} bytes of text delivered, "
          f"answering {answering_ms}..{rec['latency_ms']} ms, cap {cap}), estimated", json.dumps(rec))


def run(ctx, tools):
    spent_budget(ctx, tools)
    if "gemini" in tools:
        rate_limit_waited(ctx, tools)
    for name, binary, setup, _ in TOOLS:
        if name in tools and name in CALLS:
            cut_turn(ctx, name, binary, setup)
