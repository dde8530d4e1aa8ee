"""Who is calling, and what they may do: the one seam every route asks.

A route takes ``principal: PrincipalDep`` and, once it knows the namespace of what it touches,
calls ``principal.check(Permission.RUN, run.namespace, missing=...)``. A caller who may not even
read that namespace gets the same 404 as for an object that does not exist (``missing`` is that
message), so other namespaces cannot be probed; one who may read but not act gets 403. Lists
filter by ``principal.readable()`` in their store query.

Who the caller is comes from ``herder.api.gate`` (tokens, open mode). While a server runs open
every caller is ``OPEN``-like: allowed everything, named ``anonymous``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any

from fastapi import Depends, Request

from herder.model.errors import Forbidden, NotFound
from herder.model.tokens import ALL_NAMESPACES, Role


class Permission(StrEnum):
    """What a route does; roles grant these per namespace."""

    READ = "read"  # viewer: see objects, runs, logs, outputs
    RUN = "run"  # operator: run, cancel, retry, approve, skip, attach input files
    EDIT = "edit"  # editor: change jobs, workflows, bundles, variables
    ADMIN = "admin"  # admin: tokens, secrets, namespaces, locks force-release, audit


# The least role that grants each permission; a role grants what the roles below it grant.
NEEDS: dict[Permission, Role] = {
    Permission.READ: Role.VIEWER,
    Permission.RUN: Role.OPERATOR,
    Permission.EDIT: Role.EDITOR,
    Permission.ADMIN: Role.ADMIN,
}


@dataclass(slots=True)
class Trail:
    """What a change request touched, for its audit entry (filled in as the route runs)."""

    namespace: str | None = None
    object: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Principal:
    """The caller: a name recorded as submitter and audit actor, and what it may do.

    A token caller has one ``role`` in one ``namespace`` (``"*"``: every namespace).
    """

    name: str
    token_id: int | None = None
    open: bool = False
    role: Role | None = None
    namespace: str | None = None
    trail: Trail | None = field(default=None, compare=False, repr=False)

    def allows(self, permission: Permission, namespace: str) -> bool:
        if self.open:
            return True
        if self.role is None or self.namespace not in (ALL_NAMESPACES, namespace):
            return False
        return self.role.rank >= NEEDS[permission].rank

    def check(
        self, permission: Permission, namespace: str, *, missing: str, details: Any = None
    ) -> None:
        """Raise NotFound(missing) if the caller may not read ``namespace``, Forbidden if it may
        read but not do ``permission`` there. ``details`` go with the NotFound, so that it
        answers exactly as a missing object does."""
        if self.trail is not None and self.trail.namespace is None:
            self.trail.namespace = namespace
        if self.allows(permission, namespace):
            return
        if not self.allows(Permission.READ, namespace):
            raise NotFound(missing, details=details)
        raise Forbidden(
            f"{permission.value} is not allowed in namespace {namespace!r} for "
            f"{self.describe()}; it needs the {NEEDS[permission].value} role there"
        )

    def readable(self) -> frozenset[str] | None:
        """The namespaces this caller may read, for filtering lists; None means all."""
        return self.scope(Permission.READ)

    def scope(self, permission: Permission) -> frozenset[str] | None:
        """The namespaces where the caller may do ``permission``; None means all."""
        if self.open or (self.namespace == ALL_NAMESPACES and self.allows(permission, "")):
            return None
        if self.namespace is None or not self.allows(permission, self.namespace):
            return frozenset()
        return frozenset({self.namespace})

    def everywhere(self, permission: Permission) -> bool:
        """Whether the caller may do ``permission`` in every namespace (new ones too)."""
        return self.scope(permission) is None

    def note(self, obj: str) -> None:
        """Name the object a change request made, for its audit entry (creates have no id in
        their path)."""
        if self.trail is not None:
            self.trail.object = obj

    def describe(self) -> str:
        if self.open:
            return "an open server"
        role = self.role.value if self.role else "no role"
        if self.token_id is None:
            return f"{self.name} ({role})"
        return f"token {self.token_id} ({self.name}, {role} in {self.namespace})"


OPEN = Principal(name="anonymous", open=True)


async def current_principal(request: Request) -> Principal:
    """The caller of this request; 401 (``Unauthorized``) for a missing or bad token once
    authentication is on. An app without a gate (unit tests of routes) is open."""
    gate = getattr(request.app.state, "gate", None)
    if gate is None:
        return OPEN
    principal: Principal = await gate.principal(request)
    return principal


PrincipalDep = Annotated[Principal, Depends(current_principal)]
