"""Bundles and input files in the store, on SQLite and PostgreSQL: kept once, kept while used,
attached only before dispatch, gone with their run, and never lost to a racing claim."""

from __future__ import annotations

import asyncio
import concurrent.futures
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import Connection

from herder.bundles.archive import Limits, inspect
from herder.engine.retention import Pruner
from herder.model.errors import Conflict, InvalidSpec, NotFound
from herder.model.inputs import FileLimits
from herder.model.jobs import JobSpec, Script
from herder.model.policies import Retention
from herder.model.runs import Run, RunStatus, Trigger
from herder.store import bundles as bundle_store
from herder.store import jobs as job_store
from herder.store import run_files as file_store
from herder.store import runs as run_store
from herder.store.bundles import Bundle
from herder.store.database import Database
from tests.unit.test_bundle_archive import make_zip

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
LIMITS = FileLimits(max_size=100, max_count=2, max_total=150)


def keep(db: Database, data: bytes, entrypoint: str = "script.sh") -> tuple[Bundle, bool]:
    import hashlib

    found = inspect(data, Limits())
    bundle = Bundle(id=hashlib.sha256(data).hexdigest(), kind=found.kind, entrypoint=entrypoint,
                    size=len(data), unpacked_size=found.unpacked, files=found.files,
                    created_at=NOW)
    return db.write_sync(bundle_store.save, bundle, data, entrypoint_given=True)


def job_of(db: Database, name: str, script: Script | None = None) -> int:
    spec = JobSpec(name=name, command=None if script else ["true"], script=script)

    def create(conn: Connection) -> int:
        return job_store.create(conn, bundle_store.check_script(conn, spec), NOW).id

    return db.write_sync(create)


def run_of(db: Database, job_id: int, status: RunStatus = RunStatus.ACTION_PENDING) -> Run:
    def create(conn: Connection) -> Run:
        job = job_store.get(conn, str(job_id))
        return run_store.create(conn, job=job, params={}, env={}, trigger=Trigger.API, now=NOW,
                                status=status)

    return db.write_sync(create)


def test_a_bundle_is_kept_once_and_named_by_jobs(db: Database) -> None:
    data = make_zip(("script.sh", b"echo hi\n"), ("run.sh", b"echo run\n"))
    first, created = keep(db, data)
    assert created and first.files[0].name == "script.sh"
    again, created = keep(db, data, entrypoint="run.sh")
    assert not created and again.id == first.id and again.entrypoint == "run.sh"
    assert db.read_sync(bundle_store.data, first.id)[1] == data
    assert [b.id for b in db.read_sync(bundle_store.search, after_id=None, limit=10)] == [first.id]
    job_id = job_of(db, "user", Script(bundle=first.id))
    spec = db.read_sync(job_store.get, str(job_id)).spec
    assert spec.script == Script(bundle=first.id)  # kept as given: the bundle's own is used
    with pytest.raises(Conflict, match="job default/user"):
        db.write_sync(bundle_store.delete, first.id)
    with pytest.raises(Conflict, match="job default/user"):  # an id is read in any case
        db.write_sync(bundle_store.delete, first.id.upper())
    with pytest.raises(InvalidSpec, match=r"script.bundle: no bundle"):
        job_of(db, "nobundle", Script(bundle="f" * 64))
    with pytest.raises(InvalidSpec, match=r"script.entrypoint: the bundle has no file"):
        job_of(db, "noentry", Script(bundle=first.id, entrypoint="x.sh"))


def test_a_bundle_is_kept_while_an_active_run_uses_it(db: Database) -> None:
    bundle, _ = keep(db, make_zip(("script.sh", b"true\n")))
    job_id = job_of(db, "user", Script(bundle=bundle.id))
    run = run_of(db, job_id, RunStatus.READY)
    db.write_sync(lambda conn: job_store.update(
        conn, job_id, JobSpec(name="user", command="true"), NOW))
    with pytest.raises(Conflict, match=f"run {run.id}"):
        db.write_sync(bundle_store.delete, bundle.id)
    db.write_sync(run_store.request_cancel, run.id, force=True, now=NOW)
    db.write_sync(bundle_store.delete, bundle.id)
    with pytest.raises(NotFound):
        db.read_sync(bundle_store.get, bundle.id)


def test_files_are_attached_before_dispatch_only(db: Database) -> None:
    run = run_of(db, job_of(db, "reader"))
    kept, created = db.write_sync(file_store.put, run.id, "a.txt", b"abc", now=NOW, limits=LIMITS)
    assert created and kept.size == 3 and kept.sha256.startswith("ba7816bf")
    _, created = db.write_sync(file_store.put, run.id, "a.txt", b"abcd", now=NOW, limits=LIMITS)
    assert not created
    db.write_sync(file_store.put, run.id, "b.txt", b"b" * 100, now=NOW, limits=LIMITS)
    with pytest.raises(InvalidSpec, match="at most 2"):
        db.write_sync(file_store.put, run.id, "c.txt", b"c", now=NOW, limits=LIMITS)
    with pytest.raises(InvalidSpec, match="150 bytes in all"):
        db.write_sync(file_store.put, run.id, "a.txt", b"a" * 60, now=NOW, limits=LIMITS)
    with pytest.raises(InvalidSpec, match="larger than 100"):
        db.write_sync(file_store.put, run.id, "a.txt", b"a" * 101, now=NOW, limits=LIMITS)
    assert [(f.name, f.size) for f in db.read_sync(file_store.listing, run.id)] == [
        ("a.txt", 4), ("b.txt", 100)]
    db.write_sync(run_store.set_status, run.id, RunStatus.READY)
    assert db.write_sync(run_store.claim_ready, "me", 10)[0].id == run.id
    with pytest.raises(Conflict, match="JOB_DEPLOYED: input files can be attached only"):
        db.write_sync(file_store.put, run.id, "late.txt", b"x", now=NOW, limits=LIMITS)
    assert db.read_sync(file_store.runs_with_files, [run.id, run.id + 1]) == {run.id}
    assert dict(db.read_sync(file_store.load, run.id)) == {"a.txt": b"abcd", "b.txt": b"b" * 100}
    with pytest.raises(NotFound):
        db.write_sync(file_store.put, 10**9, "a.txt", b"x", now=NOW, limits=LIMITS)


def test_files_are_copied_to_a_retry(db: Database) -> None:
    job_id = job_of(db, "copied")
    parent, child = run_of(db, job_id), run_of(db, job_id)
    db.write_sync(file_store.put, parent.id, "a.txt", b"abc", now=NOW, limits=LIMITS)
    db.write_sync(file_store.copy, parent.id, child.id)
    assert db.read_sync(file_store.load, child.id) == [("a.txt", b"abc")]
    assert db.read_sync(file_store.listing, child.id) == db.read_sync(file_store.listing,
                                                                      parent.id)


def test_pruned_runs_lose_their_files(db: Database, tmp_path: Path) -> None:
    job_id = job_of(db, "pruned")
    run = run_of(db, job_id)
    db.write_sync(file_store.put, run.id, "a.txt", b"abc", now=NOW, limits=LIMITS)
    db.write_sync(run_store.request_cancel, run.id, force=False, now=NOW)
    db.write_sync(lambda conn: job_store.update(
        conn, job_id, JobSpec(name="pruned", command="true",
                              retention=Retention(max_age=1.0)), NOW))
    pruner = Pruner(db, default=Retention(), clock=lambda: datetime(2027, 1, 1, tzinfo=UTC),
                    folders_of=lambda run: [tmp_path / str(run.id)])
    assert asyncio.run(pruner.prune()) == 1
    assert db.read_sync(file_store.listing, run.id) == []


def test_a_file_racing_a_claim_is_either_seen_by_the_run_or_refused(store_url: str) -> None:
    """Two servers: one attaches a file while the other claims the run and, as the engine
    does once its claim is committed, loads the run's files. No file is ever lost."""
    first, second = Database(store_url), Database(store_url)
    try:
        job_id = job_of(first, "race")
        runs = [run_of(first, job_id, RunStatus.READY) for _ in range(40)]
        seen: dict[int, set[str]] = {}

        def claim_and_load() -> None:
            while len(seen) < len(runs):
                for claimed in second.write_sync(run_store.claim_ready, "other", 5):
                    seen[claimed.id] = {n for n, _ in second.read_sync(file_store.load,
                                                                       claimed.id)}

        def attach(run_id: int) -> bool:
            try:
                first.write_sync(file_store.put, run_id, "in.txt", b"x", now=NOW, limits=LIMITS)
            except Conflict:
                return False
            return True

        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            claiming = pool.submit(claim_and_load)
            attached = {run.id: attach(run.id) for run in runs}
            claiming.result(timeout=60)
        for run in runs:
            assert ("in.txt" in seen[run.id]) is attached[run.id], run.id
    finally:
        first.close()
        second.close()
