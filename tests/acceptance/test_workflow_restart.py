"""A server killed with SIGKILL while a workflow runs a chain and a fan-out comes back and ends
the workflow run with every step run exactly once per (step, item, attempt), on SQLite and on
PostgreSQL; and who may see and control a workflow run."""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.acceptance.access import OTHER, OWN, World, bearer, make_world
from tests.acceptance.conftest import short_dir
from tests.acceptance.workflow_helpers import (
    error_of,
    lines,
    make,
    start,
    step_runs,
    wait_run,
    wait_step,
)
from tests.servers import Server, wait_for

pytestmark = [pytest.mark.acceptance, pytest.mark.slow]

ITEMS = 6


def _kill_mid_workflow(s: Server, log: Path) -> None:
    chain = f'echo "$HERDER_STEP" >> {log}; sleep 0.6'
    steps = [
        {"name": "a", "command": chain},
        {"name": "b", "needs": ["a"], "command": chain},
        {"name": "c", "needs": ["b"], "command": chain},
        {"name": "fan", "needs": ["a"], "foreach": list(range(ITEMS)), "parallelism": 3,
         "command": ["sh", "-c", f'echo "fan $1" >> {log}; sleep 1', "x", "{{ item }}"]},
        {"name": "end", "needs": ["c", "fan"], "command": chain},
    ]
    run_id = start(s, make(s, "kill", steps))
    wait_step(s, run_id, "fan", "RUNNING")
    s.kill(signal.SIGKILL)
    s.start()
    # Once more while the chain goes on.
    wait_step(s, run_id, "c", "RUNNING", "SUCCESS", timeout=60)
    s.kill(signal.SIGKILL)
    s.start()
    run = wait_run(s, run_id, timeout=90)
    assert run["status"] == "SUCCESS", (run, step_runs(s, run_id))
    runs = step_runs(s, run_id)
    keys = Counter((r["step"], r["item"], r["attempt"]) for r in runs)
    assert all(count == 1 for count in keys.values()), keys
    # A plain step is item 0 in the runs API (the graph says null).
    assert sorted(keys) == sorted(
        [(step, 0, 1) for step in ("a", "b", "c", "end")]
        + [("fan", i, 1) for i in range(ITEMS)]
    )
    assert all(r["status"] == "SUCCESS" for r in runs)
    # Every step executed exactly once.
    assert sorted(lines(log)) == sorted(["a", "b", "c", "end", *(f"fan {i}" for i in
                                                                  range(ITEMS))])


def test_kill_9_mid_workflow_every_step_ends_once(server: Server) -> None:
    _kill_mid_workflow(server, short_dir() / "ran")


@pytest.mark.postgres
def test_kill_9_mid_workflow_on_postgres(postgres_url: str) -> None:
    s = Server(short_dir() / "data", database_url=postgres_url).start()
    try:
        _kill_mid_workflow(s, short_dir() / "ran")
    finally:
        s.close()


# Permissions ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    yield from make_world()


def test_another_namespace_sees_nothing_and_a_viewer_cannot_control(world: World) -> None:
    admin = world.admin
    answer = admin.post("/api/v1/workflows", json={
        "name": "guarded", "namespace": OWN,
        "steps": [{"name": "ask", "approval": True}]})
    assert answer.status_code == 201, answer.text
    run = admin.post(f"/api/v1/workflows/{OWN}/guarded/runs")
    assert run.status_code == 201, run.text
    run_id = run.json()["id"]
    wait_for(lambda: admin.get(f"/api/v1/workflow-runs/{run_id}").json()["status"]
             == "ACTION_PENDING", what="the approval to wait")
    stranger = world.new_token(OTHER, "admin")["token"]
    with httpx.Client(base_url=world.server.url, headers=bearer(stranger)) as other:
        for answer in (other.get(f"/api/v1/workflow-runs/{run_id}"),
                       other.get(f"/api/v1/workflow-runs/{run_id}/graph"),
                       other.post(f"/api/v1/workflow-runs/{run_id}/pause"),
                       other.post(f"/api/v1/workflow-runs/{run_id}/steps/ask/approve")):
            error = error_of(answer, 404)
            assert error["message"] == f"no workflow run with id {run_id}"
        listed = other.get("/api/v1/workflow-runs").json()["items"]
        assert run_id not in [r["id"] for r in listed]
    with world.client("viewer") as viewer:
        assert viewer.get(f"/api/v1/workflow-runs/{run_id}").status_code == 200
        for action in ("pause", "cancel", "steps/ask/approve", "steps/ask/reject"):
            error_of(viewer.post(f"/api/v1/workflow-runs/{run_id}/{action}"), 403)
    with world.client("operator") as operator:
        answer = operator.post(f"/api/v1/workflow-runs/{run_id}/steps/ask/approve")
        assert answer.status_code == 200, answer.text
    ended = wait_for(lambda: admin.get(f"/api/v1/workflow-runs/{run_id}").json()["status"]
                     == "SUCCESS", what="the run to end")
    assert ended
    [ask] = admin.get("/api/v1/runs", params={"workflow_run": run_id}).json()["items"]
    assert ask["decided_by"] not in (None, "anonymous")
