"""Locks as people read them: a lock with its holders, waiters and declaring jobs; the locks
of a run; and the SQL check that no lock has more holders than slots."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from herder.store.locks import due, lock_row
from herder.store.tables import job_locks, jobs, lock_claims, locks, runs


@dataclass(frozen=True, slots=True, kw_only=True)
class Claim:
    """A run holding (``since`` it was granted) or waiting for (``since`` it asked) a lock."""

    run_id: int
    job: str
    since: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class LockState:
    """A lock with its slots, holders (oldest grant first), waiters (in queue order) and the
    jobs that declare it."""

    id: int
    namespace: str
    name: str
    slots: int
    holders: list[Claim] = field(default_factory=list)
    waiters: list[Claim] = field(default_factory=list)
    jobs: list[str] = field(default_factory=list)


def search(
    conn: Connection,
    *,
    namespace: str | None = None,
    readable: frozenset[str] | None = None,
    after_id: int | None = None,
    limit: int = 100,
) -> list[LockState]:
    """Locks in id order; ``readable`` (None: all) limits the namespaces seen."""
    query = sa.select(locks).order_by(locks.c.id).limit(limit)
    if namespace is not None:
        query = query.where(locks.c.namespace == namespace)
    if readable is not None:
        query = query.where(locks.c.namespace.in_(sorted(readable)))
    if after_id is not None:
        query = query.where(locks.c.id > after_id)
    return _states(conn, list(conn.execute(query)))


def get(conn: Connection, namespace: str, name: str) -> LockState:
    return _states(conn, [lock_row(conn, namespace, name)])[0]


def _states(conn: Connection, rows: list[Any]) -> list[LockState]:
    ids = [row.id for row in rows]
    states = {
        row.id: LockState(id=row.id, namespace=row.namespace, name=row.name, slots=row.slots)
        for row in rows
    }
    if not ids:
        return []
    claims = conn.execute(
        sa.select(lock_claims, runs.c.namespace, runs.c.job_name)
        .join(runs, runs.c.id == lock_claims.c.run_id)
        .where(lock_claims.c.lock_id.in_(ids))
        .order_by(lock_claims.c.granted_at, lock_claims.c.run_id)  # waiters: by run id
    )
    for claim in claims:
        state, job = states[claim.lock_id], f"{claim.namespace}/{claim.job_name}"
        if claim.granted_at is None:
            state.waiters.append(Claim(run_id=claim.run_id, job=job, since=claim.requested_at))
        else:
            state.holders.append(Claim(run_id=claim.run_id, job=job, since=claim.granted_at))
    declared = conn.execute(
        sa.select(job_locks.c.lock_id, jobs.c.namespace, jobs.c.name)
        .join(jobs, jobs.c.id == job_locks.c.job_id)
        .where(job_locks.c.lock_id.in_(ids))
        .order_by(jobs.c.id)
    )
    for row in declared:
        states[row.lock_id].jobs.append(f"{row.namespace}/{row.name}")
    return [states[i] for i in ids]


@dataclass(frozen=True, slots=True, kw_only=True)
class RunLock:
    """One lock of a run, as its JSON shows it: held, or waited for with what is in the way."""

    key: str
    slots: int
    held: bool
    since: datetime
    holders: list[int]
    ahead: int  # waiters before this run in the lock's queue


def of_runs(conn: Connection, run_ids: list[int], now: datetime) -> dict[int, list[RunLock]]:
    """The locks each of ``run_ids`` holds or waits for."""
    if not run_ids:
        return {}
    mine = conn.execute(
        sa.select(lock_claims, locks.c.name, locks.c.slots)
        .join(locks, locks.c.id == lock_claims.c.lock_id)
        .where(lock_claims.c.run_id.in_(run_ids))
        .order_by(lock_claims.c.run_id, locks.c.name)
    ).all()
    queues: dict[int, list[tuple[int, bool]]] = defaultdict(list)
    for row in conn.execute(
        sa.select(lock_claims.c.lock_id, lock_claims.c.run_id, lock_claims.c.granted_at,
                  runs.c.not_before)
        .join(runs, runs.c.id == lock_claims.c.run_id)
        .where(lock_claims.c.lock_id.in_(sorted({row.lock_id for row in mine})))
        .order_by(lock_claims.c.run_id)
    ):
        if row.granted_at is not None or due(row.not_before, now):  # as ``grant`` sees them
            queues[row.lock_id].append((row.run_id, row.granted_at is not None))
    found: dict[int, list[RunLock]] = defaultdict(list)
    for row in mine:
        queue = queues.get(row.lock_id, [])
        found[row.run_id].append(RunLock(
            key=row.name, slots=row.slots, held=row.granted_at is not None,
            since=row.granted_at or row.requested_at,
            holders=[r for r, granted in queue if granted],
            ahead=sum(1 for r, granted in queue if not granted and r < row.run_id),
        ))
    return dict(found)


def overbooked(conn: Connection) -> list[tuple[str, str, int, int]]:
    """Locks with more holders than slots, as (namespace, name, holders, slots): never any,
    unless a lock's slots were lowered while it was held."""
    holders = sa.func.count(lock_claims.c.run_id)
    rows = conn.execute(
        sa.select(locks.c.namespace, locks.c.name, holders, locks.c.slots)
        .join(lock_claims, lock_claims.c.lock_id == locks.c.id)
        .where(lock_claims.c.granted_at.is_not(None))
        .group_by(locks.c.id, locks.c.namespace, locks.c.name, locks.c.slots)
        .having(holders > locks.c.slots)
    )
    return [(r[0], r[1], int(r[2]), int(r[3])) for r in rows]
