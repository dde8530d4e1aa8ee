"""Runs as local processes that outlive the server.

The processes are children of the data folder's supervisor (``herder.supervisor``), not of the
server: a server killed with SIGKILL leaves them running, and once restarted it learns from the
supervisor (which journals every end in ``DATA_DIR/exits.jsonl``) how each one ended, with
complete logs.

The handle is ``{"pid": int | None, "log_dir": str, "supervisor": str, "host": str}``:
``log_dir`` (absolute) is where its logs are; ``pid`` (also the process group id) is for people
reading the run and for killing an orphan; ``supervisor`` (absolute) is the data folder whose
supervisor spawned it and ``host`` the machine, so that another server on the same machine (with
another data folder) can take the run over: it attaches to that folder's supervisor without ever
starting one there, and once that supervisor is gone, reads the run's end from that folder's
exit journal. A handle without these two keys (written before they existed) means this
backend's own supervisor.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar

from herder.backends.base import BackendEvent, Exited, Handle, RunContext, Running
from herder.model.errors import BackendError, RunLost
from herder.supervisor import records
from herder.supervisor.client import SupervisorClient, SupervisorGone
from herder.supervisor.protocol import EXIT_JOURNAL, SYNC_ENV


def _absolute(path: Path) -> str:
    # The supervisor's working folder is "/": relative paths would land there. (No I/O here
    # beyond getcwd, which never blocks, hence a plain function.)
    return os.path.abspath(path)


_Version = tuple[int, int, int] | None  # a journal's inode, size and mtime (None: no journal)


def _journal_version(path: str) -> _Version:
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return None
    return found.st_ino, found.st_size, found.st_mtime_ns


class LocalBackend:
    """The ``local`` backend: a connection to its own data folder's supervisor, and one to the
    supervisor of each other folder whose runs it was handed (opened when first needed)."""

    name: ClassVar[str] = "local"

    def __init__(
        self, *, data_dir: Path, sync_exit_records: bool = False, **_ignored: Any
    ) -> None:
        self.data_dir = Path(data_dir).absolute()
        # Read by a supervisor this backend starts; one already running keeps its own.
        settings = {SYNC_ENV: "1" if sync_exit_records else "0"}
        self._client = SupervisorClient(self.data_dir, settings=settings)
        self._prepared: set[int] = set()  # runs whose folders exist, until they start
        self._home = os.path.abspath(self.data_dir)
        self._host = socket.gethostname()
        self._foreign: dict[str, SupervisorClient] = {}
        # The ends in other folders' journals, with the journal version they were read from.
        self._journals: dict[str, tuple[_Version, dict[object, records.Outcome]]] = {}
        self._journal_lock = asyncio.Lock()
        self._closed = False

    @property
    def supervisor_pid(self) -> int | None:
        """The pid of the supervisor this backend talks to (known once open)."""
        return self._client.supervisor_pid

    async def open(self) -> None:
        """Connect to the supervisor, starting it if nobody answers."""
        await self._client.open()

    async def close(self) -> None:
        """Disconnect; the supervisors keep running runs going and record how they end."""
        self._closed = True
        clients = [self._client, *self._foreign.values()]
        self._foreign.clear()
        self._journals.clear()
        await asyncio.gather(*(client.close() for client in clients))

    async def prepare(self, run: RunContext) -> None:
        """Make the run's working folder ahead of its start."""
        work_dir = _absolute(run.work_dir)
        # Creating a folder waits on the disk (a millisecond and more on a busy one): done on a
        # thread, several runs' folders are made at once while both event loops go on.
        try:
            await asyncio.to_thread(os.makedirs, work_dir, 0o700, True)
        except OSError as exc:
            raise BackendError(
                f"cannot create working folder {work_dir!r} ({exc.strerror or exc})"
            ) from exc
        self._prepared.add(run.run_id)

    async def start(self, run: RunContext) -> Handle:
        """Spawn the run through the supervisor; ``BackendError`` says why it could not."""
        log_dir = _absolute(run.log_dir)
        work_dir = _absolute(run.work_dir)
        if run.run_id not in self._prepared:
            await self.prepare(run)
        self._prepared.discard(run.run_id)
        pid = await self._client.spawn(
            run.run_id,
            argv=list(run.argv),
            env=dict(run.env),
            cwd=work_dir,
            log_dir=log_dir,
            mask=list(run.masks),
        )
        return {"pid": pid, "log_dir": log_dir, "supervisor": self._home, "host": self._host}

    async def watch(self, run_id: int, handle: Handle) -> AsyncIterator[BackendEvent]:
        """``Running`` while the run is alive, then its ``Exited``; ``RunLost`` when the
        supervisor knows nothing of it, or (another folder's) is gone without journaling its
        end, or the run is on another host."""
        client, folder = self._client_for(run_id, handle)
        log_dir = handle.get("log_dir")
        log_dir = log_dir if isinstance(log_dir, str) else None
        try:
            async with contextlib.aclosing(client.follow(run_id, log_dir)) as answers:
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
                            f"the supervisor of {folder} has no trace of run {run_id} (it is not "
                            f"running and has no exit record: {where}); its exit code cannot be "
                            f"known" + _killed(killed)
                        )
                    elif answer.get("gone"):  # (only another folder's: ours is restarted)
                        raise SupervisorGone(str(answer.get("error")))
                    else:
                        raise BackendError(str(answer.get("error", f"lost track of run {run_id}")))
        except SupervisorGone:
            # It journals an end before telling anyone: its journal has the last word.
            yield await self._journaled_end(run_id, handle, folder)

    async def cancel(self, run_id: int, handle: Handle, *, force: bool, grace: float) -> None:
        """SIGTERM the run's process group, SIGKILL after ``grace`` s (``force``: at once)."""
        client, _ = self._client_for(run_id, handle)
        try:
            await client.kill(run_id, 0.0 if force else max(0.0, grace))
        except SupervisorGone:
            # Another folder's supervisor is gone: nobody else can stop what is left of the run.
            _kill_orphan(run_id, handle.get("pid"))

    def _client_for(self, run_id: int, handle: Handle) -> tuple[SupervisorClient, str]:
        """The client of the supervisor that spawned the run, and that supervisor's folder."""
        host = handle.get("host", self._host)
        if host != self._host:
            raise RunLost(
                f"run {run_id} was started by the local backend on host {host}; only a server "
                "on that host can follow it"
            )
        folder = handle.get("supervisor", self._home)
        if not isinstance(folder, str) or not os.path.isabs(folder):
            raise RunLost(f"run {run_id} has a broken handle: supervisor folder {folder!r}")
        folder = os.path.normpath(folder)
        if folder == self._home:
            return self._client, folder
        if self._closed:
            raise BackendError("the local backend is closed")
        client = self._foreign.get(folder)
        if client is None:
            client = self._foreign[folder] = SupervisorClient(
                Path(folder), start_if_missing=False
            )
        return client, folder

    async def _journaled_end(self, run_id: int, handle: Handle, folder: str) -> Exited:
        """The end of a run of another folder whose supervisor is gone, from its journal."""
        path = os.path.join(folder, EXIT_JOURNAL)
        found = (await self._journal_ends(path)).get(run_id)
        if found is not None:
            return Exited(exit_code=found.exit_code, signal=found.signal)
        killed = _kill_orphan(run_id, handle.get("pid"))
        raise RunLost(
            f"run {run_id} was started by the supervisor of {folder}, which is not running, "
            f"and {path} holds no end for it; its exit code cannot be known" + _killed(killed)
        )

    async def _journal_ends(self, path: str) -> dict[object, records.Outcome]:
        # After a takeover every run of a gone supervisor lands here at once: read its journal
        # (up to records.COMPACT_LINES lines) once, and again only when it has changed.
        async with self._journal_lock:
            version = await asyncio.to_thread(_journal_version, path)
            known = self._journals.get(path)
            if known is None or known[0] != version:
                # Not compacted: the journal is not ours to rewrite.
                ends = await asyncio.to_thread(records.load, path, compact=False)
                known = self._journals[path] = (version, ends)
            return known[1]


def _killed(pgid: int | None) -> str:
    return f"; its leftover process group {pgid} was killed" if pgid else ""


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
