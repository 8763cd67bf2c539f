#!/usr/bin/env python3
"""Fuzzes every parser that reads untrusted bytes with cargo-fuzz (libFuzzer), for a
bounded time each, and reports what each run did (scripts/fuzz, which installs cargo-fuzz
first; fuzz/README.md says what each target feeds and asserts).

  run.py [--seconds N] [--seed S] [TARGET...]   fuzz TARGETs (default: all) N s each (60),
                                                from random seed S (default: a new one)
  run.py --list                                 the targets
  run.py --write-seeds                          regenerate the seed corpus fuzz/corpus/

Stable toolchain, no sanitizer (`--sanitizer none`), debug assertions and overflow checks
on. Each run is bounded: -max_total_time, -rss_limit_mb=512 (an input that needs more is
an OOM finding), -timeout=5 (a slower input is a hang finding) and a -max_len per target.
The fuzz binaries run without a network (a private network namespace when `unshare`
allows it; none of them opens a socket anyway).

The committed seeds (fuzz/corpus/<target>/) are read, never written: what a run discovers
goes to fuzz/work/corpus/<target>/ (ignored by git) and is reused by the next run. A
crash, hang or OOM leaves its input in fuzz/artifacts/<target>/ and the commands to
reproduce and minimise it; once fixed, commit the minimised input under
fuzz/regressions/<target>/, where `cargo test` in fuzz/ replays it forever.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

FUZZ = Path(__file__).resolve().parent
ROOT = FUZZ.parent
WORK = FUZZ / "work"
RSS_LIMIT_MB = 512
TIMEOUT_SECS = 5
TARGETS = ["jwt", "jwks", "sse", "usage", "request_body", "routing", "plugin_config", "policy_file",
           "policy_requests", "policy_reply", "header_map", "mcp"]
MAX_LEN = {"routing": 2048, "policy_reply": 2048, "request_body": 8192}


def say(text):
    print(f"\033[1m==> {text}\033[0m", file=sys.stderr, flush=True)


def positive(text):
    if not re.fullmatch(r"[1-9][0-9]*", text):
        raise argparse.ArgumentTypeError("a positive integer")
    return int(text)


def no_network():
    """A private network namespace when the kernel lets an unprivileged user have one."""
    if shutil.which("unshare") and subprocess.run(["unshare", "-rn", "true"], capture_output=True).returncode == 0:
        return ["unshare", "-rn"]
    return []


def stats(log):
    """The run's figures from libFuzzer's final stats and last status line."""
    text = log.read_text(errors="replace")

    def stat(name):
        found = re.findall(rf"^stat::{name}:\s*(\S+)", text, re.M)
        return found[-1] if found else "?"

    corpus = re.findall(r"corp: (\d+/\d+[a-zA-Z]*)", text)
    return text, stat("number_of_executed_units"), stat("average_exec_per_sec"), stat("peak_rss_mb"), \
        corpus[-1] if corpus else "?"


def fuzz(target, seconds, seed, host):
    """One target's run: (passed, its summary line)."""
    corpus, artifacts = WORK / "corpus" / target, FUZZ / "artifacts" / target
    dict_, log = WORK / f"{target}.dict", WORK / "logs" / f"{target}.log"
    corpus.mkdir(parents=True, exist_ok=True)
    artifacts.mkdir(parents=True, exist_ok=True)
    dict_.write_bytes((FUZZ / "dict" / "json.dict").read_bytes() + (FUZZ / "dict" / f"{target}.dict").read_bytes())
    say(f"fuzzing {target} for {seconds}s")
    started = time.monotonic()
    with open(log, "w") as out:
        # TMPDIR: the policy_file target's scratch directory lands in fuzz/work/tmp.
        rc = subprocess.run([*no_network(), str(FUZZ / "target" / host / "release" / target), str(corpus),
                             str(FUZZ / "corpus" / target), f"-max_total_time={seconds}",
                             f"-rss_limit_mb={RSS_LIMIT_MB}", f"-timeout={TIMEOUT_SECS}",
                             f"-max_len={MAX_LEN.get(target, 16384)}", f"-dict={dict_}", "-print_final_stats=1",
                             *([f"-seed={seed}"] if seed else []), f"-artifact_prefix={artifacts}/"],
                            stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ, TMPDIR=str(WORK / "tmp"))
                            ).returncode
    text, runs, speed, rss, corp = stats(log)
    line = (f"{target:<16} {round(time.monotonic() - started):4}s  runs {runs:<10} {speed:>7} exec/s  "
            f"corpus {corp:<12} peak RSS {rss} MB")
    if rc == 0:
        return True, f"PASS {line}"
    kind = re.search(r"ERROR: libFuzzer: [a-z-]+|panicked at", text)
    kind = kind.group(0) if kind else f"exit {rc}"
    print(f"\n--- {target} failed ({kind}); log {log.relative_to(ROOT)}", file=sys.stderr)
    print("\n".join([l for l in text.splitlines() if re.search(r"panicked at|ERROR: libFuzzer|^thread", l)][:5]),
          file=sys.stderr)
    written = re.findall(r"Test unit written to (.*)$", text, re.M)
    if written:
        rel = os.path.relpath(written[-1], ROOT)
        print(f"input: {rel}\n"
              f"reproduce: cargo fuzz run --fuzz-dir fuzz --sanitizer none --debug-assertions {target} {rel}\n"
              f"minimise:  cargo fuzz tmin --fuzz-dir fuzz --sanitizer none --debug-assertions {target} {rel}\n"
              f"then commit the minimised input as fuzz/regressions/{target}/<name> (cargo test in fuzz/ "
              "replays it)", file=sys.stderr)
    return False, f"FAIL {line}  ({kind})"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                 usage=argparse.SUPPRESS, add_help=True)
    ap.add_argument("targets", nargs="*", metavar="TARGET")
    ap.add_argument("--seconds", type=positive, default=60)
    ap.add_argument("--seed", type=positive)
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--write-seeds", action="store_true")
    args = ap.parse_args(argv)
    if args.list:
        print("\n".join(TARGETS))
        return 0
    if args.write_seeds:
        subprocess.run(["cargo", "test", "-q", "--test", "seed", "--", "--ignored"], cwd=FUZZ, check=True)
        size = subprocess.run(["du", "-sh", str(FUZZ / "corpus")], capture_output=True, text=True).stdout.split()[0]
        say(f"seed corpus written under fuzz/corpus/ ({size}); review and commit it")
        return 0
    unknown = [t for t in args.targets if t not in TARGETS]
    if unknown:
        sys.exit(f"error: unknown target {unknown[0]} (scripts/fuzz --list)")

    host = re.search(r"^host: (\S+)", subprocess.run(["rustc", "-vV"], capture_output=True, text=True).stdout,
                     re.M).group(1)
    say("building the fuzz targets (release, --sanitizer none, debug assertions)")
    if subprocess.run(["cargo", "fuzz", "build", "--fuzz-dir", str(FUZZ), "--sanitizer", "none",
                       "--debug-assertions"], cwd=ROOT, stdout=sys.stderr).returncode:
        sys.exit("error: cargo fuzz build failed")
    (WORK / "logs").mkdir(parents=True, exist_ok=True)
    (WORK / "tmp").mkdir(parents=True, exist_ok=True)
    results = [fuzz(t, args.seconds, args.seed, host) for t in args.targets or TARGETS]
    shutil.rmtree(WORK / "tmp", ignore_errors=True)
    passed = sum(ok for ok, _ in results)
    print("\n" + "\n".join(line for _, line in results))
    print(f"{passed} passed, {len(results) - passed} failed")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
