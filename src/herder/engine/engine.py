"""The engine: READY runs to backends, process ends to terminal statuses, and nothing lost
across a restart.

Life of a run here: ``submit`` writes it READY and wakes the dispatcher; the dispatcher claims
READY runs in batches (READY -> JOB_DEPLOYED, owned by this server), starts each on its backend
(-> RUNNING, with the backend's handle stored) and follows it until its process ends (-> a
terminal status). Timeouts and cancels only *ask* the backend to stop the process; the terminal
status is written when the backend reports the end, so logs and exit codes are always complete.

After a restart, ``reconcile`` puts every launched run this server owns IN_DOUBT and asks its
backend again; the backend either re-attaches (-> RUNNING), reports how it ended, or has lost it
(-> PROC_ERROR with the reason). No run stays non-terminal forever.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from herder.backends import base as backends
from herder.backends.base import Backend, Exited, Handle, Running
from herder.engine.launch import build_context
from herder.logs import LogStore
from herder.model.errors import BackendError, Conflict, HerderError, InvalidSpec, RunLost
from herder.model.jobs import check_env, merge_params
from herder.model.runs import LAUNCHED, Run, RunStatus, StopReason, Trigger
from herder.store import jobs as job_store
from herder.store import runs as run_store
from herder.store.database import Database

log = logging.getLogger(__name__)


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
        dispatch_batch: int = 64,
        backend_settings: dict[str, Any] | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.data_dir = data_dir
        self.owner = owner
        self.logs = LogStore(data_dir)
        self.kill_grace = kill_grace
        self.default_timeout = default_timeout
        self.dispatch_batch = dispatch_batch
        self.backend_settings = backend_settings or {}
        self.clock = clock
        self._backends: dict[str, asyncio.Future[Backend]] = {}
        self._wake = asyncio.Event()
        self._deadlines: list[tuple[datetime, int]] = []
        self._deadline_changed = asyncio.Event()
        self._tasks: asyncio.TaskGroup | None = None
        self.ready = asyncio.Event()

    # Life ------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Reconcile, then dispatch and watch deadlines until cancelled. Every task the engine
        starts lives in this task group."""
        try:
            async with asyncio.TaskGroup() as tasks:
                self._tasks = tasks
                await self.reconcile()
                tasks.create_task(self._dispatch_loop(), name="herder-dispatch")
                tasks.create_task(self._deadline_loop(), name="herder-deadlines")
                self.ready.set()
        finally:
            self._tasks = None
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
                await self.db.write(
                    run_store.fail, run_id, owner=self.owner, now=self.clock(),
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
    ) -> Run:
        """Create a READY run of job ``ref`` and wake the dispatcher. Bad input changes nothing."""
        overrides = check_env(env or {}, allow_reserved=False)

        def create(conn: Any) -> Run:
            job = job_store.get(conn, ref)
            merged = merge_params(job.spec.params, params or {})
            return run_store.create(
                conn, job=job, params=merged, env=overrides, trigger=trigger,
                submitter=submitter, now=self.clock(),
            )

        run = await self.db.write(create)
        self._wake.set()
        return run

    async def cancel(self, run_id: int, *, force: bool = False) -> Run:
        """Ask a run to stop; the terminal ABORTED follows once its process is gone."""
        run = await self.db.write(run_store.request_cancel, run_id, force=force, now=self.clock())
        if run.handle is not None and run.status in LAUNCHED:
            await self._stop(run, force=run.cancel_force)
        return run

    async def retry(self, run_id: int, *, submitter: str | None = None) -> Run:
        """Resubmit an ended run as a new run of its job: same params and env, ``attempt + 1``,
        linked by ``parent_id``. The ended run stays as it was."""

        def create(conn: Any) -> Run:
            old = run_store.get(conn, run_id)
            if not old.status.terminal:
                raise Conflict(
                    f"run {run_id} is still {old.status.value}; only an ended run can be retried"
                )
            if old.job_id is None:
                raise Conflict(f"the job of run {run_id} ({old.job_ref}) has been deleted")
            job = job_store.get(conn, str(old.job_id))
            kept = {k: v for k, v in old.params.items() if k in job.spec.params}
            return run_store.create(
                conn, job=job, params=merge_params(job.spec.params, kept), env=old.env,
                trigger=Trigger.RETRY, attempt=old.attempt + 1, parent_id=old.id,
                scheduled_for=old.scheduled_for, submitter=submitter, now=self.clock(),
            )

        run = await self.db.write(create)
        self._wake.set()
        return run

    # Dispatch --------------------------------------------------------------------------------

    async def _dispatch_loop(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=1.0)
            except TimeoutError:
                pass  # also look now and then: another face may have written READY runs
            self._wake.clear()
            try:
                while True:
                    claimed = await self.db.write(
                        run_store.claim_ready, self.owner, self.dispatch_batch
                    )
                    for run in claimed:
                        self._spawn_run_task(run.id, self._launch(run))
                    if len(claimed) < self.dispatch_batch:
                        break
            except Exception:  # the store is down: READY runs wait there, nothing is lost
                log.exception("dispatch failed; trying again in a second",
                              extra={"action": "dispatch_failed"})

    async def _launch(self, run: Run) -> None:
        try:
            context = build_context(run, self.data_dir, self.logs)
            backend = await self.backend(run.backend)
            handle = await backend.start(context)
        except (BackendError, InvalidSpec, OSError) as exc:
            message = exc.message if isinstance(exc, HerderError) else str(exc)
            await self.db.write(
                run_store.fail, run.id, owner=self.owner, error=message, now=self.clock()
            )
            log.info("run %s could not start: %s", run.id, message,
                     extra={"run_id": run.id, "action": "run_failed_to_start"})
            return
        now = self.clock()
        timeout = run.spec.get("timeout") or self.default_timeout
        deadline = now + timedelta(seconds=timeout) if timeout else None
        run = await self.db.write(
            run_store.set_status, run.id, RunStatus.RUNNING, owner=self.owner,
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
                        run_store.set_status, run.id, RunStatus.RUNNING, owner=self.owner
                    )
                    self._add_deadline(run)
                elif isinstance(event, Exited):
                    await self.db.write(
                        run_store.finish, run.id, owner=self.owner, exit_code=event.exit_code,
                        signal=event.signal, now=self.clock(),
                    )
                    return
        except RunLost as exc:
            await self.db.write(
                run_store.fail, run.id, owner=self.owner, error=exc.message, now=self.clock()
            )
            return
        await self.db.write(  # a watch that ends without an exit is a backend bug
            run_store.fail, run.id, owner=self.owner, now=self.clock(),
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
                backend = await self.backend(run.backend)
            except (BackendError, InvalidSpec) as exc:
                await self.db.write(
                    run_store.fail, run.id, owner=self.owner, now=self.clock(),
                    error=f"lost when the server restarted: {exc.message}",
                )
                continue
            doubted = await self.db.write(
                run_store.set_status, run.id, RunStatus.IN_DOUBT, owner=self.owner
            )
            handle = run.handle or {"log_dir": str(self.logs.run_dir(run.id))}
            log.info("run %s in doubt after a restart; reconciling", run.id,
                     extra={"run_id": run.id, "action": "run_reconcile"})
            self._spawn_run_task(run.id, self._follow(doubted, backend, handle))
