"""Free-text search: a user's words as a LIKE pattern that matches them literally."""

from __future__ import annotations

import sqlalchemy as sa

ESCAPE = "\\"


def contains(column: sa.ColumnElement[str], text: str) -> sa.ColumnElement[bool]:
    """``column`` contains ``text``, case-insensitive; ``%`` and ``_`` in it are plain
    characters, not wildcards."""
    literal = text.replace(ESCAPE, ESCAPE * 2).replace("%", ESCAPE + "%").replace("_", ESCAPE + "_")
    return column.ilike(f"%{literal}%", escape=ESCAPE)
