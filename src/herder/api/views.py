"""Answers that need a read besides the object itself: a run with the locks it holds or waits
for (``RunOut.locks``, ``RunOut.reason``)."""

from __future__ import annotations

from datetime import UTC, datetime

from herder.api.schemas import RunOut
from herder.model.locks import uses_of
from herder.model.runs import Run
from herder.store import lock_reads
from herder.store.database import Database


async def run_out(db: Database, run: Run) -> RunOut:
    """One run's JSON; its locks are read only if it names any and is still active."""
    return (await runs_out(db, [run]))[0]


async def runs_out(db: Database, runs: list[Run]) -> list[RunOut]:
    """Runs' JSON, with the locks of the active ones that name any, in one read."""
    ids = [run.id for run in runs if not run.status.terminal and uses_of(run.spec)]
    held = await db.read(lock_reads.of_runs, ids, datetime.now(UTC)) if ids else {}
    return [RunOut.of(run, held.get(run.id)) for run in runs]
