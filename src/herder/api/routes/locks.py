"""``/api/v1/locks``: the locks jobs declare, who holds them and who waits; force-release."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Path, Query

from herder.api.auth import Permission, Principal, PrincipalDep
from herder.api.deps import DbDep, EngineDep
from herder.api.lock_schemas import LockOut
from herder.api.routes.jobs import parse_cursor
from herder.api.schemas import Page
from herder.model.jobs import DEFAULT_NAMESPACE, check_name
from herder.store import lock_reads

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1/locks", tags=["locks"])
LockRef = Annotated[str, Path(description="namespace/name, or a name in namespace default")]
RunId = Annotated[int, Path(ge=1, le=2**63 - 1, description="the holding run's id")]


def parse_lock_ref(ref: str) -> tuple[str, str]:
    """``ops/db`` or ``db`` (in ``default``), both parts checked as names."""
    namespace, _, name = ref.rpartition("/")
    namespace = check_name(namespace or DEFAULT_NAMESPACE, what="namespace")
    return namespace, check_name(name, what="lock")


def _check(principal: Principal, permission: Permission, namespace: str, name: str) -> None:
    """A lock of a namespace the caller may not read answers as a missing one (``lock_id``)."""
    principal.check(permission, namespace, missing=f"no lock named {name!r} in namespace "
                    f"{namespace!r}", details={"lock": f"{namespace}/{name}"[:200]})


@router.get("", response_model=Page[LockOut])
async def list_locks(
    db: DbDep,
    principal: PrincipalDep,
    namespace: Annotated[str | None, Query(max_length=63)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> Page[LockOut]:
    """Locks in the order they were first declared, with their holders and waiters."""
    if namespace is not None:
        check_name(namespace, what="namespace")
    found = await db.read(
        lock_reads.search, namespace=namespace, readable=principal.readable(),
        after_id=parse_cursor(cursor), limit=limit + 1,
    )
    more = len(found) > limit
    found = found[:limit]
    return Page[LockOut](
        items=[LockOut.of(lock) for lock in found],
        next_cursor=str(found[-1].id) if more else None,
    )


@router.delete("/{ref:path}/holders/{run_id}", response_model=LockOut)
async def force_release(
    ref: LockRef, run_id: RunId, engine: EngineDep, principal: PrincipalDep
) -> LockOut:
    """Take the lock from a run that holds it (an admin's repair, e.g. for a run stuck on a
    lost node). The run itself goes on; the next waiters get the lock at once. Answers the
    lock as it is after."""
    namespace, name = parse_lock_ref(ref)
    _check(principal, Permission.ADMIN, namespace, name)
    await engine.release_lock(namespace, name, run_id)
    log.warning("lock %s/%s taken from run %s by %s", namespace, name, run_id, principal.name,
                extra={"run_id": run_id, "action": "lock_force_released"})
    return LockOut.of(await engine.db.read(lock_reads.get, namespace, name))


@router.get("/{ref:path}", response_model=LockOut)
async def get_lock(ref: LockRef, db: DbDep, principal: PrincipalDep) -> LockOut:
    """One lock: its slots, holders (run, job, since) and waiters in queue order."""
    namespace, name = parse_lock_ref(ref)
    _check(principal, Permission.READ, namespace, name)
    return LockOut.of(await db.read(lock_reads.get, namespace, name))
