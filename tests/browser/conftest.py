"""The browser tier: Playwright (from PyPI) driving Debian's chromium against the `stack`
fixture's store and real worker, behind a real HTTP server.

Playwright's own browser downloads are never used: the session installs Debian's `chromium`
with apt-get when /usr/bin/chromium is missing (CI runs as root), and fails saying so if apt
cannot. Every test's page collects console errors and uncaught exceptions, and fails on any
it did not expect. `shoot` saves a screenshot at 1280 px and at 390 px into the test's tmp
folder and into /tmp/ui-shots/."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from tests.support import free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SHOTS = Path("/tmp/ui-shots")
WIDE, NARROW = {"width": 1280, "height": 900}, {"width": 390, "height": 844}


def install_chromium() -> None:
    if CHROMIUM.exists():
        return
    if shutil.which("apt-get") is None:
        pytest.fail(f"{CHROMIUM} is missing and there is no apt-get: install Debian's chromium")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    steps = (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "chromium"])
    for command in steps:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            pytest.fail(
                f"cannot install chromium ({' '.join(command)} exited {done.returncode}; "
                f"run it as root): {done.stderr[-2000:]}"
            )
    if not CHROMIUM.exists():
        pytest.fail(f"apt-get installed chromium but {CHROMIUM} is still missing")


@pytest.fixture(scope="session")
def browser():
    install_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def live_url(stack):
    """The stack's API (and so its web UI) behind a real HTTP server."""
    from api.app import create_app

    server = make_server("127.0.0.1", free_port(), create_app(stack.settings), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


@dataclass
class Tab:
    """A browser page of a fresh context (its own cookies), with what went wrong in it."""

    page: object
    base: str
    shots: Path
    errors: list[str] = field(default_factory=list)
    # Console messages a test provokes on purpose (e.g. the 403 of a CSRF-less call).
    expected: list[str] = field(default_factory=list)

    def go(self, path: str) -> None:
        self.page.goto(self.base + path)

    def sign_in(self, token: str) -> None:
        self.go("/")
        self.page.get_by_label("Token").fill(token)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.wait_for_url(f"{self.base}/jobs")

    def shoot(self, name: str) -> None:
        """Screenshots of the page as it is, wide and narrow, each width checked to fit."""
        SHOTS.mkdir(exist_ok=True)
        for label, size in (("1280", WIDE), ("390", NARROW)):
            self.page.set_viewport_size(size)
            # Readable at that width: the page itself never scrolls sideways (wide tables
            # scroll inside their own box).
            width = self.page.evaluate("document.documentElement.scrollWidth")
            assert width <= size["width"], f"{name} is {width} px wide at {label} px"
            target = self.shots / f"{name}-{label}.png"
            self.page.screenshot(path=str(target), full_page=True)
            shutil.copy(target, SHOTS / target.name)
        self.page.set_viewport_size(WIDE)

    def unexpected_errors(self) -> list[str]:
        return [e for e in self.errors if not any(x in e for x in self.expected)]


@pytest.fixture
def tab(browser, live_url, tmp_path):
    context = browser.new_context(viewport=WIDE)
    page = context.new_page()
    page.set_default_timeout(15_000)
    opened = Tab(page, live_url, tmp_path)
    page.on(
        "console",
        lambda message: (
            opened.errors.append(f"console: {message.text}") if message.type == "error" else None
        ),
    )
    page.on("pageerror", lambda error: opened.errors.append(f"pageerror: {error}"))
    try:
        yield opened
    finally:
        context.close()
    assert not opened.unexpected_errors(), opened.errors
