"""Searching runs: every filter, alone and together, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from herder.model.jobs import JobSpec
from herder.model.runs import RunStatus, Trigger
from herder.store import jobs as job_store
from herder.store import runs as run_store
from herder.store.database import Database
from herder.store.tables import run_labels

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


def test_free_text_finds_the_runs_of_deleted_jobs_and_pages(db: Database) -> None:
    ids = seed(db)
    db.write_sync(run_store.request_cancel, ids["backup0"], force=False, now=NOW)
    db.write_sync(run_store.request_cancel, ids["backup1"], force=False, now=NOW)
    db.write_sync(job_store.delete, "backup")
    # The deleted job's runs match on the name and description frozen in them.
    assert names(db, ids, q="100%_back") == {"backup0", "backup1", "backup2"}
    assert names(db, ids, q="up") == {f"{j}{h}" for j in ("backup", "cleanup") for h in range(3)}
    first = db.read_sync(run_store.search, q="up", limit=4)
    rest = db.read_sync(run_store.search, q="up", before_id=first[-1].id)
    assert [r.id for r in first + rest] == sorted(
        (ids[f"{j}{h}"] for j in ("backup", "cleanup") for h in range(3)), reverse=True)
    assert names(db, ids, q="up", labels={"tier": "low"}, statuses=[RunStatus.READY]) == {
        "cleanup0", "cleanup1"}


def test_free_text_matching_many_jobs_reads_the_history_instead(db: Database) -> None:
    count = run_store._Q_JOBS + 5

    def op(conn: Connection) -> list[int]:
        made = []
        for k in range(count):
            job = job_store.create(conn, JobSpec(name=f"etl-{k}", command="true"), NOW)
            made.append(run_store.create(
                conn, job=job, params={}, env={}, now=NOW, trigger=Trigger.API).id)
        return made

    made = db.write_sync(op)
    found = db.read_sync(run_store.search, q="ETL-", limit=count)
    assert [r.id for r in found] == sorted(made, reverse=True)


def test_label_rows_follow_their_runs(db: Database) -> None:
    ids = seed(db)

    def label_rows(conn: Connection) -> set[tuple[str, str, int]]:
        rows = conn.execute(sa.select(run_labels))
        return {(row.key, row.value, row.run_id) for row in rows}

    assert (("tier", "low", ids["cleanup1"])) in db.read_sync(label_rows)
    assert len(db.read_sync(label_rows)) == 3 * 1 + 3 * 1 + 3 * 2
    gone = db.write_sync(run_store.delete, [ids["cleanup2"]])  # the SKIPPED one: ended
    assert [r.id for r in gone] == [ids["cleanup2"]]
    assert {row[2] for row in db.read_sync(label_rows)} == set(ids.values()) - {ids["cleanup2"]}
