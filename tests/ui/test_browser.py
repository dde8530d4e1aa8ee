"""End-to-end in headless Chromium against a real ``herder server``: sign in, run a job and
watch its log arrive, cancel a run, see that hostile text stays text and that forged changes
fail, that a viewer is offered nothing it may not do, and save screenshots of every page."""

from __future__ import annotations

import http.server
import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.servers import free_port, wait_for
from tests.ui.conftest import ADMIN_SECRET, SCREENSHOTS, VIEWPORTS, Site, sign_in

pytestmark = pytest.mark.acceptance
XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture
def page(context: Any, site: Site) -> Iterator[Any]:
    """A page signed in as the admin; any dialog (an alert from injected script) is recorded
    and fails the test."""
    opened = context.new_page()
    dialogs: list[str] = []
    # The UI's own confirm() before a cancel is accepted; any alert is recorded.
    opened.on("dialog", lambda d: (dialogs.append(f"{d.type}: {d.message}"),
                                   d.accept() if d.type == "confirm" else d.dismiss()))
    sign_in(opened, site.url, ADMIN_SECRET)
    opened.dialogs = dialogs
    yield opened
    assert not [d for d in dialogs if not d.startswith("confirm")], dialogs


def expect() -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect


def test_sign_in_gives_a_strict_http_only_cookie(page: Any, context: Any) -> None:
    cookies = {c["name"]: c for c in context.cookies()}
    session = cookies["herder_session"]
    assert session["httpOnly"] is True and session["sameSite"] == "Strict"
    assert session["path"] == "/" and not session["secure"]
    assert cookies["herder_csrf"]["httpOnly"] is False
    assert page.evaluate("document.cookie").count("herder_session") == 0  # not readable


def test_run_a_job_with_a_param_and_watch_its_log_arrive(page: Any, site: Site) -> None:
    site.job(name="ticker", params={"who": "world"},
             command='for i in 1 2 3 4 5 6; do echo "tick $i "{{ params.who | shell_quote }}; '
                     'sleep 0.5; done')
    page.goto(f"{site.url}/#/jobs/default/ticker")
    page.get_by_label("who").fill("browser")
    page.get_by_role("button", name="Run now").click()
    expect()(page).to_have_url(re.compile(r"#/runs/\d+$"))
    run_id = int(page.url.rsplit("/", 1)[1])
    log = page.locator("pre.log")
    expect()(log).to_contain_text("tick 1 browser")
    # The first line is on the page while the run still runs: the log follows it live.
    assert site.server.get_run(run_id)["finished_at"] is None
    expect()(log).to_contain_text("tick 6 browser", timeout=20_000)
    expect()(page.locator("h1 .badge")).to_have_text("SUCCESS", timeout=20_000)
    assert site.server.get_run(run_id)["params"] == {"who": "browser"}
    page.get_by_label("stream").select_option("stderr")
    expect()(page.locator(".log-state")).to_have_text("the log is empty")
    download = page.get_by_role("link", name="Download")
    assert download.get_attribute("href") == f"/api/v1/runs/{run_id}/logs?stream=stderr"


def test_cancel_a_running_run(page: Any, site: Site) -> None:
    site.job(name="sleeper", command="sleep 60")
    run = site.admin.post("/api/v1/jobs/sleeper/runs", json={}).json()
    site.server.wait_status(run["id"], "RUNNING")
    page.goto(f"{site.url}/#/runs/{run['id']}")
    expect()(page.locator("h1 .badge")).to_have_text("RUNNING")
    page.get_by_role("button", name="Cancel").click()
    expect()(page.locator("h1 .badge")).to_have_text("ABORTED", timeout=20_000)
    assert site.server.get_run(run["id"])["status"] == "ABORTED"


def test_hostile_text_shows_as_text(page: Any, site: Site) -> None:
    site.job(name="hostile", description=XSS, params={"note": XSS},
             command=f"echo '{XSS}'; exit 3")
    run = site.admin.post("/api/v1/jobs/hostile/runs", json={}).json()
    site.server.wait_end(run["id"])
    for path in ("/#/jobs", "/#/jobs/default/hostile", f"/#/runs/{run['id']}"):
        page.goto(site.url + path)
        expect()(page.get_by_text(XSS).first).to_be_visible()
        assert page.locator("img").count() == 0, path
    expect()(page.locator("pre.log")).to_contain_text(XSS)
    page.goto(f"{site.url}/#/runs?q=%3Cimg")  # hostile text in the URL's filters too
    expect()(page.get_by_label("Text", exact=True)).to_have_value("<img")
    assert page.locator("img").count() == 0
    assert not [d for d in page.dialogs if not d.startswith("confirm")]


class _Evil(http.server.BaseHTTPRequestHandler):
    """A page of another site that tries to start a run on the herder server."""

    target = ""

    def do_GET(self) -> None:
        body = (f"<!doctype html><script>fetch('{self.target}', {{method: 'POST', "
                "credentials: 'include', mode: 'no-cors'}).then(() => document.title = "
                "'sent', () => document.title = 'failed');</script>").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_forged_changes_fail(page: Any, site: Site) -> None:
    site.job(name="target", command="true")
    # Same page, but no CSRF header: refused with a clear error, nothing made.
    answer = page.evaluate("""async () => {
        const r = await fetch('/api/v1/jobs/target/runs', {method: 'POST',
          headers: {'Content-Type': 'application/json'}, body: '{}'});
        return {status: r.status, body: await r.json()};
    }""")
    assert answer["status"] == 403 and answer["body"]["error"]["code"] == "csrf_failed"
    # Another site (localhost is not 127.0.0.1): the SameSite=Strict cookie is not sent.
    port = free_port()
    _Evil.target = f"{site.url}/api/v1/jobs/target/runs"
    evil = http.server.ThreadingHTTPServer(("127.0.0.1", port), _Evil)
    thread = threading.Thread(target=evil.serve_forever, daemon=True)
    thread.start()
    try:
        other = page.context.new_page()
        other.goto(f"http://localhost:{port}/")
        expect()(other).to_have_title(re.compile("sent|failed"))
        other.close()
    finally:
        evil.shutdown()
        evil.server_close()
    assert site.admin.get("/api/v1/runs", params={"job": "target"}).json()["items"] == []
    # And a GET never changes anything, whatever it names.
    page.goto(f"{site.url}/api/v1/jobs/target/disable")
    assert site.admin.get("/api/v1/jobs/target").json()["enabled"] is True


def test_a_viewer_is_offered_only_what_it_may_do(context: Any, site: Site) -> None:
    site.job(name="look-only", command="true")
    _, viewer = site.token("ui-viewer", role="viewer")
    page = context.new_page()
    sign_in(page, site.url, viewer)
    page.goto(f"{site.url}/#/jobs/default/look-only")
    expect()(page.get_by_role("heading", name="default/look-only")).to_be_visible()
    expect()(page.get_by_role("heading", name="Spec")).to_be_visible()
    assert page.get_by_role("button", name="Run now").count() == 0
    assert page.get_by_role("button", name="Disable").count() == 0
    page.goto(f"{site.url}/#/admin")
    expect()(page.get_by_role("link", name="Namespaces")).to_be_visible()
    assert page.get_by_role("link", name="Tokens").count() == 0
    assert page.get_by_role("link", name="Audit trail").count() == 0
    refused = page.evaluate("""async () => {
        const csrf = document.cookie.match(/herder_csrf=([^;]+)/)[1];
        const r = await fetch('/api/v1/jobs/look-only/runs', {method: 'POST',
          headers: {'Content-Type': 'application/json', 'X-CSRF-Token': csrf}, body: '{}'});
        return r.status;
    }""")
    assert refused == 403


def test_an_admin_makes_a_token_and_sees_its_secret_once(page: Any, site: Site) -> None:
    page.goto(f"{site.url}/#/admin/tokens")
    page.get_by_label("Name", exact=True).fill("made-in-ui")
    page.get_by_label("Role").select_option("operator")
    page.get_by_role("button", name="Create token").click()
    secret = page.locator("#new-token")
    expect()(secret).to_have_value(re.compile(r"^herder_\d+_"))
    token = secret.input_value()
    with site.server.client.__class__(base_url=site.url,
                                      headers={"Authorization": f"Bearer {token}"}) as client:
        assert client.get("/api/v1/whoami").json()["name"] == "made-in-ui"
    page.reload()
    expect()(page.get_by_role("cell", name="made-in-ui")).to_be_visible()
    assert page.locator("#new-token").count() == 0


def test_run_filters_live_in_the_url(page: Any, site: Site) -> None:
    site.job(name="flaky", command="exit 1")
    run = site.admin.post("/api/v1/jobs/flaky/runs", json={}).json()
    site.server.wait_end(run["id"])
    page.goto(f"{site.url}/#/runs")
    page.get_by_label("Status", exact=True).select_option(["APP_ERROR"])
    page.get_by_label("Job", exact=True).fill("flaky")
    page.get_by_role("button", name="Apply").click()
    expect()(page).to_have_url(re.compile(r"job=flaky.*status=APP_ERROR|status=APP_ERROR.*job"))
    shared = page.url
    other = page.context.new_page()
    other.goto(shared)
    rows = other.locator("table.runs tbody tr")
    expect()(rows).to_have_count(1)
    expect()(rows.first).to_contain_text("APP_ERROR")
    other.close()


def test_the_pages_are_keyboard_reachable(page: Any, site: Site) -> None:
    page.goto(f"{site.url}/#/")
    expect()(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    for _ in range(60):  # from wherever focus starts, on through the page and round again
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "Jobs":
            break
    page.keyboard.press("Enter")
    expect()(page.get_by_role("heading", name="Jobs")).to_be_visible()


def test_workflow_step_approval_updates_the_graph(page: Any, site: Site) -> None:
    paths = site.admin.get("/openapi.json").json()["paths"]
    if "/api/v1/workflow-runs/{run_id}/graph" not in paths and not any(
            p.startswith("/api/v1/workflow-runs/") and p.endswith("/graph") for p in paths):
        pytest.skip("this server has no workflow runs yet (the workflow engine has not "
                    "landed): nothing to approve")
    site.job(name="wf-prep", command="true")
    made = site.admin.post("/api/v1/workflows", json={
        "name": "ui-approve", "steps": [
            {"name": "prep", "job": "wf-prep"},
            {"name": "ship", "approval": {"message": "Ship it?"}, "needs": ["prep"]},
            {"name": "after", "command": "true", "needs": ["ship"]},
        ]})
    assert made.status_code == 201, made.text
    started = site.admin.post("/api/v1/workflows/ui-approve/runs", json={"params": {}})
    assert started.status_code == 201, started.text
    run_id = started.json()["id"]
    page.goto(f"{site.url}/#/workflow-runs/{run_id}")
    ship = page.locator('g.node[data-step="ship"]')
    expect()(ship).to_have_attribute("data-status", "ACTION_PENDING", timeout=20_000)
    page.get_by_role("button", name="Approve").click()
    expect()(page.locator('g.node[data-step="after"]')).to_have_attribute(
        "data-status", "SUCCESS", timeout=20_000)
    expect()(page.locator("h1 .badge")).to_have_text("SUCCESS", timeout=20_000)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "workflow-run-live-desktop.png"), full_page=True)
    page.goto(f"{site.url}/#/workflows/default/ui-approve")
    expect()(page.locator("main table tbody tr").first).to_contain_text(f"#{run_id}")


def _ready(page: Any) -> None:
    expect()(page.locator("main h1").first).to_be_visible()
    expect()(page.get_by_text("Loading…")).to_have_count(0)


def test_screenshots_of_every_page(browser: Any, site: Site) -> None:
    """Each page at desktop and phone widths, light and (for the dashboard) dark, saved under
    artifacts/screenshots/ for a person to look at."""
    site.job(name="nightly-backup", description="dump the sales database", namespace="default",
             params={"db": "sales"}, labels={"team": "data"}, command="echo dumping; echo done",
             schedule={"cron": "30 2 * * *", "timezone": "Europe/Rome"})
    run = site.admin.post("/api/v1/jobs/nightly-backup/runs", json={}).json()
    site.server.wait_end(run["id"])
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    pages = {"dashboard": "/#/", "jobs": "/#/jobs", "job": "/#/jobs/default/nightly-backup",
             "runs": "/#/runs", "run": f"/#/runs/{run['id']}", "workflows": "/#/workflows",
             "admin-namespaces": "/#/admin/namespaces", "admin-tokens": "/#/admin/tokens",
             "admin-locks": "/#/admin/locks", "admin-audit": "/#/admin/audit"}
    for viewport, size in VIEWPORTS.items():
        for scheme in ("light", "dark"):
            context = browser.new_context(viewport=size, color_scheme=scheme)
            page = context.new_page()
            page.goto(site.url + "/#/signin")
            expect()(page.get_by_label("API token")).to_be_visible()
            if scheme == "light":
                page.screenshot(path=str(SCREENSHOTS / f"signin-{viewport}.png"))
            sign_in(page, site.url, ADMIN_SECRET)
            for name, path in pages.items():
                if scheme == "dark" and name not in ("dashboard", "run"):
                    continue
                page.goto(site.url + path)
                _ready(page)
                suffix = "" if scheme == "light" else "-dark"
                page.screenshot(path=str(SCREENSHOTS / f"{name}-{viewport}{suffix}.png"),
                                full_page=True)
            context.close()
    wait_for(lambda: (SCREENSHOTS / "run-phone.png").exists(), timeout=5)
