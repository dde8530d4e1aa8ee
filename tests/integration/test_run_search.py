"""Searching runs: every filter, alone and together, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Connection

from herder.model.jobs import JobSpec
from herder.model.runs import RunStatus, Trigger
from herder.store import jobs as job_store
from herder.store import runs as run_store
from herder.store.database import Database

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)


def seed(db: Database) -> dict[str, int]:
    """Runs of three jobs over three hours; answers their ids by a short name."""
    specs = [
        JobSpec(name="backup", command="true", labels={"team": "ops"},
                description="nightly 100%_backup of the database"),
        JobSpec(name="report", command="true", labels={"team": "bi"}, namespace="bi"),
        JobSpec(name="cleanup", command="true", labels={"team": "ops", "tier": "low"}),
    ]

    def op(conn: Connection) -> dict[str, int]:
        ids = {}
        for k, spec in enumerate(specs):
            job = job_store.create(conn, spec, NOW)
            for hour in range(3):
                run = run_store.create(
                    conn, job=job, params={}, env={}, now=NOW + hour * H,
                    trigger=Trigger.SCHEDULE if hour else Trigger.API,
                    submitter="alice" if k == 0 else None,
                    status=RunStatus.SKIPPED if hour == 2 else RunStatus.READY,
                )
                ids[f"{spec.name}{hour}"] = run.id
        return ids

    return db.write_sync(op)


def names(db: Database, ids: dict[str, int], **filters: object) -> set[str]:
    by_id = {v: k for k, v in ids.items()}
    return {by_id[r.id] for r in db.read_sync(run_store.search, **filters)}  # type: ignore[arg-type]


def test_each_filter(db: Database) -> None:
    ids = seed(db)
    assert names(db, ids, labels={"team": "ops"}) == {
        f"{j}{h}" for j in ("backup", "cleanup") for h in range(3)}
    assert names(db, ids, labels={"team": "ops", "tier": "low"}) == {"cleanup0", "cleanup1",
                                                                    "cleanup2"}
    assert names(db, ids, since=NOW + H, until=NOW + 2 * H) == {"backup1", "report1", "cleanup1"}
    assert names(db, ids, namespace="bi") == {"report0", "report1", "report2"}
    assert names(db, ids, namespace="default", job_name="backup") == {
        "backup0", "backup1", "backup2"}
    assert names(db, ids, submitter="alice", trigger=Trigger.API) == {"backup0"}
    assert names(db, ids, statuses=[RunStatus.SKIPPED], since=NOW + H) == {
        "backup2", "report2", "cleanup2"}


def test_free_text_is_literal_and_case_insensitive(db: Database) -> None:
    ids = seed(db)
    assert names(db, ids, q="REPO") == {"report0", "report1", "report2"}
    assert names(db, ids, q="100%_back") == {"backup0", "backup1", "backup2"}
    assert names(db, ids, q="%") == {"backup0", "backup1", "backup2"}  # only the description has %
    assert names(db, ids, q="_") == {"backup0", "backup1", "backup2"}


def test_runs_of_a_deleted_job_are_found_by_its_name(db: Database) -> None:
    ids = seed(db)
    for hour in (0, 1):
        db.write_sync(run_store.request_cancel, ids[f"cleanup{hour}"], force=False, now=NOW)
    db.write_sync(job_store.delete, "cleanup")
    assert names(db, ids, namespace="default", job_name="cleanup") == {
        "cleanup0", "cleanup1", "cleanup2"}


def test_pages_newest_first_with_a_cursor(db: Database) -> None:
    ids = seed(db)
    first = db.read_sync(run_store.search, labels={"team": "ops"}, limit=4)
    rest = db.read_sync(run_store.search, labels={"team": "ops"}, before_id=first[-1].id)
    got = [r.id for r in first + rest]
    assert got == sorted(got, reverse=True) and len(got) == 6 and len(set(got)) == 6
    assert set(got) <= set(ids.values())
