"""Store contract tests: the same assertions on SQLite and on PostgreSQL."""

from __future__ import annotations

import concurrent.futures
import json
from datetime import UTC, datetime, timedelta

import pytest

from herder.model import outputs
from herder.model.errors import Conflict, InvalidTransition, NameTaken, NotFound
from herder.model.jobs import JobSpec
from herder.model.runs import TERMINAL, RunStatus, StopReason, Trigger
from herder.store import jobs as job_store
from herder.store import runs as run_store
from herder.store.database import Database

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _job(db: Database, name: str = "backup", namespace: str = "default") -> int:
    spec = JobSpec(name=name, namespace=namespace, command=["true"], labels={"team": "ops"})
    return db.write_sync(job_store.create, spec, NOW).id


def _run(db: Database, job_id: int) -> int:
    def create(conn):  # type: ignore[no-untyped-def]
        job = job_store.get(conn, str(job_id))
        return run_store.create(conn, job=job, params={}, env={}, trigger=Trigger.API, now=NOW)

    return db.write_sync(create).id


def test_jobs_are_unique_per_namespace(db: Database) -> None:
    _job(db)
    _job(db, namespace="ops")
    with pytest.raises(NameTaken):
        _job(db)


def test_job_refs(db: Database) -> None:
    job_id = _job(db, namespace="ops")
    for ref in (str(job_id), "ops/backup"):
        assert db.read_sync(job_store.get, ref).id == job_id
    with pytest.raises(NotFound):
        db.read_sync(job_store.get, "backup")  # it is not in default


def test_job_search_by_label_and_text(db: Database) -> None:
    _job(db, "backup")
    report = JobSpec(name="report", command="x", labels={"team": "bi"})
    db.write_sync(job_store.create, report, NOW)
    found = db.read_sync(job_store.search, labels={"team": "bi"})
    assert [j.spec.name for j in found] == ["report"]
    assert [j.spec.name for j in db.read_sync(job_store.search, q="ack")] == ["backup"]
    assert db.read_sync(job_store.search, q="%") == []


def test_datetimes_come_back_utc_aware(db: Database) -> None:
    job_id = _job(db)
    job = db.read_sync(job_store.get, str(job_id))
    assert job.created_at == NOW and job.created_at.tzinfo is not None


def test_runs_have_integer_ids_and_count_on_the_job(db: Database) -> None:
    job_id = _job(db)
    ids = [_run(db, job_id) for _ in range(3)]
    assert ids == sorted(ids) and all(isinstance(i, int) for i in ids)
    assert db.read_sync(job_store.get, str(job_id)).run_count == 3
    page = db.read_sync(run_store.search, job_id=job_id, limit=2)
    assert [r.id for r in page] == ids[::-1][:2]
    rest = db.read_sync(run_store.search, job_id=job_id, before_id=page[-1].id)
    assert [r.id for r in rest] == [ids[0]]


def test_guarded_transitions(db: Database) -> None:
    run_id = _run(db, _job(db))
    with pytest.raises(InvalidTransition, match="READY to RUNNING"):
        db.write_sync(run_store.set_status, run_id, RunStatus.RUNNING)
    claimed = db.write_sync(run_store.claim_ready, "server-a", 10)
    assert [r.id for r in claimed] == [run_id] and claimed[0].owner == "server-a"
    with pytest.raises(Conflict, match="owned by another server"):
        db.write_sync(run_store.set_status, run_id, RunStatus.RUNNING, owner="server-b")
    db.write_sync(run_store.set_status, run_id, RunStatus.RUNNING, owner="server-a")
    done = db.write_sync(run_store.finish, run_id, owner="server-a", exit_code=3, signal=None,
                         now=NOW)
    assert done.status is RunStatus.APP_ERROR and done.exit_code == 3


@pytest.mark.parametrize("terminal", sorted(TERMINAL))
def test_the_store_refuses_to_change_a_terminal_status(db: Database, terminal: RunStatus) -> None:
    run_id = _run(db, _job(db))
    db.write_sync(run_store.claim_ready, "s", 10)
    db.write_sync(run_store.set_status, run_id, RunStatus.RUNNING)
    if terminal is RunStatus.SKIPPED:  # only reachable before launch
        run_id = _run(db, _job(db, "other"))
    db.write_sync(run_store.set_status, run_id, terminal)
    for target in RunStatus:
        with pytest.raises(InvalidTransition):
            db.write_sync(run_store.set_status, run_id, target)
    assert db.read_sync(run_store.get, run_id).status is terminal


def test_cancel_before_launch_aborts_at_once(db: Database) -> None:
    run_id = _run(db, _job(db))
    run = db.write_sync(run_store.request_cancel, run_id, force=False, now=NOW)
    assert run.status is RunStatus.ABORTED and run.finished_at == NOW
    with pytest.raises(InvalidTransition, match="already ended"):
        db.write_sync(run_store.request_cancel, run_id, force=False, now=NOW)


def test_cancel_of_a_running_run_is_a_request_then_aborted(db: Database) -> None:
    run_id = _run(db, _job(db))
    db.write_sync(run_store.claim_ready, "s", 10)
    db.write_sync(run_store.set_status, run_id, RunStatus.RUNNING)
    run = db.write_sync(run_store.request_cancel, run_id, force=True, now=NOW)
    assert run.status is RunStatus.RUNNING and run.cancel_requested_at == NOW
    assert run.stop_reason is StopReason.CANCEL and run.cancel_force
    # A timeout arriving later does not change why it was stopped.
    assert not db.write_sync(run_store.mark_stopping, run_id, StopReason.TIMEOUT)
    end = db.write_sync(run_store.finish, run_id, owner="s", exit_code=0, signal=None,
                        now=NOW + timedelta(seconds=1))
    assert end.status is RunStatus.ABORTED


def test_a_run_is_claimed_once_under_concurrent_claims(db: Database) -> None:
    job_id = _job(db)
    ids = {_run(db, job_id) for _ in range(40)}
    other = Database(db.url)  # a second server: its own writer, its own connections
    try:
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(d.write_sync, run_store.claim_ready, f"s{i}", 7)
                       for i, d in enumerate([db, other] * 6)]
            claimed = [r.id for f in futures for r in f.result()]
    finally:
        other.close()
    assert sorted(claimed) == sorted(ids)


def test_group_commit_isolates_a_failing_call(db: Database) -> None:
    _job(db)
    spec = JobSpec(name="backup", command=["true"])
    futures = [db.submit_write(job_store.create, JobSpec(name=f"j{i}", command=["x"]), NOW)
               for i in range(5)]
    failing = db.submit_write(job_store.create, spec, NOW)
    futures += [db.submit_write(job_store.create, JobSpec(name=f"k{i}", command=["x"]), NOW)
                for i in range(5)]
    assert all(f.result().id for f in futures)
    with pytest.raises(NameTaken):
        failing.result()
    assert len(db.read_sync(job_store.search)) == 11


def test_deleting_a_job_keeps_its_runs(db: Database) -> None:
    job_id = _job(db)
    run_id = _run(db, job_id)
    with pytest.raises(Conflict, match="active run"):
        db.write_sync(job_store.delete, str(job_id))
    db.write_sync(run_store.request_cancel, run_id, force=False, now=NOW)
    db.write_sync(job_store.delete, str(job_id))
    run = db.read_sync(run_store.get, run_id)
    assert run.job_id is None and run.job_ref == "default/backup"


def test_a_run_keeps_its_outputs_with_its_end(db: Database) -> None:
    published = outputs.load(json.dumps({
        "rows": 2**63 - 1, "city": "Zürich 東京 🚀", "text": "a\\u0000b\t\u0001\"'",
        "files": ["a", {"nested": [None, True, -0.5]}],
    }).encode())
    assert published.error is None
    run_id = _run(db, _job(db))
    assert db.read_sync(run_store.get, run_id).outputs == {}
    db.write_sync(run_store.claim_ready, "s", 10)
    db.write_sync(run_store.set_status, run_id, RunStatus.RUNNING)
    end = db.write_sync(run_store.finish, run_id, owner="s", exit_code=3, signal=None, now=NOW,
                        outputs=published)
    assert end.status is RunStatus.APP_ERROR
    assert db.read_sync(run_store.get, run_id).outputs == published.values
    assert end.outputs == published.values and end.outputs_error is None


def test_a_run_records_why_its_outputs_were_not_kept(db: Database) -> None:
    run_id = _run(db, _job(db))
    db.write_sync(run_store.claim_ready, "s", 10)
    db.write_sync(run_store.set_status, run_id, RunStatus.RUNNING)
    refused = outputs.load(b"rows=\xff")
    db.write_sync(run_store.finish, run_id, owner="s", exit_code=0, signal=None, now=NOW,
                  outputs=refused)
    run = db.read_sync(run_store.get, run_id)
    assert run.outputs == {} and run.outputs_error == refused.error
