"""One session of the Python `mcp` SDK's Streamable HTTP client against URL, every method
the gateway must carry: run under the venv that holds the pinned SDK (ensure_mcp).

    python_client.py URL MODE TOOL ARGS_JSON PROGRESS_TOOL PROGRESS_ARGS_JSON

MODE is the SDK's `mode`: "auto" (probe with server/discover, fall back to the initialize
handshake), "legacy" (handshake only) or a protocol revision to adopt outright. Prints one
JSON line: the negotiated protocol version and what each call returned, in counts (never
content), for tests/mcp/record.py to check the session against.
"""

import asyncio
import json
import sys

from mcp import Client
from mcp.types import Implementation


async def session(url, mode, tool, args, progress_tool, progress_args):
    summary = {"steps": []}
    progress = []

    async def on_progress(done, total, message):
        progress.append(done)

    async with Client(url, mode=mode, client_info=Implementation(name="chokepoint-record", version="1")) as c:
        summary["protocol_version"] = c.protocol_version
        tools = await c.list_tools()
        summary["steps"].append(["tools/list", len(tools.tools)])
        result = await c.call_tool(tool, args)
        summary["steps"].append(["tools/call", tool, bool(result.is_error)])
        result = await c.call_tool(progress_tool, progress_args, progress_callback=on_progress)
        summary["steps"].append(["tools/call", progress_tool, bool(result.is_error), len(progress)])
        resources = await c.list_resources()
        summary["steps"].append(["resources/list", len(resources.resources)])
        first = resources.resources[0].uri
        read = await c.read_resource(first)
        summary["steps"].append(["resources/read", str(first), len(read.contents)])
        prompts = await c.list_prompts()
        summary["steps"].append(["prompts/list", len(prompts.prompts)])
        simple = next(p for p in prompts.prompts if not p.arguments)
        got = await c.get_prompt(simple.name)
        summary["steps"].append(["prompts/get", simple.name, len(got.messages)])
    return summary


def main():
    url, mode, tool, args, progress_tool, progress_args = sys.argv[1:7]
    summary = asyncio.run(
        session(url, mode, tool, json.loads(args), progress_tool, json.loads(progress_args))
    )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
