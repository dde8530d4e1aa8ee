"""``/api/v1/session``: sign a browser in with a token (a session cookie) and out again."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from herder.api.auth import Trail
from herder.api.gate import Gate
from herder.api.schemas import Strict
from herder.api.sessions import ADMIN, CSRF_COOKIE, SESSION_COOKIE, expiry
from herder.model.errors import Conflict, InvalidSpec

router = APIRouter(prefix="/api/v1", tags=["session"])


class SessionIn(Strict):
    token: str = Field(min_length=1, max_length=1000, description="an API token")


class SessionOut(BaseModel):
    name: str
    token_id: int | None
    role: str | None
    namespace: str | None
    expires_at: datetime
    csrf_token: str = Field(description="send as X-CSRF-Token with every change")


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


@router.post("/session", response_model=SessionOut, name="session.create")
async def sign_in(body: SessionIn, request: Request, response: Response) -> SessionOut:
    """Check the token as every request's is checked and answer a session cookie for it
    (HttpOnly, SameSite=Strict; Secure over https) with the CSRF value changes must carry.
    409 on a server that runs open: there is nothing to sign in to."""
    if "application/json" not in request.headers.get("content-type", ""):
        # A form on another site cannot send JSON: this keeps sign-in itself unforgeable.
        raise InvalidSpec("send the token as JSON: {\"token\": \"herder_…\"}")
    gate: Gate = request.app.state.gate
    if not await gate.authentication_on():
        raise Conflict("this server runs open (no tokens yet): the UI needs no sign-in")
    trail = Trail()
    principal, token = await gate.check_token(body.token.strip(), trail)
    request.state.principal = principal  # the audit entry names who signed in
    bound = gate.session_bound(token)
    assert bound is not None and gate.sessions is not None
    expires_at = expiry(gate.clock(), token.expires_at if token else None)
    cookie = gate.sessions.issue(token_id=token.id if token else ADMIN, bound=bound,
                                 expires_at=expires_at)
    csrf = gate.sessions.csrf(cookie)
    age = max(1, int((expires_at - gate.clock()).total_seconds()))
    secure = _secure(request)
    response.set_cookie(SESSION_COOKIE, cookie, max_age=age, path="/", httponly=True,
                        samesite="strict", secure=secure)
    response.set_cookie(CSRF_COOKIE, csrf, max_age=age, path="/", httponly=False,
                        samesite="strict", secure=secure)
    response.headers["Cache-Control"] = "no-store"
    return SessionOut(name=principal.name, token_id=principal.token_id,
                      role=principal.role.value if principal.role else None,
                      namespace=principal.namespace, expires_at=expires_at, csrf_token=csrf)


@router.delete("/session", status_code=204, name="session.delete")
async def sign_out(request: Request) -> Response:
    """Forget the session in this browser (both cookies). The token itself stays valid:
    revoke it to end every session made with it."""
    response = Response(status_code=204)
    for name, http_only in ((SESSION_COOKIE, True), (CSRF_COOKIE, False)):
        response.delete_cookie(name, path="/", httponly=http_only, samesite="strict",
                               secure=_secure(request))
    return response
