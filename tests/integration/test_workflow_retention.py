"""History retention and workflows: a workflow run's step runs go with it, as a whole, once it
has ended, by the workflow's retention (else its namespace's, else the server's); never while
it is active, nor while a rerun reads them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Connection

from herder.engine import admission, workflows
from herder.engine.retention import Pruner
from herder.model.jobs import JobSpec
from herder.model.policies import Retention, parse_retention
from herder.model.runs import Run, RunStatus, Trigger
from herder.model.workflow_state import WorkflowRun, WorkflowStatus
from herder.model.workflows import Workflow, parse_workflow
from herder.store import jobs as job_store
from herder.store import runs as run_store
from herder.store import workflow_runs as wf_run_store
from herder.store import workflows as store
from herder.store.database import Database

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)



@pytest.fixture(autouse=True)
def _fresh_frozen_specs() -> None:
    """``engine.workflows`` keeps frozen specs by workflow run id; each test has a new store
    whose ids start again at 1."""
    workflows._FROZEN.clear()


def make(db: Database, name: str = "wf", **fields: Any) -> Workflow:
    fields.setdefault("steps", [{"name": "a", "command": "true"}])
    return db.write_sync(store.create,
                         parse_workflow({"name": name, "namespace": "data", **fields}), NOW)


def start(db: Database, workflow: Workflow, now: datetime) -> WorkflowRun:
    def op(conn: Connection) -> WorkflowRun:
        run, _ = workflows.start(conn, store.get(conn, str(workflow.id)), params={},
                                 trigger=Trigger.API, now=now)
        assert run is not None
        return run

    return db.write_sync(op)


def steps_of(db: Database, run_id: int) -> list[Run]:
    return [db.read_sync(run_store.get, row.id)
            for row in db.read_sync(wf_run_store.step_runs, [run_id])]


def finish(db: Database, run: WorkflowRun, now: datetime, exit_code: int = 0) -> WorkflowRun:
    """End every READY step run of ``run`` with ``exit_code``, as a dispatcher would."""
    while True:
        claimed = db.write_sync(run_store.claim_ready, "server-a", 1000, epoch=1)
        if not claimed:
            return db.read_sync(wf_run_store.get, run.id)
        for step in claimed:
            db.write_sync(run_store.set_status, step.id, RunStatus.RUNNING, owner="server-a",
                          epoch=1, started_at=now)

            def end(conn: Connection, step_id: int = step.id) -> None:
                ended = run_store.finish(conn, step_id, owner="server-a", exit_code=exit_code,
                                         signal=None, now=now, epoch=1)
                admission.after_end(conn, ended, now)

            db.write_sync(end)


def ended_run(db: Database, workflow: Workflow, days_ago: int, exit_code: int = 0
              ) -> WorkflowRun:
    run = finish(db, start(db, workflow, NOW - days_ago * DAY), NOW - days_ago * DAY,
                 exit_code)
    assert run.status.terminal
    return run


def prune(db: Database, files: Path, default: Retention = Retention()) -> int:
    pruner = Pruner(db, default=default, clock=lambda: NOW,
                    folders_of=lambda run: [files / str(run.id)])
    return asyncio.run(pruner.prune())


def left(db: Database, workflow: Workflow) -> list[int]:
    return sorted(r.id for r in db.read_sync(wf_run_store.search, workflow_id=workflow.id))


def all_step_runs(db: Database) -> set[int]:
    return {r.id for r in db.read_sync(run_store.search, limit=10_000)
            if r.workflow_run_id is not None}


def test_ended_runs_go_with_their_step_runs_and_files(db: Database, tmp_path: Path) -> None:
    workflow = make(db, retention={"max_runs": 2},
                    steps=[{"name": "a", "command": "true"},
                           {"name": "b", "command": "true", "needs": "a"}])
    old = [ended_run(db, workflow, days) for days in (3, 2, 1)]
    active = start(db, workflow, NOW)
    steps = {run.id: [s.id for s in steps_of(db, run.id)] for run in (*old, active)}
    assert [len(steps[r.id]) for r in old] == [2, 2, 2]
    for ids in steps.values():
        for step_id in ids:
            (tmp_path / str(step_id)).mkdir()
    assert prune(db, tmp_path) == 2
    # The newest two are kept (the active one counts, as a job's does).
    assert left(db, workflow) == [old[2].id, active.id]
    assert all_step_runs(db) == {*steps[old[2].id], *steps[active.id]}
    gone = steps[old[0].id] + steps[old[1].id]
    assert not any((tmp_path / str(i)).exists() for i in gone)
    assert all((tmp_path / str(i)).exists() for i in steps[active.id])


def test_an_active_runs_step_runs_are_never_pruned_by_their_job(db: Database,
                                                               tmp_path: Path) -> None:
    job = db.write_sync(job_store.create, JobSpec(
        name="extract", namespace="data", command="true",
        retention=parse_retention({"max_runs": 1})), NOW)
    workflow = make(db, steps=[{"name": "a", "job": "extract"},
                               {"name": "b", "command": "true", "needs": "a"}])
    run = start(db, workflow, NOW - 3 * DAY)
    claimed = db.write_sync(run_store.claim_ready, "server-a", 10, epoch=1)
    db.write_sync(run_store.set_status, claimed[0].id, RunStatus.RUNNING, owner="server-a",
                  epoch=1, started_at=NOW - 3 * DAY)

    def end(conn: Connection) -> None:
        ended = run_store.finish(conn, claimed[0].id, owner="server-a", exit_code=0,
                                 signal=None, now=NOW - 3 * DAY, epoch=1)
        admission.after_end(conn, ended, NOW - 3 * DAY)

    db.write_sync(end)  # step a (a run of the job) ended; b waits READY: the run is active
    def plain(conn: Connection) -> None:
        for k in (2, 1):
            run_store.create(conn, job=job, params={}, env={}, trigger=Trigger.API,
                             now=NOW - k * DAY, status=RunStatus.SKIPPED)

    db.write_sync(plain)
    prune(db, tmp_path, Retention(max_age=DAY / 2 / timedelta(seconds=1)))
    kept = {r.id for r in db.read_sync(run_store.search, job_id=job.id)}
    assert kept == {claimed[0].id}  # the job's own runs went; its step run stays
    assert db.read_sync(wf_run_store.get, run.id).status is WorkflowStatus.RUNNING
    assert len(steps_of(db, run.id)) == 2


def test_a_run_a_rerun_reads_stays_while_the_rerun_does(db: Database, tmp_path: Path) -> None:
    workflow = make(db, retention={"max_age": "1d"},
                    steps=[{"name": "a", "command": "true"},
                           {"name": "b", "command": "false", "needs": "a"}])
    failed = ended_run(db, workflow, 5, exit_code=1)
    assert failed.status is WorkflowStatus.FAILED
    again, _ = db.write_sync(workflows.rerun, failed.id, NOW - 4 * DAY, submitter="ana")
    prune(db, tmp_path)
    assert left(db, workflow) == [failed.id, again.id]  # the rerun is active: both stay
    assert len(steps_of(db, failed.id)) == 2
    rerun_ended = finish(db, again, NOW - 4 * DAY)
    assert rerun_ended.status.terminal
    prune(db, tmp_path)
    assert left(db, workflow) == [failed.id]  # the rerun went; its source goes next pass
    prune(db, tmp_path)
    assert left(db, workflow) == []
    assert all_step_runs(db) == set()


def test_nested_runs_go_with_their_parent_and_the_default_applies(db: Database,
                                                                 tmp_path: Path) -> None:
    inner = make(db, name="inner")
    outer = make(db, name="outer", steps=[{"name": "n", "workflow": "inner"}])
    run = ended_run(db, outer, 10)
    assert run.status is WorkflowStatus.SUCCESS
    children = db.read_sync(wf_run_store.children, [run.id])
    assert len(children) == 1 and steps_of(db, children[0].id)
    prune(db, tmp_path)  # no retention anywhere: everything stays
    assert left(db, outer) == [run.id]
    prune(db, tmp_path, Retention(max_age=float(DAY.total_seconds())))
    assert left(db, outer) == [] and left(db, inner) == []
    assert all_step_runs(db) == set()


def test_a_deleted_workflows_runs_follow_the_retention_they_ran_under(db: Database,
                                                                    tmp_path: Path) -> None:
    workflow = make(db, name="gone", retention={"max_runs": 1})
    runs = [ended_run(db, workflow, days) for days in (2, 1)]
    db.write_sync(store.delete, str(workflow.id))
    prune(db, tmp_path)
    kept = [r.id for r in db.read_sync(wf_run_store.search)]
    assert kept == [runs[1].id]
    assert {s.workflow_run_id for s in
            db.read_sync(run_store.search, limit=100)} == {runs[1].id}
