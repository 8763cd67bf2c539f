"""What the Python test harnesses (tests/run/smoke.py, tests/compose/run.py) share: an HTTP
call that reports rather than raises, and waiting for a condition."""

import json
import time
import urllib.error
import urllib.request


def http(method, url, token=None, body=None, timeout=30):
    """(status, body) of one request; status 0 when nothing answered."""
    headers = {"content-type": "application/json"} if body is not None else {}
    if token:
        headers["authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except OSError as e:
        return 0, str(e)


def wait_until(ready, seconds, every=0.2):
    """True once `ready()` is, False when `seconds` pass first."""
    deadline = time.monotonic() + seconds
    while not ready():
        if time.monotonic() >= deadline:
            return False
        time.sleep(every)
    return True
