"""An agent loop, each tool, through the gateway: the tool is asked to read a file holding a
random nonce; the mock provider (x-mock-tool-call, dev/src/mock/tool_call.rs) answers the
first turn with a call to the tool's own file-reading or shell tool, the tool runs it and
sends the result back, and the mock answers the second turn with text quoting the result.
  * the tool exits 0 and its final answer holds the nonce (the result made the round trip);
  * one usage record per request, at least two turns, each answered 200, each with its own
    request id, all naming the tool (and the one session it sent), the admin API summing the
    session to the records, the records' tokens equal to the tool's own report (Claude
    Code's cost to the micro-dollar);
  * the model's signed hidden state came back byte for byte: the mock issues a signature
    with every loop turn (Claude Code's thinking block, Codex's encrypted reasoning,
    Gemini's thoughtSignature) and refuses a request carrying one altered (shown here by
    sending the second turn again with one character changed), so the second turn's 200
    proves it; beyond that, the signatures the next request carried are exactly those the
    mock sends for the first turn's request (sent again to the mock directly);
  * the provider never sees the caller's JWT, and the tool reaches nothing but the gateway."""

import json
import re
import secrets

from harness import NS, answered, check, in_ns, observe, reached_only, run_tool, sent, usage_matches
from netns import MOCK_PORT
from one_prompt import attribution
from tools import TOOLS

PROMPT = "Read the file nonce.txt in the current directory and tell me what it says."

# Each tool's call to read the file (x-mock-tool-call: <tool> <arguments>), found in the tools
# list each sends, and the flags that let it run without asking, as a user grants them.
#   Claude Code: its Bash tool, the one command allowed by --allowedTools.
#   Codex 0.171: a single custom (freeform) tool `exec`, JavaScript calling nested tools
#     such as exec_command; reading inside the workspace needs no approval in its default
#     read-only sandbox.
#   Gemini CLI: read_file, a read-only tool it runs without confirmation.
CALLS = {
    "claude": (lambda work: 'Bash {"command": "cat nonce.txt", "description": "Show the nonce file"}',
               ["--allowedTools", "Bash(cat nonce.txt)"]),
    "codex": (lambda work: 'exec const r = await tools.exec_command({cmd: "cat nonce.txt"}); text(r.output);',
              []),
    "gemini": (lambda work: 'read_file ' + json.dumps({"file_path": str(work / "nonce.txt")}, separators=(",", ":")),
               []),
}
# Where each format keeps the signed hidden state a request carries back.
SIGNATURE_KEYS = ("signature", "encrypted_content", "thoughtSignature")


def loop_tool(ctx, name, binary, setup, usage_of):
    tmp, token = ctx.tmp, ctx.token
    work = tmp / f"work-loop-{name}"
    work.mkdir()
    nonce = secrets.token_hex(8)
    (work / "nonce.txt").write_text(f"nonce-{nonce}\n")
    call, flags = CALLS[name]
    args, tool_environment, home = setup(tmp, token, PROMPT, {"x-mock-tool-call": call(work)}, "-loop")
    args = args[:-1] + flags + args[-1:] if name == "codex" else args + flags
    run = observe(ctx, f"{name}: loop ends", lambda: run_tool(binary, args, tool_environment, work))
    if not run:
        return
    records, upstream = run.records, run.upstream
    # What the provider got, whole, for a look when a check fails (CHOKEPOINT_KEEP_TMP=1).
    (tmp / f"loop-{name}-requests.json").write_text(json.dumps(upstream, indent=1))
    for r in upstream:
        print(f"      provider got: {sent(r)}")
    reported = answered(name, run, usage_of)
    if not reported:
        return
    answer, reported, cost_usd = reported
    check(answer and f"nonce-{nonce}" in answer, f"{name}: its final answer quotes the file's nonce ({answer!r:.90})",
          run.out.stdout[-2000:])
    first = next((i for i, r in enumerate(upstream) if tool_result(r)), None)
    summary = ", ".join(f"{r['model']} {r['status']} in {r['input_tokens']} out {r['output_tokens']}" for r in records)
    print(f"      {len(records)} record(s): {summary}")
    check(first and any(call_offered(r) for r in upstream[:first]),
          f"{name}: the tool's result came back in request {(first or 0) + 1} of {len(upstream)}, after the call's turn",
          "\n      ".join(sent(r) for r in upstream))
    check(len(records) == len(upstream) and all(r["status"] == 200 for r in records),
          f"{name}: one usage record per request ({len(records)} for {len(upstream)}), each answered 200",
          "\n      ".join(json.dumps(r) for r in records))
    ids = [r["request_id"] for r in records]
    check(all(ids) and len(set(ids)) == len(ids), f"{name}: each record has its own request id", str(ids))
    usage_matches(name, records, reported, cost_usd)
    check(upstream and not any(token in v for r in upstream for _, v in r["headers"]),
          f"{name}: the provider got {len(upstream)} request(s), none with the caller's JWT")
    sessions = {r.get("session") for r in records}
    check(len(sessions) == 1 and (None not in sessions or name == "gemini"),
          f"{name}: every turn of the loop is booked to one session ({', '.join(map(str, sessions))})")
    attribution(ctx, name, records, upstream)
    signatures_round_trip(ctx, name, upstream)
    reached_only(name, run)

def body(request):
    try:
        return json.loads(request["body"])
    except ValueError:
        return {}


def tool_result(request):
    return bool(re.search(r'"type":\s*"(tool_result|custom_tool_call_output|function_call_output)"|"functionResponse"',
                          request["body"]))


def carried(value):
    """Every signature a request body carries back, by where it sits."""
    found = []
    if isinstance(value, dict):
        for k, v in value.items():
            if k in SIGNATURE_KEYS and isinstance(v, str) and v:
                found.append(v)
            else:
                found.extend(carried(v))
    elif isinstance(value, list):
        for v in value:
            found.extend(carried(v))
    return found


def signatures_round_trip(ctx, name, upstream):
    """The request that brought the tool's result carried the signatures the mock issued
    with the call, byte for byte: the call's request is sent to the mock again, directly,
    and the signatures in its answer compared with those the next request carried."""
    first = next((i for i, r in enumerate(upstream) if tool_result(r)), None)
    if not first:
        return
    answered_with_call = next(r for r in reversed(upstream[:first]) if call_offered(r))
    back = carried(body(upstream[first]))
    out = to_mock(ctx, name, answered_with_call, answered_with_call["body"])[1]
    issued = sorted(set(re.findall(r'"(?:signature|encrypted_content|thoughtSignature)"\s*:\s*"([^"]+)"', out)))
    check(issued and sorted(set(back)) == issued,
          f"{name}: the next request carried the {len(issued)} signature(s) the mock issued with the call, "
          f"byte for byte ({', '.join(f'{len(s)} B' for s in issued)})",
          f"issued: {issued}\n      carried back: {back}")
    # That 200 means something only if an altered signature is refused: the same request
    # with one character of each signature changed.
    altered = upstream[first]["body"]
    for s in back:
        i = len(s) // 2
        altered = altered.replace(s, s[:i] + ("A" if s[i] != "A" else "B") + s[i + 1:])
    status, answer = to_mock(ctx, name, upstream[first], altered)
    check(back and status == 400, f"{name}: the same request with its signature altered is refused ({status})",
          answer[:500])


def to_mock(ctx, name, request, payload):
    """Sends a request the mock recorded again, directly to it (the key the gateway put in
    included), with `payload` as its body: the status and the answer."""
    path = ctx.tmp / f"replay-{name}.json"
    path.write_text(payload)
    skip = {"host", "content-length", "accept-encoding"}
    headers = [a for k, v in request["headers"] if k not in skip for a in ("-H", f"{k}: {v}")]
    out = in_ns(NS.gw, "curl", "-s", "-w", "\n%{http_code}", "-X", "POST", *headers, "--data-binary", f"@{path}",
                f"http://127.0.0.1:{MOCK_PORT}{request['path']}").stdout
    answer, _, status = out.rpartition("\n")
    return int(status or 0), answer


def call_offered(request):
    return "x-mock-tool-call" in {k for k, _ in request["headers"]} and not tool_result(request)


def run(ctx, tools):
    for name, binary, setup, usage_of in TOOLS:
        if name in tools and name in CALLS:
            loop_tool(ctx, name, binary, setup, usage_of)
