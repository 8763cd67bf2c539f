"""The three tools as docs/agents.md sets them up (each setup here is the snippet the page
gives), and what each reports it used, in the usage records' terms."""

import json

from harness import ALL_MODELS, GATEWAY, tool_env

PROMPT = "Reply with one short sentence."

def claude(tmp, token, prompt=PROMPT, headers=None, tag=""):
    """Claude Code: ANTHROPIC_BASE_URL at the gateway; the JWT from apiKeyHelper (a command
    whose output Claude Code sends as x-api-key, re-run as it expires) in the user's
    settings file; nonessential traffic (telemetry, error reports, update checks, feature
    flags) off by CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC."""
    home = tmp / f"home-claude{tag}"
    (home / ".claude").mkdir(parents=True)
    helper = home / "chokepoint-token"
    helper.write_text(f"#!/bin/sh\ncat {tmp / 'token'}\n")
    helper.chmod(0o755)
    (home / ".claude" / "settings.json").write_text(json.dumps({
        "apiKeyHelper": str(helper),
        "env": {"ANTHROPIC_BASE_URL": GATEWAY, "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
                "DISABLE_AUTOUPDATER": "1", "DISABLE_TELEMETRY": "1", "DISABLE_ERROR_REPORTING": "1"},
    }, indent=2))
    env = tool_env(home, {"ANTHROPIC_BASE_URL": GATEWAY, "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
                          "DISABLE_AUTOUPDATER": "1", "DISABLE_TELEMETRY": "1", "DISABLE_ERROR_REPORTING": "1"})
    if headers:
        # One "Name: value" a line.
        env["ANTHROPIC_CUSTOM_HEADERS"] = "\n".join(f"{k}: {v}" for k, v in headers.items())
    return ["-p", prompt, "--output-format", "json"], env, home


# What both Codex setups switch off: the update check, analytics and feedback uploads, and
# the plugin marketplaces (without them Codex fetches the curated marketplace from
# github.com / api.github.com and featured plugins from chatgpt.com at start).
CODEX_OFF = """check_for_update_on_startup = false

[analytics]
enabled = false

[feedback]
enabled = false

[features]
plugins = false
remote_plugin = false
plugin_sharing = false
"""


def codex(tmp, token, prompt=PROMPT, headers=None, tag=""):
    """Codex: a model provider of its own at the gateway, Responses API; the JWT from the
    environment variable its env_key names."""
    home = tmp / f"home-codex{tag}"
    (home / ".codex").mkdir(parents=True)
    (home / ".codex" / "config.toml").write_text(f'''model_provider = "chokepoint"
{CODEX_OFF}
[model_providers.chokepoint]
name = "chokepoint"
base_url = "{GATEWAY}/v1"
env_key = "CHOKEPOINT_TOKEN"
wire_api = "responses"
''' + (f"http_headers = {{ {', '.join(f'{json.dumps(k)} = {json.dumps(v)}' for k, v in headers.items())} }}\n"
       if headers else ""))
    env = tool_env(home, {"CODEX_HOME": str(home / ".codex"), "CHOKEPOINT_TOKEN": token})
    return ["exec", "--json", "--skip-git-repo-check", prompt], env, home


def codex_builtin(tmp, token, prompt=PROMPT, headers=None, tag=""):
    # (headers: the built-in provider takes none from the configuration; unused)
    """Codex's built-in OpenAI provider moved to the gateway (openai_base_url), the JWT as
    CODEX_API_KEY: that provider prefers a WebSocket on /v1/responses, which the gateway
    refuses, and Codex falls back to HTTP."""
    home = tmp / f"home-codex-builtin{tag}"
    (home / ".codex").mkdir(parents=True)
    (home / ".codex" / "config.toml").write_text(f'''openai_base_url = "{GATEWAY}/v1"
{CODEX_OFF}''')
    env = tool_env(home, {"CODEX_HOME": str(home / ".codex"), "CODEX_API_KEY": token})
    return ["exec", "--json", "--skip-git-repo-check", prompt], env, home


def gemini(tmp, token, prompt=PROMPT, headers=None, tag=""):
    """Gemini CLI: GOOGLE_GEMINI_BASE_URL at the gateway, the JWT as GEMINI_API_KEY, API-key
    auth selected in the user's settings file with usage statistics, telemetry and update
    checks off."""
    home = tmp / f"home-gemini{tag}"
    (home / ".gemini").mkdir(parents=True)
    (home / ".gemini" / "settings.json").write_text(json.dumps({
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        "privacy": {"usageStatisticsEnabled": False},
        "telemetry": {"enabled": False},
        "general": {"disableAutoUpdate": True, "disableUpdateNag": True},
    }, indent=2))
    env = tool_env(home, {"GOOGLE_GEMINI_BASE_URL": GATEWAY, "GEMINI_API_KEY": token,
                          "GEMINI_CLI_TRUST_WORKSPACE": "true"})
    if headers:
        # "Name: value" pairs, comma-separated (a value may not hold ", x:").
        env["GEMINI_CLI_CUSTOM_HEADERS"] = ", ".join(f"{k}: {v}" for k, v in headers.items())
    return ["-p", prompt, "--output-format", "json"], env, home


# ---- what each tool reports it used, in the records' terms ---------------------------------

def claude_usage(stdout):
    """--output-format json: one result object; modelUsage per model, total_cost_usd.
    Claude Code's inputTokens is Anthropic's input_tokens, the part after the last cache
    breakpoint; the records' input_tokens is the whole prompt, cache reads and writes
    included."""
    out = json.loads(stdout)
    usage = {m: {"input_tokens": u["inputTokens"] + u["cacheReadInputTokens"] + u["cacheCreationInputTokens"],
                 "output_tokens": u["outputTokens"],
                 "cached_input_tokens": u["cacheReadInputTokens"],
                 "cache_creation_input_tokens": u["cacheCreationInputTokens"]}
             for m, u in out["modelUsage"].items()}
    return out.get("result"), usage, out["total_cost_usd"]


def codex_usage(stdout):
    """--json: one event per line; the turn.completed events carry the usage, for every
    model the turn used (ALL_MODELS)."""
    events = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    answer = " ".join(e["item"].get("text", "") for e in events
                      if e.get("type") == "item.completed" and e["item"].get("type") == "agent_message")
    # Codex's usage field -> the record's
    names = {"input_tokens": "input_tokens", "output_tokens": "output_tokens",
             "cached_input_tokens": "cached_input_tokens", "reasoning_output_tokens": "reasoning_tokens",
             "cache_write_input_tokens": "cache_creation_input_tokens"}
    total = dict.fromkeys(names.values(), 0)
    for e in events:
        if e.get("type") == "turn.completed":
            for theirs, ours in names.items():
                total[ours] += e["usage"].get(theirs, 0)
    return answer, {ALL_MODELS: total}, None


def gemini_usage(stdout):
    """--output-format json: the answer and stats.models.<model>.tokens."""
    out = json.loads(stdout)
    usage = {m: {"input_tokens": s["tokens"]["prompt"], "output_tokens": s["tokens"]["candidates"],
                 "cached_input_tokens": s["tokens"].get("cached", 0), "reasoning_tokens": s["tokens"].get("thoughts", 0)}
             for m, s in out["stats"]["models"].items()}
    return out.get("response"), usage, None


# (name, binary, setup, usage parser); each setup(tmp, token, prompt, headers, tag) gives the
# tool's arguments, environment and fresh HOME (tmp/home-<name><tag>), the tool sending
# `headers` (the mock provider's x-mock-* controls) with every request.
TOOLS = [("claude", "claude", claude, claude_usage), ("codex", "codex", codex, codex_usage),
         ("codex-builtin", "codex", codex_builtin, codex_usage), ("gemini", "gemini", gemini, gemini_usage)]


