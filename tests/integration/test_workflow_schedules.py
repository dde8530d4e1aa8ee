"""Workflows in time on a real store (SQLite and PostgreSQL), with the clock in the test's
hands: slots become workflow runs exactly once, by the job's misfire rules; the concurrency
policy and the timeout act on top-level workflow runs."""

from __future__ import annotations

import concurrent.futures
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Connection

from herder.engine import admission, workflow_schedules, workflows
from herder.model.errors import Conflict, InvalidSpec
from herder.model.runs import Run, RunStatus, Trigger
from herder.model.workflow_state import WorkflowRun, WorkflowStatus
from herder.model.workflows import Workflow, parse_workflow
from herder.store import runs as run_store
from herder.store import workflow_runs as run_store_wf
from herder.store import workflows as store
from herder.store.database import Database

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
S = timedelta(seconds=1)
M = timedelta(minutes=1)



@pytest.fixture(autouse=True)
def _fresh_frozen_specs() -> None:
    """``engine.workflows`` keeps frozen specs by workflow run id; each test has a new store
    whose ids start again at 1."""
    workflows._FROZEN.clear()


def make(db: Database, name: str = "wf", now: datetime = NOW, **fields: Any) -> Workflow:
    fields.setdefault("steps", [{"name": "a", "command": "true"}])
    spec = parse_workflow({"name": name, "namespace": "data", **fields})
    return db.write_sync(store.create, spec, now)


def tick(db: Database, now: datetime) -> workflow_schedules.Tick:
    return db.write_sync(workflow_schedules.tick, now)


def runs_of(db: Database, workflow: Workflow) -> list[WorkflowRun]:
    return list(reversed(db.read_sync(run_store_wf.search, workflow_id=workflow.id,
                                      limit=10_000)))


def slots(found: list[WorkflowRun], status: WorkflowStatus | None = None) -> list[datetime]:
    return [r.scheduled_for for r in found if status is None or r.status is status
            if r.scheduled_for is not None]


def get(db: Database, workflow: Workflow) -> Workflow:
    return db.read_sync(store.get, str(workflow.id))


def set_enabled(db: Database, workflow: Workflow, enabled: bool, now: datetime) -> Workflow:
    def op(conn: Connection) -> Workflow:
        old = store.get(conn, str(workflow.id))
        spec = parse_workflow(old.spec.to_dict() | {"enabled": enabled})
        return store.update(conn, old.id, spec, now)

    return db.write_sync(op)


def start_now(db: Database, workflow: Workflow, now: datetime = NOW) -> WorkflowRun:
    def op(conn: Connection) -> WorkflowRun:
        run, _ = workflows.start(conn, store.get(conn, str(workflow.id)), params={},
                                 trigger=Trigger.API, now=now)
        assert run is not None
        return run

    return db.write_sync(op)


def step_runs(db: Database, run: WorkflowRun) -> list[Run]:
    rows = db.read_sync(run_store_wf.step_runs, [run.id])
    return [db.read_sync(run_store.get, row.id) for row in rows]


def finish_steps(db: Database, run: WorkflowRun, now: datetime) -> WorkflowRun:
    """Run every READY step run of ``run`` to SUCCESS, as a dispatcher would."""
    while True:
        ready = [r for r in step_runs(db, run) if r.status is RunStatus.READY]
        if not ready:
            return db.read_sync(run_store_wf.get, run.id)
        claimed = db.write_sync(run_store.claim_ready, "server-a", 1000, epoch=1)
        for step in claimed:
            db.write_sync(run_store.set_status, step.id, RunStatus.RUNNING, owner="server-a",
                          epoch=1, started_at=now)

            def end(conn: Connection, step_id: int = step.id) -> None:
                ended = run_store.finish(conn, step_id, owner="server-a", exit_code=0,
                                         signal=None, now=now, epoch=1)
                admission.after_end(conn, ended, now)

            db.write_sync(end)


# Slots ---------------------------------------------------------------------------------------


def test_each_slot_gets_exactly_one_workflow_run(db: Database) -> None:
    workflow = make(db, schedule={"cron": "*/10 * * * * *"})
    assert workflow.next_run_at == NOW + 10 * S
    assert tick(db, NOW + 5 * S).workflows == 0  # nothing due: not even planned ahead
    tick(db, NOW + 35 * S)
    found = runs_of(db, workflow)
    assert slots(found) == [NOW + 10 * S, NOW + 20 * S, NOW + 30 * S]
    assert all(r.trigger == "schedule" and r.status is WorkflowStatus.RUNNING for r in found)
    assert all(len(step_runs(db, r)) == 1 for r in found)  # their first steps started
    tick(db, NOW + 35 * S)  # the same moment again: nothing new
    assert len(runs_of(db, workflow)) == 3
    assert get(db, workflow).next_run_at == NOW + 40 * S


def test_servers_ticking_at_once_never_double_a_slot(store_url: str) -> None:
    """Eight stores (as eight servers would have) tick the same due workflows at once."""
    first = Database(store_url)
    servers = [Database(store_url) for _ in range(8)]
    try:
        made = [make(first, name=f"wf-{i}", schedule={"cron": "* * * * * *"})
                for i in range(10)]
        moment = NOW + 20 * S
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda d: d.write_sync(workflow_schedules.tick, moment), servers))
        for workflow in made:
            found = runs_of(first, workflow)
            assert Counter(slots(found)) == {NOW + k * S: 1 for k in range(1, 21)}
            assert Counter(len(step_runs(first, r)) for r in found) == {1: 20}
    finally:
        for database in (first, *servers):
            database.close()


def test_a_slot_lost_from_the_cursor_is_not_run_twice(db: Database) -> None:
    workflow = make(db, schedule={"every": "10s"})
    tick(db, NOW + 25 * S)
    db.write_sync(store.set_schedules, [store.schedule_update(
        workflow, NOW + 10 * S, {"cursor": NOW.isoformat()})])
    tick(db, NOW + 35 * S)
    assert Counter(slots(runs_of(db, workflow))) == {NOW + k * 10 * S: 1 for k in (1, 2, 3)}


@pytest.mark.parametrize(
    ("policy", "ran"),
    [("skip", []), ("run_once", [10]), ("run_all", list(range(1, 11)))],
)
def test_misfire_policies_after_downtime(db: Database, policy: str, ran: list[int]) -> None:
    workflow = make(db, schedule={"every": "1m"}, misfire={"policy": policy, "grace": "30s"})
    tick(db, NOW + 10 * M + 10 * S)  # down for ten minutes: the last slot is within the grace
    found = runs_of(db, workflow)
    assert Counter(slots(found)) == {NOW + k * M: 1 for k in range(1, 11)}
    started = [r for r in found if r.status is WorkflowStatus.RUNNING]
    assert slots(started) == [NOW + k * M for k in sorted({*ran, 10})]
    skipped = [r for r in found if r.status is WorkflowStatus.ABORTED]
    assert all(r.reason.startswith("skipped: ") and r.finished_at is not None for r in skipped)
    assert all(step_runs(db, r) == [] for r in skipped)


def test_disabled_pauses_and_enabling_follows_the_misfire_policy(db: Database) -> None:
    workflow = make(db, schedule={"every": "1m"}, misfire={"policy": "skip", "grace": "30s"})
    tick(db, NOW + M)
    paused = set_enabled(db, workflow, False, NOW + M + 5 * S)
    assert paused.next_run_at is None
    tick(db, NOW + 4 * M)
    assert slots(runs_of(db, workflow)) == [NOW + M]
    resumed = set_enabled(db, workflow, True, NOW + 4 * M + 10 * S)
    assert resumed.next_run_at == NOW + 2 * M  # the slots missed come first, by the policy
    tick(db, NOW + 5 * M)
    found = runs_of(db, workflow)
    assert slots(found, WorkflowStatus.RUNNING) == [NOW + M, NOW + 5 * M]
    skipped = [r for r in found if r.status is WorkflowStatus.ABORTED]
    assert slots(skipped) == [NOW + 2 * M, NOW + 3 * M, NOW + 4 * M]
    assert all("the workflow was disabled at this slot" in r.reason for r in skipped)
    assert get(db, workflow).next_run_at == NOW + 6 * M


def test_a_changed_schedule_moves_next_run_at_and_starts_from_now(db: Database) -> None:
    workflow = make(db, schedule={"every": "1h"})
    assert workflow.next_run_at == NOW + 60 * M

    def op(conn: Connection) -> Workflow:
        spec = parse_workflow(workflow.spec.to_dict() | {"schedule": {"every": "1m"}})
        return store.update(conn, workflow.id, spec, NOW + 30 * S)

    assert db.write_sync(op).next_run_at == NOW + M  # the first slot of the new one
    unscheduled = db.write_sync(lambda conn: store.update(
        conn, workflow.id, parse_workflow(workflow.spec.to_dict() | {"schedule": None}), NOW))
    assert unscheduled.next_run_at is None


def test_a_one_shot_runs_once_then_disables_itself(db: Database) -> None:
    at = NOW + 5 * M
    workflow = make(db, schedule={"at": at.isoformat()})
    assert workflow.next_run_at == at
    tick(db, at + S)
    tick(db, at + 10 * M)
    assert slots(runs_of(db, workflow)) == [at]
    after = get(db, workflow)
    assert not after.spec.enabled and after.next_run_at is None


# Concurrency ---------------------------------------------------------------------------------


def test_forbid_skips_a_slot_while_a_run_is_active_and_refuses_a_person(db: Database) -> None:
    workflow = make(db, schedule={"every": "1m"}, concurrency="forbid")
    tick(db, NOW + M)
    first = runs_of(db, workflow)[0]
    tick(db, NOW + 2 * M)
    second = runs_of(db, workflow)[1]
    assert second.status is WorkflowStatus.ABORTED and second.scheduled_for == NOW + 2 * M
    assert second.reason == (f"skipped: concurrency forbid, max_active 1; active workflow "
                             f"run(s): {first.id}")
    with pytest.raises(Conflict, match="concurrency is forbid") as refused:
        start_now(db, workflow)
    assert refused.value.details == {"active_runs": [first.id]}
    assert finish_steps(db, first, NOW + 2 * M).status is WorkflowStatus.SUCCESS
    assert start_now(db, workflow).status is WorkflowStatus.RUNNING  # free again


def test_max_active_is_the_limit_and_nested_runs_do_not_count(db: Database) -> None:
    make(db, name="inner")
    workflow = make(db, concurrency="forbid", max_active=2,
                    steps=[{"name": "n", "workflow": "inner"}])
    start_now(db, workflow)
    start_now(db, workflow)  # each made a nested run of inner: not counted for wf
    with pytest.raises(Conflict, match="2 active run"):
        start_now(db, workflow)
    inner = make(db, name="other-inner")
    assert start_now(db, inner).status is WorkflowStatus.RUNNING


def test_replace_cancels_the_active_run_for_the_new_one(db: Database) -> None:
    workflow = make(db, concurrency="replace")
    old = start_now(db, workflow)
    new = start_now(db, workflow, NOW + S)
    old_now = db.read_sync(run_store_wf.get, old.id)
    assert old_now.status is WorkflowStatus.ABORTED and old_now.cancel_requested_at == NOW + S
    assert [r.status for r in step_runs(db, old_now)] == [RunStatus.ABORTED]
    assert new.status is WorkflowStatus.RUNNING


def test_queue_is_refused_for_a_workflow(db: Database) -> None:
    with pytest.raises(InvalidSpec, match="concurrency: 'queue' is not supported"):
        make(db, concurrency="queue")


# Timeout -------------------------------------------------------------------------------------


def test_a_run_past_its_timeout_is_cancelled_and_says_so(db: Database) -> None:
    workflow = make(db, timeout="1m")
    run = start_now(db, workflow)
    assert db.write_sync(workflow_schedules.time_out, NOW + 59 * S).created == []
    assert db.read_sync(run_store_wf.get, run.id).status is WorkflowStatus.RUNNING
    db.write_sync(workflow_schedules.time_out, NOW + M)
    ended = db.read_sync(run_store_wf.get, run.id)
    assert ended.status is WorkflowStatus.ABORTED
    assert ended.reason == "timed out after 1m"
    assert [r.status for r in step_runs(db, ended)] == [RunStatus.ABORTED]
    db.write_sync(workflow_schedules.time_out, NOW + 2 * M)  # once only
    assert db.read_sync(run_store_wf.get, run.id).reason == "timed out after 1m"


def test_a_launched_step_keeps_the_timeout_reason_until_it_stops(db: Database) -> None:
    workflow = make(db, timeout="30s")
    run = start_now(db, workflow)
    claimed = db.write_sync(run_store.claim_ready, "server-a", 10, epoch=1)
    db.write_sync(run_store.set_status, claimed[0].id, RunStatus.RUNNING, owner="server-a",
                  epoch=1, started_at=NOW, handle={"pid": 1})
    stopping = db.write_sync(workflow_schedules.time_out, NOW + M)
    assert [r.id for r in stopping.stop] == [claimed[0].id]  # the engine stops its process
    cancelling = db.read_sync(run_store_wf.get, run.id)
    assert cancelling.status is WorkflowStatus.CANCELLING
    assert cancelling.reason == "timed out after 30s"

    def killed(conn: Connection) -> None:
        ended = run_store.finish(conn, claimed[0].id, owner="server-a", exit_code=None,
                                 signal=15, now=NOW + M, epoch=1)
        admission.after_end(conn, ended, NOW + M)

    db.write_sync(killed)
    ended = db.read_sync(run_store_wf.get, run.id)
    assert (ended.status, ended.reason) == (WorkflowStatus.ABORTED, "timed out after 30s")
