"""The gate: turns a request's token into a ``Principal``, or lets it through open.

Authentication is on when ``HERDER_ADMIN_TOKEN`` is set or any token exists in the store (a
revoked one too: once on, it stays on). An open server looks for a first token at most once a
second, and only while requests arrive, so one made by ``herder token bootstrap`` or by another
server on the same PostgreSQL turns it on within a second; one made through this server turns
it on at once.

Per request, a token costs a dictionary lookup and a SHA-256: stored tokens are cached for
``CACHE_TTL`` seconds (a revocation through this server evicts at once; through another server
it takes effect here within that time), and ``last_used_at`` is written at most once a minute
per token, queued on the store's writer without waiting for it.

A browser signed in through ``POST /api/v1/session`` sends a session cookie instead of a token
(``herder.api.sessions``): the gate checks its signature and its token as above, and the CSRF
header of a change. Any change a browser marks as sent by another site's page is refused, on an
open server too.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request

from herder.api.auth import OPEN, Principal, Trail
from herder.api.sessions import (
    ADMIN,
    CSRF_HEADER,
    SESSION_COOKIE,
    CsrfRefused,
    Sessions,
    cross_site,
)
from herder.model.errors import Unauthorized
from herder.model.tokens import ALL_NAMESPACES, Role, Token, digest, parse_token, same_digest
from herder.store import tokens as token_store
from herder.store.database import Database

log = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
ADMIN_TOKEN_NAME = "HERDER_ADMIN_TOKEN"
RECHECK = 1.0
CACHE_TTL = 2.0
TOUCH_EVERY = 60.0
_NO_TOKEN = (
    "this server requires an API token: send 'Authorization: Bearer <token>' or "
    "'X-Api-Token: <token>' (the CLI sends $HERDER_TOKEN); an admin makes one with "
    "`herder token create`"
)
_UNKNOWN = "unknown token: no token matches it; check HERDER_TOKEN, or ask an admin for one"
_SESSION_OVER = "your session has ended (signed out, expired, or its token revoked); sign in again"
_CROSS_SITE = (
    "a change sent by a page of another site is refused (its Origin is not this server's); "
    "use the herder UI of this server, the CLI, or a client that sends no Origin"
)
_NO_CSRF = (
    "this change came with the session cookie but without a matching X-CSRF-Token header; "
    "reload the page (API clients send a token instead of the cookie)"
)


def presented_token(headers: Mapping[str, str]) -> str | None:
    """The token a request carries (``Authorization: Bearer`` or ``X-Api-Token``), or None."""
    bearer = headers.get("authorization")
    header = headers.get("x-api-token")
    token = None
    if bearer is not None:
        scheme, _, value = bearer.strip().partition(" ")
        if scheme.lower() != "bearer":
            raise Unauthorized("malformed Authorization header: use 'Authorization: Bearer "
                               "<token>'")
        token = value.strip()
    if header is not None:
        if token is not None and header.strip() != token:
            raise Unauthorized("two different tokens sent (Authorization and X-Api-Token); "
                               "send one")
        token = header.strip()
    if token == "":
        raise Unauthorized("empty token; " + _NO_TOKEN)
    return token


class Gate:
    """Decides who each request is; lives on ``app.state.gate``."""

    def __init__(
        self, db: Database, *, admin_token: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sessions: Sessions | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.sessions = sessions
        self._admin_digest = digest(admin_token) if admin_token else None
        self.enabled = admin_token is not None
        self._next_look = 0.0
        self._cache: dict[int, tuple[float, Token | None]] = {}
        self._touched: dict[int, float] = {}

    async def start(self, *, host: str) -> None:
        """Learn whether tokens exist, and say so when this server runs open."""
        if not self.enabled:
            self.enabled = await self.db.read(token_store.any_exist)
        if not self.enabled:
            log.warning(
                "authentication is OFF: no API tokens exist, so anyone who can reach %s may do "
                "anything; create the first admin token with `herder token bootstrap` (or set "
                "HERDER_ADMIN_TOKEN) to turn it on", host, extra={"action": "open_mode"},
            )

    def tokens_changed(self, token_id: int | None = None) -> None:
        """A token was made or revoked through this server: authentication is on from now."""
        self.enabled = True
        if token_id is not None:
            self._cache.pop(token_id, None)

    async def principal(self, request: Request) -> Principal:
        trail = None if request.method in SAFE_METHODS else Trail()
        if trail is not None and cross_site(request.headers):
            # A page of another site made the browser send this (an open server has no
            # cookie to protect, so this is its only guard against such pages).
            raise CsrfRefused(_CROSS_SITE)
        if not self.enabled and not await self._tokens_appeared():
            principal = OPEN if trail is None else dataclasses.replace(OPEN, trail=trail)
        else:
            principal = await self._authenticate(request, trail)
        if trail is not None:
            request.state.principal = principal
        return principal

    async def authentication_on(self) -> bool:
        """Whether callers must authenticate (looking for a first token at most once a
        second, as requests do)."""
        return self.enabled or await self._tokens_appeared()

    async def _tokens_appeared(self) -> bool:
        now = time.monotonic()
        if now < self._next_look:
            return False
        self._next_look = now + RECHECK  # set before awaiting: one look for many requests
        if await self.db.read(token_store.any_exist):
            log.info("an API token exists now: authentication is on",
                     extra={"action": "auth_on"})
            self.enabled = True
        return self.enabled

    async def _authenticate(self, request: Request, trail: Trail | None) -> Principal:
        text = presented_token(request.headers)
        if text is None:
            cookie = request.cookies.get(SESSION_COOKIE)
            if cookie is not None and self.sessions is not None:
                return await self._session(request, cookie, trail)
            raise Unauthorized(_NO_TOKEN)
        principal, _ = await self.check_token(text, trail)
        return principal

    async def check_token(
        self, text: str, trail: Trail | None = None
    ) -> tuple[Principal, Token | None]:
        """The principal of a presented token and its stored row (None for
        ``HERDER_ADMIN_TOKEN``); ``Unauthorized`` saying why it is not accepted."""
        if self._admin_digest is not None and same_digest(digest(text), self._admin_digest):
            return self._admin(trail), None
        token_id, secret = parse_token(text)
        token = await self._lookup(token_id)
        if token is None or not same_digest(digest(secret), token.secret_hash):
            raise Unauthorized(_UNKNOWN)
        token.usable(self.clock())  # only now: its state is told only to who holds it
        self._touch(token_id)
        return self._of(token, trail), token

    def session_bound(self, token: Token | None) -> str | None:
        """What a session cookie's signature covers besides itself: the token's stored hash,
        or the hash of ``HERDER_ADMIN_TOKEN`` (None when it is not set)."""
        return token.secret_hash if token is not None else self._admin_digest

    async def _session(self, request: Request, cookie: str, trail: Trail | None) -> Principal:
        """The principal of a session cookie, re-checked against its token on every request;
        a change must also carry the session's CSRF value."""
        assert self.sessions is not None
        claim = self.sessions.parse(cookie)
        if claim is None:
            raise Unauthorized(_SESSION_OVER)
        if claim.token_id == ADMIN:
            token, bound = None, self._admin_digest
        else:
            token = await self._lookup(claim.token_id)
            bound = token.secret_hash if token is not None else None
        now = self.clock()
        if bound is None or not self.sessions.valid(claim, bound=bound, now=now):
            raise Unauthorized(_SESSION_OVER)
        if token is not None:
            token.usable(now)
            self._touch(token.id)
        principal = self._admin(trail) if token is None else self._of(token, trail)
        if trail is not None and not self.sessions.same_csrf(
                cookie, request.headers.get(CSRF_HEADER)):
            request.state.principal = principal  # the audit entry names whose session it was
            raise CsrfRefused(_NO_CSRF)
        return principal

    @staticmethod
    def _admin(trail: Trail | None) -> Principal:
        return Principal(name=ADMIN_TOKEN_NAME, role=Role.ADMIN, namespace=ALL_NAMESPACES,
                         trail=trail)

    @staticmethod
    def _of(token: Token, trail: Trail | None) -> Principal:
        return Principal(name=token.name, token_id=token.id, role=token.role,
                         namespace=token.namespace, trail=trail)

    async def _lookup(self, token_id: int) -> Token | None:
        now = time.monotonic()
        cached = self._cache.get(token_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        token = await self.db.read(token_store.find, token_id)
        if token is not None:  # unknown ids are not cached: guessing must not fill memory
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[token_id] = (now + CACHE_TTL, token)
        return token

    def _touch(self, token_id: int) -> None:
        now = time.monotonic()
        if now - self._touched.get(token_id, -TOUCH_EVERY) < TOUCH_EVERY:
            return
        self._touched[token_id] = now
        future = self.db.submit_write(token_store.touch, token_id, self.clock())
        future.add_done_callback(_log_failure)


def _log_failure(future: Future[None]) -> None:
    if future.exception() is not None:
        log.warning("could not record a token's last use: %s", future.exception(),
                    extra={"action": "token_touch_failed"})


def describe_security(app: FastAPI) -> None:
    """Declare the two ways of sending a token in the OpenAPI description, so that ``/docs``
    can send one ("Authorize"). Optional: a server may run open."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            schema.setdefault("components", {})["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "an API token: herder_<id>_<secret>"},
                "apiToken": {"type": "apiKey", "in": "header", "name": "X-Api-Token"},
            }
            schema["security"] = [{"bearer": []}, {"apiToken": []}, {}]
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]
