"""The workflow run page against the agreed API contract, in Chromium: the page is real, the
``/api/v1/workflow-runs…`` answers come from the test (``page.route``), so the graph, its live
update and the step controls are checked before the workflow engine serves them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.ui.conftest import ADMIN_SECRET, SCREENSHOTS, VIEWPORTS, Site, sign_in

pytestmark = pytest.mark.acceptance


def _node(step: str, kind: str, status: str | None, **more: Any) -> dict[str, Any]:
    node = {"id": step, "kind": kind, "section": "steps", "status": status,
            "ended": status in ("SUCCESS", "APP_ERROR", "SKIPPED"), "attempt": 1, "items": {},
            "runs": [], "child": None, "message": None}
    node.update(more)
    return node


class FakeWorkflowRuns:
    """Answers of a workflow run whose ``ship`` step waits for approval until approved."""

    def __init__(self) -> None:
        self.approved = False
        self.posts: list[str] = []

    def run(self) -> dict[str, Any]:
        return {"id": 7, "workflow": "default/etl", "workflow_id": 1, "namespace": "default",
                "status": "SUCCESS" if self.approved else "ACTION_PENDING", "reason": None,
                "params": {}, "trigger": "manual", "submitter": "HERDER_ADMIN_TOKEN",
                "created_at": "2026-12-01T10:00:00Z",
                "finished_at": "2026-12-01T10:05:00Z" if self.approved else None,
                "paused_at": None, "cancel_requested_at": None, "parent_run_id": None,
                "parent_step": None, "rerun_of": None}

    def graph(self) -> dict[str, Any]:
        after = "SUCCESS" if self.approved else None
        return {
            "nodes": [
                _node("extract", "job", "SUCCESS", runs=[{"id": 41, "item": None, "attempt": 1,
                                                          "status": "SUCCESS",
                                                          "started_at": None,
                                                          "finished_at": None}]),
                _node("per-file", "command", "SUCCESS", items={"SUCCESS": 3}),
                _node("ship", "approval", "SUCCESS" if self.approved else "ACTION_PENDING",
                      message="Publish <b>today's</b> numbers?"),
                _node("downstream", "workflow", after, child=8 if self.approved else None),
                {**_node("page-oncall", "command", None), "section": "on_failure"},
            ],
            "edges": [{"from": "extract", "to": "per-file", "on": "success"},
                      {"from": "per-file", "to": "ship", "on": "success"},
                      {"from": "ship", "to": "downstream", "on": "always"}],
        }

    def child_graph(self) -> dict[str, Any]:
        return {"nodes": [_node("publish", "command", "SUCCESS")], "edges": []}

    def handle(self, route: Any) -> None:
        request = route.request
        path = request.url.split("/api/v1", 1)[1].split("?")[0]
        if request.method == "POST":
            self.posts.append(path)
            assert request.headers.get("x-csrf-token"), "changes carry the CSRF header"
            if path == "/workflow-runs/7/steps/ship/approve":
                self.approved = True
            body: Any = self.run()
        elif path == "/workflow-runs/7":
            body = self.run()
        elif path == "/workflow-runs/7/graph":
            body = self.graph()
        elif path == "/workflow-runs/8/graph":
            body = self.child_graph()
        else:
            route.fulfill(status=404, content_type="application/json",
                          body=json.dumps({"error": {"code": "not_found", "message": path}}))
            return
        route.fulfill(status=200, content_type="application/json", body=json.dumps(body))


def test_the_graph_shows_live_statuses_and_approving_updates_it(context: Any, site: Site) -> None:
    from playwright.sync_api import expect

    fake = FakeWorkflowRuns()
    page = context.new_page()
    sign_in(page, site.url, ADMIN_SECRET)
    page.route("**/api/v1/workflow-runs/**", fake.handle)
    page.goto(f"{site.url}/#/workflow-runs/7")
    ship = page.locator('g.node[data-step="ship"]')
    expect(ship).to_have_attribute("data-status", "ACTION_PENDING")
    expect(page.locator("h1 .badge")).to_have_text("ACTION_PENDING")
    # Columns by depth: extract, then per-file, then ship; the failure handler after them all.
    xs = {step: float(page.locator(f'g.node[data-step="{step}"] rect').get_attribute("x") or 0)
          for step in ("extract", "per-file", "ship", "downstream", "page-oncall")}
    assert xs["extract"] < xs["per-file"] < xs["ship"] < xs["downstream"] < xs["page-oncall"]
    assert page.locator("g.edge text").all_text_contents() == ["success", "success", "always"]
    expect(page.locator('g.node[data-step="per-file"] text.sub')).to_contain_text("3 success")
    assert page.locator('a[href="#/runs/41"]').count() >= 1  # a box opens its step's run
    expect(page.get_by_text("Publish <b>today's</b> numbers?", exact=True)).to_be_visible()
    assert page.locator("main b").count() == 0
    page.get_by_role("button", name="Approve").click()
    expect(ship).to_have_attribute("data-status", "SUCCESS")
    expect(page.locator('g.node[data-step="downstream"]')).to_have_attribute(
        "data-status", "SUCCESS")
    expect(page.locator("h1 .badge")).to_have_text("SUCCESS")
    assert fake.posts == ["/workflow-runs/7/steps/ship/approve"]
    # The nested workflow opens below as its own graph.
    page.get_by_text("Nested workflow of step downstream").click()
    expect(page.locator('details.nested g.node[data-step="publish"]')).to_have_attribute(
        "data-status", "SUCCESS")
    assert page.get_by_role("button", name="Rerun").count() == 1
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for viewport, size in VIEWPORTS.items():
        page.set_viewport_size(size)
        page.screenshot(path=str(SCREENSHOTS / f"workflow-run-{viewport}.png"), full_page=True)
