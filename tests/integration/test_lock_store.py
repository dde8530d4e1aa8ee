"""Locks in the store, through admission as the engine uses it, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from herder.engine import admission
from herder.model.errors import Conflict, NotFound
from herder.model.jobs import JobSpec
from herder.model.locks import parse_locks
from herder.model.runs import Run, RunStatus, Trigger
from herder.store import jobs as job_store
from herder.store import lock_reads
from herder.store import locks as lock_store
from herder.store import runs as run_store
from herder.store.database import Database
from herder.store.tables import runs

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _job(db: Database, name: str, locks: list[Any], **fields: Any) -> None:
    spec = JobSpec(name=name, command=["true"], locks=parse_locks(locks), **fields)
    db.write_sync(job_store.replace, spec, NOW)


def _submit(db: Database, job: str, not_before: datetime | None = None) -> Run:
    def admit(conn: Connection) -> Run:
        found = job_store.get(conn, job)
        return admission.admit(
            conn, found, trigger=Trigger.API, now=NOW, params={}, env={}, not_before=not_before
        ).created[0]

    return db.write_sync(admit)


def _finish(conn: Connection, run_id: int) -> admission.Admitted:
    """Launch and end a run as the engine does, with its follow-ups in the same transaction."""
    for status in (RunStatus.JOB_DEPLOYED, RunStatus.RUNNING):
        run_store.set_status(conn, run_id, status)
    run = run_store.set_status(conn, run_id, RunStatus.SUCCESS, exit_code=0, finished_at=NOW)
    return admission.after_end(conn, run, NOW)


def _end(db: Database, run_id: int) -> list[int]:
    """End a run; answers the runs it let in."""
    return [r.id for r in db.write_sync(_finish, run_id).created if r.status is RunStatus.READY]


def _status(db: Database, run_id: int) -> RunStatus:
    return db.read_sync(run_store.get, run_id).status


def _lock(db: Database, name: str) -> lock_reads.LockState:
    return db.read_sync(lock_reads.get, "default", name)


def test_a_mutex_lets_one_run_in_and_the_next_when_it_ends(db: Database) -> None:
    _job(db, "migrate", ["db"])
    first, second = _submit(db, "migrate"), _submit(db, "migrate")
    assert (first.status, second.status) == (RunStatus.READY, RunStatus.WAITING)
    lock = _lock(db, "db")
    assert [c.run_id for c in lock.holders] == [first.id]
    assert [c.run_id for c in lock.waiters] == [second.id]
    assert lock.jobs == ["default/migrate"] and lock.slots == 1
    (waiting,) = db.read_sync(lock_reads.of_runs, [second.id], NOW)[second.id]
    assert (waiting.held, waiting.holders, waiting.ahead) == (False, [first.id], 0)
    assert _end(db, first.id) == [second.id]
    assert _status(db, second.id) is RunStatus.READY
    assert [c.run_id for c in _lock(db, "db").holders] == [second.id]
    _end(db, second.id)
    assert _lock(db, "db").holders == [] and _lock(db, "db").waiters == []


def test_a_semaphore_never_has_more_holders_than_slots(db: Database) -> None:
    _job(db, "render", [{"name": "gpu", "slots": 2}])
    made = [_submit(db, "render") for _ in range(5)]
    assert [r.status for r in made] == [RunStatus.READY] * 2 + [RunStatus.WAITING] * 3
    assert db.read_sync(lock_reads.overbooked) == []
    assert _end(db, made[1].id) == [made[2].id]  # first in line, whoever ended
    assert len(_lock(db, "gpu").holders) == 2


def test_overlapping_sets_are_taken_all_at_once_in_order(db: Database) -> None:
    _job(db, "only-a", ["a"])
    _job(db, "both", ["a", "b"])
    _job(db, "only-b", ["b"])
    holder = _submit(db, "only-a")
    both = _submit(db, "both")  # a is taken: it takes neither a nor b
    later = _submit(db, "only-b")  # b is free, but an older run waits for it: no barging
    assert [r.status for r in (holder, both, later)] == [
        RunStatus.READY, RunStatus.WAITING, RunStatus.WAITING
    ]
    assert _lock(db, "b").holders == []
    assert _end(db, holder.id) == [both.id]
    assert {c.run_id for c in _lock(db, "a").holders} == {both.id}
    assert {c.run_id for c in _lock(db, "b").holders} == {both.id}
    assert _end(db, both.id) == [later.id]


def test_a_run_held_back_takes_its_locks_at_its_moment(db: Database) -> None:
    """A retry in its backoff (or a slot planned ahead) holds nothing and blocks nobody."""
    _job(db, "migrate", ["db"])
    later = NOW + timedelta(seconds=30)
    backoff = _submit(db, "migrate", not_before=later)
    now = _submit(db, "migrate")
    assert (backoff.status, now.status) == (RunStatus.WAITING, RunStatus.READY)
    assert db.read_sync(lock_store.next_due, NOW) == later
    assert db.write_sync(lock_store.grant_due, NOW) == []
    _end(db, now.id)
    assert _status(db, backoff.id) is RunStatus.WAITING  # its moment has not come
    assert [r.id for r in db.write_sync(lock_store.grant_due, later)] == [backoff.id]
    assert db.read_sync(lock_store.next_due, later) is None


def test_a_server_start_lets_in_the_runs_whose_moment_came_meanwhile(db: Database) -> None:
    _job(db, "migrate", ["db"])
    backoff = _submit(db, "migrate", not_before=NOW + timedelta(seconds=5))
    assert [r.id for r in db.write_sync(lock_store.repair, NOW + timedelta(seconds=9))] == [
        backoff.id
    ]


def test_a_cancelled_waiter_leaves_the_queue(db: Database) -> None:
    _job(db, "only-a", ["a"])
    _job(db, "both", ["a", "b"])
    _job(db, "only-b", ["b"])
    _submit(db, "only-a")
    both = _submit(db, "both")
    later = _submit(db, "only-b")

    def cancel(conn: Connection) -> list[int]:
        run = run_store.request_cancel(conn, both.id, force=False, now=NOW)
        return [r.id for r in admission.after_end(conn, run, NOW).created]

    assert db.write_sync(cancel) == [later.id]  # nobody is ahead of it for b any more
    assert [c.run_id for c in _lock(db, "a").waiters] == []


def test_a_run_waits_for_its_job_then_for_its_locks(db: Database) -> None:
    _job(db, "other", ["db"])
    _job(db, "queued", ["db"], concurrency="queue")
    holder = _submit(db, "other")
    first = _submit(db, "queued")  # its job lets it in: it waits for the lock
    second = _submit(db, "queued")  # it waits for its job: it has no claim yet
    assert (first.status, second.status) == (RunStatus.WAITING, RunStatus.WAITING)
    assert [c.run_id for c in _lock(db, "db").waiters] == [first.id]
    assert _end(db, holder.id) == [first.id]
    assert _status(db, second.id) is RunStatus.WAITING
    assert _end(db, first.id) == [second.id]


def test_two_jobs_must_agree_on_a_locks_slots(db: Database) -> None:
    _job(db, "one", [{"name": "pool", "slots": 2}])
    with pytest.raises(Conflict, match="job default/one declares it"):
        _job(db, "two", [{"name": "pool", "slots": 3}])
    with pytest.raises(NotFound):
        db.read_sync(job_store.get, "two")  # nothing was saved
    _job(db, "two", [{"name": "pool", "slots": 2}])
    assert _lock(db, "pool").jobs == ["default/one", "default/two"]
    _job(db, "other-ns", [{"name": "pool", "slots": 5}], namespace="ops")  # its own lock
    assert db.read_sync(lock_reads.get, "ops", "pool").slots == 5


def test_raising_the_slots_lets_waiters_in_and_unused_locks_go(db: Database) -> None:
    _job(db, "one", ["pool"])
    first, second = _submit(db, "one"), _submit(db, "one")
    assert second.status is RunStatus.WAITING
    _job(db, "one", [{"name": "pool", "slots": 2}])
    assert _status(db, second.id) is RunStatus.READY
    for run in (first, second):
        _end(db, run.id)
    _job(db, "one", [])
    with pytest.raises(NotFound, match="no lock named 'pool'"):
        _lock(db, "pool")
    _job(db, "two", ["scratch"])
    db.write_sync(job_store.delete, "two")
    with pytest.raises(NotFound, match="no lock named 'scratch'"):
        _lock(db, "scratch")


def test_a_lock_no_job_declares_goes_when_its_last_claim_does(db: Database) -> None:
    _job(db, "one", ["pool"])
    held, waiting = _submit(db, "one"), _submit(db, "one")
    _job(db, "one", [])  # the runs keep the locks their frozen spec names
    assert _end(db, held.id) == [waiting.id]
    _end(db, waiting.id)
    with pytest.raises(NotFound, match="no lock named 'pool'"):
        _lock(db, "pool")


def test_force_release_lets_the_next_in_and_the_run_goes_on(db: Database) -> None:
    _job(db, "migrate", ["db"])
    first, second = _submit(db, "migrate"), _submit(db, "migrate")
    with pytest.raises(Conflict, match="waiting for lock default/db"):
        db.write_sync(lock_store.force_release, "default", "db", second.id, NOW)
    with pytest.raises(NotFound, match="does not hold"):
        db.write_sync(lock_store.force_release, "default", "db", 999, NOW)
    granted = db.write_sync(lock_store.force_release, "default", "db", first.id, NOW)
    assert [r.id for r in granted] == [second.id]
    assert _status(db, first.id) is RunStatus.READY  # it goes on, without the lock
    assert _end(db, first.id) == []
    assert [c.run_id for c in _lock(db, "db").holders] == [second.id]


def test_repair_gives_back_the_locks_of_ended_runs(db: Database) -> None:
    _job(db, "migrate", ["db"])
    first, second = _submit(db, "migrate"), _submit(db, "migrate")

    def end_behind_its_back(conn: Connection) -> None:
        conn.execute(runs.update().where(runs.c.id == first.id).values(status="APP_ERROR"))

    db.write_sync(end_behind_its_back)
    assert [r.id for r in db.write_sync(lock_store.repair, NOW)] == [second.id]
    assert [c.run_id for c in _lock(db, "db").holders] == [second.id]


def test_the_store_forbids_a_second_claim_of_a_run_on_a_lock(db: Database) -> None:
    _job(db, "migrate", ["db"])
    run = _submit(db, "migrate")
    with pytest.raises(sa.exc.IntegrityError):
        db.write_sync(lock_store.request, run, NOW)


def test_two_stores_racing_never_grant_more_than_the_slots(store_url: str) -> None:
    """Four servers' stores end runs at once: every grant stays within the slots, and no
    freed slot is lost (a waiter left behind would stall the loop below)."""
    stores = [Database(store_url) for _ in range(4)]
    try:
        _job(stores[0], "render", [{"name": "pool", "slots": 3}], concurrency="allow")
        made = [_submit(stores[i % 4], "render") for i in range(80)]
        seen: list[int] = []
        problems: list[Any] = []

        def work(db: Database, owner: str) -> None:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                claimed = db.write_sync(run_store.claim_ready, owner, 1)
                if not claimed:
                    if all(_status(db, r.id).terminal for r in made):
                        return
                    continue
                seen.append(len(_lock(db, "pool").holders))
                problems.extend(db.read_sync(lock_reads.overbooked))
                db.write_sync(_end_claimed, claimed[0].id, owner)

        threads = [threading.Thread(target=work, args=(db, f"s{i}")) for i, db in
                   enumerate(stores)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert problems == []
        assert max(seen) <= 3
        left = [r.id for r in made if _status(stores[0], r.id) is not RunStatus.SUCCESS]
        assert left == [], "runs left waiting with a free slot: a lost grant"
        assert _lock(stores[0], "pool").holders == []
    finally:
        for db in stores:
            db.close()


def _end_claimed(conn: Connection, run_id: int, owner: str) -> None:
    run_store.set_status(conn, run_id, RunStatus.RUNNING, owner=owner)
    run = run_store.set_status(conn, run_id, RunStatus.SUCCESS, owner=owner, finished_at=NOW)
    admission.after_end(conn, run, NOW)


def test_two_ends_at_once_let_both_next_waiters_in(store_url: str) -> None:
    """Two servers end the two holders of a 2-slot lock at the same moment: both waiters get
    in. (Deciding without the namespace serialized, each would see the other's holder still
    there and grant the same first waiter: the second would wait with a slot free.)"""
    stores = [Database(store_url), Database(store_url)]
    try:
        _job(stores[0], "render", [{"name": "pool", "slots": 2}])
        for _ in range(10):
            made = [_submit(stores[0], "render") for _ in range(4)]
            barrier = threading.Barrier(2)

            threads = [threading.Thread(target=_end_at_once, args=(stores[i], made[i], barrier))
                       for i in (0, 1)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert [_status(stores[0], r.id) for r in made[2:]] == [RunStatus.READY] * 2
            for run in made[2:]:
                _end(stores[0], run.id)
    finally:
        for db in stores:
            db.close()


def _end_at_once(db: Database, run: Run, barrier: threading.Barrier) -> None:
    barrier.wait()
    db.write_sync(_slow_finish, run.id)


def _slow_finish(conn: Connection, run_id: int) -> None:
    """End a run, and stay in the transaction a moment after the run's own row is written, so
    that two ends overlap."""
    for status in (RunStatus.JOB_DEPLOYED, RunStatus.RUNNING):
        run_store.set_status(conn, run_id, status)
    run = run_store.set_status(conn, run_id, RunStatus.SUCCESS, exit_code=0, finished_at=NOW)
    time.sleep(0.05)  # widens the window the test is about; the outcome must not depend on it
    admission.after_end(conn, run, NOW)
