#!/usr/bin/env python3
"""The spend page at scale: a benchmark, not a test. Books --records usage records through
the real path (POST /v1/usage, record_usage.lua) into a private Redis whose audit stream
keeps them all, spread over this month's days, --users users, 50 tenants, 20 cost
centres, 12 models and 15 client tools, with a budget per tenant and refusals; then times
--requests sequential requests each of the overview page, its JSON and a user's page, and
reports p50, p99 and max. The page reads rollups only, so the figures should not grow
with the records; the target is the overview under 200 ms with a million records.

Uses $CHOKEPOINT_BIN_DIR's chokepoint-policy (scripts/test's short form: the debug build
and 20000 records; a real figure wants `cargo build --release -p chokepoint-policy` and
CHOKEPOINT_BIN_DIR=target/release). Writes the report to
.chokepoint/test-logs/ui-bench/report.txt. Fails only when a page does not answer 200."""

import argparse
import calendar
import concurrent.futures
import datetime
import json
import random
import subprocess
import sys
import time
import urllib.request
import uuid

from stack import ADMIN_TOKEN, ROOT, Stack, now_ms

LOGS = ROOT / ".chokepoint" / "test-logs" / "ui-bench"


def records(count, users, seed=7):
    """`count` records over this month's days so far, one batch of 1000 at a time."""
    rng = random.Random(seed)
    today = datetime.datetime.now(datetime.timezone.utc)
    days = [int(calendar.timegm((today.year, today.month, d, 12, 0, 0)) * 1000)
            for d in range(1, today.day + 1)]
    ids = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(users)]
    models = [f"model-{i}" for i in range(12)]
    clients = [f"tool-{i}/1.{i}" for i in range(15)]
    batch = []
    for n in range(count):
        u = rng.randrange(users)
        tokens = rng.randrange(100, 5000)
        batch.append({
            "request_id": f"bench-{n}", "user": ids[u], "tenant": f"tenant-{u % 50}",
            "cost_center": f"cc-{u % 20}", "model": models[n % 12], "model_key": models[n % 12],
            "client": clients[u % 15], "input_tokens": tokens, "output_tokens": tokens // 8,
            "cost_micros": tokens * 3, "ts_ms": min(days[n % len(days)] + n % 1000, now_ms()),
        })
        if len(batch) == 1000:
            yield batch
            batch = []
    if batch:
        yield batch


def timed(url, requests):
    """Per-request milliseconds of `requests` sequential GETs (after one warm-up)."""
    def get():
        req = urllib.request.Request(url, headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
        with urllib.request.urlopen(req, timeout=60) as r:
            body = r.read()
            if r.status != 200:
                raise RuntimeError(f"{url}: {r.status}")
            return body
    get()
    times = []
    for _ in range(requests):
        start = time.perf_counter()
        get()
        times.append((time.perf_counter() - start) * 1000)
    return sorted(times)


def pct(times, p):
    return times[min(len(times) - 1, int(len(times) * p))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--senders", type=int, default=4, help="concurrent POST /v1/usage callers")
    args = parser.parse_args()
    LOGS.mkdir(parents=True, exist_ok=True)
    lines = []

    def say(line):
        print(line, flush=True)
        lines.append(line)

    with Stack(LOGS, audit_max_len=args.records) as stack:
        start = time.monotonic()
        booked = 0
        with concurrent.futures.ThreadPoolExecutor(args.senders) as pool:
            for answer in pool.map(stack.book, records(args.records, args.users)):
                booked += answer["accepted"]
        took = time.monotonic() - start
        say(f"booked {booked} records in {took:.1f} s ({booked / took:.0f}/s) through POST /v1/usage")
        if booked != args.records:
            raise SystemExit(f"booked {booked} of {args.records}")
        for t in range(50):
            stack.api("PUT", f"/v1/admin/limits/tenant/tenant-{t}", {"usd_micros": 10**12, "period": "month"})
        sock = next(arg for arg in stack.procs[0].args if arg.endswith(".sock"))
        info = subprocess.run(["redis-cli", "-s", sock, "info", "memory"], capture_output=True, text=True).stdout
        size = subprocess.run(["redis-cli", "-s", sock, "dbsize"], capture_output=True, text=True).stdout.strip()
        xlen = subprocess.run(["redis-cli", "-s", sock, "xlen", "ck:usage:log"], capture_output=True, text=True).stdout.strip()
        memory = next((ln.split(":")[1].strip() for ln in info.splitlines() if ln.startswith("used_memory_human")), "?")
        say(f"redis: {size} keys, audit stream {xlen} entries, {memory} used")
        top = stack.api("GET", "/v1/admin/top")["top"][0]["id"]
        say(f"{args.requests} sequential requests each, after one warm-up (ms):")
        say(f"{'endpoint':<34} {'p50':>8} {'p99':>8} {'max':>8}")
        for name, path in [("GET /ui", "/ui"), ("GET /v1/admin/overview", "/v1/admin/overview"),
                           ("GET /ui/user/<top spender>", f"/ui/user/{top}")]:
            times = timed(f"{stack.admin}{path}", args.requests)
            say(f"{name:<34} {pct(times, 0.5):8.1f} {pct(times, 0.99):8.1f} {times[-1]:8.1f}")
    (LOGS / "report.txt").write_text("\n".join(lines) + "\n")
    print(json.dumps({"report": str((LOGS / "report.txt").relative_to(ROOT))}))
    print("1 passed, 0 failed")


if __name__ == "__main__":
    sys.exit(main())
