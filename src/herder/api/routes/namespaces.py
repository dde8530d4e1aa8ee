"""``/api/v1/namespaces``: the tenancy boundaries."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from sqlalchemy.engine import Connection

from herder.api.auth import Permission, Principal, PrincipalDep
from herder.api.deps import EngineDep
from herder.api.schemas import Page
from herder.api.schemas_access import NamespaceIn, NamespaceOut, NamespacePatch
from herder.model.errors import Forbidden, NotFound
from herder.model.jobs import NAME_RE
from herder.store import namespaces as namespace_store

router = APIRouter(prefix="/api/v1/namespaces", tags=["namespaces"])


def ensure(conn: Connection, principal: Principal, namespace: str, now: datetime) -> None:
    """Before an object is put in ``namespace``: make it exist, created for a caller who may
    create namespaces (an admin of every one), else ``NotFound`` saying how to create it."""
    namespace_store.ensure(conn, namespace, now,
                           create_missing=principal.everywhere(Permission.ADMIN))


def _only_global_admin(principal: Principal, doing: str) -> None:
    if not principal.everywhere(Permission.ADMIN):
        raise Forbidden(f"{doing} a namespace needs an admin token for every namespace ('*')")


def _name(name: str) -> str:
    """A path's namespace name; one that cannot exist is simply missing."""
    if not NAME_RE.fullmatch(name):
        raise NotFound(namespace_store.missing(name), details={"namespace": name[:63]})
    return name


@router.post("", status_code=status.HTTP_201_CREATED, response_model=NamespaceOut)
async def create_namespace(
    body: NamespaceIn, engine: EngineDep, principal: PrincipalDep
) -> NamespaceOut:
    """Create a namespace; 409 if it exists."""
    _only_global_admin(principal, "creating")
    principal.check(Permission.ADMIN, body.name, missing=namespace_store.missing(body.name))
    found = await engine.db.write(namespace_store.create, body.name, engine.clock(),
                                  body.retention)
    return NamespaceOut.model_validate(found)


@router.get("", response_model=Page[NamespaceOut])
async def list_namespaces(
    engine: EngineDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=63)] = None,
) -> Page[NamespaceOut]:
    """Namespaces by name: those the caller may read."""
    found = await engine.db.read(namespace_store.search, readable=principal.readable(),
                                 after=cursor, limit=limit + 1)
    shown = found[:limit]  # as Page.of, but the cursor is the last name
    return Page[NamespaceOut](items=[NamespaceOut.model_validate(n) for n in shown],
                              next_cursor=shown[-1]["name"] if len(found) > limit else None)


@router.get("/{name}", response_model=NamespaceOut)
async def get_namespace(name: str, engine: EngineDep, principal: PrincipalDep) -> NamespaceOut:
    """One namespace, with how many objects of each kind it holds."""
    principal.check(Permission.READ, name, missing=namespace_store.missing(name),
                    details={"namespace": name[:63]})
    return NamespaceOut.model_validate(await engine.db.read(namespace_store.get, _name(name)))


@router.patch("/{name}", response_model=NamespaceOut)
async def patch_namespace(
    name: str, body: NamespacePatch, engine: EngineDep, principal: PrincipalDep
) -> NamespaceOut:
    """Set the retention of the namespace's jobs that set none (``null``: the server's);
    the namespace's admins may."""
    principal.check(Permission.ADMIN, name, missing=namespace_store.missing(name),
                    details={"namespace": name[:63]})
    found = await engine.db.write(namespace_store.set_retention, _name(name), body.retention)
    return NamespaceOut.model_validate(found)


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_namespace(
    name: str,
    engine: EngineDep,
    principal: PrincipalDep,
    force: Annotated[bool, Query(description="delete what it holds with it")] = False,
) -> Response:
    """Delete a namespace: 409 naming what it holds, unless ``force``, which deletes its jobs,
    its tokens and its runs' history (logs included) with it. 409 while it has active runs;
    ``default`` cannot be deleted."""
    principal.check(Permission.READ, name, missing=namespace_store.missing(name),
                    details={"namespace": name[:63]})
    _only_global_admin(principal, "deleting")
    gone = await engine.db.write(namespace_store.delete, _name(name), force=force)
    await engine.pruner.remove_files(gone)
    engine.jobs_changed()
    return Response(status_code=status.HTTP_204_NO_CONTENT)

