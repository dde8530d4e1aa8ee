"""Reaching the supervisor of a data folder from herder, and starting it when nobody answers."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

import herder
from herder.model.errors import BackendError
from herder.supervisor.protocol import LOG_NAME, socket_path

P = TypeVar("P", bound=asyncio.Protocol)

_FIRST_PAUSE = 0.005
_LAST_PAUSE = 0.5


def log_tail(data_dir: Path, lines: int = 5) -> str:
    """The end of ``supervisor.log``, to quote in an error (empty when there is none)."""
    path = data_dir / LOG_NAME
    try:
        with open(path, "rb") as file:
            file.seek(max(0, file.seek(0, os.SEEK_END) - 4096))
            text = file.read().decode(errors="replace")
    except OSError:
        return ""
    kept = [line for line in text.splitlines() if line.strip()][-lines:]
    return f"; {path} ends with:\n" + "\n".join(kept) if kept else ""


def _launch(data_dir: Path, timeout: float, settings: Mapping[str, str]) -> int | None:
    """Run ``python -m herder.supervisor --detach`` and wait until it says it listens (0), lost
    the race to another supervisor (0) or failed (its exit status); ``None`` on timeout.
    ``settings`` (``HERDER_*`` variables the supervisor reads) are added to its environment."""
    os.makedirs(data_dir, mode=0o700, exist_ok=True)
    # The secret keys stay with the server: the supervisor never decrypts anything.
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERDER_SECRET")}
    env |= dict(settings)
    # The supervisor must import this very herder, even when it is not installed.
    source = os.path.dirname(os.path.dirname(os.path.abspath(herder.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [source, env.get("PYTHONPATH")]))
    with open(data_dir / LOG_NAME, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "herder.supervisor", "--detach", str(data_dir)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=env,
            cwd="/",
            start_new_session=True,  # no terminal's Ctrl-C or SIGHUP reaches it or its runs
            close_fds=True,
        )
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()  # only the launcher; a supervisor it already forked lives on
        process.wait()
        return None


# Launches under way, per event loop and socket path: backends of one process that open at the
# same moment share one launcher instead of each paying a Python start-up to learn that the
# other one won the lock (the runs of the slower one would start 100 ms late).
_launches: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[str, asyncio.Future[int | None]]
] = weakref.WeakKeyDictionary()


async def _shared_launch(
    loop: asyncio.AbstractEventLoop,
    path: str,
    data_dir: Path,
    within: float,
    settings: Mapping[str, str],
) -> int | None:
    launches = _launches.setdefault(loop, {})
    launch = launches.get(path)
    if launch is None or launch.done():
        launch = launches[path] = asyncio.ensure_future(
            asyncio.to_thread(_launch, data_dir, within, settings)
        )

        def forget(finished: asyncio.Future[int | None]) -> None:
            if launches.get(path) is finished:
                del launches[path]

        launch.add_done_callback(forget)
    return await asyncio.shield(launch)


async def connect(
    data_dir: Path,
    factory: Callable[[], P],
    *,
    deadline: float,
    settings: Mapping[str, str] | None = None,
) -> P:
    """A connection to the supervisor of ``data_dir`` (an absolute path), started first if
    nothing answers.

    Raises ``BackendError`` (quoting the supervisor's log) when none answers by ``deadline``
    (in ``loop.time()``).
    """
    try:
        path = socket_path(data_dir)
    except ValueError as exc:
        raise BackendError(str(exc)) from exc
    loop = asyncio.get_running_loop()
    pause = _FIRST_PAUSE
    launched = False
    while True:
        try:
            _, protocol = await loop.create_unix_connection(factory, path)
            return protocol
        except (FileNotFoundError, ConnectionRefusedError):
            pass  # nobody there (yet)
        except OSError as exc:
            raise BackendError(f"cannot reach the supervisor at {path}: {exc}") from exc
        if launched:
            # The launcher said 0 yet nobody answers: another supervisor holds the lock and is
            # starting or leaving. Give it a moment, then try again (or start one anew).
            launched = False
            await asyncio.sleep(min(pause, max(0.0, deadline - loop.time())))
            pause = min(pause * 2, _LAST_PAUSE)
            continue
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise BackendError(
                f"the supervisor of {data_dir} did not answer in time" + log_tail(data_dir)
            )
        try:
            status = await _shared_launch(loop, path, data_dir, remaining, settings or {})
        except OSError as exc:
            raise BackendError(f"cannot start the supervisor of {data_dir}: {exc}") from exc
        if status is not None and status != 0:
            raise BackendError(
                f"the supervisor of {data_dir} could not start (exit status {status})"
                + log_tail(data_dir)
            )
        launched = status == 0
