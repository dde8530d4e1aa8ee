"""The audit trail: appended to, searched, never changed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from herder.store.tables import audit

_INSERT = audit.insert()


def record(conn: Connection, entries: list[dict[str, Any]]) -> None:
    """Append entries (rows of ``audit`` without ``id``, as ``herder.api.audit.entry``
    makes them), in one statement."""
    if entries:
        conn.execute(_INSERT, entries)


def search(
    conn: Connection,
    *,
    scope: frozenset[str] | None,
    actor: str | None = None,
    action: str | None = None,
    namespace: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Entries newest first; ``scope`` (None: all, including those of no namespace) limits
    them to those namespaces; ``before_id`` is the cursor."""
    query = sa.select(audit).order_by(audit.c.id.desc()).limit(limit)
    if scope is not None:
        query = query.where(audit.c.namespace.in_(sorted(scope)))
    if actor is not None:
        query = query.where(audit.c.actor == actor)
    if action is not None:
        if action.endswith(".*"):  # every action on a kind of object: "job.*"
            query = query.where(audit.c.action.startswith(action[:-1], autoescape=True))
        else:
            query = query.where(audit.c.action == action)
    if namespace is not None:
        query = query.where(audit.c.namespace == namespace)
    if since is not None:
        query = query.where(audit.c.at >= since)
    if until is not None:
        query = query.where(audit.c.at < until)
    if before_id is not None:
        query = query.where(audit.c.id < before_id)
    return [dict(row._mapping) for row in conn.execute(query)]
