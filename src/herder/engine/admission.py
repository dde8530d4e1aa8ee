"""Admission: every new run of a job passes here, and every ended run leaves through here.

``admit`` applies the job's concurrency policy to a new run (``model.policies`` says what each
policy means), then its locks (``model.locks``): a run the policy lets in but whose locks are
taken waits WAITING in their queues. ``after_end`` retries a failed run, lets queued runs in,
gives back the run's locks to their next waiters and, at a run's final end, starts the jobs
that follow its job (``engine.chains``). Both run inside the caller's write transaction, so a
crash can never keep a run's end without its retry or its chained runs, a freed slot without
its waiting run, or an ended run holding a lock: they commit together or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Connection

from herder.engine import chains
from herder.model.errors import Conflict, InvalidTransition, NotFound
from herder.model.jobs import Job
from herder.model.locks import uses_of
from herder.model.policies import MAX_ACTIVE, RETRIED
from herder.model.runs import LAUNCHED, Run, RunStatus, Trigger
from herder.store import jobs as job_store
from herder.store import locks as lock_store
from herder.store import run_files as file_store
from herder.store import runs as run_store


@dataclass(frozen=True, slots=True)
class StepRef:
    """The workflow step a run is: its workflow run, step and foreach item."""

    workflow_run_id: int
    step: str
    item: int = 0
    context: dict[str, Any] | None = None

    def fields(self) -> dict[str, Any]:
        return {"workflow_run_id": self.workflow_run_id, "step": self.step, "item": self.item,
                "context": self.context}


@dataclass(slots=True)
class Admitted:
    """What ``admit`` or ``after_end`` did: runs made READY now (wake the dispatcher) and
    launched runs to stop (their backends must be told, after the commit)."""

    created: list[Run] = field(default_factory=list)
    stop: list[Run] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return any(run.status is RunStatus.READY for run in self.created)

    def add(self, other: Admitted) -> None:
        self.created.extend(other.created)
        self.stop.extend(other.stop)


def admit(
    conn: Connection,
    job: Job,
    *,
    trigger: Trigger,
    now: datetime,
    params: dict[str, Any],
    env: dict[str, str],
    submitter: str | None = None,
    scheduled_for: datetime | None = None,
    attempt: int = 1,
    parent_id: int | None = None,
    not_before: datetime | None = None,
    by_person: bool = False,
    manual: bool = False,
    step: StepRef | None = None,
    upstream_run_id: int | None = None,
) -> Admitted:
    """Create a run of ``job`` as its concurrency policy says: READY, WAITING (queue), SKIPPED
    (forbid) or, when ``by_person`` asked over the API and waits for the answer, refused with
    ``Conflict`` (forbid). A ``manual`` run is created ACTION_PENDING; its policy is applied
    when it is approved (``approve``). ``step``: the workflow step this run is."""
    if manual:
        status, error, done = RunStatus.ACTION_PENDING, None, Admitted()
    else:
        status, error, done = _decide(conn, job, now, by_person=by_person)
    locked = status is RunStatus.READY and bool(job.spec.locks)
    run = run_store.create(
        conn, job=job, params=params, env=env, trigger=trigger, now=now, submitter=submitter,
        scheduled_for=scheduled_for, attempt=attempt, parent_id=parent_id,
        status=RunStatus.WAITING if locked else status, not_before=not_before, error=error,
        **({} if step is None else step.fields()),
        upstream_run_id=upstream_run_id,
    )
    if parent_id is not None:  # a retry is given its parent's input files, in this transaction
        file_store.copy(conn, parent_id, run.id)
    done.created.append(_lock(conn, run, now) if locked else run)
    return done


def approve(conn: Connection, run_id: int, now: datetime) -> Admitted:
    """Send an ACTION_PENDING run on, through its job's concurrency policy as a new run would
    pass (READY, WAITING, or ``Conflict`` under forbid: the run then stays pending)."""
    run = run_store.get(conn, run_id)
    if run.status is not RunStatus.ACTION_PENDING:
        raise InvalidTransition(
            f"run {run_id} is {run.status.value}; only a run waiting for a person "
            "(ACTION_PENDING) can be approved",
            details={"status": run.status.value},
        )
    if run.job_id is None:
        raise Conflict(f"the job of run {run_id} ({run.job_ref}) has been deleted; cancel it")
    job = job_store.get(conn, str(run.job_id))
    status, _, done = _decide(conn, job, now, by_person=True)
    locked = status is RunStatus.READY and bool(uses_of(run.spec))
    approved = run_store.set_status(conn, run_id, RunStatus.WAITING if locked else status)
    done.created.append(_lock(conn, approved, now) if locked else approved)
    return done


def _decide(
    conn: Connection, job: Job, now: datetime, *, by_person: bool
) -> tuple[RunStatus, str | None, Admitted]:
    """The status a run of ``job`` enters now, and why if SKIPPED; replaced runs are stopped."""
    spec = job.spec
    status, error = RunStatus.READY, None
    done = Admitted()
    if spec.concurrency != "allow":
        job_store.lock(conn, job.id)
        active = run_store.occupying(conn, job.id)
        full = len(active) >= spec.max_active
        if spec.concurrency == "queue" and (full or run_store.has_waiting(conn, job.id)):
            status = RunStatus.WAITING  # behind the runs already waiting: first come, first run
        elif full and spec.concurrency == "forbid":
            busy = ", ".join(f"run {r.id} ({r.status.value})" for r in active[:5])
            reason = (
                f"concurrency forbid: the job allows {spec.max_active} active run(s) and has "
                f"{len(active)}: {busy}"
            )
            if by_person:
                raise Conflict(
                    f"job {job.ref}: {reason}; wait for it to end or cancel it",
                    details={"active_runs": [r.id for r in active]},
                )
            status, error = RunStatus.SKIPPED, reason
        elif full and spec.concurrency == "replace":
            for old in active[: len(active) - spec.max_active + 1]:
                done.add(_replace(conn, old, now))
    return status, error, done


def _lock(conn: Connection, run: Run, now: datetime) -> Run:
    """Queue a WAITING run for its locks; answers it READY if it got them at once. (Adding a
    waiter never lets another one in: ``model.locks``.)"""
    granted = lock_store.request(conn, run, now)
    return next((r for r in granted if r.id == run.id), run)


def _unlock(conn: Connection, run: Run, now: datetime) -> Admitted:
    """Give back the locks of a run that has ended; its next waiters get them."""
    if not uses_of(run.spec):
        return Admitted()
    return Admitted(created=lock_store.release(conn, run, now))


def before_ending(conn: Connection, run: Run) -> None:
    """Before a run that is not launched and names locks is ended here (a cancel): its row is
    one that lock grants write, so take the row locks in this module's order first (its job's,
    the namespace's lock decisions, then the run's own)."""
    if not uses_of(run.spec) or run.status in LAUNCHED:
        return
    if run.job_id is not None and run.spec.get("concurrency") != "allow":
        job_store.lock(conn, run.job_id)
    lock_store.serialize(conn, run.namespace)


def _replace(conn: Connection, old: Run, now: datetime) -> Admitted:
    """Cancel ``old`` for a newer run: at once if it was not launched, else via its backend."""
    if uses_of(old.spec):  # the namespace's lock decisions before the run's row, as grants do
        lock_store.serialize(conn, old.namespace)
    cancelled = run_store.request_cancel(
        conn, old.id, force=False, now=now, reason="replaced by a newer run (concurrency replace)"
    )
    if cancelled.status.terminal:
        done = _unlock(conn, cancelled, now)
        if cancelled.workflow_run_id is not None:  # a workflow's step: its workflow goes on
            done.add(_step_ended(conn, cancelled, now))
        return done
    return Admitted(stop=[cancelled] if cancelled.status in LAUNCHED else [])


def after_end(conn: Connection, run: Run, now: datetime) -> Admitted:
    """Follow-ups of a run that has just ended: its retry, the queue of its job, its locks,
    then, if no retry of it is to come, the runs of the jobs that follow its job (chains).

    Whether a retry is wanted is read from the spec the run was started with, and whether runs
    wait from one indexed query, so most ends never load the job; what a retry or a freed slot
    creates follows the job as it is now. The locks go last: a retry queues behind the runs
    already waiting, and the job's row is taken before the namespace's lock decisions, as
    ``admit`` takes them. (On PostgreSQL each decision takes its row locks in one order: the
    job's, the namespace's lock decisions, then the rows of runs not launched.)"""
    done = _follow_ups(conn, run, now)
    done.add(_unlock(conn, run, now))
    if run.workflow_run_id is not None:  # a workflow's step: the workflow says what follows
        done.add(_step_ended(conn, run, now))
        return done
    retried = any(r.parent_id == run.id and r.status is not RunStatus.SKIPPED
                  for r in done.created)
    if not retried:  # its final end (a retry the policy skipped is no attempt to come)
        for chained in chains.follow(conn, run, now, admit):
            done.add(chained)
    return done


def _step_ended(conn: Connection, run: Run, now: datetime) -> Admitted:
    # Imported here: the workflow engine admits its job steps through this module.
    from herder.engine import workflows

    return workflows.step_ended(conn, run, now)


def _follow_ups(conn: Connection, run: Run, now: datetime) -> Admitted:
    done = Admitted()
    frozen = run.spec
    # A workflow retries its steps itself (``model.workflow_runs.decide``), never twice over.
    retried = bool(frozen.get("retries")) and run.status in RETRIED and run.step is None
    if run.job_id is None:
        return done  # the job was deleted: no retry, no queue to move
    # Runs may wait even if this one was not queued: the job's policy may have changed since.
    queued = frozen.get("concurrency") == "queue" or run_store.has_waiting(conn, run.job_id)
    if not (retried or queued):
        return done
    try:
        job = job_store.get(conn, str(run.job_id))
    except NotFound:
        return done
    retries = job.spec.retries
    if retries is not None and retries.wants(run.status, run.attempt):
        delay = retries.delay(run.attempt, f"{job.id}/{run.id}")
        done.add(
            admit(
                conn, job, trigger=Trigger.RETRY, now=now, params=run.params, env=run.env,
                submitter=run.submitter, scheduled_for=run.scheduled_for,
                attempt=run.attempt + 1, parent_id=run.id,
                not_before=now + timedelta(seconds=delay), upstream_run_id=run.upstream_run_id,
            )
        )
    if queued:
        done.add(release(conn, job, now))
    return done


def release(conn: Connection, job: Job, now: datetime) -> Admitted:
    """Let the job's oldest runs waiting for a concurrency slot in while it has free slots (all
    of them when the job no longer queues): READY, or into the queues of their locks."""
    job_store.lock(conn, job.id)
    if job.spec.concurrency == "queue":
        free = job.spec.max_active - len(run_store.occupying(conn, job.id))
    else:
        free = MAX_ACTIVE
    done = Admitted()
    for run in run_store.waiting(conn, job.id, max(free, 0)):
        done.created.append(
            _lock(conn, run, now) if uses_of(run.spec)
            else run_store.set_status(conn, run.id, RunStatus.READY)
        )
    return done
