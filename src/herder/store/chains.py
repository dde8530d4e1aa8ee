"""Job chains in the store: which jobs follow which (``job_chains``), checked when a job is saved.

A follower's ``after`` (``model.chains``) names its upstream jobs; on save each is looked up
(an unknown one is refused with the closest name of its namespace), the chains are checked for
a cycle, and the rows of ``job_chains`` are written, so that a run's end finds the jobs that
follow its job with one indexed query (``followers``). An upstream job cannot be deleted or
renamed while other jobs follow it: its followers name it.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from herder.model.errors import Conflict, InvalidSpec
from herder.model.jobs import Job, JobSpec
from herder.model.workflow_graph import _suggest as suggest
from herder.store.tables import job_chains, jobs, runs

_FOLLOWERS = (
    sa.select(jobs, job_chains.c.condition)
    .join(job_chains, job_chains.c.follower_id == jobs.c.id)
    .where(job_chains.c.upstream_id == sa.bindparam("upstream_id"))
    .order_by(jobs.c.id)
)
_UPSTREAMS = sa.select(job_chains.c.upstream_id).where(
    job_chains.c.follower_id == sa.bindparam("follower_id")
)


def declare(conn: Connection, job_id: int, spec: JobSpec) -> None:
    """Record the chains job ``job_id`` follows (after it was created or changed): refused
    with ``InvalidSpec`` when an upstream job does not exist or the chains would make a cycle
    (the caller's transaction then changes nothing)."""
    upstreams: dict[int, str] = {}
    for i, follow in enumerate(spec.after):
        namespace, name = follow.refers_to(spec.namespace)
        found = conn.execute(
            sa.select(jobs.c.id).where(jobs.c.namespace == namespace, jobs.c.name == name)
        ).scalar()
        if found is None:
            known = conn.execute(
                sa.select(jobs.c.name).where(jobs.c.namespace == namespace).limit(10_000)
            ).scalars()
            raise InvalidSpec(
                f"after[{i}].job: no job {namespace}/{name}{suggest(name, known)}",
                details={"job": f"{namespace}/{name}"},
            )
        upstreams[found] = follow.on
    _refuse_cycle(conn, job_id, spec, list(upstreams))
    conn.execute(job_chains.delete().where(job_chains.c.follower_id == job_id))
    if upstreams:
        conn.execute(
            job_chains.insert(),
            [{"follower_id": job_id, "upstream_id": u, "condition": on}
             for u, on in upstreams.items()],
        )


def _refuse_cycle(conn: Connection, job_id: int, spec: JobSpec, upstreams: list[int]) -> None:
    """Walk up the chains from the new upstreams; reaching ``job_id`` again is a cycle."""
    came_from: dict[int, int] = dict.fromkeys(upstreams, job_id)  # upstream -> the job it starts
    todo = list(upstreams)
    while todo:
        current = todo.pop()
        for above in conn.execute(_UPSTREAMS, {"follower_id": current}).scalars():
            if above == job_id:
                trail = [job_id, current]
                while trail[-1] != job_id:
                    trail.append(came_from[trail[-1]])
                names = _names(conn, spec, trail)
                raise InvalidSpec(
                    f"after: cycle: {' -> '.join(names)}; a job cannot start itself through "
                    "chains",
                    details={"cycle": names},
                )
            if above not in came_from:
                came_from[above] = current
                todo.append(above)


def _names(conn: Connection, spec: JobSpec, ids: list[int]) -> list[str]:
    """Jobs as the follower's ``after`` would name them (bare names in its own namespace)."""
    rows = {
        row.id: (row.namespace, row.name)
        for row in conn.execute(
            sa.select(jobs.c.id, jobs.c.namespace, jobs.c.name).where(jobs.c.id.in_(set(ids)))
        )
    }
    rows[ids[0]] = (spec.namespace, spec.name)  # the job being saved, as it will be named
    return [name if ns == spec.namespace else f"{ns}/{name}" for ns, name in
            (rows[i] for i in ids)]


def followers(conn: Connection, upstream_id: int) -> list[tuple[Job, str]]:
    """The jobs that follow job ``upstream_id``, each with its condition, in id order."""
    from herder.store.jobs import _row_to_job  # store.jobs calls this module on save

    return [(_row_to_job(row), row.condition)
            for row in conn.execute(_FOLLOWERS, {"upstream_id": upstream_id})]


def follower_refs(conn: Connection, upstream_id: int) -> list[dict[str, Any]]:
    """``[{job: namespace/name, on}]``: who follows job ``upstream_id``."""
    return [{"job": job.ref, "on": on} for job, on in followers(conn, upstream_id)]


def refuse_while_followed(conn: Connection, job: Job, doing: str) -> None:
    """``Conflict`` naming the jobs that follow ``job`` (they would lose their upstream)."""
    refs = [found["job"] for found in follower_refs(conn, job.id)]
    if refs:
        shown = ", ".join(refs[:5]) + (f" and {len(refs) - 5} more" if len(refs) > 5 else "")
        raise Conflict(
            f"job {job.ref} is followed (after:) by job {shown}; change their after before "
            f"{doing} it",
            details={"followed_by": refs},
        )


def followed_from_outside(conn: Connection, namespace: str) -> list[str]:
    """The jobs of other namespaces that follow a job of ``namespace``."""
    followers_ = jobs.alias("followers")
    upstream = jobs.alias("upstream")
    query = (
        sa.select(followers_.c.namespace, followers_.c.name)
        .select_from(
            job_chains.join(followers_, followers_.c.id == job_chains.c.follower_id)
            .join(upstream, upstream.c.id == job_chains.c.upstream_id)
        )
        .where(upstream.c.namespace == namespace, followers_.c.namespace != namespace)
        .distinct()
        .order_by(followers_.c.namespace, followers_.c.name)
    )
    return [f"{ns}/{name}" for ns, name in conn.execute(query)]


def chained_already(conn: Connection, upstream_run_id: int, job_id: int) -> bool:
    """Whether the end of run ``upstream_run_id`` has started job ``job_id`` already."""
    found = conn.execute(
        sa.select(runs.c.id).where(
            runs.c.upstream_run_id == upstream_run_id, runs.c.job_id == job_id,
            runs.c.trigger == "chain",
        ).limit(1)
    ).first()
    return found is not None
