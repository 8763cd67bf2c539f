"""A secret in a tool's result stops at the gateway: each tool is asked to read a file that
holds an AWS key pair (fresh random values of the real formats), the mock provider answers
the first turn with a call to the tool's own file-reading or shell tool (as in loop.py),
and the tool sends the file back in its next turn. The gateway's policy file
(envoy/chokepoint.yaml, which scripts/run serves) blocks secrets for everyone:
  * the turn that carries the file is refused 400 with the `guardrail_blocked` error in the
    tool's own API format, and the tool shows the user that error;
  * neither value reached the provider, in any request, and neither is in the usage
    records, whose refused turn names the guardrail, its category and the block;
  * the turns before it were answered 200 and recorded as usual."""

import json
import secrets
import string

from harness import check, observe, run_tool
from loop import CALLS, PROMPT, tool_result
from tools import TOOLS

# AWS's key id alphabet after its four-letter prefix, and its secret key's (base64).
KEY_ID_ALPHABET = string.ascii_uppercase + "234567"
SECRET_ALPHABET = string.ascii_letters + string.digits + "+/"


def aws_pair():
    key_id = "AKIA" + "".join(secrets.choice(KEY_ID_ALPHABET) for _ in range(16))
    secret = "".join(secrets.choice(SECRET_ALPHABET) for _ in range(40))
    return key_id, secret


def guard_tool(ctx, name, binary, setup):
    tmp, token = ctx.tmp, ctx.token
    work = tmp / f"work-guard-{name}"
    work.mkdir()
    key_id, secret = aws_pair()
    # The file the tool reads: the loop's name, credentials as an .aws/credentials file has them.
    (work / "nonce.txt").write_text(
        f"[default]\naws_access_key_id = {key_id}\naws_secret_access_key = {secret}\n")
    call, flags = CALLS[name]
    args, tool_environment, _ = setup(tmp, token, PROMPT, {"x-mock-tool-call": call(work)}, "-guard")
    args = args[:-1] + flags + args[-1:] if name == "codex" else args + flags
    run = observe(ctx, f"{name}: guarded loop ends", lambda: run_tool(binary, args, tool_environment, work))
    if not run:
        return
    records, upstream = run.records, run.upstream
    (tmp / f"guard-{name}-requests.json").write_text(json.dumps(upstream, indent=1))
    everything = json.dumps(upstream)
    check(key_id not in everything and secret not in everything,
          f"{name}: neither value reached the provider ({len(upstream)} request(s) got there)")
    check(not any(tool_result(r) and "aws_access_key_id" in r["body"] for r in upstream),
          f"{name}: no tool result with the credentials file reached the provider")
    blocked = [r for r in records if r.get("status") == 400]
    verdicts = [v for r in blocked for v in r.get("guardrails") or []]
    check(blocked and all(v.get("action") == "block" and v.get("name") == "secrets"
                          and v.get("category") == "secret" and v.get("stage") == "request"
                          for v in verdicts) and verdicts,
          f"{name}: the turn with the tool's result was refused 400 by the `secrets` guardrail "
          f"({len(blocked)} refused of {len(records)} record(s))",
          "\n      ".join(json.dumps(r) for r in records))
    first_blocked = next((i for i, r in enumerate(records) if r.get("status") == 400), len(records))
    check(first_blocked > 0 and all(r.get("status") == 200 for r in records[:first_blocked]),
          f"{name}: the turns before it were answered 200 ({first_blocked})",
          "\n      ".join(json.dumps(r) for r in records))
    logged = json.dumps(records)
    check(key_id not in logged and secret not in logged, f"{name}: neither value is in the usage records")
    shown = run.out.stdout + run.out.stderr
    check("guardrail" in shown, f"{name}: the tool shows the user the gateway's guardrail error "
          f"(exit {run.out.returncode})", run.detail(1500))


def run(ctx, tools):
    for name, binary, setup, _ in TOOLS:
        if name in tools and name in CALLS:
            guard_tool(ctx, name, binary, setup)
