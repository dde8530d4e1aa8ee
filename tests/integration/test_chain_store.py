"""Job chains in the store, on SQLite and PostgreSQL: refusals on save and delete, and the
chained runs made in the transaction that ends the upstream run, once."""

from __future__ import annotations

import concurrent.futures
import threading
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.engine import Connection

from herder.engine import admission
from herder.engine.admission import Admitted
from herder.model.errors import Conflict, HerderError, InvalidSpec
from herder.model.jobs import Job, JobSpec
from herder.model.outputs import Outputs
from herder.model.policies import Retries
from herder.model.runs import Run, RunStatus, Trigger
from herder.store import chains as chain_store
from herder.store import jobs as job_store
from herder.store import namespaces as namespace_store
from herder.store import runs as run_store
from herder.store.database import Database

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def make(db: Database, name: str, *, after: list[Any] | None = None, namespace: str = "default",
         **fields: Any) -> Job:
    spec = JobSpec.from_dict(
        {"name": name, "namespace": namespace, "command": ["true"], "after": after, **fields}
    )
    return db.write_sync(job_store.replace, spec, NOW)[0]


def submit(db: Database, job: Job, **kw: Any) -> Run:
    def op(conn: Connection) -> Admitted:
        fresh = job_store.get(conn, str(job.id))
        return admission.admit(conn, fresh, trigger=Trigger.API, now=NOW, params={}, env={},
                               **kw)

    return db.write_sync(op).created[0]


def end(db: Database, run: Run, exit_code: int, outputs: dict[str, Any] | None = None,
        owner: str = "s") -> tuple[Run, Admitted]:
    """Claim, start and end ``run`` as an engine would, with its follow-ups in the same
    transaction."""
    claimed = db.write_sync(run_store.claim_ready, owner, 1000, epoch=1)
    assert run.id in [r.id for r in claimed]
    db.write_sync(run_store.set_status, run.id, RunStatus.RUNNING, owner=owner, epoch=1,
                  started_at=NOW)
    return db.write_sync(finish, run.id, exit_code, outputs, owner)


def finish(conn: Connection, run_id: int, exit_code: int, outputs: dict[str, Any] | None,
           owner: str = "s") -> tuple[Run, Admitted]:
    ended = run_store.finish(conn, run_id, owner=owner, exit_code=exit_code, signal=None,
                             now=NOW, epoch=1, outputs=Outputs(values=outputs or {}))
    return ended, admission.after_end(conn, ended, NOW)


def chained(db: Database, upstream: Run) -> list[Run]:
    found = db.read_sync(run_store.search, limit=100)
    return sorted((r for r in found if r.upstream_run_id == upstream.id), key=lambda r: r.id)


# Refusals on save --------------------------------------------------------------------------


def test_an_unknown_upstream_is_refused_with_the_closest_name(db: Database) -> None:
    make(db, "extract")
    with pytest.raises(InvalidSpec) as caught:
        make(db, "load", after=["extract", "extrat"])
    assert caught.value.message == (
        "after[1].job: no job default/extrat (did you mean 'extract'?)"
    )
    with pytest.raises(InvalidSpec, match=r"after\[0\].job: no job ops/extract$"):
        make(db, "load", after=["ops/extract"])
    assert db.read_sync(job_store.search, q="load") == []  # nothing was saved


def test_cycles_are_refused_with_their_path(db: Database) -> None:
    make(db, "a")
    make(db, "b", after=["a"])
    with pytest.raises(InvalidSpec) as caught:
        make(db, "a", after=["b"])
    assert caught.value.message.startswith("after: cycle: a -> b -> a")
    make(db, "c", after=[{"job": "b", "on": "always"}])
    with pytest.raises(InvalidSpec) as caught:
        make(db, "a", after=[{"job": "c", "on": "failure"}])
    assert caught.value.message.startswith("after: cycle: a -> b -> c -> a")
    # Across namespaces, names outside the job's own namespace are given whole.
    make(db, "d", namespace="ops", after=["default/c"])
    with pytest.raises(InvalidSpec, match="after: cycle: a -> b -> c -> ops/d -> a"):
        make(db, "a", after=["ops/d"])
    assert db.read_sync(job_store.get, "a").spec.after == ()


def test_a_followed_job_cannot_be_deleted_or_renamed(db: Database) -> None:
    extract = make(db, "extract")
    make(db, "load", after=["extract"])
    make(db, "report", namespace="bi", after=["default/extract"])
    with pytest.raises(Conflict) as caught:
        db.write_sync(job_store.delete, "extract")
    assert caught.value.message.startswith(
        "job default/extract is followed (after:) by job default/load, bi/report"
    )
    assert caught.value.details == {"followed_by": ["default/load", "bi/report"]}
    renamed = JobSpec.from_dict(extract.spec.to_dict() | {"name": "pull"})
    with pytest.raises(Conflict, match="before renaming it"):
        db.write_sync(job_store.update, extract.id, renamed, NOW)
    # Once they no longer follow it, it goes.
    make(db, "load")
    db.write_sync(job_store.delete, "bi/report")
    db.write_sync(job_store.delete, "extract")


def test_a_namespace_followed_from_outside_cannot_be_deleted(db: Database) -> None:
    db.write_sync(namespace_store.ensure, "src", NOW, create_missing=True)
    make(db, "extract", namespace="src")
    make(db, "load", after=["src/extract"])
    with pytest.raises(Conflict, match="followed \\(after:\\) by job default/load"):
        db.write_sync(namespace_store.delete, "src", force=True)


# Runs at the end ---------------------------------------------------------------------------


def test_each_condition(db: Database) -> None:
    make(db, "up")
    for name, on in (("on-success", "success"), ("on-failure", "failure"),
                     ("on-always", "always")):
        make(db, name, after=[{"job": "up", "on": on}])
    make(db, "paused", after=["up"], enabled=False)
    ok, _ = end(db, submit(db, make(db, "up")), 0)
    assert [r.job_name for r in chained(db, ok)] == ["on-success", "on-always"]
    failed, _ = end(db, submit(db, make(db, "up")), 3)
    assert [r.job_name for r in chained(db, failed)] == ["on-failure", "on-always"]
    assert {(r.trigger, r.upstream_run_id) for r in chained(db, ok)} == {(Trigger.CHAIN, ok.id)}
    # Cancelled before it started: ABORTED is a failure.
    pending = submit(db, make(db, "up"))
    cancelled = db.write_sync(run_store.request_cancel, pending.id, force=False, now=NOW)
    db.write_sync(admission.after_end, cancelled, NOW)
    assert [r.job_name for r in chained(db, cancelled)] == ["on-failure", "on-always"]


def test_outputs_become_the_followers_params(db: Database) -> None:
    make(db, "extract")
    make(db, "load", after=["extract"], params={"rows": "0", "day": "mon"})
    run, done = end(db, submit(db, make(db, "extract")), 0, {"rows": 42, "other": "x"})
    (load,) = chained(db, run)
    assert load.params == {"rows": 42, "day": "mon"}
    assert done.ready and [r.id for r in done.created] == [load.id]


def test_a_retried_upstream_starts_its_followers_after_its_final_attempt(db: Database) -> None:
    extract = make(db, "extract", retries={"limit": 1, "backoff": 1})
    assert extract.spec.retries == Retries(limit=1, backoff=1)
    make(db, "load", after=[{"job": "extract", "on": "always"}])
    first, done = end(db, submit(db, extract), 1)
    (retry,) = done.created
    assert retry.trigger is Trigger.RETRY and chained(db, first) == []
    last, _ = end(db, retry, 1)
    assert [r.job_name for r in chained(db, last)] == ["load"]


def test_a_chained_runs_retry_keeps_its_upstream(db: Database) -> None:
    make(db, "extract")
    make(db, "load", after=["extract"], retries=1)
    up, _ = end(db, submit(db, make(db, "extract")), 0)
    (load,) = chained(db, up)
    _, done = end(db, load, 1)
    (retry,) = done.created
    assert (retry.trigger, retry.upstream_run_id) == (Trigger.RETRY, up.id)


def test_forbid_on_the_follower_skips_its_chained_run(db: Database) -> None:
    make(db, "extract")
    load = make(db, "load", after=["extract"], concurrency="forbid")
    busy = submit(db, load)
    up, _ = end(db, submit(db, make(db, "extract")), 0)
    (skipped,) = chained(db, up)
    assert skipped.status is RunStatus.SKIPPED
    assert f"run {busy.id}" in (skipped.error or "")


def test_a_chain_of_three(db: Database) -> None:
    make(db, "a")
    make(db, "b", after=["a"])
    make(db, "c", after=["b"])
    a, _ = end(db, submit(db, make(db, "a")), 0)
    (b,) = chained(db, a)
    b_end, _ = end(db, b, 0)
    (c,) = chained(db, b_end)
    assert c.job_name == "c"
    c_end, _ = end(db, c, 0)
    assert chained(db, c_end) == []


def test_workflow_steps_and_skipped_runs_start_nothing(db: Database) -> None:
    make(db, "up")
    make(db, "down", after=[{"job": "up", "on": "always"}])
    step = submit(db, make(db, "up"))
    def as_step(conn: Connection) -> None:
        from herder.store.tables import runs
        conn.execute(runs.update().where(runs.c.id == step.id).values(trigger="workflow"))
    db.write_sync(as_step)
    ended, _ = end(db, db.read_sync(run_store.get, step.id), 0)
    assert chained(db, ended) == []


def test_an_end_written_twice_makes_one_chained_run(db: Database) -> None:
    make(db, "extract")
    make(db, "load", after=["extract"])
    run = submit(db, make(db, "extract"))
    ended, _ = end(db, run, 0)
    with pytest.raises(HerderError):  # the second end is refused, and all it would do with it
        db.write_sync(finish, run.id, 0, None)
    # Should follow-ups be asked again for the same end, they add nothing.
    assert db.write_sync(admission.after_end, ended, NOW).created == []
    assert len(chained(db, ended)) == 1
    assert db.read_sync(chain_store.chained_already, ended.id, ended.job_id or 0)  is False
    assert db.read_sync(chain_store.chained_already, ended.id, chained(db, ended)[0].job_id or 0)


def test_two_servers_ending_one_run_at_once_make_one_chained_run(store_url: str) -> None:
    """Two stores (as two servers) write the same end at the same moment: one commits it with
    its chained run, the other is refused and leaves nothing."""
    first, second = Database(store_url), Database(store_url)
    try:
        make(first, "extract")
        make(first, "load", after=["extract"])
        make(first, "report", after=["extract"])
        runs = [submit(first, make(first, "extract")) for _ in range(5)]
        for run in runs:
            first.write_sync(run_store.claim_ready, "s", 1000, epoch=1)
            first.write_sync(run_store.set_status, run.id, RunStatus.RUNNING, owner="s",
                             epoch=1, started_at=NOW)
        barrier = threading.Barrier(2)

        def race(db: Database, run: Run) -> bool:
            barrier.wait()
            try:
                db.write_sync(finish, run.id, 0, None)
            except HerderError:
                return False
            return True

        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            for run in runs:
                won = list(pool.map(race, (first, second), (run, run)))
                assert sorted(won) == [False, True]
                assert sorted(r.job_name for r in chained(first, run)) == ["load", "report"]
    finally:
        first.close()
        second.close()
