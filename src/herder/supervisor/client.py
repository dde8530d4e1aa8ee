"""herder's side of the supervisor protocol: one connection, shared by every run of a backend.

Replies and events are routed by run id to futures; nothing here blocks the server's loop. If
the connection drops while the server runs, the client reconnects (starting a supervisor if
needed), says hello again and re-sends ``watch`` for every run whose end it does not know yet,
and ``kill`` for every kill not yet confirmed: no event is lost, because the supervisor answers
a watch from memory or from its exit journal.

A client made with ``start_if_missing=False`` only attaches to a supervisor already running
(another server's data folder, taken over): when nobody answers it raises ``SupervisorGone``
and tells followers and killers so (``"gone": true`` on their ``lost`` message), so that the
caller can fall back on that folder's exit journal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from herder.model.errors import BackendError
from herder.supervisor import launch
from herder.supervisor.protocol import LineProtocol, Message, socket_path

logger = logging.getLogger(__name__)

# Ends that arrived for runs nobody follows yet are kept this many at most (the oldest is then
# forgotten; a later follow still gets the end, from the supervisor, one round trip later).
_UNCLAIMED = 10_000
_RETRY_PAUSE = 0.05


def _future() -> asyncio.Future[Message]:
    return asyncio.get_running_loop().create_future()


def _settle(future: asyncio.Future[Message] | None, message: Message) -> None:
    if future is not None and not future.done():
        future.set_result(message)


class SupervisorGone(BackendError):
    """Nobody answers on the socket of a folder whose supervisor the client may not start."""


@dataclass(eq=False, slots=True)
class _Run:
    """What the client knows of a run it started or follows."""

    log_dir: str | None
    answer: asyncio.Future[Message] = field(default_factory=_future)  # running | exited | ...
    outcome: asyncio.Future[Message] = field(default_factory=_future)  # exited | unknown | lost
    spawn: asyncio.Future[Message] | None = None  # until started or failed arrives
    followers: int = 0


class _Connection(LineProtocol):
    def __init__(self, client: SupervisorClient) -> None:
        super().__init__()
        self.client = client
        self.hello = _future()
        self.lost = _future()

    def message_received(self, message: Message) -> None:
        if message["op"] == "hello":
            _settle(self.hello, message)
        elif self.client.current is self:
            self.client.dispatch(message)

    def protocol_error(self, problem: str) -> None:
        logger.error("the supervisor sent %s; reconnecting", problem)
        super().protocol_error(problem)

    def connection_lost(self, exc: Exception | None) -> None:
        _settle(self.lost, {"op": "lost"})
        self.client.connection_lost(self)

    async def close(self) -> None:
        self.flush()
        if self.transport is not None:
            self.transport.close()
        await self.lost


class SupervisorClient:
    """A connection to the supervisor of ``data_dir`` and the runs it started or follows."""

    def __init__(
        self,
        data_dir: Path,
        *,
        timeout: float = 10.0,
        settings: Mapping[str, str] | None = None,
        start_if_missing: bool = True,
    ) -> None:
        self.data_dir = data_dir
        # False for another server's folder: starting a supervisor there would only answer
        # "unknown" for its runs, and would not be that server's to start.
        self.start_if_missing = start_if_missing
        self.settings = dict(settings or {})  # for a supervisor this client has to start
        self.timeout = timeout
        self.current: _Connection | None = None
        self.supervisor_pid: int | None = None
        self.features: frozenset[str] = frozenset()  # what the supervisor said it can do
        self._runs: dict[object, _Run] = {}
        self._unclaimed: OrderedDict[object, None] = OrderedDict()
        self._kills: dict[object, tuple[Message, list[asyncio.Future[Message]]]] = {}
        self._reconnecting: asyncio.Task[None] | None = None
        self._last_error = "not connected"
        self._gone = False  # the last connection attempt found no supervisor (attach only)
        self._closed = False

    async def open(self) -> None:
        """Connect (starting the supervisor if needed and allowed); ``BackendError`` if it
        never answers, ``SupervisorGone`` if none runs and none may be started."""
        await self._connect()

    async def close(self) -> None:
        """Say bye and let go; the supervisor keeps the runs going."""
        self._closed = True
        if self._reconnecting is not None:
            self._reconnecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconnecting
        connection, self.current = self.current, None
        if connection is not None:
            connection.send({"op": "bye"})
            await connection.close()
        self._fail_all("the local backend was closed")

    async def spawn(
        self,
        run_id: object,
        *,
        argv: list[str],
        env: dict[str, str],
        cwd: str,
        log_dir: str,
        make_cwd: bool = False,
        mask: list[str] | None = None,
    ) -> int | None:
        """Start a run; its pid, or ``BackendError`` with the supervisor's reason. ``mask``:
        strings the supervisor replaces by ``***`` in the run's logs."""
        connection = await self._connection()
        if mask and "mask" not in self.features:
            # A supervisor started by an older herder would write the secrets unmasked.
            raise BackendError(
                f"the supervisor of {self.data_dir} (pid {self.supervisor_pid}) was started by "
                "an older herder and cannot mask secrets in logs, so a run that uses secrets "
                "cannot start until it is replaced: stop it with SIGTERM (it waits for its "
                "runs to end, then the next run starts a new one), then retry the run"
            )
        known = self._runs.get(run_id)
        if known is not None and not known.outcome.done():
            raise BackendError(f"run {run_id} is already started or followed by this server")
        self._unclaimed.pop(run_id, None)
        run = _Run(log_dir, spawn=_future())
        self._runs[run_id] = run
        request = {"op": "spawn", "id": run_id, "argv": argv, "env": env, "cwd": cwd,
                   "log_dir": log_dir, "make_cwd": make_cwd}
        if mask:
            request["mask"] = mask
        connection.send(request)
        assert run.spawn is not None
        reply = await run.spawn
        if reply["op"] != "started":
            if self._runs.get(run_id) is run:
                del self._runs[run_id]
            raise BackendError(str(reply.get("error", f"run {run_id} did not start")))
        pid = reply.get("pid")
        return pid if isinstance(pid, int) else None

    async def follow(self, run_id: object, log_dir: str | None) -> AsyncGenerator[Message, None]:
        """The supervisor's word on a run: ``running`` (unless already ended), then one of
        ``exited``, ``unknown`` (no trace of it) or ``lost`` (no supervisor to ask)."""
        run = self._runs.get(run_id)
        if run is None:
            connection = await self._connection()
            run = self._runs[run_id] = _Run(log_dir)
            connection.send(self._watch_message(run_id, run))
        self._unclaimed.pop(run_id, None)
        run.followers += 1
        try:
            first = await run.answer
            if first["op"] != "running" or not run.outcome.done():
                yield first  # (a run whose end is already here needs no "running")
            if first["op"] == "running":
                yield await run.outcome
        finally:
            run.followers -= 1
            if not run.followers and run.outcome.done() and self._runs.get(run_id) is run:
                del self._runs[run_id]

    async def kill(self, run_id: object, grace: float) -> bool:
        """Ask for the run's process group to be stopped; whether it was running."""
        connection = await self._connection()
        message: Message = {"op": "kill", "id": run_id, "grace": grace}
        waiter = _future()
        earlier, waiters = self._kills.get(run_id, (message, []))
        # What a reconnect re-sends: the most urgent of the unconfirmed kills.
        urgent = message if grace < earlier["grace"] else earlier
        self._kills[run_id] = (urgent, [*waiters, waiter])
        connection.send(message)
        reply = await waiter
        if reply["op"] != "killed":
            error = SupervisorGone if reply.get("gone") else BackendError
            raise error(str(reply.get("error", "the kill was not confirmed")))
        return bool(reply.get("found"))

    # routing

    def dispatch(self, message: Message) -> None:
        """Route one reply or event from the current connection."""
        op, run_id = message["op"], message.get("id")
        if op == "killed":
            for waiter in self._kills.pop(run_id, (None, []))[1]:
                _settle(waiter, message)
            return
        if op == "error":
            logger.warning("the supervisor refused a request: %s", message.get("error"))
            return
        run = self._runs.get(run_id)
        if run is None:
            return  # an end nobody here waits for (a run followed and then forgotten)
        if op in ("started", "failed"):
            _settle(run.spawn, message)
            if op == "started":
                _settle(run.answer, {"op": "running", "id": run_id, "pid": message.get("pid")})
            return
        if run.spawn is not None and not run.spawn.done():
            # The reply to a watch re-sent after a reconnect settles a spawn left unanswered.
            if op == "unknown":
                error = f"the supervisor went away before confirming that run {run_id} started"
                _settle(run.spawn, {"op": "failed", "id": run_id, "error": error})
            else:
                _settle(run.spawn, {"op": "started", "id": run_id, "pid": message.get("pid")})
        _settle(run.answer, message)
        if op in ("exited", "unknown"):
            self._ended(run_id, run, message)

    def _ended(self, run_id: object, run: _Run, message: Message) -> None:
        _settle(run.outcome, message)
        if run.followers:
            return
        self._unclaimed[run_id] = None
        while len(self._unclaimed) > _UNCLAIMED:
            forgotten, _ = self._unclaimed.popitem(last=False)
            self._runs.pop(forgotten, None)

    @staticmethod
    def _watch_message(run_id: object, run: _Run) -> Message:
        message: Message = {"op": "watch", "id": run_id}
        if run.log_dir is not None:
            message["log_dir"] = run.log_dir
        return message

    # the connection

    async def _connection(self) -> _Connection:
        if self._closed:
            raise BackendError("the local backend is closed")
        if self.current is None:
            if self._reconnecting is None or self._reconnecting.done():
                self._reconnecting = asyncio.create_task(self._reconnect())
            await asyncio.shield(self._reconnecting)
        if self.current is None:
            raise (SupervisorGone if self._gone else BackendError)(self._last_error)
        return self.current

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while True:
            if self.start_if_missing:
                connection = await launch.connect(
                    self.data_dir, lambda: _Connection(self), deadline=deadline,
                    settings=self.settings,
                )
            else:
                connection = await self._attach()
            connection.send({"op": "hello"})
            await asyncio.wait(
                [connection.hello, connection.lost],
                timeout=max(0.0, deadline - loop.time()),
                return_when=asyncio.FIRST_COMPLETED,
            )
            if connection.hello.done() and not connection.lost.done():
                break
            # It accepted and left: a supervisor leaving for idleness. Start another, once it
            # has let go of the lock.
            await connection.close()
            await asyncio.sleep(_RETRY_PAUSE)
            if loop.time() >= deadline:
                raise BackendError(
                    f"the supervisor of {self.data_dir} did not say hello within "
                    f"{self.timeout:g} s" + launch.log_tail(self.data_dir)
                )
        hello = connection.hello.result()
        self.supervisor_pid = hello.get("pid")
        features = hello.get("features")
        self.features = frozenset(f for f in features if isinstance(f, str)) if isinstance(
            features, list) else frozenset()
        self.current = connection
        logger.debug("connected to supervisor %s", self.supervisor_pid)

    async def _attach(self) -> _Connection:
        """A connection to the supervisor running now; ``SupervisorGone`` when none is."""
        try:
            path = socket_path(self.data_dir)
        except ValueError as exc:
            raise BackendError(str(exc)) from exc
        loop = asyncio.get_running_loop()
        try:
            _, connection = await loop.create_unix_connection(lambda: _Connection(self), path)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            # No socket, or one left behind by a supervisor that was killed.
            raise SupervisorGone(f"the supervisor of {self.data_dir} is not running") from exc
        except OSError as exc:
            raise BackendError(f"cannot reach the supervisor at {path}: {exc}") from exc
        return connection

    def connection_lost(self, connection: _Connection) -> None:
        """The connection dropped: reconnect unless we are closing."""
        if connection is not self.current:
            return
        self.current = None
        if not self._closed:
            logger.warning(
                "lost the connection to the run supervisor; reconnecting",
                extra={"action": "supervisor_reconnect"},
            )
            self._reconnecting = asyncio.create_task(self._reconnect())

    async def _reconnect(self) -> None:
        try:
            await self._connect()
        except BackendError as exc:
            self._last_error = exc.message
            self._gone = isinstance(exc, SupervisorGone)
            # A foreign supervisor that has gone is an expected answer, not a failure.
            logger.log(
                logging.INFO if self._gone else logging.ERROR,
                "cannot reconnect to the run supervisor: %s",
                exc.message,
                extra={"action": "supervisor_lost"},
            )
            self._fail_all(f"lost the run supervisor: {exc.message}", gone=self._gone)
            return
        self._gone = False
        assert self.current is not None
        for run_id, run in self._runs.items():
            if not run.outcome.done():
                self.current.send(self._watch_message(run_id, run))
        for message, _ in self._kills.values():
            self.current.send(message)

    def _fail_all(self, error: str, *, gone: bool = False) -> None:
        lost: Message = {"op": "lost", "error": error, "gone": gone}
        for run in self._runs.values():
            _settle(run.spawn, lost)
            _settle(run.answer, lost)
            _settle(run.outcome, lost)
        self._runs = {k: run for k, run in self._runs.items() if run.followers}
        self._unclaimed.clear()
        for _, waiters in self._kills.values():
            for waiter in waiters:
                _settle(waiter, lost)
        self._kills.clear()
