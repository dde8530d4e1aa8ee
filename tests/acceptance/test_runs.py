"""A real server drives real processes: outcomes, what a run sees, logs, timeouts, cancels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.servers import Server, process_alive, wait_for

pytestmark = pytest.mark.acceptance


def test_outcomes(shared_server: Server) -> None:
    s = shared_server
    s.create_job(name="ok", command=["true"])
    s.create_job(name="fails", command="exit 3")
    s.create_job(name="nobinary", command=["/no/such/program", "x"])
    ok, fails, missing = (s.run(name)["id"] for name in ("ok", "fails", "nobinary"))
    assert s.wait_end(ok)["status"] == "SUCCESS"
    failed = s.wait_end(fails)
    assert (failed["status"], failed["status_code"], failed["exit_code"]) == ("APP_ERROR", 420, 3)
    lost = s.wait_end(missing)
    assert lost["status"] == "PROC_ERROR" and "/no/such/program" in lost["error"]
    assert lost["exit_code"] is None


def test_what_a_run_sees(shared_server: Server) -> None:
    s = shared_server
    s.create_job(name="env-dump", command=["sh", "-c", "env; pwd"], env={"COLOR": "blue"},
                 params={"db": "sales", "dry": False})
    run = s.run("env-dump", params={"db": "hr; rm -rf /"})
    assert s.wait_end(run["id"])["status"] == "SUCCESS"
    lines = s.log(run["id"]).splitlines()
    env = dict(line.split("=", 1) for line in lines if "=" in line)
    assert env["HERDER_RUN_ID"] == str(run["id"])
    assert env["HERDER_ATTEMPT"] == "1"
    assert env["HERDER_JOB"] == "env-dump" and env["HERDER_NAMESPACE"] == "default"
    assert env["HERDER_SCHEDULED_FOR"] == ""
    assert env["HERDER_PARAM_DB"] == "hr; rm -rf /" and env["HERDER_PARAM_DRY"] == "false"
    assert env["COLOR"] == "blue"
    assert "HERDER_TEST_DATABASE_URL" not in env  # nothing of the server's leaks in
    workdir = lines[-1]
    assert workdir.endswith(f"/work/{run['id']}") and Path(workdir).is_dir()


def test_argv_templates_take_params_as_single_arguments(shared_server: Server) -> None:
    s = shared_server
    s.create_job(name="argv", command=["printf", "[%s]", "{{ params.who }}"],
                 params={"who": "x"})
    run = s.run("argv", params={"who": "a b; echo pwned"})
    s.wait_end(run["id"])
    assert s.log(run["id"]) == "[a b; echo pwned]"


def test_stdout_and_stderr_apart_and_together(shared_server: Server) -> None:
    s = shared_server
    # The combined log is ordered by arrival at the supervisor (as Docker's and Kubernetes'
    # are): writes to the two streams within the same instant may swap, so space them out.
    s.create_job(name="streams", command="echo one; sleep 0.2; echo two >&2; sleep 0.2; echo three")
    run_id = s.run("streams")["id"]
    s.wait_end(run_id)
    assert s.log(run_id, "stdout") == "one\nthree\n"
    assert s.log(run_id, "stderr") == "two\n"
    assert s.log(run_id) == "one\ntwo\nthree\n"
    response = s.client.get(f"/api/v1/runs/{run_id}/logs", params={"stream": "stderr"})
    assert response.headers["content-type"].startswith("text/plain")
    assert f"run-{run_id}-stderr.log" in response.headers["content-disposition"]


def test_timeout_kills_the_whole_tree(shared_server: Server, tmp_path: Path) -> None:
    s = shared_server
    pids = tmp_path / "pids"
    s.create_job(
        name="slow", timeout="1s",
        command=f"sleep 300 & echo $! > {pids}; sleep 301 & echo $! >> {pids}; wait",
    )
    run_id = s.run("slow")["id"]
    wait_for(lambda: pids.exists() and len(pids.read_text().split()) == 2, what="pids")
    children = [int(p) for p in pids.read_text().split()]
    assert all(process_alive(p) for p in children)
    end = s.wait_end(run_id, timeout=30)
    assert end["status"] == "TIMEOUT" and end["status_code"] == 400
    wait_for(lambda: not any(process_alive(p) for p in children), timeout=10, what="tree gone")


def test_cancel_terms_then_kills(shared_server: Server) -> None:
    s = shared_server
    s.create_job(name="stubborn",
                 command="trap 'echo got-term' TERM; echo ready; while :; do sleep 0.1; done")
    run_id = s.run("stubborn")["id"]
    wait_for(lambda: "ready" in s.log(run_id), what="the trap to be set")
    answer = s.client.post(f"/api/v1/runs/{run_id}/cancel").json()
    assert answer["cancel_requested_at"] and answer["status"] == "RUNNING"
    end = s.wait_end(run_id, timeout=30)  # the grace in these tests is 2 s
    assert end["status"] == "ABORTED" and end["status_code"] == 430
    assert "got-term" in s.log(run_id)


def test_force_cancel_kills_at_once(shared_server: Server) -> None:
    s = shared_server
    s.create_job(name="sleeper", command=["sleep", "300"])
    run_id = s.run("sleeper")["id"]
    s.wait_status(run_id, "RUNNING")
    s.client.post(f"/api/v1/runs/{run_id}/cancel", params={"force": "true"})
    end = s.wait_end(run_id, timeout=5)
    assert end["status"] == "ABORTED" and "forced" in end["error"]
    again = s.client.post(f"/api/v1/runs/{run_id}/cancel")
    assert again.status_code == 409


def test_follow_streams_a_running_log(shared_server: Server) -> None:
    s = shared_server
    s.create_job(name="ticker", command="for i in 1 2 3; do echo tick $i; sleep 0.3; done")
    run_id = s.run("ticker")["id"]
    with s.client.stream("GET", f"/api/v1/runs/{run_id}/logs", params={"follow": "true"}) as r:
        seen = list(r.iter_text())
    assert "".join(seen) == "tick 1\ntick 2\ntick 3\n"
    assert len(seen) >= 2  # it arrived while the run was running, not at the end in one piece
    assert s.get_run(run_id)["status"] == "SUCCESS"


def test_follow_from_an_offset_and_as_sse(shared_server: Server) -> None:
    s = shared_server
    s.create_job(name="sse", command="echo alpha; sleep 0.2; echo beta")
    run_id = s.run("sse")["id"]
    events = []
    with s.client.stream("GET", f"/api/v1/runs/{run_id}/logs", params={"follow": "true"},
                         headers={"accept": "text/event-stream"}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        events = r.read().decode()
    assert "data: alpha" in events and "data: beta" in events
    assert events.rstrip().endswith("event: end\ndata: SUCCESS")
    tail = s.client.get(f"/api/v1/runs/{run_id}/logs", params={"offset": 6}).text
    assert tail == "beta\n"


def test_search_runs(shared_server: Server) -> None:
    s = shared_server
    s.create_job(name="search-me", command="exit 1")
    ids = [s.run("search-me")["id"] for _ in range(3)]
    for run_id in ids:
        s.wait_end(run_id)
    page = s.client.get("/api/v1/runs", params={"job": "search-me", "limit": 2}).json()
    assert [r["id"] for r in page["items"]] == ids[::-1][:2] and page["next_cursor"]
    rest = s.client.get("/api/v1/runs", params={"job": "search-me",
                                                "cursor": page["next_cursor"]}).json()
    assert [r["id"] for r in rest["items"]] == ids[:1] and rest["next_cursor"] is None
    failed = s.client.get("/api/v1/runs", params=[("job", "search-me"), ("status", "APP_ERROR"),
                                                  ("status", "500")]).json()
    assert {r["id"] for r in failed["items"]} == set(ids)
    assert json.loads(json.dumps(failed))["items"][0]["job"] == "default/search-me"
