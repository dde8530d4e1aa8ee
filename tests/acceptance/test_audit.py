"""The audit trail, namespaces and run submitters against a real server with tokens."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.acceptance.access import ADMIN_SECRET, OTHER, OWN, World, bearer, make_world
from tests.servers import wait_for

pytestmark = pytest.mark.acceptance


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    yield from make_world()


def trail(world: World, **filters: Any) -> list[dict[str, Any]]:
    answer = world.admin.get("/api/v1/audit", params={"limit": 1000, **filters})
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


def entry_for(world: World, **match: Any) -> dict[str, Any]:
    """The newest entry with these fields, once it is written (entries are written after the
    answer, off the request's path)."""
    def found() -> dict[str, Any] | None:
        for item in trail(world):
            if all(item.get(k) == v for k, v in match.items()):
                return item
        return None

    result: dict[str, Any] = wait_for(found, timeout=10, what=f"an audit entry {match}")
    return result


def test_changes_are_recorded_with_who_what_where_and_the_result(world: World) -> None:
    since = datetime.now(UTC).isoformat()
    with world.client("editor") as editor:
        assert editor.post("/api/v1/jobs", json={
            "name": "audited", "namespace": OWN, "command": "true"}).status_code == 201
        assert editor.post(f"/api/v1/jobs/{OWN}/audited/disable").status_code == 200
        assert editor.post("/api/v1/jobs", json={
            "name": "audited", "namespace": OWN, "command": "true"}).status_code == 409
        assert editor.get(f"/api/v1/jobs/{OWN}/audited").status_code == 200  # not a change
    with world.client("viewer") as viewer:
        assert viewer.delete(f"/api/v1/jobs/{OWN}/audited").status_code == 403
    assert httpx.post(f"{world.server.url}/api/v1/jobs", json={}).status_code == 401
    editor_name = whoami_name(world, "editor")
    created = entry_for(world, action="job.create", status=201, object=f"{OWN}/audited")
    assert created["actor"] == editor_name and created["namespace"] == OWN
    assert created["client"] == "127.0.0.1" and created["method"] == "POST"
    assert created["token_id"] == world.token_ids["editor"]
    entry_for(world, action="job.disable", status=200, object=f"{OWN}/audited")
    entry_for(world, action="job.create", status=409, actor=editor_name)
    entry_for(world, action="job.delete", status=403, actor=whoami_name(world, "viewer"))
    entry_for(world, action="job.create", status=401, actor="unauthenticated")
    mine = trail(world, actor=editor_name, since=since)
    assert {e["action"] for e in mine} == {"job.create", "job.disable"}
    assert all(e["method"] != "GET" for e in trail(world))


def whoami_name(world: World, role: str) -> str:
    with world.client(role) as client:
        name: str = client.get("/api/v1/whoami").json()["name"]
    return name


def test_token_changes_are_recorded_without_their_secrets(world: World) -> None:
    token = world.new_token(OWN, "viewer")
    world.admin.delete(f"/api/v1/tokens/{token['id']}")
    entry_for(world, action="token.create", object=str(token["id"]), status=201)
    revoke = entry_for(world, action="token.revoke", object=str(token["id"]), status=200)
    assert revoke["actor"] == "HERDER_ADMIN_TOKEN" and revoke["namespace"] == OWN
    everything = world.admin.get("/api/v1/audit", params={"limit": 1000}).text
    secret = token["token"].split("_", 2)[2]  # the secret may hold "_" itself
    assert secret not in everything and world.tokens["admin"] not in everything


def test_filters_and_paging(world: World) -> None:
    for _ in range(3):
        world.new_job(OTHER)
    wait_for(lambda: len(trail(world, action="job.create", namespace=OTHER)) >= 3, timeout=10,
             what="three entries")
    page = world.admin.get("/api/v1/audit", params={
        "action": "job.create", "namespace": OTHER, "limit": 2}).json()
    assert len(page["items"]) == 2 and page["next_cursor"]
    rest = world.admin.get("/api/v1/audit", params={
        "action": "job.create", "namespace": OTHER, "limit": 1000,
        "cursor": page["next_cursor"]}).json()
    ids = [e["id"] for e in page["items"] + rest["items"]]
    assert ids == sorted(ids, reverse=True) and len(ids) == len(set(ids)) >= 3
    assert all(e["namespace"] == OTHER for e in page["items"] + rest["items"])
    every_job_action = trail(world, action="job.*")
    assert every_job_action and all(e["action"].startswith("job.") for e in every_job_action)
    assert trail(world, until="2000-01-01T00:00:00Z") == []
    with world.client("admin") as own_admin:  # a namespace's admin sees that namespace only
        seen = own_admin.get("/api/v1/audit", params={"limit": 1000}).json()["items"]
    assert seen and {e["namespace"] for e in seen} == {OWN}
    with world.client("editor") as editor:
        assert editor.get("/api/v1/audit").status_code == 403


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_the_trail_cannot_be_changed(world: World, method: str) -> None:
    before = trail(world)
    answer = world.admin.request(method, "/api/v1/audit", json={})
    assert answer.status_code == 405
    one = world.admin.request(method, f"/api/v1/audit/{before[0]['id']}", json={})
    assert one.status_code in (404, 405)
    after = trail(world)
    assert [e for e in after if e["id"] <= before[0]["id"]] == before


def test_submitter_is_the_caller_unless_an_admin_names_one(world: World) -> None:
    job = world.job(OWN)
    with world.client("operator") as operator:
        run = operator.post(f"/api/v1/jobs/{job}/runs").json()
        assert run["submitter"] == whoami_name(world, "operator")
        named = operator.post(f"/api/v1/jobs/{job}/runs", json={"submitter": "someone"})
        assert named.status_code == 403 and "admin role" in named.json()["error"]["message"]
        retried = operator.post(f"/api/v1/runs/{world.run(OWN)}/retry").json()
        assert retried["submitter"] == whoami_name(world, "operator")
    with world.client("admin") as admin:
        named = admin.post(f"/api/v1/jobs/{job}/runs", json={"submitter": "nightly-report"})
        assert named.status_code == 201 and named.json()["submitter"] == "nightly-report"
    found = world.admin.get("/api/v1/runs", params={"submitter": "nightly-report"}).json()
    assert [r["id"] for r in found["items"]] == [named.json()["id"]]


def test_a_namespace_is_deleted_only_when_empty_or_forced(world: World) -> None:
    assert world.admin.post("/api/v1/namespaces", json={"name": "doomed"}).status_code == 201
    assert world.admin.post("/api/v1/namespaces", json={"name": "doomed"}).status_code == 409
    run_id = world.new_run("doomed")
    world.new_token("doomed")
    shown = world.admin.get("/api/v1/namespaces/doomed").json()
    assert shown["holds"] == {"runs": 1, "jobs": 1, "tokens": 1}
    refused = world.admin.delete("/api/v1/namespaces/doomed")
    assert refused.status_code == 409
    assert "jobs: 1" in refused.json()["error"]["message"]
    assert "force" in refused.json()["error"]["message"]
    assert (world.server.data_dir / "work" / str(run_id)).is_dir()
    assert world.admin.delete("/api/v1/namespaces/doomed", params={"force": "true"}
                              ).status_code == 204
    assert world.admin.get("/api/v1/namespaces/doomed").status_code == 404
    assert world.admin.get(f"/api/v1/runs/{run_id}").status_code == 404
    assert not (world.server.data_dir / "work" / str(run_id)).exists()
    assert world.admin.delete("/api/v1/namespaces/default").status_code == 409


def test_objects_in_a_missing_namespace(world: World) -> None:
    """An admin for every namespace creates it by putting an object in it; anyone else hears
    how to create it."""
    everywhere = world.admin.post("/api/v1/tokens", json={
        "name": "all-editor", "namespace": "*", "role": "editor"}).json()
    body = {"name": "j", "namespace": "brand-new", "command": "true"}
    refused = httpx.post(f"{world.server.url}/api/v1/jobs", json=body,
                         headers=bearer(everywhere["token"]))
    assert refused.status_code == 404
    assert "herder namespace create brand-new" in refused.json()["error"]["message"]
    assert world.admin.post("/api/v1/jobs", json=body).status_code == 201
    assert world.admin.get("/api/v1/namespaces/brand-new").status_code == 200


def test_a_namespace_manifest_is_applied_before_the_objects_in_it(
    world: World, tmp_path: Path
) -> None:
    manifest = tmp_path / "all.yaml"
    manifest.write_text(
        "apiVersion: herder/v1\nkind: Job\nmetadata: {name: etl, namespace: data}\n"
        "spec: {command: 'true'}\n---\n"
        "apiVersion: herder/v1\nkind: Namespace\nmetadata: {name: data}\n"
    )
    world.server.env["HERDER_TOKEN"] = world.tokens["admin"]  # one namespace's admin: refused
    refused = world.server.cli("apply", "-f", str(manifest))
    assert refused.returncode == 1 and "namespace data" in refused.stderr
    world.server.env["HERDER_TOKEN"] = ADMIN_SECRET
    try:
        applied = world.server.cli("apply", "-f", str(manifest))
        assert applied.returncode == 0, applied.stderr
        assert applied.stdout.splitlines() == ["namespace data created", "job data/etl created"]
        again = world.server.cli("apply", "-f", str(manifest))
        assert again.stdout.splitlines() == ["namespace data unchanged",
                                             "job data/etl unchanged"]
    finally:
        del world.server.env["HERDER_TOKEN"]


def test_the_cli_for_namespaces_and_the_audit_trail(world: World) -> None:
    world.server.env["HERDER_TOKEN"] = ADMIN_SECRET
    try:
        assert world.server.cli("namespace", "create", "cli-made").returncode == 0
        listed = world.server.cli("namespace", "list")
        assert "cli-made" in listed.stdout and OWN in listed.stdout
        world.new_job("cli-made")
        refused = world.server.cli("namespace", "delete", "cli-made")
        assert refused.returncode == 1 and "jobs: 1" in refused.stderr
        assert world.server.cli("namespace", "delete", "cli-made", "--force").returncode == 0
        entry_for(world, action="namespace.delete", object="cli-made", status=204)
        trail_out = world.server.cli("-o", "json", "audit", "--action", "namespace.*",
                                     "--since", "1h")
        assert trail_out.returncode == 0, trail_out.stderr
        assert '"object": "cli-made"' in trail_out.stdout
        world.server.env["COLUMNS"] = "200"
        table = world.server.cli("audit", "--namespace", "cli-made")
        del world.server.env["COLUMNS"]
        assert "namespace.delete" in table.stdout and "409" in table.stdout, table.stdout
    finally:
        del world.server.env["HERDER_TOKEN"]
    world.server.env["HERDER_TOKEN"] = world.tokens["viewer"]
    try:
        forbidden = world.server.cli("audit")
        assert forbidden.returncode == 1 and "herder whoami" in forbidden.stderr
    finally:
        del world.server.env["HERDER_TOKEN"]
