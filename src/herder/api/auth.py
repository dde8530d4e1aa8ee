"""Who is calling, and what they may do: the one seam every route asks.

A route takes ``principal: PrincipalDep`` and, once it knows the namespace of what it touches,
calls ``principal.check(Permission.RUN, run.namespace, missing=...)``. A caller who may not even
read that namespace gets the same 404 as for an object that does not exist (``missing`` is that
message), so other namespaces cannot be probed; one who may read but not act gets 403.

Until tokens exist every caller is ``OPEN``: an embedded server on loopback runs open.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

from fastapi import Depends, Request

from herder.model.errors import Forbidden, NotFound


class Permission(StrEnum):
    """What a route does; roles grant these per namespace."""

    READ = "read"  # viewer: see objects, runs, logs, outputs
    RUN = "run"  # operator: run, cancel, retry, approve, skip, attach input files
    EDIT = "edit"  # editor: change jobs, workflows, bundles, variables
    ADMIN = "admin"  # admin: tokens, secrets, namespaces, locks force-release, audit


@dataclass(frozen=True, slots=True, kw_only=True)
class Principal:
    """The caller: a name recorded as submitter and audit actor, and what it may do."""

    name: str
    token_id: int | None = None
    open: bool = False

    def allows(self, permission: Permission, namespace: str) -> bool:
        return self.open

    def check(self, permission: Permission, namespace: str, *, missing: str) -> None:
        """Raise NotFound(missing) if the caller may not read ``namespace``, Forbidden if it may
        read but not do ``permission`` there."""
        if self.allows(permission, namespace):
            return
        if not self.allows(Permission.READ, namespace):
            raise NotFound(missing)
        raise Forbidden(f"{permission.value} is not allowed in namespace {namespace!r}")

    def readable(self) -> frozenset[str] | None:
        """The namespaces this caller may read, for filtering lists; None means all."""
        return None if self.open else frozenset()


OPEN = Principal(name="anonymous", open=True)


async def current_principal(request: Request) -> Principal:
    return OPEN


PrincipalDep = Annotated[Principal, Depends(current_principal)]
