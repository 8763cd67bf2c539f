#!/usr/bin/env python3
"""The spend page in a real browser: Debian's chromium, headless, driven by Playwright
(pinned in .venv-ui; scripts/lib.sh ensure_ui_browser), against the real policy service
and Redis with usage booked through POST /v1/usage over the month's days, budgets set
through the admin API and refusals made through /v1/authorize.

Checks: the page sends a browser without a session to the login form; the form takes
the admin token and the session cookie (HttpOnly, SameSite=Strict, not the token) opens
the page; the DOM holds the figures GET /v1/admin/overview answers (spend by model and by
client tool, the top spender, a budget's remaining, a 429 count); a client-chosen tenant
name shows as text and runs nothing; the charts were drawn (uPlot under the page's CSP,
with no console error); the top spender's link opens their page with the figures of
GET /v1/admin/overview/user; logging out ends the session. Screenshots of each page go to
.chokepoint/test-logs/ui/ (CI keeps them); --docs-screenshot PATH also writes the
overview there (the README's picture, whose third tenant is named as a customer would
name it rather than as a hostile client would).

Run by `scripts/test ui`; ends with "1 passed, 0 failed", or names the check that failed
and exits 1."""

import argparse
import calendar
import datetime
import os
import shutil
import sys
import traceback
import uuid
from pathlib import Path

from playwright.sync_api import sync_playwright

from stack import ADMIN_TOKEN, ROOT, Stack, now_ms

LOGS = ROOT / ".chokepoint" / "test-logs" / "ui"
CHROMIUM = os.environ.get("CHOKEPOINT_CHROMIUM", "/usr/bin/chromium")
HOSTILE = '<img src=x onerror="document.title=\'pwned\'">'


class Failed(Exception):
    pass


def check(ok, why):
    if not ok:
        raise Failed(why)


def usd(micros):
    """display::format_usd: `$4.00`, `$0.700005`."""
    dollars, fraction = divmod(micros, 1_000_000)
    if fraction % 10_000 == 0:
        return f"${dollars}.{fraction // 10_000:02d}"
    return f"${dollars}." + f"{fraction:06d}".rstrip("0")


def book_month(stack, third_tenant):
    """A month so far of usage: five users over three tenants, three models and four
    client tools, one record per user and model a day."""
    today = datetime.datetime.now(datetime.timezone.utc)
    users = [str(uuid.UUID(int=0x0190A6F27C1E8B3A9F00 << 48 | i)) for i in range(1, 6)]
    tenants = ["research", "platform", third_tenant]
    models = [("claude-sonnet-4-5", 9), ("gpt-4o", 5), ("gemini-2.5-pro", 3)]
    clients = ["claude-code/2.1.332", "codex/0.171.0", "gemini-cli/0.61.0", "OpenAI/Python 3.57.0"]
    records = []
    for day in range(1, today.day + 1):
        ts = int(calendar.timegm((today.year, today.month, day, 12, 0, 0)) * 1000)
        for u, user in enumerate(users):
            for m, (model, price) in enumerate(models):
                tokens = 1000 * (u + 1) + 100 * day
                records.append({
                    "request_id": f"ui-{day}-{u}-{m}", "user": user, "tenant": tenants[u % 3],
                    "cost_center": f"cc-{u % 2 + 1}", "model": model, "model_key": model,
                    "client": clients[(u + m) % 4].split(" ")[0],
                    "input_tokens": tokens, "output_tokens": tokens // 10,
                    "cost_micros": tokens * price * (u + 1), "ts_ms": min(ts, now_ms()),
                })
    for start in range(0, len(records), 500):
        stack.book(records[start:start + 500])
    return users, tenants


def set_limits_and_refuse(stack, users, tenants):
    stack.api("PUT", "/v1/admin/limits/tenant/research", {"usd_micros": 4_000_000, "period": "month"})
    stack.api("PUT", "/v1/admin/limits/tenant/platform", {"usd_micros": 6_000_000, "period": "month"})
    stack.api("PUT", "/v1/admin/limits/user/*", {"tokens": 5_000_000, "period": "day"})
    stack.api("PUT", f"/v1/admin/limits/user/{users[4]}", {"rpm": 2})
    refused = 0
    for i in range(5):
        answer = stack.authorize({"request_id": f"ui-auth-{i}", "user": users[4], "tenant": tenants[1],
                                  "model": "gpt-4o", "reserve_tokens": 100, "reserve_cost_micros": 500})
        refused += answer["allow"] is False
    check(refused == 3, f"3 of 5 requests refused by user:rpm 2, got {refused}")


def cell(page, selector):
    """(data-value, text) of the first element `selector` finds."""
    loc = page.locator(selector).first
    check(loc.count() == 1, f"no {selector} on {page.url}")
    return loc.get_attribute("data-value"), loc.inner_text().strip()


def run(stack, browser, docs_screenshot):
    # The README's picture names a tenant as a customer would; the test names one as a
    # hostile client would.
    hostile = docs_screenshot is None
    users, tenants = book_month(stack, HOSTILE if hostile else "support")
    set_limits_and_refuse(stack, users, tenants)
    overview = stack.api("GET", "/v1/admin/overview")

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    problems = []

    def console(message):
        url = message.location.get("url", "")
        # Expected: the browser's own favicon request, and the wrong token's 401 below.
        expected = url.endswith("/favicon.ico") or (url.endswith("/ui/login") and "401" in message.text)
        if message.type == "error" and not expected:
            problems.append(f"console: {message.text} ({url})")

    page.on("console", console)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))

    page.goto(f"{stack.admin}/ui")
    check(page.url.endswith("/ui/login"), f"no session: sent to the login form, got {page.url}")
    page.screenshot(path=str(LOGS / "login.png"))
    page.fill("input[name=token]", "not-the-token")
    page.click("button[type=submit]")
    check("neither the admin token" in page.inner_text("#error"), "a wrong token is refused")
    page.fill("input[name=token]", ADMIN_TOKEN)
    page.click("button[type=submit]")
    check(page.url.endswith("/ui"), f"logged in: the overview, got {page.url}")
    cookies = context.cookies()
    check(len(cookies) == 1, f"one session cookie: {cookies}")
    cookie = cookies[0]
    check(cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/ui",
          f"the cookie is locked down: {cookie}")
    check(ADMIN_TOKEN not in cookie["value"], "the cookie is not the admin token")

    # Figures: each one the API's.
    for row in overview["by_model"]:
        value, text = cell(page, f'#by-model tr[data-id="{row["id"]}"] td.num')
        check((value, text) == (str(row["cost_micros"]), usd(row["cost_micros"])),
              f"model {row['id']}: page {value} {text}, API {row['cost_micros']}")
    for row in overview["by_client"]:
        value, _ = cell(page, f'#by-client tr[data-id="{row["id"]}"] td.num')
        check(value == str(row["cost_micros"]), f"client {row['id']}: page {value}, API {row}")
    check(len(overview["by_client"]) == 4 and "claude-code" in [r["id"] for r in overview["by_client"]],
          f"four client tools without versions: {overview['by_client']}")
    top = overview["top_users"][0]
    first = page.locator("#top-users tbody tr").first
    check(first.get_attribute("data-id") == top["id"], f"top spender: page {first.get_attribute('data-id')}, API {top['id']}")
    value, _ = cell(page, f'#top-users tr[data-id="{top["id"]}"] td.num[data-value]')
    check(value == str(top["cost_micros"]), f"top spender's cost: page {value}, API {top['cost_micros']}")
    budget = next(b for b in overview["budgets"] if b["scope_kind"] == "tenant" and b["id"] == "research")
    remaining = page.locator('#budgets tr[data-scope="tenant:research"] td.num').nth(3)
    check(remaining.get_attribute("data-value") == str(budget["remaining"]),
          f"research's remaining: page {remaining.get_attribute('data-value')}, API {budget['remaining']}")
    refusals = {r["limit"]: r["count"] for r in overview["refusals"]}
    value, _ = cell(page, '#refusals tr[data-id="user:rpm"] td.num')
    check(refusals.get("user:rpm") == 3 and value == "3", f"429s by user:rpm: page {value}, API {refusals}")
    # A client's name is text, not markup.
    if hostile:
        check(page.locator("#by-tenant td.id", has_text="<img src=x").count() == 1,
              "the hostile tenant shows as text")
        check(page.title() != "pwned", "the hostile tenant ran")
    # The charts: uPlot drew them (its script loaded under the CSP).
    page.wait_for_selector("#chart-by-model canvas", timeout=5000)
    check(page.locator(".chart canvas").count() >= 6, "every chart drawn")
    page.screenshot(path=str(LOGS / "overview.png"), full_page=True)
    if docs_screenshot:
        page.screenshot(path=str(docs_screenshot), full_page=True)

    # The top spender's page.
    page.click(f'#top-users a[href^="/ui/user/{top["id"]}"]')
    mine = stack.api("GET", f"/v1/admin/overview/user?id={top['id']}")
    value, text = cell(page, "#usage td.num")
    cost = mine["usage"]["cost_micros"]
    check((value, text) == (str(cost), usd(cost)), f"user page cost: page {value} {text}, API {cost}")
    check(page.locator("#limits").inner_text().count("user:tokens:day") == 1, "their day budget listed")
    page.wait_for_selector("#chart-user canvas", timeout=5000)
    page.screenshot(path=str(LOGS / "user.png"), full_page=True)

    # Logging out ends it.
    page.click("text=Log out")
    check(page.url.endswith("/ui/login"), f"logged out: {page.url}")
    page.goto(f"{stack.admin}/ui/user/{users[0]}")
    check(page.url.endswith("/ui/login"), f"no session after logout: {page.url}")
    check(not problems, f"the browser reported: {problems}")
    context.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs-screenshot", type=Path, help="also write the overview's screenshot here")
    args = parser.parse_args()
    shutil.rmtree(LOGS, ignore_errors=True)
    LOGS.mkdir(parents=True)
    try:
        with Stack(LOGS) as stack, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
            try:
                run(stack, browser, args.docs_screenshot)
            finally:
                browser.close()
    except Exception as e:  # noqa: BLE001 - any failure is the test's, with its log
        traceback.print_exc()
        log = LOGS / "policy.log"
        if log.exists():
            print(f"--- {log} (last 40 lines)")
            print("\n".join(log.read_text().splitlines()[-40:]))
        print(f"FAILED: {e}")
        print("0 passed, 1 failed")
        sys.exit(1)
    print(f"screenshots in {LOGS.relative_to(ROOT)}")
    print("1 passed, 0 failed")


if __name__ == "__main__":
    main()
