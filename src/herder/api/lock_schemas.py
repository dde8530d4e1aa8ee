"""The bodies of locks: a lock with its holders and waiters, and a run's locks with the reason
it waits."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, Field

from herder.model import locks
from herder.model.runs import Run, RunStatus
from herder.store.lock_reads import Claim, LockState, RunLock


class RunLockOut(BaseModel):
    """A lock a run holds or waits for."""

    key: str = Field(description="the lock's name, in the run's namespace")
    slots: int
    state: str = Field(description="held | waiting")
    since: datetime = Field(description="when it was granted, or asked for")
    holders: list[int] = Field(description="ids of the runs holding the lock now")
    ahead: int = Field(description="runs waiting for it before this one")

    @classmethod
    def of(cls, lock: RunLock) -> RunLockOut:
        return cls(key=lock.key, slots=lock.slots, state="held" if lock.held else "waiting",
                   since=lock.since, holders=lock.holders, ahead=lock.ahead)


def waiting_for(run: Run, held: list[RunLock]) -> str | None:
    """Why a WAITING run waits, as people read it: its locks, or its job's concurrency (None
    when it is neither)."""
    if run.status is not RunStatus.WAITING:
        return None
    waited = [lock for lock in held if not lock.held]
    if waited and run.not_before is not None and run.not_before > datetime.now(UTC):
        return (f"waiting for its start time ({run.not_before.isoformat()}: its slot or a "
                "retry's backoff), then for its locks")
    if not waited:
        if run.spec.get("concurrency") != "queue":
            return None
        most = run.spec.get("max_active", 1)
        return f"waiting for a concurrency slot: the job allows {most} active run(s) (queue)"
    blocking = [lock for lock in waited if lock.ahead >= lock.slots - len(lock.holders)]
    return locks.waiting_reason((lock.key, lock.holders, lock.ahead) for lock in blocking or waited)


class LockClaimOut(BaseModel):
    run: int = Field(description="the run's id")
    job: str = Field(description="namespace/name of its job")
    since: datetime = Field(description="when it was granted the lock, or asked for it")

    @classmethod
    def of(cls, claim: Claim) -> LockClaimOut:
        return cls(run=claim.run_id, job=claim.job, since=claim.since)


class LockOut(BaseModel):
    """A lock: its slots, the runs holding it, the runs waiting for it (first in line first)
    and the jobs that declare it."""

    name: str
    namespace: str
    ref: str = Field(description="namespace/name")
    slots: int = Field(description="how many runs may hold it at once (1: a mutex)")
    holders: list[LockClaimOut]
    waiters: list[LockClaimOut] = Field(description="in queue order")
    jobs: list[str] = Field(description="the jobs that declare it (namespace/name)")

    @classmethod
    def of(cls, lock: LockState) -> LockOut:
        return cls(
            name=lock.name, namespace=lock.namespace, ref=f"{lock.namespace}/{lock.name}",
            slots=lock.slots, holders=[LockClaimOut.of(c) for c in lock.holders],
            waiters=[LockClaimOut.of(c) for c in lock.waiters], jobs=lock.jobs,
        )
