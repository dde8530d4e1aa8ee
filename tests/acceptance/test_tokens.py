"""Tokens against a real server: both headers, expiry, revocation, replay, malformed input that
no HTTP client would send, ``whoami``, ``herder token bootstrap``, and the rule for starting
open."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from tests.acceptance.access import ADMIN_SECRET, OWN, World, bearer, make_world
from tests.acceptance.conftest import short_dir
from tests.servers import Server, free_port, wait_for

pytestmark = pytest.mark.acceptance


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    yield from make_world()


def whoami(world: World, headers: dict[str, str]) -> httpx.Response:
    return httpx.get(f"{world.server.url}/api/v1/whoami", headers=headers, timeout=30)


def test_both_headers_and_whoami(world: World) -> None:
    token = world.new_token(OWN, "operator")
    for headers in (bearer(token["token"]), {"X-Api-Token": token["token"]},
                    {"Authorization": f"bearer {token['token']}", "X-Api-Token": token["token"]}):
        me = whoami(world, headers)
        assert me.status_code == 200, me.text
        assert me.json() == {"name": token["name"], "token_id": token["id"], "role": "operator",
                             "namespace": OWN, "authentication": "on"}
    def last_used() -> str | None:
        listed = world.admin.get("/api/v1/tokens", params={"limit": 1000}).json()["items"]
        used: str | None = next(t for t in listed if t["id"] == token["id"])["last_used_at"]
        return used

    wait_for(last_used, timeout=10, what="last_used_at to be recorded")
    other = world.new_token(OWN, "viewer")
    both = whoami(world, {**bearer(token["token"]), "X-Api-Token": other["token"]})
    assert both.status_code == 401
    assert "two different tokens" in both.json()["error"]["message"]


def test_the_admin_token_from_the_environment(world: World) -> None:
    me = whoami(world, {"X-Api-Token": ADMIN_SECRET}).json()
    assert me["name"] == "HERDER_ADMIN_TOKEN" and me["role"] == "admin" and me["namespace"] == "*"


def test_a_token_expires(world: World) -> None:
    made = world.admin.post("/api/v1/tokens", json={
        "name": "brief", "namespace": OWN, "role": "viewer", "expires_in": "1s"})
    assert made.status_code == 201, made.text
    token = made.json()
    assert token["expires_at"] is not None
    answer = wait_for(lambda: (r := whoami(world, bearer(token["token"]))).status_code == 401
                      and r, timeout=10, what="the token to expire")
    message = answer.json()["error"]["message"]
    assert f"token {token['id']} (brief) expired at" in message


def test_a_revoked_token_is_refused_at_once_and_when_replayed(world: World) -> None:
    token = world.new_token(OWN, "editor")
    assert whoami(world, bearer(token["token"])).status_code == 200
    revoked = world.admin.delete(f"/api/v1/tokens/{token['id']}")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert "token" not in revoked.json() or revoked.json()["token"] is None
    for headers in (bearer(token["token"]), {"X-Api-Token": token["token"]}):
        answer = whoami(world, headers)  # replayed, through either header
        assert answer.status_code == 401
        assert "was revoked at" in answer.json()["error"]["message"]
    change = httpx.post(f"{world.server.url}/api/v1/jobs", headers=bearer(token["token"]),
                        json={"name": "after-revoke", "namespace": OWN, "command": "true"})
    assert change.status_code == 401
    assert world.admin.get(f"/api/v1/jobs/{OWN}/after-revoke").status_code == 404
    again = world.admin.delete(f"/api/v1/tokens/{token['id']}")
    assert again.json()["revoked_at"] == revoked.json()["revoked_at"]


def test_a_wrong_secret_does_not_tell_whether_the_token_exists(world: World) -> None:
    token = world.new_token(OWN)
    world.admin.delete(f"/api/v1/tokens/{token['id']}")
    forged = f"herder_{token['id']}_" + "x" * 43  # a revoked id, a wrong secret
    unknown = "herder_987654321_" + "x" * 43
    first = whoami(world, bearer(forged)).json()["error"]["message"]
    second = whoami(world, bearer(unknown)).json()["error"]["message"]
    assert first == second and "revoked" not in first


def raw_request(url: str, header: bytes) -> bytes:
    """A request with a header line no HTTP library would let us send."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(b"GET /api/v1/whoami HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                     + header + b"\r\n\r\n")
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("header", [
    b"X-Api-Token: herder_1_" + b"a" * 20 + b"\x00" + b"a" * 22,
    b"Authorization: Bearer herder_1_\xff\xfe" + b"a" * 41,
    b"X-Api-Token: herder_" + b"9" * 40 + b"_" + b"a" * 43,
    b"X-Api-Token:    ",
], ids=["NUL", "not UTF-8", "id too large", "blank"])
def test_malformed_tokens_on_the_wire(world: World, header: bytes) -> None:
    answer = raw_request(world.server.url, header)
    status = answer.split(b" ", 2)[1]
    assert status in (b"400", b"401"), answer[:300]  # 400: the HTTP parser refused it first
    assert b"Traceback" not in answer


def test_bootstrap_turns_a_running_open_server_on() -> None:
    server = Server(short_dir() / "data").start()
    try:
        assert server.client.get("/api/v1/whoami").json()["authentication"] == "off"
        refused = server.cli("token", "create", "--namespace", "ops", "--role", "viewer")
        assert refused.returncode == 1 and "herder token bootstrap" in refused.stderr
        made = server.cli("token", "bootstrap", "--data-dir", str(server.data_dir))
        assert made.returncode == 0, made.stderr
        secret = made.stdout.strip()
        assert secret.startswith("herder_1_") and "shown once" in made.stderr
        wait_for(lambda: server.client.get("/api/v1/jobs").status_code == 401, timeout=10,
                 what="the open server to notice the first token")
        server.env["HERDER_TOKEN"] = secret
        me = server.cli("whoami")
        assert me.returncode == 0 and "admin in *" in me.stdout, me.stderr
        again = server.cli("token", "bootstrap", "--data-dir", str(server.data_dir))
        assert again.returncode == 1 and "exists already" in again.stderr
        made = server.cli("-o", "json", "token", "create", "ci", "-n", "default", "-r",
                          "operator", "--expires", "30d")
        assert made.returncode == 0, made.stderr
        assert '"token": "herder_' in made.stdout
        listed = server.cli("token", "list")
        assert "ci" in listed.stdout and "herder_" not in listed.stdout
        server.env["HERDER_TOKEN"] = "herder_1_" + "z" * 43
        bad = server.cli("job", "list")
        assert bad.returncode == 1 and "unknown token" in bad.stderr
        assert "HERDER_TOKEN" in bad.stderr
    finally:
        server.close()


def _start(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    data = short_dir() / "data"
    return subprocess.run(
        [sys.executable, "-m", "herder", "server", "--port", str(free_port()),
         "--data-dir", str(data), *args],
        env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=60,
        check=False,
    )


def test_a_non_loopback_server_refuses_to_start_open() -> None:
    refused = _start("--host", "0.0.0.0")
    assert refused.returncode == 1
    lines = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, refused.stderr
    assert "--allow-open" in lines[0] and "herder token bootstrap" in lines[0]
    short = _start(env={"HERDER_ADMIN_TOKEN": "short"})
    assert short.returncode == 2 and "HERDER_ADMIN_TOKEN" in short.stderr


@pytest.mark.parametrize("how", ["--allow-open", "HERDER_ADMIN_TOKEN"])
def test_a_non_loopback_server_starts_when_told(how: str) -> None:
    env = {"HERDER_ADMIN_TOKEN": ADMIN_SECRET} if how == "HERDER_ADMIN_TOKEN" else {}
    args = ["--host", "0.0.0.0"] + (["--allow-open"] if how == "--allow-open" else [])
    server = Server(short_dir() / "data", env=env, args=args).start()
    try:
        expected = 200 if how == "--allow-open" else 401
        assert server.client.get("/api/v1/jobs").status_code == expected
    finally:
        server.close()
    log = server.log_path.read_text()
    assert ("authentication is OFF" in log) == (how == "--allow-open")


@pytest.mark.postgres
def test_servers_on_one_postgres_notice_a_token_made_beside_them(postgres_url: str) -> None:
    base = short_dir()
    a = Server(base / "a", database_url=postgres_url).start()
    b = Server(base / "b", database_url=postgres_url).start()
    try:
        made = a.cli("token", "bootstrap", "--data-dir", str(a.data_dir))
        assert made.returncode == 0, made.stderr
        secret = made.stdout.strip()
        def both_on() -> bool:
            return all(s.client.get("/api/v1/runs").status_code == 401 for s in (a, b))

        wait_for(both_on, timeout=10, what="both servers to turn authentication on")
        token = a.client.post("/api/v1/tokens", headers=bearer(secret), json={
            "name": "shared", "namespace": "default", "role": "viewer"}).json()
        assert b.client.get("/api/v1/runs", headers=bearer(token["token"])).status_code == 200
        a.client.delete(f"/api/v1/tokens/{token['id']}", headers=bearer(secret))
        wait_for(lambda: b.client.get("/api/v1/runs", headers=bearer(token["token"]))
                 .status_code == 401, timeout=10, what="the other server to see the revocation")
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize(("body", "where"), [
    ({"name": "x", "namespace": OWN, "role": "root"}, "role"),
    ({"name": "X y", "namespace": OWN, "role": "viewer"}, "name"),
    ({"name": "x", "namespace": "**", "role": "viewer"}, "namespace"),
    ({"name": "x", "namespace": OWN, "role": "viewer", "expires_in": "forever"}, "expires_in"),
    ({"name": "x", "namespace": OWN, "role": "viewer", "expires_in": "400d"}, "expires_in"),
    ({"name": "x", "namespace": OWN, "role": "viewer", "expires_in": -1}, "expires_in"),
    ({"name": "x", "namespace": OWN, "role": "viewer", "secret": "mine"}, "secret"),
    ({"name": "x\x00", "namespace": OWN, "role": "viewer"}, "name"),
])
def test_bad_token_requests_change_nothing(world: World, body: dict[str, object],
                                           where: str) -> None:
    before = world.admin.get("/api/v1/tokens", params={"limit": 1000}).json()["items"]
    answer = world.admin.post("/api/v1/tokens", json=body)
    assert answer.status_code == 422 and where in answer.json()["error"]["message"]
    assert world.admin.get("/api/v1/tokens", params={"limit": 1000}).json()["items"] == before


def test_a_namespace_admin_cannot_reach_beyond_it(world: World) -> None:
    with world.client("admin") as admin:
        every = admin.post("/api/v1/tokens", json={"name": "x", "namespace": "*",
                                                   "role": "viewer"})
        assert every.status_code == 403
        assert admin.post("/api/v1/namespaces", json={"name": "mine"}).status_code == 403
        assert admin.delete(f"/api/v1/namespaces/{OWN}").status_code == 403
        for hostile in ("..", "%2e%2e", "a" * 300, "default%00"):
            assert admin.get(f"/api/v1/namespaces/{hostile}").status_code == 404
        submitter = admin.post(f"/api/v1/jobs/{world.job(OWN)}/runs",
                               json={"submitter": "evil\nline"})
        assert submitter.status_code == 422


def test_bad_input_to_namespaces(world: World) -> None:
    for name in ("Ops", "-x", "a" * 64, "", "x/y"):
        answer = world.admin.post("/api/v1/namespaces", json={"name": name})
        assert answer.status_code == 422, name
    assert world.admin.delete("/api/v1/namespaces/nowhere").status_code == 404
