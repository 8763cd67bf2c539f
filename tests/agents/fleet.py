"""The company JWT from the token helper, per person and for a fleet:
  * the identity provider is the mock IdP (chokepoint-idp) in the gw namespace, signing
    with the key the gateway trusts, reachable from the tools' namespace at IDP (harness
    allow(): not an escape);
  * a person signs in once per machine with `chokepoint-login login` (the OAuth device
    flow: the test approves the code at the IdP as the person would at its page), then
    each tool runs with the user-level snippet docs/agents.md gives: Claude Code's
    apiKeyHelper, Codex's provider `auth` command, Gemini CLI behind `chokepoint-login exec`;
    every record is the IdP's identity (its tenant), the helper's cached token is reused
    (no second device flow, no refresh), a cached token within the helper's margin is
    refreshed once (the refresh token grant), and the provider never sees the JWT;
  * a CI robot runs Codex with the client credentials grant (a secret file);
  * for a fleet, the same settings in each tool's system-wide file (Claude Code's
    /etc/claude-code/managed-settings.json, Codex's /etc/codex/managed_config.toml, Gemini
    CLI's /etc/gemini-cli/settings.json), laid over /etc in the tool's own mount namespace,
    while the user's own file points the tool at another host with telemetry on: the
    managed file wins, the tool reaches only the gateway (and the helper the IdP), with the
    helper's token; without the managed file the same run goes to the user's host, and the
    watcher names it."""

import json
import shutil
import subprocess
import time

from harness import (AGENTS_BIN, GATEWAY, NS, allow, answered, check, in_ns, observe, reached_only, run_command,
                     tool_env, usage_matches)
from netns import BIN, stop
from tools import CODEX_OFF, PROMPT, claude_usage, codex_usage, gemini_usage

IDP_IP, IDP_PORT = "10.77.0.3", 8095
IDP = f"http://{IDP_IP}:{IDP_PORT}"
PERSON = {"subject": "fleet-person", "tenant": "fleet", "groups": ["eng"]}
ROBOT = {"client_id": "ci-robot", "client_secret": "ci-robot-secret-for-the-agents-layer", "subject": "ci-robot",
         "tenant": "ci", "groups": ["robots"]}
PUBLIC_CLIENT = "chokepoint-cli"
# Where the user's own settings try to send the tool instead (never reachable: caught).
DECOY = "http://decoy.example.com"
# How long a tool keeps the helper's token before asking again: under the helper's margin
# (120 s), so a token a tool holds is never one about to expire.
HELPER_TTL_MS = 60_000


def start_idp(tmp):
    """chokepoint-idp in the gw namespace on IDP_PORT, signing with the stack's dev key
    (the dev issuer the gateway trusts), a public client for people and a robot."""
    d = tmp / "idp"
    d.mkdir()
    (d / "clients.json").write_text(json.dumps({"clients": [{"client_id": PUBLIC_CLIENT}, ROBOT]}))
    log = open(d / "idp.log", "w")
    proc = subprocess.Popen(["ip", "netns", "exec", NS.gw, str(BIN / "chokepoint-idp"), "--listen",
                             f"127.0.0.1:{IDP_PORT}", "--signing-key", str(tmp / ".chokepoint" / "dev-key.json"),
                             "--clients", str(d / "clients.json"), "--device-interval-secs", "1",
                             "--addr-file", str(d / "addr")], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.time() + 10
    while not (d / "addr").exists():
        if time.time() > deadline or proc.poll() is not None:
            raise RuntimeError(f"chokepoint-idp did not start: {(d / 'idp.log').read_text()}")
        time.sleep(0.1)
    allow(IDP_IP, IDP_PORT)
    return proc


def idp_stats():
    out = in_ns(NS.gw, "curl", "-s", f"http://127.0.0.1:{IDP_PORT}/__idp/stats").stdout
    return json.loads(out).get("oauth", {})


def issued(grant):
    return idp_stats().get("tokens_issued", {}).get(grant, 0)


DEVICE = "urn:ietf:params:oauth:grant-type:device_code"


def helper_env(tmp, home, client_id=PUBLIC_CLIENT):
    """A tool's environment with chokepoint-login on PATH and configured as a user's
    profile would (docs/agents.md): the IdP's endpoints and the client id. http:// is for
    the mock IdP only."""
    bin_dir = tmp / "bin"
    if not (bin_dir / "chokepoint-login").exists():
        bin_dir.mkdir(exist_ok=True)
        shutil.copy(BIN / "chokepoint-login", bin_dir / "chokepoint-login")
    env = tool_env(home, {"CHOKEPOINT_LOGIN_TOKEN_URL": f"{IDP}/oauth/token",
                          "CHOKEPOINT_LOGIN_DEVICE_URL": f"{IDP}/oauth/device",
                          "CHOKEPOINT_LOGIN_CLIENT_ID": client_id, "CHOKEPOINT_LOGIN_ALLOW_HTTP": "1"})
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    return env


def device_login(name, env, home):
    """`chokepoint-login login` in the client namespace; the person approves the code it
    shows at the IdP."""
    proc = subprocess.Popen(["ip", "netns", "exec", NS.client, "chokepoint-login", "login"], env=env, cwd=home,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    shown = ""
    for line in proc.stderr:
        shown += line
        if "enter the code" in line:
            break
    code = shown.strip().rsplit(" ", 1)[-1] if "enter the code" in shown else None
    if code:
        approve = json.dumps({"user_code": code, **PERSON})
        in_ns(NS.gw, "curl", "-s", "-X", "POST", "-H", "content-type: application/json", "-d", approve,
              f"http://127.0.0.1:{IDP_PORT}/__idp/device/approve", check_rc=False)
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    check(code and proc.returncode == 0 and out == "" and f"{IDP}/device" in shown,
          f"{name}: the person signs in with the device flow (code {code}, approved at {IDP}/device)",
          f"exit {proc.returncode}\n      stdout: {out!r}\n      stderr: {shown + err}")


def cached_token(home, client_id=PUBLIC_CLIENT):
    path = home / ".cache" / "chokepoint" / f"{client_id}.json"
    mode = path.stat().st_mode & 0o777
    return json.loads(path.read_text())["access_token"], mode


# ---- each tool's settings: docs/agents.md's snippets, with the helper ---------------------

def claude_settings():
    return {"apiKeyHelper": "chokepoint-login",
            "env": {"ANTHROPIC_BASE_URL": GATEWAY, "CLAUDE_CODE_API_KEY_HELPER_TTL_MS": str(HELPER_TTL_MS),
                    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_AUTOUPDATER": "1",
                    "DISABLE_TELEMETRY": "1", "DISABLE_ERROR_REPORTING": "1", "CLAUDE_CODE_ENABLE_TELEMETRY": "0"}}


def codex_config():
    return f'''model_provider = "chokepoint"
{CODEX_OFF}
[model_providers.chokepoint]
name = "chokepoint"
base_url = "{GATEWAY}/v1"
wire_api = "responses"

[model_providers.chokepoint.auth]
command = "chokepoint-login"
refresh_interval_ms = {HELPER_TTL_MS}
'''


def gemini_settings():
    return {"security": {"auth": {"selectedType": "gemini-api-key"}},
            "privacy": {"usageStatisticsEnabled": False},
            "telemetry": {"enabled": False},
            "general": {"disableAutoUpdate": True, "disableUpdateNag": True}}


def claude(home, etc):
    """User level: ~/.claude/settings.json. Fleet: the managed settings file, and a user
    file sending the tool to another host with its own key and telemetry on."""
    (home / ".claude").mkdir(parents=True, exist_ok=True)
    user = home / ".claude" / "settings.json"
    if etc is None:
        user.write_text(json.dumps(claude_settings(), indent=2))
    else:
        (etc / "claude-code").mkdir(parents=True)
        (etc / "claude-code" / "managed-settings.json").write_text(json.dumps(claude_settings(), indent=2))
        user.write_text(json.dumps({"apiKeyHelper": "echo sk-ant-the-users-own-key", "env": {
            "ANTHROPIC_BASE_URL": DECOY, "DISABLE_TELEMETRY": "0", "CLAUDE_CODE_ENABLE_TELEMETRY": "1",
            "OTEL_METRICS_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": f"{DECOY}:4318"}}))
    return [str(AGENTS_BIN / "claude"), "-p", PROMPT, "--output-format", "json"], {}


def codex(home, etc):
    """User level: $CODEX_HOME/config.toml. Fleet: /etc/codex/managed_config.toml, and a
    user file selecting the built-in OpenAI provider at another host, analytics on."""
    (home / ".codex").mkdir(parents=True, exist_ok=True)
    user = home / ".codex" / "config.toml"
    if etc is None:
        user.write_text(codex_config())
    else:
        (etc / "codex").mkdir(parents=True)
        (etc / "codex" / "managed_config.toml").write_text(codex_config())
        user.write_text(f'''model_provider = "openai"
openai_base_url = "{DECOY}/v1"
check_for_update_on_startup = true

[analytics]
enabled = true
''')
    return ([str(AGENTS_BIN / "codex"), "exec", "--json", "--skip-git-repo-check", PROMPT],
            {"CODEX_HOME": str(home / ".codex")})


def gemini(home, etc):
    """User level: ~/.gemini/settings.json, run behind `chokepoint-login exec`. Fleet: the
    system settings file, and a user file asking for a Google login, usage statistics and
    telemetry to another host."""
    (home / ".gemini").mkdir(parents=True, exist_ok=True)
    user = home / ".gemini" / "settings.json"
    if etc is None:
        user.write_text(json.dumps(gemini_settings(), indent=2))
    else:
        (etc / "gemini-cli").mkdir(parents=True)
        (etc / "gemini-cli" / "settings.json").write_text(json.dumps(gemini_settings(), indent=2))
        user.write_text(json.dumps({"security": {"auth": {"selectedType": "oauth-personal"}},
                                    "privacy": {"usageStatisticsEnabled": True},
                                    "telemetry": {"enabled": True, "target": "local",
                                                  "otlpEndpoint": f"{DECOY}:4317"},
                                    "general": {"disableAutoUpdate": False}}))
    return (["chokepoint-login", "exec", "--env", "GEMINI_API_KEY", "--", str(AGENTS_BIN / "gemini"), "-p", PROMPT,
             "--output-format", "json"],
            {"GOOGLE_GEMINI_BASE_URL": GATEWAY, "GEMINI_CLI_TRUST_WORKSPACE": "true"})


# (name, setup, usage parser)
TOOLS = [("claude", claude, claude_usage), ("codex", codex, codex_usage), ("gemini", gemini, gemini_usage)]


def one_run(ctx, label, argv, env, home, usage_of, tenant, client_id=PUBLIC_CLIENT, etc=None):
    """Runs the tool; checks it answered with the helper's token and reached nothing else."""
    work = home / "work"
    work.mkdir(exist_ok=True)
    ran = observe(ctx, f"{label}: answers", lambda: run_command(argv, env, work, etc=etc))
    reported = ran and answered(label, ran, usage_of)
    if not reported:
        return
    answer, reported, _ = reported
    check(answer, f"{label}: answered {answer!r:.60}", ran.out.stdout[-2000:])
    records = ran.records
    check(records and all(r["status"] == 200 for r in records),
          f"{label}: {len(records)} record(s), answered", json.dumps(records)[:2000])
    usage_matches(label, records, reported)
    tenants = sorted({str(r.get("tenant")) for r in records})
    check(tenants == [tenant], f"{label}: every record is the IdP's identity (tenant {tenant})",
          f"tenants: {tenants}")
    token, mode = cached_token(home, client_id)
    upstream = ran.upstream
    check(mode == 0o600 and upstream and not any(token in v for r in upstream for _, v in r["headers"]),
          f"{label}: the helper's cache is 0600 and the provider never got its token")
    reached_only(label, ran, "the gateway and the IdP")


def run(ctx, tools):
    idp = start_idp(ctx.tmp)
    try:
        print(f"      identity provider at {IDP} (the helper's; reachable from {NS.client})")
        for name, setup, usage_of in TOOLS:
            if name not in tools:
                continue
            home = ctx.tmp / f"home-fleet-{name}"
            home.mkdir()
            env = helper_env(ctx.tmp, home)
            device_login(name, env, home)
            logins, refreshes = issued(DEVICE), issued("refresh_token")
            argv, extra = setup(home, None)
            one_run(ctx, f"{name} (user settings, helper)", argv, {**env, **extra}, home, usage_of, PERSON["tenant"])
            check((issued(DEVICE), issued("refresh_token")) == (logins, refreshes),
                  f"{name}: the tool's run reused the helper's cached token (no new sign-in, no refresh)",
                  f"stats: {idp_stats()}")
            near_expiry(home)
            etc = ctx.tmp / f"etc-fleet-{name}"
            argv, extra = setup(home, etc)
            one_run(ctx, f"{name} (managed settings over a hostile user file)", argv, {**env, **extra}, home,
                    usage_of, PERSON["tenant"], etc=etc)
            check((issued(DEVICE), issued("refresh_token")) == (logins, refreshes + 1),
                  f"{name}: a cached token within the helper's margin was refreshed once (refresh token grant)",
                  f"stats: {idp_stats()}")
            control(ctx, name, argv, {**env, **extra}, home)
            if name == "codex":
                robot(ctx, usage_of)
    finally:
        stop(idp)


def robot(ctx, usage_of):
    """Codex in CI: the client credentials grant, the secret in a file."""
    home = ctx.tmp / "home-fleet-ci"
    home.mkdir()
    secret = home / "client-secret"
    secret.write_text(ROBOT["client_secret"] + "\n")
    secret.chmod(0o600)
    env = helper_env(ctx.tmp, home, client_id=ROBOT["client_id"])
    env["CHOKEPOINT_LOGIN_CLIENT_SECRET_FILE"] = str(secret)
    before = issued("client_credentials")
    argv, extra = codex(home, None)
    one_run(ctx, "codex (CI robot, client credentials)", argv, {**env, **extra}, home, usage_of, ROBOT["tenant"],
            client_id=ROBOT["client_id"])
    check(issued("client_credentials") == before + 1, "codex (CI robot): one client credentials grant for the run",
          f"stats: {idp_stats()}")



def near_expiry(home):
    """Moves the cached token's expiry to within the helper's margin (120 s), as an hour of
    use would: the next run must refresh it."""
    path = home / ".cache" / "chokepoint" / f"{PUBLIC_CLIENT}.json"
    cached = json.loads(path.read_text())
    cached["expires_at"] = int(time.time()) + 60
    path.write_text(json.dumps(cached))


# Long enough for each tool to try the user's host; its process group is killed after.
CONTROL_SECS = 10


def control(ctx, name, argv, env, home):
    """The same run without the managed file: the user's file sends the tool to its own
    host, and the watcher names it. So the managed run's check is one that can fail."""
    seen = len(ctx.watcher.events())
    # timeout(1) signals its whole process group: the tool and anything it started.
    run_command(["timeout", "-k", "2", str(CONTROL_SECS), *argv], env, home / "work")
    time.sleep(0.5)
    hosts = sorted({e.get("name") or e.get("to") for e in ctx.watcher.events()[seen:] if e["kind"] != "ready"})
    check("decoy.example.com" in hosts,
          f"{name}: without the managed file the user's file sends it elsewhere (caught: {', '.join(hosts)})")
