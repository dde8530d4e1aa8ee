"""Two servers on one PostgreSQL share the schedule: every slot runs once, also when one of
them is killed with SIGKILL mid-way and the other takes over its runs."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from tests.acceptance.conftest import short_dir
from tests.acceptance.test_schedules import TERMINAL, assert_every_second_once, runs_of, slot_of
from tests.servers import Server, wait_for

pytestmark = [pytest.mark.acceptance, pytest.mark.postgres, pytest.mark.slow]
JOBS = 10
LEASE = {"HERDER_LEASE_TTL": "2s"}


@pytest.fixture
def pair(postgres_url: str) -> Iterator[tuple[Server, Server]]:
    base = short_dir()
    a = Server(base / "a", database_url=postgres_url, env=LEASE).start()
    b = Server(base / "b", database_url=postgres_url, env=LEASE).start()
    yield a, b
    a.close()
    b.close()


def all_runs(server: Server) -> dict[str, list[dict[str, Any]]]:
    return {f"job-{i}": runs_of(server, f"job-{i}") for i in range(JOBS)}


def ended_here(server: Server) -> int:
    journal = server.data_dir / "exits.jsonl"
    return len(journal.read_text().splitlines()) if journal.exists() else 0


def total(server: Server) -> int:
    return sum(len(runs) for runs in all_runs(server).values())


def test_two_servers_run_every_slot_once_also_when_one_is_killed(
    pair: tuple[Server, Server],
) -> None:
    a, b = pair
    for i in range(JOBS):
        a.create_job(name=f"job-{i}", command="echo slot", schedule={"cron": "* * * * * *"})
    wait_for(lambda: total(b) >= 100, timeout=60, what="100 slots run by the pair")
    # Both servers dispatch: each one's supervisor has recorded ends of runs.
    wait_for(lambda: ended_here(a) and ended_here(b), timeout=30, what="both to dispatch")
    a.kill(signal.SIGKILL)
    killed = datetime.now().astimezone()
    wait_for(lambda: total(b) >= 220, timeout=60, what="100 more slots with one server left")
    for i in range(JOBS):
        b.client.post(f"/api/v1/jobs/job-{i}/disable")
    wait_for(lambda: all(r["status"] in TERMINAL for runs in all_runs(b).values() for r in runs),
             timeout=30, what="every run to end, those of the killed server too")
    runs = all_runs(b)
    for job_runs in runs.values():
        assert_every_second_once(job_runs)
    assert sum(len(r) for r in runs.values()) >= 200
    assert any(slot_of(r) > killed for job_runs in runs.values() for r in job_runs)
    # Server b serves the logs of every run, those started by the killed server too (on one
    # host, the data folders are side by side).
    assert {b.log(r["id"]) for r in runs["job-0"]} == {"slot\n"}
    # Runs the killed server had claimed were taken over once its lease ran out (when it had
    # any at that instant, which is usual: runs are claimed half a second ahead of the slot).
    took_over = "took over" in b.log_path.read_text()
    print(f"server b took over runs of server a: {took_over}")
