"""``/api/v1/jobs``: define, list, change and run jobs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response, status
from pydantic import ValidationError
from sqlalchemy.engine import Connection

from herder.api.auth import Permission, Principal, PrincipalDep
from herder.api.deps import DbDep, EngineDep
from herder.api.errors import invalid
from herder.api.routes import namespaces
from herder.api.schemas import (
    Follower,
    JobIn,
    JobOut,
    JobPatch,
    Page,
    RunNow,
    RunOut,
    ScheduleReport,
)
from herder.api.views import run_out
from herder.engine import scheduler
from herder.model.errors import Forbidden, InvalidSpec
from herder.model.jobs import Job, JobSpec, check_labels
from herder.store import bundles as bundle_store
from herder.store import chains as chain_store
from herder.store import jobs as job_store
from herder.store import namespaces as namespace_store
from herder.store import workflows as workflow_store

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


def may(principal: Principal, permission: Permission, job: Job, ref: str) -> Job:
    """The job, if the caller may do ``permission`` to it; a job it may not see is missing."""
    missing = job_store.not_found(ref)
    principal.check(permission, job.spec.namespace, missing=missing.message,
                    details=missing.details)
    return job


def may_place(conn: Connection, principal: Principal, spec: JobSpec, now: Any) -> None:
    """May the caller put a job in ``spec.namespace``? (A namespace it may not see answers as
    one that does not exist.) The namespace is made if missing, for a caller who may create
    namespaces."""
    principal.check(Permission.EDIT, spec.namespace,
                    missing=namespace_store.missing(spec.namespace),
                    details={"namespace": spec.namespace})
    principal.note(f"{spec.namespace}/{spec.name}")
    namespaces.ensure(conn, principal, spec.namespace, now)
    may_follow(principal, spec)


def may_follow(principal: Principal, spec: JobSpec) -> None:
    """A job may follow (``after``) only jobs the caller may read: a chained run sees its
    upstream's outputs. A job it may not read is refused as one that does not exist."""
    for i, follow in enumerate(spec.after):
        namespace, name = follow.refers_to(spec.namespace)
        if namespace != spec.namespace and not principal.allows(Permission.READ, namespace):
            raise InvalidSpec(f"after[{i}].job: no job {namespace}/{name}",
                              details={"job": f"{namespace}/{name}"})


@router.post("", status_code=status.HTTP_201_CREATED, response_model=JobOut)
async def create_job(body: JobIn, engine: EngineDep, principal: PrincipalDep) -> JobOut:
    """Create a job; 409 if its namespace already has one by that name."""
    spec = body.to_spec()

    def create(conn: Connection) -> Job:
        now = engine.clock()
        may_place(conn, principal, spec, now)
        return job_store.create(conn, bundle_store.check_script(conn, spec), now)

    job = await engine.db.write(create)
    engine.jobs_changed()
    return JobOut.of(job)


@router.put("/{ref:path}", response_model=JobOut, responses={201: {"model": JobOut}})
async def replace_job(
    ref: str, body: JobIn, engine: EngineDep, response: Response, principal: PrincipalDep
) -> JobOut:
    """Create or replace the job named by the body (idempotent apply). ``ref`` must name it."""
    spec = body.to_spec()
    if ref not in (spec.name, f"{spec.namespace}/{spec.name}") and not job_store.is_id(ref):
        raise InvalidSpec(f"the path names {ref[:100]!r} but the body names {spec.namespace}/"
                          f"{spec.name}")

    def apply(conn: Connection) -> tuple[Job, bool]:
        now = engine.clock()
        by_id = job_store.is_id(ref)
        old = may(principal, Permission.EDIT, job_store.get(conn, ref), ref) if by_id else None
        may_place(conn, principal, spec, now)
        checked = bundle_store.check_script(conn, spec)
        if old is not None:
            return job_store.update(conn, old.id, checked, now), False
        return job_store.replace(conn, checked, now)

    job, created = await engine.db.write(apply)
    engine.jobs_changed()
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return JobOut.of(job)


@dataclass(frozen=True, slots=True)
class Listing:
    """The filters and page of a list of definitions (jobs, workflows), as the store's
    ``search`` takes them: ``Listing.limit`` is the page, ``search`` reads one more."""

    limit: int
    search: dict[str, Any]


async def listing(
    principal: PrincipalDep,
    namespace: str | None = None,
    label: Annotated[list[str], Query(description="k=v, repeatable")] = [],  # noqa: B006
    enabled: bool | None = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> Listing:
    return Listing(limit=limit, search={
        "namespace": namespace, "labels": parse_labels(label), "enabled": enabled, "q": q,
        "limit": limit + 1, "after_id": parse_cursor(cursor), "readable": principal.readable(),
    })


ListingDep = Annotated[Listing, Depends(listing)]


@router.get("", response_model=Page[JobOut])
async def list_jobs(db: DbDep, query: ListingDep) -> Page[JobOut]:
    """Jobs in id order, filtered; ``next_cursor`` pages on."""
    found = await db.read(job_store.search, **query.search)
    return Page[JobOut].of(found, query.limit, JobOut.of)


@router.post("/{ref:path}/runs", status_code=status.HTTP_201_CREATED, response_model=RunOut)
async def run_job(
    ref: str, engine: EngineDep, principal: PrincipalDep, body: RunNow | None = None
) -> RunOut:
    """Run now. The body may override ``params`` (declared ones only) and ``env``; an admin
    may name the ``submitter`` (by default, the caller)."""
    body = body or RunNow()
    submitter = body.submitter or principal.name

    def authorize(job: Job) -> None:
        may(principal, Permission.RUN, job, ref)
        if submitter != principal.name and not principal.allows(Permission.ADMIN,
                                                                  job.spec.namespace):
            raise Forbidden(
                f"naming another submitter ({submitter[:60]!r}) needs the admin role in "
                f"namespace {job.spec.namespace!r}; leave submitter out to submit as "
                f"{principal.name!r}"
            )

    run = await engine.submit(ref, params=body.params, env=body.env, submitter=submitter,
                              authorize=authorize, manual=body.manual_start)
    return await run_out(engine.db, run)


async def _set_enabled(
    ref: str, enabled: bool, engine: EngineDep, principal: Principal
) -> Job:
    def change(conn: Connection) -> Job:
        may(principal, Permission.EDIT, job_store.get(conn, ref), ref)
        return job_store.set_enabled(conn, ref, enabled, engine.clock())

    return await engine.db.write(change)


@router.post("/{ref:path}/enable", response_model=JobOut)
async def enable_job(ref: str, engine: EngineDep, principal: PrincipalDep) -> JobOut:
    """Resume the job; the slots missed while it was paused follow its misfire policy."""
    job = await _set_enabled(ref, True, engine, principal)
    engine.jobs_changed()
    return JobOut.of(job)


@router.post("/{ref:path}/disable", response_model=JobOut)
async def disable_job(ref: str, engine: EngineDep, principal: PrincipalDep) -> JobOut:
    """Pause the job; its runs, logs and spec are all kept."""
    return JobOut.of(await _set_enabled(ref, False, engine, principal))


@router.get("/{ref:path}/schedule", response_model=ScheduleReport)
async def job_schedule(
    ref: str,
    engine: EngineDep,
    principal: PrincipalDep,
    recent: Annotated[int, Query(ge=0, le=1000, description="recent slots to show")] = 20,
    upcoming: Annotated[int, Query(ge=0, le=1000, description="next slots to preview")] = 5,
) -> ScheduleReport:
    """Why did (or didn't) it run: the recent slots and what became of each, and the next
    ones."""
    may(principal, Permission.READ, await engine.db.read(job_store.get, ref), ref)
    found = await engine.db.read(
        scheduler.report, ref, engine.clock(), recent=recent, upcoming=upcoming
    )
    return ScheduleReport.model_validate(found)


@router.get("/{ref:path}/followers", response_model=list[Follower])
async def job_followers(ref: str, db: DbDep, principal: PrincipalDep) -> list[Follower]:
    """The jobs that follow this one (job chains), as far as the caller may read them."""

    def read(conn: Connection) -> list[dict[str, Any]]:
        job = may(principal, Permission.READ, job_store.get(conn, ref), ref)
        readable = principal.readable()
        return [found for found in chain_store.follower_refs(conn, job.id)
                if readable is None or found["job"].split("/", 1)[0] in readable]

    return [Follower.model_validate(found) for found in await db.read(read)]


@router.get("/{ref:path}", response_model=JobOut)
async def get_job(ref: str, db: DbDep, principal: PrincipalDep) -> JobOut:
    return JobOut.of(may(principal, Permission.READ, await db.read(job_store.get, ref), ref))


@router.patch("/{ref:path}", response_model=JobOut)
async def patch_job(
    ref: str, body: JobPatch, engine: EngineDep, principal: PrincipalDep
) -> JobOut:
    """Change some fields; the whole result is checked as a new spec before anything changes."""
    changes = body.model_dump(exclude_unset=True)

    def patch(conn: Connection) -> Job:
        job = may(principal, Permission.EDIT, job_store.get(conn, ref), ref)
        merged: dict[str, Any] = job.spec.to_dict() | changes
        for given, other in (("script", "command"), ("command", "script")):
            if changes.get(given) is not None and other not in changes:
                merged[other] = None  # a script replaces the command, and the other way round
        try:
            spec = bundle_store.check_script(conn, JobIn.model_validate(merged).to_spec())
        except ValidationError as exc:
            raise invalid(exc) from None
        if spec.namespace != job.spec.namespace:
            may_place(conn, principal, spec, engine.clock())
        else:
            may_follow(principal, spec)
        return job_store.update(conn, job.id, spec, engine.clock())

    job = await engine.db.write(patch)
    engine.jobs_changed()
    return JobOut.of(job)


@router.delete("/{ref:path}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_job(ref: str, db: DbDep, principal: PrincipalDep) -> Response:
    """Delete the job; its runs and logs stay. 409 while it has active runs, or while a
    workflow runs it as a step."""

    def delete(conn: Connection) -> Job:
        job = may(principal, Permission.EDIT, job_store.get(conn, ref), ref)
        workflow_store.refuse_deleting_a_used_job(conn, job)
        return job_store.delete(conn, ref)

    await db.write(delete)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
