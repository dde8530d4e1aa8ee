"""Job chains at a run's end: start the jobs that follow its job (``model.chains``).

``follow`` runs inside the transaction that ends the run (``admission.after_end`` calls it once
no retry of the run is to come), so the end and its chained runs commit together: a crash
keeps both or neither. Each follower whose condition holds gets one run, trigger ``chain``,
through ``admission.admit`` (its concurrency policy and locks apply: under ``forbid`` a busy
follower records a SKIPPED run saying why). It is idempotent: a follower the run has started
already is not started again, and the store's unique key (upstream run, job) would refuse it.

Not followed: runs that are workflow steps (the workflow says what comes after its steps),
SKIPPED runs (they never ran), runs whose job was deleted, and disabled follower jobs.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.engine import Connection

from herder.model.chains import chained_params, holds
from herder.model.runs import Run, RunStatus, Trigger
from herder.store import chains as chain_store

if TYPE_CHECKING:
    from herder.engine.admission import Admitted


def follow(
    conn: Connection, run: Run, now: datetime, admit: Callable[..., Admitted]
) -> list[Admitted]:
    """Create the chained runs of ``run``'s end, one ``admit`` each (``admission.admit``,
    passed in so that the import goes one way)."""
    done: list[Admitted] = []
    if (run.job_id is None or run.workflow_run_id is not None or run.trigger is Trigger.WORKFLOW
            or run.status is RunStatus.SKIPPED or not run.status.terminal):
        return done
    for job, on in chain_store.followers(conn, run.job_id):
        if not job.spec.enabled or not holds(on, run.status):
            continue
        if chain_store.chained_already(conn, run.id, job.id):
            continue
        done.append(admit(
            conn, job, trigger=Trigger.CHAIN, now=now,
            params=chained_params(job.spec.params, run.outputs), env={},
            submitter=run.submitter, upstream_run_id=run.id,
        ))
    return done
