"""``GET /api/v1/audit``: search the audit trail. No route changes it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from herder.api.auth import Permission, PrincipalDep
from herder.api.deps import DbDep
from herder.api.routes.jobs import parse_cursor
from herder.api.routes.runs import aware
from herder.api.schemas import Page
from herder.api.schemas_access import AuditOut
from herder.model.errors import Forbidden
from herder.store import audit as audit_store

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


@router.get("", response_model=Page[AuditOut])
async def search_audit(
    db: DbDep,
    principal: PrincipalDep,
    actor: Annotated[str | None, Query(max_length=255, description="token name")] = None,
    action: Annotated[str | None, Query(max_length=64,
                                        description="e.g. job.create, or job.* for all")] = None,
    namespace: Annotated[str | None, Query(max_length=63)] = None,
    since: Annotated[datetime | None, Query(description="at or after (ISO 8601)")] = None,
    until: Annotated[datetime | None, Query(description="before (ISO 8601)")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> Page[AuditOut]:
    """Entries newest first: who changed what, where, from which address, with what answer.
    Needs the admin role; a namespace's admin sees that namespace's entries, an admin for
    every namespace sees them all."""
    scope = principal.scope(Permission.ADMIN)
    if scope == frozenset():
        raise Forbidden("reading the audit trail needs the admin role")
    found = await db.read(
        audit_store.search, scope=scope, actor=actor, action=action, namespace=namespace,
        since=aware(since, "since"), until=aware(until, "until"),
        before_id=parse_cursor(cursor), limit=limit + 1,
    )
    return Page[AuditOut].of([AuditOut.model_validate(e) for e in found], limit, lambda e: e)
