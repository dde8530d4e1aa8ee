"""The audit trail's writer: one entry for every change request, whatever its answer.

A change request is any method but GET, HEAD and OPTIONS. The entry says who (the principal's
name and token id, ``unauthenticated`` when no token was accepted), what (an action such as
``job.create`` or ``run.cancel``, derived from the route), where (the namespace the route
checked, and the object), from which address, the HTTP status, and when. It is queued on the
store's group-committing writer after the answer is sent (``AuditBuffer``): requests never wait
for it.

Never recorded: bodies, query strings, headers (tokens travel there).
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Connection
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from herder.api.auth import Principal
from herder.api.gate import SAFE_METHODS
from herder.store import audit as audit_store
from herder.store.database import Database

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1/"
_VERBS = {"POST": "create", "PUT": "apply", "PATCH": "update", "DELETE": "delete"}


def action_of(route: BaseRoute | None, method: str) -> str:
    """``kind.verb`` for a route: its ``name`` when that has a dot (``token.revoke``), else the
    object kind from the path (``/jobs`` → ``job``) and the verb from a literal last segment
    (``/runs/{id}/cancel`` → ``run.cancel``) or from the method (POST → ``create``)."""
    name = getattr(route, "name", None) or ""
    if "." in name:
        return name
    path = getattr(route, "path", None)
    if not isinstance(path, str) or not path.startswith(API_PREFIX):
        return f"unknown.{method.lower()}"
    parts = [part for part in path.removeprefix(API_PREFIX).split("/") if part]
    kind = parts[0].removesuffix("s") if parts else "unknown"
    last = parts[-1] if len(parts) > 1 else ""
    if last and not last.startswith("{"):
        return f"{kind}.{last.removesuffix('s')}"
    return f"{kind}.{_VERBS.get(method, method.lower())}"


def _text(value: Any, limit: int) -> str | None:
    if value is None:
        return None
    # PostgreSQL refuses NUL in text, and the trail must be written whatever came in.
    return str(value).replace("\x00", "\\x00")[:limit]


def entry(scope: Scope, status: int, now: datetime) -> dict[str, Any]:
    """The audit row for a finished request."""
    state = scope.get("state") or {}
    principal: Principal | None = state.get("principal")
    trail = principal.trail if principal is not None else None
    params = scope.get("path_params") or {}
    obj = trail.object if trail is not None and trail.object else (
        "/".join(str(v) for v in params.values()) or None)
    client = scope.get("client")
    if principal is not None:
        actor = principal.name
    else:
        actor = "unauthenticated" if status == 401 else "anonymous"
    return {
        "at": now,
        "actor": _text(actor, 255),
        "token_id": principal.token_id if principal is not None else None,
        "action": _text(action_of(scope.get("route"), scope["method"]), 64),
        "method": _text(scope["method"], 16),
        "path": _text(scope.get("path", ""), 1000),
        "namespace": _text(trail.namespace if trail is not None else None, 63),
        "object": _text(obj, 255),
        "client": _text(client[0] if client else None, 64),
        "status": status,
    }


class AuditBuffer:
    """Entries waiting for the store's writer, written many to a statement.

    The first entry into an empty buffer queues one write; every entry added before the writer
    reaches it goes into the same multi-row INSERT. No timer, no task: the writer's own queue
    is the clock, so under load entries cost a fraction of a statement each.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self._lock = threading.Lock()
        self._pending: list[dict[str, Any]] = []

    def add(self, row: dict[str, Any]) -> None:
        with self._lock:
            self._pending.append(row)
            if len(self._pending) > 1:
                return  # a write is queued already and will take this one
        taken: list[list[dict[str, Any]]] = []

        def flush(conn: Connection) -> None:
            if not taken:  # taken once: a batch retried call by call writes the same rows
                with self._lock:
                    taken.append(self._pending)
                    self._pending = []
            audit_store.record(conn, taken[0])

        self.db.submit_write(flush).add_done_callback(_log_failure)


class AuditTrail:
    """ASGI middleware recording change requests under ``/api/``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope["method"] in SAFE_METHODS
                or not scope.get("path", "").startswith("/api/")):
            await self.app(scope, receive, send)
            return
        status = 500  # what the client gets if the app raises before answering

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            buffer: AuditBuffer | None = getattr(scope["app"].state, "audit", None)
            if buffer is not None:
                buffer.add(entry(scope, status, datetime.now(UTC)))


def _log_failure(future: Future[None]) -> None:
    if future.exception() is not None:
        log.error("could not write an audit entry: %s", future.exception(),
                  extra={"action": "audit_failed"})
