"""Bad input answers 4xx with the documented JSON error body, and changes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from tests.servers import Server

pytestmark = pytest.mark.acceptance
GOOD = {"name": "ok", "command": ["true"]}


def _counts(server: Server) -> tuple[int, int]:
    jobs = server.client.get("/api/v1/jobs", params={"limit": 1000}).json()["items"]
    runs = server.client.get("/api/v1/runs", params={"limit": 1000}).json()["items"]
    return len(jobs), len(runs)


def _assert_error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"error"} and {"code", "message", "details"} <= set(body["error"])
    assert body["error"]["message"]
    return body["error"]


JOB_BODIES = [
    ("empty name", {"name": "", "command": ["true"]}, 422),
    ("path-like name", {"name": "../etc/passwd", "command": ["true"]}, 422),
    ("5 KB name", {"name": "a" * 5000, "command": ["true"]}, 422),
    ("unknown field", {**GOOD, "colour": "blue"}, 422),
    ("wrong type for command", {"name": "x", "command": 42}, 422),
    ("argv with a number", {"name": "x", "command": ["echo", 1]}, 422),
    ("negative timeout", {**GOOD, "timeout": -5}, 422),
    ("word timeout", {**GOOD, "timeout": "soon"}, 422),
    ("reserved param", {**GOOD, "params": {"LD_PRELOAD": "x"}}, 422),
    ("reserved env", {**GOOD, "env": {"HERDER_RUN_ID": "1"}}, 422),
    ("unknown backend", {**GOOD, "backend": "mainframe"}, 422),
    ("missing command", {"name": "x"}, 422),
    ("bad label", {**GOOD, "labels": {"a b": "c"}}, 422),
    ("bad namespace", {**GOOD, "namespace": "Ops!"}, 422),
    ("template syntax error", {**GOOD, "command": "echo {{ params.x "}, 422),
    ("unquoted param in a shell", {**GOOD, "command": "echo {{ params.x }}",
                                   "params": {"x": "a"}}, 422),
    ("unknown param in a template", {**GOOD, "command": ["echo", "{{ params.y }}"]}, 422),
    ("template escape", {**GOOD, "command": ["{% for i in range(9) %}{% endfor %}"]}, 422),
    ("two schedule kinds", {**GOOD, "schedule": {"cron": "* * * * *", "every": "1m"}}, 422),
    ("no schedule kind", {**GOOD, "schedule": {"timezone": "UTC"}}, 422),
    ("bad cron", {**GOOD, "schedule": {"cron": "61 * * * *"}}, 422),
    ("seven cron fields", {**GOOD, "schedule": {"cron": "* * * * * * *"}}, 422),
    ("unknown time zone", {**GOOD, "schedule": {"cron": "@daily", "timezone": "Mars/Base"}}, 422),
    ("path as time zone", {**GOOD, "schedule": {"cron": "@daily", "timezone": "../../etc"}}, 422),
    ("interval under a second", {**GOOD, "schedule": {"every": "100ms"}}, 422),
    ("at without offset", {**GOOD, "schedule": {"at": "2030-01-01T00:00:00"}}, 422),
    ("at in the past", {**GOOD, "schedule": {"at": "2001-01-01T00:00:00Z"}}, 422),
    ("jitter over the interval", {**GOOD, "schedule": {"every": "1m", "jitter": "2m"}}, 422),
    ("unknown schedule key", {**GOOD, "schedule": {"every": "1m", "when": "now"}}, 422),
    ("bad misfire policy", {**GOOD, "misfire": {"policy": "sometimes"}}, 422),
    ("bad concurrency", {**GOOD, "concurrency": "serial"}, 422),
    ("zero max_active", {**GOOD, "max_active": 0}, 422),
    ("negative retries", {**GOOD, "retries": {"limit": -1}}, 422),
    ("retries without limit", {**GOOD, "retries": {"backoff": "1s"}}, 422),
    ("zero retention runs", {**GOOD, "retention": {"max_runs": 0}}, 422),
    ("word retention age", {**GOOD, "retention": {"max_age": "forever"}}, 422),
    ("unknown retention key", {**GOOD, "retention": {"keep": 3}}, 422),
]


@pytest.mark.parametrize(("what", "body", "status"), JOB_BODIES, ids=[c[0] for c in JOB_BODIES])
def test_bad_job_bodies(shared_server: Server, what: str, body: Any, status: int) -> None:
    before = _counts(shared_server)
    error = _assert_error(shared_server.client.post("/api/v1/jobs", json=body), status)
    assert error["code"] == "invalid"
    assert _counts(shared_server) == before


def test_malformed_json(shared_server: Server) -> None:
    before = _counts(shared_server)
    response = shared_server.client.post(
        "/api/v1/jobs", content=b'{"name": "x", "command": [', headers={"content-type":
                                                                         "application/json"})
    assert _assert_error(response, 400)["code"] == "malformed_json"
    assert _counts(shared_server) == before


def test_too_large_body(shared_server: Server) -> None:
    body = {"name": "big", "command": ["true"], "description": "x" * (2 * 1024 * 1024)}
    assert _assert_error(shared_server.client.post("/api/v1/jobs", json=body), 413)
    assert shared_server.client.get("/api/v1/jobs/big").status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/api/v1/runs/999999", 404),
        ("GET", "/api/v1/runs/abc", 422),
        ("GET", "/api/v1/runs/-1", 422),
        ("GET", "/api/v1/runs/99999999999999999999999", 422),
        ("POST", "/api/v1/runs/999999/cancel", 404),
        ("GET", "/api/v1/runs/999999/logs", 404),
        ("GET", "/api/v1/jobs/nope", 404),
        ("GET", "/api/v1/jobs/ops/nope", 404),
        ("POST", "/api/v1/jobs/nope/runs", 404),
        ("DELETE", "/api/v1/jobs/nope", 404),
        ("GET", "/api/v1/runs?status=BOGUS", 422),
        ("GET", "/api/v1/runs?cursor=../../x", 422),
        ("GET", "/api/v1/runs?limit=0", 422),
        ("GET", "/api/v1/nothing-here", 404),
    ],
)
def test_bad_references(shared_server: Server, method: str, path: str, status: int) -> None:
    before = _counts(shared_server)
    _assert_error(shared_server.client.request(method, path), status)
    assert _counts(shared_server) == before


def test_name_taken_is_409_and_keeps_the_first(shared_server: Server) -> None:
    shared_server.create_job(name="taken", command=["true"], description="first")
    error = _assert_error(
        shared_server.client.post("/api/v1/jobs", json={"name": "taken", "command": ["false"]}),
        409,
    )
    assert error["code"] == "name_taken"
    assert shared_server.client.get("/api/v1/jobs/taken").json()["description"] == "first"


def test_bad_run_overrides_create_no_run(shared_server: Server) -> None:
    shared_server.create_job(name="params", command=["true"], params={"db": "sales"})
    before = _counts(shared_server)
    for body in ({"params": {"nope": 1}}, {"env": {"LD_PRELOAD": "/x.so"}},
                 {"params": {"db": ["list"]}}, {"target": "x"}):
        _assert_error(shared_server.client.post("/api/v1/jobs/params/runs", json=body), 422)
    assert _counts(shared_server) == before


def test_bad_patch_changes_nothing(shared_server: Server) -> None:
    shared_server.create_job(name="patchme", command=["true"], timeout="1m")
    _assert_error(shared_server.client.patch("/api/v1/jobs/patchme", json={"timeout": "-1"}), 422)
    _assert_error(shared_server.client.patch("/api/v1/jobs/patchme", json={"name": "A"}), 422)
    job = shared_server.client.get("/api/v1/jobs/patchme").json()
    assert job["timeout"] == 60 and job["name"] == "patchme"


def test_a_wrong_method_names_the_right_ones(shared_server: Server) -> None:
    error = _assert_error(shared_server.client.put("/api/v1/runs"), 405)
    response = shared_server.client.put("/api/v1/runs")
    assert response.headers["allow"] == "GET, HEAD"
    assert "use GET or HEAD" in error["message"]
    # Every route at a path counts, not only the first that matched it.
    response = shared_server.client.post("/api/v1/jobs/some-job")
    assert response.status_code == 405
    assert response.headers["allow"] == "DELETE, GET, HEAD, PATCH, PUT"


def test_the_api_document_declares_the_error_body() -> None:
    from herder.api.app import create_app

    document = create_app().openapi()
    error_ref = "#/components/schemas/ErrorOut"
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status in ("404", "409", "422"):
                declared = operation["responses"][status]["content"]["application/json"]
                assert declared["schema"] == {"$ref": error_ref}, (method, path, status)
