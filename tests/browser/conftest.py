"""Headless Chromium (Debian's `/usr/bin/chromium`, installed by `make browser`) driven by Playwright.

Playwright's own browser download is never used: the system Chromium is launched by path. Every page records
console errors and uncaught exceptions, and a test fails if the dashboard raised any. Screenshots go to
`test-artifacts/browser/` (gitignored), which CI keeps as artifacts.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Page

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
LAPTOP = {"width": 1280, "height": 860}


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found: run `make browser` (apt-get install chromium chromium-driver)")
    playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the dev extra")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    return ARTIFACTS


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh tab (own session storage) at laptop width; fails the test on any JavaScript error."""
    context = browser.new_context(viewport=LAPTOP, accept_downloads=True)
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        # An API answering 4xx is logged by the browser as a failed load; the page shows those itself.
        if message.type == "error" and "/v1/" not in message.location.get("url", ""):
            problems.append(message.text)

    tab.on("pageerror", lambda error: problems.append(f"uncaught: {error}"))
    tab.on("console", on_console)
    yield tab
    context.close()
    assert not problems, f"JavaScript errors on the dashboard: {problems}"
