"""Queries on the input files of runs.

A file may be attached while the run has not been dispatched (READY, WAITING, ACTION_PENDING).
The claim of a run and the attaching of a file both hold the run's row: on PostgreSQL ``put``
reads it ``FOR UPDATE`` (and the claim's ``FOR UPDATE SKIP LOCKED`` passes a run being given a
file by, to take it on its next round), so a file either lands before the claim, and the run
finds it, or sees the run claimed and is refused; never lost. On SQLite the one writer puts
them in a row.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from herder.model.errors import Conflict, InvalidSpec, NotFound
from herder.model.inputs import FileLimits
from herder.model.runs import RunStatus
from herder.store.tables import run_files, runs

OPEN = (RunStatus.READY, RunStatus.WAITING, RunStatus.ACTION_PENDING)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunFile:
    """An input file of a run, without its bytes."""

    name: str
    size: int
    sha256: str
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "size": self.size, "sha256": self.sha256,
                "created_at": self.created_at}


_LISTED = sa.select(run_files.c.name, run_files.c.size, run_files.c.sha256,
                    run_files.c.created_at)


def listing(conn: Connection, run_id: int) -> list[RunFile]:
    rows = conn.execute(_LISTED.where(run_files.c.run_id == run_id).order_by(run_files.c.name))
    return [RunFile(name=r.name, size=r.size, sha256=r.sha256, created_at=r.created_at)
            for r in rows]


def put(
    conn: Connection, run_id: int, name: str, data: bytes, *, now: datetime, limits: FileLimits
) -> tuple[RunFile, bool]:
    """Attach (or replace) one file; answers it and whether it is new. ``Conflict`` once the
    run has been dispatched, ``InvalidSpec`` past the limits."""
    query = sa.select(runs.c.status).where(runs.c.id == run_id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    status = conn.execute(query).scalar()
    if status is None:
        raise NotFound(f"no run with id {run_id}", details={"run": run_id})
    if RunStatus(status) not in OPEN:
        raise Conflict(
            f"run {run_id} is {status}: input files can be attached only before it is "
            "dispatched (READY, WAITING or ACTION_PENDING); start it with --manual "
            "(manual_start) to attach files first",
            details={"status": status},
        )
    if len(data) > limits.max_size:
        raise InvalidSpec(f"file {name!r}: larger than {limits.max_size} bytes (the limit)")
    others = [f for f in listing(conn, run_id) if f.name != name]
    if len(others) + 1 > limits.max_count:
        raise InvalidSpec(f"run {run_id} has {len(others)} input files: at most "
                          f"{limits.max_count} are allowed")
    if sum(f.size for f in others) + len(data) > limits.max_total:
        raise InvalidSpec(f"run {run_id}: input files would exceed {limits.max_total} bytes "
                          "in all (the limit)")
    replaced = conn.execute(
        run_files.delete().where(run_files.c.run_id == run_id, run_files.c.name == name)
    ).rowcount
    kept = RunFile(name=name, size=len(data), sha256=hashlib.sha256(data).hexdigest(),
                   created_at=now)
    conn.execute(run_files.insert().values(run_id=run_id, name=name, size=kept.size,
                                           sha256=kept.sha256, data=data, created_at=now))
    return kept, not replaced


def runs_with_files(conn: Connection, run_ids: list[int]) -> set[int]:
    """Which of ``run_ids`` have input files (one query per dispatched batch)."""
    if not run_ids:
        return set()
    query = sa.select(run_files.c.run_id).where(run_files.c.run_id.in_(run_ids)).distinct()
    return set(conn.execute(query).scalars())


def load(conn: Connection, run_id: int) -> list[tuple[str, bytes]]:
    """Every input file of a run, with its bytes, to write into its working folder."""
    rows = conn.execute(
        sa.select(run_files.c.name, run_files.c.data).where(run_files.c.run_id == run_id)
    )
    return [(r.name, bytes(r.data)) for r in rows]


def copy(conn: Connection, from_run: int, to_run: int) -> None:
    """Give ``to_run`` (a retry) the input files of ``from_run``, in one statement."""
    columns = [c for c in run_files.c if c.name != "run_id"]
    conn.execute(
        run_files.insert().from_select(
            ["run_id", *(c.name for c in columns)],
            sa.select(sa.literal(to_run, type_=run_files.c.run_id.type), *columns)
            .where(run_files.c.run_id == from_run),
        )
    )
