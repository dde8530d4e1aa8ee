"""``/api/v1/runs/{id}/files``: input files attached to a run before it is dispatched.

The body of a ``PUT`` is the file's bytes as they are (any content type). The run finds its
files in ``inputs/`` of its working folder (``$HERDER_INPUTS``), written before it starts.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from herder.api.auth import Permission, PrincipalDep
from herder.api.deps import DbDep
from herder.api.routes.runs import RunId, may
from herder.api.schemas import Page
from herder.model import inputs
from herder.model.inputs import FileLimits
from herder.settings import Settings
from herder.store import run_files as file_store

router = APIRouter(prefix="/api/v1/runs", tags=["runs"])


class RunFileOut(BaseModel):
    name: str
    size: int
    sha256: str
    created_at: datetime


def file_limits(settings: Settings) -> FileLimits:
    return FileLimits(max_size=settings.run_file_max_size, max_count=settings.run_files_max,
                      max_total=settings.run_files_max_total)


_RAW_BODY = {"requestBody": {"required": True, "content": {
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}


@router.put("/{run_id}/files/{name:path}", status_code=201, response_model=RunFileOut,
            responses={200: {"model": RunFileOut}}, openapi_extra=_RAW_BODY)
async def put_run_file(
    run_id: RunId, name: str, request: Request, db: DbDep, principal: PrincipalDep,
    response: Response,
) -> RunFileOut:
    """Attach a file (the raw body) to a run not yet dispatched (READY, WAITING,
    ACTION_PENDING); 201, or 200 when it replaces one of that name. 409 once dispatched."""
    await may(db, principal, Permission.RUN, run_id)
    inputs.check_name(name)
    settings: Settings = request.app.state.settings
    limits = file_limits(settings)
    data = await request.body()  # BodyLimit (``upload_limits``) refuses one past max_size: 413
    kept, created = await db.write(
        file_store.put, run_id, name, data, now=datetime.now(UTC), limits=limits
    )
    response.status_code = 201 if created else 200
    return RunFileOut(**kept.to_dict())


@router.get("/{run_id}/files", response_model=Page[RunFileOut])
async def list_run_files(run_id: RunId, db: DbDep, principal: PrincipalDep) -> Page[RunFileOut]:
    """The run's input files: name, size and sha256 of each, by name."""
    await may(db, principal, Permission.READ, run_id)
    found = await db.read(file_store.listing, run_id)
    return Page[RunFileOut](items=[RunFileOut(**f.to_dict()) for f in found])
