"""The engine: READY runs to backends, process ends to terminal statuses, and nothing lost
across a restart.

Life of a run here: ``submit`` writes it READY and wakes the dispatcher; the dispatcher claims
READY runs in batches (READY -> JOB_DEPLOYED, owned by this server), starts each on its backend
(-> RUNNING, with the backend's handle stored) and follows it until its process ends (-> a
terminal status). Timeouts and cancels only *ask* the backend to stop the process; the terminal
status is written when the backend reports the end, so logs and exit codes are always complete.

After a restart, ``reconcile`` puts every launched run this server owns IN_DOUBT and asks its
backend again; the backend either re-attaches (-> RUNNING), reports how it ended, or has lost it
(-> PROC_ERROR with the reason; or READY again when it was never started). No run stays
non-terminal forever. The same happens to the runs of a server whose lease ran out: another
server takes them over (``store.servers``).

The scheduler loop turns due slots into runs (``engine.scheduler``); every new run passes the
job's concurrency policy and every end its retry policy (``engine.admission``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import logging
import os
import socket
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from herder.backends import base as backends
from herder.backends.base import Backend, Exited, Handle, Running
from herder.bundles.archive import Limits
from herder.engine import (
    admission,
    outputs,
    scheduler,
    values,
    workflow_schedules,
    workflows,
)
from herder.engine.admission import Admitted
from herder.engine.launch import build_context, upstream_of
from herder.engine.retention import Pruner
from herder.engine.workspace import Workspace
from herder.logs import LogStore
from herder.masking import Masker
from herder.model.errors import BackendError, Conflict, HerderError, InvalidSpec, RunLost
from herder.model.jobs import Job, JobSpec, check_env, merge_params
from herder.model.policies import Retention
from herder.model.runs import LAUNCHED, Run, RunStatus, StopReason, Trigger
from herder.model.workflow_state import WorkflowRun
from herder.secret_keys import SecretKeys
from herder.store import jobs as job_store
from herder.store import locks as lock_store
from herder.store import run_files as file_store
from herder.store import runs as run_store
from herder.store import servers as server_store
from herder.store import workflow_runs as workflow_run_store
from herder.store import workflows as workflow_store
from herder.store.database import Database
from herder.store.servers import Server

log = logging.getLogger(__name__)


# How far ahead of its ``not_before`` (its slot, for a scheduled run) a run is claimed: its
# folders are made, then it waits in memory, so that at the slot only the process start is left.
# (How far ahead runs are created is ``model.policies.lookahead``.)
LEAD = timedelta(seconds=0.5)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Engine:
    """One per server process. ``run()`` is its life; the API calls ``submit`` and ``cancel``."""

    def __init__(
        self,
        db: Database,
        *,
        data_dir: Path,
        owner: str,
        kill_grace: float = 10.0,
        default_timeout: float | None = None,
        dispatch_batch: int = 256,
        backend_settings: dict[str, Any] | None = None,
        clock: Callable[[], datetime] = utcnow,
        lease_ttl: float = 15.0,
        schedule: bool = True,
        retention: Retention | None = None,
        prune_every: float = 300.0,
        secret_keys: SecretKeys | None = None,
        bundle_limits: Limits | None = None,
        workflow_sweep: float = 30.0,
    ) -> None:
        self.db = db
        self.workflow_sweep = workflow_sweep
        self.secret_keys = secret_keys or SecretKeys(data_dir=data_dir)
        # The masker of each run launched here (NO_MASK for most), until it ends; a run found
        # again after a restart or a takeover has none, and its end derives it.
        self._maskers: dict[int, Masker] = {}
        self.data_dir = data_dir
        self.owner = owner
        self.logs = LogStore(data_dir)
        self.kill_grace = kill_grace
        self.default_timeout = default_timeout
        self.dispatch_batch = dispatch_batch
        self.backend_settings = backend_settings or {}
        self.clock = clock
        self.lease_ttl = lease_ttl
        self.schedule = schedule
        self.prune_every = prune_every
        self.pruner = Pruner(
            db, default=retention or Retention(), clock=clock, folders_of=self._folders_of
        )
        self.workspace = Workspace(db, limits=bundle_limits or Limits())
        self.epoch = 0  # this incarnation's fencing token, set when it registers
        self._lease_until: datetime | None = None
        self._fenced = False
        self._backends: dict[str, asyncio.Future[Backend]] = {}
        self._wake = asyncio.Event()
        self._schedule_changed = asyncio.Event()
        self._deadlines: list[tuple[datetime, int]] = []
        self._deadline_changed = asyncio.Event()
        self._tasks: asyncio.TaskGroup | None = None
        self.ready = asyncio.Event()

    # Life ------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Reconcile, then dispatch and watch deadlines until cancelled. Every task the engine
        starts lives in this task group."""
        now = self.clock()
        self.epoch = await self.db.write(
            server_store.register, server_id=self.owner, host=socket.gethostname(),
            pid=os.getpid(), data_dir=str(self.data_dir), now=now, ttl=self.lease_ttl,
            only_one=self.db.dialect == "sqlite",
        )
        self._lease_until = now + timedelta(seconds=self.lease_ttl)
        try:
            async with asyncio.TaskGroup() as tasks:
                self._tasks = tasks
                await self.reconcile()
                repaired = await self.db.write(lock_store.repair, self.clock())
                await self._admitted(Admitted(created=repaired))
                await self.advance_workflows()
                tasks.create_task(self._dispatch_loop(), name="herder-dispatch")
                tasks.create_task(self._workflow_loop(), name="herder-workflows")
                tasks.create_task(self._deadline_loop(), name="herder-deadlines")
                tasks.create_task(self._lease_loop(), name="herder-lease")
                if self.schedule:
                    tasks.create_task(self._schedule_loop(), name="herder-schedule")
                tasks.create_task(self._prune_loop(), name="herder-prune")
                self.ready.set()
        finally:
            self._tasks = None
            if not self._fenced:
                try:
                    await self.db.write(server_store.stop, self.owner, self.epoch, self.clock())
                except Exception:  # the store is gone: the lease simply runs out
                    log.warning("could not record this server's stop", exc_info=True)
            for opening in self._backends.values():
                if opening.done() and not opening.cancelled() and opening.exception() is None:
                    await opening.result().close()
                else:
                    opening.cancel()
            self._backends.clear()

    async def backend(self, name: str) -> Backend:
        """The opened backend called ``name``; runs launched at once share one opening."""
        opening = self._backends.get(name)
        if opening is None:
            opening = asyncio.ensure_future(self._open_backend(name))
            self._backends[name] = opening
        try:
            return await asyncio.shield(opening)
        except BaseException:
            if opening.done() and not opening.cancelled() and opening.exception() is not None:
                del self._backends[name]  # let the next run try again
            raise

    async def _open_backend(self, name: str) -> Backend:
        backend = backends.create(name, data_dir=self.data_dir, **self.backend_settings)
        await backend.open()
        return backend

    def _spawn_run_task(self, run_id: int, coro: Coroutine[Any, Any, None]) -> None:
        """Start a task that carries one run; a bug in it ends that run, never the engine."""
        if self._tasks is None:
            raise HerderError("the engine is not running")
        self._tasks.create_task(self._guarded(run_id, coro), name=f"herder-run-{run_id}")

    async def _guarded(self, run_id: int, coro: Coroutine[Any, Any, None]) -> None:
        try:
            await coro
        except Exception as exc:
            log.exception("run %s: unexpected error in the engine", run_id,
                          extra={"run_id": run_id, "action": "engine_error"})
            try:
                await self._end(
                    run_store.fail, run_id,
                    error=f"internal error while following the run: {exc!r}"[:4000],
                )
            except HerderError:
                pass  # it has ended meanwhile, or belongs to another server now

    # What the API asks -----------------------------------------------------------------------

    async def submit(
        self,
        ref: str,
        *,
        params: dict[str, Any] | None = None,
        env: dict[str, Any] | None = None,
        trigger: Trigger = Trigger.API,
        submitter: str | None = None,
        manual: bool = False,
        authorize: Callable[[Job], None] | None = None,
    ) -> Run:
        """Create a READY run of job ``ref`` and wake the dispatcher (``manual``: an
        ACTION_PENDING one, which waits for ``approve``). Bad input changes nothing.
        ``authorize`` sees the job in the same transaction and raises to refuse."""
        overrides = check_env(env or {}, allow_reserved=False)

        def create(conn: Any) -> Admitted:
            job = job_store.get(conn, ref)
            if authorize is not None:
                authorize(job)
            merged = merge_params(job.spec.params, params or {})
            return admission.admit(
                conn, job, params=merged, env=overrides, trigger=trigger,
                submitter=submitter, now=self.clock(), by_person=True, manual=manual,
            )

        admitted = await self.db.write(create)
        await self._admitted(admitted)
        return admitted.created[0]

    async def approve(self, run_id: int, *, actor: str = "anonymous") -> Run:
        """Send an ACTION_PENDING run on (READY, or WAITING behind its job's queue); a
        workflow's approval step ends SUCCESS, approved by ``actor``."""

        def send_on(conn: Any) -> tuple[Run, Admitted]:
            now = self.clock()
            run = run_store.get(conn, run_id)
            if run.workflow_run_id is not None and run.job_id is None:
                done = workflows.answer(conn, run_id, now, actor=actor, approve=True)
                return run_store.get(conn, run_id), done
            done = admission.approve(conn, run_id, now)
            return done.created[-1], done

        run, admitted = await self.db.write(send_on)
        await self._admitted(admitted)
        return run

    async def cancel(self, run_id: int, *, force: bool = False) -> Run:
        """Ask a run to stop; the terminal ABORTED follows once its process is gone."""

        def request(conn: Any) -> tuple[Run, Admitted]:
            now = self.clock()
            admission.before_ending(conn, run_store.get(conn, run_id))
            run = run_store.request_cancel(conn, run_id, force=force, now=now)
            ended = admission.after_end(conn, run, now) if run.status.terminal else Admitted()
            return run, ended

        run, ended = await self.db.write(request)
        await self._admitted(ended)
        if run.handle is not None and run.status in LAUNCHED:
            await self._stop(run, force=run.cancel_force)
        return run

    # Workflows ---------------------------------------------------------------------------------

    async def start_workflow(
        self,
        ref: str,
        *,
        params: dict[str, Any] | None = None,
        trigger: Trigger = Trigger.API,
        submitter: str | None = None,
        authorize: Callable[[Any], None] | None = None,
    ) -> WorkflowRun:
        """Start a run of workflow ``ref``: its first steps are created in the same
        transaction. ``authorize`` sees the workflow first and raises to refuse."""

        def create(conn: Any) -> tuple[WorkflowRun, Admitted]:
            workflow = workflow_store.get(conn, ref)
            if authorize is not None:
                authorize(workflow)
            run, admitted = workflows.start(conn, workflow, params=params or {},
                                            trigger=trigger, now=self.clock(),
                                            submitter=submitter)
            assert run is not None  # only a scheduled slot or a nested step can be taken
            return run, admitted

        run, admitted = await self.db.write(create)
        await self._admitted(admitted)
        return run

    async def control_workflow(
        self, run_id: int, action: str, *, step: str | None = None, actor: str = "anonymous",
    ) -> WorkflowRun:
        """A run-time control of a workflow run (``pause``, ``resume``, ``cancel``, ``rerun``,
        and for a step ``skip``, ``retry``, ``approve``, ``reject``); answers the workflow run
        (for ``rerun``, the new one)."""

        def apply(conn: Any) -> tuple[WorkflowRun, Admitted]:
            now = self.clock()
            target = run_id
            if action == "pause":
                done = workflows.pause(conn, run_id, now)
            elif action == "resume":
                done = workflows.resume(conn, run_id, now)
            elif action == "cancel":
                done = workflows.cancel(conn, run_id, now)
            elif action == "rerun":
                again, done = workflows.rerun(conn, run_id, now, submitter=actor)
                target = again.id
            elif step is None:
                raise ValueError(f"unknown workflow control {action!r}")
            elif action == "skip":
                done = workflows.skip(conn, run_id, step, now, actor=actor)
            elif action == "retry":
                done = workflows.retry(conn, run_id, step, now)
            elif action in ("approve", "reject"):
                done = workflows.decide_approval(conn, run_id, step, now, actor=actor,
                                                 approve=action == "approve")
            else:
                raise ValueError(f"unknown step control {action!r}")
            return workflow_run_store.get(conn, target), done

        run, admitted = await self.db.write(apply)
        await self._admitted(admitted)
        return run

    async def advance_workflows(self) -> None:
        """Decide again for every active workflow run, each in its own transaction: after a
        restart, whatever had not been applied is applied now (and nothing twice)."""
        for run_id in await self.db.read(workflow_run_store.active_ids):
            try:
                admitted = await self.db.write(workflows.advance, run_id, self.clock())
            except Exception:
                log.exception("workflow run %s: could not decide what it does next", run_id,
                              extra={"workflow_run_id": run_id,
                                     "action": "workflow_advance_failed"})
                continue
            await self._admitted(admitted)

    async def _workflow_loop(self) -> None:
        """Time out approvals nobody answered, cancel workflow runs past their ``timeout``
        (``workflow_schedules.time_out``); now and then, decide again for every active workflow
        run (a decision that failed inside a run's end is taken here)."""
        last_sweep = self.clock()
        while True:
            await asyncio.sleep(1.0)
            if not self.dispatching:
                continue
            try:
                admitted = await self.db.write(workflows.time_out_approvals, self.clock())
                await self._admitted(admitted)
                await self._admitted(await self.db.write(workflow_schedules.time_out,
                                                         self.clock()))
                if (self.clock() - last_sweep).total_seconds() >= self.workflow_sweep:
                    last_sweep = self.clock()
                    await self.advance_workflows()
            except Exception:
                log.exception("workflow upkeep failed; trying again in a second",
                              extra={"action": "workflow_upkeep_failed"})

    async def release_lock(self, namespace: str, name: str, run_id: int) -> list[Run]:
        """Take lock ``name`` from run ``run_id`` (which goes on) and let its next waiters in,
        in one transaction; answers the runs let in."""
        granted = await self.db.write(
            lock_store.force_release, namespace, name, run_id, self.clock()
        )
        await self._admitted(Admitted(created=granted))
        return granted

    def logs_of(self, run: Run) -> LogStore:
        """Where the run's logs are: this server's data folder, or the folder of the server
        that started it when this one took the run over (its handle names it)."""
        folder = self._data_dir_of(run.handle or {})
        return self.logs if folder == self.data_dir else LogStore(folder)

    def _data_dir_of(self, handle: Handle) -> Path:
        """The data folder of the server that started a run (its working folder is there):
        this one's, or the one the handle's log folder is in when the run was taken over."""
        log_dir = handle.get("log_dir")
        if isinstance(log_dir, str):
            return Path(log_dir).parent.parent
        return self.data_dir

    def _folders_of(self, run: Run) -> list[Path]:
        """A run's log and working folders, for history pruning."""
        handle = run.handle or {}
        return [self.logs_of(run).run_dir(run.id), outputs.work_dir(self._data_dir_of(handle),
                                                                    run.id)]

    async def _prune_loop(self) -> None:
        """Prune history now and then; several servers may: deleting twice is harmless."""
        while True:
            await asyncio.sleep(self.prune_every)
            if not self.dispatching:
                continue
            try:
                await self.pruner.prune()
            except Exception:
                log.exception("history pruning failed; trying again later",
                              extra={"action": "prune_failed"})

    def jobs_changed(self) -> None:
        """A job was created or edited: its next slot may come sooner than the scheduler
        thought."""
        self._schedule_changed.set()

    def workflows_changed(self) -> None:
        """A workflow was created, edited, enabled or disabled: as ``jobs_changed``."""
        self._schedule_changed.set()

    async def _admitted(self, admitted: Admitted) -> None:
        """After a commit: wake the dispatcher for new READY runs, and stop replaced runs."""
        if admitted.ready:
            self._wake.set()
        for run in admitted.stop:
            if run.handle is not None:
                self._spawn_run_task(run.id, self._stop(run, force=run.cancel_force))

    async def _end(self, fn: Callable[..., Run], run_id: int, **fields: Any) -> Run:
        """End a run this server owns (``run_store.finish`` or ``fail``) and, in the same
        transaction, retry it or let its job's queue move (``admission.after_end``)."""

        mask = self._maskers.pop(run_id, None)
        if mask and isinstance(fields.get("error"), str):
            fields["error"] = mask.text(fields["error"])

        def end(conn: Any) -> tuple[Run, Admitted, tuple[list[Run], set[int]]]:
            now = self.clock()
            run = fn(conn, run_id, owner=self.owner, epoch=self.epoch, now=now, **fields)
            more = admission.after_end(conn, run, now)
            return run, more, self._take(conn, more, now)

        run, more, (taken, with_files) = await self.db.write(end)
        await self._admitted(more)
        for claimed in taken:
            self._spawn_run_task(claimed.id, self._launch(claimed, claimed.id in with_files))
        return run

    def _take(self, conn: Any, admitted: Admitted, now: datetime) -> tuple[list[Run], set[int]]:
        """Claim, in the transaction that made them READY, the runs an end let go (a retry
        due now, a queued run, a workflow's next steps): they start without waiting for the
        dispatcher's own claim. Those taken leave ``admitted`` (nobody need be woken)."""
        if not self.dispatching:
            return [], set()
        due = now + LEAD
        ids = [r.id for r in admitted.created if r.status is RunStatus.READY
               and (r.not_before is None or r.not_before <= due)][: self.dispatch_batch]
        if not ids:
            return [], set()
        taken, with_files = _with_files(
            conn, run_store.claim(conn, self.owner, ids, epoch=self.epoch)
        )
        gone = {r.id for r in taken}
        admitted.created = [r for r in admitted.created if r.id not in gone]
        return taken, with_files

    async def retry(self, run_id: int, *, submitter: str | None = None) -> Run:
        """Resubmit an ended run as a new run of its job: same params and env, ``attempt + 1``,
        linked by ``parent_id``. The ended run stays as it was."""

        def create(conn: Any) -> Admitted:
            old = run_store.get(conn, run_id)
            if not old.status.terminal:
                raise Conflict(
                    f"run {run_id} is still {old.status.value}; only an ended run can be retried"
                )
            if old.workflow_run_id is not None:
                raise Conflict(
                    f"run {run_id} is step {old.step!r} of workflow run {old.workflow_run_id}; "
                    f"retry it there: POST /api/v1/workflow-runs/{old.workflow_run_id}/steps/"
                    f"{old.step}/retry"
                )
            if old.job_id is None:
                raise Conflict(f"the job of run {run_id} ({old.job_ref}) has been deleted")
            job = job_store.get(conn, str(old.job_id))
            kept = {k: v for k, v in old.params.items() if k in job.spec.params}
            return admission.admit(
                conn, job, params=merge_params(job.spec.params, kept), env=old.env,
                trigger=Trigger.RETRY, attempt=old.attempt + 1, parent_id=old.id,
                scheduled_for=old.scheduled_for, submitter=submitter, now=self.clock(),
                by_person=True, upstream_run_id=old.upstream_run_id,
            )

        admitted = await self.db.write(create)
        await self._admitted(admitted)
        return admitted.created[0]

    # Dispatch --------------------------------------------------------------------------------

    async def _dispatch_loop(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=1.0)
            except TimeoutError:
                pass  # also look now and then: another face may have written READY runs
            self._wake.clear()
            if not self.dispatching:
                continue
            try:
                while True:
                    claimed, with_files = await self.db.write(
                        _claim, self.owner, self.dispatch_batch, epoch=self.epoch,
                        now=self.clock() + LEAD,
                    )
                    for run in claimed:
                        self._spawn_run_task(run.id, self._launch(run, run.id in with_files))
                    if len(claimed) < self.dispatch_batch:
                        break
            except Exception:  # the store is down: READY runs wait there, nothing is lost
                log.exception("dispatch failed; trying again in a second",
                              extra={"action": "dispatch_failed"})

    async def _launch(self, run: Run, has_files: bool = False) -> None:
        mask = values.NO_MASK
        try:
            spec = JobSpec.from_dict(run.spec)
            used = await values.load(self.db, self.secret_keys, spec)
            mask = values.masker(used)
            self._maskers[run.id] = mask  # NO_MASK too: its end need not look again
            upstream = (await self.db.read(upstream_of, run)  # a job chain's upstream run
                        if run.upstream_run_id is not None else None)
            context = build_context(run, self.data_dir, self.logs, used, tuple(mask.strings),
                                    spec=spec, upstream=upstream)
            argv = await self.workspace.stage(run, spec, context.work_dir, has_files=has_files)
            if argv is not None:  # a script: its entry point may be the bundle's own
                context = dataclasses.replace(context, argv=argv)
            backend = await self.backend(run.backend)
            if run.not_before is not None:  # claimed ahead of its slot: start it on the dot
                wait = (run.not_before - self.clock()).total_seconds()
                if wait > 0:
                    await backend.prepare(context)
                    await asyncio.sleep((run.not_before - self.clock()).total_seconds())
            # Without a live lease another server may take this run over and start it (it
            # finds it never started): wait for the lease to come back, or leave it if fenced.
            while not self.dispatching:
                if self._fenced:
                    log.warning("run %s left to the server that took over", run.id,
                                extra={"run_id": run.id, "action": "lease_lost"})
                    self._maskers.pop(run.id, None)
                    return
                await asyncio.sleep(0.1)
            handle = await backend.start(context)
        except (HerderError, OSError) as exc:
            message = mask.text(exc.message if isinstance(exc, HerderError) else str(exc))
            await self._end(run_store.fail, run.id, error=message)
            log.info("run %s could not start: %s", run.id, message,
                     extra={"run_id": run.id, "action": "run_failed_to_start"})
            return
        now = self.clock()
        timeout = run.spec.get("timeout") or self.default_timeout
        deadline = now + timedelta(seconds=timeout) if timeout else None
        run = await self.db.write(
            run_store.set_status, run.id, RunStatus.RUNNING, owner=self.owner, epoch=self.epoch,
            started_at=now, handle=handle, deadline_at=deadline,
        )
        if run.cancel_requested_at is not None:  # cancelled while it was being started
            await self._stop(run, force=run.cancel_force)
        self._add_deadline(run)
        await self._follow(run, backend, handle)

    async def _follow(self, run: Run, backend: Backend, handle: Handle) -> None:
        """Wait for the run's end as its backend reports it, and write the terminal status."""
        try:
            async for event in backend.watch(run.id, handle):
                if isinstance(event, Running) and run.status is RunStatus.IN_DOUBT:
                    run = await self.db.write(
                        run_store.set_status, run.id, RunStatus.RUNNING, owner=self.owner,
                        epoch=self.epoch,
                    )
                    self._add_deadline(run)
                elif isinstance(event, Exited):
                    # Read before the end's transaction, on a thread: the writer never waits on
                    # a run's disk, and the end and the outputs are committed together.
                    mask = self._maskers.get(run.id)
                    if mask is None:  # found again after a restart or a takeover
                        mask = await values.masker_for(self.db, self.secret_keys, run)
                    published = await asyncio.to_thread(
                        outputs.read, self._data_dir_of(handle), run.id, mask
                    )
                    await self._end(
                        run_store.finish, run.id, exit_code=event.exit_code, signal=event.signal,
                        outputs=published,
                    )
                    return
        except RunLost as exc:
            if run.handle is None and run.status is RunStatus.IN_DOUBT:
                # Claimed, but its start never reached the backend: dispatch it again.
                await self.db.write(
                    run_store.set_status, run.id, RunStatus.READY, owner=self.owner,
                    epoch=self.epoch, owner_epoch=None,
                )
                self._wake.set()
                return
            await self._end(run_store.fail, run.id, error=exc.message)
            return
        await self._end(  # a watch that ends without an exit is a backend bug
            run_store.fail, run.id,
            error="the backend stopped reporting on this run without an exit status",
        )

    async def _stop(self, run: Run, *, force: bool) -> None:
        if run.handle is None:
            return
        backend = await self.backend(run.backend)
        grace = 0.0 if force else self.kill_grace
        await backend.cancel(run.id, run.handle, force=force, grace=grace)

    # Timeouts --------------------------------------------------------------------------------

    def _add_deadline(self, run: Run) -> None:
        if run.deadline_at is not None:
            heapq.heappush(self._deadlines, (run.deadline_at, run.id))
            self._deadline_changed.set()

    async def _deadline_loop(self) -> None:
        while True:
            self._deadline_changed.clear()
            if not self._deadlines:
                await self._deadline_changed.wait()
                continue
            when, run_id = self._deadlines[0]
            delay = (when - self.clock()).total_seconds()
            if delay > 0:
                try:
                    await asyncio.wait_for(self._deadline_changed.wait(), timeout=delay)
                except TimeoutError:
                    pass
                continue
            try:
                marked = await self.db.write(run_store.mark_stopping, run_id, StopReason.TIMEOUT)
                run = await self.db.read(run_store.get, run_id)
                # Also when an earlier attempt marked it but could not reach the backend.
                if marked or (run.status in LAUNCHED and run.stop_reason is StopReason.TIMEOUT):
                    log.info("run %s reached its timeout", run_id,
                             extra={"run_id": run_id, "action": "run_timeout"})
                    await self._stop(run, force=False)
            except Exception:  # try again shortly: a missed deadline must not be forgotten
                log.exception("run %s: could not stop it at its timeout", run_id,
                              extra={"run_id": run_id, "action": "timeout_failed"})
                heapq.heapreplace(self._deadlines, (self.clock() + timedelta(seconds=1), run_id))
                continue
            heapq.heappop(self._deadlines)

    # Restart ---------------------------------------------------------------------------------

    async def reconcile(self) -> None:
        """Find again every launched run this server owned before it stopped."""
        for run in await self.db.read(run_store.owned_active, self.owner):
            try:
                doubted = await self.db.write(
                    run_store.set_status, run.id, RunStatus.IN_DOUBT, owner=self.owner,
                    owner_epoch=self.epoch,
                )
            except HerderError:
                continue  # taken over by another server meanwhile
            log.info("run %s in doubt after a restart; reconciling", run.id,
                     extra={"run_id": run.id, "action": "run_reconcile"})
            await self._reattach(doubted, self.data_dir, socket.gethostname())

    async def _reattach(self, run: Run, data_dir: Path, host: str) -> None:
        """Follow an IN_DOUBT run again through its backend. A run without a handle never
        told where it started: its backend is asked where the server that claimed it
        (``data_dir`` on ``host``) would have started it."""
        try:
            backend = await self.backend(run.backend)
        except (BackendError, InvalidSpec) as exc:
            await self._end(run_store.fail, run.id, error=f"lost: {exc.message}")
            return
        handle = run.handle
        if handle is None:
            handle = {
                "log_dir": str(LogStore(data_dir).run_dir(run.id)),
                "supervisor": str(data_dir),
                "host": host,
            }
            # Kept on the run, so that its logs are found where it ran if it did start; the run
            # object followed keeps no handle: "never started" is still told apart.
            await self.db.write(
                run_store.set_handle, run.id, handle, owner=self.owner, epoch=self.epoch
            )
        self._spawn_run_task(run.id, self._follow(run, backend, handle))

    # Leases ----------------------------------------------------------------------------------

    @property
    def dispatching(self) -> bool:
        """Whether this server may claim runs and plan slots: it holds a live lease."""
        return (
            not self._fenced
            and self._lease_until is not None
            and self.clock() < self._lease_until
        )

    async def _lease_loop(self) -> None:
        """Renew the lease every third of its length; take over servers whose lease ran out."""
        while not self._fenced:
            await asyncio.sleep(self.lease_ttl / 3)
            now = self.clock()
            try:
                renewed = await self.db.write(
                    server_store.renew, self.owner, self.epoch, now, self.lease_ttl
                )
            except Exception:  # the store is unreachable: dispatching stops when the lease ends
                log.warning("could not renew this server's lease", exc_info=True,
                            extra={"action": "lease_renew_failed"})
                continue
            if not renewed:
                self._fenced = True
                log.error("this server was declared dead and its runs taken over by another; "
                          "it no longer dispatches or schedules. Restart it.",
                          extra={"action": "fenced"})
                return
            self._lease_until = now + timedelta(seconds=self.lease_ttl)
            await self._take_over_expired(now)

    async def _take_over_expired(self, now: datetime) -> None:
        try:
            dead = await self.db.read(server_store.expired_with_runs, now)
        except Exception:
            log.warning("could not look for dead servers", exc_info=True)
            return
        for server in dead:
            await self._take_over(server, now)

    async def _take_over(self, dead: Server, now: datetime) -> None:
        runs = await self.db.write(
            server_store.take_over, dead, server_id=self.owner, epoch=self.epoch, now=now
        )
        if runs:
            log.warning("server %s stopped renewing its lease at %s; took over its %d runs",
                        dead.id, dead.lease_until.isoformat(), len(runs),
                        extra={"action": "take_over", "server": dead.id})
        for run in runs:
            await self._reattach(run, Path(dead.data_dir), dead.host)

    # Schedules -------------------------------------------------------------------------------

    async def _schedule_loop(self) -> None:
        """Sleep until a slot is to be planned (or a held-back run may go), then tick.

        It looks again at least every second: other servers and faces change jobs too."""
        while True:
            self._schedule_changed.clear()
            now = self.clock()
            wake = now + timedelta(seconds=1)
            held = locked = None
            try:
                plan, held, locked = await self.db.read(_next_times, now)
                if plan is not None and plan <= now and self.dispatching:
                    ticked = await self.db.write(scheduler.tick, now)
                    await self._admitted(ticked.admitted)
                    planned = await self.db.write(workflow_schedules.tick, now)
                    await self._admitted(planned.admitted)
                    continue  # look again at once: more may be due, or due meanwhile
                wake = min(t for t in (wake, plan, held and held - LEAD, locked)
                           if t is not None)
            except Exception:
                log.exception("scheduling failed; trying again in a second",
                              extra={"action": "schedule_failed"})
            delay = (wake - self.clock()).total_seconds()
            if delay > 0:
                try:
                    await asyncio.wait_for(self._schedule_changed.wait(), timeout=delay)
                except TimeoutError:
                    pass
            if held is not None and held <= self.clock() + LEAD:
                self._wake.set()
            if locked is not None and locked <= self.clock() and self.dispatching:
                await self._grant_due()

    async def _grant_due(self) -> None:
        """Runs held back by ``not_before`` join their locks' queues at that moment."""
        try:
            granted = await self.db.write(lock_store.grant_due, self.clock())
        except Exception:  # the next run end in the namespace, or the next start, lets them in
            log.exception("could not let runs in to their locks",
                          extra={"action": "lock_grant_failed"})
            return
        await self._admitted(Admitted(created=granted))


def _claim(
    conn: Any, owner: str, limit: int, *, epoch: int, now: datetime
) -> tuple[list[Run], set[int]]:
    """Claim READY runs, and say which have input files, in one transaction (a read after
    it would cost each run's start another trip through a thread)."""
    return _with_files(conn, run_store.claim_ready(conn, owner, limit, epoch=epoch, now=now))


def _with_files(conn: Any, claimed: list[Run]) -> tuple[list[Run], set[int]]:
    return claimed, file_store.runs_with_files(conn, [run.id for run in claimed])


def _next_times(
    conn: Any, now: datetime
) -> tuple[datetime | None, datetime | None, datetime | None]:
    """When a job or a workflow has a slot to plan next, when the next held-back READY run may
    go, and when the next held-back run waiting for locks joins their queues."""
    plans = [t for t in (job_store.next_plan(conn), workflow_schedules.next_plan(conn))
             if t is not None]
    return (
        min(plans, default=None), run_store.next_not_before(conn, now),
        lock_store.next_due(conn, now),
    )
