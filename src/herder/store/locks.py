"""Queries on locks: the locks jobs declare, and the claims runs make on them.

A claim is a row keyed by (lock, run): a waiter until ``granted_at`` is set, a holder after. A
run's claims are granted together (``model.locks.grantable`` decides who) and deleted when it
ends, in the transaction that ends it. Every change to the claims of a namespace first takes
that namespace's lock decision lock (``serialize``): a transaction-scoped advisory lock on
PostgreSQL, so two servers ending runs at once cannot both grant the last slot; SQLite has one
writer, which serializes them already. What people read about locks is in ``lock_reads``.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from herder.model.errors import Conflict, NotFound
from herder.model.jobs import JobSpec
from herder.model.locks import LockUse, Waiter, grantable, uses_of
from herder.model.runs import Run, RunStatus
from herder.store.runs import row_to_run
from herder.store.tables import job_locks, jobs, lock_claims, locks, runs

_TERMINAL = [s.value for s in RunStatus if s.terminal]


def serialize(conn: Connection, namespace: str) -> None:
    """Hold the namespace's lock decisions until the transaction ends (PostgreSQL)."""
    if conn.dialect.name == "postgresql":
        digest = hashlib.blake2b(f"herder-locks/{namespace}".encode(), digest_size=8).digest()
        key = int.from_bytes(digest, "big", signed=True)
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(key)))


# Declarations: jobs name locks ------------------------------------------------------------


def declare(conn: Connection, job_id: int, spec: JobSpec, now: datetime) -> None:
    """Record the locks a job declares (after it was created or changed). A lock's slots are
    the same for every job that names it: ``Conflict`` names the job that disagrees. The runs
    a raised slot count lets in go READY, for the dispatcher's next look."""
    dropped = set(
        conn.execute(
            job_locks.delete().where(job_locks.c.job_id == job_id).returning(job_locks.c.lock_id)
        ).scalars()
    )
    if not spec.locks and not dropped:
        return
    serialize(conn, spec.namespace)
    raised = False
    for use in spec.locks:
        row = _lock_row(conn, spec.namespace, use, now)
        if row.slots != use.slots:
            others = conn.execute(
                sa.select(jobs.c.namespace, jobs.c.name)
                .join(job_locks, job_locks.c.job_id == jobs.c.id)
                .where(job_locks.c.lock_id == row.id, jobs.c.id != job_id)
                .order_by(jobs.c.id)
                .limit(1)
            ).first()
            if others is not None:
                raise Conflict(
                    f"lock {use.name!r} has {row.slots} slot(s) as job {others.namespace}/"
                    f"{others.name} declares it, not {use.slots}; declare it with "
                    f"{row.slots}, or change that job first",
                    details={"lock": use.name, "slots": row.slots,
                             "job": f"{others.namespace}/{others.name}"},
                )
            raised = raised or use.slots > row.slots
            conn.execute(locks.update().where(locks.c.id == row.id).values(slots=use.slots))
        conn.execute(job_locks.insert().values(job_id=job_id, lock_id=row.id))
        dropped.discard(row.id)
    forget(conn, dropped)
    if raised:
        grant(conn, spec.namespace, now)


def undeclare(conn: Connection, job_id: int, namespace: str) -> None:
    """The job is deleted: the locks only it named, and no run claims, go with it."""
    dropped = list(conn.execute(
        job_locks.delete().where(job_locks.c.job_id == job_id).returning(job_locks.c.lock_id)
    ).scalars())
    if dropped:
        serialize(conn, namespace)
        forget(conn, dropped)


def forget(conn: Connection, lock_ids: Iterable[int]) -> None:
    """Delete the locks among ``lock_ids`` that no job declares and no run claims any more."""
    ids = list(lock_ids)
    if ids:
        conn.execute(
            locks.delete().where(
                locks.c.id.in_(ids),
                ~sa.exists().where(job_locks.c.lock_id == locks.c.id),
                ~sa.exists().where(lock_claims.c.lock_id == locks.c.id),
            )
        )


def _lock_row(conn: Connection, namespace: str, use: LockUse, now: datetime) -> Any:
    """The lock's row, created with ``use.slots`` if it does not exist yet."""
    query = sa.select(locks).where(locks.c.namespace == namespace, locks.c.name == use.name)
    row = conn.execute(query).first()
    if row is None:
        conn.execute(
            locks.insert().values(
                namespace=namespace, name=use.name, slots=use.slots, created_at=now
            )
        )
        row = conn.execute(query).one()
    return row


# Claims: runs take and give back locks ---------------------------------------------------


def request(conn: Connection, run: Run, now: datetime) -> list[Run]:
    """Queue a WAITING run for the locks its frozen spec names; answers the runs granted now
    (this one, if nothing is in its way)."""
    serialize(conn, run.namespace)
    rows = [_lock_row(conn, run.namespace, use, now) for use in uses_of(run.spec)]
    conn.execute(
        lock_claims.insert(),
        [{"lock_id": row.id, "run_id": run.id, "requested_at": now} for row in rows],
    )
    return grant(conn, run.namespace, now)


def release(conn: Connection, run: Run, now: datetime) -> list[Run]:
    """Give back every lock ``run`` holds or waits for (it has ended); answers the runs that
    this lets in. A lock no job declares any more goes with its last claim."""
    serialize(conn, run.namespace)
    given = list(conn.execute(
        lock_claims.delete().where(lock_claims.c.run_id == run.id).returning(lock_claims.c.lock_id)
    ).scalars())
    if not given:
        return []
    forget(conn, given)
    return grant(conn, run.namespace, now)


def force_release(
    conn: Connection, namespace: str, name: str, run_id: int, now: datetime
) -> list[Run]:
    """Take lock ``name`` from run ``run_id`` (an admin's repair); the run itself goes on.
    Answers the runs this lets in."""
    serialize(conn, namespace)
    lock = lock_row(conn, namespace, name).id
    claim = conn.execute(
        sa.select(lock_claims.c.granted_at).where(
            lock_claims.c.lock_id == lock, lock_claims.c.run_id == run_id
        )
    ).first()
    if claim is None:
        raise NotFound(
            f"run {run_id} does not hold lock {namespace}/{name}",
            details={"lock": f"{namespace}/{name}", "run": run_id},
        )
    if claim.granted_at is None:
        raise Conflict(
            f"run {run_id} is waiting for lock {namespace}/{name}, not holding it; cancel the "
            "run to take it out of the queue",
            details={"lock": f"{namespace}/{name}", "run": run_id},
        )
    conn.execute(
        lock_claims.delete().where(lock_claims.c.lock_id == lock, lock_claims.c.run_id == run_id)
    )
    return grant(conn, namespace, now)


def due(not_before: datetime | None, now: datetime) -> bool:
    """A waiter joins its queues at its ``not_before`` (a slot, a retry's backoff): until then
    it is not in anybody's way, and holds nothing while it waits for its moment."""
    return not_before is None or not_before <= now


def grant(conn: Connection, namespace: str, now: datetime) -> list[Run]:
    """Grant every waiter of the namespace that may go now (all its locks at once) and move it
    READY. Call with the namespace serialized."""
    rows = conn.execute(
        sa.select(lock_claims.c.run_id, lock_claims.c.granted_at, locks.c.name, locks.c.slots,
                  runs.c.not_before)
        .join(locks, locks.c.id == lock_claims.c.lock_id)
        .join(runs, runs.c.id == lock_claims.c.run_id)
        .where(locks.c.namespace == namespace)
        .order_by(lock_claims.c.run_id)
    ).all()
    slots = {row.name: row.slots for row in rows}
    held = Counter(row.name for row in rows if row.granted_at is not None)
    wanted: dict[int, set[str]] = defaultdict(set)
    for row in rows:
        if row.granted_at is None and due(row.not_before, now):
            wanted[row.run_id].add(row.name)
    waiters = [Waiter(run_id=r, locks=frozenset(names)) for r, names in wanted.items()]
    ids = grantable(waiters, slots, held)
    if not ids:
        return []
    conn.execute(
        lock_claims.update()
        .where(lock_claims.c.run_id.in_(ids), lock_claims.c.granted_at.is_(None))
        .values(granted_at=now)
    )
    moved = conn.execute(
        runs.update()
        .where(runs.c.id.in_(ids), runs.c.status == RunStatus.WAITING.value)
        .values(status=RunStatus.READY.value)
        .returning(*runs.c)
    )
    return sorted((row_to_run(row) for row in moved), key=lambda run: run.id)


_WAITING_FOR_ITS_MOMENT = sa.and_(
    runs.c.status == RunStatus.WAITING.value,
    runs.c.not_before.is_not(None),
    sa.exists().where(lock_claims.c.run_id == runs.c.id, lock_claims.c.granted_at.is_(None)),
)


def next_due(conn: Connection, now: datetime) -> datetime | None:
    """When the next run waiting for its ``not_before`` joins the queues of its locks."""
    moment: datetime | None = conn.execute(
        sa.select(sa.func.min(runs.c.not_before)).where(
            _WAITING_FOR_ITS_MOMENT, runs.c.not_before > now
        )
    ).scalar()
    return moment


def grant_due(conn: Connection, now: datetime) -> list[Run]:
    """Let in the runs whose ``not_before`` has come, if their locks are free (the engine calls
    this at the moments ``next_due`` answers: a timer, not a poll)."""
    namespaces = conn.execute(
        sa.select(runs.c.namespace)
        .where(_WAITING_FOR_ITS_MOMENT, runs.c.not_before <= now)
        .distinct()
    ).scalars()
    granted: list[Run] = []
    for namespace in sorted(namespaces):
        serialize(conn, namespace)
        granted.extend(grant(conn, namespace, now))
    return granted


def repair(conn: Connection, now: datetime) -> list[Run]:
    """Give back the claims of runs that have ended and let every waiter in that may go: what
    a server does once at start, in case a run ended by a path that did not release its locks,
    and for the runs whose ``not_before`` came while no server was up."""
    namespaces = set(
        conn.execute(
            sa.select(locks.c.namespace)
            .join(lock_claims, lock_claims.c.lock_id == locks.c.id)
            .join(runs, runs.c.id == lock_claims.c.run_id)
            .where(sa.or_(runs.c.status.in_(_TERMINAL), lock_claims.c.granted_at.is_(None)))
            .distinct()
        ).scalars()
    )
    granted: list[Run] = []
    for namespace in sorted(namespaces):
        serialize(conn, namespace)
        ended = (
            sa.select(lock_claims.c.run_id)
            .join(runs, runs.c.id == lock_claims.c.run_id)
            .join(locks, locks.c.id == lock_claims.c.lock_id)
            .where(runs.c.status.in_(_TERMINAL), locks.c.namespace == namespace)
        )
        conn.execute(lock_claims.delete().where(lock_claims.c.run_id.in_(ended)))
        granted.extend(grant(conn, namespace, now))
    return granted


def lock_row(conn: Connection, namespace: str, name: str) -> Any:
    """The lock's row; ``NotFound`` if no job declares it and no run claims it."""
    row = conn.execute(
        sa.select(locks).where(locks.c.namespace == namespace, locks.c.name == name)
    ).first()
    if row is None:
        raise NotFound(f"no lock named {name!r} in namespace {namespace!r}",
                       details={"lock": f"{namespace}/{name}"[:200]})
    return row
