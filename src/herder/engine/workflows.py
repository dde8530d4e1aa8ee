"""Workflow runs, driven. ``advance`` builds each step's state from what the store has (its
runs, and the child runs of nested steps), asks ``model.workflow_runs.decide`` what to do and
does it, all in the caller's transaction.

``advance`` runs in the transaction that ends a step run (``admission.after_end``), in the
transaction of each control (pause, skip, approve…), when a workflow run is created, and for
every active workflow run after a restart. Nothing is remembered outside the store: a server
killed at any moment comes back and asks again; what it had committed is visible in the runs,
what it had not is decided again, and the unique key on (workflow run, step, item, attempt)
refuses a second copy. So every step runs once per attempt, whatever dies when.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy.engine import Connection, Row

from herder.engine import admission
from herder.engine.admission import Admitted, StepRef
from herder.model.errors import Conflict, HerderError, InvalidSpec, InvalidTransition, NotFound
from herder.model.jobs import JobSpec, check_env, merge_params
from herder.model.runs import LAUNCHED, Run, RunStatus, Trigger
from herder.model.workflow_controls import can_skip, rerun_from_failed, retry_step
from herder.model.workflow_graph import visibility
from herder.model.workflow_runs import Decision, Mark, Start, decide
from herder.model.workflow_state import (
    AS_STEP,
    NOT_STARTED,
    StepState,
    WorkflowRun,
    WorkflowStatus,
)
from herder.model.workflow_steps import StepRun, graph, plan_step
from herder.model.workflows import Step, Workflow, WorkflowSpec, from_dict, refers_to
from herder.store import jobs as job_store
from herder.store import runs as run_store
from herder.store import workflow_runs as store
from herder.store import workflows as workflow_store
from herder.store.runs import NewRun

log = logging.getLogger(__name__)

# Rounds of deciding in one ``advance``: a step that ends at once (skipped by its job's
# policy, a template that cannot be rendered) lets the next decision go further.
MAX_ROUNDS = 64
# A frozen spec never changes: parsed once per workflow run, with its lineage.
_FROZEN: dict[tuple[int, int], tuple[WorkflowSpec, list[int]]] = {}
_FROZEN_MAX = 4096
_ADVANCING = "herder_advancing"  # conn.info: workflow runs being advanced by this transaction
_AGAIN = "herder_advance_again"  # ... and those that changed meanwhile (decide once more)


# Starting -------------------------------------------------------------------------------------


def freeze(conn: Connection, spec: WorkflowSpec) -> dict[str, Any]:
    """The spec a workflow run keeps: the workflow's, with each job step's ``retries`` taken
    from its job when the step sets none (the workflow retries its steps, not admission)."""
    data = spec.to_dict()
    for section in ("steps", "on_failure"):
        for step, frozen in zip(getattr(spec, section), data[section], strict=True):
            if step.kind != "job" or step.retries is not None:
                continue
            namespace, name = refers_to(step.job or "", spec.namespace)
            try:
                job = job_store.get(conn, f"{namespace}/{name}")
            except NotFound:
                continue  # the step fails when it starts, saying so
            if job.spec.retries is not None:
                frozen["retries"] = job.spec.retries.to_dict()
    return data


def start(
    conn: Connection,
    workflow: Workflow,
    *,
    params: dict[str, Any],
    trigger: Trigger | str,
    now: datetime,
    submitter: str | None = None,
    scheduled_for: datetime | None = None,
    parent: tuple[int, str, int, int] | None = None,
) -> tuple[WorkflowRun | None, Admitted]:
    """Create a workflow run and start its first steps. ``params`` override the workflow's
    declared ones (an unknown one is refused). ``parent``: (workflow run, step, item, attempt)
    of the nested step it is. None when that slot (scheduled time or nested step) is taken."""
    spec = workflow.spec
    try:
        merged = merge_params(spec.params, params)
    except InvalidSpec as exc:
        raise InvalidSpec(exc.message.replace("this job", f"workflow {spec.ref}"),
                          details=exc.details) from None
    parent_fields: dict[str, Any] = {}
    if parent is not None:
        parent_fields = dict(zip(("parent_run_id", "parent_step", "parent_item",
                                  "parent_attempt"), parent, strict=True))
    run = store.create(
        conn, workflow_id=workflow.id, namespace=spec.namespace, workflow_name=spec.name,
        spec=freeze(conn, spec), params=merged, status=WorkflowStatus.RUNNING.value,
        trigger=str(trigger), submitter=submitter, scheduled_for=scheduled_for, created_at=now,
        **parent_fields,
    )
    if run is None:
        return None, Admitted()
    return store.get(conn, run.id), advance(conn, run.id, now)


def step_ended(conn: Connection, run: Run, now: datetime) -> Admitted:
    """A step run has ended (``admission.after_end``): its workflow run goes on, in the same
    transaction. A failure here must not keep the run from ending: it is rolled back alone,
    logged, and the engine's sweep decides again later."""
    assert run.workflow_run_id is not None
    note(conn, run.workflow_run_id, runs=[run])
    try:
        with conn.begin_nested():
            return advance(conn, run.workflow_run_id, now)
    except Exception:
        log.exception("workflow run %s: could not go on after run %s ended; will try again",
                      run.workflow_run_id, run.id,
                      extra={"workflow_run_id": run.workflow_run_id, "run_id": run.id,
                             "action": "workflow_advance_failed"})
        return Admitted()


# Deciding ------------------------------------------------------------------------------------


def advance(conn: Connection, run_id: int, now: datetime) -> Admitted:
    """Decide what workflow run ``run_id`` does next and do it, until nothing changes."""
    busy: set[int] = conn.info.setdefault(_ADVANCING, set())
    again: set[int] = conn.info.setdefault(_AGAIN, set())
    if run_id in busy:  # a step it ended just now, or a child it runs: the outer loop sees it
        again.add(run_id)
        return Admitted()
    busy.add(run_id)
    done = Admitted()
    try:
        for _ in range(MAX_ROUNDS):
            again.discard(run_id)
            if not _round(conn, run_id, now, done) and run_id not in again:
                break
    finally:
        busy.discard(run_id)
    return done


@dataclass(slots=True)
class _Loaded:
    """A workflow run and its steps as the store has them."""

    run: WorkflowRun
    spec: WorkflowSpec
    states: dict[str, StepState]
    index: StepIndex

    def where(self, step: str, item: int) -> tuple[str, int] | None:
        """The step's (or item's) current run, ``("run", id)``, or its nested workflow run,
        ``("child", id)``; None when it has none above its floor."""
        found = self.index.latest.get(step, {}).get(item)
        if found is None or found[0].attempt <= self.run.floors.get(step, 0):
            return None
        return found[1]

    def attempt(self, step: str) -> int:
        """The highest attempt the step (any of its items) has had."""
        return max((s.attempt for s, _ in self.index.latest.get(step, {}).values()), default=0)


def _key(conn: Connection, run_id: int) -> tuple[int, int]:
    # Keyed by store too: tests (and tools) may run several stores in one process.
    return id(conn.engine), run_id


def _frozen(conn: Connection, run: WorkflowRun) -> tuple[WorkflowSpec, list[int]]:
    key = _key(conn, run.id)
    found = _FROZEN.get(key)
    if found is None:
        if len(_FROZEN) >= _FROZEN_MAX:
            _FROZEN.clear()
        spec = from_dict(run.spec if run.spec else store.get(conn, run.id).spec)
        spec.memo["visibility"] = visibility(spec)
        found = _FROZEN[key] = (spec, store.lineage(conn, run))
    return found


class StepIndex:
    """The latest run of each step and item of a workflow run (and of the runs it reran), as
    found in the store: ``{step: {item: (attempt, status, outputs, (kind, id))}}``, kind
    ``run`` or ``child`` (a nested step's workflow run, its status through ``AS_STEP``).

    Kept in memory between decisions (``_INDEXES``), with the ``version`` of the workflow
    run it matches: the store counts every step run created or ended, so a decision reads
    only the changes made since (``note``), or everything again when another server (or a
    path that does not note its change) moved the count. A transaction rolled back forgets
    every index (``_forget``)."""

    __slots__ = ("latest", "pending", "version")

    def __init__(self, version: int) -> None:
        self.latest: dict[str, dict[int, _Latest]] = {}
        self.version = version
        self.pending = 0  # changes noted since ``version``

    @classmethod
    def read(cls, conn: Connection, run: WorkflowRun, lineage: list[int]) -> StepIndex:
        return cls.of(run.version, store.step_runs(conn, lineage, times=False),
                      store.children(conn, lineage))

    @classmethod
    def of(cls, version: int, rows: Iterable[Row[Any]], kids: Iterable[Row[Any]]) -> StepIndex:
        index = cls(version)
        for row in rows:
            if row.step is not None:
                index.add(row.step, row.item, row.attempt, RunStatus(row.status),
                          row.outputs or {}, ("run", row.id))
        for kid in kids:
            index.add(kid.parent_step, kid.parent_item, kid.parent_attempt,
                      AS_STEP[WorkflowStatus(kid.status)], {}, ("child", kid.id))
        return index

    def add(self, step: str, item: int, attempt: int, status: RunStatus,
            outputs: dict[str, Any], where: tuple[str, int]) -> None:
        items = self.latest.setdefault(step, {})
        seen = items.get(item)
        if seen is not None and (seen[0].attempt > attempt or (
                seen[0].attempt == attempt and seen[0].status is not None
                and seen[0].status.terminal and not status.terminal)):
            return  # an older attempt, or news older than the end already known
        items[item] = (StepState(status=status, attempt=attempt, outputs=outputs), where)


# A step's (or item's) latest run as its state, and where it is: ("run" | "child", id).
_Latest = tuple[StepState, tuple[str, int]]
_INDEXES: dict[tuple[int, int], StepIndex] = {}
_LISTENING: set[int] = set()


_TOUCHED = "herder_step_index"  # conn.info: this transaction read or changed an index


def _forget(conn: Connection, *_: Any) -> None:
    """A transaction that used the indexes was rolled back (wholly or to a savepoint): what
    they learnt in it may not have happened. (Readers roll back every read: not those.)"""
    if conn.info.pop(_TOUCHED, False):
        _INDEXES.clear()


def _committed(conn: Connection) -> None:
    conn.info.pop(_TOUCHED, None)


def _indexed(conn: Connection, run: WorkflowRun, lineage: list[int]) -> StepIndex:
    engine = conn.engine
    if id(engine) not in _LISTENING:
        _LISTENING.add(id(engine))
        sa_event.listen(engine, "rollback", _forget)
        sa_event.listen(engine, "rollback_savepoint", _forget)
        sa_event.listen(engine, "commit", _committed)
    conn.info[_TOUCHED] = True
    key = _key(conn, run.id)
    index = _INDEXES.get(key)
    if index is None or index.version + index.pending != run.version:
        if len(_INDEXES) >= _FROZEN_MAX:
            _INDEXES.clear()
        index = _INDEXES[key] = StepIndex.read(conn, run, lineage)
    index.version, index.pending = run.version, 0
    return index


def note(conn: Connection, workflow_run_id: int, *, runs: Iterable[Run] = (),
         child: WorkflowRun | None = None) -> None:
    """Tell the index of a workflow run about step runs just created or ended (or a nested
    run started or ended), each of which the store counted once."""
    index = _INDEXES.get(_key(conn, workflow_run_id))
    if index is None:
        return
    conn.info[_TOUCHED] = True
    for run in runs:
        if run.step is not None:
            index.add(run.step, run.item, run.attempt, run.status, run.outputs,
                      ("run", run.id))
            index.pending += 1
    if child is not None and child.parent_step is not None:
        index.add(child.parent_step, child.parent_item, child.parent_attempt,
                  AS_STEP[child.status], {}, ("child", child.id))
        index.pending += 1


def load(conn: Connection, run_id: int, *, for_update: bool = False) -> _Loaded:
    # Its spec is read once (``_frozen``); a thousand steps of JSON are not parsed each time.
    run = store.get(conn, run_id, for_update=for_update, spec=_key(conn, run_id) not in _FROZEN)
    spec, lineage = _frozen(conn, run)
    return _states(spec, run, _indexed(conn, run, lineage))


def _states(spec: WorkflowSpec, run: WorkflowRun, index: StepIndex) -> _Loaded:
    """Each step's current run: the latest attempt above its floor (a foreach step's by item;
    a nested step's from its child workflow run, through ``AS_STEP``)."""
    loaded = _Loaded(run=run, spec=spec, states={}, index=index)
    for name, items in index.latest.items():
        try:
            step = spec.step(name)
        except KeyError:
            continue
        floor = run.floors.get(name, 0)
        if step.foreach is None:
            loaded.states[name] = _current(items.get(0), floor)
            continue
        marker = _current(items.get(-1), floor)
        if floor:
            found = {i: _current(latest, floor) for i, latest in items.items() if i >= 0}
        else:  # the common case, kept cheap for a fan-out of thousands: no copies
            found = {i: latest[0] for i, latest in items.items() if i >= 0}
        loaded.states[name] = StepState(status=marker.status, attempt=marker.attempt,
                                        items=found)
    return loaded


def _current(found: _Latest | None, floor: int) -> StepState:
    """A step's (or item's) state from its latest run; none above the floor: reset."""
    if found is None or found[0].attempt <= floor:
        return StepState(attempt=floor)
    return found[0]


def _round(conn: Connection, run_id: int, now: datetime, done: Admitted) -> bool:
    """One decision, applied. True when something ended at once (decide again)."""
    loaded = load(conn, run_id, for_update=True)
    run = loaded.run
    if run.status.terminal:
        return False
    decision = decide(
        loaded.spec, loaded.states, params=run.params, run_id=run.id,
        paused=run.paused_at is not None, cancelled=run.cancel_requested_at is not None,
    )
    changed = False
    for mark in decision.mark:
        _mark(conn, loaded, mark, now)
    for begin in decision.start:
        changed |= _start_step(conn, loaded, begin, now, done)
    for step, item in decision.cancel:
        changed |= _stop_step(conn, loaded, step, item, now, done)
    if changed:
        return True
    _set_status(conn, run, decision, now, done)
    return False


def _set_status(
    conn: Connection, run: WorkflowRun, decision: Decision, now: datetime, done: Admitted
) -> None:
    if decision.status is run.status and decision.reason == run.reason:
        return
    ended = decision.status.terminal
    updated = store.update(conn, run.id, now, status=decision.status.value,
                           reason=decision.reason, finished_at=now if ended else None)
    log.info("workflow run %s %s", run.id, decision.status.value,
             extra={"workflow_run_id": run.id, "action": "workflow_status",
                    "status": decision.status.value})
    if ended and run.parent_run_id is not None:
        store.bump(conn, {run.parent_run_id: 1})
        note(conn, run.parent_run_id, child=updated)
        done.add(advance(conn, run.parent_run_id, now))


def _item(step: Step, item: int | None) -> int:
    return item if item is not None else (-1 if step.foreach is not None else 0)


def _inline_spec(run: WorkflowRun, **fields: Any) -> JobSpec:
    """The spec of an inline step's run: a run of the workflow, as far as search goes."""
    return JobSpec(name=run.workflow_name, namespace=run.namespace,
                   labels=dict(run.spec.get("labels") or {}), **fields)


def _new(
    run: WorkflowRun, step: Step, item: int, attempt: int, now: datetime, *,
    status: RunStatus, spec: JobSpec | None = None, error: str | None = None,
    env: dict[str, str] | None = None, params: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None, not_before: datetime | None = None,
) -> NewRun:
    return NewRun(
        job=None, spec=spec or _inline_spec(run), params=params or {}, env=env or {},
        trigger=Trigger.WORKFLOW, now=now, submitter=run.submitter, attempt=attempt,
        status=status, error=error, not_before=not_before, workflow_run_id=run.id,
        step=step.name, item=item, context=context,
    )


def _ended(conn: Connection, loaded: _Loaded, step: Step, item: int, attempt: int,
           status: RunStatus, reason: str, now: datetime) -> None:
    """Record a step run that ends as it is created (skipped, or failed to start)."""
    created = run_store.create_many(conn, [_new(loaded.run, step, item, attempt, now,
                                                status=status, error=reason[:4000])])
    note(conn, loaded.run.id, runs=created)


def _mark(conn: Connection, loaded: _Loaded, mark: Mark, now: datetime) -> None:
    step = loaded.spec.step(mark.step)
    state = loaded.states.get(step.name, NOT_STARTED)
    _ended(conn, loaded, step, _item(step, None), state.attempt + 1, mark.status, mark.reason,
           now)


def _start_step(
    conn: Connection, loaded: _Loaded, begin: Start, now: datetime, done: Admitted
) -> bool:
    """Create the run a ``Start`` asks for; True when it ended at once."""
    run, spec = loaded.run, loaded.spec
    step = spec.step(begin.step)
    item = _item(step, begin.item)
    try:
        planned = plan_step(spec, step, loaded.states, params=run.params, run_id=run.id,
                            attempt=begin.attempt, item=begin.value)
        env = check_env(planned.env, allow_reserved=False)
    except InvalidSpec as exc:
        _ended(conn, loaded, step, item, begin.attempt, RunStatus.PROC_ERROR, exc.message, now)
        return True
    not_before = now + timedelta(seconds=begin.delay) if begin.delay else None
    try:
        if planned.kind == "job":
            return _start_job(conn, loaded, step, item, begin.attempt, planned, env, now,
                              not_before, done)
        if planned.kind == "workflow":
            return _start_nested(conn, loaded, step, item, begin.attempt, planned, now, done)
    except (NotFound, InvalidSpec) as exc:
        _ended(conn, loaded, step, item, begin.attempt, RunStatus.PROC_ERROR,
               f"{step.kind} {exc.message}" if isinstance(exc, NotFound) else exc.message, now)
        return True
    if planned.kind == "approval":
        created = run_store.create_many(conn, [_new(
            run, step, item, begin.attempt, now, status=RunStatus.ACTION_PENDING,
            context={"message": planned.message},
            spec=_inline_spec(run, timeout=planned.timeout, backend="approval"),
        )])
        note(conn, run.id, runs=created)
        if planned.timeout and created:
            run_store.set_deadline(conn, created[0].id, now + timedelta(seconds=planned.timeout))
        return False
    context = {k: v for k, v in planned.context.items() if k != "params"}
    created = run_store.create_many(conn, [_new(
        run, step, item, begin.attempt, now, status=RunStatus.READY,
        spec=_inline_spec(run, command=planned.command, timeout=planned.timeout,
                          backend=planned.backend),
        env=env, params=dict(planned.context.get("params") or {}), context=context,
        not_before=not_before,
    )])
    note(conn, run.id, runs=created)
    done.created.extend(created)
    return False


def _start_job(
    conn: Connection, loaded: _Loaded, step: Step, item: int, attempt: int, planned: StepRun,
    env: dict[str, str], now: datetime, not_before: datetime | None, done: Admitted,
) -> bool:
    assert planned.job is not None
    namespace, name = planned.job
    job = job_store.get(conn, f"{namespace}/{name}")
    params = merge_params(job.spec.params, planned.params)
    admitted = admission.admit(
        conn, job, trigger=Trigger.WORKFLOW, now=now, params=params, env=env,
        submitter=loaded.run.submitter, attempt=attempt, not_before=not_before,
        step=StepRef(loaded.run.id, step.name, item),
    )
    done.add(admitted)
    mine = [r for r in admitted.created if r.workflow_run_id == loaded.run.id]
    note(conn, loaded.run.id, runs=mine)
    return any(r.status.terminal for r in mine)


def _start_nested(
    conn: Connection, loaded: _Loaded, step: Step, item: int, attempt: int, planned: StepRun,
    now: datetime, done: Admitted,
) -> bool:
    assert planned.workflow is not None
    namespace, name = planned.workflow
    workflow = workflow_store.get(conn, f"{namespace}/{name}")
    child, more = start(conn, workflow, params=planned.params, trigger=Trigger.WORKFLOW,
                        now=now, submitter=loaded.run.submitter,
                        parent=(loaded.run.id, step.name, item, attempt))
    done.add(more)
    if child is None:
        return False
    note(conn, loaded.run.id, child=child)
    return child.status.terminal


def _stop_step(
    conn: Connection, loaded: _Loaded, step: str, item: int | None, now: datetime,
    done: Admitted,
) -> bool:
    """Stop a step's active run (cancel): True when it ended at once."""
    where = loaded.where(step, _item(loaded.spec.step(step), item))
    if where is None:
        return False
    kind, target = where
    if kind == "child":
        child = store.get(conn, target)
        if child.cancel_requested_at is None:
            store.update(conn, target, now, cancel_requested_at=now)
            done.add(advance(conn, target, now))
        return store.get(conn, target).status.terminal
    run = run_store.get(conn, target)
    if run.status.terminal or (run.cancel_requested_at is not None and run.status in LAUNCHED):
        return False
    admission.before_ending(conn, run)
    run = run_store.request_cancel(conn, target, force=False, now=now,
                                   reason="its workflow run was cancelled")
    if run.status.terminal:
        done.add(admission.after_end(conn, run, now))
        return True
    if run.status in LAUNCHED:
        done.stop.append(run)
    return False


# Controls ------------------------------------------------------------------------------------


def _active(run: WorkflowRun, what: str) -> None:
    if run.status.terminal:
        raise InvalidTransition(
            f"workflow run {run.id} has ended ({run.status.value}); it cannot be {what}",
            details={"status": run.status.value},
        )


def pause(conn: Connection, run_id: int, now: datetime) -> Admitted:
    """No step starts until ``resume``; running steps go on to their end."""
    run = store.get(conn, run_id, for_update=True)
    _active(run, "paused")
    if run.cancel_requested_at is not None:
        raise Conflict(f"workflow run {run_id} is being cancelled")
    if run.paused_at is None:
        store.update(conn, run_id, now, paused_at=now)
    return advance(conn, run_id, now)


def resume(conn: Connection, run_id: int, now: datetime) -> Admitted:
    run = store.get(conn, run_id, for_update=True)
    _active(run, "resumed")
    if run.paused_at is not None:
        store.update(conn, run_id, now, paused_at=None)
    return advance(conn, run_id, now)


def cancel(conn: Connection, run_id: int, now: datetime) -> Admitted:
    """Stop every active step run (its nested runs too); ABORTED once all have stopped."""
    run = store.get(conn, run_id, for_update=True)
    _active(run, "cancelled")
    if run.cancel_requested_at is None:
        store.update(conn, run_id, now, cancel_requested_at=now)
    return advance(conn, run_id, now)


def _step_of(loaded: _Loaded, name: str) -> Step:
    try:
        return loaded.spec.step(name)
    except KeyError:
        known = ", ".join(s.name for s in (*loaded.spec.steps, *loaded.spec.on_failure))
        raise NotFound(f"workflow run {loaded.run.id} has no step {name!r}; its steps: {known}",
                       details={"step": name}) from None


def skip(conn: Connection, run_id: int, name: str, now: datetime, *, actor: str) -> Admitted:
    """Skip a step that has not started running: its waiting run (or a new one) is SKIPPED."""
    loaded = load(conn, run_id, for_update=True)
    _active(loaded.run, "changed")
    step = _step_of(loaded, name)
    state = loaded.states.get(name, NOT_STARTED)
    if (step.foreach is not None and state.items) or not can_skip(state):
        now_is = "RUNNING" if state.items else (state.status.value if state.status else "")
        raise Conflict(f"step {name!r} is {now_is}; only a step that has not started running "
                       "can be skipped", details={"status": now_is})
    reason = f"skipped by {actor}"
    where = loaded.where(name, _item(step, None))
    if state.status is None or where is None or where[0] != "run":
        _ended(conn, loaded, step, _item(step, None), state.attempt + 1, RunStatus.SKIPPED,
               reason, now)
        return advance(conn, run_id, now)
    waiting = run_store.get(conn, where[1])
    admission.before_ending(conn, waiting)
    ended = run_store.set_status(conn, waiting.id, RunStatus.SKIPPED, finished_at=now,
                                 error=reason, decided_by=actor, decided_at=now)
    done = admission.after_end(conn, ended, now)
    done.add(advance(conn, run_id, now))
    return done


def decide_approval(
    conn: Connection, run_id: int, name: str, now: datetime, *, actor: str, approve: bool,
) -> Admitted:
    """Approve (SUCCESS) or reject (ABORTED, a failure) an approval step waiting for a person,
    recording who and when."""
    loaded = load(conn, run_id, for_update=True)
    _active(loaded.run, "changed")
    step = _step_of(loaded, name)
    if step.kind != "approval":
        raise Conflict(f"step {name!r} is a {step.kind} step, not an approval")
    where = loaded.where(name, _item(step, None))
    state = loaded.states.get(name, NOT_STARTED)
    if where is None or state.status is not RunStatus.ACTION_PENDING:
        now_is = state.status.value if state.status else "not started"
        raise Conflict(f"step {name!r} is {now_is}; only an approval waiting for a person "
                       "(ACTION_PENDING) can be approved or rejected",
                       details={"status": now_is})
    return answer(conn, where[1], now, actor=actor, approve=approve)


def answer(conn: Connection, step_run_id: int, now: datetime, *, actor: str,
           approve: bool) -> Admitted:
    """End an approval step run as a person said; its workflow run goes on."""
    fields: dict[str, Any] = {"finished_at": now, "decided_by": actor, "decided_at": now}
    if approve:
        ended = run_store.set_status(conn, step_run_id, RunStatus.SUCCESS, **fields)
    else:
        ended = run_store.set_status(conn, step_run_id, RunStatus.ABORTED,
                                     error=f"rejected by {actor}", **fields)
    return admission.after_end(conn, ended, now)


def retry(conn: Connection, run_id: int, name: str, now: datetime) -> Admitted:
    """Run a failed step again (and what its failure made skip); the workflow run goes on,
    also when it had failed."""
    loaded = load(conn, run_id, for_update=True)
    run = loaded.run
    if run.status in (WorkflowStatus.ABORTED, WorkflowStatus.CANCELLING):
        raise InvalidTransition(f"workflow run {run_id} was cancelled ({run.status.value}); "
                                "rerun it instead", details={"status": run.status.value})
    _step_of(loaded, name)
    reset = retry_step(loaded.spec, loaded.states, name)
    floors = {**run.floors, **{step: loaded.attempt(step) for step in reset}}
    store.update(conn, run_id, now, floors=floors, status=WorkflowStatus.RUNNING.value,
                 reason="", finished_at=None)
    return advance(conn, run_id, now)


def rerun(conn: Connection, run_id: int, now: datetime, *,
          submitter: str | None) -> tuple[WorkflowRun, Admitted]:
    """A new workflow run that runs again what failed (and what it made skip), keeping every
    other step's runs and outputs."""
    loaded = load(conn, run_id)
    run = loaded.run
    if not run.status.terminal:
        raise Conflict(f"workflow run {run_id} is still {run.status.value}; only an ended one "
                       "can be rerun", details={"status": run.status.value})
    reset = rerun_from_failed(loaded.spec, loaded.states)
    if not (reset - {s.name for s in loaded.spec.on_failure}):
        raise Conflict(f"workflow run {run_id} has no failed step to run again")
    floors = {step: loaded.attempt(step) for step in reset}
    again = store.create(
        conn, workflow_id=run.workflow_id, namespace=run.namespace,
        workflow_name=run.workflow_name, spec=store.get(conn, run_id).spec, params=run.params,
        status=WorkflowStatus.RUNNING.value, trigger=Trigger.RETRY.value,
        submitter=submitter, created_at=now, rerun_of=run.id, floors=floors,
        parent_run_id=None,
    )
    assert again is not None
    return store.get(conn, again.id), advance(conn, again.id, now)


def time_out_approvals(conn: Connection, now: datetime) -> Admitted:
    """Approvals nobody answered by their deadline end TIMEOUT (a failure)."""
    done = Admitted()
    for run in run_store.due_approvals(conn, now):
        try:
            ended = run_store.set_status(conn, run.id, RunStatus.TIMEOUT, finished_at=now,
                                         error="nobody answered before its timeout")
        except HerderError:
            continue  # answered meanwhile
        done.add(admission.after_end(conn, ended, now))
    return done


# Reading -------------------------------------------------------------------------------------


def describe(conn: Connection, run_id: int) -> tuple[WorkflowRun, dict[str, Any]]:
    """A workflow run and its graph as data (``model.workflow_steps.graph``), each node with
    its runs (every attempt, oldest first), its nested child run, and an approval's message."""
    run = store.get(conn, run_id)
    spec, lineage = _frozen(conn, run)
    rows = store.step_runs(conn, lineage)
    kids = store.children(conn, lineage)
    loaded = _states(spec, run, StepIndex.of(run.version, rows, kids))
    drawn = graph(spec, loaded.states)
    runs_of: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row.step is not None:
            runs_of.setdefault(row.step, []).append({
                "id": row.id, "item": row.item if row.item >= 0 else None,
                "attempt": row.attempt, "status": row.status, "created_at": row.created_at,
                "started_at": row.started_at, "finished_at": row.finished_at,
                "error": row.error,
            })
    child_of = {kid.parent_step: kid.id for kid in kids}  # the newest, as kids are oldest first
    for node in drawn["nodes"]:
        step = spec.step(node["id"])
        node["runs"] = runs_of.get(step.name, [])
        node["child"] = child_of.get(step.name) if step.kind == "workflow" else None
        node["message"] = step.approval.message if step.approval is not None else None
        times = [r for r in node["runs"] if r["attempt"] > run.floors.get(step.name, 0)]
        node["started_at"] = min((r["started_at"] or r["created_at"] for r in times),
                                 default=None)
        node["finished_at"] = max((r["finished_at"] for r in times if r["finished_at"]),
                                  default=None) if node["ended"] else None
    return run, drawn
