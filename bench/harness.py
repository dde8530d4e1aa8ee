"""What the benchmarks share: a real ``herder server`` subprocess, its supervisor, a throwaway
PostgreSQL database.

The scripts are run as ``python bench/NAME.py``, so this folder is on ``sys.path`` and they
``import harness`` directly.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    data_dir: Path,
    database_url: str | None,
    log: Path,
    *,
    timeout: float = 60.0,
    extra_env: Mapping[str, str] | None = None,
    make_data_dir: bool = False,
) -> tuple[subprocess.Popen[bytes], str]:
    """``python -m herder server`` on a free port, its output appended to ``log``; returns the
    process and its base URL once ``/healthz`` says 200.

    Configured through ``HERDER_*`` variables (``HERDER_DATABASE_URL`` from the environment is
    dropped; ``database_url`` sets it, None means SQLite in ``data_dir``), plus ``extra_env``.
    ``make_data_dir`` creates ``data_dir`` (and its parents) first. Raises RuntimeError if the
    server exits early or does not answer within ``timeout`` seconds (then it is stopped).
    """
    port = free_port()
    env = dict(os.environ)
    env.pop("HERDER_DATABASE_URL", None)
    env.update({"HERDER_DATA_DIR": str(data_dir), "HERDER_PORT": str(port),
                "HERDER_LOG_LEVEL": "warning"})
    if database_url:
        env["HERDER_DATABASE_URL"] = database_url
    env.update(extra_env or {})
    if make_data_dir:
        data_dir.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "herder", "server"], env=env, stdout=out,
            stderr=subprocess.STDOUT, cwd=data_dir.parent,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return process, url
        if time.monotonic() > deadline:
            stop_server(process)
            raise RuntimeError(f"no /healthz answer from {url} within {timeout:g} s (log: {log})")
        time.sleep(0.05)


def stop_server(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server and wait for it (SIGKILL after 15 s)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def supervisors_of(data_dir: Path) -> list[int]:
    """Pids of ``herder.supervisor`` processes whose arguments name ``data_dir``."""
    folder = str(data_dir.resolve())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        text = [a.decode(errors="replace") for a in args]
        if "herder.supervisor" in text and any(folder in a for a in text):
            found.append(int(entry.name))
    return found


def stop_supervisors(data_dir: Path) -> None:
    """SIGTERM the data folder's supervisor by pid (SIGKILL if it lingers)."""
    for pid in supervisors_of(data_dir):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def throwaway_database(url: str | None) -> Iterator[str | None]:
    """A new, empty PostgreSQL database beside ``url`` (dropped at the end); None for SQLite."""
    if not url:
        yield None
        return
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    from herder.store.database import make_engine

    name = f"herder_bench_{uuid.uuid4().hex[:10]}"
    admin = make_engine(url).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
