"""API tokens as values: roles, the secret's format, and how a presented token is checked.

A token reads ``herder_<id>_<secret>``: the prefix makes a leaked one easy to recognise (secret
scanners, logs), the id makes the lookup one primary-key read, and the secret is 32 random bytes.
The store keeps only the SHA-256 of the secret.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from herder.model.errors import Unauthorized

PREFIX = "herder_"
ALL_NAMESPACES = "*"
_SECRET_BYTES = 32
# token_urlsafe(32) is 43 characters of the URL-safe base64 alphabet.
_TOKEN_RE = re.compile(r"herder_([1-9][0-9]{0,18})_([A-Za-z0-9_-]{43})")
MAX_PRESENTED = 256  # longer headers are refused before any work


class Role(StrEnum):
    """What a token may do in its namespace; each role includes the ones before it."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    EDITOR = "editor"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANKS[self]


_RANKS = {role: rank for rank, role in enumerate(Role)}


def digest(secret: str) -> str:
    """The stored form of a secret. A fast hash is right here: the secret is 256 random bits,
    so there is nothing for a slow, salted password hash (bcrypt, argon2) to protect against,
    and it would cost milliseconds of CPU on every request."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def same_digest(presented: str, stored: str) -> bool:
    """Constant-time comparison of two digests."""
    return hmac.compare_digest(presented.encode(), stored.encode())


def new_secret() -> str:
    return secrets.token_urlsafe(_SECRET_BYTES)


def format_token(token_id: int, secret: str) -> str:
    return f"{PREFIX}{token_id}_{secret}"


def parse_token(text: str) -> tuple[int, str]:
    """The id and secret of a presented token; ``Unauthorized`` saying what is wrong with its
    shape (never whether some token exists)."""
    if len(text) > MAX_PRESENTED:
        raise Unauthorized("malformed token: too long; send the token `herder token create` "
                           "printed")
    match = _TOKEN_RE.fullmatch(text)
    if match is None:
        hint = "it does not start with 'herder_'" if not text.startswith(PREFIX) else (
            "it is not of the form herder_<id>_<secret>")
        raise Unauthorized(f"malformed token: {hint}; send the token `herder token create` "
                           "printed")
    return int(match.group(1)), match.group(2)


@dataclass(frozen=True, slots=True, kw_only=True)
class Token:
    """A stored token (never its secret): who it is, where and what it may act."""

    id: int
    name: str
    namespace: str
    role: Role
    secret_hash: str
    created_at: datetime
    created_by: str
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None

    def usable(self, now: datetime) -> None:
        """Raise ``Unauthorized`` saying why this (authentic) token may no longer be used."""
        if self.revoked_at is not None:
            raise Unauthorized(
                f"token {self.id} ({self.name}) was revoked at {self.revoked_at.isoformat()}; "
                "ask an admin for a new one"
            )
        if self.expires_at is not None and self.expires_at <= now:
            raise Unauthorized(
                f"token {self.id} ({self.name}) expired at {self.expires_at.isoformat()}; "
                "ask an admin for a new one"
            )
