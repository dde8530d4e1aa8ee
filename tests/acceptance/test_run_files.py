"""Manual start, approval and input files over HTTP: files attached before a run starts are in
its working folder; after it starts, attaching is refused and says why."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest

from tests.acceptance.conftest import short_dir
from tests.servers import Server, wait_for

pytestmark = pytest.mark.acceptance


@pytest.fixture(scope="module")
def s() -> Iterator[Server]:
    server = Server(short_dir() / "data", env={"HERDER_RUN_FILE_MAX_SIZE": "1000",
                                               "HERDER_RUN_FILES_MAX": "3"}).start()
    yield server
    server.close()


def test_files_attached_to_a_manual_run_are_in_its_working_folder(s: Server) -> None:
    s.create_job(name="reader", command='ls "$HERDER_INPUTS"; cat "$HERDER_INPUTS/a.csv" '
                 'inputs/notes.txt')
    run = s.run("reader", manual_start=True)
    assert (run["status"], run["status_code"]) == ("ACTION_PENDING", 180)
    put = s.client.put(f"/api/v1/runs/{run['id']}/files/a.csv", content=b"x,y\n1,2\n")
    assert put.status_code == 201, put.text
    assert put.json()["sha256"] == hashlib.sha256(b"x,y\n1,2\n").hexdigest()
    assert s.client.put(f"/api/v1/runs/{run['id']}/files/notes.txt", content=b"old").status_code \
        == 201
    replaced = s.client.put(f"/api/v1/runs/{run['id']}/files/notes.txt", content=b"notes\n")
    assert replaced.status_code == 200 and replaced.json()["size"] == 6
    listed = s.client.get(f"/api/v1/runs/{run['id']}/files").json()["items"]
    assert [(f["name"], f["size"]) for f in listed] == [("a.csv", 8), ("notes.txt", 6)]
    assert s.get_run(run["id"])["status"] == "ACTION_PENDING"  # nothing starts it but a person
    approved = s.client.post(f"/api/v1/runs/{run['id']}/approve")
    assert approved.status_code == 200 and approved.json()["status"] == "READY"
    assert s.wait_end(run["id"])["status"] == "SUCCESS"
    assert s.log(run["id"]) == "a.csv\nnotes.txt\nx,y\n1,2\nnotes\n"
    late = s.client.put(f"/api/v1/runs/{run['id']}/files/late.txt", content=b"too late")
    assert late.status_code == 409
    message = late.json()["error"]["message"]
    assert "SUCCESS" in message and "only before it is dispatched" in message
    assert [f["name"] for f in s.client.get(f"/api/v1/runs/{run['id']}/files").json()["items"]] \
        == ["a.csv", "notes.txt"]


def test_attaching_to_a_running_run_is_refused(s: Server) -> None:
    s.create_job(name="sleeper", command="sleep 30")
    run = s.run("sleeper")
    s.wait_status(run["id"], "RUNNING")
    refused = s.client.put(f"/api/v1/runs/{run['id']}/files/a.txt", content=b"x")
    assert refused.status_code == 409 and "RUNNING" in refused.json()["error"]["message"]
    s.client.post(f"/api/v1/runs/{run['id']}/cancel", json={"force": True})
    s.wait_end(run["id"])


# As sent on the wire (``%2E%2E`` is "..": a client would resolve a literal one itself).
HOSTILE_NAMES = ["%2E%2E", ".hidden", "a..b", "a%2Fb", "a/b", "%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
                 "x" * 129, "a%00b", "caf%C3%A9", "a%20b", "-%3B", "%0A", "sub/%2E%2E/x"]


def test_hostile_file_names_are_refused(s: Server) -> None:
    s.create_job(name="names", command="true")
    run = s.run("names", manual_start=True)
    for name in HOSTILE_NAMES:
        response = s.client.put(f"/api/v1/runs/{run['id']}/files/{name}", content=b"x")
        assert response.status_code == 422, (name, response.text)
        assert "is not allowed" in response.json()["error"]["message"]
    assert s.client.get(f"/api/v1/runs/{run['id']}/files").json()["items"] == []


def test_file_size_and_count_limits(s: Server) -> None:
    s.create_job(name="limits", command="true")
    run_id = s.run("limits", manual_start=True)["id"]
    big = s.client.put(f"/api/v1/runs/{run_id}/files/big.bin", content=b"x" * 1001)
    assert big.status_code == 413
    for name in ("a", "b", "c"):
        assert s.client.put(f"/api/v1/runs/{run_id}/files/{name}", content=b"1").status_code \
            == 201
    fourth = s.client.put(f"/api/v1/runs/{run_id}/files/d", content=b"1")
    assert fourth.status_code == 422 and "at most 3" in fourth.json()["error"]["message"]
    assert s.client.put(f"/api/v1/runs/{run_id}/files/a", content=b"2").status_code == 200
    assert s.client.put("/api/v1/runs/999999/files/a", content=b"1").status_code == 404


def test_a_pending_run_can_be_cancelled_and_an_ended_one_not_approved(s: Server) -> None:
    s.create_job(name="pending", command="true")
    run = s.run("pending", manual_start=True)
    cancelled = s.client.post(f"/api/v1/runs/{run['id']}/cancel")
    assert cancelled.json()["status"] == "ABORTED"
    again = s.client.post(f"/api/v1/runs/{run['id']}/approve")
    assert again.status_code == 409
    assert "only a run waiting for a person" in again.json()["error"]["message"]
    assert s.client.post("/api/v1/runs/999999/approve").status_code == 404


def test_approval_passes_the_concurrency_policy(s: Server) -> None:
    s.create_job(name="single", command="sleep 30", concurrency="forbid")
    s.create_job(name="queued", command="sleep 30", concurrency="queue")
    busy = s.run("single")
    pending = s.run("single", manual_start=True)  # a pending run holds no slot
    s.wait_status(busy["id"], "RUNNING")
    refused = s.client.post(f"/api/v1/runs/{pending['id']}/approve")
    assert refused.status_code == 409 and "concurrency forbid" in refused.json()["error"]["message"]
    assert s.get_run(pending["id"])["status"] == "ACTION_PENDING"
    first = s.run("queued")
    later = s.run("queued", manual_start=True)
    s.wait_status(first["id"], "RUNNING")
    waiting = s.client.post(f"/api/v1/runs/{later['id']}/approve").json()
    assert waiting["status"] == "WAITING"
    s.client.post(f"/api/v1/runs/{first['id']}/cancel", json={"force": True})
    s.wait_status(later["id"], "RUNNING")
    for run_id in (busy["id"], later["id"], pending["id"]):
        s.client.post(f"/api/v1/runs/{run_id}/cancel", json={"force": True})
    wait_for(lambda: all(s.get_run(r)["status"] == "ABORTED"
                         for r in (busy["id"], later["id"], pending["id"])), what="all aborted")


def test_a_retry_is_given_its_parents_files(s: Server) -> None:
    s.create_job(name="flaky", command='cat "$HERDER_INPUTS/in.txt"; exit 3')
    run = s.run("flaky", manual_start=True)
    s.client.put(f"/api/v1/runs/{run['id']}/files/in.txt", content=b"kept for retries\n")
    s.client.post(f"/api/v1/runs/{run['id']}/approve")
    assert s.wait_end(run["id"])["status"] == "APP_ERROR"
    retry = s.client.post(f"/api/v1/runs/{run['id']}/retry").json()
    assert s.wait_end(retry["id"])["status"] == "APP_ERROR"
    assert s.log(retry["id"]) == "kept for retries\n"
    listed = s.client.get(f"/api/v1/runs/{retry['id']}/files").json()["items"]
    assert [f["name"] for f in listed] == ["in.txt"]
