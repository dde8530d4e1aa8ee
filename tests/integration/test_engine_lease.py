"""An engine stops dispatching by itself when it loses its lease: when another server fenced it,
and when it cannot renew it before it runs out."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from herder.engine.engine import Engine
from herder.model.jobs import JobSpec
from herder.model.runs import RunStatus
from herder.store import jobs as job_store
from herder.store import runs as run_store
from herder.store import servers as server_store
from herder.store.database import Database
from herder.store.tables import servers


async def until(condition: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {condition}")
        await asyncio.sleep(0.01)


def with_engine(db: Database, data_dir: Path, test: Callable[[Engine], Awaitable[None]],
                **options: object) -> None:
    async def main() -> None:
        engine = Engine(db, data_dir=data_dir, owner="server-a", lease_ttl=0.6,
                        schedule=False, **options)  # type: ignore[arg-type]
        task = asyncio.create_task(engine.run())
        await asyncio.wait({task, asyncio.create_task(engine.ready.wait())},
                           return_when=asyncio.FIRST_COMPLETED)
        try:
            await test(engine)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())


def test_a_fenced_engine_stops_dispatching(db: Database, tmp_path: Path) -> None:
    db.write_sync(job_store.create, JobSpec(name="job", command="true"), datetime.now(UTC))

    async def test(engine: Engine) -> None:
        assert engine.dispatching and engine.epoch == 1
        # Another server declares this one dead and takes over: its epoch moves on.
        await engine.db.write(
            lambda conn: conn.execute(sa.update(servers).values(epoch=servers.c.epoch + 1))
        )
        await until(lambda: not engine.dispatching)
        run = await engine.submit("job")
        await until(lambda: not engine._wake.is_set())  # the dispatcher woke and passed
        assert (await engine.db.read(run_store.get, run.id)).status is RunStatus.READY

    with_engine(db, tmp_path, test)


def test_an_engine_that_cannot_renew_stops_when_its_lease_runs_out(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [datetime.now(UTC)]

    def unreachable(*_args: object, **_kwargs: object) -> bool:
        raise sa.exc.OperationalError("renew", {}, Exception("connection refused"))

    async def test(engine: Engine) -> None:
        assert engine.dispatching
        monkeypatch.setattr(server_store, "renew", unreachable)
        # Any renewal from here on fails; one already under way used the clock before this.
        now[0] += timedelta(seconds=0.5)  # within the lease: it keeps going
        assert engine.dispatching
        now[0] += timedelta(seconds=0.2)  # the lease ran out and was not renewed
        await until(lambda: not engine.dispatching)

    with_engine(db, tmp_path, test, clock=lambda: now[0])
