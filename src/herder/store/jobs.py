"""Queries on jobs. Each function takes a Connection and runs inside the caller's transaction."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError

from herder.model.errors import Conflict, InvalidSpec, NameTaken, NotFound
from herder.model.jobs import DEFAULT_NAMESPACE, Job, JobSpec
from herder.model.policies import plan_at
from herder.model.runs import ACTIVE
from herder.model.schedules import Schedule, next_fire
from herder.store import chains as chain_store
from herder.store import locks as lock_store
from herder.store.tables import jobs, runs
from herder.store.text import contains
from herder.store.variables import check_defined


def _row_to_job(row: Row[Any]) -> Job:
    return Job(
        id=row.id,
        spec=JobSpec.from_dict(row.spec),
        created_at=row.created_at,
        updated_at=row.updated_at,
        run_count=row.run_count,
        next_run_at=row.next_run_at,
        schedule_state=row.schedule_state or {},
    )


def iso(moment: datetime) -> str:
    return moment.isoformat()


class Scheduled(Protocol):
    """What scheduling reads of a spec: a job's, or a workflow's (the same fields)."""

    @property
    def schedule(self) -> Schedule | None: ...
    @property
    def enabled(self) -> bool: ...
    @property
    def concurrency(self) -> str: ...


def scheduling(
    old: Scheduled | None, old_state: Mapping[str, Any] | None, spec: Scheduled, now: datetime,
    *, kind: str = "job",
) -> dict[str, Any]:
    """The ``next_run_at`` and scheduler state of a job (or workflow) after a create, an edit
    or a pause; ``old`` is its spec before, ``old_state`` its scheduler state.

    ``cursor`` is the newest slot the scheduler has dealt with. A new or changed schedule
    starts at ``now`` (nothing is backfilled); pausing keeps the cursor, so that resuming finds
    the slots missed meanwhile and treats them by the job's misfire policy.
    """
    state = dict(old_state or {})
    if spec.schedule is None:
        return {"next_run_at": None, "plan_at": None, "schedule_state": state or None}
    if old is None or old.schedule != spec.schedule or "cursor" not in state:
        at = spec.schedule.at
        if at is not None and at <= now and spec.enabled:
            raise InvalidSpec(
                f"schedule.at: {at.isoformat()} is in the past, so the {kind} would never run; "
                f"give a later moment, or use POST /api/v1/{kind}s/{{ref}}/runs to run it now"
            )
        state = {"cursor": iso(now)}
    was_enabled = old.enabled if old is not None else True
    if was_enabled and not spec.enabled:
        state["disabled_at"] = iso(now)
        state.pop("resumed_at", None)
    elif spec.enabled and not was_enabled and "disabled_at" in state:
        state["resumed_at"] = iso(now)
    cursor = datetime.fromisoformat(state["cursor"])
    upcoming = next_fire(spec.schedule, cursor) if spec.enabled else None
    return {
        "next_run_at": upcoming,
        "plan_at": plan_at(spec.concurrency, upcoming),
        "schedule_state": state,
    }


class Definition(Protocol):
    """What the row of a definition (a job, a workflow) is made of."""

    @property
    def namespace(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def labels(self) -> dict[str, str]: ...
    @property
    def enabled(self) -> bool: ...
    @property
    def description(self) -> str: ...
    def to_dict(self) -> dict[str, Any]: ...


def values(spec: Definition, now: datetime) -> dict[str, Any]:
    """The columns a job's (or workflow's) spec fills on a create or an update."""
    return {
        "namespace": spec.namespace,
        "name": spec.name,
        "spec": spec.to_dict(),
        "labels": spec.labels,
        "enabled": spec.enabled,
        "description": spec.description,
        "updated_at": now,
    }


def create(conn: Connection, spec: JobSpec, now: datetime) -> Job:
    """Insert a new job; ``NameTaken`` if its namespace already has one by that name."""
    check_defined(conn, spec)
    try:
        job_id = conn.execute(
            jobs.insert().values(
                **values(spec, now), **scheduling(None, None, spec, now), created_at=now,
                run_count=0
            )
        ).inserted_primary_key
    except IntegrityError as exc:
        raise NameTaken(
            f"a job named {spec.name!r} already exists in namespace {spec.namespace!r}",
            details={"namespace": spec.namespace, "name": spec.name},
        ) from exc
    assert job_id is not None
    # Runs a raised slot count lets in are found by the dispatcher's next look (within 1s).
    lock_store.declare(conn, job_id[0], spec, now)
    chain_store.declare(conn, job_id[0], spec)
    return get(conn, str(job_id[0]))


def replace(conn: Connection, spec: JobSpec, now: datetime) -> tuple[Job, bool]:
    """Create or replace by (namespace, name); answers the job and whether it was created."""
    row = conn.execute(
        sa.select(jobs.c.id).where(jobs.c.namespace == spec.namespace, jobs.c.name == spec.name)
    ).first()
    if row is None:
        return create(conn, spec, now), True
    return update(conn, row.id, spec, now), False


def update(conn: Connection, job_id: int, spec: JobSpec, now: datetime) -> Job:
    """Store a new spec for an existing job (its name and namespace may change)."""
    old = get(conn, str(job_id))
    check_defined(conn, spec)
    if (old.spec.namespace, old.spec.name) != (spec.namespace, spec.name):
        chain_store.refuse_while_followed(conn, old, "renaming")
    try:
        conn.execute(
            jobs.update()
            .where(jobs.c.id == job_id)
            .values(**values(spec, now), **scheduling(old.spec, old.schedule_state, spec, now))
        )
    except IntegrityError as exc:
        raise NameTaken(
            f"a job named {spec.name!r} already exists in namespace {spec.namespace!r}"
        ) from exc
    lock_store.declare(conn, job_id, spec, now)
    chain_store.declare(conn, job_id, spec)
    return get(conn, str(job_id))


MAX_ID = 2**63 - 1


def is_id(text: str) -> bool:
    """ASCII digits in the id range. ``str.isdigit`` alone also takes '¹', which ``int``
    refuses, and '٣', which it reads as 3; and neither store can look up an id past 2**63 - 1."""
    return text.isascii() and text.isdigit() and len(text) <= 19 and int(text) <= MAX_ID


def parse_ref(ref: str) -> tuple[int | None, str, str]:
    """``42`` (an id), ``ops/backup`` or ``backup`` (in ``default``). Digits that cannot be an id
    are a name, which no job has (names start with a letter)."""
    if is_id(ref):
        return int(ref), "", ""
    namespace, _, name = ref.rpartition("/")
    return None, namespace or DEFAULT_NAMESPACE, name


# Built once: every run submission looks its job up.
_BY_ID = sa.select(jobs).where(jobs.c.id == sa.bindparam("id"))
_BY_NAME = sa.select(jobs).where(
    jobs.c.namespace == sa.bindparam("namespace"), jobs.c.name == sa.bindparam("name")
)


def not_found(ref: str) -> NotFound:
    """The error for a job that does not exist, also answered for one the caller may not see."""
    job_id, namespace, name = parse_ref(ref)
    what = f"id {job_id}" if job_id is not None else f"name {namespace}/{name}"
    return NotFound(f"no job with {what}", details={"job": ref[:200]})


def get(conn: Connection, ref: str) -> Job:
    """One job by id, ``namespace/name`` or name; ``NotFound`` names what was looked for."""
    job_id, namespace, name = parse_ref(ref)
    if job_id is not None:
        row = conn.execute(_BY_ID, {"id": job_id}).first()
    else:
        row = conn.execute(_BY_NAME, {"namespace": namespace, "name": name}).first()
    if row is None:
        raise not_found(ref)
    return _row_to_job(row)


def search(
    conn: Connection,
    *,
    namespace: str | None = None,
    labels: dict[str, str] | None = None,
    enabled: bool | None = None,
    q: str | None = None,
    limit: int = 100,
    after_id: int | None = None,
    readable: frozenset[str] | None = None,
) -> list[Job]:
    """Jobs ordered by id; ``after_id`` is the cursor (the last id of the previous page);
    ``readable`` (None: all) keeps to the namespaces the caller may read."""
    query = sa.select(jobs).order_by(jobs.c.id).limit(limit)
    if readable is not None:
        query = query.where(jobs.c.namespace.in_(sorted(readable)))
    if namespace is not None:
        query = query.where(jobs.c.namespace == namespace)
    if enabled is not None:
        query = query.where(jobs.c.enabled == enabled)
    if after_id is not None:
        query = query.where(jobs.c.id > after_id)
    if q:
        query = query.where(sa.or_(contains(jobs.c.name, q), contains(jobs.c.description, q)))
    for key, value in (labels or {}).items():
        query = query.where(jobs.c.labels[key].as_string() == value)
    return [_row_to_job(row) for row in conn.execute(query)]


def delete(conn: Connection, ref: str) -> Job:
    """Delete a job; its runs are kept (history) with its name. Refused while runs are active."""
    job = get(conn, ref)
    active = conn.execute(
        sa.select(sa.func.count())
        .select_from(runs)
        .where(runs.c.job_id == job.id, runs.c.status.in_([s.value for s in ACTIVE]))
    ).scalar_one()
    if active:
        raise Conflict(
            f"job {job.ref} has {active} active run(s); cancel them before deleting the job",
            details={"active_runs": active},
        )
    chain_store.refuse_while_followed(conn, job, "deleting")
    conn.execute(runs.update().where(runs.c.job_id == job.id).values(job_id=None))
    lock_store.undeclare(conn, job.id, job.spec.namespace)
    conn.execute(jobs.delete().where(jobs.c.id == job.id))
    return job


def set_enabled(conn: Connection, ref: str, enabled: bool, now: datetime) -> Job:
    """Pause or resume a job's schedule; everything else about it stays as it was."""
    job = get(conn, ref)
    if job.spec.enabled == enabled:
        return job
    return update(conn, job.id, JobSpec.from_dict(job.spec.to_dict() | {"enabled": enabled}), now)


# The scheduler's questions. Both are ranges of the plan_at index: their cost follows the jobs
# that are due, not the jobs that exist.
def plan_statements(
    table: sa.Table, key: str
) -> tuple[sa.Select[Any], sa.Select[Any], sa.Select[Any], sa.Update]:
    """The scheduler's statements on a table with ``plan_at`` (jobs, workflows): the next
    moment to plan, the rows due (and the same, skipping rows another server has locked), and
    the write of a row's schedule (its id bound as ``key``)."""
    due = (
        sa.select(table)
        .where(table.c.plan_at <= sa.bindparam("now"))
        .order_by(table.c.plan_at)
        .limit(sa.bindparam("limit"))
    )
    write = (
        table.update()
        .where(table.c.id == sa.bindparam(key))
        .values(
            next_run_at=sa.bindparam("next_run_at"),
            plan_at=sa.bindparam("plan_at"),
            schedule_state=sa.bindparam("schedule_state"),
        )
    )
    return (sa.select(sa.func.min(table.c.plan_at)), due, due.with_for_update(skip_locked=True),
            write)


_NEXT_PLAN, _DUE, _DUE_LOCKED, _SET_SCHEDULE = plan_statements(jobs, "job_id")


def switch_off(conn: Connection, job: Job, now: datetime) -> None:
    """Disable a job whose schedule has no more slots (a one-shot that fired); the scheduler
    keeps its own state."""
    spec = job.spec.to_dict() | {"enabled": False}
    conn.execute(
        jobs.update().where(jobs.c.id == job.id).values(enabled=False, spec=spec, updated_at=now)
    )


def next_plan(conn: Connection) -> datetime | None:
    """When the scheduler has a slot to plan next."""
    moment: datetime | None = conn.execute(_NEXT_PLAN).scalar()
    return moment


def due(conn: Connection, now: datetime, limit: int) -> list[Job]:
    """Jobs whose next slot is to be planned by ``now``, earliest first. On PostgreSQL the
    rows stay locked until the transaction ends and other servers skip them: each slot is
    planned by one server."""
    query = _DUE_LOCKED if conn.dialect.name == "postgresql" else _DUE
    return [_row_to_job(row) for row in conn.execute(query, {"now": now, "limit": limit})]


def upcoming(
    conn: Connection,
    *,
    limit: int,
    namespace: str | None = None,
    readable: frozenset[str] | None = None,
) -> list[Job]:
    """Enabled jobs with a next slot, soonest first: what is due next (the dashboard)."""
    query = (sa.select(jobs).where(jobs.c.enabled.is_(True), jobs.c.next_run_at.is_not(None))
             .order_by(jobs.c.next_run_at, jobs.c.id).limit(limit))
    if readable is not None:
        query = query.where(jobs.c.namespace.in_(sorted(readable)))
    if namespace is not None:
        query = query.where(jobs.c.namespace == namespace)
    return [_row_to_job(row) for row in conn.execute(query)]


def schedule_update(
    job: Job,
    next_slot: datetime | None,
    state: dict[str, Any],
    *,
    planned: datetime | None = None,
) -> dict[str, Any]:
    """What the scheduler did to a job, for ``set_schedules``: its next slot to plan and state.

    ``planned`` is the earliest slot already planned (its run created ahead) that is still to
    come: until it passes, it is the job's ``next_run_at``; after, the next slot to plan is
    (``model.jobs.next_run`` reads it back from the state)."""
    state["next_slot"] = None if next_slot is None else iso(next_slot)
    return {
        "job_id": job.id,
        "next_run_at": planned or next_slot,
        "plan_at": plan_at(job.spec.concurrency, next_slot),
        "schedule_state": state,
    }


def set_schedules(conn: Connection, updates: list[dict[str, Any]]) -> None:
    """Record ``schedule_update``s, in one statement."""
    if updates:
        conn.execute(_SET_SCHEDULE, updates)


def set_schedule(
    conn: Connection, job: Job, next_run_at: datetime | None, state: dict[str, Any]
) -> None:
    set_schedules(conn, [schedule_update(job, next_run_at, state)])


def lock(conn: Connection, job_id: int) -> None:
    """Hold the job's row until the transaction ends, so that decisions about its runs
    (concurrency, queues) are taken one at a time across servers. SQLite has one writer."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(jobs.c.id).where(jobs.c.id == job_id).with_for_update())


def retentions(
    conn: Connection, *, after_id: int | None, limit: int, only_set: bool
) -> list[tuple[int, str, dict[str, Any] | None]]:
    """Jobs' ids and namespaces with their ``retention`` as written, in id order: what history
    pruning needs, without reading whole specs. ``only_set``: only jobs that set one."""
    retention = jobs.c.spec["retention"]
    query = sa.select(jobs.c.id, jobs.c.namespace, retention).order_by(jobs.c.id).limit(limit)
    if after_id is not None:
        query = query.where(jobs.c.id > after_id)
    rows = [(row[0], row[1], row[2]) for row in conn.execute(query)]
    return [(i, ns, r) for i, ns, r in rows if r or not only_set]
