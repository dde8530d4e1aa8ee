"""Queries on workflow definitions. Each function takes a Connection and runs inside the
caller's transaction. Saving checks what a workflow refers to (its jobs, the params it gives
them, the workflows it nests), so a definition that could never run is refused in the same
transaction that would have stored it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError

from herder.model.errors import Conflict, InvalidSpec, NameTaken, NotFound
from herder.model.jobs import Job
from herder.model.workflows import Workflow, WorkflowSpec, from_dict, refers_to
from herder.store.jobs import iso, parse_ref, plan_statements, scheduling, values
from herder.store.tables import jobs, workflows
from herder.store.text import contains

MAX_NESTING = 16


def _row_to_workflow(row: Row[Any]) -> Workflow:
    return Workflow(
        id=row.id,
        spec=from_dict(row.spec),
        created_at=row.created_at,
        updated_at=row.updated_at,
        next_run_at=row.next_run_at,
        schedule_state=row.schedule_state or {},
    )


def _job_params(conn: Connection, namespace: str, name: str) -> dict[str, Any] | None:
    row = conn.execute(
        sa.select(jobs.c.spec["params"]).where(jobs.c.namespace == namespace, jobs.c.name == name)
    ).first()
    if row is None:
        return None
    params: dict[str, Any] = row[0] or {}
    return params


def _spec_of(conn: Connection, namespace: str, name: str) -> WorkflowSpec | None:
    row = conn.execute(
        sa.select(workflows.c.spec).where(
            workflows.c.namespace == namespace, workflows.c.name == name
        )
    ).first()
    return None if row is None else from_dict(row.spec)


MayRead = Callable[[str], bool]


def _anyone(namespace: str) -> bool:
    return True


def check_references(conn: Connection, spec: WorkflowSpec, may_read: MayRead = _anyone) -> None:
    """Every job a step runs exists and declares the params the step gives it; every nested
    workflow exists, and none contains, however deep, the workflow being saved. What is in a
    namespace the caller may not read (``may_read``) counts as missing, with the same
    message, so that a workflow cannot be used to probe other namespaces."""
    for section in ("steps", "on_failure"):
        for i, step in enumerate(getattr(spec, section)):
            at = f"{section}[{i}]"
            if step.job is not None:
                namespace, name = refers_to(step.job, spec.namespace)
                declared = _job_params(conn, namespace, name) if may_read(namespace) else None
                if declared is None:
                    raise InvalidSpec(
                        f"{at}.job: no job {namespace}/{name}; create it first (herder apply "
                        "sends jobs before workflows)",
                        details={"job": f"{namespace}/{name}"},
                    )
                unknown = sorted(set(step.params) - set(declared))
                if unknown:
                    raise InvalidSpec(
                        f"{at}.params: job {namespace}/{name} declares no param {unknown[0]!r}; "
                        f"it declares: {', '.join(sorted(declared)) or 'none'}"
                    )
            if step.workflow is not None:
                _nesting(conn, spec, f"{at}.workflow", step.workflow, may_read)


def _nesting(
    conn: Connection, spec: WorkflowSpec, at: str, reference: str, may_read: MayRead
) -> None:
    namespace, name = refers_to(reference, spec.namespace)
    trail = [spec.ref]
    todo = [(namespace, name, [*trail, f"{namespace}/{name}"])]
    seen: set[str] = set()
    while todo:
        space, wanted, path = todo.pop()
        if f"{space}/{wanted}" == spec.ref:
            raise InvalidSpec(
                f"{at}: {' runs '.join(path)}: a workflow cannot run itself, however deep"
            )
        if len(path) > MAX_NESTING:
            raise InvalidSpec(f"{at}: nested more than {MAX_NESTING} workflows deep")
        if f"{space}/{wanted}" in seen:
            continue
        seen.add(f"{space}/{wanted}")
        nested = _spec_of(conn, space, wanted) if may_read(space) else None
        if nested is None:
            if len(path) == 2:
                raise InvalidSpec(f"{at}: no workflow {space}/{wanted}; create it first",
                                  details={"workflow": f"{space}/{wanted}"})
            continue  # a deeper one missing is that workflow's problem, found when it runs
        for step in (*nested.steps, *nested.on_failure):
            if step.workflow is not None:
                inner = refers_to(step.workflow, nested.namespace)
                todo.append((*inner, [*path, "/".join(inner)]))


def check_policy(spec: WorkflowSpec) -> None:
    """What a workflow's policy fields cannot say yet: ``concurrency: queue``."""
    if spec.concurrency == "queue":
        raise InvalidSpec(
            "concurrency: 'queue' is not supported for workflows; use allow, forbid or replace"
        )


def _scheduling(
    old: WorkflowSpec | None, old_state: dict[str, Any] | None, spec: WorkflowSpec,
    now: datetime,
) -> dict[str, Any]:
    """A job's ``scheduling``, planned at the slot itself whatever the concurrency policy: a
    workflow run starts its first steps as it is created, so none is made ahead."""
    fields = scheduling(old, old_state, spec, now, kind="workflow")
    fields["plan_at"] = fields["next_run_at"]
    return fields


def create(
    conn: Connection, spec: WorkflowSpec, now: datetime, may_read: MayRead = _anyone
) -> Workflow:
    """Insert a new workflow; ``NameTaken`` if its namespace has one by that name."""
    check_policy(spec)
    check_references(conn, spec, may_read)
    try:
        new_id = conn.execute(
            workflows.insert().values(
                **values(spec, now), **_scheduling(None, None, spec, now), created_at=now,
            )
        ).inserted_primary_key
    except IntegrityError as exc:
        raise _taken(spec) from exc
    assert new_id is not None
    return get(conn, str(new_id[0]))


def _taken(spec: WorkflowSpec) -> NameTaken:
    return NameTaken(
        f"a workflow named {spec.name!r} already exists in namespace {spec.namespace!r}",
        details={"namespace": spec.namespace, "name": spec.name},
    )


def update(
    conn: Connection, workflow_id: int, spec: WorkflowSpec, now: datetime,
    may_read: MayRead = _anyone,
) -> Workflow:
    """Store a new spec for an existing workflow (its name and namespace may change)."""
    old = get(conn, str(workflow_id))
    check_policy(spec)
    check_references(conn, spec, may_read)
    if spec.to_dict() == old.spec.to_dict():
        return old  # nothing changed: updated_at stays, as apply reports it
    try:
        conn.execute(
            workflows.update().where(workflows.c.id == workflow_id).values(
                **values(spec, now),
                **_scheduling(old.spec, old.schedule_state, spec, now),
            )
        )
    except IntegrityError as exc:
        raise _taken(spec) from exc
    return get(conn, str(workflow_id))


def replace(
    conn: Connection, spec: WorkflowSpec, now: datetime, may_read: MayRead = _anyone
) -> tuple[Workflow, bool]:
    """Create or replace by (namespace, name); answers the workflow and whether it was new."""
    row = conn.execute(
        sa.select(workflows.c.id).where(
            workflows.c.namespace == spec.namespace, workflows.c.name == spec.name
        )
    ).first()
    if row is None:
        return create(conn, spec, now, may_read), True
    return update(conn, row.id, spec, now, may_read), False


def get(conn: Connection, ref: str) -> Workflow:
    """One workflow by id, ``namespace/name`` or name (in ``default``)."""
    workflow_id, namespace, name = parse_ref(ref)
    query = sa.select(workflows)
    if workflow_id is not None:
        query = query.where(workflows.c.id == workflow_id)
    else:
        query = query.where(workflows.c.namespace == namespace, workflows.c.name == name)
    row = conn.execute(query).first()
    if row is None:
        raise not_found(ref)
    return _row_to_workflow(row)


def not_found(ref: str) -> NotFound:
    """The error for a workflow that does not exist (or that the caller may not see)."""
    workflow_id, namespace, name = parse_ref(ref)
    what = f"id {workflow_id}" if workflow_id is not None else f"name {namespace}/{name}"
    return NotFound(f"no workflow with {what}", details={"workflow": ref[:200]})


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
) -> list[Workflow]:
    """Workflows in id order; ``after_id`` is the cursor. ``readable`` (None: all) keeps to
    the namespaces the caller may read, as ``store.jobs.search`` does."""
    query = sa.select(workflows).order_by(workflows.c.id).limit(limit)
    if namespace is not None:
        query = query.where(workflows.c.namespace == namespace)
    if readable is not None:
        query = query.where(workflows.c.namespace.in_(sorted(readable)))
    if enabled is not None:
        query = query.where(workflows.c.enabled == enabled)
    if after_id is not None:
        query = query.where(workflows.c.id > after_id)
    if q:
        query = query.where(
            sa.or_(contains(workflows.c.name, q), contains(workflows.c.description, q))
        )
    for key, value in (labels or {}).items():
        query = query.where(workflows.c.labels[key].as_string() == value)
    return [_row_to_workflow(row) for row in conn.execute(query)]


def users_of(conn: Connection, kind: str, namespace: str, name: str) -> list[str]:
    """The workflows with a step that runs the ``kind`` (``job`` or ``workflow``)
    ``namespace/name``: they would break without it."""
    found = []
    for row in conn.execute(sa.select(workflows.c.spec)):
        other = from_dict(row.spec)
        for step in (*other.steps, *other.on_failure):
            reference = step.job if kind == "job" else step.workflow
            if reference is not None and refers_to(reference, other.namespace) == (
                namespace, name
            ):
                found.append(other.ref)
                break
    return found


def nested_in(conn: Connection, workflow: Workflow) -> list[str]:
    """The workflows that run ``workflow`` as a step."""
    return users_of(conn, "workflow", workflow.spec.namespace, workflow.spec.name)


def refuse_deleting_a_used_job(conn: Connection, job: Job) -> None:
    """``Conflict`` naming the workflows whose steps run ``job``."""
    _refuse_while_used(f"job {job.ref}", users_of(conn, "job", job.spec.namespace, job.spec.name))


def delete(conn: Connection, ref: str) -> Workflow:
    """Delete a workflow definition; refused while another workflow runs it as a step."""
    workflow = get(conn, ref)
    _refuse_while_used(f"workflow {workflow.ref}", nested_in(conn, workflow))
    conn.execute(workflows.delete().where(workflows.c.id == workflow.id))
    return workflow


def _refuse_while_used(what: str, users: list[str]) -> None:
    if users:
        raise Conflict(
            f"{what} is run as a step by workflow {', '.join(users[:5])}; change those first",
            details={"used_by": users},
        )


# The scheduler's questions, as for jobs (``store.jobs.due``): ranges of the plan_at index.
_NEXT_PLAN, _DUE, _DUE_LOCKED, _SET_SCHEDULE = plan_statements(workflows, "workflow_id")


def next_plan(conn: Connection) -> datetime | None:
    """When the scheduler has a workflow's slot to plan next."""
    moment: datetime | None = conn.execute(_NEXT_PLAN).scalar()
    return moment


def due(conn: Connection, now: datetime, limit: int) -> list[Workflow]:
    """Workflows whose next slot has come, earliest first; on PostgreSQL their rows stay
    locked until the transaction ends and other servers skip them."""
    query = _DUE_LOCKED if conn.dialect.name == "postgresql" else _DUE
    return [_row_to_workflow(row) for row in conn.execute(query, {"now": now, "limit": limit})]


def schedule_update(
    workflow: Workflow, next_slot: datetime | None, state: dict[str, Any]
) -> dict[str, Any]:
    """What the scheduler did to a workflow, for ``set_schedules``."""
    state["next_slot"] = None if next_slot is None else iso(next_slot)
    return {"workflow_id": workflow.id, "next_run_at": next_slot, "plan_at": next_slot,
            "schedule_state": state}


def set_schedules(conn: Connection, updates: list[dict[str, Any]]) -> None:
    """Record ``schedule_update``s, in one statement."""
    if updates:
        conn.execute(_SET_SCHEDULE, updates)


def switch_off(conn: Connection, workflow: Workflow, now: datetime) -> None:
    """Disable a workflow whose schedule has no more slots (a one-shot that fired)."""
    spec = workflow.spec.to_dict() | {"enabled": False}
    conn.execute(workflows.update().where(workflows.c.id == workflow.id)
                 .values(enabled=False, spec=spec, updated_at=now))


def lock(conn: Connection, workflow_id: int) -> None:
    """Hold the workflow's row until the transaction ends, so that concurrency decisions
    about its runs are taken one at a time across servers. SQLite has one writer."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(workflows.c.id).where(workflows.c.id == workflow_id)
                     .with_for_update())


def retentions(
    conn: Connection, *, after_id: int | None, limit: int
) -> list[tuple[int, str, dict[str, Any] | None]]:
    """Workflows' ids and namespaces with their ``retention`` as written, in id order."""
    retention = workflows.c.spec["retention"]
    query = (sa.select(workflows.c.id, workflows.c.namespace, retention)
             .order_by(workflows.c.id).limit(limit))
    if after_id is not None:
        query = query.where(workflows.c.id > after_id)
    return [(row[0], row[1], row[2]) for row in conn.execute(query)]
