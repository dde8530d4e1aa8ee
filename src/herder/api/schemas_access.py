"""Request and response bodies of tokens, namespaces, ``whoami`` and the audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, field_validator

from herder.api.schemas import Strict, _check
from herder.model.durations import parse_duration
from herder.model.jobs import check_name
from herder.model.policies import parse_retention
from herder.model.tokens import ALL_NAMESPACES, Role, Token


def _namespace_or_all(value: str) -> str:
    return value if value == ALL_NAMESPACES else str(_check(check_name, value, what="namespace"))


class TokenIn(Strict):
    """Body of ``POST /api/v1/tokens``."""

    name: str = Field(max_length=200, description="who or what uses it; recorded as submitter "
                      "and audit actor")
    namespace: str = Field(max_length=200, description="where it acts; '*' for every namespace")
    role: Role
    expires_in: float | None = Field(
        None, description="lifetime (e.g. '30d', '12h' or seconds; at most 366 days); "
        "default: never expires",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return str(_check(check_name, v, what="name"))

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, v: str) -> str:
        return _namespace_or_all(v)

    @field_validator("expires_in", mode="before")
    @classmethod
    def _expires_in(cls, v: object) -> object:
        if v is None:
            return None
        if not isinstance(v, str | int | float):
            raise ValueError("expected a duration such as '30d' or '12h'")
        return _check(parse_duration, v, field="expires_in")


class TokenOut(BaseModel):
    """A token as the API shows it: never its secret (but once, on creation, as ``token``)."""

    id: int
    name: str
    namespace: str
    role: str
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    token: str | None = Field(None, description="the secret: shown once, when it is created")

    @classmethod
    def of(cls, token: Token, secret: str | None = None) -> TokenOut:
        return cls(
            id=token.id, name=token.name, namespace=token.namespace, role=token.role.value,
            created_at=token.created_at, created_by=token.created_by,
            expires_at=token.expires_at, revoked_at=token.revoked_at,
            last_used_at=token.last_used_at, token=secret,
        )


class WhoAmI(BaseModel):
    """``GET /api/v1/whoami``: the caller as the server sees it."""

    name: str
    token_id: int | None
    role: str | None
    namespace: str | None = Field(description="where the caller acts; '*' for every namespace")
    authentication: str = Field(description="'on', or 'off' for a server running open")


RETENTION_HELP = ("{max_age: 90d, max_runs: 1000} for the namespace's jobs that set no "
                  "retention of their own; null: the server's")


def checked_retention(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """A retention as the store keeps it: checked, written the one way, None when empty."""
    return dict(_check(parse_retention, value).to_dict()) or None


class NamespaceIn(Strict):
    name: str = Field(max_length=200)
    retention: dict[str, Any] | None = Field(None, description=RETENTION_HELP)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return str(_check(check_name, v, what="name"))

    @field_validator("retention")
    @classmethod
    def _retention(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        return checked_retention(v)


class NamespacePatch(Strict):
    """What can change on a namespace: its retention."""

    retention: dict[str, Any] | None = Field(description=RETENTION_HELP)

    @field_validator("retention")
    @classmethod
    def _retention(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        return checked_retention(v)


class NamespaceOut(BaseModel):
    name: str
    created_at: datetime
    retention: dict[str, Any] | None = None
    holds: dict[str, int] | None = Field(
        None, description="how many objects of each kind it holds (on GET of one)"
    )


class AuditOut(BaseModel):
    """One audit entry: who did what, where, from which address, with what result."""

    id: int
    at: datetime
    actor: str
    token_id: int | None
    action: str
    method: str
    path: str
    namespace: str | None
    object: str | None
    client: str | None
    status: int
