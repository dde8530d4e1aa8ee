"""What a retention lets go, as SQL: one rule for runs and for workflow runs."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa


def beyond_retention(
    table: sa.Table, scope: sa.ColumnElement[bool], *, older_than: datetime | None,
    keep: int | None,
) -> sa.ColumnElement[bool] | None:
    """Rows of ``table`` in ``scope`` that ended before ``older_than``, or are older than its
    newest ``keep`` (by id); None when the retention keeps everything."""
    conditions: list[sa.ColumnElement[bool]] = []
    if older_than is not None:
        conditions.append(table.c.finished_at < older_than)
    if keep is not None:
        newest = (
            sa.select(table.c.id).where(scope)
            .order_by(table.c.id.desc()).offset(keep).limit(1).scalar_subquery()
        )
        conditions.append(table.c.id <= newest)
    return sa.or_(*conditions) if conditions else None
