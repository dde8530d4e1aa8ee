"""A real server with authentication on, two namespaces and a token of each role in one of them:
the world the permission tests act in."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.acceptance.conftest import short_dir
from tests.servers import Server, wait_for

ADMIN_SECRET = "admin-secret-for-tests-0123456789"
OWN, OTHER = "team-a", "team-b"
ROLES = ("viewer", "operator", "editor", "admin")
_names = itertools.count(1)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class World:
    """The server, an admin client (``HERDER_ADMIN_TOKEN``), and a token per role in ``OWN``."""

    server: Server
    admin: httpx.Client
    tokens: dict[str, str] = field(default_factory=dict)
    token_ids: dict[str, int] = field(default_factory=dict)
    _shared: dict[tuple[str, str], Any] = field(default_factory=dict)

    def client(self, role: str | None) -> httpx.Client:
        headers = bearer(self.tokens[role]) if role else {}
        return httpx.Client(base_url=self.server.url, headers=headers, timeout=30)

    def new_job(self, namespace: str, **spec: Any) -> str:
        name = f"job-{next(_names)}"
        body = {"name": name, "namespace": namespace, "command": "true", **spec}
        answer = self.admin.post("/api/v1/jobs", json=body)
        assert answer.status_code == 201, answer.text
        return f"{namespace}/{name}"

    def new_run(self, namespace: str) -> int:
        """An ended run in ``namespace``."""
        answer = self.admin.post(f"/api/v1/jobs/{self.new_job(namespace)}/runs")
        assert answer.status_code == 201, answer.text
        run_id: int = answer.json()["id"]
        wait_for(lambda: self.admin.get(f"/api/v1/runs/{run_id}").json()["status_code"] >= 400,
                 what=f"run {run_id} to end")
        return run_id

    def job(self, namespace: str) -> str:
        """A job to read (shared by the cases that do not change it)."""
        key = ("job", namespace)
        if key not in self._shared:
            self._shared[key] = self.new_job(namespace)
        ref: str = self._shared[key]
        return ref

    def run(self, namespace: str) -> int:
        key = ("run", namespace)
        if key not in self._shared:
            self._shared[key] = self.new_run(namespace)
        run_id: int = self._shared[key]
        return run_id

    def new_token(self, namespace: str, role: str = "viewer") -> dict[str, Any]:
        answer = self.admin.post("/api/v1/tokens", json={
            "name": f"tok-{next(_names)}", "namespace": namespace, "role": role})
        assert answer.status_code == 201, answer.text
        token: dict[str, Any] = answer.json()
        return token


def make_world(env: dict[str, str] | None = None) -> Iterator[World]:
    server = Server(short_dir() / "data",
                    env={"HERDER_ADMIN_TOKEN": ADMIN_SECRET, **(env or {})}).start()
    admin = httpx.Client(base_url=server.url, headers=bearer(ADMIN_SECRET), timeout=30)
    try:
        world = World(server=server, admin=admin)
        for namespace in (OWN, OTHER):
            assert admin.post("/api/v1/namespaces", json={"name": namespace}).status_code == 201
        for role in ROLES:
            token = world.new_token(OWN, role)
            world.tokens[role], world.token_ids[role] = token["token"], token["id"]
        yield world
    finally:
        admin.close()
        server.close()
