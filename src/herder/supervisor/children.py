"""One local run as the supervisor holds it: its process, its two output pipes, its three log
files, and the end reported once all of them are done.

Everything here runs on the supervisor's event loop without threads: the pipes and a pidfd of
the process are watched with ``add_reader``, so a run costs a few file descriptors and no task.
"""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

from herder.masking import Masker
from herder.supervisor.protocol import OUTPUT_LOG, STDERR_LOG, STDOUT_LOG
from herder.supervisor.records import Outcome

RunId = int | str

# How long, after the main process ended and its group was killed, the pipes may stay open and
# the group's processes may take to die. Only a process that left the group (setsid, a daemon)
# or one stuck in the kernel (D state) takes that long; the run is reported ended anyway.
DRAIN_LIMIT = 5.0
_FIRST_REAP_PAUSE = 0.001
_LAST_REAP_PAUSE = 0.1
_READ_SIZE = 65536
_LOG_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC


def log(text: str) -> None:
    """A line in the supervisor's own log (its stderr, which the launcher points at a file)."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    sys.stderr.write(f"{stamp} supervisor[{os.getpid()}] {text}\n")


class SpawnError(Exception):
    """A run could not start; the message is meant for the person who wrote the job."""


def describe_spawn_error(exc: OSError, argv: list[str], cwd: str) -> str:
    """Turn Popen's OSError into a sentence that says what to fix."""
    reason = exc.strerror or str(exc)
    # Popen names the working folder when chdir failed and the program when exec failed.
    if exc.filename == cwd and argv[0] != cwd:
        return f"cannot use working folder {cwd!r} ({reason})"
    if exc.errno == errno.ENOENT:
        return f"no such program: {argv[0]!r} ({reason})"
    if exc.errno == errno.ENOEXEC:
        return f"{argv[0]!r} is not a program this system can run ({reason})"
    return f"cannot run {argv[0]!r} ({reason})"


class RunLogs:
    """A run's stdout, stderr and combined output files, created on its first byte.

    File creation is the dearest thing the supervisor does on a busy disk (more than the fork
    and exec); a silent run costs no log files at all, and readers take a missing file as empty.

    With a ``mask`` (the run's secrets) each stream is masked before it is written, so the files
    never hold a value; the end of a read that could be the start of a value waits for the next
    read of that stream, or its end (``end``).
    """

    def __init__(self, log_dir: str, mask: Masker | None = None) -> None:
        self.log_dir = log_dir
        self._fds: tuple[int, int, int] | None = None
        self._masks = (mask.stream(), mask.stream()) if mask else None

    def write(self, stream: int, data: bytes) -> None:
        """Append ``data`` to stream 0 (stdout) or 1 (stderr), and to the combined log."""
        if self._masks is not None:
            data = self._masks[stream].feed(data)
            if not data:
                return
        self._append(stream, data)

    def end(self, stream: int) -> None:
        """The stream has ended: write what masking held back."""
        if self._masks is not None and self._masks[stream].holding:
            self._append(stream, self._masks[stream].flush())

    def _append(self, stream: int, data: bytes) -> None:
        if self._fds is None:
            self._fds = self._open()
        _write_all(self._fds[stream], data)
        _write_all(self._fds[2], data)

    def close(self) -> None:
        if self._fds is not None:
            for fd in self._fds:
                os.close(fd)
            self._fds = None

    def _open(self) -> tuple[int, int, int]:
        os.makedirs(self.log_dir, exist_ok=True)
        opened: list[int] = []
        try:
            for name in (STDOUT_LOG, STDERR_LOG, OUTPUT_LOG):
                path = os.path.join(self.log_dir, name)
                opened.append(os.open(path, _LOG_FLAGS, 0o644))
        except OSError:
            for fd in opened:
                os.close(fd)
            raise
        return opened[0], opened[1], opened[2]


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]


def become_subreaper() -> None:
    """Adopt the orphans of our runs (``PR_SET_CHILD_SUBREAPER``), as containerd-shim does.

    A run's background processes outlive its main process; once killed they must be reaped by
    someone, and the init of a container often reaps nobody. As their subreaper we reap them,
    so "the process group is gone" means gone, not a row of zombies.
    """
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
        if prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")
    except (ImportError, OSError, AttributeError) as exc:
        log(f"cannot adopt orphaned processes, some may stay zombies: {exc}")


def reap_strays(is_main: Callable[[int], bool]) -> None:
    """Reap adopted orphans that had left their run's process group (daemons, ``setsid``).

    Stops at the first process that is some run's main process: that one is reaped by its
    ``Child``, and the rest wait for the next call.
    """
    while True:
        try:
            found = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return
        if found is None or is_main(found.si_pid):
            return
        try:
            os.waitpid(found.si_pid, os.WNOHANG)
        except ChildProcessError:
            return


class Child:
    """A started run, from spawn until its end is journaled.

    When the main process ends the rest of its process group is killed; ``on_end`` is called
    once after that, when both pipes reached end of file and the group's processes are reaped
    (or ``DRAIN_LIMIT`` passed) and the log files are closed. ``outcome`` and ``finished_at``
    are set then. Journaling the end is the caller's part.
    """

    def __init__(
        self,
        run_id: RunId,
        log_dir: str,
        popen: subprocess.Popen[bytes],
        pidfd: int,
        pipes: tuple[int, int],
        logs: RunLogs,
        on_end: Callable[[Child], None],
    ) -> None:
        self.run_id = run_id
        self.log_dir = log_dir
        self.pid = popen.pid
        self.watchers: set[object] = set()  # connections to tell when it ends
        self.outcome: Outcome | None = None
        self.finished_at = 0.0  # when the process was seen gone (time.time())
        self._popen = popen
        self._loop = asyncio.get_running_loop()
        self._on_end = on_end
        self._logs = logs
        self._open_pipes = set(pipes)
        self._group_left = True  # processes of the group (besides the main one) may remain
        self._escalation: asyncio.TimerHandle | None = None
        self._reap_timer: asyncio.TimerHandle | None = None
        self._reap_pause = _FIRST_REAP_PAUSE
        self._drain_timer: asyncio.TimerHandle | None = None
        self._finished = False  # on_end called: the log descriptors are closed
        self._write_failed = False
        self._pidfd = pidfd
        self._loop.add_reader(self._pidfd, self._on_exit)
        for stream, pipe in enumerate(pipes):
            os.set_blocking(pipe, False)
            self._loop.add_reader(pipe, self._on_output, pipe, stream)

    @classmethod
    def start(
        cls,
        run_id: RunId,
        *,
        argv: list[str],
        env: dict[str, str],
        cwd: str,
        log_dir: str,
        stdin: int,
        on_end: Callable[[Child], None],
        make_cwd: bool = False,
        mask: Masker | None = None,
    ) -> Child:
        """Start ``argv`` in its own session with its output going to ``log_dir``; with
        ``make_cwd`` its working folder is created first (here, off the server's event loop).

        Raises ``SpawnError`` when the program or the folders are not usable; nothing is left
        running or open then.
        """
        if make_cwd:
            try:
                os.makedirs(cwd, mode=0o700, exist_ok=True)
            except OSError as exc:
                raise SpawnError(
                    f"cannot create working folder {cwd!r} ({exc.strerror or exc})"
                ) from exc
        logs = RunLogs(log_dir, mask)
        out_r = out_w = err_r = err_w = -1
        try:
            out_r, out_w = os.pipe2(os.O_CLOEXEC)
            err_r, err_w = os.pipe2(os.O_CLOEXEC)
            # Popen uses vfork here and reports a failed chdir or exec as an exception, before
            # returning: a run either starts or fails, never "started, then vanished".
            popen = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=stdin,
                stdout=out_w,
                stderr=err_w,
                start_new_session=True,
                close_fds=True,
            )
        except BaseException as exc:
            for fd in (out_r, out_w, err_r, err_w):
                if fd >= 0:
                    os.close(fd)
            if isinstance(exc, OSError):
                raise SpawnError(describe_spawn_error(exc, argv, cwd)) from exc
            if isinstance(exc, ValueError | TypeError):
                raise SpawnError(f"cannot run {argv[:1]!r}: {exc}") from exc
            raise
        os.close(out_w)
        os.close(err_w)
        try:
            pidfd = os.pidfd_open(popen.pid)
        except OSError as exc:  # out of descriptors: a run nobody watches must not run
            os.killpg(popen.pid, signal.SIGKILL)
            popen.wait()
            for fd in (out_r, err_r):
                os.close(fd)
            raise SpawnError(f"the supervisor cannot watch one more run ({exc})") from exc
        return cls(run_id, log_dir, popen, pidfd, (out_r, err_r), logs, on_end)

    @property
    def alive(self) -> bool:
        return self.outcome is None

    def kill(self, grace: float) -> None:
        """SIGTERM the process group now and SIGKILL it after ``grace`` seconds (0: at once)."""
        if not self.alive:
            return
        if grace <= 0:
            self._signal(signal.SIGKILL)
            return
        self._signal(signal.SIGTERM)
        if self._escalation is None or self._escalation.when() > self._loop.time() + grace:
            if self._escalation is not None:
                self._escalation.cancel()
            self._escalation = self._loop.call_later(grace, self._signal, signal.SIGKILL)

    def _signal(self, sig: int) -> None:
        if not self.alive:  # the group id may belong to someone else once the leader is reaped
            return
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            # The main process moved to another group: it alone can still be reached.
            try:
                signal.pidfd_send_signal(self._pidfd, sig)
            except ProcessLookupError:
                pass
        except OSError as exc:
            log(f"run {self.run_id}: cannot send signal {sig} to group {self.pid}: {exc}")

    def _on_exit(self) -> None:
        self._loop.remove_reader(self._pidfd)
        self.finished_at = time.time()
        # Kill what is left of the group before reaping: until then the zombie leader keeps its
        # pid, so the group id cannot have been reused by anyone else.
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except OSError:
            pass
        returncode = self._popen.wait()  # at once: the pidfd said the process has ended
        os.close(self._pidfd)
        self.outcome = Outcome.from_returncode(returncode)
        if self._escalation is not None:
            self._escalation.cancel()
        self._reap_group()
        if not self._finished:
            self._drain_timer = self._loop.call_later(DRAIN_LIMIT, self._stop_waiting)

    def _reap_group(self) -> None:
        """Reap the killed group's processes (adopted by us when the main one ended)."""
        self._reap_timer = None
        while True:
            try:
                pid, _ = os.waitpid(-self.pid, os.WNOHANG)
            except ChildProcessError:  # none left: the group is gone
                self._group_left = False
                self._maybe_finish()
                return
            if pid == 0:  # still dying: SIGKILL is not instant. Look again shortly.
                self._reap_timer = self._loop.call_later(self._reap_pause, self._reap_group)
                self._reap_pause = min(self._reap_pause * 2, _LAST_REAP_PAUSE)
                return

    def _maybe_finish(self) -> None:
        """Finish if nothing is left to wait for."""
        if not (self._finished or self._open_pipes or self._group_left or self.outcome is None):
            self._finish()

    def _on_output(self, pipe: int, stream: int) -> None:
        try:
            data = os.read(pipe, _READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            self._write(stream, data)
            return
        self._end_stream(stream)
        self._close_pipe(pipe)
        self._maybe_finish()

    def _close_pipe(self, pipe: int) -> None:
        self._loop.remove_reader(pipe)
        os.close(pipe)
        self._open_pipes.discard(pipe)

    def _write(self, stream: int, data: bytes) -> None:
        self._logged(self._logs.write, stream, data)

    def _end_stream(self, stream: int) -> None:
        self._logged(self._logs.end, stream)

    def _logged(self, write: Callable[..., None], *args: object) -> None:
        try:
            write(*args)
        except OSError as exc:
            if not self._write_failed:  # say it once, keep draining so the run never blocks
                log(f"run {self.run_id}: cannot write its logs in {self.log_dir}: {exc}")
                self._write_failed = True

    def _stop_waiting(self) -> None:
        self._drain_timer = None
        if self._open_pipes:
            log(
                f"run {self.run_id}: output still open {DRAIN_LIMIT:g} s after it ended (a "
                "process left its process group); closing the logs without the rest"
            )
        if self._group_left:
            log(
                f"run {self.run_id}: processes of group {self.pid} outlived SIGKILL by "
                f"{DRAIN_LIMIT:g} s; reporting the run ended anyway"
            )
        for pipe in list(self._open_pipes):
            self._close_pipe(pipe)
        if self._reap_timer is not None:
            self._reap_timer.cancel()
        self._group_left = False
        self._finish()

    def _finish(self) -> None:
        self._finished = True
        if self._drain_timer is not None:
            self._drain_timer.cancel()
        for stream in (0, 1):  # pipes closed without their end of file (see _stop_waiting)
            self._end_stream(stream)
        self._logs.close()
        self._on_end(self)
