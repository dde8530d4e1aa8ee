"""A server taking over the local runs of another server of the same machine.

Backend A (data folder A) starts runs and goes away; backend B (data folder B) follows and
cancels them through A's handles: through A's supervisor while it runs, from A's exit journal
once it is gone, and never by starting a supervisor in A's folder. Real supervisors, real
processes; waits are on conditions, under deadlines.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from herder.backends.base import Exited, Running
from herder.backends.local import LocalBackend
from herder.model.errors import BackendError, RunLost
from tests.integration.test_local_backend import (
    DEADLINE,
    PATH,
    _read,
    _stop_supervisors,
    _supervisors_of,
    _wait_gone,
    arun,
    context,
    ending,
    events,
    opened,
    until,
)

GATED = "echo ready; while [ ! -e go ]; do sleep 0.01; done; echo done; exit 3"


def _stop_runs_under(root: Path) -> None:
    """Kill the process groups of runs working under ``root`` that a killed supervisor left
    behind (their working folder tells them apart from anything else)."""
    prefix = f"{root}/"
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if not os.readlink(f"/proc/{entry}/cwd").startswith(prefix):
                continue
            group = os.getpgid(int(entry))
            if group != os.getpgrp():
                os.killpg(group, signal.SIGKILL)
        except OSError:
            continue


@pytest.fixture
def folders(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, Path]]:
    """Data folders A and B (short paths, for the sockets) whose supervisors leave after 2
    idle seconds and are stopped at the end of the test anyway, with any run left over."""
    monkeypatch.setenv("HERDER_SUPERVISOR_IDLE", "2")
    root = Path(tempfile.mkdtemp(prefix="herder-", dir="/tmp"))
    try:
        yield root / "a", root / "b"
    finally:
        for folder in (root / "a", root / "b"):
            _stop_supervisors(folder)
        _stop_runs_under(root)
        shutil.rmtree(root, ignore_errors=True)


def _run(folder: Path, run_id: int, script: str) -> Any:
    # HERDER_RUN_ID is what lets a backend recognise the run's orphan by its environment.
    return context(folder, run_id, ["sh", "-c", script], env=PATH | {"HERDER_RUN_ID": str(run_id)})


async def _started_and_orphaned(folder: Path, run_id: int, script: str) -> tuple[Any, Any]:
    """A run started by backend A, then A's supervisor killed (after A has gone, so that no
    client of A starts another one): the run goes on, with nobody to journal its end."""
    run = _run(folder, run_id, script)
    async with opened(folder) as a:
        handle = await a.start(run)
        supervisor = a.supervisor_pid
    assert supervisor is not None
    await until(lambda: "ready" in _read(run.log_dir / "stdout.log"), "the run")
    os.kill(supervisor, signal.SIGKILL)
    assert _wait_gone(supervisor)
    return run, handle


def test_handle_describes_where_the_run_is(folders: tuple[Path, Path]) -> None:
    dir_a, _ = folders

    async def main() -> None:
        async with opened(dir_a) as a:
            run = _run(dir_a, 1, "exit 0")
            handle = await a.start(run)
            assert handle == {
                "pid": handle["pid"],
                "log_dir": str(run.log_dir),
                "supervisor": str(dir_a),
                "host": socket.gethostname(),
            }
            assert isinstance(handle["pid"], int)
            assert await ending(a, 1, handle) == Exited(0)

    arun(main())


def test_another_backend_follows_a_run_to_its_exit_code(folders: tuple[Path, Path]) -> None:
    dir_a, dir_b = folders

    async def main() -> int | None:
        run = _run(dir_a, 1, GATED)
        async with opened(dir_a) as a:  # server A starts the run, then goes away
            handle = await a.start(run)
            supervisor_a = a.supervisor_pid
        async with opened(dir_b) as b:
            watch = b.watch(1, handle)
            assert await anext(watch) == Running()
            (run.work_dir / "go").touch()
            assert await anext(watch) == Exited(3)
            with pytest.raises(StopAsyncIteration):
                await anext(watch)
            assert b.supervisor_pid != supervisor_a
            assert _supervisors_of(dir_a) == [supervisor_a]
        assert (run.log_dir / "output.log").read_text() == "ready\ndone\n"
        return supervisor_a

    supervisor_a = arun(main())
    # B let go of A's supervisor when it closed: idle, it leaves.
    assert supervisor_a is not None and _wait_gone(supervisor_a, DEADLINE)


def test_another_backend_cancels_a_run(folders: tuple[Path, Path]) -> None:
    dir_a, dir_b = folders

    async def main() -> None:
        async with opened(dir_a) as a:
            handle = await a.start(_run(dir_a, 1, "sleep 300"))
        async with opened(dir_b) as b:
            await b.cancel(1, handle, force=False, grace=60)
            assert await ending(b, 1, handle) == Exited(128 + 15, 15)

    arun(main())


def test_end_comes_from_the_journal_of_a_dead_supervisor(folders: tuple[Path, Path]) -> None:
    dir_a, dir_b = folders

    async def main() -> None:
        async with opened(dir_a) as a:
            handle = await a.start(_run(dir_a, 1, "exit 3"))
            assert await ending(a, 1, handle) == Exited(3)  # journaled before it is told
            supervisor = a.supervisor_pid
        assert supervisor is not None
        os.kill(supervisor, signal.SIGKILL)
        assert _wait_gone(supervisor)
        async with opened(dir_b) as b:
            assert await events(b, 1, handle) == [Exited(3)]
            assert await events(b, 1, handle) == [Exited(3)]  # again, from what was read
        assert _supervisors_of(dir_a) == []  # B never starts a supervisor in A's folder

    arun(main())


def test_run_of_a_dead_supervisor_without_an_end_is_lost(folders: tuple[Path, Path]) -> None:
    dir_a, dir_b = folders

    async def main() -> None:
        _, handle = await _started_and_orphaned(dir_a, 1, "echo ready; sleep 300")
        async with opened(dir_b) as b:
            gone = re.escape(f"supervisor of {dir_a}, which is not running")
            with pytest.raises(RunLost, match=gone):
                await events(b, 1, handle)
        assert _wait_gone(handle["pid"])  # the orphan nobody could follow was killed
        assert _supervisors_of(dir_a) == []

    arun(main())


def test_supervisor_killed_during_the_watch(folders: tuple[Path, Path]) -> None:
    dir_a, dir_b = folders

    async def main() -> None:
        run = _run(dir_a, 1, "echo ready; sleep 300")
        async with opened(dir_a) as a:
            handle = await a.start(run)
            supervisor = a.supervisor_pid
        assert supervisor is not None
        async with opened(dir_b) as b:
            watch = b.watch(1, handle)
            assert await anext(watch) == Running()
            os.kill(supervisor, signal.SIGKILL)
            with pytest.raises(RunLost, match="which is not running"):
                await anext(watch)
        assert _wait_gone(handle["pid"])
        assert _supervisors_of(dir_a) == []

    arun(main())


def test_cancel_kills_the_orphan_of_a_dead_supervisor(folders: tuple[Path, Path]) -> None:
    dir_a, dir_b = folders

    async def main() -> None:
        _, handle = await _started_and_orphaned(dir_a, 1, "echo ready; sleep 300")
        async with opened(dir_b) as b:
            await b.cancel(1, handle, force=False, grace=60)
        assert _wait_gone(handle["pid"])
        assert _supervisors_of(dir_a) == []

    arun(main())


def test_run_on_another_host_is_lost(folders: tuple[Path, Path]) -> None:
    dir_a, dir_b = folders
    handle = {"pid": 1234, "log_dir": str(dir_a / "logs" / "1"), "supervisor": str(dir_a),
              "host": "elsewhere.example"}
    message = (
        "run 1 was started by the local backend on host elsewhere.example; only a server on "
        "that host can follow it"
    )

    async def main() -> None:
        async with opened(dir_b) as b:
            with pytest.raises(RunLost) as lost:
                await events(b, 1, handle)
            assert lost.value.message == message
            with pytest.raises(RunLost, match="only a server on that host"):
                await b.cancel(1, handle, force=True, grace=0)
        assert _supervisors_of(dir_a) == []

    arun(main())


def test_old_style_handle_means_the_own_supervisor(folders: tuple[Path, Path]) -> None:
    dir_a, _ = folders

    async def main() -> None:
        async with opened(dir_a) as a:
            run = _run(dir_a, 1, GATED)
            handle = await a.start(run)
            old = {"pid": handle["pid"], "log_dir": handle["log_dir"]}
            watch = a.watch(1, old)
            assert await anext(watch) == Running()
            (run.work_dir / "go").touch()
            assert await anext(watch) == Exited(3)
            long = await a.start(_run(dir_a, 2, "sleep 300"))
            await a.cancel(2, {"pid": long["pid"], "log_dir": long["log_dir"]}, force=True,
                           grace=0)
            assert await ending(a, 2, {"log_dir": long["log_dir"]}) == Exited(137, 9)

    arun(main())


def test_closed_backend_refuses_foreign_handles(folders: tuple[Path, Path]) -> None:
    dir_a, dir_b = folders

    async def main() -> None:
        b = LocalBackend(data_dir=dir_b)
        await b.close()
        with pytest.raises(BackendError, match="the local backend is closed"):
            await anext(b.watch(1, {"pid": None, "log_dir": "/x", "supervisor": str(dir_a)}))

    arun(main())
