#!/usr/bin/env python3
"""Fails when the workspace has a test target that no layer of scripts/test runs.

cargo's `--test NAME` filters name targets one by one, so a new test file (or one a layer
forgot) would silently never run: render/tests/policy_errors.rs went unrun for weeks.
`scripts/test` passes the targets its layers run, as PACKAGE:KIND:NAME (`*` for every
target of a package); this lists every library and integration-test target from
`cargo metadata` and names those left over.

Usage: test_targets.py [--skip PACKAGE:KIND:NAME=REASON ...] COVERED...
"""

import json
import subprocess
import sys


def targets():
    meta = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--no-deps", "--format-version", "1"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    for package in meta["packages"]:
        for target in package["targets"]:
            kinds = set(target["kind"])
            if "test" in kinds:
                yield package["name"], "test", target["name"]
            elif kinds & {"lib", "rlib"} and target.get("test", True):
                yield package["name"], "lib", target["name"]


def covers(spec, target):
    package, kind, name = spec.split(":")
    return package == target[0] and kind in ("*", target[1]) and name in ("*", target[2])


def main(argv):
    covered, skipped = [], {}
    args = iter(argv)
    for arg in args:
        if arg == "--skip":
            spec, _, reason = next(args).partition("=")
            skipped[spec] = reason
        else:
            covered.append(arg)
    missing = [
        t
        for t in targets()
        if not any(covers(c, t) for c in covered)
        and not any(covers(s, t) for s in skipped)
    ]
    for package, kind, name in missing:
        print(f"test target {package}:{kind}:{name} is run by no layer of scripts/test")
    if missing:
        print("add it to a layer (and to COVERED_TARGETS in scripts/test), or skip it there with a reason")
        return 1
    print(f"every test target is run by a layer ({len(skipped)} skipped with a reason)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
