"""``/api/v1/bundles``: upload script bundles, list them, read one, delete one no job uses.

A bundle is kept once per content: its id is the sha256 of the archive's bytes, and uploading
the same bytes again answers the bundle already kept (200 instead of 201). Bundles are shared by
every namespace, as content-addressed blobs are (knowing the id is knowing the content); the
permission asked is that of the ``namespace`` the caller names (``default`` unless given).
"""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, File, Form, HTTPException, Query, Request, Response, UploadFile
from pydantic import BaseModel, Field

from herder.api.auth import Permission, PrincipalDep
from herder.api.deps import DbDep
from herder.api.schemas import Page
from herder.bundles.archive import Limits, check_entrypoint, inspect
from herder.model.jobs import DEFAULT_NAMESPACE, check_name
from herder.settings import Settings
from herder.store import bundles as bundle_store
from herder.store.bundles import Bundle

router = APIRouter(prefix="/api/v1/bundles", tags=["bundles"])
DEFAULT_ENTRYPOINT = "script.sh"
MULTIPART_OVERHEAD = 64 * 1024  # boundaries and the small form fields around the file
Namespace = Annotated[str, Query(max_length=63, description="whose permission is asked")]


def bundle_limits(settings: Settings) -> Limits:
    return Limits(max_entries=settings.bundle_max_entries,
                  max_unpacked=settings.bundle_max_unpacked, max_ratio=settings.bundle_max_ratio)


def upload_limits(settings: Settings) -> list[tuple[str, str, int]]:
    """The request body limits of uploads, for ``BodyLimit``."""
    return [
        ("POST", r"/api/v1/bundles/?", settings.bundle_max_size + MULTIPART_OVERHEAD),
        ("PUT", r"/api/v1/runs/[0-9]+/files/[^/]*", settings.run_file_max_size),
    ]


class BundleFile(BaseModel):
    name: str
    size: int
    executable: bool


class BundleOut(BaseModel):
    """A bundle: its id (the sha256 of its bytes), entry point and files."""

    id: str = Field(description="sha256 of the archive's bytes")
    kind: str = Field(description="zip or tar.gz, told by content")
    entrypoint: str = Field(description="the file a job's run starts unless it names another")
    size: int = Field(description="bytes of the archive")
    unpacked_size: int
    files: list[BundleFile]
    created_at: datetime

    @classmethod
    def of(cls, bundle: Bundle) -> BundleOut:
        return cls(
            id=bundle.id, kind=bundle.kind, entrypoint=bundle.entrypoint, size=bundle.size,
            unpacked_size=bundle.unpacked_size,
            files=[BundleFile(**f.to_dict()) for f in bundle.files], created_at=bundle.created_at,
        )


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


@router.post("", status_code=201, response_model=BundleOut, responses={200: {"model": BundleOut}})
async def upload_bundle(
    request: Request,
    db: DbDep,
    principal: PrincipalDep,
    response: Response,
    file: Annotated[UploadFile, File(description="a zip or tar.gz archive")],
    entrypoint: Annotated[str | None, Form(max_length=255)] = None,
    namespace: Annotated[str, Form(max_length=63)] = DEFAULT_NAMESPACE,
) -> BundleOut:
    """Upload a bundle (multipart ``file``); checked whole before anything is kept. 201 for a
    new bundle, 200 when the same bytes are already kept."""
    check_name(namespace, what="namespace")
    principal.check(Permission.EDIT, namespace, missing=f"no namespace {namespace[:63]!r}")
    settings = _settings(request)
    data = await file.read()
    if len(data) > settings.bundle_max_size:
        raise HTTPException(413, f"bundle larger than {settings.bundle_max_size} bytes "
                                 "(HERDER_BUNDLE_MAX_SIZE)")
    found = await asyncio.to_thread(inspect, data, bundle_limits(settings))
    start = check_entrypoint(found.files, entrypoint or DEFAULT_ENTRYPOINT)
    bundle = Bundle(
        id=hashlib.sha256(data).hexdigest(), kind=found.kind, entrypoint=start, size=len(data),
        unpacked_size=found.unpacked, files=found.files, created_at=datetime.now(UTC),
    )
    kept, created = await db.write(
        bundle_store.save, bundle, data, entrypoint_given=entrypoint is not None
    )
    response.status_code = 201 if created else 200
    return BundleOut.of(kept)


@router.get("", response_model=Page[BundleOut])
async def list_bundles(
    db: DbDep,
    principal: PrincipalDep,
    namespace: Namespace = DEFAULT_NAMESPACE,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> Page[BundleOut]:
    """Bundles in id order; ``next_cursor`` pages on."""
    principal.check(Permission.READ, namespace, missing=f"no namespace {namespace[:63]!r}")
    found = await db.read(bundle_store.search, after_id=cursor, limit=limit + 1)
    return Page[BundleOut].of(found, limit, BundleOut.of)


@router.get("/{bundle_id}", response_model=BundleOut)
async def get_bundle(
    bundle_id: str, db: DbDep, principal: PrincipalDep, namespace: Namespace = DEFAULT_NAMESPACE
) -> BundleOut:
    """One bundle: its metadata and its files."""
    missing = bundle_store.missing(bundle_id)
    principal.check(Permission.READ, namespace, missing=missing.message, details=missing.details)
    return BundleOut.of(await db.read(bundle_store.get, bundle_id))


@router.delete("/{bundle_id}", status_code=204)
async def delete_bundle(
    bundle_id: str, db: DbDep, principal: PrincipalDep, namespace: Namespace = DEFAULT_NAMESPACE
) -> Response:
    """Delete a bundle; 409 while a job names it or an active run uses it."""
    missing = bundle_store.missing(bundle_id)
    principal.check(Permission.EDIT, namespace, missing=missing.message, details=missing.details)
    await db.write(bundle_store.delete, bundle_id)
    return Response(status_code=204)
