"""Browser sessions: a signed cookie standing for an API token, and the CSRF value bound to it.

The web UI signs in once with a token (``POST /api/v1/session``) and from then on sends the
``herder_session`` cookie instead of the token. No table holds sessions: the cookie carries the
token's id and an expiry, signed with HMAC-SHA256 under a key derived from the server's secret
key (``SecretKeys.derive("session")``), so every server with the same secret key accepts it.
The signature also covers the token's stored hash (for ``HERDER_ADMIN_TOKEN``, the hash of that
value): the cookie proves its holder once presented that very token. Each request re-checks the
token in the store (through the gate's cache), so revoking or expiring a token ends its
sessions, and so does restarting with another ``HERDER_ADMIN_TOKEN``.

A cookie goes with every request the browser makes to the server, also those another site
provokes. So a change authenticated by the cookie must carry ``X-CSRF-Token``, a value derived
from the cookie that only a page of this origin can read (the ``herder_csrf`` cookie, not
HttpOnly, and the sign-in answer). Requests with ``Authorization`` or ``X-Api-Token`` are not
cookie-authenticated and need no such header.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from herder.model.errors import Forbidden

SESSION_COOKIE = "herder_session"
CSRF_COOKIE = "herder_csrf"
CSRF_HEADER = "x-csrf-token"
LIFETIME = timedelta(hours=12)
_VERSION = "s1"
ADMIN = 0  # the token id a session of HERDER_ADMIN_TOKEN carries (stored ids start at 1)


class CsrfRefused(Forbidden):
    """A change authenticated by the session cookie came without its CSRF value."""

    code = "csrf_failed"


@dataclass(frozen=True, slots=True, kw_only=True)
class Claim:
    """What a well-formed session cookie says, before its signature is checked."""

    token_id: int
    expires_at: datetime
    nonce: str
    signature: str
    signed: str


class Sessions:
    """Issues and checks session cookies; the key is read when first needed (a misconfigured
    secret key then fails sign-in, not the server's start)."""

    def __init__(self, key: Callable[[], bytes]) -> None:
        self._load = key
        self._key: bytes | None = None
        self._lock = threading.Lock()

    def _secret(self) -> bytes:
        with self._lock:
            if self._key is None:
                self._key = self._load()
            return self._key

    def _mac(self, message: str) -> str:
        return hmac.new(self._secret(), message.encode(), hashlib.sha256).hexdigest()

    def issue(self, *, token_id: int, bound: str, expires_at: datetime) -> str:
        """A cookie value for ``token_id`` whose stored hash is ``bound``."""
        signed = f"{_VERSION}.{token_id}.{int(expires_at.timestamp())}.{secrets.token_hex(16)}"
        return f"{signed}.{self._mac(f'{signed}.{bound}')}"

    def csrf(self, cookie: str) -> str:
        """The CSRF value of a session: derived, so nothing needs storing."""
        return self._mac(f"csrf.{cookie}")[:40]

    @staticmethod
    def parse(cookie: str) -> Claim | None:
        """The claim of a cookie of the right shape, or None."""
        parts = cookie.split(".")
        if len(parts) != 5 or parts[0] != _VERSION or len(cookie) > 300:
            return None
        _, token_id, expires, nonce, signature = parts
        if not (token_id.isdigit() and expires.isdigit() and len(token_id) < 20
                and len(expires) < 12):
            return None
        return Claim(token_id=int(token_id), nonce=nonce, signature=signature,
                     expires_at=datetime.fromtimestamp(int(expires), UTC),
                     signed=cookie.rpartition(".")[0])

    def valid(self, claim: Claim, *, bound: str, now: datetime) -> bool:
        """Whether ``claim`` was signed here for a token whose hash is ``bound``, and lasts."""
        expected = self._mac(f"{claim.signed}.{bound}")
        return hmac.compare_digest(expected, claim.signature) and claim.expires_at > now

    def same_csrf(self, cookie: str, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(self.csrf(cookie), presented)


def expiry(now: datetime, token_expires_at: datetime | None) -> datetime:
    """A session lasts ``LIFETIME``, never past its token's own expiry."""
    end = now + LIFETIME
    return end if token_expires_at is None else min(end, token_expires_at)


def cross_site(headers: Mapping[str, str]) -> bool:
    """Whether a browser says a page of another origin made this request: an ``Origin`` that
    is not this server's host (browsers send it with every cross-origin POST, PUT, PATCH and
    DELETE), or, without one, ``Sec-Fetch-Site: cross-site``. Clients that are not browsers
    send neither."""
    origin = headers.get("origin")
    if origin is None:
        return headers.get("sec-fetch-site") == "cross-site"
    # Behind a proxy that rewrites Host, the host the browser asked for is X-Forwarded-Host.
    hosts = {value.lower() for value in (headers.get("host"), headers.get("x-forwarded-host"))
             if value}
    return origin == "null" or urlsplit(origin).netloc.lower() not in hosts
