"""``/api/v1/workflows``: define, list, change and delete workflows."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body, Response, status
from pydantic import ValidationError
from sqlalchemy.engine import Connection

from herder.api.auth import Permission, PrincipalDep
from herder.api.deps import DbDep, EngineDep
from herder.api.errors import invalid
from herder.api.routes import namespaces
from herder.api.routes.jobs import ListingDep
from herder.api.schemas import Page
from herder.api.workflow_schemas import (
    WorkflowIn,
    WorkflowOut,
    WorkflowPatch,
    WorkflowRunIn,
    WorkflowRunOut,
)
from herder.model.errors import Conflict, InvalidSpec
from herder.model.runs import Trigger
from herder.model.workflows import Workflow, WorkflowSpec
from herder.store import jobs as job_store
from herder.store import workflows as store

router = APIRouter(prefix="/api/v1/workflows", tags=["workflows"])


async def checked(body: WorkflowIn) -> WorkflowSpec:
    """The body's spec, checked on a thread: a graph of a thousand steps with their templates
    takes a moment, which neither the event loop nor the store's writer should wait for."""
    return await asyncio.to_thread(body.to_spec)


def _may_edit(principal: PrincipalDep, spec: WorkflowSpec) -> None:
    missing = store.not_found(spec.ref)
    principal.check(Permission.EDIT, spec.namespace, missing=missing.message,
                    details=missing.details)
    principal.note(spec.ref)


def _placed(
    conn: Connection, principal: PrincipalDep, spec: WorkflowSpec, now: datetime
) -> WorkflowSpec:
    """``spec``, once its namespace exists (made for a caller who may create namespaces)."""
    namespaces.ensure(conn, principal, spec.namespace, now)
    return spec


def _reader(principal: PrincipalDep) -> store.MayRead:
    """Which namespaces the caller may read: what a workflow may refer to."""
    return lambda namespace: principal.allows(Permission.READ, namespace)


def _found(conn: Connection, ref: str, principal: PrincipalDep, permission: Permission) -> Workflow:
    workflow = store.get(conn, ref)
    missing = store.not_found(ref)
    principal.check(permission, workflow.spec.namespace, missing=missing.message,
                    details=missing.details)
    return workflow


@router.post("", status_code=status.HTTP_201_CREATED, response_model=WorkflowOut)
async def create_workflow(
    body: WorkflowIn, engine: EngineDep, principal: PrincipalDep
) -> WorkflowOut:
    """Create a workflow; 409 if its namespace already has one by that name, 422 naming the
    step at fault if it is not a graph that can run (or runs a job that does not exist)."""
    spec = await checked(body)
    _may_edit(principal, spec)

    def create(conn: Connection) -> Workflow:
        now = engine.clock()
        return store.create(conn, _placed(conn, principal, spec, now), now, _reader(principal))

    return WorkflowOut.of(await engine.db.write(create))


@router.put("/{ref:path}", response_model=WorkflowOut, responses={201: {"model": WorkflowOut}})
async def replace_workflow(
    ref: str, body: WorkflowIn, engine: EngineDep, principal: PrincipalDep, response: Response
) -> WorkflowOut:
    """Create or replace the workflow named by the body (idempotent apply)."""
    spec = await checked(body)
    if ref not in (spec.name, spec.ref) and not job_store.is_id(ref):
        raise InvalidSpec(f"the path names {ref[:100]!r} but the body names {spec.ref}")
    _may_edit(principal, spec)

    def apply(conn: Connection) -> tuple[Workflow, bool]:
        now = engine.clock()
        placed = _placed(conn, principal, spec, now)
        if job_store.is_id(ref):
            old = _found(conn, ref, principal, Permission.EDIT)
            return store.update(conn, old.id, placed, now, _reader(principal)), False
        return store.replace(conn, placed, now, _reader(principal))

    workflow, created = await engine.db.write(apply)
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return WorkflowOut.of(workflow)


@router.get("", response_model=Page[WorkflowOut])
async def list_workflows(db: DbDep, query: ListingDep) -> Page[WorkflowOut]:
    """Workflows in id order, filtered; ``next_cursor`` pages on."""
    found = await db.read(store.search, **query.search)
    return Page[WorkflowOut].of(found, query.limit, WorkflowOut.of)


@router.post("/{ref:path}/runs", status_code=status.HTTP_201_CREATED,
             response_model=WorkflowRunOut)
async def start_workflow_run(
    ref: str, engine: EngineDep, principal: PrincipalDep,
    body: Annotated[WorkflowRunIn | None, Body()] = None,
) -> WorkflowRunOut:
    """Start a run of the workflow now; its first steps are created before the answer. 422 for
    a param the workflow does not declare. The caller is its submitter."""

    def authorize(workflow: Workflow) -> None:
        missing = store.not_found(ref)
        principal.check(Permission.RUN, workflow.spec.namespace, missing=missing.message,
                        details=missing.details)
        principal.note(workflow.ref)

    run = await engine.start_workflow(
        ref, params=dict(body.params) if body else {}, trigger=Trigger.API,
        submitter=principal.name, authorize=authorize,
    )
    return WorkflowRunOut.of(run)


@router.post("/{ref:path}/enable", response_model=WorkflowOut)
async def enable_workflow(ref: str, engine: EngineDep, principal: PrincipalDep) -> WorkflowOut:
    """Resume the workflow's schedule; slots missed while paused follow its misfire policy."""
    return await _set_enabled(ref, True, engine, principal)


@router.post("/{ref:path}/disable", response_model=WorkflowOut)
async def disable_workflow(ref: str, engine: EngineDep, principal: PrincipalDep) -> WorkflowOut:
    """Pause the workflow's schedule; nothing is lost."""
    return await _set_enabled(ref, False, engine, principal)


async def _set_enabled(
    ref: str, enabled: bool, engine: EngineDep, principal: PrincipalDep
) -> WorkflowOut:
    def switch(conn: Connection) -> Workflow:
        workflow = _found(conn, ref, principal, Permission.EDIT)
        if workflow.spec.enabled == enabled:
            return workflow
        spec = dataclasses.replace(workflow.spec, enabled=enabled)
        return store.update(conn, workflow.id, spec, engine.clock(), _reader(principal))

    return WorkflowOut.of(await engine.db.write(switch))


@router.get("/{ref:path}", response_model=WorkflowOut)
async def get_workflow(ref: str, db: DbDep, principal: PrincipalDep) -> WorkflowOut:
    """One workflow by id, ``namespace/name`` or name (in ``default``)."""
    return WorkflowOut.of(await db.read(_found, ref, principal, Permission.READ))


@router.patch("/{ref:path}", response_model=WorkflowOut)
async def patch_workflow(
    ref: str, body: WorkflowPatch, engine: EngineDep, principal: PrincipalDep
) -> WorkflowOut:
    """Change some fields; the whole result is checked as a new spec before anything changes."""
    changes = body.model_dump(exclude_unset=True)
    old = await engine.db.read(_found, ref, principal, Permission.EDIT)
    try:
        merged = WorkflowIn.model_validate(old.spec.to_dict() | changes)
    except ValidationError as exc:
        raise invalid(exc) from None
    spec = await checked(merged)
    if spec.namespace != old.spec.namespace:
        _may_edit(principal, spec)

    def patch(conn: Connection) -> Workflow:
        current = _found(conn, ref, principal, Permission.EDIT)
        if current.updated_at != old.updated_at:  # checked outside the write: still the same?
            raise Conflict(f"workflow {current.ref} changed while this change was checked; "
                           "send it again")
        now = engine.clock()
        return store.update(conn, current.id, _placed(conn, principal, spec, now), now,
                            _reader(principal))

    return WorkflowOut.of(await engine.db.write(patch))


@router.delete("/{ref:path}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_workflow(ref: str, db: DbDep, principal: PrincipalDep) -> Response:
    """Delete the workflow; 409 while another workflow runs it as a step."""

    def delete(conn: Connection) -> None:
        _found(conn, ref, principal, Permission.EDIT)
        store.delete(conn, ref)

    await db.write(delete)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
