"""Queries on runs. Status changes follow ``model.runs.TRANSITIONS``, enforced in SQL.

Every status write is ``UPDATE … WHERE id = :id AND status IN (:allowed sources)`` and its row
count is checked: two writers racing on one run cannot both win, and a terminal run never moves.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Row

from herder.model.errors import Conflict, InvalidTransition, NotFound
from herder.model.jobs import Job, JobSpec
from herder.model.outputs import Outputs
from herder.model.runs import (
    ACTIVE,
    LAUNCHED,
    SOURCES,
    Run,
    RunStatus,
    StopReason,
    Trigger,
    outcome,
    transition,
)
from herder.store.history import beyond_retention
from herder.store.tables import jobs, lock_claims, run_labels, runs, workflow_runs
from herder.store.text import contains

_NOT_LAUNCHED = [s.value for s in (RunStatus.READY, RunStatus.WAITING, RunStatus.ACTION_PENDING)]
_LAUNCHED = [s.value for s in LAUNCHED]

# The hot statements are built once: building a SQLAlchemy statement costs more CPU than SQLite
# takes to run it. Values travel as parameters; an UPDATE without .values() sets the columns
# named in its parameters.
_SOURCE_VALUES = {target: sorted(s.value for s in SOURCES[target]) for target in RunStatus}
_SLOT_KEY = ["job_id", "scheduled_for", "attempt"]
_INSERT = {
    "postgresql": postgresql.insert(runs)
    .on_conflict_do_nothing(index_elements=_SLOT_KEY)
    .returning(*runs.c),
    "sqlite": sqlite.insert(runs).on_conflict_do_nothing(index_elements=_SLOT_KEY).returning(
        *runs.c
    ),
}
_COUNT_RUN = (
    jobs.update()
    .where(jobs.c.id == sa.bindparam("job_id"))
    .values(run_count=jobs.c.run_count + sa.bindparam("n"))
)
_INSERT_LABELS = run_labels.insert()
_BY_ID = sa.select(runs).where(runs.c.id == sa.bindparam("run_id"))
_GUARDED = (
    runs.update()
    .where(
        runs.c.id == sa.bindparam("_id"), runs.c.status.in_(sa.bindparam("_from", expanding=True))
    )
    .returning(*runs.c)
)
_GUARDED_OWNED = _GUARDED.where(runs.c.owner == sa.bindparam("_owner"))
_GUARDED_FENCED = _GUARDED_OWNED.where(runs.c.owner_epoch == sa.bindparam("_epoch"))
_STOP_REASON = sa.select(runs.c.stop_reason, runs.c.cancel_force).where(
    runs.c.id == sa.bindparam("run_id")
)


def row_to_run(row: Row[Any]) -> Run:
    return Run(
        id=row.id,
        job_id=row.job_id,
        namespace=row.namespace,
        job_name=row.job_name,
        status=RunStatus(row.status),
        trigger=Trigger(row.trigger),
        attempt=row.attempt,
        parent_id=row.parent_id,
        submitter=row.submitter,
        params=row.params,
        env=row.env,
        spec=row.spec,
        backend=row.backend,
        node=row.node,
        labels=row.labels,
        exit_code=row.exit_code,
        error=row.error,
        scheduled_for=row.scheduled_for,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        deadline_at=row.deadline_at,
        cancel_requested_at=row.cancel_requested_at,
        cancel_force=row.cancel_force,
        stop_reason=StopReason(row.stop_reason) if row.stop_reason else None,
        handle=row.handle,
        owner=row.owner,
        owner_epoch=row.owner_epoch,
        upstream_run_id=row.upstream_run_id,
        not_before=row.not_before,
        outputs=row.outputs or {},
        outputs_error=row.outputs_error,
        workflow_run_id=row.workflow_run_id,
        step=row.step,
        item=row.item,
        context=row.context,
        decided_by=row.decided_by,
        decided_at=row.decided_at,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class NewRun:
    """A run to create: of ``job``, with the job's spec frozen into it (editing a job never
    rewrites history). A run created SKIPPED says why in ``error``."""

    job: Job | None  # None: a workflow's inline step, whose ``spec`` is built from the step
    params: dict[str, Any]
    env: dict[str, str]
    trigger: Trigger
    now: datetime
    submitter: str | None = None
    scheduled_for: datetime | None = None
    attempt: int = 1
    parent_id: int | None = None
    upstream_run_id: int | None = None
    status: RunStatus = RunStatus.READY
    not_before: datetime | None = None
    error: str | None = None
    # A workflow's step run (``engine.workflows``).
    workflow_run_id: int | None = None
    step: str | None = None
    item: int = 0
    context: dict[str, Any] | None = None
    spec: JobSpec | None = None  # when not the job's

    @property
    def job_spec(self) -> JobSpec:
        assert self.job is not None, "a run without a job is given its spec"
        return self.job.spec

    @property
    def ref(self) -> str:
        spec = self.spec or self.job_spec
        return f"{spec.namespace}/{spec.name}"

    def values(self) -> dict[str, Any]:
        spec = self.spec or self.job_spec
        return {
            "workflow_run_id": self.workflow_run_id,
            "step": self.step,
            "item": self.item,
            "context": self.context,
            "job_id": None if self.job is None else self.job.id,
            "namespace": spec.namespace,
            "job_name": spec.name,
            "status": self.status.value,
            "trigger": self.trigger.value,
            "attempt": self.attempt,
            "parent_id": self.parent_id,
            "upstream_run_id": self.upstream_run_id,
            "submitter": self.submitter,
            "params": self.params,
            "env": self.env,
            "spec": spec.to_dict(),
            "backend": spec.backend,
            "labels": spec.labels,
            "created_at": self.now,
            "scheduled_for": self.scheduled_for,
            "cancel_force": False,
            "not_before": self.not_before,
            "error": self.error,
            "finished_at": self.now if self.status.terminal else None,
        }


def create(conn: Connection, **fields: Any) -> Run:
    """Create one run (the fields of ``NewRun``); ``Conflict`` if its slot already has one."""
    new = NewRun(**fields)
    created = create_many(conn, [new])
    if not created:
        raise Conflict(
            f"job {new.ref} already has a run for slot {new.scheduled_for} attempt "
            f"{new.attempt}",
            details={"scheduled_for": str(new.scheduled_for), "attempt": new.attempt},
        )
    return created[0]


def create_many(conn: Connection, news: list[NewRun]) -> list[Run]:
    """Create runs in one statement; a run whose slot already has one is left out (the store
    answers ON CONFLICT DO NOTHING rather than an error, which would abort the caller's whole
    transaction). Answers the runs created."""
    if not news:
        return []
    statement = _INSERT[conn.dialect.name]
    if len(news) == 1:
        rows = conn.execute(statement, news[0].values()).all()
    else:  # SQLAlchemy sends these as multi-row INSERT ... RETURNING statements
        rows = conn.execute(statement, [new.values() for new in news]).all()
    created = [row_to_run(row) for row in rows]
    counts = Counter(run.job_id for run in created if run.job_id is not None)
    if counts:
        conn.execute(_COUNT_RUN, [{"job_id": job, "n": n} for job, n in counts.items()])
    steps = Counter(run.workflow_run_id for run in created if run.workflow_run_id is not None)
    bump(conn, dict(steps))
    labelled = [
        {"run_id": run.id, "key": key, "value": value}
        for run in created for key, value in run.labels.items()
    ]
    if labelled:
        conn.execute(_INSERT_LABELS, labelled)
    return created


def not_found(run_id: int) -> NotFound:
    """The error for a run that does not exist, also answered for one the caller may not see."""
    return NotFound(f"no run with id {run_id}", details={"run": run_id})


def get(conn: Connection, run_id: int) -> Run:
    row = conn.execute(_BY_ID, {"run_id": run_id}).first()
    if row is None:
        raise not_found(run_id)
    return row_to_run(row)


# Past this many jobs matching ``q``, reading each one's newest runs costs more than reading
# the history newest first until enough runs match (which is quick when many do).
_Q_JOBS = 50


def search(
    conn: Connection,
    *,
    job_id: int | None = None,
    namespace: str | None = None,
    job_name: str | None = None,
    statuses: Iterable[RunStatus] = (),
    trigger: Trigger | None = None,
    submitter: str | None = None,
    labels: dict[str, str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    q: str | None = None,
    before_id: int | None = None,
    limit: int = 100,
    readable: frozenset[str] | None = None,
    workflow_run_id: int | None = None,
) -> list[Run]:
    """Runs newest first; ``before_id`` is the cursor (the last id of the previous page).

    ``job_name`` (with ``namespace``) finds the runs of a job by name, also once it has been
    deleted; ``since``/``until`` bound ``created_at``; ``q`` is text in the job's name or
    description, case-insensitive: the job's current ones, and for the runs of a deleted job
    the ones it had; ``readable`` (None: all) keeps to the namespaces the caller may read."""
    conditions: list[sa.ColumnElement[bool]] = []
    if readable is not None:
        conditions.append(runs.c.namespace.in_(sorted(readable)))
    if job_id is not None:
        conditions.append(runs.c.job_id == job_id)
    if namespace is not None:
        conditions.append(runs.c.namespace == namespace)
    if job_name is not None:
        conditions.append(runs.c.job_name == job_name)
    wanted = [s.value for s in statuses]
    if wanted:
        conditions.append(runs.c.status.in_(wanted))
    if trigger is not None:
        conditions.append(runs.c.trigger == trigger.value)
    if workflow_run_id is not None:
        conditions.append(runs.c.workflow_run_id == workflow_run_id)
    if submitter is not None:
        conditions.append(runs.c.submitter == submitter)
    if since is not None:
        conditions.append(runs.c.created_at >= since)
    if until is not None:
        conditions.append(runs.c.created_at < until)
    query = _newest(conditions, labels or {}, before_id, limit)
    if q:
        matched = _jobs_matching(conn, q, namespace=namespace, job_id=job_id, readable=readable)
        if matched is not None:
            return _newest_of_jobs(conn, query, matched, q, limit)
        description = runs.c.spec["description"].as_string()
        query = query.where(sa.or_(contains(runs.c.job_name, q), contains(description, q)))
    return [row_to_run(row) for row in conn.execute(query)]


def _newest(
    conditions: list[sa.ColumnElement[bool]],
    labels: dict[str, str],
    before_id: int | None,
    limit: int,
) -> sa.Select[Any]:
    """The newest ``limit`` runs meeting ``conditions`` and carrying ``labels``. With labels,
    the first one is read through ``run_labels`` newest first (its primary key), the others
    are checked there for each run found."""
    if not labels:
        order = runs.c.id
        query = sa.select(runs)
    else:
        (key, value), *others = labels.items()
        order = run_labels.c.run_id
        query = (
            sa.select(runs)
            .join(run_labels, run_labels.c.run_id == runs.c.id)
            .where(run_labels.c.key == key, run_labels.c.value == value)
        )
        for key, value in others:
            also = run_labels.alias()
            conditions = [*conditions, sa.exists().where(
                also.c.key == key, also.c.value == value, also.c.run_id == runs.c.id
            )]
    if before_id is not None:
        conditions = [*conditions, order < before_id]
    return query.where(*conditions).order_by(order.desc()).limit(limit)


def _jobs_matching(
    conn: Connection, q: str, *, namespace: str | None, job_id: int | None,
    readable: frozenset[str] | None,
) -> list[int] | None:
    """The ids of the jobs whose name or description holds ``q``; None when there are too
    many for reading each one's runs to pay."""
    query = sa.select(jobs.c.id).where(
        sa.or_(contains(jobs.c.name, q), contains(jobs.c.description, q))
    )
    if namespace is not None:
        query = query.where(jobs.c.namespace == namespace)
    if job_id is not None:
        query = query.where(jobs.c.id == job_id)
    if readable is not None:
        query = query.where(jobs.c.namespace.in_(sorted(readable)))
    found = list(conn.execute(query.limit(_Q_JOBS + 1)).scalars())
    return None if len(found) > _Q_JOBS else found


def _newest_of_jobs(
    conn: Connection, query: sa.Select[Any], job_ids: list[int], q: str, limit: int
) -> list[Run]:
    """``query`` (newest first, at most ``limit``) for each job in ``job_ids`` and for the runs
    of deleted jobs whose name or description held ``q``, merged newest first. Each part reads
    its own index range (``(job_id, id)``), so a rare match costs a few short reads."""
    description = runs.c.spec["description"].as_string()
    parts = [query.where(runs.c.job_id == job) for job in job_ids]
    parts.append(query.where(
        runs.c.job_id.is_(None),
        sa.or_(contains(runs.c.job_name, q), contains(description, q)),
    ))
    found = [row_to_run(row) for part in parts for row in conn.execute(part)]
    found.sort(key=lambda run: run.id, reverse=True)
    return found[:limit]


def set_status(
    conn: Connection,
    /,
    run_id: int,
    target: RunStatus,
    *,
    owner: str | None = None,
    epoch: int | None = None,
    **fields: Any,
) -> Run:
    """Move a run to ``target`` if the state machine allows it from the status it has *now*.

    With ``owner``, the write only applies while that server still owns the run; with ``epoch``
    too, only while it owns it under that epoch (a server that was taken over is fenced off).
    Raises ``InvalidTransition`` (naming the actual status), ``NotFound`` or ``Conflict``; never
    overwrites silently.
    """
    params = {"_id": run_id, "_from": _SOURCE_VALUES[target], "status": target.value, **fields}
    statement = _GUARDED
    if owner is not None:
        statement, params["_owner"] = _GUARDED_OWNED, owner
        if epoch is not None:
            statement, params["_epoch"] = _GUARDED_FENCED, epoch
    elif epoch is not None:
        raise ValueError("an epoch guards a write only together with its owner")
    row = conn.execute(statement, params).first()
    if row is not None:
        if target.terminal and row.workflow_run_id is not None:
            bump(conn, {row.workflow_run_id: 1})
        return row_to_run(row)
    current = get(conn, run_id)  # NotFound if it does not exist
    transition(current.status, target)  # raises InvalidTransition if that was the reason
    raise Conflict(
        f"run {run_id} is owned by another server ({current.owner}, epoch {current.owner_epoch})",
        details={"owner": current.owner, "epoch": current.owner_epoch},
    )


def set_handle(
    conn: Connection, run_id: int, handle: dict[str, Any], *, owner: str, epoch: int
) -> None:
    """Record where a run is (or would be), while ``owner`` holds it under ``epoch``."""
    conn.execute(
        runs.update()
        .where(runs.c.id == run_id, runs.c.owner == owner, runs.c.owner_epoch == epoch)
        .values(handle=handle)
    )


def claim_ready(
    conn: Connection, owner: str, limit: int, *, epoch: int | None = None,
    now: datetime | None = None,
) -> list[Run]:
    """Take up to ``limit`` READY runs for ``owner`` (oldest first) and mark them JOB_DEPLOYED,
    stamped with the owner's ``epoch``. With ``now``, runs whose ``not_before`` is later wait.

    On PostgreSQL, ``FOR UPDATE SKIP LOCKED`` lets several servers claim side by side.
    """
    pick = (
        sa.select(runs.c.id)
        .where(runs.c.status == RunStatus.READY.value)
        .order_by(runs.c.id)
        .limit(limit)
    )
    if now is not None:
        pick = pick.where(sa.or_(runs.c.not_before.is_(None), runs.c.not_before <= now))
    if conn.dialect.name == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    return claim(conn, owner, list(conn.execute(pick).scalars()), epoch=epoch)


def claim(conn: Connection, owner: str, ids: list[int], *, epoch: int | None = None) -> list[Run]:
    """Take the runs ``ids`` that are still READY for ``owner`` (JOB_DEPLOYED, stamped with
    its ``epoch``); answers those it took, oldest first."""
    if not ids:
        return []
    conn.execute(
        runs.update()
        .where(runs.c.id.in_(ids), runs.c.status == RunStatus.READY.value)
        .values(status=RunStatus.JOB_DEPLOYED.value, owner=owner, owner_epoch=epoch)
    )
    rows = conn.execute(
        sa.select(runs)
        .where(
            runs.c.id.in_(ids), runs.c.owner == owner, runs.c.status == RunStatus.JOB_DEPLOYED.value
        )
        .order_by(runs.c.id)
    )
    return [row_to_run(row) for row in rows]


def request_cancel(
    conn: Connection, run_id: int, *, force: bool, now: datetime, reason: str | None = None
) -> Run:
    """Cancel: a run not yet launched ends ABORTED here; a launched one gets the request flag,
    and its backend is told to stop it (the terminal ABORTED confirms it)."""
    current = get(conn, run_id)
    if current.status.terminal:
        raise InvalidTransition(
            f"run {run_id} has already ended ({current.status.value})",
            details={"status": current.status.value},
        )
    if current.status.value in _NOT_LAUNCHED:
        return set_status(
            conn,
            run_id,
            RunStatus.ABORTED,
            finished_at=now,
            cancel_requested_at=now,
            cancel_force=force,
            error=reason or "cancelled before it started",
        )
    conn.execute(
        runs.update()
        .where(runs.c.id == run_id, runs.c.status.in_(_LAUNCHED))
        .values(
            cancel_requested_at=sa.func.coalesce(runs.c.cancel_requested_at, now),
            cancel_force=runs.c.cancel_force | force,
            stop_reason=sa.func.coalesce(runs.c.stop_reason, StopReason.CANCEL.value),
        )
    )
    return get(conn, run_id)


def mark_stopping(conn: Connection, run_id: int, reason: StopReason) -> bool:
    """Record why herder is stopping a run (first reason wins); False if it already ended."""
    return bool(
        conn.execute(
            runs.update()
            .where(runs.c.id == run_id, runs.c.status.in_(_LAUNCHED), runs.c.stop_reason.is_(None))
            .values(stop_reason=reason.value)
        ).rowcount
    )


def owned_active(conn: Connection, owner: str) -> list[Run]:
    """Launched runs this server owns: what to reconcile after a restart."""
    rows = conn.execute(
        sa.select(runs)
        .where(runs.c.owner == owner, runs.c.status.in_(_LAUNCHED))
        .order_by(runs.c.id)
    )
    return [row_to_run(row) for row in rows]


def active_count(conn: Connection) -> int:
    return int(
        conn.execute(
            sa.select(sa.func.count())
            .select_from(runs)
            .where(runs.c.status.in_([s.value for s in ACTIVE]))
        ).scalar_one()
    )


def finish(
    conn: Connection,
    run_id: int,
    *,
    owner: str,
    exit_code: int | None,
    signal: int | None,
    now: datetime,
    epoch: int | None = None,
    outputs: Outputs | None = None,
) -> Run:
    """Record how a launched run's process ended; the status follows from it and from why herder
    may have stopped it (``model.runs.outcome``), decided inside this one transaction. The
    ``outputs`` it published (read from its file before this transaction) are kept with it."""
    row = conn.execute(_STOP_REASON, {"run_id": run_id}).first()
    if row is None:
        raise NotFound(f"no run with id {run_id}")
    reason = StopReason(row.stop_reason) if row.stop_reason else None
    target = outcome(exit_code=exit_code, signal=signal, stop_reason=reason)
    error = None
    if target is RunStatus.APP_ERROR and signal is not None:
        error = f"killed by signal {signal}"
    elif target is RunStatus.ABORTED:
        error = "cancelled" + (" (forced)" if row.cancel_force else "")
    elif target is RunStatus.TIMEOUT:
        error = "stopped at its timeout"
    published: dict[str, Any] = {}
    if outputs is not None and (outputs.values or outputs.error):
        published = {"outputs": outputs.values, "outputs_error": outputs.error}
    return set_status(
        conn, run_id, target, owner=owner, epoch=epoch, exit_code=exit_code, finished_at=now,
        error=error, **published,
    )


def fail(
    conn: Connection, run_id: int, *, owner: str | None, error: str, now: datetime,
    epoch: int | None = None,
) -> Run:
    """End a run PROC_ERROR: it could not be started, or its backend lost it for good."""
    return set_status(
        conn, run_id, RunStatus.PROC_ERROR, owner=owner, epoch=epoch, error=error[:4000],
        finished_at=now,
    )


# Runs that count against a job's ``max_active``: about to be dispatched, or launched, or let
# in by the job's concurrency policy and waiting for locks (a WAITING run with lock claims).
OCCUPYING = [RunStatus.READY.value, *_LAUNCHED]
_CLAIMS_LOCKS = sa.exists().where(lock_claims.c.run_id == runs.c.id)
_OCCUPYING = (
    sa.select(runs)
    .where(
        runs.c.job_id == sa.bindparam("job_id"),
        sa.or_(
            runs.c.status.in_(OCCUPYING),
            sa.and_(runs.c.status == RunStatus.WAITING.value, _CLAIMS_LOCKS),
        ),
    )
    .order_by(runs.c.id)
)
# The runs waiting for a concurrency slot of their job (not those waiting for locks).
_WAITING = (
    sa.select(runs)
    .where(
        runs.c.job_id == sa.bindparam("job_id"),
        runs.c.status == RunStatus.WAITING.value,
        ~_CLAIMS_LOCKS,
    )
    .order_by(runs.c.id)
    .limit(sa.bindparam("limit"))
)
_ANY_WAITING = _WAITING.with_only_columns(runs.c.id)


def occupying(conn: Connection, job_id: int) -> list[Run]:
    """The job's runs that hold a concurrency slot (READY, launched, or waiting for locks),
    oldest first."""
    return [row_to_run(row) for row in conn.execute(_OCCUPYING, {"job_id": job_id})]


def waiting(conn: Connection, job_id: int, limit: int) -> list[Run]:
    """The job's oldest runs WAITING for a concurrency slot."""
    return [row_to_run(row) for row in conn.execute(_WAITING, {"job_id": job_id, "limit": limit})]


def has_waiting(conn: Connection, job_id: int) -> bool:
    found = conn.execute(_ANY_WAITING, {"job_id": job_id, "limit": 1}).first()
    return found is not None


def slot_runs(
    conn: Connection, job_id: int, *, limit: int, before: datetime | None = None
) -> list[Run]:
    """The first attempts of the job's scheduled slots, newest slot first."""
    query = (
        sa.select(runs)
        .where(runs.c.job_id == job_id, runs.c.scheduled_for.is_not(None), runs.c.attempt == 1)
        .order_by(runs.c.scheduled_for.desc())
        .limit(limit)
    )
    if before is not None:
        query = query.where(runs.c.scheduled_for < before)
    return [row_to_run(row) for row in conn.execute(query)]


def retries_of(conn: Connection, parent_ids: list[int]) -> dict[int, Run]:
    """The runs that retried each of ``parent_ids`` (for "what became of this slot")."""
    if not parent_ids:
        return {}
    rows = conn.execute(sa.select(runs).where(runs.c.parent_id.in_(parent_ids)))
    return {row.parent_id: row_to_run(row) for row in rows}


_NEXT_NOT_BEFORE = sa.select(sa.func.min(runs.c.not_before)).where(
    runs.c.status == RunStatus.READY.value, runs.c.not_before > sa.bindparam("now")
)


def next_not_before(conn: Connection, now: datetime) -> datetime | None:
    """When the next READY run held back by ``not_before`` may go."""
    moment: datetime | None = conn.execute(_NEXT_NOT_BEFORE, {"now": now}).scalar()
    return moment


_TERMINAL = [s.value for s in RunStatus if s.terminal]


# A job, or a deleted job by its namespace and name: whose history pruning is looking at.
JobScope = int | tuple[str, str]


def _of(job: JobScope) -> sa.ColumnElement[bool]:
    if isinstance(job, int):
        return runs.c.job_id == job
    namespace, name = job
    return sa.and_(
        runs.c.job_id.is_(None), runs.c.namespace == namespace, runs.c.job_name == name
    )


def prunable(
    conn: Connection,
    job: JobScope,
    *,
    older_than: datetime | None,
    keep: int | None,
    limit: int,
) -> list[int]:
    """Ids of the job's ended runs that its retention lets go: ended before ``older_than``,
    or beyond its newest ``keep`` runs. A run whose retry is still active stays (it is what
    that retry points at). A workflow's step runs are not the job's to prune: they go with
    their workflow run (``store.workflow_runs.delete``)."""
    scope = sa.and_(_of(job), runs.c.workflow_run_id.is_(None))
    retried = sa.select(runs.c.parent_id).where(
        scope, runs.c.parent_id.is_not(None), runs.c.status.not_in(_TERMINAL)
    )
    beyond = beyond_retention(runs, scope, older_than=older_than, keep=keep)
    if beyond is None:
        return []
    query = (
        sa.select(runs.c.id)
        .where(scope, runs.c.status.in_(_TERMINAL), beyond,
               runs.c.id.not_in(retried))
        .order_by(runs.c.id)
        .limit(limit)
    )
    return list(conn.execute(query).scalars())


def deleted_jobs(
    conn: Connection, *, after: tuple[str, str] | None, limit: int
) -> list[tuple[tuple[str, str], str, dict[str, Any] | None]]:
    """The deleted jobs that left runs behind, by (namespace, name) in order, each with the
    ``retention`` its newest run was started under: what history pruning follows for them."""
    newest = sa.func.max(runs.c.id).label("newest")
    groups = (
        sa.select(runs.c.namespace, runs.c.job_name, newest)
        .where(runs.c.job_id.is_(None), runs.c.workflow_run_id.is_(None))
        .group_by(runs.c.namespace, runs.c.job_name)
        .order_by(runs.c.namespace, runs.c.job_name)
        .limit(limit)
    )
    if after is not None:
        groups = groups.where(sa.tuple_(runs.c.namespace, runs.c.job_name) > sa.tuple_(*after))
    found = groups.subquery()
    query = (
        sa.select(found.c.namespace, found.c.job_name, runs.c.spec["retention"])
        .join(runs, runs.c.id == found.c.newest)
        .order_by(found.c.namespace, found.c.job_name)
    )
    return [((row[0], row[1]), row[0], row[2]) for row in conn.execute(query)]


def delete(conn: Connection, run_ids: list[int]) -> list[Run]:
    """Delete ended runs (history pruning); answers what was deleted, for their files."""
    if not run_ids:
        return []
    rows = conn.execute(
        runs.delete()
        .where(runs.c.id.in_(run_ids), runs.c.status.in_(_TERMINAL))
        .returning(*runs.c)
    )
    return [row_to_run(row) for row in rows]


def set_deadline(conn: Connection, run_id: int, deadline: datetime) -> None:
    """When a run waiting for a person (a workflow's approval) times out."""
    conn.execute(runs.update().where(runs.c.id == run_id).values(deadline_at=deadline))


def due_approvals(conn: Connection, now: datetime) -> list[Run]:
    """Workflow approvals still waiting for a person past their deadline."""
    rows = conn.execute(
        sa.select(runs).where(
            runs.c.status == RunStatus.ACTION_PENDING.value,
            runs.c.workflow_run_id.is_not(None),
            runs.c.deadline_at <= now,
        ).order_by(runs.c.id).limit(500)
    )
    return [row_to_run(row) for row in rows]


_BUMP = (
    workflow_runs.update()
    .where(workflow_runs.c.id == sa.bindparam("run_id"))
    .values(version=workflow_runs.c.version + sa.bindparam("n"))
)


def bump(conn: Connection, changes: dict[int, int]) -> None:
    """Count changes to workflow runs' steps (``workflow_runs.version``): a step run created or
    ended, a nested run started or ended. ``{workflow run: changes}``."""
    if changes:
        conn.execute(_BUMP, [{"run_id": k, "n": n} for k, n in changes.items()])
