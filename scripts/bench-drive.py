#!/usr/bin/env python3
"""Sends N chat completions, one after another on one keep-alive connection, and exits
non-zero unless every one was answered 200. The driver of scripts/bench-instructions:
it is the count of requests, not their rate, that matters there.

Usage: bench-drive.py PORT N BEARER [stream]"""

import http.client
import json
import sys

port, n, bearer = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
stream = len(sys.argv) > 4 and sys.argv[4] == "stream"
body = {"model": "gpt-4o-mini", "max_tokens": 64,
        "messages": [{"role": "user", "content": "Benchmark me."}]}
if stream:
    body["stream"] = True
payload = json.dumps(body)
headers = {"content-type": "application/json", "authorization": f"Bearer {bearer}"}
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
statuses = {}
for _ in range(n):
    conn.request("POST", "/v1/chat/completions", body=payload, headers=headers)
    response = conn.getresponse()
    response.read()
    statuses[response.status] = statuses.get(response.status, 0) + 1
if statuses != {200: n}:
    sys.exit(f"bench-drive: answers {statuses}, wanted {n} x 200")
