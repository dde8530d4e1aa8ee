"""Queries on namespaces: the rows, what each holds, and deleting one with its objects."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError

from herder.model.errors import Conflict, NameTaken, NotFound
from herder.model.jobs import DEFAULT_NAMESPACE
from herder.model.runs import ACTIVE, Run
from herder.store import chains as chain_store
from herder.store import runs as run_store
from herder.store.tables import metadata, namespaces, runs

# The audit trail is history about a namespace, not an object in it: it stays.
_NOT_HELD = frozenset({"namespaces", "audit"})


def missing(name: str) -> str:
    """What a caller hears for a namespace that does not exist (or that it may not see)."""
    return (f"namespace {name[:63]!r} does not exist; an admin for all namespaces creates it "
            f"with `herder namespace create {name[:63]}`")


def holders() -> list[sa.Table]:
    """Every table whose rows live in a namespace, children first: found by their
    ``namespace`` column, so the tables added later are covered without a list to keep."""
    return [
        table for table in reversed(metadata.sorted_tables)
        if "namespace" in table.c and table.name not in _NOT_HELD
    ]


def exists(conn: Connection, name: str) -> bool:
    found = conn.execute(sa.select(namespaces.c.name).where(namespaces.c.name == name)).first()
    return found is not None


def create(
    conn: Connection, name: str, now: datetime, retention: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Insert a namespace; ``NameTaken`` if it exists."""
    try:
        with conn.begin_nested():
            conn.execute(
                namespaces.insert().values(name=name, created_at=now, retention=retention)
            )
    except IntegrityError as exc:
        raise NameTaken(f"namespace {name!r} already exists", details={"name": name}) from exc
    return {"name": name, "created_at": now, "retention": retention}


def set_retention(conn: Connection, name: str, retention: dict[str, Any] | None) -> dict[str, Any]:
    """Give the namespace's jobs that set no retention this one (None: the server's); answers
    the namespace without ``holds`` (counting them is for GET of one)."""
    row = conn.execute(
        namespaces.update().where(namespaces.c.name == name).values(retention=retention)
        .returning(*namespaces.c)
    ).first()
    if row is None:
        raise NotFound(missing(name), details={"namespace": name[:63]})
    return _document(row)


def retentions(conn: Connection) -> dict[str, dict[str, Any]]:
    """The namespaces that set a retention, with it as written (what pruning follows)."""
    query = sa.select(namespaces.c.name, namespaces.c.retention).where(
        namespaces.c.retention.is_not(None)
    )
    return {row.name: row.retention for row in conn.execute(query) if row.retention}


def ensure(conn: Connection, name: str, now: datetime, *, create_missing: bool) -> None:
    """Make sure ``name`` exists before an object is put in it: create it when the caller may
    (``create_missing``), else ``NotFound`` saying how to create it."""
    if exists(conn, name):
        return
    if not create_missing:
        raise NotFound(missing(name), details={"namespace": name[:63]})
    try:  # another server on the same PostgreSQL may be creating it this instant
        with conn.begin_nested():
            conn.execute(namespaces.insert().values(name=name, created_at=now))
    except IntegrityError:
        pass


def get(conn: Connection, name: str) -> dict[str, Any]:
    row = conn.execute(sa.select(namespaces).where(namespaces.c.name == name)).first()
    if row is None:
        raise NotFound(missing(name), details={"namespace": name[:63]})
    return {**_document(row), "holds": holdings(conn, name)}


def search(
    conn: Connection, *, readable: frozenset[str] | None, after: str | None, limit: int
) -> list[dict[str, Any]]:
    """Namespaces by name; ``readable`` (None: all) limits them to the caller's."""
    query = sa.select(namespaces).order_by(namespaces.c.name).limit(limit)
    if readable is not None:
        query = query.where(namespaces.c.name.in_(sorted(readable)))
    if after is not None:
        query = query.where(namespaces.c.name > after)
    return [_document(row) for row in conn.execute(query)]


def _document(row: Row[Any]) -> dict[str, Any]:
    return {"name": row.name, "created_at": row.created_at, "retention": row.retention}


def holdings(conn: Connection, name: str) -> dict[str, int]:
    """How many rows of each kind the namespace holds, leaving out the kinds it has none of."""
    counts = {}
    for table in holders():
        count = conn.execute(
            sa.select(sa.func.count()).select_from(table).where(table.c.namespace == name)
        ).scalar_one()
        if count:
            counts[table.name] = int(count)
    return counts


def delete(conn: Connection, name: str, *, force: bool) -> list[Run]:
    """Delete a namespace. While it holds objects: ``Conflict`` naming them, unless ``force``,
    which deletes them too (the runs with their history; the caller removes their files,
    which this answers). Active runs are never deleted: cancel them first."""
    if name == DEFAULT_NAMESPACE:
        raise Conflict("namespace 'default' always exists and cannot be deleted")
    if not exists(conn, name):
        raise NotFound(missing(name), details={"namespace": name[:63]})
    outside = chain_store.followed_from_outside(conn, name)
    if outside:
        raise Conflict(
            f"namespace {name!r} holds jobs followed (after:) by job {', '.join(outside[:5])}; "
            "change their after first",
            details={"followed_by": outside},
        )
    held = holdings(conn, name)
    if held and not force:
        listed = ", ".join(f"{kind}: {count}" for kind, count in held.items())
        raise Conflict(
            f"namespace {name!r} holds {listed}; delete them first, or add ?force=true "
            "(`herder namespace delete --force`) to delete them with it",
            details=held,
        )
    active = conn.execute(
        sa.select(sa.func.count()).select_from(runs)
        .where(runs.c.namespace == name, runs.c.status.in_([s.value for s in ACTIVE]))
    ).scalar_one()
    if active:
        raise Conflict(
            f"namespace {name!r} has {active} active run(s); cancel them before deleting it",
            details={"active_runs": int(active)},
        )
    run_ids = list(conn.execute(sa.select(runs.c.id).where(runs.c.namespace == name)).scalars())
    gone = run_store.delete(conn, run_ids)
    for table in holders():
        conn.execute(table.delete().where(table.c.namespace == name))
    conn.execute(namespaces.delete().where(namespaces.c.name == name))
    return gone
