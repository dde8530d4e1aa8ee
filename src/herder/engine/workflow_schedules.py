"""Workflows in time: due slots become workflow runs, and runs past their ``timeout`` are
cancelled.

A scheduled workflow carries ``next_run_at``, ``plan_at`` and the scheduler state a job
carries (``engine.scheduler``), and its slots are planned by the same piece,
``scheduler.plan_slots``, with the same misfire rules. What differs: a workflow's slot is
planned at the slot itself (a workflow run starts its first steps as it is created, so none is
made ahead, and a schedule's ``jitter`` is not applied), and a slot that does not run (missed,
disabled, or forbidden by the concurrency policy) is a workflow run created ABORTED whose
reason starts ``skipped:`` (a job's is a SKIPPED run). Exactly one workflow run per slot: the
store's unique key on (workflow, scheduled_for) refuses a second, and on PostgreSQL the due
workflows' rows are locked with ``SKIP LOCKED``, so servers ticking at once share the work.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from herder.engine import workflow_policy, workflows
from herder.engine.admission import Admitted
from herder.engine.scheduler import TICK_BATCH, plan_slots
from herder.model.durations import format_duration
from herder.model.errors import HerderError
from herder.model.runs import Trigger
from herder.store import workflow_runs as run_store
from herder.store import workflows as store

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Tick:
    """What a tick did: the step runs it admitted, and how many workflows it planned."""

    admitted: Admitted = field(default_factory=Admitted)
    workflows: int = 0

    @property
    def full(self) -> bool:
        return self.workflows >= TICK_BATCH


def tick(conn: Connection, now: datetime, *, limit: int = TICK_BATCH) -> Tick:
    """Plan every workflow whose slot has come: start a workflow run for each slot it runs,
    record each slot it skips, and move its cursor and ``next_run_at`` on."""
    done = Tick()
    updates: list[dict[str, Any]] = []
    for workflow in store.due(conn, now, limit):
        done.workflows += 1
        spec = workflow.spec
        if spec.schedule is None or not spec.enabled:  # edited since: nothing is due
            updates.append(store.schedule_update(workflow, None, dict(workflow.schedule_state)))
            continue
        plan = plan_slots(spec.schedule, spec.misfire, workflow.schedule_state, now,
                          horizon=now, kind="workflow")
        for slot, reason in plan.skipped:
            workflow_policy.skipped(conn, workflow, slot, f"skipped: {reason}", now,
                                    params=dict(spec.params))
        for slot in plan.run:
            try:
                with conn.begin_nested():
                    run, admitted = workflows.start(conn, workflow, params={},
                                                    trigger=Trigger.SCHEDULE, now=now,
                                                    scheduled_for=slot)
            except HerderError as exc:  # the slot is lost, not the tick: say why on it
                log.warning("workflow %s: slot %s could not start: %s", spec.ref,
                            slot.isoformat(), exc.message,
                            extra={"workflow": spec.ref, "action": "workflow_slot_failed"})
                workflow_policy.skipped(conn, workflow, slot,
                                        f"skipped: could not start: {exc.message}", now)
                continue
            done.admitted.add(admitted)
            if run is not None:
                log.info("workflow %s: slot %s started as workflow run %s", spec.ref,
                         slot.isoformat(), run.id,
                         extra={"workflow_run_id": run.id, "action": "workflow_scheduled"})
        if plan.finished:  # a one-shot has fired: the workflow disables itself
            store.switch_off(conn, workflow, now)
        updates.append(store.schedule_update(workflow, plan.next_slot, plan.state))
    store.set_schedules(conn, updates)
    return done


def time_out(conn: Connection, now: datetime) -> Admitted:
    """Cancel every top-level workflow run still active past its ``timeout``: it ends
    ABORTED with the reason ``timed out after …`` (its nested runs are cancelled with it)."""
    done = Admitted()
    for run_id, timeout in run_store.overdue(conn, now):
        reason = f"timed out after {format_duration(timeout)}"
        run_store.update(conn, run_id, now, reason=reason)
        done.add(workflows.cancel(conn, run_id, now))
        log.info("workflow run %s %s", run_id, reason,
                 extra={"workflow_run_id": run_id, "action": "workflow_timeout"})
    return done


def next_plan(conn: Connection) -> datetime | None:
    """When a workflow has a slot to plan next."""
    return store.next_plan(conn)
