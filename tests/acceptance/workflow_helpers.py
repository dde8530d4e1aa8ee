"""Helpers of the workflow run tests: make workflows, start them, read their runs and steps,
and wait on conditions (never on wall time)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from tests.servers import Server, wait_for

ENDED = ("SUCCESS", "FAILED", "ABORTED")
STEP_ENDED = ("SUCCESS", "APP_ERROR", "PROC_ERROR", "TIMEOUT", "ABORTED", "SKIPPED")
_names = itertools.count(1)


def name(prefix: str) -> str:
    """A workflow or job name no other test uses."""
    return f"{prefix}-{next(_names)}"


def make(s: Server, prefix: str, steps: list[Any], **spec: Any) -> str:
    """Create a workflow; its ref."""
    answer = s.client.post("/api/v1/workflows", json={"name": name(prefix), "steps": steps,
                                                      **spec})
    assert answer.status_code == 201, answer.text
    ref: str = answer.json()["ref"]
    return ref


def start(s: Server, ref: str, **params: Any) -> int:
    """Start a run of workflow ``ref``; its id."""
    answer = s.client.post(f"/api/v1/workflows/{ref}/runs", json={"params": params})
    assert answer.status_code == 201, answer.text
    run_id: int = answer.json()["id"]
    return run_id


def detail(s: Server, run_id: int) -> dict[str, Any]:
    answer = s.client.get(f"/api/v1/workflow-runs/{run_id}")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def nodes(s: Server, run_id: int) -> dict[str, dict[str, Any]]:
    return {node["id"]: node for node in detail(s, run_id)["steps"]}


def wait_run(s: Server, run_id: int, *statuses: str, timeout: float = 30) -> dict[str, Any]:
    """Wait until the workflow run is in one of ``statuses`` (default: ended)."""
    wanted = statuses or ENDED

    def reached() -> dict[str, Any] | None:
        body = detail(s, run_id)
        return body if body["status"] in wanted else None

    found: dict[str, Any] = wait_for(reached, timeout=timeout,
                                     what=f"workflow run {run_id} to reach {wanted}")
    return found


def step_runs(s: Server, run_id: int, step: str | None = None) -> list[dict[str, Any]]:
    """The step runs of a workflow run (of one step), oldest first."""
    answer = s.client.get("/api/v1/runs", params={"workflow_run": run_id, "limit": 1000})
    assert answer.status_code == 200, answer.text
    found = [r for r in reversed(answer.json()["items"]) if step is None or r["step"] == step]
    return found


def wait_step(s: Server, run_id: int, step: str, *statuses: str,
              timeout: float = 30) -> dict[str, Any]:
    """Wait until the step's latest run is in one of ``statuses``; that run."""
    def reached() -> dict[str, Any] | None:
        runs = step_runs(s, run_id, step)
        return runs[-1] if runs and runs[-1]["status"] in statuses else None

    found: dict[str, Any] = wait_for(reached, timeout=timeout,
                                     what=f"step {step} of {run_id} to reach {statuses}")
    return found


def lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except FileNotFoundError:
        return []


def most_at_once(path: Path) -> int:
    """The most steps running at once, from a file where each appends ``+`` as it starts and
    ``-`` as it ends (appends of a line are atomic)."""
    now = peak = 0
    for line in lines(path):
        now += 1 if line.startswith("+") else -1
        peak = max(peak, now)
    return peak


def error_of(answer: Any, status: int) -> dict[str, Any]:
    """The documented error body of an answer that must be ``status``."""
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    error: dict[str, Any] = body["error"]
    return error
