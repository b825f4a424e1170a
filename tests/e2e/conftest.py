"""Fixtures for the browser tests: the app on a live server, headless Chromium, one fresh page per test.

The app is the shared ``app`` fixture (every plugin, the demo company), so each browser test runs
once per engine like every other test. Chromium is the system one (``/usr/bin/chromium``, or
``YITI_CHROMIUM``); Playwright's own browser downloads are not needed.
"""
from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright
from werkzeug.serving import make_server

CHROMIUM = os.environ.get("YITI_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture
def live_server(app):
    """The app served over HTTP on a free local port; yields the base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="yiti-live-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)
    server.server_close()


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):  # like PostgreSQL: in CI a missing browser is a failure, never a skip
            pytest.fail(f"the browser tests need Chromium at {CHROMIUM} (or set YITI_CHROMIUM)")
        pytest.skip(f"no Chromium at {CHROMIUM} (set YITI_CHROMIUM)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class ConsoleLog:
    """Every console message and uncaught page error, for asserting that a page ran cleanly."""

    def __init__(self):
        self.messages = []  # (type, text, url)
        self.page_errors = []

    def on_console(self, message):
        location = message.location or {}
        self.messages.append((message.type, message.text, location.get("url", "")))

    def on_page_error(self, error):
        self.page_errors.append(str(error))

    @property
    def errors(self) -> list[str]:
        """Console errors and uncaught exceptions (the favicon's request included: it must not 404)."""
        found = [f"console.{kind}: {text} ({url})" for kind, text, url in self.messages if kind == "error"]
        return found + [f"page error: {error}" for error in self.page_errors]


@pytest.fixture
def console():
    return ConsoleLog()


@pytest.fixture
def page(browser, live_server, console):
    """A page in a fresh browser context (no cookies) whose browser prefers Chinese."""
    context = browser.new_context(base_url=live_server, locale="zh-CN", viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)  # fail fast: every step here takes well under a second
    page = context.new_page()
    page.on("console", console.on_console)
    page.on("pageerror", console.on_page_error)
    yield page
    context.close()


@pytest.fixture
def save_screenshot(request):
    """``save_screenshot(page, "home")`` writes test-artifacts/<test>-home.png; a side effect, never a check."""

    def save(page, name: str) -> None:
        try:
            ARTIFACTS.mkdir(exist_ok=True)
            safe = re.sub(r"[^\w-]+", "-", request.node.name).strip("-")
            page.screenshot(path=str(ARTIFACTS / f"{safe}-{name}.png"), full_page=True)
        except Exception as exc:  # a screenshot must never fail a test
            print(f"screenshot {name} not saved: {exc}")

    return save
