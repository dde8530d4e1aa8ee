"""``/api/v1/runs``: search runs, read one, its outputs, read or follow its log, cancel it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request
from fastapi.responses import StreamingResponse

from herder.api.auth import Permission, Principal, PrincipalDep
from herder.api.deps import DbDep, EngineDep
from herder.api.routes.jobs import parse_cursor, parse_labels
from herder.api.schemas import CancelIn, Page, RunOut
from herder.api.views import run_out, runs_out
from herder.logs import Stream
from herder.model.errors import InvalidSpec
from herder.model.runs import Run, RunStatus, Trigger
from herder.store import jobs as job_store
from herder.store import runs as run_store

router = APIRouter(prefix="/api/v1/runs", tags=["runs"])
RunId = Annotated[int, Path(ge=1, le=2**63 - 1, description="the run's integer id")]


def parse_statuses(values: list[str]) -> list[RunStatus]:
    try:
        return [RunStatus.parse(v) for value in values for v in value.split(",") if v]
    except ValueError as exc:
        raise InvalidSpec(f"status: {exc}") from None


@router.get("", response_model=Page[RunOut])
async def search_runs(
    db: DbDep,
    principal: PrincipalDep,
    job: Annotated[str | None, Query(description="id, namespace/name or name")] = None,
    namespace: str | None = None,
    status: Annotated[list[str], Query(description="name or code; repeatable")] = [],  # noqa: B006
    trigger: Trigger | None = None,
    submitter: Annotated[str | None, Query(max_length=255)] = None,
    label: Annotated[list[str], Query(description="k=v, repeatable")] = [],  # noqa: B006
    since: Annotated[datetime | None, Query(description="created at or after (ISO 8601)")] = None,
    until: Annotated[datetime | None, Query(description="created before (ISO 8601)")] = None,
    q: Annotated[str | None, Query(max_length=200, description="text in job, description")] = None,
    workflow_run: Annotated[
        int | None, Query(ge=1, le=2**63 - 1, description="the steps of this workflow run")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> Page[RunOut]:
    """Runs newest first, filtered; ``next_cursor`` pages on. ``job`` by name also finds the
    runs of a deleted job."""
    statuses = parse_statuses(status)
    job_id, job_namespace, job_name = job_store.parse_ref(job) if job else (None, "", "")
    if job and "/" not in job:  # a bare name is in the namespace asked for, else in default
        job_namespace = namespace or job_namespace
    found = await db.read(
        run_store.search, job_id=job_id, namespace=job_namespace or namespace,
        job_name=job_name or None, statuses=statuses, trigger=trigger, submitter=submitter,
        labels=parse_labels(label), since=aware(since, "since"), until=aware(until, "until"),
        q=q, before_id=parse_cursor(cursor), limit=limit + 1, readable=principal.readable(),
        workflow_run_id=workflow_run,
    )
    more = len(found) > limit
    found = found[:limit]
    return Page[RunOut](
        items=await runs_out(db, found), next_cursor=str(found[-1].id) if more else None
    )


def aware(moment: datetime | None, name: str) -> datetime | None:
    if moment is None:
        return None
    if moment.utcoffset() is None:
        raise InvalidSpec(f"{name}: give a UTC offset, e.g. '2026-11-23T08:00:00Z'")
    try:  # the store compares in UTC: 0001-01-01T00:00+05:00 has no UTC moment
        return moment.astimezone(UTC)
    except OverflowError:
        raise InvalidSpec(f"{name}: out of range once in UTC") from None


async def may(db: DbDep, principal: Principal, permission: Permission, run_id: int) -> Run:
    """The run, if the caller may do ``permission`` to it; a run it may not see is missing."""
    run = await db.read(run_store.get, run_id)
    missing = run_store.not_found(run_id)
    principal.check(permission, run.namespace, missing=missing.message, details=missing.details)
    return run


@router.get("/{run_id}", response_model=RunOut)
async def get_run(run_id: RunId, db: DbDep, principal: PrincipalDep) -> RunOut:
    return await run_out(db, await may(db, principal, Permission.READ, run_id))


@router.get("/{run_id}/outputs", response_model=dict[str, Any])
async def run_outputs(run_id: RunId, db: DbDep, principal: PrincipalDep) -> dict[str, Any]:
    """The outputs the run published through ``$HERDER_OUTPUT``, as one JSON object: empty
    until it ends, and when it published nothing or its file was not kept (the run's
    ``outputs_error`` says why)."""
    return (await may(db, principal, Permission.READ, run_id)).outputs


@router.post("/{run_id}/cancel", response_model=RunOut)
async def cancel_run(
    run_id: RunId,
    engine: EngineDep,
    principal: PrincipalDep,
    body: Annotated[CancelIn | None, Body()] = None,
    force: Annotated[bool, Query(description="kill at once")] = False,
) -> RunOut:
    """Stop a run: SIGTERM, a grace period, then SIGKILL (``force`` kills at once). The answer
    shows the cancel requested; the run ends ABORTED once its process is gone."""
    await may(engine.db, principal, Permission.RUN, run_id)
    run = await engine.cancel(run_id, force=force or bool(body and body.force))
    return await run_out(engine.db, run)


@router.post("/{run_id}/approve", response_model=RunOut)
async def approve_run(run_id: RunId, engine: EngineDep, principal: PrincipalDep) -> RunOut:
    """Send on a run waiting for a person (ACTION_PENDING: a manual start): it passes its job's
    concurrency policy as a new run does (READY, WAITING, or 409 under forbid); 409 if it is not
    waiting. A workflow's approval step ends SUCCESS, approved by the caller."""
    await may(engine.db, principal, Permission.RUN, run_id)
    return await run_out(engine.db, await engine.approve(run_id, actor=principal.name))


@router.post("/{run_id}/retry", status_code=201, response_model=RunOut)
async def retry_run(run_id: RunId, engine: EngineDep, principal: PrincipalDep) -> RunOut:
    """Resubmit an ended run as a new run (``attempt + 1``, ``parent_id`` set); 409 while it
    is still active. The caller is the new run's submitter."""
    await may(engine.db, principal, Permission.RUN, run_id)
    return await run_out(engine.db, await engine.retry(run_id, submitter=principal.name))


@router.get(
    "/{run_id}/logs",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/plain": {}, "text/event-stream": {}}}},
)
async def run_logs(
    run_id: RunId,
    request: Request,
    engine: EngineDep,
    principal: PrincipalDep,
    stream: Stream = Stream.OUTPUT,
    follow: bool = False,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
) -> StreamingResponse:
    """The log as text: ``stream`` picks stdout, stderr or both (``output``, time-ordered);
    ``follow=true`` streams until the run ends; ``offset`` starts later in the file. With
    ``Accept: text/event-stream`` the stream is Server-Sent Events."""
    run = await may(engine.db, principal, Permission.READ, run_id)
    logs = engine.logs_of(run)

    async def ended() -> bool:
        current = await engine.db.read(run_store.get, run_id)
        return current.status.terminal

    body: AsyncIterator[bytes]
    if follow and not run.status.terminal:
        body = logs.follow(run_id, stream, offset, ended)
    else:
        body = logs.chunks(run_id, stream, offset)
    filename = f"run-{run_id}-{stream.value}.log"
    if "text/event-stream" in request.headers.get("accept", ""):
        return StreamingResponse(
            _sse(body, engine, run_id), media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    disposition = "inline" if follow else "attachment"
    return StreamingResponse(
        body, media_type="text/plain; charset=utf-8",
        headers={"Content-Disposition": f'{disposition}; filename="{filename}"',
                 "X-Accel-Buffering": "no"},
    )


async def _sse(body: AsyncIterator[bytes], engine: EngineDep, run_id: int) -> AsyncIterator[bytes]:
    """Each chunk as a ``log`` event (one ``data:`` line per log line), then an ``end`` event
    with the run's status."""
    async for chunk in body:
        text = chunk.decode("utf-8", errors="replace")
        lines = "".join(f"data: {line}\n" for line in text.split("\n"))
        yield f"event: log\n{lines}\n".encode()
    run = await engine.db.read(run_store.get, run_id)
    yield f"event: end\ndata: {run.status.value}\n\n".encode()
