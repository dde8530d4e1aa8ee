"""The workflow engine's in-memory step index, on SQLite and PostgreSQL: a decision is taken
from what the store holds, also when another server changed it, or when a transaction that
taught the index something was rolled back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Connection

from herder.engine import workflows
from herder.model.runs import RunStatus
from herder.model.workflow_state import WorkflowStatus
from herder.model.workflows import parse_workflow
from herder.store import runs as run_store
from herder.store import workflow_runs as workflow_run_store
from herder.store import workflows as workflow_store
from herder.store.database import Database

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _chain(db: Database) -> int:
    spec = parse_workflow({"name": "chain", "steps": [
        {"name": "a", "command": "true"},
        {"name": "b", "command": "true", "needs": ["a"]},
        {"name": "c", "command": "true", "needs": ["b"]},
    ]})
    workflow = db.write_sync(workflow_store.create, spec, NOW)

    def start(conn: Connection) -> int:
        run, _ = workflows.start(conn, workflow, params={}, trigger="api", now=NOW)
        assert run is not None
        return run.id

    return db.write_sync(start)


def _steps(db: Database, run_id: int) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for run in db.read_sync(run_store.search, workflow_run_id=run_id, limit=100):
        found.setdefault(run.step or "", []).insert(0, run.status.value)
    return found


def _end(conn: Connection, run_id: int, step: str, status: RunStatus, *,
         through_engine: bool) -> None:
    """End the step's run as a backend would: through the engine's end (which tells the
    index), or as another server or a path that does not tell it."""
    run = next(r for r in run_store.search(conn, workflow_run_id=run_id, limit=100)
               if r.step == step and not r.status.terminal)
    for going in (RunStatus.JOB_DEPLOYED, RunStatus.RUNNING):
        run_store.set_status(conn, run.id, going)
    ended = run_store.set_status(conn, run.id, status, finished_at=NOW)
    if through_engine:
        workflows.step_ended(conn, ended, NOW)


def test_a_change_the_index_was_not_told_of_is_read_from_the_store(db: Database) -> None:
    run_id = _chain(db)
    db.write_sync(_end, run_id, "a", RunStatus.SUCCESS, through_engine=True)
    assert _steps(db, run_id) == {"a": ["SUCCESS"], "b": ["READY"]}
    # Another server ends b: this server's index does not know, the store's count says so.
    other = Database(db.url)
    try:
        other.write_sync(_end, run_id, "b", RunStatus.APP_ERROR, through_engine=False)
    finally:
        other.close()
    db.write_sync(workflows.advance, run_id, NOW)
    assert _steps(db, run_id) == {"a": ["SUCCESS"], "b": ["APP_ERROR"], "c": ["SKIPPED"]}
    assert db.read_sync(workflow_run_store.get, run_id).status is WorkflowStatus.FAILED


def test_a_rolled_back_transaction_leaves_nothing_in_the_index(db: Database) -> None:
    run_id = _chain(db)

    def end_then_fail(conn: Connection) -> None:
        _end(conn, run_id, "a", RunStatus.SUCCESS, through_engine=True)
        raise RuntimeError("the transaction fails after the index learnt of b")

    with pytest.raises(RuntimeError):
        db.write_sync(end_then_fail)
    # Rolled back: a is still running, b was never created; the index must not remember b.
    db.write_sync(workflows.advance, run_id, NOW)
    assert _steps(db, run_id) == {"a": ["READY"]}
    db.write_sync(_end, run_id, "a", RunStatus.APP_ERROR, through_engine=True)
    assert _steps(db, run_id) == {"a": ["APP_ERROR"], "b": ["SKIPPED"], "c": ["SKIPPED"]}


def test_every_end_told_to_the_index_decides_as_a_full_read_would(db: Database) -> None:
    """A chain ended step by step through the engine gives the same runs as when each
    decision reads everything again."""
    run_id = _chain(db)
    for step in ("a", "b", "c"):
        db.write_sync(_end, run_id, step, RunStatus.SUCCESS, through_engine=True)
    told = _steps(db, run_id)
    workflows._INDEXES.clear()
    db.write_sync(workflows.advance, run_id, NOW + timedelta(seconds=1))
    assert _steps(db, run_id) == told == {"a": ["SUCCESS"], "b": ["SUCCESS"], "c": ["SUCCESS"]}
    assert db.read_sync(workflow_run_store.get, run_id).status is WorkflowStatus.SUCCESS

