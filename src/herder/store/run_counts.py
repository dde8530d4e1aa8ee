"""How many runs there are of each status: the dashboard's summary of the last day."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from herder.store.tables import runs


def by_status(
    conn: Connection,
    *,
    since: datetime,
    until: datetime | None = None,
    namespace: str | None = None,
    readable: frozenset[str] | None = None,
) -> dict[str, int]:
    """Runs created in ``[since, until)`` counted by status name; statuses with none are
    left out. ``readable`` (None: all) keeps to the namespaces the caller may read."""
    query = (sa.select(runs.c.status, sa.func.count()).where(runs.c.created_at >= since)
             .group_by(runs.c.status))
    if until is not None:
        query = query.where(runs.c.created_at < until)
    if readable is not None:
        query = query.where(runs.c.namespace.in_(sorted(readable)))
    if namespace is not None:
        query = query.where(runs.c.namespace == namespace)
    return {status: int(count) for status, count in conn.execute(query)}
