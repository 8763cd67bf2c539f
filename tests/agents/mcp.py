"""An MCP tool through the gateway, from a coding agent: Claude Code connects to the stack's
MCP server (server-everything, `everything`) at the gateway's /mcp/everything, configured
as docs/mcp.md gives it (an --mcp-config file: type http, the URL, the JWT in an
Authorization header), and the mock provider's first turn calls the tool `echo` with a
random nonce (x-mock-tool-call: mcp__everything__echo; Claude Code names an MCP tool
mcp__<server>__<tool>). So the agent really sends tools/call through the gateway:
  * the tool exits 0 and its final answer quotes the echo tool's result (the nonce);
  * the gateway's records hold the MCP session: tools/call of echo answered 200, booked to
    the agent user, with the bytes of the exchange and no argument;
  * the tool reaches nothing but the gateway."""

import json
import secrets
from urllib.parse import urlsplit

from harness import GATEWAY, check, observe, reached_only, run_tool
from loop import body
from tools import TOOLS

PROMPT = "Use the echo tool of the everything MCP server and tell me what it returned."
SERVER, TOOL = "everything", "echo"


def mcp_url(ctx):
    """dev.env's CHOKEPOINT_MCP_URL, as the tools' namespace reaches the gateway."""
    return GATEWAY + urlsplit(ctx.env["CHOKEPOINT_MCP_URL"]).path


def claude_mcp(ctx, binary, setup):
    work = ctx.tmp / "work-mcp-claude"
    work.mkdir()
    nonce = f"nonce-{secrets.token_hex(8)}"
    config = work / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {SERVER: {
        "type": "http", "url": mcp_url(ctx), "headers": {"Authorization": f"Bearer {ctx.token}"}}}}, indent=2))
    call = f"mcp__{SERVER}__{TOOL} " + json.dumps({"message": nonce})
    args, env, _ = setup(ctx.tmp, ctx.token, PROMPT, {"x-mock-tool-call": call}, "-mcp")
    args += ["--mcp-config", str(config), "--strict-mcp-config", "--allowedTools", f"mcp__{SERVER}__{TOOL}"]
    # By default Claude Code offers MCP tools to the model only through its ToolSearch tool
    # (a placeholder in the tools list, the model searching first); without it the tools
    # list names mcp__everything__echo, which the mock's scripted call needs.
    env["ENABLE_TOOL_SEARCH"] = "false"
    run = observe(ctx, "claude: MCP tool call ends", lambda: run_tool(binary, args, env, work))
    if not run:
        return
    if not check(run.out.returncode == 0, f"claude: exits 0 after calling an MCP tool ({run.took:.1f} s)", run.detail()):
        return
    answer = json.loads(run.out.stdout).get("result") or ""
    offered = sorted({t.get("name", "?") for r in run.upstream for t in (body(r).get("tools") or [])})
    check(f"Echo: {nonce}" in answer, f"claude: its answer quotes the MCP tool's result ({answer!r:.90})",
          f"tools offered to the model: {offered}\n      {run.out.stdout[-2000:]}")
    mcp = [r for r in run.records if r.get("format") == "mcp"]
    calls = [r for r in mcp if r["mcp"]["method"] == "tools/call"]
    methods = sorted({r["mcp"]["method"] for r in mcp})
    print(f"      {len(mcp)} MCP record(s): {', '.join(methods)}")
    check(len(calls) == 1 and calls[0]["mcp"].get("name") == TOOL and calls[0]["status"] == 200
          and calls[0]["mcp"]["server"] == SERVER and not calls[0]["mcp"].get("rpc_error"),
          f"claude: one tools/call of {TOOL} through the gateway, answered 200",
          "\n      ".join(json.dumps({k: r.get(k) for k in ("status", "decision", "mcp")}) for r in calls or mcp))
    check(calls and calls[0].get("user") == next((r.get("user") for r in run.records if r.get("format") != "mcp"), None),
          "claude: the MCP call is booked to the same user as the model calls")
    check("initialize" in methods and "tools/list" in methods, f"claude: its MCP handshake is recorded ({methods})")
    check(not any(nonce in json.dumps(r) for r in run.records), "claude: no record holds the tool's argument")
    reached_only("claude (MCP)", run)


def run(ctx, tools):
    for name, binary, setup, _ in TOOLS:
        if name == "claude" and name in tools:
            claude_mcp(ctx, binary, setup)
