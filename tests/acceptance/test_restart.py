"""Killing the server with SIGKILL loses nothing: runs keep running and end in their true state."""

from __future__ import annotations

import os
import re
import signal

import pytest

from tests.servers import Server, process_alive, wait_for

pytestmark = [pytest.mark.acceptance, pytest.mark.slow]


def test_kill_9_mid_run_then_restart(server: Server) -> None:
    server.create_job(name="long", command="echo started; sleep 2; echo finished; exit 7")
    server.create_job(name="short", command="sleep 0.5; echo quick")
    long_id = server.run("long")["id"]
    short_id = server.run("short")["id"]
    wait_for(lambda: "started" in server.log(long_id), what="the run to start")
    server.kill(signal.SIGKILL)
    # While the server is down the short run ends; the long one is still running.
    wait_for(lambda: f'"id":{short_id},"exit_code"' in _journal(server),
             what="the short run to end while the server is down")
    server.start()
    long_end = server.wait_end(long_id, timeout=30)
    assert (long_end["status"], long_end["exit_code"]) == ("APP_ERROR", 7)
    assert server.log(long_id) == "started\nfinished\n"
    short_end = server.wait_end(short_id)
    assert short_end["status"] == "SUCCESS" and server.log(short_id) == "quick\n"


def test_a_run_seen_in_doubt_is_reconciled(server: Server) -> None:
    server.create_job(name="doubt", command="sleep 3; echo done")
    run_id = server.run("doubt")["id"]
    server.wait_status(run_id, "RUNNING")
    server.kill(signal.SIGKILL)
    server.start()
    # Right after the restart it is either back RUNNING (re-attached) or already over.
    assert server.get_run(run_id)["status"] in ("IN_DOUBT", "RUNNING", "SUCCESS")
    assert server.wait_end(run_id, timeout=30)["status"] == "SUCCESS"
    assert server.log(run_id) == "done\n"


def test_cancel_after_a_restart_still_stops_the_run(server: Server) -> None:
    server.create_job(name="forever", command=["sleep", "300"])
    run_id = server.run("forever")["id"]
    server.wait_status(run_id, "RUNNING")
    server.restart()
    server.wait_status(run_id, "RUNNING", timeout=30)
    server.client.post(f"/api/v1/runs/{run_id}/cancel", params={"force": "true"})
    assert server.wait_end(run_id)["status"] == "ABORTED"


def test_a_run_that_cannot_be_found_ends_proc_error(server: Server) -> None:
    server.create_job(name="vanish", command=["sleep", "300"])
    run_id = server.run("vanish")["id"]
    sleeper = server.wait_status(run_id, "RUNNING")
    server.kill(signal.SIGKILL)
    # Lose every trace: the supervisor and its child go, and no exit record was written.
    pid = int((server.data_dir / "supervisor.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not process_alive(pid), what="the supervisor to be gone")
    assert f'"id":{run_id},"exit_code"' not in _journal(server)
    server.start()
    end = server.wait_end(run_id, timeout=30)
    assert end["status"] == "PROC_ERROR" and "no trace" in end["error"]
    # The orphaned sleep does not run on unobserved: its process group was killed.
    match = re.search(r"process group (\d+) was killed", end["error"])
    assert match and sleeper["status"] == "RUNNING"
    wait_for(lambda: not process_alive(int(match.group(1))), what="the orphan to be gone")


def _journal(server: Server) -> str:
    try:
        return (server.data_dir / "exits.jsonl").read_text()
    except FileNotFoundError:
        return ""
