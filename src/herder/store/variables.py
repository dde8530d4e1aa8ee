"""Queries on variables and secrets (one shape, two tables). Each function takes a Connection and
runs inside the caller's transaction.

A secret row holds ciphertext only (``herder.secret_keys`` encrypts and decrypts, outside the
store); nothing here ever sees a secret's value.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError

from herder.model.errors import NameTaken, NotFound
from herder.model.jobs import JobSpec, references
from herder.model.templates import Refs
from herder.model.variables import GLOBAL, Variable, undefined
from herder.store.tables import secrets, variables

Kind = Literal["variable", "secret"]
_TABLES = {"variable": variables, "secret": secrets}


def _table(kind: Kind) -> sa.Table:
    return _TABLES[kind]


def _stored(kind: Kind) -> sa.Column[Any]:
    return variables.c.value if kind == "variable" else secrets.c.ciphertext


def _row(kind: Kind, row: Row[Any]) -> Variable:
    return Variable(
        id=row.id, namespace=row.namespace, name=row.name,
        value=row.value if kind == "variable" else None,
        key_id=None if kind == "variable" else row.key_id,
        created_at=row.created_at, updated_at=row.updated_at,
    )


def _columns(kind: Kind) -> list[sa.Column[Any]]:
    """What a read answers: never a secret's ciphertext."""
    table = _table(kind)
    return [c for c in table.c if c.name != "ciphertext"]


def _where(namespace: str) -> str:
    return "globally" if namespace == GLOBAL else f"in namespace {namespace!r}"


def missing_message(kind: Kind, namespace: str, name: str) -> str:
    return f"no {kind} named {name!r} {_where(namespace)}"


def get(conn: Connection, kind: Kind, namespace: str, name: str) -> Variable:
    table = _table(kind)
    row = conn.execute(
        sa.select(*_columns(kind)).where(table.c.namespace == namespace, table.c.name == name)
    ).first()
    if row is None:
        raise NotFound(missing_message(kind, namespace, name))
    return _row(kind, row)


def _fields(kind: Kind, stored: str, key_id: str | None) -> dict[str, Any]:
    if kind == "variable":
        return {"value": stored}
    return {"ciphertext": stored, "key_id": key_id}


def create(
    conn: Connection, kind: Kind, namespace: str, name: str, stored: str, *,
    key_id: str | None = None, now: datetime,
) -> Variable:
    """Insert; ``NameTaken`` if the scope already has one by that name. ``stored`` is the value
    of a variable, the ciphertext of a secret."""
    try:
        row = conn.execute(
            _table(kind).insert().values(
                namespace=namespace, name=name, created_at=now, updated_at=now,
                **_fields(kind, stored, key_id),
            ).returning(*_columns(kind))
        ).one()
    except IntegrityError as exc:
        raise NameTaken(
            f"a {kind} named {name!r} already exists {_where(namespace)}; PUT replaces it",
            details={"namespace": namespace, "name": name},
        ) from exc
    return _row(kind, row)


def put(
    conn: Connection, kind: Kind, namespace: str, name: str, stored: str, *,
    key_id: str | None = None, now: datetime,
) -> tuple[Variable, bool]:
    """Create or replace; answers it and whether it was created."""
    table = _table(kind)
    row = conn.execute(
        table.update()
        .where(table.c.namespace == namespace, table.c.name == name)
        .values(updated_at=now, **_fields(kind, stored, key_id))
        .returning(*_columns(kind))
    ).first()
    if row is not None:
        return _row(kind, row), False
    return create(conn, kind, namespace, name, stored, key_id=key_id, now=now), True


def delete(conn: Connection, kind: Kind, namespace: str, name: str) -> None:
    table = _table(kind)
    done = conn.execute(
        table.delete().where(table.c.namespace == namespace, table.c.name == name)
    )
    if not done.rowcount:
        raise NotFound(missing_message(kind, namespace, name))


def search(
    conn: Connection, kind: Kind, *, namespace: str | None = None,
    readable: frozenset[str] | None = None, after_id: int | None = None, limit: int = 100,
) -> list[Variable]:
    """In id order; ``namespace`` (``*`` for the global ones) and ``readable`` (None: all)
    filter."""
    table = _table(kind)
    query = sa.select(*_columns(kind)).order_by(table.c.id).limit(limit)
    if namespace is not None:
        query = query.where(table.c.namespace == namespace)
    if readable is not None:
        query = query.where(table.c.namespace.in_(sorted(readable)))
    if after_id is not None:
        query = query.where(table.c.id > after_id)
    return [_row(kind, row) for row in conn.execute(query)]


def _visible(conn: Connection, kind: Kind, namespace: str, names: frozenset[str],
             stored: bool) -> dict[str, Row[Any]]:
    """Per name, the row a run in ``namespace`` sees: its namespace's, else the global one."""
    if not names:
        return {}
    table = _table(kind)
    columns = [table.c.namespace, table.c.name] + ([_stored(kind)] if stored else [])
    rows = conn.execute(
        sa.select(*columns).where(
            table.c.namespace.in_([namespace, GLOBAL]), table.c.name.in_(sorted(names))
        )
    ).all()
    found: dict[str, Row[Any]] = {}
    for row in rows:  # the namespace's own wins over the global one
        if row.name not in found or row.namespace == namespace:
            found[row.name] = row
    return found


def resolve(
    conn: Connection, namespace: str, refs: Refs
) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """The values of the variables ``refs`` names, and the ``(namespace, ciphertext)`` of its
    secrets, as a run in ``namespace`` sees them; names not defined are left out."""
    found_vars = _visible(conn, "variable", namespace, refs.vars, stored=True)
    found_secrets = _visible(conn, "secret", namespace, refs.secrets, stored=True)
    return (
        {name: row.value for name, row in found_vars.items()},
        {name: (row.namespace, row.ciphertext) for name, row in found_secrets.items()},
    )


def check_defined(conn: Connection, spec: JobSpec) -> None:
    """Refuse a job whose templates name a variable or secret its namespace cannot see."""
    refs = references(spec)
    if not refs.values:
        return
    found_vars = _visible(conn, "variable", spec.namespace, refs.vars, stored=False)
    found_secrets = _visible(conn, "secret", spec.namespace, refs.secrets, stored=False)
    problem = undefined(refs, found_vars, found_secrets, namespace=spec.namespace,
                        then="save the job")
    if problem is not None:
        raise problem


def sealed_with_other_keys(conn: Connection, key_id: str) -> list[tuple[int, str, str, str]]:
    """``(id, namespace, name, ciphertext)`` of the secrets not encrypted with ``key_id``."""
    rows = conn.execute(
        sa.select(secrets.c.id, secrets.c.namespace, secrets.c.name, secrets.c.ciphertext)
        .where(secrets.c.key_id != key_id).order_by(secrets.c.id)
    )
    return [(row.id, row.namespace, row.name, row.ciphertext) for row in rows]


def reseal(conn: Connection, changes: list[tuple[int, str, str, str]], now: datetime) -> int:
    """Store each ``(id, old ciphertext, new ciphertext, key id)``; a secret set again since
    its old ciphertext was read keeps its new value. Answers how many were stored."""
    done = 0
    for secret_id, old, new, key_id in changes:
        done += conn.execute(
            secrets.update()
            .where(secrets.c.id == secret_id, secrets.c.ciphertext == old)
            .values(ciphertext=new, key_id=key_id, updated_at=now)
        ).rowcount
    return done
