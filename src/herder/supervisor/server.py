"""The supervisor process: the socket, the requests, and when to go away.

One supervisor per data folder, guaranteed by an exclusive ``flock`` on ``supervisor.lock`` held
for its whole life: whoever holds the lock owns the socket path, so a start race between two
servers ends with one supervisor and the loser exits 0 without touching anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import resource
import signal
import socket
import struct
from collections import OrderedDict
from collections.abc import Callable

from herder.masking import Masker
from herder.supervisor.children import (
    Child,
    RunId,
    SpawnError,
    become_subreaper,
    log,
    reap_strays,
)
from herder.supervisor.protocol import (
    DEFAULT_IDLE,
    IDLE_ENV,
    LOCK_NAME,
    PID_NAME,
    SYNC_ENV,
    LineProtocol,
    Message,
    socket_path,
)
from herder.supervisor.records import ExitJournal, Outcome

# What this supervisor can do beyond the first protocol, told in its hello: a client asks
# before relying on it (``mask``: masking a run's secrets in its logs).
FEATURES = ("mask",)
_RECENT = 10_000  # ended runs remembered by id, for watches that come without a log_dir
_PEERCRED = struct.Struct("3i")  # pid, uid, gid


def _valid_id(value: object) -> bool:
    return isinstance(value, int | str) and not isinstance(value, bool)


def _spawn_arguments(message: Message) -> str | None:
    """What is wrong with a spawn request, or ``None``."""
    argv, env = message.get("argv"), message.get("env")
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        return "argv must be a non-empty list of strings"
    if not isinstance(env, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in env.items()
    ):
        return "env must map strings to strings"
    if not isinstance(message.get("cwd"), str) or not isinstance(message.get("log_dir"), str):
        return "cwd and log_dir must be strings"
    mask = message.get("mask", [])
    if not isinstance(mask, list) or not all(isinstance(m, str) for m in mask):
        return "mask must be a list of strings"
    return None


class Connection(LineProtocol):
    """One client (a herder server) of the supervisor."""

    def __init__(self, supervisor: Supervisor) -> None:
        super().__init__()
        self.supervisor = supervisor

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        sock = transport.get_extra_info("socket")
        pid, uid, _ = _PEERCRED.unpack(
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
        )
        if uid != os.getuid():  # the socket is 0600; this also stops root-owned strangers
            log(f"refusing a connection from pid {pid}, uid {uid}")
            assert self.transport is not None
            self.transport.abort()
            return
        self.supervisor.connected(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.supervisor.disconnected(self)

    def protocol_error(self, problem: str) -> None:
        log(f"dropping a client that sent {problem}")
        super().protocol_error(problem)

    def message_received(self, message: Message) -> None:
        handler = self.supervisor.handlers.get(message["op"])
        if handler is None:
            self.send({"op": "error", "error": f"unknown op {message['op'][:40]!r}"})
        elif message["op"] != "hello" and not _valid_id(message.get("id", 0)):
            self.send({"op": "error", "error": f"bad run id in {message['op']!r}"})
        else:
            try:
                handler(self, message)
            except Exception as exc:  # a bug here must not take every run down with it
                log(f"failed to handle {message['op']!r}: {exc!r}")
                failed = {"op": "failed", "id": message.get("id"), "error": f"supervisor: {exc}"}
                self.send(
                    failed if message["op"] == "spawn" else {"op": "error", "error": str(exc)}
                )


class Supervisor:
    """The runs of one data folder and the connections that care about them."""

    def __init__(self, data_dir: str, idle: float) -> None:
        self.idle = idle
        self.children: dict[RunId, Child] = {}
        self.pids: dict[int, Child] = {}  # main pid -> run, until the run has ended
        self.recent: OrderedDict[RunId, tuple[Outcome, int]] = OrderedDict()
        self.connections: set[Connection] = set()
        self.stopping = False
        self.done = asyncio.get_running_loop().create_future()
        self.handlers: dict[str, Callable[[Connection, Message], None]] = {
            "hello": self.hello,
            "spawn": self.spawn,
            "watch": self.watch,
            "kill": self.kill,
            "bye": self.bye,
        }
        # Runs read /dev/null as stdin; one shared descriptor saves an open per run.
        self._devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        self._journal = ExitJournal(
            data_dir, durable=os.environ.get(SYNC_ENV, "") in ("1", "true")
        )
        self._idle_timer: asyncio.TimerHandle | None = None
        self._check_idle()

    def close(self) -> None:
        self._journal.close()
        os.close(self._devnull)
        for connection in self.connections:
            connection.flush()
            if connection.transport is not None:
                connection.transport.close()

    # connections

    def connected(self, connection: Connection) -> None:
        self.connections.add(connection)
        self._check_idle()

    def disconnected(self, connection: Connection) -> None:
        self.connections.discard(connection)
        self._check_idle()

    # requests

    def hello(self, connection: Connection, message: Message) -> None:
        live = list(self.children)
        connection.send({"op": "hello", "pid": os.getpid(), "live": live,
                         "features": list(FEATURES)})

    def spawn(self, connection: Connection, message: Message) -> None:
        run_id = message["id"]
        problem = _spawn_arguments(message)
        if problem is None and self.stopping:
            problem = "the supervisor is shutting down"
        if problem is None and run_id in self.children:
            problem = f"run {run_id} is already running"
        if problem is not None:
            connection.send({"op": "failed", "id": run_id, "error": problem})
            return
        mask = Masker(message.get("mask", []))
        try:
            child = Child.start(
                run_id,
                argv=message["argv"],
                env=message["env"],
                cwd=message["cwd"],
                log_dir=message["log_dir"],
                stdin=self._devnull,
                on_end=self._output_done,
                make_cwd=message.get("make_cwd") is True,
                mask=mask,
            )
        except SpawnError as exc:  # it may quote the program: a secret's value is masked
            connection.send({"op": "failed", "id": run_id, "error": mask.text(str(exc))})
            return
        self._journal.started(run_id)
        child.watchers.add(connection)
        self.children[run_id] = child
        self.pids[child.pid] = child
        self._check_idle()
        connection.send({"op": "started", "id": run_id, "pid": child.pid})

    def watch(self, connection: Connection, message: Message) -> None:
        run_id = message["id"]
        child = self.children.get(run_id)
        if child is not None:
            child.watchers.add(connection)
            connection.send({"op": "running", "id": run_id, "pid": child.pid})
            return
        reply: Message = {"op": "exited", "id": run_id}
        if run_id in self.recent:
            outcome, reply["pid"] = self.recent[run_id]
        else:
            found = self._journal.find(run_id)
            if found is None:
                connection.send({"op": "unknown", "id": run_id})
                return
            outcome = found
        reply.update(outcome.fields())
        connection.send(reply)

    def kill(self, connection: Connection, message: Message) -> None:
        run_id = message["id"]
        child = self.children.get(run_id)
        grace = message.get("grace", 0)
        if not isinstance(grace, int | float):
            grace = 0
        found = child is not None and child.alive
        if child is not None:
            child.kill(float(grace))
        connection.send({"op": "killed", "id": run_id, "found": found})

    def bye(self, connection: Connection, message: Message) -> None:
        connection.flush()
        if connection.transport is not None:
            connection.transport.close()

    # lifetime

    def _output_done(self, child: Child) -> None:
        assert child.outcome is not None
        self._journal.ended(
            child.run_id,
            child.outcome,
            child.finished_at,
            lambda problem: self._ended(child, problem),
        )

    def _ended(self, child: Child, problem: str | None) -> None:
        """The run's end is journaled (or could not be): tell its watchers."""
        assert child.outcome is not None
        if problem is not None:
            log(f"run {child.run_id}: {problem}")
        del self.children[child.run_id]
        del self.pids[child.pid]
        reap_strays(self.pids.__contains__)
        self.recent[child.run_id] = (child.outcome, child.pid)
        if len(self.recent) > _RECENT:
            self.recent.popitem(last=False)
        message = {"op": "exited", "id": child.run_id, "pid": child.pid, **child.outcome.fields()}
        for watcher in child.watchers:
            assert isinstance(watcher, Connection)
            watcher.send(message)
        self._check_idle()

    def request_stop(self) -> None:
        """SIGTERM: take no new runs, and go once the running ones have ended."""
        if not self.stopping:
            log(f"stopping once {len(self.children)} running run(s) have ended")
        self.stopping = True
        self._check_idle()

    def _check_idle(self) -> None:
        if self.children or (self.connections and not self.stopping):
            if self._idle_timer is not None:
                self._idle_timer.cancel()
                self._idle_timer = None
        elif self.stopping:
            self._stop()
        elif self._idle_timer is None:
            loop = asyncio.get_running_loop()
            self._idle_timer = loop.call_later(self.idle, self._stop)

    def _stop(self) -> None:
        if not self.done.done():
            self.done.set_result(None)


def _idle_seconds() -> float:
    raw = os.environ.get(IDLE_ENV, "")
    try:
        return float(raw) if raw.strip() else DEFAULT_IDLE
    except ValueError:
        log(f"ignoring {IDLE_ENV}={raw!r}: not a number of seconds; using {DEFAULT_IDLE:g}")
        return DEFAULT_IDLE


_WANTED_FILES = 65536


def _raise_file_limit() -> None:
    # Six descriptors per running run (two pipes, three logs, a pidfd): the usual soft limit of
    # 1024 would cap a server at about 170 concurrent runs. Runs inherit the limit, so it is
    # raised to a common value rather than to the hard limit (which can be 2**30 and makes
    # programs that close every possible descriptor crawl).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = _WANTED_FILES if hard == resource.RLIM_INFINITY else min(hard, _WANTED_FILES)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError) as exc:
            log(f"cannot raise the open files limit from {soft}: {exc}")


def _write_pid_file(path: str) -> None:
    temporary = f"{path}.tmp"
    with open(temporary, "w") as file:
        file.write(f"{os.getpid()}\n")
    os.replace(temporary, path)


async def serve(path: str, ready: Callable[[], None]) -> None:
    """Listen on ``path`` until the supervisor is idle long enough or stopped by signal."""
    loop = asyncio.get_running_loop()
    pid_file = os.path.join(os.path.dirname(path), PID_NAME)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # we hold the lock: a socket file left here is stale
    supervisor = Supervisor(os.path.dirname(path), _idle_seconds())
    try:
        umask = os.umask(0o177)  # bind creates the socket 0600 from the start
        try:
            server = await loop.create_unix_server(lambda: Connection(supervisor), path)
        finally:
            os.umask(umask)  # runs inherit the umask: give them the usual one
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, supervisor.request_stop)
        _write_pid_file(pid_file)  # for people and scripts; clients go by the socket and hello
        log(f"listening on {path}")
        ready()
        try:
            await supervisor.done
        finally:
            for leaving in (pid_file, path):  # first, while we still hold the lock
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(leaving)
            server.close()
    finally:
        supervisor.close()
    await server.wait_closed()
    log("stopped" if supervisor.stopping else "idle, leaving")


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    try:
        import uvloop
    except ImportError:  # optional: the default loop is correct, just slower
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def run(data_dir: str, ready: Callable[[], None]) -> int:
    """Be the supervisor of ``data_dir`` (exit status 0 also when another one already is)."""
    data_dir = os.path.abspath(data_dir)
    try:
        path = socket_path(data_dir)
        os.makedirs(data_dir, mode=0o700, exist_ok=True)
        lock_path = os.path.join(data_dir, LOCK_NAME)
        lock = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except (ValueError, OSError) as exc:
        log(f"cannot start: {exc}")
        return 2
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(lock)
        return 0  # another supervisor owns this folder; the caller connects to it
    _raise_file_limit()
    become_subreaper()
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(serve(path, ready))
    except OSError as exc:
        log(f"cannot serve on {path}: {exc}")
        return 2
    finally:
        os.close(lock)
    return 0
