"""A workflow's concurrency policy: what a new top-level workflow run does while others of
the workflow are active (nested runs follow their parent and are not counted).

``max_active`` (default 1) is the limit, under:

* ``allow`` (default): no limit;
* ``forbid``: the new run does not happen. A scheduled slot is recorded as a workflow run
  created ABORTED, whose ``reason`` starts ``skipped:`` and names the active runs; a run
  asked for over the API is refused (``Conflict``, 409) naming them;
* ``replace``: the oldest active runs are cancelled (``engine.workflows.cancel``) and the new
  one starts;
* ``queue`` is refused when a workflow is saved (``store.workflows.check_policy``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.engine import Connection

from herder.model.errors import Conflict
from herder.model.runs import Trigger
from herder.model.workflow_state import WorkflowRun, WorkflowStatus
from herder.model.workflows import Workflow
from herder.store import workflow_runs as store
from herder.store import workflows as workflow_store


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """``skip``: the reason the new run is not started; ``replace``: the runs to cancel."""

    skip: str | None = None
    replace: list[int] = field(default_factory=list)


def admit(conn: Connection, workflow: Workflow, *, scheduled: bool) -> Verdict:
    """Decide about a new top-level run of ``workflow`` by its concurrency policy, with the
    workflow's row held (PostgreSQL) so that two servers decide one at a time."""
    spec = workflow.spec
    if spec.concurrency == "allow":
        return Verdict()
    workflow_store.lock(conn, workflow.id)
    active = store.active_of(conn, workflow.id)
    if spec.concurrency == "replace":
        going = [run for run in active if run.cancel_requested_at is None]
        excess = len(going) - spec.max_active + 1
        return Verdict(replace=[run.id for run in going[:max(excess, 0)]])
    if len(active) < spec.max_active:
        return Verdict()
    ids = [run.id for run in active]
    named = ", ".join(str(i) for i in ids[:10])
    if not scheduled:
        raise Conflict(
            f"workflow {spec.ref} already has {len(ids)} active run(s) ({named}) and its "
            f"concurrency is forbid (max_active {spec.max_active}); wait for them to end, or "
            f"cancel them (POST /api/v1/workflow-runs/{ids[0]}/cancel)",
            details={"active_runs": ids},
        )
    return Verdict(skip=f"skipped: concurrency forbid, max_active {spec.max_active}; "
                        f"active workflow run(s): {named}")


def skipped(
    conn: Connection, workflow: Workflow, slot: datetime, reason: str, now: datetime, *,
    params: dict[str, object] | None = None,
) -> WorkflowRun | None:
    """Record a slot that does not run (misfire, disabled, forbid) as an ABORTED workflow run
    with the reason, as a job's skipped slot is a SKIPPED run; None if the slot was taken."""
    spec = workflow.spec
    return store.create(
        conn, workflow_id=workflow.id, namespace=spec.namespace, workflow_name=spec.name,
        spec=spec.to_dict(), params=dict(params or {}), status=WorkflowStatus.ABORTED.value,
        reason=reason[:4000], trigger=Trigger.SCHEDULE.value, submitter=None,
        scheduled_for=slot, created_at=now, finished_at=now,
    )
