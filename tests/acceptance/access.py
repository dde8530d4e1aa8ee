"""A real server with authentication on, two namespaces and a token of each role in one of them:
the world the permission tests act in."""

from __future__ import annotations

import io
import itertools
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.acceptance.conftest import short_dir
from tests.servers import Server, wait_for

ADMIN_SECRET = "admin-secret-for-tests-0123456789"
OWN, OTHER = "team-a", "team-b"
ROLES = ("viewer", "operator", "editor", "admin")
SECRET_VALUE = "s3cret-Never-Shown-4817"  # every secret of the world has this value
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
    gate: Path = Path("/nonexistent")  # runs holding locks run until it exists
    _shared: dict[tuple[str, ...], Any] = field(default_factory=dict)

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

    def _once(self, key: tuple[str, ...], make: Callable[[], Any]) -> Any:
        """What ``make`` made the first time ``key`` was asked for (shared by the cases that do
        not change it)."""
        if key not in self._shared:
            self._shared[key] = make()
        return self._shared[key]

    def job(self, namespace: str) -> str:
        """A job to read."""
        ref: str = self._once(("job", namespace), lambda: self.new_job(namespace))
        return ref

    def run(self, namespace: str) -> int:
        run_id: int = self._once(("run", namespace), lambda: self.new_run(namespace))
        return run_id

    def new_pending_run(self, namespace: str) -> int:
        """A run waiting for a person (ACTION_PENDING: a manual start)."""
        answer = self.admin.post(f"/api/v1/jobs/{self.job(namespace)}/runs",
                                 json={"manual_start": True})
        assert answer.status_code == 201 and answer.json()["status"] == "ACTION_PENDING"
        run_id: int = answer.json()["id"]
        return run_id

    def pending_run(self, namespace: str) -> int:
        run_id: int = self._once(("pending", namespace), lambda: self.new_pending_run(namespace))
        return run_id

    def new_value(self, kind: str, namespace: str) -> str:
        """A variable or a secret (``kind``) in ``namespace``; its ref."""
        body = value_body(kind, namespace)
        answer = self.admin.post(f"/api/v1/{kind}s", json=body)
        assert answer.status_code == 201, answer.text
        return f"{namespace}/{body['name']}"

    def value(self, kind: str, namespace: str) -> str:
        ref: str = self._once((kind, namespace), lambda: self.new_value(kind, namespace))
        return ref

    def new_workflow(self, namespace: str) -> str:
        answer = self.admin.post("/api/v1/workflows", json=workflow_body(namespace))
        assert answer.status_code == 201, answer.text
        ref: str = answer.json()["ref"]
        return ref

    def workflow(self, namespace: str) -> str:
        ref: str = self._once(("workflow", namespace), lambda: self.new_workflow(namespace))
        return ref

    def new_bundle(self) -> str:
        """A bundle no job uses (bundles belong to no namespace); its id."""
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("script.sh", f"echo bundle {next(_names)}\n")
        answer = self.admin.post("/api/v1/bundles", files={"file": ("b.zip", buffer.getvalue())})
        assert answer.status_code == 201, answer.text
        bundle_id: str = answer.json()["id"]
        return bundle_id

    def bundle(self) -> str:
        bundle_id: str = self._once(("bundle",), self.new_bundle)
        return bundle_id

    def held_lock(self, namespace: str, purpose: str = "read") -> tuple[str, int]:
        """A lock of ``namespace`` held by a running run (until the world ends): its ref and
        the run's id. Each ``purpose`` has its own."""
        def make() -> tuple[str, int]:
            name = f"lock-{next(_names)}"
            job = self.new_job(namespace, locks=[name],
                               command=f"while [ ! -e {self.gate} ]; do sleep 0.05; done")
            run_id: int = self.admin.post(f"/api/v1/jobs/{job}/runs").json()["id"]
            wait_for(lambda: self.admin.get(f"/api/v1/runs/{run_id}").json()["status"]
                     == "RUNNING", what=f"run {run_id} to take lock {name}")
            return f"{namespace}/{name}", run_id

        held: tuple[str, int] = self._once(("lock", namespace, purpose), make)
        return held

    def new_token(self, namespace: str, role: str = "viewer") -> dict[str, Any]:
        answer = self.admin.post("/api/v1/tokens", json={
            "name": f"tok-{next(_names)}", "namespace": namespace, "role": role})
        assert answer.status_code == 201, answer.text
        token: dict[str, Any] = answer.json()
        return token


def value_body(kind: str, namespace: str) -> dict[str, str]:
    """A new variable's or secret's body."""
    return {"name": f"{kind}_{next(_names)}", "namespace": namespace,
            "value": SECRET_VALUE if kind == "secret" else "plain value"}


def workflow_body(namespace: str, name: str = "") -> dict[str, Any]:
    return {"name": name or f"flow-{next(_names)}", "namespace": namespace,
            "steps": [{"name": "only", "command": ["true"]}]}


def make_world(env: dict[str, str] | None = None) -> Iterator[World]:
    base = short_dir()
    server = Server(base / "data",
                    env={"HERDER_ADMIN_TOKEN": ADMIN_SECRET, **(env or {})}).start()
    admin = httpx.Client(base_url=server.url, headers=bearer(ADMIN_SECRET), timeout=30)
    try:
        world = World(server=server, admin=admin, gate=base / "gate")
        for namespace in (OWN, OTHER):
            assert admin.post("/api/v1/namespaces", json={"name": namespace}).status_code == 201
        for role in ROLES:
            token = world.new_token(OWN, role)
            world.tokens[role], world.token_ids[role] = token["token"], token["id"]
        yield world
    finally:
        (base / "gate").touch()  # the runs holding locks end
        admin.close()
        server.close()
