#!/usr/bin/env python3
"""The request path's instructions per request, step by step: reads the callgrind files
of `filter/examples/request_path_profile.rs` (one per mode) through `callgrind_annotate
--inclusive=yes`, with the host calls the example printed, and writes bench/steps.json
and a Markdown table. Standard library only.

Usage: perf/steps.py OUT.json MODE:CALLGRIND_FILE:HOST_CALLS_JSON..."""

import json
import re
import subprocess
import sys

# (label, what it covers, the function whose inclusive count it is). A step's count is
# everything it calls (host calls' own native cost included, which is small: the host
# only counts).
ROWS = [
    ("request headers", "on_request_headers: strip to route-free steps, held", "chokepoint_filter::flow::Flow::on_request_headers"),
    ("  strip", "the header map read once, credentials removed, path and API told", "<chokepoint_filter::flow::steps::strip::Strip as chokepoint_filter::flow::step::Step>::run"),
    ("    header map read", "the host's header list as owned strings (the ABI's decode)", "<request_path_profile::CountingHost as chokepoint_filter::host::Host>::request_headers"),
    ("  metadata", "MCP metadata documents", "<chokepoint_filter::flow::steps::metadata::Metadata as chokepoint_filter::flow::step::Step>::run"),
    ("  screen", "encoded or non-JSON bodies refused", "<chokepoint_filter::flow::steps::screen::Screen as chokepoint_filter::flow::step::Step>::run"),
    ("  authenticate", "the token cache lookup (a keyed hash), the caller's facts", "<chokepoint_filter::flow::steps::authenticate::Authenticate as chokepoint_filter::flow::step::Step>::run"),
    ("  classify", "the endpoint's API and operation", "<chokepoint_filter::flow::steps::classify::Classify as chokepoint_filter::flow::step::Step>::run"),
    ("  await body", "whether to wait for the body", "<chokepoint_filter::flow::steps::await_body::AwaitBody as chokepoint_filter::flow::step::Step>::run"),
    ("request body", "on_request_body: the body read, scanned, the steps after", "chokepoint_filter::flow::Flow::on_request_body"),
    ("  body scan", "one pass over the body for the fields the steps read", "chokepoint_filter::providers::request_body::scan"),
    ("  route", "the model's route, provider and price", "<chokepoint_filter::flow::steps::route::Route as chokepoint_filter::flow::step::Step>::run"),
    ("  mcp policy", "MCP tool rules", "<chokepoint_filter::flow::steps::mcp_policy::McpPolicy as chokepoint_filter::flow::step::Step>::run"),
    ("  aggregate", "the aggregate MCP endpoint", "<chokepoint_filter::flow::steps::aggregate::Aggregate as chokepoint_filter::flow::step::Step>::run"),
    ("  out of sight", "requests the gateway cannot read", "<chokepoint_filter::flow::steps::out_of_sight::OutOfSight as chokepoint_filter::flow::step::Step>::run"),
    ("  guard", "the guardrails: texts found, the verdict cache, short texts scanned", "<chokepoint_filter::flow::steps::guard::Guard as chokepoint_filter::flow::step::Step>::run"),
    ("  edit", "attribution and the output cap written into the body", "<chokepoint_filter::flow::steps::edit::Edit as chokepoint_filter::flow::step::Step>::run"),
    ("  admit", "the worst case priced, a lease slot taken", "<chokepoint_filter::flow::steps::admit::Admit as chokepoint_filter::flow::step::Step>::run"),
    ("  forward", "the upstream headers written (cluster, identity)", "<chokepoint_filter::flow::steps::forward::Forward as chokepoint_filter::flow::step::Step>::run"),
    ("key injection", "the upstream filter's attempt: the provider's key set, the others removed", "request_path_profile::upstream_attempt"),
    ("response headers", "status and type read, the request id written", "chokepoint_filter::flow::count::<impl chokepoint_filter::flow::Flow>::on_response_headers"),
    ("response body", "the answer copied for accounting", "chokepoint_filter::flow::count::<impl chokepoint_filter::flow::Flow>::on_response_body"),
    ("log", "on_log: usage settled, the record written, queued, stats", "chokepoint_filter::flow::record::<impl chokepoint_filter::flow::Flow>::on_log"),
    ("  usage read", "the answer's usage parsed", "chokepoint_filter::providers::openai::chat_usage::from_body"),
    ("  record queued", "the record into the worker's outbox", "<request_path_profile::CountingHost as chokepoint_filter::host::Host>::enqueue_usage"),
]
TOTAL = "request_path_profile::measured"


def inclusive(path):
    out = subprocess.run(
        ["callgrind_annotate", "--inclusive=yes", "--threshold=100", path],
        check=True, capture_output=True, text=True).stdout
    counts = {}
    for line in out.splitlines():
        m = re.match(r"^\s*([\d,]+)\s+(?:\([^)]*\)\s+)?\S*?:(.*?)(?: \[[^\]]*\])?$", line)
        if m:
            name = m.group(2).strip()
            counts[name] = max(counts.get(name, 0), int(m.group(1).replace(",", "")))
    return counts


def main():
    out_path = sys.argv[1]
    modes = {}
    for arg in sys.argv[2:]:
        mode, cg, calls = arg.split(":", 2)
        host = json.loads(open(calls).read())
        n = host["requests"]
        counts = inclusive(cg)
        steps = {}
        for label, _, fn in ROWS:
            if fn in counts:
                steps[label.strip()] = round(counts[fn] / n)
        modes[mode] = {
            "instructions_per_request": round(counts.get(TOTAL, 0) / n),
            "steps": steps,
            "host_calls_per_request": round(host["host_calls_per_request"], 2),
            "host_calls": {k: round(v, 3) for k, v in host["host_calls"].items()},
            "callouts_per_request": host["callouts_per_request"],
            "requests": n,
        }
    doc = {"tool": "scripts/bench-steps", "unit": "native instructions per request (callgrind, inclusive)",
           "modes": modes}
    with open(out_path, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    names = list(modes)
    print("| step | what | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    print("| **whole request** | every callback | " + " | ".join(
        f"**{modes[m]['instructions_per_request']:,}**" for m in names) + " |")
    for label, what, _ in ROWS:
        key = label.strip()
        cells = [modes[m]["steps"].get(key) for m in names]
        if all(c is None or c == 0 for c in cells):
            continue
        indent = "&nbsp;" * (len(label) - len(label.lstrip()))
        print(f"| {indent}{key} | {what} | " + " | ".join(
            "" if c is None else f"{c:,}" for c in cells) + " |")
    print("| **host calls** | each about 1,300 instructions in Envoy | " + " | ".join(
        f"**{modes[m]['host_calls_per_request']:g}**" for m in names) + " |")
    kinds = sorted({k for m in names for k in modes[m]["host_calls"]})
    for k in kinds:
        print(f"| &nbsp;&nbsp;{k} | | " + " | ".join(
            f"{modes[m]['host_calls'].get(k, 0):g}" for m in names) + " |")


main()
