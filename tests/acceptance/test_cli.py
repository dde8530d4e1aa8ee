"""The ``herder`` CLI against a real server: what an operator types, what they get back."""

from __future__ import annotations

import json

import pytest

from tests.servers import Server

pytestmark = pytest.mark.acceptance


def test_create_run_wait_and_read(shared_server: Server) -> None:
    s = shared_server
    created = s.cli("job", "create", "cli-hello", "--", "sh", "-c", "echo hi; exit 4")
    assert created.returncode == 0, created.stderr
    waited = s.cli("run", "cli-hello", "--wait")
    assert waited.returncode == 4, waited.stderr  # the run's own exit code
    runs = json.loads(s.cli("runs", "--job", "cli-hello", "-o", "json").stdout)
    run = runs["items"][0] if isinstance(runs, dict) else runs[0]
    assert run["status"] == "APP_ERROR" and run["exit_code"] == 4
    logs = s.cli("logs", str(run["id"]))
    assert logs.returncode == 0 and logs.stdout == "hi\n"


def test_run_follow_streams_and_exits_zero(shared_server: Server) -> None:
    s = shared_server
    assert s.cli("job", "create", "cli-follow", "--command", "echo one; echo two").returncode == 0
    followed = s.cli("run", "cli-follow", "--follow")
    assert followed.returncode == 0, followed.stderr
    assert "one\ntwo\n" in followed.stdout


def test_cancel_from_the_cli(shared_server: Server) -> None:
    s = shared_server
    assert s.cli("job", "create", "cli-sleep", "--", "sleep", "300").returncode == 0
    run_id = s.cli("run", "cli-sleep").stdout.strip().split()[-1]
    s.wait_status(int(run_id), "RUNNING")
    assert s.cli("cancel", run_id, "--force").returncode == 0
    assert s.wait_end(int(run_id))["status"] == "ABORTED"


def test_job_list_and_show(shared_server: Server) -> None:
    s = shared_server
    s.cli("job", "create", "cli-listed", "--label", "team=ops", "--", "true")
    listed = json.loads(s.cli("job", "list", "--label", "team=ops", "-o", "json").stdout)
    items = listed["items"] if isinstance(listed, dict) else listed
    assert [j["name"] for j in items] == ["cli-listed"]
    shown = s.cli("job", "show", "cli-listed")
    assert shown.returncode == 0 and "cli-listed" in shown.stdout


def test_errors_say_what_to_do(shared_server: Server) -> None:
    missing = shared_server.cli("run", "no-such-job")
    assert missing.returncode == 1 and "no job" in missing.stderr
    unreachable = shared_server.cli("--server", "http://127.0.0.1:9", "runs")
    assert unreachable.returncode == 1 and "herder server" in unreachable.stderr
