"""The permission matrix: every route, for every role, in its own namespace and in another,
against a real server, asserting the documented answer; and every route without a token or with
a bad one.

Every route of the app must be declared in ``RULES``: a route added later fails
``test_every_route_is_declared`` until its permission is written down here.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from starlette.routing import Route

from herder.api.app import create_app
from tests.acceptance.access import (
    ADMIN_SECRET,
    OTHER,
    OWN,
    ROLES,
    SECRET_VALUE,
    World,
    make_world,
    value_body,
    workflow_body,
)
from tests.servers import wait_for

pytestmark = pytest.mark.acceptance


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    json: Any = None
    params: dict[str, str] | None = None
    content: bytes | None = None
    files: dict[str, Any] | None = None
    data: dict[str, str] | None = None


Build = Callable[[World, str], Call]


@dataclass(frozen=True)
class Rule:
    """How to call a route in a namespace, the least role it needs there (``global``: an admin
    token for every namespace; None: any caller), and what other namespaces answer: ``404``,
    ``list`` (200 without their items) or ``same`` (the route names no namespace)."""

    build: Build
    needs: str | None
    ok: tuple[int, ...] = (200,)
    other: str = "404"
    public: bool = False


def _get(path: str) -> Build:
    return lambda w, ns: Call("GET", path)


def _job_body(ns: str, name: str = "") -> dict[str, Any]:
    return {"name": name or f"made-{id(object())}", "namespace": ns, "command": "true"}


def _put(w: World, ns: str) -> Call:
    ref = w.new_job(ns)
    return Call("PUT", f"/api/v1/jobs/{ref}",
                json={"name": ref.split("/")[1], "namespace": ns, "command": "false"})


def _new_token_id(w: World, ns: str) -> Call:
    return Call("DELETE", f"/api/v1/tokens/{w.new_token(ns)['id']}")


def _listing(path: str) -> Build:
    # Own: no filter at all (isolation must hold without one); other: asked for by name.
    return lambda w, ns: Call("GET", path, params=None if ns == OWN else {"namespace": ns})


def _values(kind: str, change: str) -> dict[tuple[str, str], Rule]:
    """The routes of variables or secrets (``kind``); ``change`` is the role that writes."""
    base = f"/api/v1/{kind}s"

    def put(w: World, ns: str) -> Call:
        ref = w.new_value(kind, ns)
        return Call("PUT", f"{base}/{ref}", json=value_body(kind, ns) | {"name": ref[len(ns) + 1:]})

    return {
        ("POST", base): Rule(
            lambda w, ns: Call("POST", base, json=value_body(kind, ns)), change, (201,)),
        ("GET", base): Rule(_listing(base), "viewer", other="list"),
        ("GET", f"{base}/{{ref:path}}"): Rule(
            lambda w, ns: Call("GET", f"{base}/{w.value(kind, ns)}"), "viewer"),
        ("PUT", f"{base}/{{ref:path}}"): Rule(put, change),
        ("DELETE", f"{base}/{{ref:path}}"): Rule(
            lambda w, ns: Call("DELETE", f"{base}/{w.new_value(kind, ns)}"), change, (204,)),
    }


def _put_workflow(w: World, ns: str) -> Call:
    ref = w.new_workflow(ns)
    body = workflow_body(ns, ref.split("/")[1]) | {"description": "replaced"}
    return Call("PUT", f"/api/v1/workflows/{ref}", json=body)


def _upload(w: World, ns: str) -> Call:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("script.sh", f"echo {id(object())}\n")
    return Call("POST", "/api/v1/bundles", files={"file": ("b.zip", archive.getvalue())},
                data={"namespace": ns})


def _release(w: World, ns: str) -> Call:
    ref, run_id = w.held_lock(ns, "release")
    return Call("DELETE", f"/api/v1/locks/{ref}/holders/{run_id}")


def _workflow_run(w: World, ns: str) -> int:
    """A run of the namespace's workflow (started once, by the admin; one ``true`` step, so
    it may be over by the time a test asks: the controls answer 200 or 409 past the check)."""

    def start() -> int:
        answer = w.admin.post(f"/api/v1/workflows/{w.workflow(ns)}/runs", json={})
        assert answer.status_code == 201, answer.text
        return int(answer.json()["id"])

    run_id: int = w._once(("workflow run", ns), start)
    return run_id


WORKFLOW = "/api/v1/workflows/{ref:path}"
WORKFLOW_RUN = "/api/v1/workflow-runs/{run_id}"
RULES: dict[tuple[str, str], Rule] = {
    ("GET", "/healthz"): Rule(_get("/healthz"), None, public=True),
    ("GET", "/readyz"): Rule(_get("/readyz"), None, public=True),
    ("GET", "/openapi.json"): Rule(_get("/openapi.json"), None, public=True),
    ("GET", "/docs"): Rule(_get("/docs"), None, public=True),
    ("GET", "/docs/oauth2-redirect"): Rule(_get("/docs/oauth2-redirect"), None, public=True),
    ("GET", "/redoc"): Rule(_get("/redoc"), None, public=True),
    ("POST", "/api/v1/jobs"): Rule(
        lambda w, ns: Call("POST", "/api/v1/jobs", json=_job_body(ns)), "editor", (201,)),
    ("GET", "/api/v1/jobs"): Rule(_listing("/api/v1/jobs"), "viewer", other="list"),
    ("PUT", "/api/v1/jobs/{ref:path}"): Rule(_put, "editor", (200,)),
    ("GET", "/api/v1/jobs/{ref:path}"): Rule(
        lambda w, ns: Call("GET", f"/api/v1/jobs/{w.job(ns)}"), "viewer"),
    ("PATCH", "/api/v1/jobs/{ref:path}"): Rule(
        lambda w, ns: Call("PATCH", f"/api/v1/jobs/{w.new_job(ns)}",
                           json={"description": "changed"}), "editor"),
    ("DELETE", "/api/v1/jobs/{ref:path}"): Rule(
        lambda w, ns: Call("DELETE", f"/api/v1/jobs/{w.new_job(ns)}"), "editor", (204,)),
    ("POST", "/api/v1/jobs/{ref:path}/runs"): Rule(
        lambda w, ns: Call("POST", f"/api/v1/jobs/{w.job(ns)}/runs"), "operator", (201,)),
    ("POST", "/api/v1/jobs/{ref:path}/enable"): Rule(
        lambda w, ns: Call("POST", f"/api/v1/jobs/{w.job(ns)}/enable"), "editor"),
    ("POST", "/api/v1/jobs/{ref:path}/disable"): Rule(
        lambda w, ns: Call("POST", f"/api/v1/jobs/{w.new_job(ns)}/disable"), "editor"),
    ("GET", "/api/v1/jobs/{ref:path}/schedule"): Rule(
        lambda w, ns: Call("GET", f"/api/v1/jobs/{w.job(ns)}/schedule"), "viewer"),
    ("GET", "/api/v1/jobs/{ref:path}/followers"): Rule(
        lambda w, ns: Call("GET", f"/api/v1/jobs/{w.job(ns)}/followers"), "viewer"),
    ("GET", "/api/v1/runs"): Rule(_listing("/api/v1/runs"), "viewer", other="list"),
    ("GET", "/api/v1/runs/{run_id}"): Rule(
        lambda w, ns: Call("GET", f"/api/v1/runs/{w.run(ns)}"), "viewer"),
    ("GET", "/api/v1/runs/{run_id}/outputs"): Rule(
        lambda w, ns: Call("GET", f"/api/v1/runs/{w.run(ns)}/outputs"), "viewer"),
    ("GET", "/api/v1/runs/{run_id}/logs"): Rule(
        lambda w, ns: Call("GET", f"/api/v1/runs/{w.run(ns)}/logs"), "viewer"),
    # An ended run cannot be cancelled: 409 is the answer past the permission check.
    ("POST", "/api/v1/runs/{run_id}/cancel"): Rule(
        lambda w, ns: Call("POST", f"/api/v1/runs/{w.run(ns)}/cancel"), "operator", (409,)),
    ("POST", "/api/v1/runs/{run_id}/retry"): Rule(
        lambda w, ns: Call("POST", f"/api/v1/runs/{w.run(ns)}/retry"), "operator", (201,)),
    ("POST", "/api/v1/tokens"): Rule(
        lambda w, ns: Call("POST", "/api/v1/tokens",
                           json={"name": "made", "namespace": ns, "role": "viewer"}),
        "admin", (201,)),
    ("GET", "/api/v1/tokens"): Rule(_get("/api/v1/tokens"), "admin", other="same"),
    ("DELETE", "/api/v1/tokens/{token_id}"): Rule(_new_token_id, "admin"),
    ("GET", "/api/v1/whoami"): Rule(_get("/api/v1/whoami"), None, other="same"),
    ("POST", "/api/v1/namespaces"): Rule(
        lambda w, ns: Call("POST", "/api/v1/namespaces", json={"name": f"ns-{id(object())}"}),
        "global", (201,), other="same"),
    ("GET", "/api/v1/namespaces"): Rule(_get("/api/v1/namespaces"), "viewer", other="same"),
    ("GET", "/api/v1/namespaces/{name}"): Rule(
        lambda w, ns: Call("GET", f"/api/v1/namespaces/{ns}"), "viewer"),
    ("PATCH", "/api/v1/namespaces/{name}"): Rule(
        lambda w, ns: Call("PATCH", f"/api/v1/namespaces/{ns}", json={"retention": None}),
        "admin"),
    ("DELETE", "/api/v1/namespaces/{name}"): Rule(
        lambda w, ns: Call("DELETE", f"/api/v1/namespaces/{ns}"), "global", (409,)),
    ("GET", "/api/v1/audit"): Rule(_get("/api/v1/audit"), "admin", other="same"),
    # Bundles belong to no namespace: the permission is asked in the one the caller names.
    ("POST", "/api/v1/bundles"): Rule(_upload, "editor", (201,)),
    ("GET", "/api/v1/bundles"): Rule(
        lambda w, ns: Call("GET", "/api/v1/bundles", params={"namespace": ns}), "viewer"),
    ("GET", "/api/v1/bundles/{bundle_id}"): Rule(
        lambda w, ns: Call("GET", f"/api/v1/bundles/{w.bundle()}", params={"namespace": ns}),
        "viewer"),
    ("DELETE", "/api/v1/bundles/{bundle_id}"): Rule(
        lambda w, ns: Call("DELETE", f"/api/v1/bundles/{w.new_bundle()}",
                           params={"namespace": ns}), "editor", (204,)),
    ("PUT", "/api/v1/runs/{run_id}/files/{name:path}"): Rule(
        lambda w, ns: Call("PUT", f"/api/v1/runs/{w.pending_run(ns)}/files/in.txt",
                           content=b"input"), "operator", (200, 201)),
    ("GET", "/api/v1/runs/{run_id}/files"): Rule(
        lambda w, ns: Call("GET", f"/api/v1/runs/{w.run(ns)}/files"), "viewer"),
    ("POST", "/api/v1/runs/{run_id}/approve"): Rule(
        lambda w, ns: Call("POST", f"/api/v1/runs/{w.new_pending_run(ns)}/approve"), "operator"),
    **_values("variable", "editor"),
    **_values("secret", "admin"),
    ("POST", "/api/v1/secrets/reencrypt"): Rule(
        lambda w, ns: Call("POST", "/api/v1/secrets/reencrypt"), "global", other="same"),
    ("POST", "/api/v1/workflows"): Rule(
        lambda w, ns: Call("POST", "/api/v1/workflows", json=workflow_body(ns)), "editor",
        (201,)),
    ("GET", "/api/v1/workflows"): Rule(_listing("/api/v1/workflows"), "viewer", other="list"),
    ("GET", WORKFLOW): Rule(
        lambda w, ns: Call("GET", f"/api/v1/workflows/{w.workflow(ns)}"), "viewer"),
    ("PUT", WORKFLOW): Rule(_put_workflow, "editor"),
    ("PATCH", WORKFLOW): Rule(
        lambda w, ns: Call("PATCH", f"/api/v1/workflows/{w.new_workflow(ns)}",
                           json={"description": "changed"}), "editor"),
    ("DELETE", WORKFLOW): Rule(
        lambda w, ns: Call("DELETE", f"/api/v1/workflows/{w.new_workflow(ns)}"), "editor",
        (204,)),
    ("POST", f"{WORKFLOW}/enable"): Rule(
        lambda w, ns: Call("POST", f"/api/v1/workflows/{w.workflow(ns)}/enable"), "editor"),
    ("POST", f"{WORKFLOW}/disable"): Rule(
        lambda w, ns: Call("POST", f"/api/v1/workflows/{w.new_workflow(ns)}/disable"),
        "editor"),
    ("POST", f"{WORKFLOW}/runs"): Rule(
        lambda w, ns: Call("POST", f"/api/v1/workflows/{w.workflow(ns)}/runs"), "operator",
        (201,)),
    ("GET", "/api/v1/workflow-runs"): Rule(
        _listing("/api/v1/workflow-runs"), "viewer", other="list"),
    ("GET", WORKFLOW_RUN): Rule(
        lambda w, ns: Call("GET", f"/api/v1/workflow-runs/{_workflow_run(w, ns)}"), "viewer"),
    ("GET", f"{WORKFLOW_RUN}/graph"): Rule(
        lambda w, ns: Call("GET", f"/api/v1/workflow-runs/{_workflow_run(w, ns)}/graph"),
        "viewer"),
    # The run (one quick step) or its step may have ended or started meanwhile: 409 is then
    # the answer past the permission check.
    ("POST", f"{WORKFLOW_RUN}/{{action}}"): Rule(
        lambda w, ns: Call("POST", f"/api/v1/workflow-runs/{_workflow_run(w, ns)}/cancel"),
        "operator", (200, 409)),
    ("POST", f"{WORKFLOW_RUN}/steps/{{step}}/{{action}}"): Rule(
        lambda w, ns: Call("POST",
                           f"/api/v1/workflow-runs/{_workflow_run(w, ns)}/steps/only/skip"),
        "operator", (200, 409)),
    ("GET", "/api/v1/locks"): Rule(_listing("/api/v1/locks"), "viewer", other="list"),
    ("GET", "/api/v1/locks/{ref:path}"): Rule(
        lambda w, ns: Call("GET", f"/api/v1/locks/{w.held_lock(ns)[0]}"), "viewer"),
    ("DELETE", "/api/v1/locks/{ref:path}/holders/{run_id}"): Rule(_release, "admin"),
    # The web UI: its page and assets are public (they hold no data); sign-in checks the
    # token in its body, sign-out only clears cookies; the overview reads what the token may.
    ("GET", "/"): Rule(_get("/"), None, public=True),
    ("GET", "/ui/{path:path}"): Rule(_get("/ui/app.js"), None, public=True),
    ("POST", "/api/v1/session"): Rule(
        lambda w, ns: Call("POST", "/api/v1/session", json={"token": ADMIN_SECRET}), None,
        public=True),
    ("DELETE", "/api/v1/session"): Rule(
        lambda w, ns: Call("DELETE", "/api/v1/session"), None, (204,), public=True),
    ("GET", "/api/v1/overview/runs"): Rule(_listing("/api/v1/overview/runs"), "viewer",
                                           other="list"),
    ("GET", "/api/v1/overview/due"): Rule(_listing("/api/v1/overview/due"), "viewer",
                                          other="list"),
}


def _walk(routes: list[Any]) -> Iterator[Route]:
    for route in routes:
        included = getattr(route, "original_router", None)  # FastAPI's included routers
        if included is not None:
            yield from _walk(included.routes)
        else:
            assert isinstance(route, Route)
            yield route


def declared_routes() -> set[tuple[str, str]]:
    """Every (method, path) the app serves."""
    return {
        (method, route.path)
        for route in _walk(create_app().routes)
        for method in (route.methods or set()) - {"HEAD"}
    }


def test_every_route_is_declared() -> None:
    """A route without a rule here has no documented permission: declare it."""
    assert declared_routes() - RULES.keys() == set()
    assert RULES.keys() - declared_routes() == set()


def expected(rule: Rule, role: str, where: str) -> tuple[int, ...]:
    if rule.public or rule.needs is None:
        return rule.ok
    if where == OTHER and rule.other == "404":
        return (404,)
    if rule.needs == "global":
        return (403,)  # every role here holds a token for one namespace only
    allowed = ROLES.index(role) >= ROLES.index(rule.needs)
    return rule.ok if allowed else (403,)


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    yield from make_world()


def _send(client: httpx.Client, call: Call) -> httpx.Response:
    return client.request(call.method, call.path, json=call.json, params=call.params,
                          content=call.content, files=call.files, data=call.data)


def _namespace_of(item: dict[str, Any]) -> Any:
    return item.get("namespace", item.get("name"))


CASES = [
    pytest.param(key, role, where, id=f"{key[0]} {key[1]} {role} {where}")
    for key in sorted(RULES) for role in ROLES for where in ("own", "other")
]


@pytest.mark.parametrize(("key", "role", "where"), CASES)
def test_matrix(world: World, key: tuple[str, str], role: str, where: str) -> None:
    rule = RULES[key]
    namespace = OWN if where == "own" else OTHER
    call = rule.build(world, namespace)
    with world.client(role) as client:
        answer = _send(client, call)
    assert answer.status_code in expected(rule, role, namespace), answer.text
    if answer.status_code in (403, 404):
        assert answer.json()["error"]["code"] in ("forbidden", "not_found")
    listing = answer.status_code == 200 and call.method == "GET" and "items" in answer.text[:20]
    if listing and rule.other != "404":  # a 404 rule's items (bundles, a run's files) name none
        namespaces = {_namespace_of(item) for item in answer.json()["items"]}
        assert namespaces <= {OWN}, f"{key} shows other namespaces to a {OWN} token"


def test_other_namespaces_answer_exactly_as_missing_objects(world: World) -> None:
    """The 404 for another namespace's job or run is the one a missing object gets: same
    message, same details; nothing tells them apart."""
    job, run = world.job(OTHER), world.run(OTHER)
    with world.client("admin") as client:
        hidden = client.get(f"/api/v1/jobs/{job}").json()
        missing = world.admin.get(f"/api/v1/jobs/{job}-gone").json()
        assert hidden["error"]["message"] == f"no job with name {job}"
        assert missing["error"]["message"] == f"no job with name {job}-gone"
        assert hidden["error"]["details"] == {"job": job}
        for path in ("", "/logs", "/outputs"):
            hidden = client.get(f"/api/v1/runs/{run}{path}").json()
            missing = world.admin.get(f"/api/v1/runs/999999{path}").json()
            assert hidden["error"]["message"] == f"no run with id {run}"
            assert missing["error"]["message"] == "no run with id 999999"
            assert hidden["error"]["details"] == {"run": run}
        follow = client.get(f"/api/v1/runs/{run}/logs", params={"follow": "true"},
                            headers={"Accept": "text/event-stream"})
        assert follow.status_code == 404


def test_a_job_follows_only_jobs_its_editor_may_read(world: World) -> None:
    """Job chains pass outputs on: a job may follow another namespace's job only for a caller
    who may read that namespace, and is refused as if that job did not exist otherwise."""
    hidden, readable = world.new_job(OTHER), world.new_job(OWN)
    follower = {"name": "chain-follower", "namespace": OWN, "command": "true"}
    with world.client("editor") as client:
        refused = client.post("/api/v1/jobs", json={**follower, "after": [hidden]})
        gone = client.post("/api/v1/jobs", json={**follower, "after": [f"{hidden}-gone"]})
        assert refused.status_code == gone.status_code == 422
        assert refused.json()["error"]["message"] == f"after[0].job: no job {hidden}"
        assert gone.json()["error"]["message"].startswith(f"after[0].job: no job {hidden}-gone")
        made = client.post("/api/v1/jobs", json={**follower, "after": [readable]})
        assert made.status_code == 201, made.text
    # An admin of every namespace may chain across; the follower is then hidden from OWN.
    across = world.admin.post("/api/v1/jobs", json={"name": "chain-across", "namespace": OTHER,
                                                    "command": "true", "after": [readable]})
    assert across.status_code == 201, across.text
    with world.client("viewer") as client:
        assert client.get(f"/api/v1/jobs/{readable}/followers").json() == [
            {"job": f"{OWN}/chain-follower", "on": "success"}
        ]
    assert len(world.admin.get(f"/api/v1/jobs/{readable}/followers").json()) == 2


def _as_if_missing(missing: httpx.Response, stand_in: str, real: str) -> Any:
    """A missing object's answer, with the name it was asked by replaced by ``real``."""
    return json.loads(missing.text.replace(stand_in, real))


def test_another_namespaces_values_workflows_locks_and_files_stay_hidden(world: World) -> None:
    """A token of OWN (admin there: the most it can be) finds nothing of OTHER's variables,
    secrets, workflows, locks, run files or bundles-by-namespace, listed or asked for by name;
    each 404 is exactly the one the object answers once it does not exist."""
    world.value("variable", OTHER), world.value("secret", OTHER)
    world.workflow(OTHER), world.held_lock(OTHER)
    with world.client("admin") as client:
        for path in ("/api/v1/variables", "/api/v1/secrets", "/api/v1/workflows",
                     "/api/v1/locks"):
            for params in ({}, {"namespace": OTHER}, {"namespace": "*"}):
                answer = client.get(path, params=params)
                assert answer.status_code in (200, 422), answer.text
                if answer.status_code == 200:
                    assert {i["namespace"] for i in answer.json()["items"]} <= {OWN}, path
        assert client.get("/api/v1/bundles", params={"namespace": OTHER}).status_code == 404

        # Hidden, then deleted for real: the answers must not differ.
        for path, ref, params in (
            ("/api/v1/variables", world.new_value("variable", OTHER), {}),
            ("/api/v1/secrets", world.new_value("secret", OTHER), {}),
            ("/api/v1/workflows", world.new_workflow(OTHER), {}),
            ("/api/v1/bundles", world.new_bundle(), {"namespace": OTHER}),
        ):
            hidden = [client.get(f"{path}/{ref}", params=params),
                      client.delete(f"{path}/{ref}", params=params)]
            assert world.admin.delete(f"{path}/{ref}", params=params).status_code == 204
            missing = [world.admin.get(f"{path}/{ref}", params=params),
                       world.admin.delete(f"{path}/{ref}", params=params)]
            for seen, gone in zip(hidden, missing, strict=True):
                assert seen.status_code == 404 and seen.json() == gone.json(), path

        lock, holder = world.held_lock(OTHER)
        missing_lock = world.admin.get(f"/api/v1/locks/{OTHER}/nope")
        for answer in (client.get(f"/api/v1/locks/{lock}"),
                       client.delete(f"/api/v1/locks/{lock}/holders/{holder}")):
            assert answer.status_code == 404
            assert answer.json() == _as_if_missing(missing_lock, "nope", lock.split("/")[1])
        held = world.admin.get(f"/api/v1/locks/{lock}").json()["holders"]
        assert [h["run"] for h in held] == [holder]

        run, pending = world.run(OTHER), world.pending_run(OTHER)
        missing_run = world.admin.get("/api/v1/runs/999999/files")
        for answer, run_id in ((client.get(f"/api/v1/runs/{run}/files"), run),
                               (client.put(f"/api/v1/runs/{pending}/files/x", content=b"x"),
                                pending),
                               (client.post(f"/api/v1/runs/{pending}/approve"), pending)):
            assert answer.status_code == 404
            assert answer.json() == _as_if_missing(missing_run, "999999", str(run_id))
        assert world.admin.get(f"/api/v1/runs/{pending}/files").json()["items"] == []


def test_no_answer_carries_a_secret_value(world: World) -> None:
    """A secret's value goes in and never comes out: not from its routes (lists, one, create,
    replace, refusals), not from the job or run that uses it, its log, the audit trail."""
    own, other = world.new_value("secret", OWN), world.new_value("secret", OTHER)
    name = own.split("/")[1]
    job = world.new_job(OWN, command=["echo", f"value={{{{ secrets.{name} }}}}"])
    body = {"name": name, "namespace": OWN, "value": SECRET_VALUE}
    with world.client("admin") as client:
        answers = {
            "list": client.get("/api/v1/secrets"),
            "list other": client.get("/api/v1/secrets", params={"namespace": OTHER}),
            "one": client.get(f"/api/v1/secrets/{own}"),
            "other's": client.get(f"/api/v1/secrets/{other}"),
            "replace": client.put(f"/api/v1/secrets/{own}", json=body),
            "taken": client.post("/api/v1/secrets", json=body),
            "bad name": client.post("/api/v1/secrets", json=body | {"name": "bad name"}),
            "too long": client.post("/api/v1/secrets", json=body | {"value": SECRET_VALUE * 400}),
            "unknown field": client.post("/api/v1/secrets", json=body | {"extra": SECRET_VALUE}),
            "job": client.get(f"/api/v1/jobs/{job}"),
        }
        assert [answers[k].status_code for k in ("one", "other's", "replace", "taken")] == [
            200, 404, 200, 409]
        assert {answers[k].status_code for k in ("bad name", "too long", "unknown field")} == {
            422}
        run_id = client.post(f"/api/v1/jobs/{job}/runs").json()["id"]
        wait_for(lambda: client.get(f"/api/v1/runs/{run_id}").json()["status_code"] >= 400,
                 what=f"run {run_id} to end")
        for path in (f"/api/v1/runs/{run_id}", f"/api/v1/runs/{run_id}/logs",
                     f"/api/v1/runs/{run_id}/outputs", "/api/v1/runs", "/api/v1/audit"):
            answers[path] = client.get(path)
    assert answers[f"/api/v1/runs/{run_id}/logs"].text.strip() == "value=***"
    for what, answer in answers.items():
        assert SECRET_VALUE not in answer.text, what


def test_only_an_admin_for_every_namespace_reencrypts_secrets(world: World) -> None:
    """The matrix sees each role of one namespace refused (403); an admin of ``*`` is not."""
    answer = world.admin.post("/api/v1/secrets/reencrypt")
    assert answer.status_code == 200, answer.text
    assert answer.json()["unreadable"] == []


ATTACKS = {
    "no token": {},
    "empty bearer": {"Authorization": "Bearer"},
    "empty header": {"X-Api-Token": ""},
    "wrong scheme": {"Authorization": "Basic YWRtaW46YWRtaW4="},
    "wrong prefix": {"X-Api-Token": "ghp_1_" + "a" * 43},
    "bad id": {"X-Api-Token": "herder_0_" + "a" * 43},
    "unknown id": {"X-Api-Token": "herder_424242_" + "a" * 43},
    "wrong secret": {},  # filled in with a real id
    "very long": {"X-Api-Token": "herder_1_" + "a" * 5000},
}
UNAUTH_CASES = [
    pytest.param(key, attack, id=f"{key[0]} {key[1]} {attack}")
    for key in sorted(RULES) for attack in ATTACKS
]


@pytest.mark.parametrize(("key", "attack"), UNAUTH_CASES)
def test_without_a_valid_token(world: World, key: tuple[str, str], attack: str) -> None:
    """Every route but the public ones answers 401 to a missing or bad token, and changes
    nothing."""
    rule = RULES[key]
    headers = dict(ATTACKS[attack])
    if attack == "wrong secret":
        headers = {"X-Api-Token": f"herder_{world.token_ids['admin']}_" + "b" * 43}
    call = rule.build(world, OWN)
    with httpx.Client(base_url=world.server.url, headers=headers, timeout=30) as client:
        answer = _send(client, call)
    if rule.public:
        assert answer.status_code in rule.ok
        return
    assert answer.status_code == 401, answer.text
    message = answer.json()["error"]["message"]
    assert "aaaaaaaa" not in message and "bbbbbbbb" not in message  # no token echoed back
