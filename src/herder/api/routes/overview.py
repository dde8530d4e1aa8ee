"""``/api/v1/overview``: read-only summaries for a dashboard (runs by status over a window,
jobs due next), filtered by the namespaces the caller may read as the lists are."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from herder.api.auth import PrincipalDep
from herder.api.deps import DbDep
from herder.api.routes.runs import aware
from herder.api.schemas import JobOut
from herder.model.errors import InvalidSpec
from herder.store import jobs as job_store
from herder.store import run_counts

router = APIRouter(prefix="/api/v1/overview", tags=["overview"])


class RunCounts(BaseModel):
    since: datetime
    until: datetime
    counts: dict[str, int] = Field(description="runs created in the window, by status name; "
                                   "statuses with none are left out")
    total: int


class Upcoming(BaseModel):
    items: list[JobOut] = Field(description="enabled jobs with a next slot, soonest first")


@router.get("/runs", response_model=RunCounts)
async def run_counts_route(
    db: DbDep,
    principal: PrincipalDep,
    since: Annotated[datetime | None, Query(description="default: a day ago")] = None,
    until: Annotated[datetime | None, Query(description="default: now")] = None,
    namespace: Annotated[str | None, Query(max_length=63)] = None,
) -> RunCounts:
    """How many runs were created in the window, by status (default: the last day)."""
    end = aware(until, "until") or datetime.now(UTC)
    start = aware(since, "since") or end - timedelta(days=1)
    if start > end:
        raise InvalidSpec("since: after until")
    counts = await db.read(run_counts.by_status, since=start, until=end, namespace=namespace,
                           readable=principal.readable())
    return RunCounts(since=start, until=end, counts=counts, total=sum(counts.values()))


@router.get("/due", response_model=Upcoming)
async def due_next(
    db: DbDep,
    principal: PrincipalDep,
    namespace: Annotated[str | None, Query(max_length=63)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> Upcoming:
    """The enabled jobs whose schedule fires soonest, with their ``next_run_at``."""
    found = await db.read(job_store.upcoming, limit=limit, namespace=namespace,
                          readable=principal.readable())
    return Upcoming(items=[JobOut.of(job) for job in found])
