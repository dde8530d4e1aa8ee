"""What the UI tests share: a real server with authentication on (one per module), tokens made
through it, and one headless Chromium for the whole run.

The browser is Debian's ``chromium`` (``/usr/bin/chromium``), driven by Playwright without
Playwright's own browser download. Where it is missing the browser tests are skipped saying
so, except in CI (``CI=true``), where they fail: they must run there.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import IN_CI
from tests.servers import REPO, Server

ADMIN_SECRET = "ui-admin-secret-0123456789abcdef"
CHROMIUM = os.environ.get("HERDER_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SCREENSHOTS = REPO / "artifacts" / "screenshots"
VIEWPORTS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Site:
    """A server with authentication on, and an admin client of it."""

    server: Server
    admin: httpx.Client

    @property
    def url(self) -> str:
        return self.server.url

    def token(self, name: str, *, role: str, namespace: str = "*") -> tuple[int, str]:
        made = self.admin.post("/api/v1/tokens", json={"name": name, "namespace": namespace,
                                                       "role": role})
        assert made.status_code == 201, made.text
        body: dict[str, Any] = made.json()
        return int(body["id"]), str(body["token"])

    def job(self, **spec: Any) -> dict[str, Any]:
        made = self.admin.post("/api/v1/jobs", json=spec)
        assert made.status_code == 201, made.text
        body: dict[str, Any] = made.json()
        return body


def start_site() -> Iterator[Site]:
    data = Path(tempfile.mkdtemp(prefix="hu-", dir="/tmp")) / "data"
    server = Server(data, env={"HERDER_ADMIN_TOKEN": ADMIN_SECRET}).start()
    server.client.headers.update(bearer(ADMIN_SECRET))  # its helpers (wait_end) act as admin
    try:
        yield Site(server=server, admin=server.client)
    finally:
        server.close()
        shutil.rmtree(data.parent, ignore_errors=True)


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    """One server with ``HERDER_ADMIN_TOKEN`` set, for a module of tests."""
    yield from start_site()


def _launch() -> Any:
    if not Path(CHROMIUM).exists():
        reason = (f"no Chromium at {CHROMIUM}: the browser tests need Debian's chromium "
                  "(apt-get install chromium); .ci/run installs it")
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if IN_CI:
            pytest.fail("playwright is not installed: pip install -e '.[dev]'")
        pytest.skip("playwright is not installed: pip install -e '.[dev]'")
    return sync_playwright


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for a module. Not for the session: Playwright's sync API keeps an
    event loop running while it is open, and tests of other modules in the same worker call
    ``asyncio.run``. Playwright gives each launch a fresh, temporary user data dir of its own
    (it refuses ``--user-data-dir`` in ``args``)."""
    sync_playwright = _launch()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                              headless=True)
        yield launched
        launched.close()


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    """A fresh browser context (no cookies) at desktop width for one test."""
    made = browser.new_context(viewport=VIEWPORTS["desktop"])
    made.set_default_timeout(15_000)
    yield made
    made.close()


def sign_in(page: Any, url: str, token: str) -> None:
    """Sign in through the page as a person does; waits for the dashboard."""
    from playwright.sync_api import expect

    page.goto(url + "/")
    expect(page.get_by_role("heading", name="Sign in to herder")).to_be_visible()
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
