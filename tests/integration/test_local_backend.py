"""The ``local`` backend against a real supervisor and real processes.

Every test gets its own data folder (and so its own supervisor); the ``data_dir`` fixture stops
that supervisor and anything it still runs at teardown. Nothing sleeps and hopes: waits are on
conditions, under deadlines.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from herder.backends.base import Backend, BackendEvent, Exited, RunContext, Running, create
from herder.backends.local import LocalBackend
from herder.model.errors import BackendError, RunLost

T = TypeVar("T")
PATH = {"PATH": "/usr/bin:/bin"}
DEADLINE = 15.0


def arun(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a test's coroutine on a fresh event loop (the project does without pytest-asyncio)."""
    return asyncio.run(asyncio.wait_for(coroutine, 60))


# ---------------------------------------------------------------------------------- processes


def _supervisors_of(data_dir: Path) -> list[int]:
    """Pids of supervisor processes serving ``data_dir`` (found in /proc, zombies excluded)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as file:
                argv = file.read().split(b"\0")
            with open(f"/proc/{entry}/stat", "rb") as file:
                state = file.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if b"herder.supervisor" in argv and os.fsencode(data_dir) in argv and state != b"Z":
            found.append(int(entry))
    return found


def _children_of(pid: int) -> list[int]:
    children = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as file:
                    fields = file.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                children.append(int(entry))
    return children


def _wait_gone(pid: int, timeout: float = DEADLINE) -> bool:
    """Wait until process ``pid`` has ended (it need not be our child); whether it did."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        readable, _, _ = select.select([pidfd], [], [], timeout)
        return bool(readable)
    finally:
        os.close(pidfd)


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _stop_supervisors(data_dir: Path) -> None:
    for pid in _supervisors_of(data_dir):
        for child in _children_of(pid):  # runs a failed test left behind: each is a group
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        assert _wait_gone(pid), f"supervisor {pid} did not stop"


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh data folder whose supervisor leaves after 2 idle seconds and is stopped at the
    end of the test anyway."""
    monkeypatch.setenv("HERDER_SUPERVISOR_IDLE", "2")
    folder = tmp_path / "data"
    own = len(os.fsencode(folder / "supervisor.sock")) > 90
    if own:  # the socket path must stay short: fall back to a folder of our own in /tmp
        folder = Path(tempfile.mkdtemp(prefix="herder-", dir="/tmp")) / "data"
    try:
        yield folder
    finally:
        _stop_supervisors(folder)
        if own:
            shutil.rmtree(folder.parent, ignore_errors=True)


# ---------------------------------------------------------------------------------- helpers


def context(data_dir: Path, run_id: int, argv: list[str], **changes: Any) -> RunContext:
    work_dir = data_dir / "work" / str(run_id)
    work_dir.mkdir(parents=True, exist_ok=True)
    fields: dict[str, Any] = {
        "run_id": run_id,
        "attempt": 1,
        "namespace": "default",
        "job": "test",
        "argv": argv,
        "env": dict(PATH),
        "work_dir": work_dir,
        "log_dir": data_dir / "logs" / str(run_id),
    }
    fields.update(changes)
    return RunContext(**fields)


@contextlib.asynccontextmanager
async def opened(data_dir: Path, **settings: Any) -> AsyncIterator[LocalBackend]:
    backend = LocalBackend(data_dir=data_dir, **settings)
    await backend.open()
    try:
        yield backend
    finally:
        await backend.close()


async def events(backend: Backend, run_id: int, handle: dict[str, Any]) -> list[BackendEvent]:
    async def collect() -> list[BackendEvent]:
        return [event async for event in backend.watch(run_id, handle)]

    return await asyncio.wait_for(collect(), DEADLINE)


async def ending(backend: Backend, run_id: int, handle: dict[str, Any]) -> Exited:
    """The one ``Exited`` of a watch, after any number of ``Running``."""
    found = await events(backend, run_id, handle)
    assert found[:-1] == [Running()] * (len(found) - 1)
    assert isinstance(found[-1], Exited)
    return found[-1]


async def run_to_end(backend: Backend, run: RunContext) -> Exited:
    return await ending(backend, run.run_id, await backend.start(run))


def _size(path: Path) -> int:
    return path.stat().st_size


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait for ``condition`` to hold, checking every 10 ms, for at most ``DEADLINE`` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while True:
        if condition():
            return
        if loop.time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


# ---------------------------------------------------------------------------------- endings


def _journaled(data_dir: Path, run_id: int) -> dict[str, Any] | None:
    """The last end the supervisor journaled for ``run_id``, if any."""
    try:
        lines = (data_dir / "exits.jsonl").read_text().splitlines()
    except FileNotFoundError:
        return None
    records = [json.loads(line) for line in lines if line]
    ends = [r for r in records if r.get("id") == run_id and not r.get("start")]
    return ends[-1] if ends else None


def test_durable_mode_flushes_before_reporting(data_dir: Path) -> None:
    async def main() -> int | None:
        async with opened(data_dir, sync_exit_records=True) as backend:
            run = context(data_dir, 1, ["sh", "-c", "exit 6"])
            assert await run_to_end(backend, run) == Exited(6)
            record = _journaled(data_dir, 1)  # reported only once it is written
            assert record is not None and record["exit_code"] == 6
            return backend.supervisor_pid

    pid = arun(main())
    environ = Path(f"/proc/{pid}/environ").read_bytes()  # the setting reached the supervisor
    assert b"HERDER_SYNC_EXIT_RECORDS=1" in environ.split(b"\0")


def test_silent_run_creates_no_log_files(data_dir: Path) -> None:
    async def main() -> None:
        async with opened(data_dir) as backend:
            run = context(data_dir, 1, ["true"])
            assert await run_to_end(backend, run) == Exited(0)
            assert not (run.log_dir / "output.log").exists()

    arun(main())


def test_registry_builds_the_local_backend(data_dir: Path) -> None:
    assert isinstance(create("local", data_dir=data_dir, other="ignored"), LocalBackend)


@pytest.mark.parametrize("code", [0, 3])
def test_exit_code(data_dir: Path, code: int) -> None:
    async def main() -> None:
        async with opened(data_dir) as backend:
            run = context(data_dir, 1, ["sh", "-c", f"exit {code}"])
            assert await run_to_end(backend, run) == Exited(code, None)
            record = _journaled(data_dir, 1)
            assert record is not None
            assert record["exit_code"] == code and record["signal"] is None
            assert record["finished_at"].endswith("+00:00")

    arun(main())


def test_streams_kept_apart_and_combined_in_order(data_dir: Path) -> None:
    async def main() -> None:
        async with opened(data_dir) as backend:
            # Two pipes carry no order between them: output.log keeps the order of arrival. So
            # each line waits until the test has seen the one before in output.log.
            gate = "while [ ! -e {0} ]; do sleep 0.01; done"
            script = f"echo a; {gate.format('one')}; echo b >&2; {gate.format('two')}; echo c"
            run = context(data_dir, 1, ["sh", "-c", script])
            handle = await backend.start(run)
            output = run.log_dir / "output.log"
            await until(lambda: _read(output) == "a\n", "a")
            (run.work_dir / "one").touch()
            await until(lambda: _read(output) == "a\nb\n", "b")
            (run.work_dir / "two").touch()
            assert await ending(backend, 1, handle) == Exited(0)
            assert (run.log_dir / "stdout.log").read_text() == "a\nc\n"
            assert (run.log_dir / "stderr.log").read_text() == "b\n"
            assert output.read_text() == "a\nb\nc\n"

    arun(main())


def test_environment_is_exactly_the_one_given(data_dir: Path) -> None:
    async def main() -> None:
        async with opened(data_dir) as backend:
            run = context(data_dir, 1, ["/usr/bin/env"], env={"ONLY": "this one"})
            assert await run_to_end(backend, run) == Exited(0)
            assert (run.log_dir / "stdout.log").read_text() == "ONLY=this one\n"

    arun(main())


def test_runs_in_its_work_dir(data_dir: Path) -> None:
    async def main() -> None:
        async with opened(data_dir) as backend:
            run = context(data_dir, 1, ["pwd"])
            assert await run_to_end(backend, run) == Exited(0)
            assert (run.log_dir / "stdout.log").read_text() == f"{run.work_dir}\n"

    arun(main())


def test_no_such_program(data_dir: Path) -> None:
    async def main() -> None:
        async with opened(data_dir) as backend:
            with pytest.raises(BackendError, match="no such program: 'nosuch-program'"):
                await backend.start(context(data_dir, 1, ["nosuch-program", "--flag"]))

    arun(main())


def test_missing_work_dir_is_created(data_dir: Path) -> None:
    async def main() -> None:
        async with opened(data_dir) as backend:
            missing = data_dir / "no" / "such" / "folder"
            run = context(data_dir, 1, ["true"], work_dir=missing)
            assert await run_to_end(backend, run) == Exited(0)
            assert missing.is_dir()

    arun(main())


def test_bad_work_dir(data_dir: Path) -> None:
    async def main() -> None:
        async with opened(data_dir) as backend:
            (data_dir / "a-file").write_text("")
            unusable = data_dir / "a-file" / "folder"  # under a file: cannot be created
            with pytest.raises(BackendError, match=r"working folder .*a-file/folder"):
                await backend.start(context(data_dir, 1, ["true"], work_dir=unusable))

    arun(main())


def test_large_output_is_complete(data_dir: Path) -> None:
    async def main() -> None:
        async with opened(data_dir) as backend:
            script = "head -c 3000000 /dev/zero; head -c 1000000 /dev/zero >&2"
            run = context(data_dir, 1, ["sh", "-c", script])
            assert await run_to_end(backend, run) == Exited(0)
            assert _size(run.log_dir / "stdout.log") == 3_000_000
            assert _size(run.log_dir / "stderr.log") == 1_000_000
            assert _size(run.log_dir / "output.log") == 4_000_000

    arun(main())


# ---------------------------------------------------------------------------------- stopping


def _stubborn(data_dir: Path, run_id: int) -> RunContext:
    """A run that ignores SIGTERM (and says so once it does)."""
    return context(data_dir, run_id, ["sh", "-c", 'trap "" TERM; echo ready; sleep 300'])


async def _started_and_ready(backend: Backend, run: RunContext) -> dict[str, Any]:
    handle = await backend.start(run)
    await until(lambda: "ready" in _read(run.log_dir / "stdout.log"), "the trap to be set")
    return handle


def test_cancel_kills_only_after_grace(data_dir: Path) -> None:
    async def main() -> None:
        async with opened(data_dir) as backend:
            run = _stubborn(data_dir, 1)
            handle = await _started_and_ready(backend, run)
            loop = asyncio.get_running_loop()
            asked = loop.time()
            await backend.cancel(1, handle, force=False, grace=1.0)
            assert await ending(backend, 1, handle) == Exited(128 + 9, 9)
            assert loop.time() - asked >= 0.95

    arun(main())


def test_forced_cancel_kills_at_once(data_dir: Path) -> None:
    async def main() -> None:
        async with opened(data_dir) as backend:
            run = _stubborn(data_dir, 1)
            handle = await _started_and_ready(backend, run)
            loop = asyncio.get_running_loop()
            asked = loop.time()
            await backend.cancel(1, handle, force=True, grace=60)
            assert await ending(backend, 1, handle) == Exited(137, 9)
            assert loop.time() - asked < 5

    arun(main())


def test_cancel_sends_sigterm_first(data_dir: Path) -> None:
    async def main() -> None:
        async with opened(data_dir) as backend:
            handle = await backend.start(context(data_dir, 1, ["sleep", "300"]))
            await backend.cancel(1, handle, force=False, grace=60)
            assert await ending(backend, 1, handle) == Exited(128 + 15, 15)

    arun(main())


def test_cancel_of_an_ended_run_is_ignored(data_dir: Path) -> None:
    async def main() -> None:
        async with opened(data_dir) as backend:
            run = context(data_dir, 1, ["true"])
            handle = await backend.start(run)
            assert await ending(backend, 1, handle) == Exited(0)
            await backend.cancel(1, handle, force=True, grace=0)
            await backend.cancel(99, {}, force=False, grace=1)

    arun(main())


def test_cancel_takes_the_whole_process_group(data_dir: Path) -> None:
    async def main() -> None:
        async with opened(data_dir) as backend:
            run = context(data_dir, 1, ["sh", "-c", "sleep 300 & echo ready; sleep 301"])
            handle = await backend.start(run)
            await until(lambda: "ready" in _read(run.log_dir / "stdout.log"), "the children")
            assert _group_exists(handle["pid"])
            await backend.cancel(1, handle, force=False, grace=5)
            assert await ending(backend, 1, handle) == Exited(128 + 15, 15)
            assert not _group_exists(handle["pid"])

    arun(main())


def test_background_children_die_with_the_main_process(data_dir: Path) -> None:
    async def main() -> None:
        async with opened(data_dir) as backend:
            # The orphan keeps stdout open: the run ends only because the supervisor kills it.
            run = context(data_dir, 1, ["sh", "-c", "sleep 300 & echo left behind"])
            handle = await backend.start(run)
            assert await ending(backend, 1, handle) == Exited(0)
            assert not _group_exists(handle["pid"])
            assert (run.log_dir / "output.log").read_text() == "left behind\n"

    arun(main())


# ---------------------------------------------------------------------------------- restarts

SERVER = """
SCRIPT = "while [ ! -e go ]; do sleep 0.01; done; echo done; exit 7"
import asyncio, json, sys
from pathlib import Path
from herder.backends.base import RunContext
from herder.backends.local import LocalBackend

async def main():
    data_dir = Path(sys.argv[1])
    backend = LocalBackend(data_dir=data_dir)
    await backend.open()
    work_dir = data_dir / "work"
    work_dir.mkdir(parents=True, exist_ok=True)
    run = RunContext(run_id=7, attempt=1, namespace="default", job="restart",
                     argv=["sh", "-c", SCRIPT], env={},
                     work_dir=work_dir, log_dir=data_dir / "logs" / "7")
    print(json.dumps(await backend.start(run)), flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def test_run_outlives_a_killed_server(data_dir: Path) -> None:
    """A server (a real process) starts a run and dies by SIGKILL; the next one finds the run
    running, then sees its true end and complete logs."""
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(data_dir)], stdout=subprocess.PIPE, text=True
    )
    assert server.stdout is not None
    with server.stdout:
        handle = json.loads(server.stdout.readline())
    server.kill()
    server.wait()

    async def main() -> None:
        async with opened(data_dir) as backend:
            watch = backend.watch(7, handle)
            assert await anext(watch) == Running()
            (data_dir / "work" / "go").touch()  # let the run finish, now that it is watched
            assert await asyncio.wait_for(anext(watch), DEADLINE) == Exited(7)
            with pytest.raises(StopAsyncIteration):
                await anext(watch)
        assert (data_dir / "logs" / "7" / "output.log").read_text() == "done\n"

    arun(main())


def test_run_that_ended_while_nobody_was_connected(data_dir: Path) -> None:
    async def main() -> None:
        async with opened(data_dir) as first:
            run = context(data_dir, 1, ["sh", "-c", "sleep 0.2; exit 5"])
            handle = await first.start(run)
        await until(lambda: _journaled(data_dir, 1) is not None, "the journaled end")
        async with opened(data_dir) as second:  # the same supervisor: it remembers
            assert await events(second, 1, handle) == [Exited(5)]

    arun(main())


def test_run_that_ended_before_the_supervisor_left(data_dir: Path) -> None:
    """The end comes from the exit journal when the supervisor that ran the run is gone."""

    async def main() -> None:
        async with opened(data_dir) as first:
            run = context(data_dir, 1, ["sh", "-c", "echo out; exit 4"])
            handle = await first.start(run)
            old = first.supervisor_pid
        assert old is not None
        await until(lambda: _journaled(data_dir, 1) is not None, "the journaled end")
        os.kill(old, signal.SIGTERM)  # nothing is running: it leaves at once
        assert _wait_gone(old)
        async with opened(data_dir) as second:
            assert second.supervisor_pid != old
            assert await events(second, 1, handle) == [Exited(4)]
        assert (run.log_dir / "output.log").read_text() == "out\n"

    arun(main())


def test_unknown_run_is_lost(data_dir: Path) -> None:
    async def main() -> None:
        async with opened(data_dir) as backend:
            with pytest.raises(RunLost, match="no trace of run 404"):
                await events(backend, 404, {"pid": 1, "log_dir": str(data_dir / "nowhere")})
            with pytest.raises(RunLost):
                await events(backend, 405, {})

    arun(main())


def test_watch_survives_a_dropped_connection(data_dir: Path) -> None:
    async def main() -> None:
        async with opened(data_dir) as backend:
            script = "echo ready; while [ ! -e go ]; do sleep 0.01; done; exit 6"
            run = context(data_dir, 1, ["sh", "-c", script])
            handle = await backend.start(run)
            watch = backend.watch(1, handle)
            assert await anext(watch) == Running()
            await until(lambda: "ready" in _read(run.log_dir / "stdout.log"), "the run")
            # Break the connection under the backend's feet, as a failing socket would.
            connection = backend._client.current
            assert connection is not None and connection.transport is not None
            connection.transport.abort()
            (run.work_dir / "go").touch()  # the run ends, perhaps before the reconnection
            assert await asyncio.wait_for(anext(watch), DEADLINE) == Exited(6)
            with pytest.raises(StopAsyncIteration):
                await anext(watch)

    arun(main())


def test_runs_of_a_dead_supervisor_are_lost(data_dir: Path) -> None:
    async def main() -> None:
        async with opened(data_dir) as backend:
            handle = await backend.start(context(data_dir, 1, ["sleep", "300"]))
            watch = backend.watch(1, handle)
            assert await anext(watch) == Running()
            assert backend.supervisor_pid is not None
            os.kill(backend.supervisor_pid, signal.SIGKILL)
            try:
                with pytest.raises(RunLost, match="no trace of run 1"):
                    await asyncio.wait_for(anext(watch), DEADLINE)
            finally:
                os.killpg(handle["pid"], signal.SIGKILL)  # the orphan nobody supervises
            assert backend.supervisor_pid is not None  # a new one was started meanwhile
            run = context(data_dir, 2, ["true"])
            assert await run_to_end(backend, run) == Exited(0)

    arun(main())


# ---------------------------------------------------------------------------------- lifetime


def test_concurrent_opens_share_one_supervisor(data_dir: Path) -> None:
    async def main() -> None:
        first, second = LocalBackend(data_dir=data_dir), LocalBackend(data_dir=data_dir)
        await asyncio.gather(first.open(), second.open())
        try:
            assert first.supervisor_pid == second.supervisor_pid
            assert _supervisors_of(data_dir) == [first.supervisor_pid]
        finally:
            await first.close()
            await second.close()

    arun(main())


def test_start_race_between_processes_leaves_one_supervisor(data_dir: Path) -> None:
    """Two servers (two processes) start a supervisor at the same moment: one wins, the
    other's launcher exits 0 without touching anything, and both can then connect."""
    command = [sys.executable, "-m", "herder.supervisor", "--detach", str(data_dir)]
    launchers = [subprocess.Popen(command) for _ in range(4)]
    assert [launcher.wait(timeout=DEADLINE) for launcher in launchers] == [0, 0, 0, 0]
    (pid,) = _supervisors_of(data_dir)
    assert int((data_dir / "supervisor.pid").read_text()) == pid

    async def main() -> None:
        async with opened(data_dir) as first, opened(data_dir) as second:
            assert first.supervisor_pid == second.supervisor_pid == pid

    arun(main())


def test_supervisor_leaves_when_idle_and_keeps_a_private_socket(data_dir: Path) -> None:
    async def main() -> int:
        async with opened(data_dir) as backend:
            assert backend.supervisor_pid is not None
            assert _mode(data_dir / "supervisor.sock") == 0o600
            assert _mode(data_dir) == 0o700
            pid_file = (data_dir / "supervisor.pid").read_text()
            assert int(pid_file) == backend.supervisor_pid
            return backend.supervisor_pid

    pid = arun(main())
    assert _wait_gone(pid, timeout=DEADLINE), "the idle supervisor should have left"
    assert not (data_dir / "supervisor.sock").exists()
    assert not (data_dir / "supervisor.pid").exists()


def test_sigterm_lets_running_runs_finish(data_dir: Path) -> None:
    async def main() -> None:
        async with opened(data_dir) as backend:
            script = "while [ ! -e go ]; do sleep 0.01; done; exit 2"
            run = context(data_dir, 1, ["sh", "-c", script])
            handle = await backend.start(run)
            pid = backend.supervisor_pid
            assert pid is not None
            os.kill(pid, signal.SIGTERM)
            log = data_dir / "supervisor.log"
            await until(lambda: "stopping once 1 running" in _read(log), "the SIGTERM")
            with pytest.raises(BackendError, match="shutting down"):
                await backend.start(context(data_dir, 2, ["true"]))
            (run.work_dir / "go").touch()
            assert await ending(backend, 1, handle) == Exited(2)
            await asyncio.wait_for(asyncio.to_thread(_wait_gone, pid), DEADLINE)

    arun(main())


def test_too_long_socket_path(data_dir: Path) -> None:
    async def main() -> None:
        backend = LocalBackend(data_dir=data_dir / ("x" * 120))
        with pytest.raises(BackendError, match="bytes long"):
            await backend.open()

    arun(main())
