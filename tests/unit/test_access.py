"""The pure parts of access control: roles, principals, the token format, audit actions."""

from __future__ import annotations

import pytest
from starlette.routing import Route

from herder.api.audit import action_of
from herder.api.auth import OPEN, Permission, Principal, Trail
from herder.api.gate import presented_token
from herder.model.errors import Forbidden, NotFound, Unauthorized
from herder.model.tokens import Role, digest, format_token, new_secret, parse_token, same_digest
from herder.server import is_loopback

GRANTS = {
    Role.VIEWER: {Permission.READ},
    Role.OPERATOR: {Permission.READ, Permission.RUN},
    Role.EDITOR: {Permission.READ, Permission.RUN, Permission.EDIT},
    Role.ADMIN: set(Permission),
}


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("permission", list(Permission))
def test_roles_grant_in_their_namespace_only(role: Role, permission: Permission) -> None:
    principal = Principal(name="t", token_id=1, role=role, namespace="ops")
    assert principal.allows(permission, "ops") == (permission in GRANTS[role])
    assert not principal.allows(permission, "other")
    everywhere = Principal(name="t", token_id=1, role=role, namespace="*")
    assert everywhere.allows(permission, "any") == (permission in GRANTS[role])


def test_check_hides_other_namespaces_and_forbids_in_its_own() -> None:
    trail = Trail()
    viewer = Principal(name="v", token_id=1, role=Role.VIEWER, namespace="ops", trail=trail)
    with pytest.raises(NotFound) as hidden:
        viewer.check(Permission.READ, "other", missing="no job with id 3", details={"job": "3"})
    assert hidden.value.message == "no job with id 3" and hidden.value.details == {"job": "3"}
    with pytest.raises(Forbidden, match="needs the operator role"):
        viewer.check(Permission.RUN, "ops", missing="-")
    assert trail.namespace == "other"  # the first namespace asked about is the audit's
    viewer.check(Permission.READ, "ops", missing="-")


def test_readable_and_scope() -> None:
    assert OPEN.readable() is None and OPEN.everywhere(Permission.ADMIN)
    admin = Principal(name="a", role=Role.ADMIN, namespace="*")
    assert admin.readable() is None and admin.everywhere(Permission.ADMIN)
    ops = Principal(name="o", role=Role.EDITOR, namespace="ops")
    assert ops.readable() == frozenset({"ops"}) and ops.scope(Permission.ADMIN) == frozenset()
    assert not ops.everywhere(Permission.READ)
    assert Principal(name="nobody").readable() == frozenset()


def test_a_token_round_trips_and_only_its_hash_is_compared() -> None:
    secret = new_secret()
    text = format_token(42, secret)
    assert text.startswith("herder_42_")
    assert parse_token(text) == (42, secret)
    assert same_digest(digest(secret), digest(secret))
    assert not same_digest(digest(secret), digest(secret + "x"))
    assert len(digest(secret)) == 64


@pytest.mark.parametrize("text", [
    "", "herder_", "ghp_1_" + "a" * 43, "herder_0_" + "a" * 43, "herder_01_" + "a" * 43,
    "herder_1_" + "a" * 42, "herder_1_" + "a" * 44, "herder_x_" + "a" * 43,
    "herder_1_" + "a" * 21 + "\x00" + "a" * 21, "herder_1_" + "a" * 42 + "é",
    "herder_" + "9" * 20 + "_" + "a" * 43, "herder_1_" + "a" * 10_000,
])
def test_malformed_tokens(text: str) -> None:
    with pytest.raises(Unauthorized, match="malformed token"):
        parse_token(text)


def test_presented_token_headers() -> None:
    assert presented_token({}) is None
    assert presented_token({"authorization": "Bearer abc"}) == "abc"
    assert presented_token({"authorization": "bearer  abc "}) == "abc"
    assert presented_token({"x-api-token": "abc"}) == "abc"
    assert presented_token({"authorization": "Bearer abc", "x-api-token": "abc"}) == "abc"
    for bad in ({"authorization": "Basic abc"}, {"authorization": "Bearer"},
                {"x-api-token": " "}, {"authorization": "Bearer a", "x-api-token": "b"}):
        with pytest.raises(Unauthorized):
            presented_token(bad)


async def _endpoint() -> None:
    return None


@pytest.mark.parametrize(("path", "method", "name", "action"), [
    ("/api/v1/jobs", "POST", "create_job", "job.create"),
    ("/api/v1/jobs/{ref:path}", "PUT", "replace_job", "job.apply"),
    ("/api/v1/jobs/{ref:path}", "PATCH", "patch_job", "job.update"),
    ("/api/v1/jobs/{ref:path}", "DELETE", "delete_job", "job.delete"),
    ("/api/v1/jobs/{ref:path}/runs", "POST", "run_job", "job.run"),
    ("/api/v1/runs/{run_id}/cancel", "POST", "cancel_run", "run.cancel"),
    ("/api/v1/tokens/{token_id}", "DELETE", "token.revoke", "token.revoke"),
    ("/api/v1/namespaces", "POST", "create_namespace", "namespace.create"),
    ("/api/v1/workflow-runs/{id}/pause", "POST", "pause", "workflow-run.pause"),
])
def test_audit_actions_come_from_the_route(path: str, method: str, name: str,
                                           action: str) -> None:
    route = Route(path, _endpoint, methods=[method], name=name)
    assert action_of(route, method) == action
    assert action_of(None, "POST") == "unknown.post"


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("[::1]", True),
    ("localhost", True), ("0.0.0.0", False), ("::", False), ("10.0.0.5", False),
    ("example.com", False), ("", False),
])
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) == loopback
