"""Liveness and readiness."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy.engine import Connection

from herder import __version__
from herder.api.deps import DbDep
from herder.api.errors import error_body
from herder.api.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """200 while the process serves requests."""
    return Health(status="ok", version=__version__)


def _ping(conn: Connection) -> None:
    conn.execute(sa.text("SELECT 1"))


@router.get("/readyz", response_model=Health, responses={503: {"description": "store down"}})
async def readyz(db: DbDep) -> Health | JSONResponse:
    """200 once the store answers."""
    try:
        await db.read(_ping)
    except Exception as exc:
        return JSONResponse(error_body("not_ready", f"the store does not answer: {exc}"), 503)
    return Health(status="ready", version=__version__)
