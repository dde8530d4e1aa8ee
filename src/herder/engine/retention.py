"""History retention: ended runs and their files go when their job's retention says so, and
ended workflow runs, with their step runs, when their workflow's does.

A pass walks the jobs in pages, then the deleted jobs that left runs behind (whose runs follow
the retention they were started under, over the server default), and for each one deletes its
prunable runs
(``store.runs.prunable``) in small batches, each its own short write, so the scheduler and the
dispatcher, which share the writer, wait for a batch at most. Rows go first, then their files:
a crash in between leaves files without rows (space, not data) rather than rows without logs.

A workflow's step runs are never pruned by their job's retention: they go with their workflow
run, as a whole, once it has ended (``store.workflow_runs.delete``), so an active workflow run,
or a rerun reading the runs it reran, never loses a step's run or outputs.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from herder.model.policies import Retention, parse_retention
from herder.model.runs import Run
from herder.store import jobs as job_store
from herder.store import namespaces as namespace_store
from herder.store import runs as run_store
from herder.store import workflow_runs as workflow_run_store
from herder.store import workflows as workflow_store
from herder.store.database import Database
from herder.store.runs import JobScope
from herder.store.workflow_runs import WorkflowScope

log = logging.getLogger(__name__)

BATCH = 500  # runs deleted per write
PAGE = 1000  # jobs read per page


class Pruner:
    """Prunes history by each job's retention, with its namespace's where it sets none, and
    ``default`` (the server's) where neither does."""

    def __init__(
        self,
        db: Database,
        *,
        default: Retention,
        clock: Callable[[], datetime],
        folders_of: Callable[[Run], list[Path]],
    ) -> None:
        self.db = db
        self.default = default
        self.clock = clock
        self.folders_of = folders_of

    async def prune(self) -> int:
        """One pass over every job, deleted ones too; answers how many runs were deleted."""
        deleted = 0
        by_namespace = {
            name: parse_retention(written).over(self.default)
            for name, written in (await self.db.read(namespace_store.retentions)).items()
        }
        after: int | None = None
        while True:
            page = await self.db.read(
                job_store.retentions, after_id=after, limit=PAGE,
                only_set=not (self.default.limited or by_namespace),
            )
            deleted += await self._prune_page(page, by_namespace)
            if len(page) < PAGE:
                break
            after = page[-1][0]
        gone_after: tuple[str, str] | None = None
        while True:
            orphans = await self.db.read(run_store.deleted_jobs, after=gone_after, limit=PAGE)
            deleted += await self._prune_page(orphans, by_namespace)
            if len(orphans) < PAGE:
                break
            gone_after = orphans[-1][0]
        return deleted + await self._prune_workflows(by_namespace)

    async def _prune_workflows(self, by_namespace: dict[str, Retention]) -> int:
        """The same pass over workflows (deleted ones too), by their ``retention``: an ended
        workflow run goes with its nested runs and every step run of them, never a part of
        one; a run that a rerun was made of stays while the rerun does."""
        deleted = 0
        after: int | None = None
        while True:
            page = await self.db.read(workflow_store.retentions, after_id=after, limit=PAGE)
            deleted += await self._prune_workflow_page(page, by_namespace)
            if len(page) < PAGE:
                break
            after = page[-1][0]
        gone_after: tuple[str, str] | None = None
        while True:
            orphans = await self.db.read(workflow_run_store.deleted_workflows, after=gone_after,
                                         limit=PAGE)
            deleted += await self._prune_workflow_page(orphans, by_namespace)
            if len(orphans) < PAGE:
                return deleted
            gone_after = orphans[-1][0]

    async def _prune_workflow_page(
        self,
        page: Sequence[tuple[WorkflowScope, str, dict[str, Any] | None]],
        by_namespace: dict[str, Retention],
    ) -> int:
        deleted = 0
        for workflow, namespace, written in page:
            policy = parse_retention(written).over(by_namespace.get(namespace, self.default))
            if not policy.limited:
                continue
            while True:
                now = self.clock()
                older = (None if policy.max_age is None
                         else now - timedelta(seconds=policy.max_age))
                ids = await self.db.read(workflow_run_store.prunable, workflow,
                                         older_than=older, keep=policy.max_runs, limit=BATCH)
                if not ids:
                    break
                done, gone = await self.db.write(workflow_run_store.delete, ids)
                await self.remove_files(gone)
                if done:
                    log.info("pruned %d workflow runs (%d step runs) by retention", len(done),
                             len(gone), extra={"action": "prune_workflows"})
                deleted += len(done)
                if len(done) < BATCH:
                    break  # a tree still active somewhere is left for a later pass
        return deleted

    async def _prune_page(
        self,
        page: Sequence[tuple[JobScope, str, dict[str, Any] | None]],
        by_namespace: dict[str, Retention],
    ) -> int:
        deleted = 0
        for job, namespace, written in page:
            policy = parse_retention(written).over(by_namespace.get(namespace, self.default))
            if policy.limited:
                deleted += await self._prune_job(job, policy)
        return deleted

    async def _prune_job(self, job_id: JobScope, policy: Retention) -> int:
        deleted = 0
        while True:
            now = self.clock()
            older = None if policy.max_age is None else now - timedelta(seconds=policy.max_age)
            ids = await self.db.read(
                run_store.prunable, job_id, older_than=older, keep=policy.max_runs, limit=BATCH
            )
            if not ids:
                return deleted
            gone = await self.db.write(run_store.delete, ids)
            await self.remove_files(gone)
            if gone:
                log.info("pruned %d runs by retention", len(gone), extra={"action": "prune"})
            deleted += len(gone)
            if len(ids) < BATCH:
                return deleted

    async def remove_files(self, gone: list[Run]) -> None:
        """Remove the log and working folders of runs whose rows are gone (on a thread)."""
        await asyncio.to_thread(self._remove_folders, gone)

    def _remove_folders(self, gone: list[Run]) -> None:
        for run in gone:
            for folder in self.folders_of(run):
                shutil.rmtree(folder, ignore_errors=True)
