"""Schedules on a real server with real processes: every slot runs once, across a kill -9,
and the job's policies act on real runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.servers import Server, wait_for

pytestmark = [pytest.mark.acceptance, pytest.mark.slow]
TERMINAL = {"TIMEOUT", "PROC_ERROR", "APP_ERROR", "ABORTED", "SKIPPED", "SUCCESS"}


def runs_of(server: Server, job: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"job": job, "limit": 1000}
        if cursor:
            params["cursor"] = cursor
        page = server.client.get("/api/v1/runs", params=params).json()
        found.extend(page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            return found


def slot_of(run: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(run["scheduled_for"])


def assert_every_second_once(runs: list[dict[str, Any]]) -> None:
    """Every second from the first slot to the last has exactly one run, which succeeded."""
    counts = Counter(slot_of(r) for r in runs)
    doubled = [slot for slot, n in counts.items() if n > 1]
    assert not doubled, f"slots run twice: {doubled}"
    first, last = min(counts), max(counts)
    seconds = int((last - first).total_seconds())
    expected = {first + timedelta(seconds=k) for k in range(seconds + 1)}
    assert set(counts) == expected, f"slots lost: {sorted(expected - set(counts))}"
    failed = [(r["id"], r["status"], r["error"]) for r in runs if r["status"] != "SUCCESS"]
    assert not failed, f"runs that did not succeed: {failed}"


def test_every_second_with_no_slot_doubled_or_lost_over_a_kill_9(server: Server) -> None:
    server.create_job(name="tick", command="true", schedule={"cron": "* * * * * *"})
    wait_for(lambda: len(runs_of(server, "tick")) >= 3, timeout=20, what="three slots to run")
    server.kill(signal.SIGKILL)
    server.start()
    restarted = datetime.now().astimezone()
    wait_for(lambda: any(slot_of(r) > restarted + timedelta(seconds=3)
                         for r in runs_of(server, "tick")),
             timeout=30, what="slots after the restart")
    server.client.post("/api/v1/jobs/tick/disable")
    runs = wait_for(lambda: (rs := runs_of(server, "tick"))
                    and all(r["status"] in TERMINAL for r in rs) and rs,
                    timeout=30, what="every run to end")
    assert_every_second_once(runs)
    assert all(r["trigger"] == "schedule" and r["attempt"] == 1 for r in runs)


def test_retries_make_linked_attempts_until_the_limit(server: Server) -> None:
    server.create_job(name="flaky", command="exit 3", retries={"limit": 2, "backoff": "0.2s"})
    first = server.run("flaky")["id"]
    wait_for(lambda: len(runs := runs_of(server, "flaky")) == 3
             and all(r["status"] in TERMINAL for r in runs),
             timeout=30, what="three attempts to end")
    runs = sorted(runs_of(server, "flaky"), key=lambda r: r["id"])
    assert [(r["attempt"], r["status"], r["exit_code"]) for r in runs] == [
        (1, "APP_ERROR", 3), (2, "APP_ERROR", 3), (3, "APP_ERROR", 3)]
    assert [r["parent_id"] for r in runs] == [None, first, runs[1]["id"]]
    assert [r["trigger"] for r in runs] == ["api", "retry", "retry"]


def test_replace_aborts_the_running_run_and_queue_waits(server: Server) -> None:
    server.create_job(name="swap", command=["sleep", "300"], concurrency="replace")
    old = server.run("swap")["id"]
    server.wait_status(old, "RUNNING")
    new = server.run("swap")["id"]
    assert server.wait_end(old)["status"] == "ABORTED"
    server.wait_status(new, "RUNNING")
    server.client.post(f"/api/v1/runs/{new}/cancel", params={"force": "true"})

    server.create_job(name="line", command="sleep 0.3", concurrency="queue")
    ids = [server.run("line")["id"] for _ in range(3)]
    assert [server.get_run(i)["status"] for i in ids[1:]] == ["WAITING", "WAITING"]
    ends = [server.wait_end(i) for i in ids]
    assert [e["status"] for e in ends] == ["SUCCESS"] * 3
    starts = [e["started_at"] for e in ends]
    finishes = [e["finished_at"] for e in ends]
    assert starts[1] >= finishes[0] and starts[2] >= finishes[1]  # one at a time, in order


def test_forbid_answers_409_with_the_run_in_the_way(server: Server) -> None:
    server.create_job(name="solo", command=["sleep", "300"], concurrency="forbid")
    busy = server.run("solo")["id"]
    answer = server.client.post("/api/v1/jobs/solo/runs", json={})
    assert answer.status_code == 409
    assert f"run {busy}" in answer.json()["error"]["message"]
    server.client.post(f"/api/v1/runs/{busy}/cancel", params={"force": "true"})


def test_the_schedule_report_over_the_api(server: Server) -> None:
    server.create_job(name="daily", command="true",
                      schedule={"cron": "0 9 * * *", "timezone": "Europe/Rome"})
    report = server.client.get("/api/v1/jobs/daily/schedule", params={"upcoming": 5}).json()
    assert report["recent"] == [] and len(report["upcoming"]) == 5
    assert all(u["local"].endswith(("+01:00", "+02:00")) and "T09:00:00" in u["local"]
               for u in report["upcoming"])
    job = server.client.get("/api/v1/jobs/daily").json()
    assert job["next_run_at"] == report["upcoming"][0]["slot"]


def test_a_second_server_on_one_sqlite_database_refuses_to_start(server: Server) -> None:
    database = f"sqlite:///{server.data_dir / 'herder.db'}"
    other = Server(server.data_dir.parent / "other", database_url=database)
    other.data_dir.mkdir()
    started = subprocess.run(
        [sys.executable, "-m", "herder", "server", "--port", str(other.port),
         "--data-dir", str(other.data_dir)],
        env=other.env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert started.returncode == 1
    assert "SQLite allows one active scheduler" in started.stderr
    assert "Traceback" not in started.stderr
    # The same data folder twice is refused too.
    again = subprocess.run(
        [sys.executable, "-m", "herder", "server", "--port", str(other.port),
         "--data-dir", str(server.data_dir)],
        env=other.env | {"HERDER_DATABASE_URL": database}, capture_output=True, text=True,
        timeout=60, check=False,
    )
    assert again.returncode == 1 and "is running on the data folder" in again.stderr


@pytest.mark.parametrize(("url", "said"), [
    ("postgresql://herder:hunter2@127.0.0.1:1/herder", "does not answer: connection failed"),
    ("mysql://herder@127.0.0.1/herder", "names no database herder can use"),
    ("not a url", "names no database herder can use"),
])
def test_a_store_it_cannot_use_is_said_in_one_line(tmp_path: Path, url: str, said: str) -> None:
    started = subprocess.run(
        [sys.executable, "-m", "herder", "server", "--port", "0",
         "--data-dir", str(tmp_path / "data")],
        env=os.environ | {"HERDER_DATABASE_URL": url}, capture_output=True, text=True,
        timeout=60, check=False,
    )
    assert started.returncode == 1
    assert "Traceback" not in started.stderr and said in started.stderr, started.stderr
    assert "hunter2" not in started.stderr  # a password is never printed
