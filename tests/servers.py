"""A real ``herder server`` process on a loopback port, for tests that drive it from outside."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(
    condition: Callable[[], Any], *, timeout: float = 20.0, interval: float = 0.02, what: str = ""
) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(interval)


def process_alive(pid: int) -> bool:
    """True for a live process; a zombie (exited, not yet reaped) counts as gone."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


class Server:
    """Start, kill and restart one server; ``client`` talks to it over HTTP."""

    def __init__(self, data_dir: Path, *, database_url: str | None = None,
                 env: dict[str, str] | None = None, args: list[str] | None = None) -> None:
        self.data_dir = data_dir
        self.args = args or []
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = dict(os.environ)
        self.env.pop("HERDER_DATABASE_URL", None)
        self.env.update({"HERDER_SUPERVISOR_IDLE": "3", "HERDER_KILL_GRACE": "2s"})
        if database_url:
            self.env["HERDER_DATABASE_URL"] = database_url
        self.env.update(env or {})
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"{data_dir.name}-server.log"
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def start(self) -> Server:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "herder", "server", "--port", str(self.port),
             "--data-dir", str(self.data_dir), *self.args],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=self.data_dir.parent,
        )
        log.close()
        wait_for(self._ready, timeout=30, what=f"server on {self.url} (log: {self.log_path})")
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"server exited early:\n{self.log_path.read_text()[-3000:]}")
        try:
            return self.client.get("/readyz").status_code == 200
        except httpx.TransportError:
            return False

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)

    def restart(self) -> None:
        self.kill()
        self.start()

    def close(self) -> None:
        self.stop()
        self.client.close()
        _stop_supervisor(self.data_dir)

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run the ``herder`` CLI against this server."""
        return subprocess.run(
            [sys.executable, "-m", "herder", *args], env=self.env | {"HERDER_URL": self.url},
            capture_output=True, text=True, timeout=timeout, check=False,
        )

    # Conveniences for tests ------------------------------------------------------------------

    def create_job(self, **spec: Any) -> dict[str, Any]:
        response = self.client.post("/api/v1/jobs", json=spec)
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    def run(self, job: str, **body: Any) -> dict[str, Any]:
        response = self.client.post(f"/api/v1/jobs/{job}/runs", json=body)
        assert response.status_code == 201, response.text
        run: dict[str, Any] = response.json()
        return run

    def get_run(self, run_id: int) -> dict[str, Any]:
        response = self.client.get(f"/api/v1/runs/{run_id}")
        assert response.status_code == 200, response.text
        run: dict[str, Any] = response.json()
        return run

    def wait_status(self, run_id: int, *statuses: str, timeout: float = 20) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            run = self.get_run(run_id)
            return run if run["status"] in statuses else None

        result: dict[str, Any] = wait_for(
            reached, timeout=timeout, what=f"run {run_id} to reach {statuses}"
        )
        return result

    def wait_end(self, run_id: int, timeout: float = 20) -> dict[str, Any]:
        return self.wait_status(run_id, "TIMEOUT", "PROC_ERROR", "APP_ERROR", "ABORTED",
                                "SKIPPED", "SUCCESS", timeout=timeout)

    def log(self, run_id: int, stream: str = "output") -> str:
        return self.client.get(f"/api/v1/runs/{run_id}/logs", params={"stream": stream}).text


def _stop_supervisor(data_dir: Path) -> None:
    """Tests leave no supervisor behind (in production it exits by itself when idle)."""
    pid_file = data_dir / "supervisor.pid"
    with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
        os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
