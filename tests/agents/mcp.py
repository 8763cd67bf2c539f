"""An MCP tool through the gateway, from a coding agent: each tool connects to the stack's
MCP server (server-everything, `everything`) at the gateway's /mcp/everything, configured
as docs/mcp.md gives it (the URL and the JWT in an Authorization header, in the tool's own
MCP settings), and the mock provider's first turn calls the server's `echo` tool with a
random nonce (x-mock-tool-call, under the name the tool gives MCP tools: Claude Code's
mcp__<server>__<tool>, Gemini CLI's mcp_<server>_<tool>, Codex's nested tool of its exec
tool). So the agent really sends tools/call through the gateway:
  * it connects through the gateway (initialize and tools/list recorded, answered 200) and
    reaches nothing but the gateway;
  * it exits 0 and its final answer quotes the echo tool's result (the nonce);
  * the gateway's records hold one tools/call of echo answered 200, booked to the agent's
    user, and no record holds the argument."""

import json
import secrets
from urllib.parse import urlsplit

from harness import GATEWAY, answered, check, observe, reached_only, run_tool
from loop import body
from tools import TOOLS

PROMPT = "Use the echo tool of the everything MCP server and tell me what it returned."
SERVER, TOOL = "everything", "echo"


def mcp_url(ctx):
    """dev.env's CHOKEPOINT_MCP_URL, as the tools' namespace reaches the gateway."""
    return GATEWAY + urlsplit(ctx.env["CHOKEPOINT_MCP_URL"]).path


def claude(ctx, work, home, env, args):
    """An --mcp-config file (a project's .mcp.json has the same shape), the server only."""
    config = work / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {SERVER: {
        "type": "http", "url": mcp_url(ctx), "headers": {"Authorization": f"Bearer {ctx.token}"}}}}, indent=2))
    # By default Claude Code offers MCP tools to the model only through its ToolSearch tool
    # (a placeholder in the tools list, the model searching first); without it the tools
    # list names mcp__everything__echo, which the mock's scripted call needs.
    env["ENABLE_TOOL_SEARCH"] = "false"
    return args + ["--mcp-config", str(config), "--strict-mcp-config", "--allowedTools", f"mcp__{SERVER}__{TOOL}"]


def codex(ctx, work, home, env, args):
    """[mcp_servers.<name>] in config.toml: url and http_headers."""
    with open(home / ".codex" / "config.toml", "a") as f:
        f.write(f'''
[mcp_servers.{SERVER}]
url = "{mcp_url(ctx)}"
http_headers = {{ Authorization = "Bearer {ctx.token}" }}
''')
    return args


def gemini(ctx, work, home, env, args):
    """mcpServers in settings.json: httpUrl and headers; trusted, so that its tools run
    without a confirmation a headless run cannot give."""
    path = home / ".gemini" / "settings.json"
    settings = json.loads(path.read_text())
    settings["mcpServers"] = {SERVER: {"httpUrl": mcp_url(ctx), "headers": {"Authorization": f"Bearer {ctx.token}"},
                                       "trust": True}}
    path.write_text(json.dumps(settings, indent=2))
    return args


# Each tool's MCP settings, and the model's call of the server's echo tool in that tool's
# terms (x-mock-tool-call: <tool> <arguments>). Codex 0.171 offers an MCP server to the
# model as a deferred namespace (`Deferred tool namespaces: mcp__everything`), whose tools
# its single `exec` tool (JavaScript) calls as nested tools.
SETUPS = {
    "claude": (claude, lambda nonce: f"mcp__{SERVER}__{TOOL} " + json.dumps({"message": nonce})),
    "codex": (codex, lambda nonce: f"exec const r = await tools.mcp__{SERVER}__{TOOL}"
                                   f"({{message: {json.dumps(nonce)}}}); text(JSON.stringify(r));"),
    "gemini": (gemini, lambda nonce: f"mcp_{SERVER}_{TOOL} " + json.dumps({"message": nonce})),
}


def offered(request):
    """The names of the tools a model request offers, in any provider's format."""
    found, stack = [], [body(request).get("tools") or []]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            if isinstance(v.get("name"), str):
                found.append(v["name"])
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return found


def mcp_tool(ctx, name, binary, setup, usage_of):
    configure, call = SETUPS[name]
    work = ctx.tmp / f"work-mcp-{name}"
    work.mkdir()
    nonce = f"nonce-{secrets.token_hex(8)}"
    args, env, home = setup(ctx.tmp, ctx.token, PROMPT, {"x-mock-tool-call": call(nonce)}, "-mcp")
    args = configure(ctx, work, home, env, args)
    run = observe(ctx, f"{name}: MCP tool call ends", lambda: run_tool(binary, args, env, work))
    if not run:
        return
    # What the provider got, whole, for a look when a check fails (CHOKEPOINT_KEEP_TMP=1).
    (ctx.tmp / f"mcp-{name}-requests.json").write_text(json.dumps(run.upstream, indent=1))
    reported = answered(f"{name} (MCP)", run, usage_of)
    if not reported:
        return
    answer = reported[0] or ""
    mcp = [r for r in run.records if r.get("format") == "mcp"]
    methods = sorted({r["mcp"]["method"] for r in mcp})
    print(f"      {len(mcp)} MCP record(s): {', '.join(methods)}")
    listed = [r for r in mcp if r["mcp"]["method"] == "tools/list"]
    check("initialize" in methods and listed and all(r["status"] == 200 for r in listed),
          f"{name}: connects to the MCP server through the gateway (initialize, tools/list answered 200)",
          "\n      ".join(json.dumps({k: r.get(k) for k in ("status", "decision", "mcp")}) for r in mcp))
    reached_only(f"{name} (MCP)", run)
    tools = sorted({t for r in run.upstream for t in offered(r)})
    check(f"Echo: {nonce}" in answer, f"{name}: its answer quotes the MCP tool's result ({answer!r:.90})",
          f"tools offered to the model: {tools}\n      {run.out.stdout[-1500:]}\n      {run.out.stderr[-1500:]}")
    calls = [r for r in mcp if r["mcp"]["method"] == "tools/call"]
    check(len(calls) == 1 and calls[0]["mcp"].get("name") == TOOL and calls[0]["status"] == 200
          and calls[0]["mcp"]["server"] == SERVER and not calls[0]["mcp"].get("rpc_error"),
          f"{name}: one tools/call of {TOOL} through the gateway, answered 200",
          "\n      ".join(json.dumps({k: r.get(k) for k in ("status", "decision", "mcp")}) for r in calls or mcp))
    model_users = {r.get("user") for r in run.records if r.get("format") != "mcp"}
    check(calls and model_users == {calls[0].get("user")},
          f"{name}: the MCP call is booked to the same user as the model calls")
    check(not any(nonce in json.dumps(r) for r in run.records), f"{name}: no record holds the tool's argument")


def run(ctx, tools):
    for name, binary, setup, usage_of in TOOLS:
        if name in tools and name in SETUPS:
            mcp_tool(ctx, name, binary, setup, usage_of)
