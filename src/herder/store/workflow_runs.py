"""Queries on workflow runs. Each function takes a Connection and runs inside the caller's
transaction; what a workflow run does next is ``engine.workflows``."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Row

from herder.model.errors import NotFound
from herder.model.workflow_state import WorkflowRun, WorkflowStatus
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


_BUMP = (
    workflow_runs.update()
    .where(workflow_runs.c.id == sa.bindparam("run_id"))
    .values(version=workflow_runs.c.version + sa.bindparam("n"))
)


def bump(conn: Connection, changes: dict[int, int]) -> None:
    """Count changes to workflow runs' steps (``version``): ``{workflow run: changes}``."""
    if changes:
        conn.execute(_BUMP, [{"run_id": k, "n": n} for k, n in changes.items()])


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
