"""A small MCP server on the Python `mcp` SDK, for the traffic of protocol revision
2026-07-28 (server/discover, per-request `_meta`, the Mcp-Method and Mcp-Name headers),
which the reference server from npm does not speak yet. Loopback only.

    modern_server.py PORT
"""

import asyncio
import sys

from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("chokepoint-modern")


@server.tool()
def add(a: int, b: int) -> int:
    """Adds two integers."""
    return a + b


@server.tool()
async def count_slowly(steps: int, ctx: Context) -> str:
    """Counts to STEPS, a progress notification a step."""
    for i in range(1, steps + 1):
        await asyncio.sleep(0.2)
        await ctx.report_progress(i, steps)
    return f"counted to {steps}"


@server.resource("note://greeting")
def greeting() -> str:
    """A fixed note."""
    return "hello from the modern server"


@server.prompt()
def review() -> str:
    """A prompt without arguments."""
    return "Review the last change."


if __name__ == "__main__":
    server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[1]))
