"""``/api/v1/jobs``: define, list, change and run jobs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status
from pydantic import ValidationError
from sqlalchemy.engine import Connection

from herder.api.deps import DbDep, EngineDep
from herder.api.schemas import JobIn, JobOut, JobPatch, Page, RunNow, RunOut, ScheduleReport
from herder.api.views import run_out
from herder.engine import scheduler
from herder.model.errors import InvalidSpec
from herder.model.jobs import Job, check_labels
from herder.store import jobs as job_store

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"])
JobRef = Annotated[str, "an id, namespace/name, or a name in namespace default"]


def parse_labels(pairs: list[str]) -> dict[str, str]:
    """``k=v`` query values to a dict, checked like labels are."""
    labels = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise InvalidSpec(f"label: {pair[:60]!r} is not of the form key=value")
        labels[key] = value
    return check_labels(labels, what="label")


def parse_cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    if not job_store.is_id(cursor):
        raise InvalidSpec("cursor: not a cursor this server gave out")
    return int(cursor)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=JobOut)
async def create_job(body: JobIn, engine: EngineDep) -> JobOut:
    """Create a job; 409 if its namespace already has one by that name."""
    job = await engine.db.write(job_store.create, body.to_spec(), engine.clock())
    engine.jobs_changed()
    return JobOut.of(job)


@router.put("/{ref:path}", response_model=JobOut, responses={201: {"model": JobOut}})
async def replace_job(ref: str, body: JobIn, engine: EngineDep, response: Response) -> JobOut:
    """Create or replace the job named by the body (idempotent apply). ``ref`` must name it."""
    spec = body.to_spec()
    if ref not in (spec.name, f"{spec.namespace}/{spec.name}") and not job_store.is_id(ref):
        raise InvalidSpec(f"the path names {ref[:100]!r} but the body names {spec.namespace}/"
                          f"{spec.name}")

    def apply(conn: Connection) -> tuple[Job, bool]:
        if job_store.is_id(ref):
            return job_store.update(conn, job_store.get(conn, ref).id, spec, engine.clock()), False
        return job_store.replace(conn, spec, engine.clock())

    job, created = await engine.db.write(apply)
    engine.jobs_changed()
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return JobOut.of(job)


@router.get("", response_model=Page[JobOut])
async def list_jobs(
    db: DbDep,
    namespace: str | None = None,
    label: Annotated[list[str], Query(description="k=v, repeatable")] = [],  # noqa: B006
    enabled: bool | None = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> Page[JobOut]:
    """Jobs in id order, filtered; ``next_cursor`` pages on."""
    found = await db.read(
        job_store.search, namespace=namespace, labels=parse_labels(label), enabled=enabled,
        q=q, limit=limit + 1, after_id=parse_cursor(cursor),
    )
    more = len(found) > limit
    found = found[:limit]
    return Page[JobOut](
        items=[JobOut.of(j) for j in found],
        next_cursor=str(found[-1].id) if more else None,
    )


@router.post("/{ref:path}/runs", status_code=status.HTTP_201_CREATED, response_model=RunOut)
async def run_job(ref: str, engine: EngineDep, body: RunNow | None = None) -> RunOut:
    """Run now. The body may override ``params`` (declared ones only) and ``env``."""
    body = body or RunNow()
    run = await engine.submit(ref, params=body.params, env=body.env)
    return await run_out(engine.db, run)


@router.post("/{ref:path}/enable", response_model=JobOut)
async def enable_job(ref: str, engine: EngineDep) -> JobOut:
    """Resume the job; the slots missed while it was paused follow its misfire policy."""
    job = await engine.db.write(job_store.set_enabled, ref, True, engine.clock())
    engine.jobs_changed()
    return JobOut.of(job)


@router.post("/{ref:path}/disable", response_model=JobOut)
async def disable_job(ref: str, engine: EngineDep) -> JobOut:
    """Pause the job; its runs, logs and spec are all kept."""
    job = await engine.db.write(job_store.set_enabled, ref, False, engine.clock())
    return JobOut.of(job)


@router.get("/{ref:path}/schedule", response_model=ScheduleReport)
async def job_schedule(
    ref: str,
    engine: EngineDep,
    recent: Annotated[int, Query(ge=0, le=1000, description="recent slots to show")] = 20,
    upcoming: Annotated[int, Query(ge=0, le=1000, description="next slots to preview")] = 5,
) -> ScheduleReport:
    """Why did (or didn't) it run: the recent slots and what became of each, and the next
    ones."""
    found = await engine.db.read(
        scheduler.report, ref, engine.clock(), recent=recent, upcoming=upcoming
    )
    return ScheduleReport.model_validate(found)


@router.get("/{ref:path}", response_model=JobOut)
async def get_job(ref: str, db: DbDep) -> JobOut:
    return JobOut.of(await db.read(job_store.get, ref))


@router.patch("/{ref:path}", response_model=JobOut)
async def patch_job(ref: str, body: JobPatch, engine: EngineDep) -> JobOut:
    """Change some fields; the whole result is checked as a new spec before anything changes."""
    changes = body.model_dump(exclude_unset=True)

    def patch(conn: Connection) -> Job:
        job = job_store.get(conn, ref)
        merged: dict[str, Any] = job.spec.to_dict() | changes
        try:
            spec = JobIn.model_validate(merged).to_spec()
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise InvalidSpec(
                f"{where}: {str(first['msg']).removeprefix('Value error, ')}",
                details=[{"loc": list(e["loc"]), "message": e["msg"]} for e in exc.errors()],
            ) from None
        return job_store.update(conn, job.id, spec, engine.clock())

    job = await engine.db.write(patch)
    engine.jobs_changed()
    return JobOut.of(job)


@router.delete("/{ref:path}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_job(ref: str, db: DbDep) -> Response:
    """Delete the job; its runs and logs stay. 409 while it has active runs."""
    await db.write(job_store.delete, ref)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
