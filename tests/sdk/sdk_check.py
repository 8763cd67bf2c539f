"""Real provider SDKs (OpenAI's, Anthropic's, Google's google-genai) against a running
chokepoint, each with the company JWT as its API key, the way a user points them at the
gateway. Every call must work as it does against the provider, every refusal must come
back as that SDK's own exception with the gateway's reason, and every answered request
must have a usage record with the tokens the SDK itself reported.

Environment: CHOKEPOINT_URL, CHOKEPOINT_TOKEN (a token of a user with room under its
limits; CHOKEPOINT_TOKEN_ANTHROPIC and _GEMINI for those SDKs' calls, optional), CHOKEPOINT_ACCESS_LOG (the usage log), and CHOKEPOINT_SPENT_TOKEN: a token of
team CHOKEPOINT_SPENT_TEAM, whose monthly budget is spent. Exit status 1 on any failure.
"""

import asyncio
import json
import os
import sys
import time

import anthropic
import openai
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

URL = os.environ["CHOKEPOINT_URL"]
TOKEN = os.environ["CHOKEPOINT_TOKEN"]
# A user per SDK family (each falls back to CHOKEPOINT_TOKEN), so the run stays under a
# per-user rate limit such as the default policy's 60 requests a minute.
ANTHROPIC_TOKEN = os.environ.get("CHOKEPOINT_TOKEN_ANTHROPIC", TOKEN)
GEMINI_TOKEN = os.environ.get("CHOKEPOINT_TOKEN_GEMINI", TOKEN)
ACCESS_LOG = os.environ["CHOKEPOINT_ACCESS_LOG"]
SPENT_TOKEN = os.environ["CHOKEPOINT_SPENT_TOKEN"]
SPENT_TEAM = os.environ["CHOKEPOINT_SPENT_TEAM"]
REQUEST_ID = "x-chokepoint-request-id"
PROMPT = [{"role": "user", "content": "Say hello"}]

oa = openai.OpenAI(base_url=URL + "/v1", api_key=TOKEN, max_retries=0)
an = anthropic.Anthropic(base_url=URL, api_key=ANTHROPIC_TOKEN, max_retries=0)
ge = genai.Client(api_key=GEMINI_TOKEN, http_options=types.HttpOptions(base_url=URL))
ge_beta = genai.Client(
    api_key=GEMINI_TOKEN, http_options=types.HttpOptions(base_url=URL, api_version="v1beta")
)

passed, failures = [], []
# (request id, provider, input tokens, output tokens) as each SDK reported them; `None`
# tokens: the SDK saw no usage (a stream that did not ask, an embedding from Gemini).
expected_records = []
# What a record must say when the SDK saw no usage: generated text is counted from the
# stream the gateway asked usage for; Gemini's embeddings are estimated from the request.
STREAMED, ESTIMATED = "streamed", "estimated"


def check(name):
    def run(f):
        try:
            f()
            passed.append(name)
            print(f"ok    {name}")
        except Exception as e:  # every failure is reported, then the next check runs
            failures.append(name)
            print(f"FAIL  {name}: {type(e).__name__}: {e}"[:800])
        return f

    return run


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


def raises(error, call):
    """The `error` the call raised (a failed check if it raised none)."""
    try:
        call()
    except error as e:
        return e
    raise AssertionError(f"no {error}")


def record(headers, provider, input_tokens, output_tokens):
    rid = headers.get(REQUEST_ID)
    expect(rid, f"no {REQUEST_ID} header")
    expected_records.append((rid, provider, input_tokens, output_tokens))


# --- OpenAI -------------------------------------------------------------------------


@check("openai: chat completion")
def _():
    raw = oa.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=PROMPT)
    r = raw.parse()
    expect(r.choices[0].message.content, "no content")
    record(raw.headers, "openai", r.usage.prompt_tokens, r.usage.completion_tokens)


@check("openai: streamed chat completion with include_usage")
def _():
    raw = oa.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=PROMPT,
        stream=True,
        stream_options={"include_usage": True},
    )
    usage, text = None, ""
    for chunk in raw.parse():
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
        usage = chunk.usage or usage
    expect(text and usage, "no text or no usage chunk")
    record(raw.headers, "openai", usage.prompt_tokens, usage.completion_tokens)


@check("openai: streamed chat completion, no usage asked (the gateway asks for it)")
def _():
    raw = oa.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=PROMPT, stream=True
    )
    chunks = list(raw.parse())
    expect(len(chunks) > 1, "one chunk or none")
    rid = raw.headers.get(REQUEST_ID)
    expect(rid, "no request id")
    expected_records.append((rid, "openai", STREAMED, None))


@check("openai: async streamed chat completion")
def _():
    async def go():
        client = openai.AsyncOpenAI(base_url=URL + "/v1", api_key=TOKEN, max_retries=0)
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", messages=PROMPT, stream=True
        )
        return [c async for c in stream]

    expect(len(asyncio.run(go())) > 1, "one chunk or none")


@check("openai: responses API")
def _():
    raw = oa.responses.with_raw_response.create(model="gpt-4.1-mini", input="Say hello")
    r = raw.parse()
    expect(r.output_text, "no output text")
    record(raw.headers, "openai", r.usage.input_tokens, r.usage.output_tokens)


@check("openai: streamed responses API")
def _():
    raw = oa.responses.with_raw_response.create(
        model="gpt-4.1-mini", input="Say hello", stream=True
    )
    events = list(raw.parse())
    done = events[-1]
    expect(done.type == "response.completed", f"last event {done.type}")
    u = done.response.usage
    record(raw.headers, "openai", u.input_tokens, u.output_tokens)


@check("openai: embeddings")
def _():
    raw = oa.embeddings.with_raw_response.create(model="text-embedding-3-small", input="hi")
    r = raw.parse()
    expect(len(r.data[0].embedding) > 0, "empty embedding")
    record(raw.headers, "openai", r.usage.prompt_tokens, 0)


@check("openai: legacy completion, plain and streamed")
def _():
    raw = oa.completions.with_raw_response.create(
        model="gpt-4o-mini", prompt="Say hello", max_tokens=5
    )
    r = raw.parse()
    expect(r.choices[0].text, "no text")
    record(raw.headers, "openai", r.usage.prompt_tokens, r.usage.completion_tokens)
    raw = oa.completions.with_raw_response.create(
        model="gpt-4o-mini", prompt="Say hello", max_tokens=5, stream=True
    )
    text = "".join(c.choices[0].text for c in raw.parse() if c.choices)
    expect(text, "no streamed text")
    expected_records.append((raw.headers.get(REQUEST_ID), "openai", STREAMED, None))


@check("azure: chat, legacy completion and embeddings through AzureOpenAI")
def _():
    az = openai.AzureOpenAI(
        azure_endpoint=URL, api_key=TOKEN, api_version="2024-10-21", max_retries=0
    )
    raw = az.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=PROMPT)
    r = raw.parse()
    expect("/openai/deployments/gpt-4o-mini/" in str(raw.http_request.url), raw.http_request.url)
    record(raw.headers, "azure", r.usage.prompt_tokens, r.usage.completion_tokens)
    raw = az.embeddings.with_raw_response.create(model="text-embedding-3-small", input="hi")
    record(raw.headers, "azure", raw.parse().usage.prompt_tokens, 0)


@check("openai: model list and one model")
def _():
    ids = [m.id for m in oa.models.list()]
    expect("gpt-4o-mini" in ids, f"gpt-4o-mini not listed: {ids}")
    expect(oa.models.retrieve("gpt-4o-mini").id == "gpt-4o-mini", "retrieve")


@check("openai: an unknown model is NotFoundError")
def _():
    e = raises(
        openai.NotFoundError,
        lambda: oa.chat.completions.create(model="no-such-model", messages=PROMPT),
    )
    expect(e.body["code"] == "model_not_found", e.body)


@check("openai: a key that is not a JWT is AuthenticationError")
def _():
    client = openai.OpenAI(base_url=URL + "/v1", api_key="sk-not-a-jwt", max_retries=0)
    e = raises(
        openai.AuthenticationError,
        lambda: client.chat.completions.create(model="gpt-4o-mini", messages=PROMPT),
    )
    expect(e.body["code"] == "malformed", e.body)


# --- Anthropic ----------------------------------------------------------------------


@check("anthropic: message")
def _():
    raw = an.messages.with_raw_response.create(
        model="claude-sonnet-4-5", max_tokens=64, messages=PROMPT
    )
    m = raw.parse()
    expect(m.content[0].text, "no text")
    record(raw.headers, "anthropic", m.usage.input_tokens, m.usage.output_tokens)


@check("anthropic: streamed message")
def _():
    with an.messages.stream(
        model="claude-sonnet-4-5", max_tokens=64, messages=PROMPT
    ) as stream:
        text = "".join(stream.text_stream)
        m = stream.get_final_message()
        headers = stream.response.headers
    expect(text, "no text")
    record(headers, "anthropic", m.usage.input_tokens, m.usage.output_tokens)


@check("anthropic: count_tokens and the beta namespace")
def _():
    n = an.messages.count_tokens(model="claude-sonnet-4-5", messages=PROMPT).input_tokens
    expect(n > 0, "no tokens counted")
    m = an.beta.messages.create(model="claude-sonnet-4-5", max_tokens=64, messages=PROMPT)
    expect(m.usage.output_tokens > 0, "no output")


@check("anthropic: model list and one model")
def _():
    expect(len(list(an.models.list())) > 0, "empty list")
    expect(an.models.retrieve("claude-sonnet-4-5").id == "claude-sonnet-4-5", "retrieve")


@check("anthropic: a key that is not a JWT is AuthenticationError in Anthropic's shape")
def _():
    client = anthropic.Anthropic(base_url=URL, api_key="not-a-jwt", max_retries=0)
    e = raises(
        anthropic.AuthenticationError,
        lambda: client.messages.create(
            model="claude-sonnet-4-5", max_tokens=8, messages=PROMPT
        ),
    )
    expect(e.body["type"] == "error", e.body)
    expect(e.body["error"]["type"] == "authentication_error", e.body)


# --- Gemini (google-genai, its default API version and v1beta) -----------------------


def gemini_checks(client, version):
    @check(f"gemini ({version}): generate content")
    def _():
        r = client.models.generate_content(model="gemini-2.5-flash", contents="Say hello")
        expect(r.text, "no text")
        u = r.usage_metadata
        record(
            r.sdk_http_response.headers,
            "gemini",
            u.prompt_token_count,
            u.candidates_token_count,
        )

    @check(f"gemini ({version}): streamed content")
    def _():
        chunks = list(
            client.models.generate_content_stream(model="gemini-2.5-flash", contents="Say hello")
        )
        expect(len(chunks) > 1, "one chunk or none")
        u = chunks[-1].usage_metadata
        record(
            chunks[-1].sdk_http_response.headers,
            "gemini",
            u.prompt_token_count,
            u.candidates_token_count,
        )

    @check(f"gemini ({version}): embeddings")
    def _():
        r = client.models.embed_content(
            model="gemini-embedding-001", contents=["What is the meaning of life?", "42"]
        )
        expect(len(r.embeddings) == 2 and r.embeddings[0].values, "no embeddings")
        rid = r.sdk_http_response.headers.get(REQUEST_ID)
        expect(rid, "no request id")
        expected_records.append((rid, "gemini", ESTIMATED, None))

    @check(f"gemini ({version}): count tokens, model list and one model")
    def _():
        n = client.models.count_tokens(model="gemini-2.5-flash", contents="Say hello")
        expect(n.total_tokens > 0, "no tokens counted")
        names = [m.name for m in client.models.list()]
        expect("models/gpt-4o-mini" in names, f"list: {names}")
        m = client.models.get(model="gemini-2.5-flash")
        expect(m.name == "models/gemini-2.5-flash", f"get: {m.name}")

    @check(f"gemini ({version}): a key that is not a JWT is ClientError 401 UNAUTHENTICATED")
    def _():
        bad = genai.Client(
            api_key="not-a-jwt",
            http_options=types.HttpOptions(base_url=URL, api_version=version),
        )
        e = raises(
            genai_errors.ClientError,
            lambda: bad.models.generate_content(model="gemini-2.5-flash", contents="hi"),
        )
        expect((e.code, e.status) == (401, "UNAUTHENTICATED"), f"{e.code} {e.status}")


gemini_checks(ge, ge._api_client._http_options.api_version)
gemini_checks(ge_beta, "v1beta")


# --- A spent budget: each SDK's rate-limit error, and no retry by the SDK -------------


def read_log():
    with open(ACCESS_LOG) as f:
        for line in f:
            try:
                yield json.loads(line)
            except ValueError:
                continue


@check("spent budget: RateLimitError / 429 in each SDK, which does not retry it")
def _():
    before = sum(1 for r in read_log() if r.get("tenant") == SPENT_TEAM)
    # The SDKs' own retry settings (2 retries each), as a user has them.
    sdk_calls = [
        lambda: openai.OpenAI(base_url=URL + "/v1", api_key=SPENT_TOKEN).chat.completions.create(
            model="gpt-4o-mini", messages=PROMPT
        ),
        lambda: anthropic.Anthropic(base_url=URL, api_key=SPENT_TOKEN).messages.create(
            model="claude-sonnet-4-5", max_tokens=64, messages=PROMPT
        ),
    ]
    for call in sdk_calls:
        e = raises((openai.RateLimitError, anthropic.RateLimitError), call)
        expect(e.response.headers.get("x-should-retry") == "false", "no x-should-retry")
        expect(int(e.response.headers["retry-after"]) > 60, "retry-after")
    # Kept in a variable: google-genai closes its HTTP client when the Client is dropped.
    spent = genai.Client(api_key=SPENT_TOKEN, http_options=types.HttpOptions(base_url=URL))
    e = raises(
        genai_errors.ClientError,
        lambda: spent.models.generate_content(model="gemini-2.5-flash", contents="hi"),
    )
    expect((e.code, e.status) == (429, "RESOURCE_EXHAUSTED"), f"{e.code} {e.status}")
    reason = e.details["error"]["details"][0]["reason"]
    expect(reason == "budget_exceeded", reason)
    time.sleep(0.5)
    refused = [r for r in read_log() if r.get("tenant") == SPENT_TEAM][before:]
    expect(len(refused) == 3, f"{len(refused)} requests reached the gateway, not 3")
    expect(all(r["decision"] == "denied" for r in refused), refused)


# --- The usage records --------------------------------------------------------------


@check("usage: one record per answered request, with the tokens the SDK reported")
def _():
    wanted = {rid: rest for rid, *rest in expected_records}
    found = {}
    deadline = time.time() + 10
    while time.time() < deadline and len(found) < len(wanted):
        found = {r["request_id"]: r for r in read_log() if r.get("request_id") in wanted}
        time.sleep(0.2)
    missing = set(wanted) - set(found)
    expect(not missing, f"no usage record for {sorted(missing)}")
    for rid, (provider, inp, out) in wanted.items():
        rec = found[rid]
        expect(rec["provider"] == provider, f"{rid}: provider {rec['provider']}")
        expect(rec["status"] == 200 and rec["completed"], f"{rid}: {rec['status']}")
        got = (rec["input_tokens"], rec["output_tokens"])
        if inp == STREAMED:
            expect(rec["output_tokens"] > 0 and not rec["estimated"], f"{rid}: {rec}")
        elif inp == ESTIMATED:
            expect(rec["estimated"] and got[0] > 0 and got[1] == 0, f"{rid}: {rec}")
        else:
            expect(got == (inp, out), f"{rid} ({provider}): recorded {got}, SDK saw {(inp, out)}")


# The summary line scripts/test counts.
print(f"{len(passed)} passed, {len(failures)} failed")
sys.exit(1 if failures else 0)
