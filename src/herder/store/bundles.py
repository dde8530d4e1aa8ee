"""Queries on bundles: kept once per content hash, checked against the jobs that name them.

A job may name a bundle and a bundle may be deleted on two servers at once. On PostgreSQL the
job's save reads the bundle row ``FOR SHARE`` and the delete takes it ``FOR UPDATE`` before it
looks for jobs: one waits for the other, so a job never names a bundle that is gone. (On SQLite
the one writer already puts them in a row.)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Row

from herder.bundles.archive import Member, check_entrypoint
from herder.model.errors import Conflict, InvalidSpec, NotFound
from herder.model.jobs import BUNDLE_ID_RE, JobSpec, Script
from herder.model.runs import ACTIVE
from herder.store.tables import bundles, jobs, runs

_META = [c for c in bundles.c if c.name != "data"]
_INSERT = {
    "postgresql": postgresql.insert(bundles).on_conflict_do_nothing(index_elements=["id"])
    .returning(bundles.c.id),
    "sqlite": sqlite.insert(bundles).on_conflict_do_nothing(index_elements=["id"])
    .returning(bundles.c.id),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Bundle:
    """A stored bundle, without its bytes."""

    id: str
    kind: str
    entrypoint: str
    size: int
    unpacked_size: int
    files: tuple[Member, ...]
    created_at: datetime


def _row(row: Row[Any]) -> Bundle:
    return Bundle(
        id=row.id, kind=row.kind, entrypoint=row.entrypoint, size=row.size,
        unpacked_size=row.unpacked_size, files=tuple(Member.from_dict(f) for f in row.files),
        created_at=row.created_at,
    )


def missing(bundle_id: str) -> NotFound:
    return NotFound(f"no bundle with id {bundle_id[:80]!r}", details={"bundle": bundle_id[:80]})


def _select(conn: Connection, bundle_id: str, *, lock: str | None = None) -> Bundle:
    bundle_id = bundle_id.lower()
    query = sa.select(*_META).where(bundles.c.id == bundle_id)
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update(read=lock == "share")
    row = conn.execute(query).first() if BUNDLE_ID_RE.fullmatch(bundle_id) else None
    if row is None:
        raise missing(bundle_id)
    return _row(row)


def get(conn: Connection, bundle_id: str) -> Bundle:
    return _select(conn, bundle_id)


def save(
    conn: Connection, bundle: Bundle, data: bytes, *, entrypoint_given: bool
) -> tuple[Bundle, bool]:
    """Keep a checked bundle; answers it and whether it is new. The same bytes again answer
    the bundle already kept (its entry point changed when one is given)."""
    values = {
        "id": bundle.id, "kind": bundle.kind, "entrypoint": bundle.entrypoint,
        "size": bundle.size, "unpacked_size": bundle.unpacked_size,
        "files": [f.to_dict() for f in bundle.files], "data": data,
        "created_at": bundle.created_at,
    }
    created = conn.execute(_INSERT[conn.dialect.name], values).first() is not None
    kept = _select(conn, bundle.id)
    if not created and entrypoint_given and kept.entrypoint != bundle.entrypoint:
        conn.execute(
            bundles.update().where(bundles.c.id == bundle.id).values(entrypoint=bundle.entrypoint)
        )
        kept = replace(kept, entrypoint=bundle.entrypoint)
    return kept, created


def search(conn: Connection, *, after_id: str | None, limit: int) -> list[Bundle]:
    """Bundles in id order; ``after_id`` is the cursor."""
    query = sa.select(*_META).order_by(bundles.c.id).limit(limit)
    if after_id is not None:
        query = query.where(bundles.c.id > after_id)
    return [_row(row) for row in conn.execute(query)]


def data(conn: Connection, bundle_id: str) -> tuple[Bundle, bytes]:
    row = conn.execute(sa.select(bundles).where(bundles.c.id == bundle_id)).first()
    if row is None:
        raise missing(bundle_id)
    return _row(row), bytes(row.data)


def _bundle_of(column: Any) -> Any:
    return column[("script", "bundle")].as_string()


def users(conn: Connection, bundle_id: str) -> tuple[list[str], list[int]]:
    """The jobs (``namespace/name``) that name the bundle, and the active runs started with it."""
    named = conn.execute(
        sa.select(jobs.c.namespace, jobs.c.name).where(_bundle_of(jobs.c.spec) == bundle_id)
        .order_by(jobs.c.id).limit(20)
    )
    running = conn.execute(
        sa.select(runs.c.id).where(
            runs.c.status.in_([s.value for s in ACTIVE]), _bundle_of(runs.c.spec) == bundle_id
        ).order_by(runs.c.id).limit(20)
    )
    return [f"{ns}/{name}" for ns, name in named], list(running.scalars())


def delete(conn: Connection, bundle_id: str) -> None:
    """Delete a bundle no job names and no active run uses; ``Conflict`` names them."""
    bundle_id = _select(conn, bundle_id, lock="update").id  # as kept: lower case
    named, active = users(conn, bundle_id)
    if named or active:
        who = ", ".join([*(f"job {ref}" for ref in named), *(f"run {r}" for r in active)])
        raise Conflict(
            f"bundle {bundle_id[:12]}… is in use by {who}; change or delete those jobs (and let "
            "the runs end) first",
            details={"jobs": named, "runs": active},
        )
    conn.execute(bundles.delete().where(bundles.c.id == bundle_id))


def check_script(conn: Connection, spec: JobSpec) -> JobSpec:
    """Check a job's script against the bundle it names, in the job's save transaction: the
    bundle must exist and hold the entry point (the job's, or else the bundle's own, which is
    what the job's runs start: the job keeps ``entrypoint`` as it was given). Answers ``spec``."""
    if spec.script is None:
        return spec
    try:
        bundle = _select(conn, spec.script.bundle, lock="share")
    except NotFound:
        raise InvalidSpec(
            f"script.bundle: no bundle with id {spec.script.bundle!r}; upload it first "
            "(POST /api/v1/bundles, or `herder bundle upload PATH`)"
        ) from None
    entrypoint(bundle, spec.script)
    return spec


def entrypoint(bundle: Bundle, script: Script) -> str:
    """The file a run of ``script`` starts: the script's entry point, or else the bundle's."""
    try:
        return check_entrypoint(bundle.files, script.entrypoint or bundle.entrypoint)
    except InvalidSpec as exc:
        raise InvalidSpec(f"script.{exc.message}", details=exc.details) from None
