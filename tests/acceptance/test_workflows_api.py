"""``/api/v1/workflows`` on a real server: create, read, list, replace, patch, delete; bad input
answers a clear 4xx naming the problem and changes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from tests.servers import Server

pytestmark = pytest.mark.acceptance
API = "/api/v1/workflows"


def etl(namespace: str, **fields: Any) -> dict[str, Any]:
    return {
        "name": "etl",
        "namespace": namespace,
        "params": {"region": "eu"},
        "steps": [
            {"name": "extract", "job": "extract", "params": {"region": "{{ params.region }}"}},
            {"name": "transform", "needs": ["extract"],
             "command": ["transform", "--rows", "{{ steps.extract.outputs.rows }}"]},
            {"name": "ship", "approval": {"message": "ship?"}, "needs": ["transform"]},
        ],
        **fields,
    }


def error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()["error"]
    assert set(body) == {"code", "message", "details"}
    return body


def names(server: Server, **params: Any) -> list[str]:
    page = server.client.get(API, params={"limit": 1000, **params}).json()
    return [w["ref"] for w in page["items"]]


@pytest.fixture
def namespace(shared_server: Server, request: pytest.FixtureRequest) -> str:
    """A namespace of its own per test, holding the job the workflows run."""
    space = f"wf{abs(hash(request.node.name)) % 10**8}"
    shared_server.create_job(name="extract", namespace=space, command="true",
                             params={"region": "us"})
    return space


def test_create_read_and_list_a_workflow(shared_server: Server, namespace: str) -> None:
    created = shared_server.client.post(API, json=etl(namespace, labels={"team": "bi"}))
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["ref"] == f"{namespace}/etl" and body["id"] > 0
    assert body["steps"][1]["needs"] == [{"step": "extract", "on": "success"}]
    assert body["steps"][2]["approval"] == {"message": "ship?"}
    assert body["next_run_at"] is None and body["misfire"]["policy"] == "run_once"

    for ref in (str(body["id"]), f"{namespace}/etl"):
        assert shared_server.client.get(f"{API}/{ref}").json() == body
    assert names(shared_server, namespace=namespace) == [f"{namespace}/etl"]
    assert names(shared_server, label="team=bi", namespace=namespace) == [f"{namespace}/etl"]
    assert names(shared_server, label="team=ops", namespace=namespace) == []
    taken = error(shared_server.client.post(API, json=etl(namespace)), 409)
    assert taken["code"] == "name_taken"


def test_put_creates_then_replaces_and_patch_changes_a_field(
    shared_server: Server, namespace: str
) -> None:
    path = f"{API}/{namespace}/etl"
    first = shared_server.client.put(path, json=etl(namespace))
    assert first.status_code == 201, first.text
    again = shared_server.client.put(path, json=etl(namespace))
    assert again.status_code == 200 and again.json()["updated_at"] == first.json()["updated_at"]
    scheduled = shared_server.client.put(path, json=etl(namespace, schedule={"every": "1h"}))
    assert scheduled.status_code == 200 and scheduled.json()["next_run_at"] is not None

    patched = shared_server.client.patch(path, json={"parallelism": 2, "enabled": False})
    assert patched.status_code == 200, patched.text
    assert patched.json()["parallelism"] == 2 and patched.json()["next_run_at"] is None
    assert patched.json()["steps"] == first.json()["steps"]
    bad = error(shared_server.client.patch(path, json={"parallelism": 0}), 422)
    assert bad["message"] == "parallelism: must be a whole number from 1 to 10000"
    assert shared_server.client.get(path).json()["parallelism"] == 2  # nothing changed

    disabled = shared_server.client.post(f"{path}/disable")
    assert disabled.status_code == 200 and disabled.json()["enabled"] is False
    enabled = shared_server.client.post(f"{path}/enable").json()
    assert enabled["enabled"] is True and enabled["next_run_at"] is not None
    assert enabled["parallelism"] == 2

    mismatch = error(shared_server.client.put(f"{API}/{namespace}/other", json=etl(namespace)),
                     422)
    assert "the path names" in mismatch["message"]


def test_delete_a_workflow(shared_server: Server, namespace: str) -> None:
    shared_server.client.post(API, json=etl(namespace))
    outer = {"name": "outer", "namespace": namespace,
             "steps": [{"name": "inner", "workflow": "etl"}]}
    assert shared_server.client.post(API, json=outer).status_code == 201
    used = error(shared_server.client.delete(f"{API}/{namespace}/etl"), 409)
    assert f"run as a step by workflow {namespace}/outer" in used["message"]
    assert shared_server.client.delete(f"{API}/{namespace}/outer").status_code == 204
    assert shared_server.client.delete(f"{API}/{namespace}/etl").status_code == 204
    gone = error(shared_server.client.get(f"{API}/{namespace}/etl"), 404)
    assert gone["message"] == f"no workflow with name {namespace}/etl"


def test_a_job_a_workflow_runs_is_not_deleted_under_it(shared_server: Server, namespace: str
                                                        ) -> None:
    shared_server.client.post(API, json=etl(namespace))
    used = error(shared_server.client.delete(f"/api/v1/jobs/{namespace}/extract"), 409)
    assert used["message"] == (f"job {namespace}/extract is run as a step by workflow "
                               f"{namespace}/etl; change those first")
    assert used["details"] == {"used_by": [f"{namespace}/etl"]}
    assert shared_server.client.get(f"/api/v1/jobs/{namespace}/extract").status_code == 200
    assert shared_server.client.delete(f"{API}/{namespace}/etl").status_code == 204
    assert shared_server.client.delete(f"/api/v1/jobs/{namespace}/extract").status_code == 204


BAD = [
    ("unknown step", {"steps": [{"name": "transform", "command": "true"},
                                {"name": "load", "command": "true", "needs": ["transfrom"]}]},
     "steps[1].needs[0]: unknown step 'transfrom' (did you mean 'transform'?)"),
    ("cycle", {"steps": [{"name": "a", "command": "true", "needs": ["b"]},
                         {"name": "b", "command": "true", "needs": ["a"]}]},
     "steps: cycle: a -> b -> a; a step cannot wait, through its needs, for itself"),
    ("missing job", {"steps": [{"name": "x", "job": "nope"}]}, "steps[0].job: no job {ns}/nope"),
    ("undeclared job param", {"steps": [{"name": "x", "job": "extract", "params": {"db": "x"}}]},
     "steps[0].params: job {ns}/extract declares no param 'db'; it declares: region"),
    ("missing nested workflow", {"steps": [{"name": "x", "workflow": "nope"}]},
     "steps[0].workflow: no workflow {ns}/nope; create it first"),
    ("unreadable output", {"steps": [{"name": "a", "command": ["echo", "{{ steps.b.outputs.x }}"]},
                                     {"name": "b", "command": "true"}]},
     "steps[0].command[1]: steps.b: 'b' is not among this step's needs"),
    ("unknown backend", {"steps": [{"name": "a", "command": "true", "backend": "mainframe"}]},
     "steps[0].backend: unknown backend 'mainframe'"),
    ("no steps", {"steps": []}, "steps: must be a list of steps, at least one"),
    ("unknown field", {"steps": [{"name": "a", "command": "true"}], "colour": "red"},
     "colour: Extra inputs are not permitted"),
]


@pytest.mark.parametrize(("fields", "expected"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_a_bad_workflow_is_refused_with_the_path_and_nothing_is_stored(
    shared_server: Server, namespace: str, fields: dict[str, Any], expected: str
) -> None:
    body = {"name": "bad", "namespace": namespace, **fields}
    refused = error(shared_server.client.post(API, json=body), 422)
    assert refused["message"].startswith(expected.format(ns=namespace)), refused["message"]
    put = error(shared_server.client.put(f"{API}/{namespace}/bad", json=body), 422)
    assert put["message"] == refused["message"]
    assert names(shared_server, namespace=namespace) == []


def test_hostile_refs_and_cursors_answer_4xx(shared_server: Server) -> None:
    for ref in ("../../etc/passwd", "%00", "9" * 40, "a/b/c"):
        assert shared_server.client.get(f"{API}/{ref}").status_code == 404
    assert error(shared_server.client.get(API, params={"cursor": "x"}), 422)["message"] == (
        "cursor: not a cursor this server gave out")
    assert shared_server.client.post(API, content=b"{", headers={
        "content-type": "application/json"}).status_code == 400


def test_a_workflow_in_a_new_namespace_makes_it(shared_server: Server) -> None:
    """As a job does: the namespace exists once something lives in it (an open server may
    create namespaces)."""
    body = {"name": "solo", "namespace": "wf-only", "steps": [{"name": "a", "command": "true"}]}
    assert shared_server.client.post(API, json=body).status_code == 201
    answer = shared_server.client.get("/api/v1/namespaces/wf-only")
    assert answer.status_code == 200 and answer.json()["holds"] == {"workflows": 1}
