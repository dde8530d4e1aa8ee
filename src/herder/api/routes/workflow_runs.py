"""``/api/v1/workflow-runs``: a workflow's runs, their graphs, and the controls a person has
over them while they run (pause, resume, cancel, rerun; skip, retry, approve, reject a step)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from sqlalchemy.engine import Connection

from herder.api.auth import Permission, Principal, PrincipalDep
from herder.api.deps import DbDep, EngineDep
from herder.api.routes.jobs import parse_cursor
from herder.api.schemas import Page
from herder.api.workflow_schemas import GraphOut, NodeOut, WorkflowRunDetail, WorkflowRunOut
from herder.engine import workflows
from herder.model.errors import InvalidSpec, NotFound
from herder.model.workflow_state import WorkflowRun, WorkflowStatus
from herder.store import workflow_runs as store
from herder.store import workflows as workflow_store
from herder.store.database import Database

router = APIRouter(prefix="/api/v1/workflow-runs", tags=["workflow runs"])
RunId = Annotated[int, Path(ge=1, le=2**63 - 1, description="the workflow run's id")]
StepName = Annotated[str, Path(max_length=63, description="the step's name")]


def _statuses(values: list[str]) -> list[str]:
    wanted = [v.strip().upper() for value in values for v in value.split(",") if v.strip()]
    for value in wanted:
        if value not in WorkflowStatus.__members__:
            names = ", ".join(WorkflowStatus)
            raise InvalidSpec(f"status: unknown workflow run status {value[:40]!r}; "
                              f"expected one of {names}")
    return wanted


@router.get("", response_model=Page[WorkflowRunOut])
async def list_workflow_runs(
    db: DbDep,
    principal: PrincipalDep,
    workflow: Annotated[str | None, Query(description="id, namespace/name or name")] = None,
    namespace: str | None = None,
    status: Annotated[list[str], Query(description="repeatable, or comma-separated")] = [],  # noqa: B006
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> Page[WorkflowRunOut]:
    """Workflow runs newest first, filtered; ``next_cursor`` pages on."""
    wanted = _statuses(status)
    readable = principal.readable()
    namespaces = None if readable is None else sorted(readable)
    if namespace is not None:
        namespaces = [namespace] if namespaces is None or namespace in namespaces else []

    def search(conn: Connection) -> list[WorkflowRun]:
        workflow_id = None
        if workflow is not None:
            ref = workflow if "/" in workflow or namespace is None else f"{namespace}/{workflow}"
            try:
                found = workflow_store.get(conn, ref)
            except NotFound:
                return []
            workflow_id = found.id
        return store.search(conn, namespaces=namespaces,
                            workflow_id=workflow_id, status=wanted,
                            before=parse_cursor(cursor), limit=limit + 1)

    found = await db.read(search)
    return Page[WorkflowRunOut].of(found, limit, WorkflowRunOut.of)


async def _may(db: Database, principal: Principal, permission: Permission,
               run_id: int) -> WorkflowRun:
    run = await db.read(store.get, run_id)
    missing = store.not_found(run_id)
    principal.check(permission, run.namespace, missing=missing.message, details=missing.details)
    principal.note(f"workflow-run/{run_id}")
    return run


@router.get("/{run_id}", response_model=WorkflowRunDetail)
async def get_workflow_run(run_id: RunId, db: DbDep, principal: PrincipalDep) -> WorkflowRunDetail:
    """One workflow run: its status and its steps, each with its runs."""
    await _may(db, principal, Permission.READ, run_id)
    run, drawn = await db.read(workflows.describe, run_id)
    return WorkflowRunDetail(**WorkflowRunOut.of(run).model_dump(),
                             steps=[NodeOut(**node) for node in drawn["nodes"]])


@router.get("/{run_id}/graph", response_model=GraphOut, response_model_by_alias=True)
async def workflow_run_graph(run_id: RunId, db: DbDep, principal: PrincipalDep) -> GraphOut:
    """The run as a graph, for drawing: a node per step with its live status, times and runs
    (a nested step names its child workflow run), and an edge per need with its condition."""
    await _may(db, principal, Permission.READ, run_id)
    run, drawn = await db.read(workflows.describe, run_id)
    return GraphOut.model_validate({"run": WorkflowRunOut.of(run).model_dump(), **drawn})


Control = Literal["pause", "resume", "cancel", "rerun"]
StepControl = Literal["skip", "retry", "approve", "reject"]


@router.post("/{run_id}/{action}", response_model=WorkflowRunOut)
async def control_workflow_run(
    run_id: RunId, action: Control, engine: EngineDep, principal: PrincipalDep
) -> WorkflowRunOut:
    """``pause``: no step starts until ``resume`` (running steps go on to their end);
    ``cancel``: stop every active step run, then ABORTED; ``rerun`` (an ended run): a new
    workflow run (answered) that runs again what failed and keeps every other step's runs and
    outputs. 409 when the run's status does not allow it."""
    await _may(engine.db, principal, Permission.RUN, run_id)
    run = await engine.control_workflow(run_id, action, actor=principal.name)
    return WorkflowRunOut.of(run)


@router.post("/{run_id}/steps/{step}/{action}", response_model=WorkflowRunOut)
async def control_workflow_step(
    run_id: RunId, step: StepName, action: StepControl, engine: EngineDep,
    principal: PrincipalDep,
) -> WorkflowRunOut:
    """``skip`` a step that has not started running; ``retry`` a failed step (a failed
    workflow run goes on); ``approve`` or ``reject`` an approval waiting for a person (who
    and when are recorded on its run). 409 when the step's state does not allow it."""
    await _may(engine.db, principal, Permission.RUN, run_id)
    run = await engine.control_workflow(run_id, action, step=step, actor=principal.name)
    return WorkflowRunOut.of(run)
