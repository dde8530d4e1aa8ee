"""Queries on workflow runs. Each function takes a Connection and runs inside the caller's
transaction; what a workflow run does next is ``engine.workflows``."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Row

from herder.model.errors import NotFound
from herder.model.runs import Run, RunStatus
from herder.model.workflow_state import WorkflowRun, WorkflowStatus
from herder.store.history import beyond_retention
from herder.store.runs import bump, row_to_run
from herder.store.tables import runs, workflow_runs

ACTIVE = [s.value for s in WorkflowStatus if not s.terminal]
_INSERT = {
    # Nothing on a taken slot (a scheduled one, or a nested step's child): the caller is told.
    "postgresql": postgresql.insert(workflow_runs).on_conflict_do_nothing()
    .returning(*workflow_runs.c),
    "sqlite": sqlite.insert(workflow_runs).on_conflict_do_nothing().returning(*workflow_runs.c),
}
_BY_ID = sa.select(workflow_runs).where(workflow_runs.c.id == sa.bindparam("run_id"))
_NO_SPEC = _BY_ID.with_only_columns(
    *(c for c in workflow_runs.c if c.name != "spec"), sa.literal_column("NULL").label("spec")
)
_STATEMENTS = {
    (False, True): _BY_ID, (True, True): _BY_ID.with_for_update(),
    (False, False): _NO_SPEC, (True, False): _NO_SPEC.with_for_update(),
}
_STEP_RUNS = (
    sa.select(runs.c.id, runs.c.step, runs.c.item, runs.c.attempt, runs.c.status,
              runs.c.outputs, runs.c.created_at, runs.c.started_at, runs.c.finished_at,
              runs.c.error)
    .where(runs.c.workflow_run_id.in_(sa.bindparam("ids", expanding=True)))
    .order_by(runs.c.id)
)
_STEP_STATES = _STEP_RUNS.with_only_columns(
    runs.c.id, runs.c.step, runs.c.item, runs.c.attempt, runs.c.status, runs.c.outputs
)
_CHILDREN = (
    sa.select(workflow_runs.c.id, workflow_runs.c.parent_step, workflow_runs.c.parent_item,
              workflow_runs.c.parent_attempt, workflow_runs.c.status,
              workflow_runs.c.created_at, workflow_runs.c.finished_at)
    .where(workflow_runs.c.parent_run_id.in_(sa.bindparam("ids", expanding=True)))
    .order_by(workflow_runs.c.id)
)


def row_to_workflow_run(row: Row[Any]) -> WorkflowRun:
    return WorkflowRun(
        id=row.id,
        workflow_id=row.workflow_id,
        namespace=row.namespace,
        workflow_name=row.workflow_name,
        spec=row.spec or {},
        params=row.params,
        status=WorkflowStatus(row.status),
        reason=row.reason,
        trigger=row.trigger,
        submitter=row.submitter,
        scheduled_for=row.scheduled_for,
        parent_run_id=row.parent_run_id,
        parent_step=row.parent_step,
        parent_item=row.parent_item,
        parent_attempt=row.parent_attempt,
        rerun_of=row.rerun_of,
        floors=row.floors or {},
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
        finished_at=row.finished_at,
        paused_at=row.paused_at,
        cancel_requested_at=row.cancel_requested_at,
    )


def create(conn: Connection, **values: Any) -> WorkflowRun | None:
    """Insert a workflow run (the table's columns); None when its slot (a scheduled time, or
    a nested step's item and attempt) already has one."""
    values.setdefault("reason", "")
    values.setdefault("floors", {})
    values.setdefault("version", 0)
    values.setdefault("parent_item", 0)
    values.setdefault("parent_attempt", 0)
    values.setdefault("updated_at", values["created_at"])
    row = conn.execute(_INSERT[conn.dialect.name], values).first()
    if row is None:
        return None
    if row.parent_run_id is not None:
        bump(conn, {row.parent_run_id: 1})
    return row_to_workflow_run(row)




def not_found(run_id: int) -> NotFound:
    return NotFound(f"no workflow run with id {run_id}", details={"workflow_run": run_id})


def get(
    conn: Connection, run_id: int, *, for_update: bool = False, spec: bool = True
) -> WorkflowRun:
    """One workflow run; ``for_update`` locks its row until the transaction ends (PostgreSQL;
    SQLite has a single writer), so two servers never decide for one run at once. Without
    ``spec``, its ``spec`` is left empty (for a caller that keeps it already)."""
    statement = _STATEMENTS[(for_update, spec)]
    row = conn.execute(statement, {"run_id": run_id}).first()
    if row is None:
        raise not_found(run_id)
    return row_to_workflow_run(row)


def update(conn: Connection, run_id: int, now: datetime, **values: Any) -> WorkflowRun:
    row = conn.execute(
        workflow_runs.update().where(workflow_runs.c.id == run_id)
        .values(updated_at=now, **values).returning(*workflow_runs.c)
    ).first()
    if row is None:
        raise not_found(run_id)
    return row_to_workflow_run(row)


def step_runs(
    conn: Connection, run_ids: Iterable[int], *, times: bool = True
) -> list[Row[Any]]:
    """The step runs of these workflow runs (a run and the runs it reran), oldest first;
    without ``times``, only what a decision reads."""
    return list(conn.execute(_STEP_RUNS if times else _STEP_STATES, {"ids": list(run_ids)}))


def children(conn: Connection, run_ids: Iterable[int]) -> list[Row[Any]]:
    """The workflow runs that nested steps of these workflow runs started, oldest first."""
    return list(conn.execute(_CHILDREN, {"ids": list(run_ids)}))


def active_ids(conn: Connection) -> list[int]:
    """Every workflow run that has not ended, oldest first."""
    return list(conn.scalars(
        sa.select(workflow_runs.c.id).where(workflow_runs.c.status.in_(ACTIVE))
        .order_by(workflow_runs.c.id)
    ))


def active_of(conn: Connection, workflow_id: int) -> list[WorkflowRun]:
    """A workflow's top-level runs that have not ended (for its concurrency policy)."""
    rows = conn.execute(
        sa.select(workflow_runs).where(
            workflow_runs.c.workflow_id == workflow_id, workflow_runs.c.status.in_(ACTIVE),
            workflow_runs.c.parent_run_id.is_(None),
        ).order_by(workflow_runs.c.id)
    )
    return [row_to_workflow_run(row) for row in rows]


def search(
    conn: Connection,
    *,
    namespaces: list[str] | None = None,
    workflow_id: int | None = None,
    status: list[str] | None = None,
    before: int | None = None,
    limit: int = 50,
) -> list[WorkflowRun]:
    """Workflow runs, newest first; ``namespaces`` None means all; ``before`` an id cursor."""
    query = sa.select(workflow_runs).order_by(workflow_runs.c.id.desc()).limit(limit)
    if namespaces is not None:
        query = query.where(workflow_runs.c.namespace.in_(namespaces))
    if workflow_id is not None:
        query = query.where(workflow_runs.c.workflow_id == workflow_id)
    if status:
        query = query.where(workflow_runs.c.status.in_(status))
    if before is not None:
        query = query.where(workflow_runs.c.id < before)
    return [row_to_workflow_run(row) for row in conn.execute(query)]


def lineage(conn: Connection, run: WorkflowRun) -> list[int]:
    """The run and the runs it reran, newest first: a rerun keeps their step runs."""
    found = [run.id]
    previous = run.rerun_of
    while previous is not None and len(found) < 1000:
        found.append(previous)
        previous = conn.scalar(
            sa.select(workflow_runs.c.rerun_of).where(workflow_runs.c.id == previous)
        )
    return found


def overdue(conn: Connection, now: datetime) -> list[tuple[int, float]]:
    """Top-level workflow runs still active past their frozen spec's ``timeout`` and not yet
    being cancelled: (id, timeout in seconds), oldest first."""
    rows = conn.execute(
        sa.select(workflow_runs.c.id, workflow_runs.c.created_at,
                  workflow_runs.c.spec["timeout"])
        .where(workflow_runs.c.status.in_(ACTIVE), workflow_runs.c.parent_run_id.is_(None),
               workflow_runs.c.cancel_requested_at.is_(None))
        .order_by(workflow_runs.c.id)
    )
    found = []
    for run_id, created_at, timeout in rows:
        if isinstance(timeout, int | float) and created_at + timedelta(seconds=timeout) <= now:
            found.append((run_id, float(timeout)))
    return found


WorkflowScope = int | tuple[str, str]  # a workflow's id, or a deleted one's (namespace, name)
_TERMINAL = [s.value for s in WorkflowStatus if s.terminal]
_RUN_TERMINAL = [s.value for s in RunStatus if s.terminal]


def _scope(workflow: WorkflowScope) -> sa.ColumnElement[bool]:
    top = workflow_runs.c.parent_run_id.is_(None)
    if isinstance(workflow, int):
        return sa.and_(top, workflow_runs.c.workflow_id == workflow)
    namespace, name = workflow
    return sa.and_(top, workflow_runs.c.workflow_id.is_(None),
                   workflow_runs.c.namespace == namespace,
                   workflow_runs.c.workflow_name == name)


def prunable(
    conn: Connection, workflow: WorkflowScope, *, older_than: datetime | None,
    keep: int | None, limit: int,
) -> list[int]:
    """Ids of the workflow's ended top-level runs that its retention lets go: ended before
    ``older_than``, or beyond its newest ``keep``. A run that a rerun was made of stays while
    that rerun does (the rerun reads its step runs)."""
    scope = _scope(workflow)
    reread = sa.select(workflow_runs.c.rerun_of).where(workflow_runs.c.rerun_of.is_not(None))
    beyond = beyond_retention(workflow_runs, scope, older_than=older_than, keep=keep)
    if beyond is None:
        return []
    query = (
        sa.select(workflow_runs.c.id)
        .where(scope, workflow_runs.c.status.in_(_TERMINAL), beyond,
               workflow_runs.c.id.not_in(reread))
        .order_by(workflow_runs.c.id).limit(limit)
    )
    return list(conn.execute(query).scalars())


def deleted_workflows(
    conn: Connection, *, after: tuple[str, str] | None, limit: int
) -> list[tuple[tuple[str, str], str, dict[str, Any] | None]]:
    """Deleted workflows that left runs behind, by (namespace, name), each with the
    ``retention`` its newest run was started under."""
    newest = sa.func.max(workflow_runs.c.id).label("newest")
    groups = (
        sa.select(workflow_runs.c.namespace, workflow_runs.c.workflow_name, newest)
        .where(workflow_runs.c.workflow_id.is_(None), workflow_runs.c.parent_run_id.is_(None))
        .group_by(workflow_runs.c.namespace, workflow_runs.c.workflow_name)
        .order_by(workflow_runs.c.namespace, workflow_runs.c.workflow_name)
        .limit(limit)
    )
    if after is not None:
        groups = groups.where(sa.tuple_(workflow_runs.c.namespace, workflow_runs.c.workflow_name)
                              > sa.tuple_(*after))
    found = groups.subquery()
    query = (
        sa.select(found.c.namespace, found.c.workflow_name, workflow_runs.c.spec["retention"])
        .join(workflow_runs, workflow_runs.c.id == found.c.newest)
        .order_by(found.c.namespace, found.c.workflow_name)
    )
    return [((row[0], row[1]), row[0], row[2]) for row in conn.execute(query)]


def delete(conn: Connection, run_ids: list[int]) -> tuple[list[int], list[Run]]:
    """Delete ended workflow runs (history pruning) with their nested runs and every step
    run of them all; answers the ids deleted, and the step runs deleted, for their files. A
    tree with
    anything still active is left whole (``runs.workflow_run_id`` has no foreign key: step
    runs are deleted here, explicitly)."""
    gone: list[Run] = []
    deleted: list[int] = []
    for run_id in run_ids:
        tree = [run_id]
        todo = [run_id]
        while todo:
            todo = list(conn.scalars(sa.select(workflow_runs.c.id).where(
                workflow_runs.c.parent_run_id.in_(todo))))
            tree.extend(todo)
        active = conn.scalar(sa.select(sa.func.count()).select_from(workflow_runs).where(
            workflow_runs.c.id.in_(tree), workflow_runs.c.status.in_(ACTIVE)))
        running = conn.scalar(sa.select(sa.func.count()).select_from(runs).where(
            runs.c.workflow_run_id.in_(tree), runs.c.status.not_in(_RUN_TERMINAL)))
        if active or running:
            continue
        gone.extend(row_to_run(row) for row in conn.execute(
            runs.delete().where(runs.c.workflow_run_id.in_(tree)).returning(*runs.c)
        ))
        conn.execute(workflow_runs.delete().where(workflow_runs.c.id.in_(tree)))
        deleted.append(run_id)
    return deleted, gone
