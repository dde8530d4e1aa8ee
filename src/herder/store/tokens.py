"""Queries on API tokens. Secrets are never stored; ``secret_hash`` is their SHA-256."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from herder.model.errors import NotFound
from herder.model.tokens import ALL_NAMESPACES, Role, Token
from herder.store.tables import tokens

_BY_ID = sa.select(tokens).where(tokens.c.id == sa.bindparam("token_id"))
_TOUCH = (
    tokens.update()
    .where(tokens.c.id == sa.bindparam("token_id"))
    .values(last_used_at=sa.bindparam("now"))
)


def _row_to_token(row: Row[Any]) -> Token:
    return Token(
        id=row.id, name=row.name, namespace=row.namespace, role=Role(row.role),
        secret_hash=row.secret_hash, created_at=row.created_at, created_by=row.created_by,
        expires_at=row.expires_at, revoked_at=row.revoked_at, last_used_at=row.last_used_at,
    )


def create(
    conn: Connection,
    *,
    name: str,
    namespace: str,
    role: Role,
    secret_hash: str,
    now: datetime,
    created_by: str,
    expires_at: datetime | None = None,
) -> Token:
    row = conn.execute(
        tokens.insert()
        .values(name=name, namespace=namespace, role=role.value, secret_hash=secret_hash,
                created_at=now, created_by=created_by[:255], expires_at=expires_at)
        .returning(*tokens.c)
    ).one()
    return _row_to_token(row)


def find(conn: Connection, token_id: int) -> Token | None:
    row = conn.execute(_BY_ID, {"token_id": token_id}).first()
    return None if row is None else _row_to_token(row)


def get(conn: Connection, token_id: int) -> Token:
    token = find(conn, token_id)
    if token is None:
        raise NotFound(f"no token with id {token_id}", details={"token": token_id})
    return token


def search(
    conn: Connection, *, readable: frozenset[str] | None, before_id: int | None, limit: int
) -> list[Token]:
    """Tokens newest first; ``readable`` (None: all) limits them to those namespaces."""
    query = sa.select(tokens).order_by(tokens.c.id.desc()).limit(limit)
    if readable is not None:
        query = query.where(tokens.c.namespace.in_(sorted(readable)))
    if before_id is not None:
        query = query.where(tokens.c.id < before_id)
    return [_row_to_token(row) for row in conn.execute(query)]


def revoke(conn: Connection, token_id: int, now: datetime) -> Token:
    """Revoke a token (again is harmless: the first moment is kept)."""
    conn.execute(
        tokens.update().where(tokens.c.id == token_id, tokens.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return get(conn, token_id)


def any_exist(conn: Connection) -> bool:
    """Whether any token was ever made (revoked ones count: authentication stays on)."""
    return conn.execute(sa.select(tokens.c.id).limit(1)).first() is not None


def admin_exists(conn: Connection, now: datetime) -> bool:
    """Whether a usable admin token for every namespace exists."""
    found = conn.execute(
        sa.select(tokens.c.id).where(
            tokens.c.role == Role.ADMIN.value, tokens.c.namespace == ALL_NAMESPACES,
            tokens.c.revoked_at.is_(None),
            sa.or_(tokens.c.expires_at.is_(None), tokens.c.expires_at > now),
        ).limit(1)
    ).first()
    return found is not None


def touch(conn: Connection, token_id: int, now: datetime) -> None:
    """Record a use (the caller does it at most once a minute per token)."""
    conn.execute(_TOUCH, {"token_id": token_id, "now": now})
