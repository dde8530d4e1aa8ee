"""The permission matrix: every route, for every role, in its own namespace and in another,
against a real server, asserting the documented answer; and every route without a token or with
a bad one.

Every route of the app must be declared in ``RULES``: a route added later fails
``test_every_route_is_declared`` until its permission is written down here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from starlette.routing import Route

from herder.api.app import create_app
from tests.acceptance.access import OTHER, OWN, ROLES, World, make_world

pytestmark = pytest.mark.acceptance


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    json: Any = None
    params: dict[str, str] | None = None


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
    ("DELETE", "/api/v1/namespaces/{name}"): Rule(
        lambda w, ns: Call("DELETE", f"/api/v1/namespaces/{ns}"), "global", (409,)),
    ("GET", "/api/v1/audit"): Rule(_get("/api/v1/audit"), "admin", other="same"),
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
    return client.request(call.method, call.path, json=call.json, params=call.params)


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
    if answer.status_code == 200 and call.method == "GET" and "items" in answer.text[:20]:
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
        assert answer.status_code == 200
        return
    assert answer.status_code == 401, answer.text
    message = answer.json()["error"]["message"]
    assert "aaaaaaaa" not in message and "bbbbbbbb" not in message  # no token echoed back
