"""Server leases: who is alive, and the epoch (fencing token) each server's claims carry.

A server registers when it starts (its epoch grows by one), renews its lease every few seconds,
and marks itself stopped when it stops cleanly. A server whose lease has run out is presumed
dead: another server *fences* it (its epoch grows by one more, which every later write of the
old incarnation fails to match, and which its next renewal notices) and takes over its runs.
Nothing here depends on how long a run has been running, only on heartbeats.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from herder.model.errors import Conflict
from herder.model.runs import LAUNCHED, Run, RunStatus
from herder.store.runs import row_to_run
from herder.store.tables import runs, servers

_LAUNCHED = [s.value for s in LAUNCHED]


@dataclass(frozen=True, slots=True, kw_only=True)
class Server:
    id: str
    epoch: int
    host: str
    pid: int
    data_dir: str
    heartbeat_at: datetime
    lease_until: datetime
    stopped_at: datetime | None

    @classmethod
    def of(cls, row: Row[Any]) -> Server:
        return cls(
            id=row.id, epoch=row.epoch, host=row.host, pid=row.pid, data_dir=row.data_dir,
            heartbeat_at=row.heartbeat_at, lease_until=row.lease_until,
            stopped_at=row.stopped_at,
        )


def _alive_here(server: Server, host: str) -> bool:
    """Whether ``server`` is a live process on this host; elsewhere its lease is all we know."""
    if server.host != host:
        return True
    try:
        os.kill(server.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return server.pid != os.getpid()


def _holds_lease(server: Server, host: str, now: datetime) -> bool:
    return server.stopped_at is None and server.lease_until > now and _alive_here(server, host)


def refusal(
    conn: Connection, *, server_id: str, host: str, now: datetime, only_one: bool
) -> str | None:
    """Why a server could not start now (see ``register``), or None."""
    known = [Server.of(row) for row in conn.execute(sa.select(servers))]
    return _refusal(known, server_id=server_id, host=host, now=now, only_one=only_one)


def _refusal(
    known: list[Server], *, server_id: str, host: str, now: datetime, only_one: bool
) -> str | None:
    mine = next((s for s in known if s.id == server_id), None)
    if mine is not None and _holds_lease(mine, host, now):
        return (
            f"another herder server (pid {mine.pid} on {mine.host}) is running on the data "
            f"folder {mine.data_dir}; stop it first, or give this one its own data folder "
            "(HERDER_DATA_DIR)"
        )
    if only_one:
        others = [s for s in known if s.id != server_id and _holds_lease(s, host, now)]
        if others:
            other = others[0]
            return (
                f"another herder server (pid {other.pid} on {other.host}, data folder "
                f"{other.data_dir}) is active on this SQLite database, and SQLite allows one "
                "active scheduler. Stop it, or use PostgreSQL (HERDER_DATABASE_URL) to run "
                "several servers"
            )
    return None


def register(
    conn: Connection,
    *,
    server_id: str,
    host: str,
    pid: int,
    data_dir: str,
    now: datetime,
    ttl: float,
    only_one: bool,
) -> int:
    """Start a lease for ``server_id`` and return its new epoch.

    Refused while another live process holds the lease of the same identity (two servers on one
    data folder), and with ``only_one`` (SQLite) while any other server holds a lease at all.
    """
    query = sa.select(servers)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    known = [Server.of(row) for row in conn.execute(query)]
    problem = _refusal(known, server_id=server_id, host=host, now=now, only_one=only_one)
    if problem is not None:
        raise Conflict(problem)
    mine = next((s for s in known if s.id == server_id), None)
    values = {
        "host": host, "pid": pid, "data_dir": data_dir, "started_at": now, "heartbeat_at": now,
        "lease_until": now + timedelta(seconds=ttl), "stopped_at": None,
    }
    if mine is None:
        conn.execute(servers.insert().values(id=server_id, epoch=1, **values))
        return 1
    conn.execute(servers.update().where(servers.c.id == server_id).values(
        epoch=mine.epoch + 1, **values))
    return mine.epoch + 1


def renew(conn: Connection, server_id: str, epoch: int, now: datetime, ttl: float) -> bool:
    """Extend the lease; False when the server was fenced (its epoch moved on)."""
    count = conn.execute(
        servers.update()
        .where(servers.c.id == server_id, servers.c.epoch == epoch)
        .values(heartbeat_at=now, lease_until=now + timedelta(seconds=ttl))
    ).rowcount
    return count == 1


def stop(conn: Connection, server_id: str, epoch: int, now: datetime) -> None:
    """A clean stop. The lease runs on: the runs stay this identity's, for its next start."""
    conn.execute(
        servers.update()
        .where(servers.c.id == server_id, servers.c.epoch == epoch)
        .values(stopped_at=now)
    )


def expired_with_runs(conn: Connection, now: datetime) -> list[Server]:
    """Servers whose lease has run out while they still own launched runs."""
    owners = (
        sa.select(runs.c.owner).where(runs.c.status.in_(_LAUNCHED)).distinct().scalar_subquery()
    )
    rows = conn.execute(
        sa.select(servers).where(servers.c.lease_until < now, servers.c.id.in_(owners))
    )
    return [Server.of(row) for row in rows]


def take_over(
    conn: Connection, dead: Server, *, server_id: str, epoch: int, now: datetime
) -> list[Run]:
    """Fence ``dead`` and take its launched runs, IN_DOUBT, for this server to reconcile.

    The fence is a conditional update whose row count is checked: of several servers trying at
    once, one wins; and none wins if ``dead`` renewed its lease meanwhile.
    """
    fenced = conn.execute(
        servers.update()
        .where(
            servers.c.id == dead.id, servers.c.epoch == dead.epoch, servers.c.lease_until < now
        )
        .values(epoch=dead.epoch + 1)
    ).rowcount
    if fenced != 1:
        return []
    rows = conn.execute(
        runs.update()
        .where(runs.c.owner == dead.id, runs.c.status.in_(_LAUNCHED))
        .values(owner=server_id, owner_epoch=epoch, status=RunStatus.IN_DOUBT.value)
        .returning(*runs.c)
    )
    return [row_to_run(row) for row in rows]


def get(conn: Connection, server_id: str) -> Server | None:
    row = conn.execute(sa.select(servers).where(servers.c.id == server_id)).first()
    return None if row is None else Server.of(row)
