"""One session of the Python `mcp` SDK's Streamable HTTP client, making the calls of a
plan and printing what each returned, for tests/mcp/run.py to compare (through the
gateway and straight to the server). Run under the venv that holds the pinned SDK.

    sdk_calls.py URL PLAN_JSON [TOKEN]

PLAN_JSON is a list of steps, each `[op, *args]`:
  ["tools/list"], ["tools/call", NAME, ARGS], ["progress", NAME, ARGS],
  ["resources/list"], ["resources/read", URI], ["prompts/list"], ["prompts/get", NAME, ARGS]
TOKEN, when given, goes in `Authorization: Bearer`. Prints one JSON object: the negotiated
protocol version and, per step, its result (as the SDK dumps it, by alias) or the JSON-RPC
error it raised; a progress step adds the seconds from the call to each progress
notification and to the result.
"""

import asyncio
import json
import sys
import time

from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.types import Implementation


def dump(result):
    return result.model_dump(mode="json", by_alias=True, exclude_none=True)


def error_of(e):
    """The JSON-RPC error an SDK exception carries, or its text."""
    err = getattr(e, "error", None)
    if err is not None and hasattr(err, "code"):
        return {"code": err.code, "message": err.message, "data": getattr(err, "data", None)}
    return {"code": None, "message": f"{type(e).__name__}: {e}"}


async def step(c, op, args):
    if op == "tools/list":
        return dump(await c.list_tools())
    if op == "tools/call":
        return dump(await c.call_tool(args[0], args[1]))
    if op == "progress":
        start, seen = time.monotonic(), []

        async def on_progress(done, total, message):
            seen.append(round(time.monotonic() - start, 3))

        result = dump(await c.call_tool(args[0], args[1], progress_callback=on_progress))
        return {"result": result, "progress_s": seen, "result_s": round(time.monotonic() - start, 3)}
    if op == "resources/list":
        return dump(await c.list_resources())
    if op == "resources/read":
        return dump(await c.read_resource(args[0]))
    if op == "prompts/list":
        return dump(await c.list_prompts())
    if op == "prompts/get":
        return dump(await c.get_prompt(args[0], args[1] if len(args) > 1 else None))
    raise ValueError(f"unknown step {op}")


async def session(url, plan, token):
    headers = {"authorization": f"Bearer {token}"} if token else None
    transport = streamable_http_client(url, http_client=create_mcp_http_client(headers=headers))
    out = {"steps": []}
    async with Client(transport, client_info=Implementation(name="chokepoint-mcp-test", version="1")) as c:
        out["protocol_version"] = c.protocol_version
        for op, *args in plan:
            try:
                out["steps"].append({"op": op, "ok": await step(c, op, args)})
            except Exception as e:  # a JSON-RPC error is an answer to compare, not a crash
                out["steps"].append({"op": op, "error": error_of(e)})
    return out


def main():
    url, plan = sys.argv[1], json.loads(sys.argv[2])
    token = sys.argv[3] if len(sys.argv) > 3 else None
    print(json.dumps(asyncio.run(session(url, plan, token))))


if __name__ == "__main__":
    main()
