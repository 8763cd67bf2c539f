"""One prompt, each tool, through the gateway and nowhere else:
  * the tool exits 0 with an answer;
  * the gateway's usage records of the run (its access log) hold exactly the tokens the tool
    itself reports, per model; for Claude Code also its own dollar figure, to the
    micro-dollar;
  * Codex, with its default transport settings, first tries a WebSocket on /v1/responses;
    the gateway refuses it (403, counted by Envoy as downstream_rq_ws_on_non_ws_route) and
    Codex falls back to HTTP within seconds;
  * the records name the tool and the session it sent, and the admin API sums the session;
  * the provider never sees the caller's JWT, and the tool reaches nothing but the gateway."""

import json
import time

from harness import answered, check, envoy_stat, observe, reached_only, run_tool, sent, usage_matches
from tools import TOOLS

# Envoy refuses the upgrade with 403 before the filter runs (no route allows WebSocket).
# Codex 0.171.0 retries the upgrade 7 times with backoff, about 6.8 s, before it falls back
# to HTTP, whatever the refusal: a server answering 426 Upgrade Required got the same 7
# attempts over 6.8 s.
WS_FALLBACK_MS = 10_000



def one_tool(ctx, name, binary, setup, usage_of):
    tmp, env, token, log = ctx.tmp, ctx.env, ctx.token, ctx.log
    args, tool_environment, home = setup(tmp, token)
    work = tmp / f"work-{name}"
    work.mkdir()
    ws_before = envoy_stat(env, "http.gateway.downstream_rq_ws_on_non_ws_route")
    started_ms = time.time() * 1000
    run = observe(ctx, f"{name}: answers", lambda: run_tool(binary, args, tool_environment, work))
    reported = run and answered(name, run, usage_of)
    if not reported:
        return
    answer, reported, cost_usd = reported
    check(answer, f"{name}: answered {answer!r:.80}", run.out.stdout[-2000:])
    records = run.records
    # A WebSocket upgrade Envoy refuses before the filter runs leaves no usage record, only
    # the access log's `-` for the missing one.
    refused = log.unseen
    summary = ", ".join(f"{r['model']} {r['format']} {'stream' if r['stream'] else 'unary'} "
                        f"in {r['input_tokens']} out {r['output_tokens']} ${r['cost_micros'] / 1e6:.6f}"
                        for r in records)
    print(f"      {len(records)} record(s): {summary}")
    check(records and all(r["status"] == 200 for r in records),
          f"{name}: every request the gateway booked was answered (HTTP 200)", json.dumps(records)[:3000])
    usage_matches(name, records, reported, cost_usd)
    attempts = envoy_stat(env, "http.gateway.downstream_rq_ws_on_non_ws_route") - ws_before
    if name == "codex":
        check(attempts == 0, f"codex: a provider of its own goes straight to HTTP (WebSocket attempts: {attempts})")
    if name == "codex-builtin":
        first_http = min(r["ts_ms"] - r["latency_ms"] for r in records) - started_ms if records else -1
        print(f"      WebSocket upgrades refused: {attempts}; first HTTP request {first_http / 1000:.2f} s after launch")
        check(attempts >= 1, "codex-builtin: tried a WebSocket on /v1/responses first and the gateway refused it")
        check(0 <= first_http < WS_FALLBACK_MS,
              f"codex-builtin: fell back to HTTP {first_http / 1000:.2f} s after launch (< {WS_FALLBACK_MS / 1000:.0f} s)")
    check(refused == attempts and all(r["request_id"] and r["ts_ms"] > 0 for r in records),
          f"{name}: each refused WebSocket upgrade ({attempts}) left no usage record, only Envoy's `-` ({refused})",
          "\n      ".join(json.dumps(r) for r in records))
    upstream = run.upstream
    for r in upstream:
        print(f"      provider got: {sent(r)}")
    check(upstream and not any(token in v for r in upstream for _, v in r["headers"]),
          f"{name}: the provider got {len(upstream)} request(s), none with the caller's JWT")
    attribution(ctx, name, records, upstream)
    reached_only(name, run)


# The client each tool's records must name (its user agent, or Codex's originator).
CLIENTS = {"claude": "claude-code/", "codex": "codex/", "codex-builtin": "codex/", "gemini": "gemini-cli/"}
# The headers the tools send their session id in (Gemini CLI sends none with an API key).
SESSION_HEADERS = ("x-claude-code-session-id", "session-id")


def attribution(ctx, name, records, upstream):
    """The records name the tool and the session it sent, and the admin API sums the
    session's spend to what its records cost."""
    clients = sorted({str(r.get("client")) for r in records})
    check(records and all(str(r.get("client")).startswith(CLIENTS[name]) for r in records),
          f"{name}: its records name the tool ({', '.join(clients)})")
    sent_sessions = {v for r in upstream for k, v in r["headers"] if k in SESSION_HEADERS}
    sessions = {r.get("session") for r in records}
    check(sessions == (sent_sessions or {None}),
          f"{name}: its records carry the session it sent ({', '.join(map(str, sorted(sent_sessions))) or 'none'})",
          f"records: {sessions}")
    if len(sent_sessions) != 1:
        return
    (session,) = sent_sessions
    day = time.strftime("%Y-%m-%d", time.gmtime())
    want = (len(records), sum(r["cost_micros"] for r in records))
    got, deadline = None, time.time() + 10
    while time.time() < deadline:
        out = ctx.admin(f"/v1/admin/usage?by=session&period={day}&id={session}")
        rows = out.get("rows", []) if isinstance(out, dict) else []
        got = (rows[0]["requests"], rows[0]["cost_micros"]) if rows else None
        if got == want:
            break
        time.sleep(0.3)
    check(got == want, f"{name}: the admin API sums its session to {want[0]} request(s), {want[1]} micro-dollars",
          f"got {got}")




def run(ctx, tools):
    for name, binary, setup, usage_of in TOOLS:
        if name in tools:
            one_tool(ctx, name, binary, setup, usage_of)
