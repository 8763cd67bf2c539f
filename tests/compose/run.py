#!/usr/bin/env python3
"""chokepoint on real containers: builds the runtime image, starts envoy/docker-compose.yml
(Redis, policy service, mock provider, mock IdP, Envoy with the .wasm mounted) under a
project name of its own, checks the stack, runs the smoke test against it
(tests/compose/smoke.rs), checks that Redis keeps its data across a restart, and takes it
all down again. Also checks the filter's OCI image (scripts/oci-image --check).

Starts dockerd when none answers (and stops it, and undoes its host network changes, at
the end), makes the base image local/debian:bookworm with debootstrap when missing.
Ends with "N passed, M failed"; exits non-zero on failure, after printing the
containers' logs. scripts/test-compose installs the tools first.

Usage: run.py [--keep]   (--keep: leave the stack up, print how to reach it)
"""

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from engine import BASE_IMAGE, Engine, Failed, envoy_elf, say

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness import http, wait_until  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent.parent
COMPOSE_FILE = ROOT / "envoy" / "docker-compose.yml"
RUNS_DIR = ROOT / ".chokepoint" / "compose"
WASM = ROOT / "target" / "wasm" / "chokepoint_filter.wasm"
TOKEN_BIN = ROOT / "target" / "debug" / "chokepoint-token"
RUNTIME_IMAGE = os.environ.get("CHOKEPOINT_IMAGE", "chokepoint-runtime:local")
DEBIAN_MIRROR = os.environ.get("CHOKEPOINT_DEBIAN_MIRROR", "http://deb.debian.org")
# The smoke test's rate limit: the policy service's --requests-per-window.
RATE_LIMIT = 5
# What compose reads from the run's env file: the shell's own values would win over the
# file's, so none of these may come from the environment.
ENV_FILE_VARS = ("CHOKEPOINT_WASM", "CHOKEPOINT_JWKS_FILE", "CHOKEPOINT_UUID_SALT", "CHOKEPOINT_ADMIN_TOKEN",
                 "CHOKEPOINT_POLICY_TOKEN", "CHOKEPOINT_MOCK_API_KEY", "OPENAI_API_KEY", "ANTHROPIC_API_KEY",
                 "GEMINI_API_KEY", "AZURE_OPENAI_API_KEY", "OPENAI_BACKUP_API_KEY", "CHOKEPOINT_IMAGE",
                 "CHOKEPOINT_REQUESTS_PER_WINDOW", "CHOKEPOINT_WINDOW_SECS")


class Run:
    def __init__(self, keep):
        self.keep = keep
        self.project = f"chokepoint-test-{int(time.time())}-{os.getpid()}"
        self.dir = RUNS_DIR / self.project
        self.passed = self.failed = 0
        self.smoke_rc = 0
        self.up = False
        self.start = self.phase_start = time.monotonic()
        self.timings = []
        self.engine = Engine(ROOT)

    def phase(self, name):
        now = time.monotonic()
        self.timings.append(f"{name:<22} {round(now - self.phase_start):4}s")
        self.phase_start = now

    def check(self, ok, passed, failed):
        if ok:
            self.passed += 1
            print(f"  ok    {passed}", flush=True)
        else:
            self.failed += 1
            print(f"  FAIL  {failed}", flush=True)

    def dc(self, *args, project=None, **kw):
        project = project or self.project
        return subprocess.run(["docker-compose", "-p", project, "-f", str(COMPOSE_FILE), "--env-file",
                               str(RUNS_DIR / project / "compose.env"), *args], **kw)

    def dc_out(self, *args):
        out = self.dc(*args, capture_output=True, text=True).stdout.replace("\r", "")
        return out.strip().splitlines()[-1] if out.strip() else ""

    # --- engine, images ---------------------------------------------------------------
    def prepare(self):
        self.engine.start()
        self.phase("dockerd")
        self.remove_leftovers()
        self.engine.ensure_base_image(DEBIAN_MIRROR)
        self.phase("base image")
        say("building the filter (wasm32-wasip1, release) and the binaries")
        if subprocess.run([str(ROOT / "scripts" / "build-filter")], stdout=subprocess.DEVNULL).returncode != 0:
            raise Failed("filter build failed")
        # The debug binaries the other layers build too (dependencies are optimised): a
        # smoke test needs no LTO link of its own.
        cargo(["build", "-q", "-p", "chokepoint-policy", "-p", "chokepoint-dev", "--bin", "chokepoint-policy",
               "--bin", "chokepoint-mock", "--bin", "chokepoint-idp", "--bin", "chokepoint-token"], "build failed")
        cargo(["test", "-q", "-p", "chokepoint-tests", "--test", "compose_smoke", "--no-run"],
              "the smoke test does not build")
        self.phase("cargo build")
        self.engine.build_runtime_image(ROOT, RUNTIME_IMAGE, envoy_elf(ROOT), DEBIAN_MIRROR)
        print(f"images: {BASE_IMAGE} {image_mb(BASE_IMAGE)}, {RUNTIME_IMAGE} {image_mb(RUNTIME_IMAGE)}")
        self.phase("runtime image")
        self.check_oci_image()
        self.phase("oci image")

    def remove_leftovers(self):
        """Stacks of earlier runs that were killed before their `down` (not those left up
        on purpose with --keep): their folder names the project and holds its env file."""
        for old in sorted(RUNS_DIR.glob("chokepoint-test-*")):
            owner = old.name.rsplit("-", 1)[-1]
            try:
                # Still running (a zombie's cmdline is empty): not a leftover.
                if b"compose" in Path(f"/proc/{owner}/cmdline").read_bytes():
                    continue
            except OSError:
                pass
            # A kept stack stays until its containers are gone (its `down` was run by hand).
            if (old / "kept").exists() and self.dc("ps", "-q", project=old.name, capture_output=True,
                                                   text=True).stdout.strip():
                continue
            say(f"removing the leftover stack {old.name}")
            if (old / "compose.env").exists():
                self.dc("down", "-v", "--remove-orphans", project=old.name, capture_output=True)
            shutil.rmtree(old, ignore_errors=True)

    def check_oci_image(self):
        print("OCI image of the filter:")
        log = ROOT / ".chokepoint" / "docker" / "oci-image.log"
        with open(log, "w") as out:
            ok = subprocess.run([str(ROOT / "scripts" / "oci-image"), "--wasm", str(WASM), "--out",
                                 str(ROOT / "target" / "oci" / "chokepoint-filter"), "--check"],
                                stdout=out, stderr=subprocess.STDOUT).returncode == 0
        text = log.read_text()
        if not ok:
            print(text)
        checks = sum(int(line.split()[0]) for line in text.splitlines() if line.split()[1:2] == ["passed,"])
        digest = next((line.strip() for line in text.splitlines() if line.strip().startswith("sha256: ")), "")
        self.check(ok, f"scripts/oci-image --check ({checks} checks; {digest})", "scripts/oci-image --check")

    # --- the stack --------------------------------------------------------------------
    def start_stack(self):
        self.dir.mkdir(parents=True, mode=0o700)
        # A dev signing key of this run; the idp service serves its public half.
        jwks = subprocess.run([str(TOKEN_BIN), "--key", str(self.dir / "dev-key.json"), "--jwks"],
                              capture_output=True, text=True)
        if jwks.returncode != 0:
            raise Failed("chokepoint-token could not make a dev key")
        (self.dir / "jwks.json").write_text(jwks.stdout)
        (self.dir / "jwks.json").chmod(0o644)
        mock_key = "sk-mock-" + secrets.token_hex(16)
        self.salt = secrets.token_hex(32)
        self.admin_token = "ck-admin-" + secrets.token_hex(16)
        values = [WASM, self.dir / "jwks.json", self.salt, self.admin_token, secrets.token_hex(32), *[mock_key] * 6,
                  RUNTIME_IMAGE, RATE_LIMIT, 60]
        # Mode 600: it holds the run's keys.
        env_file = self.dir / "compose.env"
        fd = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.writelines(f"{k}={v}\n" for k, v in zip(ENV_FILE_VARS, values))
        for k in ENV_FILE_VARS:
            os.environ.pop(k, None)

        say(f"docker-compose up -d (project {self.project})")
        self.up = True  # before `up`: a failed `up` is taken down too
        up = self.dc("up", "-d", "--no-build", capture_output=True, text=True)
        (self.dir / "up.log").write_text(up.stdout + up.stderr)
        if up.returncode != 0:
            print(up.stdout + up.stderr)
            raise Failed("docker-compose up failed")
        self.gateway = self.dc_out("port", "envoy", "10000")
        # The policy service's admin listener (admin API, metrics); its gateway listener is
        # not published, nor is Envoy's admin interface.
        self.policy = self.dc_out("port", "policy", "8082")
        if not self.gateway or not self.policy:
            raise Failed(f"no published ports (gateway '{self.gateway}', policy admin '{self.policy}')")
        self.phase("up")

    def check_stack(self):
        print("stack checks:")

        # Envoy's admin interface is on the container's loopback: ask from inside, as its
        # healthcheck does.
        def envoy_ready():
            return self.dc("exec", "-T", "envoy", "curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:9901/ready",
                           capture_output=True).returncode == 0

        ready = wait_until(envoy_ready, 60)
        self.check(ready, "Envoy /ready on the container's loopback", "Envoy /ready inside the envoy container")
        for service, port in (("envoy", "9901"), ("policy", "8081")):
            published = self.dc_out("port", service, port)
            self.check(not published, f"{service} {port} not published", f"{service} {port} is published on {published}")
        code = self.dc("exec", "-T", "envoy", "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
                       "http://policy:8081/v1/usage", "-H", "content-type: application/json", "-d", '{"records":[]}',
                       capture_output=True, text=True).stdout.strip()
        self.check(code == "401", "the policy service refuses POST /v1/usage without the gateway token: 401",
                   f"POST /v1/usage without the gateway token: {code}")

        # One real request through every container (the JWKS fetch may still be on its way).
        token = self.token("chokepoint-readiness-probe")
        answer = {}

        def first_request():
            answer["code"], answer["body"] = http("POST", f"http://{self.gateway}/v1/chat/completions", token,
                                                  {"model": "gpt-4o-mini",
                                                   "messages": [{"role": "user", "content": "ready?"}]}, timeout=10)
            return answer["code"] == 200

        ok = wait_until(first_request, 30, every=0.3)
        self.check(ok, f"first request through the gateway on {self.gateway}: 200",
                   f"first request: {answer.get('code')} {answer.get('body')}")
        self.phase("ready")

    def smoke_test(self):
        if self.failed:
            print("smoke test skipped: the stack is not ready")
            return
        say("smoke test (tests/compose/smoke.rs)")
        env = dict(os.environ, CHOKEPOINT_COMPOSE_GATEWAY=f"http://{self.gateway}",
                   CHOKEPOINT_COMPOSE_POLICY=f"http://{self.policy}", CHOKEPOINT_COMPOSE_ADMIN_TOKEN=self.admin_token,
                   CHOKEPOINT_COMPOSE_KEY_FILE=str(self.dir / "dev-key.json"), CHOKEPOINT_COMPOSE_UUID_SALT=self.salt,
                   CHOKEPOINT_COMPOSE_RATE_LIMIT=str(RATE_LIMIT))
        self.smoke_rc = subprocess.run(["cargo", "test", "-p", "chokepoint-tests", "--test", "compose_smoke", "--",
                                        "--ignored"], cwd=ROOT, env=env, stderr=subprocess.STDOUT).returncode
        self.phase("smoke test")

    def redis_keeps_its_data(self):
        """Redis keeps its data on the named volume across a restart of its container (the
        ledger the smoke test just wrote is in there too)."""

        def rcli(*args):
            return self.dc_out("exec", "-T", "redis", "redis-cli", *args)

        rcli("set", "chokepoint:compose-probe", self.project)
        self.dc("restart", "-t", "5", "redis", capture_output=True)
        wait_until(lambda: rcli("ping") == "PONG", 20)
        aof, probe = rcli("config", "get", "appendonly"), rcli("get", "chokepoint:compose-probe")
        self.check(aof == "yes" and probe == self.project,
                   "redis data survives a restart (appendonly yes, named volume redis-data)",
                   f"redis persistence: appendonly '{aof}', probe key after restart '{probe}'")
        self.phase("redis restart")

    def token(self, subject):
        return subprocess.run([str(TOKEN_BIN), "--key", str(self.dir / "dev-key.json"), subject],
                              capture_output=True, text=True, check=True).stdout.strip()

    def finish(self, rc):
        if self.failed or self.smoke_rc:
            rc = 1
        if self.up:
            if rc:
                print(f"===== docker-compose logs ({self.project}) =====")
                self.dc("logs", "--no-color", "--tail=150", stderr=subprocess.STDOUT)
                print("===== end of logs =====")
            if self.keep and not rc:
                (self.dir / "kept").touch()  # not a leftover for the next run to clear
                say(f"left running: project {self.project} (scripts/test-compose --keep); stop it with")
                print(f"  docker-compose -p {self.project} -f envoy/docker-compose.yml --env-file "
                      f"{self.dir.relative_to(ROOT)}/compose.env down -v")
            else:
                say("docker-compose down -v")
                if self.dc("down", "-v", "--remove-orphans", capture_output=True).returncode:
                    print("warning: docker-compose down failed", file=sys.stderr)
                shutil.rmtree(self.dir, ignore_errors=True)
                self.phase("down")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
        if not self.keep or rc:
            self.engine.stop()
        print("\ntimings:")
        for t in self.timings:
            print(f"  {t}")
        print(f"  {'total':<22} {round(time.monotonic() - self.start):4}s")
        return rc


def cargo(args, failure):
    if subprocess.run(["cargo", *args], cwd=ROOT).returncode != 0:
        raise Failed(failure)


def image_mb(image):
    size = subprocess.run(["docker", "image", "inspect", "-f", "{{.Size}}", image],
                          capture_output=True, text=True).stdout.strip()
    return f"{int(size or 0) / 1e6:.0f} MB"


def interrupted(signum, _frame):
    raise SystemExit(130)


def main(argv):
    # Lines in order with the output of the commands run here.
    sys.stdout.reconfigure(line_buffering=True)
    run = Run(keep=argv[:1] == ["--keep"])
    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)
    rc = 0
    try:
        run.prepare()
        run.start_stack()
        run.check_stack()
        run.smoke_test()
        run.redis_keeps_its_data()
        if run.keep:
            print(f"gateway  http://{run.gateway}    policy admin  http://{run.policy}\n"
                  f"envoy admin  docker-compose -p {run.project} -f envoy/docker-compose.yml exec envoy curl -s "
                  f"127.0.0.1:9901/stats\ntoken    {run.token('dev-user')}")
        print(f"\n{run.passed} passed, {run.failed} failed (compose stack checks; the smoke test's own count is above)")
    except Failed as e:
        print(f"error: {e}", file=sys.stderr)
        rc = 1
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else 1
    finally:
        rc = run.finish(rc)
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
