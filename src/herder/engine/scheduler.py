"""The scheduler: due slots become runs, exactly one per slot.

A job with a schedule carries ``next_run_at`` (its next slot, indexed) and a small JSON state:

``cursor``
    the newest slot dealt with. ``model.schedules.plan_due`` decides about the slots after it;
    the cursor moves in the same transaction that creates their runs, and the store refuses a
    second run for a slot (unique job, slot, attempt), so a slot is neither lost nor doubled
    across crashes, restarts and several servers.
``skipped``
    how many slots were skipped in all (each listed one is also a SKIPPED run).
``unlisted``
    after a long absence, the range of old skipped slots summed up instead of listed.
``disabled_at``, ``resumed_at``
    the last pause, to explain the slots it skipped.

``tick`` runs in one write transaction; on PostgreSQL the due jobs' rows are locked with
``SKIP LOCKED``, so servers ticking at once share the work instead of repeating it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from herder.engine.admission import Admitted, admit
from herder.model.errors import Conflict
from herder.model.jobs import Job, next_run
from herder.model.policies import lookahead
from herder.model.runs import Run, RunStatus, Trigger
from herder.model.schedules import (
    Misfire,
    Schedule,
    dst_note,
    fire_times,
    in_zone,
    jittered,
    plan_due,
)
from herder.store import jobs as job_store
from herder.store import runs as run_store
from herder.store.runs import NewRun

TICK_BATCH = 200  # jobs planned per transaction; a tick that filled it goes on at once


@dataclass(slots=True)
class Tick:
    admitted: Admitted = field(default_factory=Admitted)
    jobs: int = 0  # how many due jobs were planned

    @property
    def full(self) -> bool:
        return self.jobs >= TICK_BATCH


def tick(conn: Connection, now: datetime, *, limit: int = TICK_BATCH) -> Tick:
    """Plan every job whose ``plan_at`` has come: create the runs its slots get, record the
    slots it skips, and move its cursor, ``next_run_at`` and ``plan_at`` on.

    Jobs under ``concurrency: allow`` are planned a little ahead of their slots
    (``model.policies.lookahead``): their runs wait for the slot in ``not_before``, so that at
    the slot only the process start is left. Their runs, and every skipped slot, are created
    together in one statement: a tick costs a few statements, not a few per job."""
    done = Tick()
    batch: list[NewRun] = []
    updates: list[dict[str, Any]] = []
    for job in job_store.due(conn, now, limit):
        done.jobs += 1
        if job.spec.schedule is None or not job.spec.enabled:  # edited since: nothing is due
            updates.append(job_store.schedule_update(job, None, job.schedule_state))
            continue
        done.admitted.add(_plan_job(conn, job, job.spec.schedule, now, batch, updates))
    # A slot that already has its run (made before a crash lost the cursor) is left out.
    done.admitted.created.extend(run_store.create_many(conn, batch))
    job_store.set_schedules(conn, updates)
    return done


@dataclass(slots=True)
class SlotPlan:
    """What ``plan_slots`` decided for one job or workflow: the slots to run, the slots
    skipped (each with its reason), the new scheduler state, and the next slot to plan."""

    state: dict[str, Any]
    run: list[datetime]
    skipped: list[tuple[datetime, str]]
    next_slot: datetime | None
    finished: bool  # a one-shot has fired: switch it off


def plan_slots(
    schedule: Schedule, misfire: Misfire, state: Mapping[str, Any], now: datetime, *,
    horizon: datetime, kind: str = "job",
) -> SlotPlan:
    """The slots after the cursor in ``state`` up to ``horizon``, by the misfire policy: the
    one piece of slot planning that jobs and workflows (``engine.workflow_schedules``)
    share. ``state`` is not changed; the new one is in the answer."""
    state = dict(state)
    cursor = datetime.fromisoformat(state["cursor"]) if "cursor" in state else None
    plan = plan_due(schedule, misfire, cursor, now, horizon=horizon)
    paused = _paused_span(state)
    skipped = []
    for skip in plan.skipped:
        reason = skip.reason
        if paused is not None and paused[0] <= skip.slot <= paused[1]:
            reason = f"the {kind} was disabled at this slot; {reason}"
        skipped.append((skip.slot, reason))
    if plan.unlisted_through is not None:
        state["unlisted"] = {
            "after": state.get("cursor"),
            "through": job_store.iso(plan.unlisted_through),
            "reason": plan.unlisted_reason,
        }
    state["skipped"] = int(state.get("skipped", 0)) + len(plan.skipped)
    if plan.cursor is not None:
        state["cursor"] = job_store.iso(plan.cursor)
    finished = plan.next_slot is None and schedule.at is not None
    if finished:
        state["disabled_at"] = job_store.iso(now)
        state.pop("resumed_at", None)
    return SlotPlan(state=state, run=list(plan.run), skipped=skipped,
                    next_slot=plan.next_slot, finished=finished)


def _plan_job(
    conn: Connection,
    job: Job,
    schedule: Schedule,
    now: datetime,
    batch: list[NewRun],
    updates: list[dict[str, Any]],
) -> Admitted:
    """Plan one job: its plain runs and skips go to ``batch`` and its new schedule state to
    ``updates``; runs a concurrency policy must decide about are admitted here, one by one."""
    horizon = now + lookahead(job.spec.concurrency)
    plan = plan_slots(schedule, job.spec.misfire, job.schedule_state, now, horizon=horizon)
    done = Admitted()
    params = dict(job.spec.params)
    for slot, reason in plan.skipped:
        batch.append(NewRun(
            job=job, params=params, env={}, trigger=Trigger.SCHEDULE, now=now,
            scheduled_for=slot, status=RunStatus.SKIPPED, error=reason,
        ))
    for slot in plan.run:
        new = NewRun(
            job=job, params=params, env={}, trigger=Trigger.SCHEDULE, now=now,
            scheduled_for=slot, not_before=jittered(schedule, slot, str(job.id)),
        )
        if job.spec.concurrency == "allow" and not job.spec.locks:
            batch.append(new)
            continue
        try:
            done.add(admit(
                conn, job, trigger=new.trigger, now=now, params=params, env={},
                scheduled_for=slot, not_before=new.not_before,
            ))
        except Conflict:
            pass  # the slot already has its run (made before a crash lost the cursor): keep it
    if plan.finished:
        # A one-shot has fired: the job disables itself, keeping its runs and its spec.
        job_store.switch_off(conn, job, now)
    coming = [slot for slot in plan.run if slot > now]
    updates.append(job_store.schedule_update(
        job, plan.next_slot, plan.state, planned=min(coming, default=None)
    ))
    return done


def _paused_span(state: dict[str, Any]) -> tuple[datetime, datetime] | None:
    if "disabled_at" not in state or "resumed_at" not in state:
        return None
    return datetime.fromisoformat(state["disabled_at"]), datetime.fromisoformat(
        state["resumed_at"]
    )


def report(
    conn: Connection, ref: str, now: datetime, *, recent: int = 20, upcoming: int = 5
) -> dict[str, Any]:
    """"Why didn't it run?": the job's recent slots and what became of each, the slots summed
    up after a long absence, and a preview of the next ones, each with its DST note."""
    job = job_store.get(conn, ref)
    schedule = job.spec.schedule
    state = job.schedule_state
    notes: list[str] = []
    slots: list[dict[str, Any]] = []
    previews: list[dict[str, Any]] = []
    if schedule is None:
        notes.append("the job has no schedule: it runs only when asked")
    else:
        runs = run_store.slot_runs(conn, job.id, limit=recent)
        retried = run_store.retries_of(conn, [r.id for r in runs if r.status.terminal])
        slots = [_slot_fate(schedule, run, retried.get(run.id)) for run in runs]
        if not job.spec.enabled:
            since = state.get("disabled_at")
            notes.append(
                f"the job is disabled{' since ' + since if since else ''}: no slot runs until "
                "it is enabled, and then the slots missed meanwhile follow its misfire policy "
                f"({job.spec.misfire.policy}, grace {job.spec.misfire.to_dict()['grace']})"
            )
        cursor = datetime.fromisoformat(state["cursor"]) if "cursor" in state else now
        previews = [
            {"slot": slot, "local": in_zone(slot, schedule.timezone),
             "dst": dst_note(schedule, slot)}
            for slot in fire_times(schedule, max(now, cursor), upcoming)
        ]
        if upcoming and not previews and job.spec.enabled:
            notes.append("the schedule has no more slots (its 'at' passed or its 'end' came)")
    return {
        "job": job.ref,
        "enabled": job.spec.enabled,
        "schedule": None if schedule is None else schedule.to_dict(),
        "misfire": job.spec.misfire.to_dict(),
        "concurrency": job.spec.concurrency,
        "next_run_at": next_run(job, now),
        "recent": slots,
        "skipped_total": int(state.get("skipped", 0)),
        "unlisted": state.get("unlisted"),
        "upcoming": previews,
        "notes": notes,
    }


def _slot_fate(schedule: Schedule, run: Run, retry: Run | None) -> dict[str, Any]:
    if run.status is RunStatus.SKIPPED:
        fate, reason = "skipped", run.error
    elif run.status.terminal:
        fate, reason = "ran", None
        if retry is not None:
            reason = f"retried as run {retry.id} ({retry.status.value})"
    else:
        fate, reason = "pending", None
    assert run.scheduled_for is not None
    return {
        "slot": run.scheduled_for,
        "local": in_zone(run.scheduled_for, schedule.timezone),
        "fate": fate,
        "run_id": run.id,
        "status": run.status.value,
        "reason": reason,
        "dst": dst_note(schedule, run.scheduled_for),
    }
