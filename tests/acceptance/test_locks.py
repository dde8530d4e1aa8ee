"""Locks over HTTP and the CLI: bad specs refused, a run waiting with its reason, the lock
listed with holders and waiters, an admin taking it back, a waiter cancelled."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.servers import Server, wait_for

pytestmark = pytest.mark.acceptance


def _gate(tmp: Path, name: str) -> str:
    """A command that runs until the test opens its gate (a file appears): no timing guesses."""
    return f"while [ ! -e {tmp}/{name} ]; do sleep 0.02; done"


@pytest.mark.parametrize(
    ("locks", "message"),
    [
        ("db", "locks: a list"),
        ([{"name": "db", "slots": 0}], "slots: must be from 1"),
        (["DB"], "not a valid name"),
        (["db", {"name": "db", "slots": 2}], "named twice"),
        ([{"name": "db", "mode": "shared"}], "unknown key 'mode'"),
        ([["db"]], "a name or {name, slots}"),
    ],
)
def test_bad_locks_are_refused_and_nothing_is_saved(
    shared_server: Server, locks: Any, message: str
) -> None:
    response = shared_server.client.post(
        "/api/v1/jobs", json={"name": "bad-locks", "command": "true", "locks": locks}
    )
    assert response.status_code == 422, response.text
    assert message in response.json()["error"]["message"]
    assert shared_server.client.get("/api/v1/jobs/bad-locks").status_code == 404


def test_two_jobs_disagreeing_on_slots_are_told_which_job(shared_server: Server) -> None:
    shared_server.create_job(name="pool-one", command="true",
                             locks=[{"name": "pool", "slots": 2}])
    response = shared_server.client.post(
        "/api/v1/jobs", json={"name": "pool-two", "command": "true", "locks": ["pool"]}
    )
    assert response.status_code == 409
    error = response.json()["error"]
    assert "job default/pool-one declares it" in error["message"]
    assert error["details"]["job"] == "default/pool-one"
    patched = shared_server.client.patch("/api/v1/jobs/pool-one", json={"locks": ["pool"]})
    assert patched.status_code == 200 and patched.json()["locks"] == [{"name": "pool",
                                                                      "slots": 1}]


def test_job_create_takes_locks(shared_server: Server) -> None:
    made = shared_server.cli("-o", "json", "job", "create", "gpu-job", "--lock", "gpu:2",
                             "--lock", "scratch", "-c", "true")
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["locks"] == [{"name": "gpu", "slots": 2},
                                                {"name": "scratch", "slots": 1}]
    bad = shared_server.cli("job", "create", "gpu-bad", "--lock", "gpu:two", "-c", "true")
    assert bad.returncode == 2 and "SLOTS is a whole number" in bad.stderr
    refused = shared_server.cli("job", "create", "gpu-bad", "--lock", "gpu:0", "-c", "true")
    assert refused.returncode == 1 and "slots: must be from 1" in refused.stderr


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/v1/locks/no-such-lock", 404),
        ("/api/v1/locks/BAD", 422),
        ("/api/v1/locks/a/b/c", 422),
    ],
)
def test_bad_lock_references(shared_server: Server, path: str, status: int) -> None:
    response = shared_server.client.get(path)
    assert response.status_code == status, response.text
    assert set(response.json()["error"]) == {"code", "message", "details"}


def test_a_waiting_run_says_why_and_an_admin_can_take_the_lock(
    server: Server, tmp_path: Path
) -> None:
    server.create_job(name="hold", command=_gate(tmp_path, "hold"), locks=["db"])
    server.create_job(name="next", command=_gate(tmp_path, "next"), namespace="default",
                      locks=["db"])
    holder = server.run("hold")
    server.wait_status(holder["id"], "RUNNING")
    waiter = server.run("next")
    assert waiter["status"] == "WAITING"
    assert waiter["reason"] == f"waiting for lock db (held by run {holder['id']})"
    assert waiter["locks"][0] | {"since": None} == {
        "key": "db", "slots": 1, "state": "waiting", "since": None,
        "holders": [holder["id"]], "ahead": 0,
    }
    assert server.get_run(holder["id"])["locks"][0]["state"] == "held"

    listed = json.loads(server.cli("-o", "json", "lock", "list").stdout)["items"]
    (db,) = [lock for lock in listed if lock["name"] == "db"]
    assert [h["run"] for h in db["holders"]] == [holder["id"]]
    assert [(w["run"], w["job"]) for w in db["waiters"]] == [(waiter["id"], "default/next")]
    assert db["jobs"] == ["default/hold", "default/next"]
    shown = server.cli("lock", "show", "db")
    assert shown.returncode == 0 and "mutex" in shown.stdout and "default/next" in shown.stdout

    refused = server.cli("lock", "release", "db", str(waiter["id"]))
    assert refused.returncode == 1 and "waiting for lock default/db" in refused.stderr
    released = server.cli("-o", "json", "lock", "release", "db", str(holder["id"]))
    assert released.returncode == 0, released.stderr
    assert [h["run"] for h in json.loads(released.stdout)["holders"]] == [waiter["id"]]
    server.wait_status(waiter["id"], "RUNNING")
    assert server.get_run(holder["id"])["status"] == "RUNNING"  # it goes on
    (tmp_path / "hold").touch()
    (tmp_path / "next").touch()
    assert server.wait_end(holder["id"])["status"] == "SUCCESS"
    assert server.wait_end(waiter["id"])["status"] == "SUCCESS"
    after = server.client.get("/api/v1/locks/default/db").json()
    assert (after["holders"], after["waiters"]) == ([], [])
    missing = server.client.delete(f"/api/v1/locks/db/holders/{holder['id']}")
    assert missing.status_code == 404


def test_a_cancelled_waiter_leaves_the_queue(server: Server, tmp_path: Path) -> None:
    server.create_job(name="hold", command=_gate(tmp_path, "go"), locks=["db"])
    holder = server.run("hold")
    waiters = [server.run("hold") for _ in range(2)]
    assert [w["status"] for w in waiters] == ["WAITING", "WAITING"]
    assert "1 waiting ahead" in server.get_run(waiters[1]["id"])["reason"]
    cancelled = server.client.post(f"/api/v1/runs/{waiters[0]['id']}/cancel").json()
    assert cancelled["status"] == "ABORTED"
    queue = server.client.get("/api/v1/locks/db").json()["waiters"]
    assert [w["run"] for w in queue] == [waiters[1]["id"]]
    (tmp_path / "go").touch()
    assert server.wait_end(holder["id"])["status"] == "SUCCESS"
    assert server.wait_end(waiters[1]["id"])["status"] == "SUCCESS"
    # Given back in the transaction that ended the run: free as soon as the end is seen.
    assert server.client.get("/api/v1/locks/db").json()["holders"] == []


def test_a_retry_in_its_backoff_holds_no_lock(server: Server, tmp_path: Path) -> None:
    flaky = f"[ -e {tmp_path}/again ] || {{ touch {tmp_path}/again; exit 3; }}"
    server.create_job(name="flaky", command=flaky, locks=["db"],
                      retries={"limit": 1, "backoff": "1s"})
    server.create_job(name="other", command=_gate(tmp_path, "go"), locks=["db"])
    first = server.run("flaky")
    assert server.wait_end(first["id"])["status"] == "APP_ERROR"
    retry = server.client.get("/api/v1/runs", params={"job": "flaky", "trigger": "retry"}
                              ).json()["items"][0]
    other = server.run("other")  # the retry waits for its backoff, not in other's way
    assert other["status"] == "READY"
    server.wait_status(other["id"], "RUNNING")

    def blocked_by_other() -> bool:
        reason = server.get_run(retry["id"])["reason"] or ""
        return reason == f"waiting for lock db (held by run {other['id']})"

    wait_for(blocked_by_other, what="the retry's backoff to pass")
    (tmp_path / "go").touch()
    assert server.wait_end(other["id"])["status"] == "SUCCESS"
    assert server.wait_end(retry["id"])["status"] == "SUCCESS"


def test_a_retry_takes_its_free_lock_when_its_backoff_ends(server: Server, tmp_path: Path) -> None:
    flaky = f"[ -e {tmp_path}/again ] || {{ touch {tmp_path}/again; exit 3; }}"
    server.create_job(name="flaky", command=flaky, locks=["db"],
                      retries={"limit": 1, "backoff": "1s"})
    first = server.run("flaky")
    assert server.wait_end(first["id"])["status"] == "APP_ERROR"
    retry = server.client.get("/api/v1/runs", params={"job": "flaky", "trigger": "retry"}
                              ).json()["items"][0]
    assert retry["status"] == "WAITING" and "its start time" in retry["reason"]
    # Nothing else happens in the namespace: the engine's timer lets it in at its moment.
    assert server.wait_end(retry["id"])["status"] == "SUCCESS"


def test_a_run_queued_by_its_job_says_so(shared_server: Server, tmp_path: Path) -> None:
    shared_server.create_job(name="one-at-a-time", command=_gate(tmp_path, "go"),
                             concurrency="queue")
    first = shared_server.run("one-at-a-time")
    second = shared_server.run("one-at-a-time")
    assert second["reason"] == (
        "waiting for a concurrency slot: the job allows 1 active run(s) (queue)"
    )
    assert second["locks"] == []
    (tmp_path / "go").touch()
    for run in (first, second):
        assert shared_server.wait_end(run["id"])["status"] == "SUCCESS"
    assert shared_server.get_run(second["id"])["reason"] is None
