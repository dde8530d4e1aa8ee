"""Runs as local processes that outlive the server.

The processes are children of the data folder's supervisor (``herder.supervisor``), not of the
server: a server killed with SIGKILL leaves them running, and once restarted it learns from the
supervisor (which journals every end in ``DATA_DIR/exits.jsonl``) how each one ended, with
complete logs.

The handle is ``{"pid": int | None, "log_dir": str}``: ``log_dir`` (absolute) is where
its logs are; ``pid`` (also the process group id) is for
people reading the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar

from herder.backends.base import BackendEvent, Exited, Handle, RunContext, Running
from herder.model.errors import BackendError, RunLost
from herder.supervisor.client import SupervisorClient
from herder.supervisor.protocol import SYNC_ENV


def _absolute(path: Path) -> str:
    # The supervisor's working folder is "/": relative paths would land there. (No I/O here
    # beyond getcwd, which never blocks, hence a plain function.)
    return os.path.abspath(path)


class LocalBackend:
    """The ``local`` backend: one supervisor connection per instance."""

    name: ClassVar[str] = "local"

    def __init__(
        self, *, data_dir: Path, sync_exit_records: bool = False, **_ignored: Any
    ) -> None:
        self.data_dir = Path(data_dir).absolute()
        # Read by a supervisor this backend starts; one already running keeps its own.
        settings = {SYNC_ENV: "1" if sync_exit_records else "0"}
        self._client = SupervisorClient(self.data_dir, settings=settings)

    @property
    def supervisor_pid(self) -> int | None:
        """The pid of the supervisor this backend talks to (known once open)."""
        return self._client.supervisor_pid

    async def open(self) -> None:
        """Connect to the supervisor, starting it if nobody answers."""
        await self._client.open()

    async def close(self) -> None:
        """Disconnect; the supervisor keeps running runs going and records how they end."""
        await self._client.close()

    async def start(self, run: RunContext) -> Handle:
        """Spawn the run through the supervisor; ``BackendError`` says why it could not."""
        log_dir = _absolute(run.log_dir)
        work_dir = _absolute(run.work_dir)
        # Creating a folder waits on the disk (a millisecond and more on a busy one): done on a
        # thread, several runs' folders are made at once while both event loops go on.
        try:
            await asyncio.to_thread(os.makedirs, work_dir, 0o700, True)
        except OSError as exc:
            raise BackendError(
                f"cannot create working folder {work_dir!r} ({exc.strerror or exc})"
            ) from exc
        pid = await self._client.spawn(
            run.run_id,
            argv=list(run.argv),
            env=dict(run.env),
            cwd=work_dir,
            log_dir=log_dir,
        )
        return {"pid": pid, "log_dir": log_dir}

    async def watch(self, run_id: int, handle: Handle) -> AsyncIterator[BackendEvent]:
        """``Running`` while the run is alive, then its ``Exited``; ``RunLost`` when the
        supervisor knows nothing of it."""
        log_dir = handle.get("log_dir")
        log_dir = log_dir if isinstance(log_dir, str) else None
        async with contextlib.aclosing(self._client.follow(run_id, log_dir)) as answers:
            async for answer in answers:
                op = answer["op"]
                if op == "running":
                    yield Running()
                elif op == "exited":
                    yield Exited(exit_code=answer.get("exit_code"), signal=answer.get("signal"))
                    return
                elif op == "unknown":
                    where = "no log folder in its handle" if log_dir is None else log_dir
                    killed = _kill_orphan(run_id, handle.get("pid"))
                    raise RunLost(
                        f"the supervisor has no trace of run {run_id} (it is not running and "
                        f"has no exit record: {where}); its exit code cannot be known"
                        + (f"; its leftover process group {killed} was killed" if killed else "")
                    )
                else:
                    raise BackendError(str(answer.get("error", f"lost track of run {run_id}")))

    async def cancel(self, run_id: int, handle: Handle, *, force: bool, grace: float) -> None:
        """SIGTERM the run's process group, SIGKILL after ``grace`` s (``force``: at once)."""
        await self._client.kill(run_id, 0.0 if force else max(0.0, grace))


def _kill_orphan(run_id: int, pid: object) -> int | None:
    """A run whose supervisor died may still be running with nobody to report its end: kill
    its process group, if that pid is still this run's (its environment names the run)."""
    if not isinstance(pid, int) or pid <= 1:
        return None
    try:
        with open(f"/proc/{pid}/environ", "rb") as environ:
            mine = f"HERDER_RUN_ID={run_id}".encode() in environ.read().split(b"\0")
        if mine:
            os.killpg(pid, signal.SIGKILL)
            return pid
    except (OSError, ValueError):
        pass
    return None
