"""History retention: which ended runs go, which stay, and that their files go with them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.engine import Connection

from herder.engine.retention import Pruner
from herder.model.jobs import Job, JobSpec
from herder.model.policies import Retention, parse_retention
from herder.model.runs import Run, RunStatus, Trigger
from herder.store import jobs as job_store
from herder.store import namespaces as namespace_store
from herder.store import runs as run_store
from herder.store.database import Database

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def job_with_runs(db: Database, name: str, ages: list[int], retention: dict[str, object] | None,
                  ) -> tuple[Job, list[int]]:
    """A job whose runs ended ``ages`` days ago (oldest first)."""
    spec = JobSpec(name=name, command="true", retention=parse_retention(retention))

    def op(conn: Connection) -> tuple[Job, list[int]]:
        job = job_store.create(conn, spec, NOW)
        ids = []
        for age in ages:
            run = run_store.create(conn, job=job, params={}, env={}, trigger=Trigger.API,
                                   now=NOW - age * DAY, status=RunStatus.SKIPPED)
            ids.append(run.id)
        return job, ids

    return db.write_sync(op)


def pruner(db: Database, tmp_path: Path, default: Retention = Retention()) -> Pruner:
    return Pruner(db, default=default, clock=lambda: NOW,
                  folders_of=lambda run: [tmp_path / str(run.id)])


def left(db: Database, job: Job) -> set[int]:
    return {r.id for r in db.read_sync(run_store.search, job_id=job.id, limit=1000)}


def test_by_count_and_by_age_and_the_default(db: Database, tmp_path: Path) -> None:
    tmp_path = tmp_path / "files"
    counted, c = job_with_runs(db, "counted", [9, 8, 7, 6, 5], {"max_runs": 2})
    aged, a = job_with_runs(db, "aged", [40, 31, 29, 1], {"max_age": "30d"})
    plain, p = job_with_runs(db, "plain", [100, 2], None)
    for run_id in c + a + p:
        (tmp_path / str(run_id)).mkdir(parents=True)
    deleted = asyncio.run(pruner(db, tmp_path, Retention(max_age=50 * 86400.0)).prune())
    assert left(db, counted) == set(c[-2:])
    assert left(db, aged) == set(a[2:])
    assert left(db, plain) == {p[1]}  # the server's default (50 days) for a job that sets none
    assert deleted == 3 + 2 + 1
    assert sorted(int(d.name) for d in tmp_path.iterdir()) == sorted(c[-2:] + a[2:] + p[1:])


def test_runs_still_going_or_still_retried_stay(db: Database, tmp_path: Path) -> None:
    job, ids = job_with_runs(db, "busy", [5, 4], {"max_runs": 1})

    def more(conn: Connection) -> tuple[Run, Run]:
        fresh = job_store.get(conn, str(job.id))
        running = run_store.create(conn, job=fresh, params={}, env={}, trigger=Trigger.API,
                                   now=NOW)
        retry = run_store.create(conn, job=fresh, params={}, env={}, trigger=Trigger.RETRY,
                                 now=NOW, parent_id=ids[1], attempt=2)
        return running, retry

    running, retry = db.write_sync(more)
    asyncio.run(pruner(db, tmp_path).prune())
    # ids[0] goes; ids[1] is what an active retry points at; the active runs stay.
    assert left(db, job) == {ids[1], running.id, retry.id}


def test_nothing_is_pruned_without_a_retention(db: Database, tmp_path: Path) -> None:
    job, ids = job_with_runs(db, "kept", [1000, 500], None)
    assert asyncio.run(pruner(db, tmp_path).prune()) == 0
    assert left(db, job) == set(ids)


def test_runs_of_deleted_jobs_follow_the_retention_they_ran_under(
    db: Database, tmp_path: Path
) -> None:
    tmp_path = tmp_path / "files"
    counted, c = job_with_runs(db, "counted", [9, 8, 7, 6], {"max_runs": 1})
    plain, p = job_with_runs(db, "plain", [100, 2], None)
    _, k = job_with_runs(db, "kept", [100, 90], None)
    for job in (counted, plain):
        db.write_sync(job_store.delete, str(job.id))
    # A new job of the same name is another job: its history is its own.
    _, a = job_with_runs(db, "counted", [3], None)
    for run_id in c + p + k + a:
        (tmp_path / str(run_id)).mkdir(parents=True)

    def by_name(name: str) -> set[int]:
        found = db.read_sync(run_store.search, namespace="default", job_name=name, limit=100)
        return {r.id for r in found}

    deleted = asyncio.run(pruner(db, tmp_path, Retention(max_age=50 * 86400.0)).prune())
    assert by_name("counted") == {c[-1], *a}  # its own max_runs: 1, over the default
    assert by_name("plain") == {p[1]}  # the server's default, as for a job that sets none
    assert by_name("kept") == set()  # a live job: the default as ever
    assert deleted == 3 + 1 + 2
    assert sorted(int(d.name) for d in tmp_path.iterdir()) == sorted([c[-1], *a, p[1]])


def test_a_namespace_retention_serves_its_jobs_that_set_none(db: Database, tmp_path: Path) -> None:
    tmp_path = tmp_path / "files"

    def namespaced(name: str, namespace: str, retention: dict[str, object] | None) -> list[int]:
        spec = JobSpec(name=name, namespace=namespace, command="true",
                       retention=parse_retention(retention))

        def op(conn: Connection) -> list[int]:
            job = job_store.create(conn, spec, NOW)
            return [run_store.create(conn, job=job, params={}, env={}, trigger=Trigger.API,
                                     now=NOW - age * DAY, status=RunStatus.SKIPPED).id
                    for age in (9, 8, 7)]

        return db.write_sync(op)

    db.write_sync(namespace_store.create, "ops", NOW, {"max_runs": 1})
    plain = namespaced("plain", "ops", None)
    own = namespaced("own", "ops", {"max_runs": 2})
    elsewhere = namespaced("elsewhere", "default", None)
    deleted = asyncio.run(pruner(db, tmp_path, Retention(max_age=8.5 * 86400)).prune())

    def kept(ids: list[int]) -> set[int]:
        return {r.id for r in db.read_sync(run_store.search, limit=100)} & set(ids)

    assert kept(plain) == {plain[2]}  # the namespace's max_runs: 1 (over the server's age)
    assert kept(own) == set(own[1:])  # its own max_runs: 2, then the namespace's (no age)
    assert kept(elsewhere) == set(elsewhere[1:])  # the server's default: 8.5 days
    assert deleted == 2 + 1 + 1
    db.write_sync(namespace_store.set_retention, "ops", None)  # back to the server's
    asyncio.run(pruner(db, tmp_path, Retention(max_age=7.5 * 86400)).prune())
    assert kept(plain) == {plain[2]} and kept(own) == {own[2]}
