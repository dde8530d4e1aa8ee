"""``/api/v1/tokens`` and ``/api/v1/whoami``: API credentials and who the caller is."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, status
from sqlalchemy.engine import Connection

from herder.api.auth import Permission, PrincipalDep
from herder.api.deps import DbDep
from herder.api.routes.jobs import parse_cursor
from herder.api.schemas import Page
from herder.api.schemas_access import TokenIn, TokenOut, WhoAmI
from herder.model.errors import Forbidden
from herder.model.tokens import ALL_NAMESPACES, Token, digest, format_token, new_secret
from herder.store import namespaces as namespace_store
from herder.store import tokens as token_store

router = APIRouter(prefix="/api/v1", tags=["tokens"])
TokenId = Annotated[int, Path(ge=1, le=2**63 - 1, description="the token's id")]


@router.post("/tokens", status_code=status.HTTP_201_CREATED, response_model=TokenOut)
async def create_token(
    body: TokenIn, request: Request, db: DbDep, principal: PrincipalDep
) -> TokenOut:
    """Make a token; the answer carries its secret (``token``) this once. Needs the admin
    role in its namespace (for ``*``: an admin token for every namespace). An open server
    makes none: the first one would lock its callers out."""
    if principal.open:
        raise Forbidden(
            "this server runs open (no tokens yet): make the first admin token with `herder "
            "token bootstrap` beside the server (or set HERDER_ADMIN_TOKEN), then create "
            "tokens with it"
        )
    if body.namespace == ALL_NAMESPACES:
        if not principal.everywhere(Permission.ADMIN):
            raise Forbidden("a token for every namespace ('*') needs an admin token for every "
                            "namespace")
    else:
        principal.check(Permission.ADMIN, body.namespace,
                        missing=namespace_store.missing(body.namespace),
                        details={"namespace": body.namespace})
    secret = new_secret()
    gate = request.app.state.gate

    def create(conn: Connection) -> Token:
        now = gate.clock()
        if body.namespace != ALL_NAMESPACES:
            namespace_store.ensure(conn, body.namespace, now,
                                   create_missing=principal.everywhere(Permission.ADMIN))
        expires = None if body.expires_in is None else now + timedelta(seconds=body.expires_in)
        return token_store.create(
            conn, name=body.name, namespace=body.namespace, role=body.role,
            secret_hash=digest(secret), now=now, created_by=principal.name, expires_at=expires,
        )

    token = await db.write(create)
    principal.note(str(token.id))
    gate.tokens_changed(token.id)
    return TokenOut.of(token, format_token(token.id, secret))


@router.get("/tokens", response_model=Page[TokenOut])
async def list_tokens(
    db: DbDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> Page[TokenOut]:
    """Tokens newest first, never their secrets: those of the namespaces where the caller is
    admin."""
    scope = principal.scope(Permission.ADMIN)
    if scope == frozenset():
        raise Forbidden("listing tokens needs the admin role")
    found = await db.read(token_store.search, readable=scope, before_id=parse_cursor(cursor),
                          limit=limit + 1)
    return Page[TokenOut].of(found, limit, TokenOut.of)


@router.delete("/tokens/{token_id}", response_model=TokenOut, name="token.revoke")
async def revoke_token(
    token_id: TokenId, request: Request, db: DbDep, principal: PrincipalDep
) -> TokenOut:
    """Revoke a token: from now on it answers 401 "revoked". Its row stays, for the audit
    trail; revoking again changes nothing."""
    gate = request.app.state.gate

    def revoke(conn: Connection) -> Token:
        token = token_store.get(conn, token_id)
        missing = f"no token with id {token_id}"
        principal.check(Permission.ADMIN, token.namespace, missing=missing,
                        details={"token": token_id})
        return token_store.revoke(conn, token_id, gate.clock())

    token = await db.write(revoke)
    gate.tokens_changed(token.id)
    return TokenOut.of(token)


@router.get("/whoami", response_model=WhoAmI)
async def whoami(request: Request, principal: PrincipalDep) -> WhoAmI:
    """Who the server takes the caller for, and whether authentication is on."""
    gate = getattr(request.app.state, "gate", None)
    return WhoAmI(
        name=principal.name, token_id=principal.token_id,
        role=principal.role.value if principal.role else None, namespace=principal.namespace,
        authentication="on" if gate is not None and gate.enabled else "off",
    )
