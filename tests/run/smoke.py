#!/usr/bin/env python3
"""The README's path, as a new user takes it: scripts/run, then the printed curls (a chat
completion, and MCP's initialize through the gateway), then
Ctrl-C (SIGINT), and nothing it started may outlive it. On the way: .chokepoint/dev.env
works for scripts, scripts/token's tokens and the admin CLI work against the stack, only
the gateway may book usage, the policy file's limits were applied, a saved edit of the
policy file applies live, the real provider SDKs work through the gateway
(tests/sdk/sdk_check.py), and a port already taken is named. Uses free ports, so it can
run next to a stack already on the defaults. The scripts/test run layer calls it after
building and installing what it needs (the SDKs into .venv-sdk).

Ends with "1 passed, 0 failed", or names the check that failed, prints scripts/run's
output and exits 1."""

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness import http, wait_until  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent.parent
STATE = ROOT / ".chokepoint"
LOGS = STATE / "test-logs"
DEV_ENV = STATE / "dev.env"
OUT = LOGS / "run-smoke.out"
SDK_PYTHON = ROOT / ".venv-sdk" / "bin" / "python"
PROVIDER_VARS = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_BACKUP_API_KEY", "ANTHROPIC_API_KEY",
                 "ANTHROPIC_BASE_URL", "GEMINI_API_KEY", "GEMINI_BASE_URL", "AZURE_OPENAI_API_KEY",
                 "AZURE_OPENAI_ENDPOINT")
DEV_ENV_VARS = ("CHOKEPOINT_URL", "CHOKEPOINT_ADMIN_URL", "CHOKEPOINT_POLICY_URL", "CHOKEPOINT_POLICY_ADMIN_URL",
                "CHOKEPOINT_TOKEN", "CHOKEPOINT_ADMIN_TOKEN", "CHOKEPOINT_ACCESS_LOG", "CHOKEPOINT_POLICY_CLI",
                "CHOKEPOINT_MCP_URL")


class Failed(Exception):
    pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dev_env():
    """dev.env as `set -a; source .chokepoint/dev.env` gives it to a script."""
    env = {}
    for line in DEV_ENV.read_text().splitlines():
        if "=" in line:
            key, value = line.split("=", 1)
            env[key] = " ".join(shlex.split(value))
    return env


def token(*args):
    out = subprocess.run([str(ROOT / "scripts" / "token"), *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise Failed(f"scripts/token {' '.join(args)}: {out.stderr}")
    return out.stdout.strip()


def cli(env, *args):
    """The admin CLI exactly as dev.env spells it (URL and admin token included)."""
    return subprocess.run([*shlex.split(env["CHOKEPOINT_POLICY_CLI"]), *args], capture_output=True, text=True)


def check(ok, why):
    if not ok:
        raise Failed(why)


def start(env):
    DEV_ENV.unlink(missing_ok=True)
    # Its own session, as in a terminal.
    with open(OUT, "w") as out:
        proc = subprocess.Popen([str(ROOT / "scripts" / "run")], stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def up():
        if proc.poll() is not None:
            raise Failed("scripts/run exited early")
        return DEV_ENV.exists() and DEV_ENV.stat().st_size > 0

    check(wait_until(up, 300, 0.5), "no .chokepoint/dev.env after 300 s")
    return proc


def printed_curls():
    """Each curl exactly as printed, joined from its continuation lines."""
    curls, lines = [], None
    for line in OUT.read_text().splitlines():
        if line.startswith("  curl "):
            lines = []
        if lines is not None:
            lines.append(line.removesuffix("\\"))
            if "-d " in line:
                curls.append(" ".join(lines))
                lines = None
    return curls


def printed_curl():
    """The curls as printed answer: a chat completion, and MCP's initialize through the
    gateway from the MCP reference server scripts/run started."""
    curls = printed_curls()
    check(len(curls) == 2, f"scripts/run printed {len(curls)} curls, not 2")
    for curl, want, what in ((curls[0], '"object":"chat.completion"', "a chat.completion"),
                             (curls[1], '"serverInfo"', "an MCP initialize result")):
        out = subprocess.run(["bash", "-c", curl], capture_output=True, text=True)
        check(out.returncode == 0, f"the printed curl failed: {curl}")
        check(want in out.stdout, f"the printed curl returned: {out.stdout}")
        print(f"run smoke: printed curl returned {what}")


def dev_env_and_tools():
    env = dev_env()
    for var in DEV_ENV_VARS:
        check(env.get(var), f"dev.env lacks {var}")
    # Only Envoy and the policy service hold the gateway token.
    check("CHOKEPOINT_POLICY_TOKEN" not in env, "dev.env holds the gateway token")
    tok = token("smoke-user", "--tenant", "acme", "--groups", "a,b")
    code, _ = http("GET", f"{env['CHOKEPOINT_URL']}/v1/models", tok)
    check(code == 200, f"scripts/token's token got {code}")
    check(http("GET", f"{env['CHOKEPOINT_POLICY_URL']}/healthz")[0] == 200, "policy /healthz failed")
    check(http("GET", f"{env['CHOKEPOINT_POLICY_ADMIN_URL']}/metrics")[0] == 200, "policy admin /metrics failed")
    # Only the gateway may book usage: a direct call without its token is refused.
    code, _ = http("POST", f"{env['CHOKEPOINT_POLICY_URL']}/v1/usage", body={"records": []})
    check(code == 401, f"a direct POST /v1/usage without the gateway token got {code}")
    check(cli(env, "budget", "set", "--team", "dev", "--usd", "5", "--period", "month").returncode == 0,
          "the admin CLI could not set a budget")
    check('"limit": 5000000' in cli(env, "budget", "get", "--team", "dev", "--json").stdout,
          "the admin CLI did not read the budget back")
    # Leave the developer's local stack as it was.
    cli(env, "budget", "delete", "--team", "dev")
    # The policy file's limit sets were applied at start.
    check('"rpm": 60' in cli(env, "limit", "get", "--user", "*", "--json").stdout,
          "the policy file's user:* limits are not in the policy service")
    # The access log has the printed curl's usage record.
    check('"model":"gpt-4o-mini"' in Path(env["CHOKEPOINT_ACCESS_LOG"]).read_text(),
          f"no usage record in {env['CHOKEPOINT_ACCESS_LOG']}")
    # The dev issuer's keys are where the policy file says, so the CLI validates it.
    check(subprocess.run([str(ROOT / "target" / "debug" / "chokepoint-config"), "validate",
                          str(ROOT / "envoy" / "chokepoint.yaml")], capture_output=True).returncode == 0,
          "envoy/chokepoint.yaml does not validate after scripts/run")
    check(http("GET", f"{env['CHOKEPOINT_ADMIN_URL']}/ready")[0] == 200, "envoy /ready failed")
    print("run smoke: dev.env, scripts/token and the admin CLI work; "
          "the policy service refuses callers without the gateway token")


def live_edit(policy):
    """A saved edit to the policy file applies to the running gateway."""
    env = dev_env()

    def team_model_listed():
        return '"team-model"' in http("GET", f"{env['CHOKEPOINT_URL']}/v1/models", env["CHOKEPOINT_TOKEN"])[1]

    check(not team_model_listed(), "team-model listed before the edit")
    # A dollar budget applies: the new model gets a price first, or the edit is refused.
    prices = policy.parent / "prices.yaml"
    prices.write_text(re.sub(r"(?m)^models:$",
                             'models:\n  team-model: {input_per_mtok_usd: "1", output_per_mtok_usd: "2"}',
                             prices.read_text()))
    policy.write_text(re.sub(r"(?m)^  routes:$", "  routes:\n    - model: team-model\n      providers: [openai]",
                             policy.read_text()))
    check(wait_until(team_model_listed, 10, 0.25), "the edited route never showed in /v1/models")
    check("policy version 2 applied" in OUT.read_text(), "scripts/run did not report the live edit")
    print("run smoke: a policy file edit applied live")


def provider_sdks():
    """Real provider SDKs (OpenAI's, Anthropic's, google-genai) pointed at the gateway, as
    a user points them: every call, refusal and usage record."""
    env = dev_env()
    # Users of their own each run: the stack's Redis keeps rate windows across runs.
    run_id = f"{int(time.time())}-{os.getpid()}"
    spent = "sdk-spent"
    sdk_env = {**os.environ, **env}
    sdk_env.update(CHOKEPOINT_TOKEN=token(f"sdk-user-{run_id}", "--tenant", "acme"),
                   CHOKEPOINT_TOKEN_ANTHROPIC=token(f"sdk-anthropic-{run_id}", "--tenant", "acme"),
                   CHOKEPOINT_TOKEN_GEMINI=token(f"sdk-gemini-{run_id}", "--tenant", "acme"),
                   # A team whose budget is spent before it starts: one token a month.
                   CHOKEPOINT_SPENT_TEAM=spent,
                   CHOKEPOINT_SPENT_TOKEN=token(f"sdk-spender-{run_id}", "--tenant", spent))
    check(cli(env, "budget", "set", "--team", spent, "--tokens", "1", "--period", "month").returncode == 0,
          "the admin CLI could not set the spent team's budget")
    try:
        rc = subprocess.run([str(SDK_PYTHON), "-W", "ignore::DeprecationWarning",
                             str(ROOT / "tests" / "sdk" / "sdk_check.py")], env=sdk_env).returncode
    finally:
        cli(env, "budget", "delete", "--team", spent)
    check(rc == 0, "a provider SDK check failed")


def taken_port(env):
    """A port already taken is named clearly."""
    busy = subprocess.run([str(ROOT / "target" / "debug" / "chokepoint-dev"), "--root", str(ROOT)],
                          env=dict(env, CHOKEPOINT_REDIS_PORT=str(free_port())), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True)
    said = busy.stdout + busy.stderr
    check(f"port {env['CHOKEPOINT_GATEWAY_PORT']} on 127.0.0.1 is already in use" in said,
          f"busy port not named: {said}")
    print("run smoke: a taken port is named")


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def sigint_stops_everything(proc):
    children = [int(p) for p in subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                                               text=True).stdout.split()]
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        raise Failed("scripts/run did not stop on SIGINT") from None
    for c in children:
        check(not alive(c), f"process {c} outlived scripts/run")
    check(not DEV_ENV.exists(), "dev.env left behind after stop")
    print(f"run smoke: SIGINT stopped all {len(children)} processes")


def main():
    sys.stdout.reconfigure(line_buffering=True)
    LOGS.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in PROVIDER_VARS}  # the mock providers
    for name in ("GATEWAY", "ADMIN", "POLICY", "POLICY_ADMIN", "MOCK", "REDIS", "MCP"):
        env[f"CHOKEPOINT_{name}_PORT"] = str(free_port())
    # A copy of the example policy file, so the live edit leaves the repo's alone.
    policy = LOGS / "run-smoke-policy.yaml"
    policy.write_text((ROOT / "envoy" / "chokepoint.yaml").read_text()
                      .replace("file: ../.chokepoint/dev-jwks.json", "file: ../dev-jwks.json"))
    shutil.copy(ROOT / "envoy" / "prices.yaml", LOGS / "prices.yaml")
    env["CHOKEPOINT_CONFIG"] = str(policy)

    proc = None
    try:
        proc = start(env)
        printed_curl()
        dev_env_and_tools()
        live_edit(policy)
        provider_sdks()
        taken_port(env)
        sigint_stops_everything(proc)
    except Exception as e:  # any failure: named, with scripts/run's output
        print(f"run smoke: {e!r}\n---- scripts/run output ----\n{OUT.read_text(errors='replace')}")
        return 1
    finally:
        # Whatever failed, scripts/run stops (SIGINT, as Ctrl-C would; then SIGKILL).
        if proc and proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                proc.kill()
    print("1 passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
