"""Scheduled workflows on a real server with real processes: each slot becomes one workflow
run whose steps run; disabling pauses it; ``forbid`` refuses a person's run with 409 naming
the active one, and a workflow's timeout cancels it."""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime
from typing import Any

import pytest

from tests.servers import Server, wait_for

pytestmark = [pytest.mark.acceptance, pytest.mark.slow]
API = "/api/v1/workflows"
ENDED = {"SUCCESS", "FAILED", "ABORTED"}


def workflow_runs(server: Server, ref: str) -> list[dict[str, Any]]:
    page = server.client.get("/api/v1/workflow-runs",
                             params={"workflow": ref, "limit": 1000}).json()
    found: list[dict[str, Any]] = page["items"]
    return found


def test_a_scheduled_workflow_runs_at_each_slot_once(shared_server: Server) -> None:
    server = shared_server
    made = server.client.post(API, json={
        "name": "every-second", "namespace": "wfsched",
        "schedule": {"cron": "* * * * * *", "timezone": "Europe/Paris"},
        "steps": [{"name": "a", "command": "echo a"},
                  {"name": "b", "command": ["true"], "needs": "a"}],
    })
    assert made.status_code == 201, made.text
    ref = made.json()["ref"]
    assert made.json()["next_run_at"] is not None  # the next second

    def three_ended() -> list[dict[str, Any]]:
        done = [r for r in workflow_runs(server, ref) if r["status"] in ENDED]
        return done if len(done) >= 3 else []

    wait_for(three_ended, timeout=30, what="three scheduled workflow runs to end")
    off = server.client.post(f"{API}/{ref}/disable")
    assert off.status_code == 200 and off.json()["next_run_at"] is None
    wait_for(lambda: all(r["status"] in ENDED for r in workflow_runs(server, ref)),
             timeout=20, what="the last workflow runs to end")
    found = workflow_runs(server, ref)
    assert all(r["trigger"] == "schedule" for r in found)
    slots = Counter(datetime.fromisoformat(r["scheduled_for"]) for r in found)
    assert all(n == 1 for n in slots.values()), slots
    ran = [r for r in found if not r["reason"].startswith("skipped")]
    assert ran and all(r["status"] == "SUCCESS" for r in ran), ran
    for run in ran[:2]:
        graph = server.client.get(f"/api/v1/workflow-runs/{run['id']}/graph").json()
        assert {n["id"]: n["status"] for n in graph["nodes"]} == {"a": "SUCCESS",
                                                                  "b": "SUCCESS"}
    settled = len(found)
    time.sleep(1.5)  # paused: no slot comes while it is disabled (a wait with no condition)
    assert len(workflow_runs(server, ref)) == settled


def test_forbid_refuses_a_second_run_and_the_timeout_cancels(shared_server: Server) -> None:
    server = shared_server
    made = server.client.post(API, json={
        "name": "slow", "namespace": "wfsched", "concurrency": "forbid", "timeout": "2s",
        "steps": [{"name": "sleep", "command": "sleep 30"}],
    })
    assert made.status_code == 201, made.text
    first = server.client.post(f"{API}/wfsched/slow/runs")
    assert first.status_code == 201, first.text
    second = server.client.post(f"{API}/wfsched/slow/runs")
    assert second.status_code == 409, second.text
    body = second.json()["error"]
    assert body["details"] == {"active_runs": [first.json()["id"]]}
    assert "concurrency is forbid" in body["message"]
    run_id = first.json()["id"]

    def ended() -> dict[str, Any] | None:
        run: dict[str, Any] = server.client.get(f"/api/v1/workflow-runs/{run_id}").json()
        return run if run["status"] in ENDED else None

    run = wait_for(ended, timeout=20, what="the workflow run to time out")
    assert (run["status"], run["reason"]) == ("ABORTED", "timed out after 2s")
    queued = server.client.put(f"{API}/wfsched/slow", json={
        "name": "slow", "namespace": "wfsched", "concurrency": "queue",
        "steps": [{"name": "sleep", "command": "true"}],
    })
    assert queued.status_code == 422 and "queue" in queued.json()["error"]["message"]
