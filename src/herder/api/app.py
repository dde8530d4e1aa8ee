"""``create_app``: the FastAPI application, whose lifespan opens the store and runs the engine."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from herder import __version__
from herder.api import errors
from herder.api.limits import BodyLimit
from herder.api.routes import health, jobs, locks, runs
from herder.engine.engine import Engine
from herder.model.policies import Retention
from herder.server_identity import server_id
from herder.settings import Settings
from herder.store.database import Database
from herder.store.migrate import upgrade

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        data_dir = settings.data_dir.resolve()
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        db = Database(settings.store_url)
        await asyncio.to_thread(upgrade, db.engine)
        engine = Engine(
            db, data_dir=data_dir, owner=server_id(data_dir), kill_grace=settings.kill_grace,
            default_timeout=settings.default_timeout, dispatch_batch=settings.dispatch_batch,
            backend_settings={"sync_exit_records": settings.sync_exit_records},
            lease_ttl=settings.lease_ttl,
            retention=Retention(
                max_age=settings.retention_max_age, max_runs=settings.retention_max_runs
            ),
            prune_every=settings.prune_every,
        )
        app.state.db, app.state.engine = db, engine
        engine_task = asyncio.create_task(engine.run(), name="herder-engine")
        ready = asyncio.create_task(engine.ready.wait())
        await asyncio.wait({engine_task, ready}, return_when=asyncio.FIRST_COMPLETED)
        if engine_task.done():  # it failed while starting: say why, do not serve
            ready.cancel()
            db.close()
            engine_task.result()
        log.info("herder %s ready: store %s, data %s", __version__, db.dialect, data_dir)
        try:
            yield
        finally:
            engine_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await engine_task
            db.close()

    app = FastAPI(
        title="herder",
        version=__version__,
        description="A self-hosted job orchestrator: schedule, run, chain and watch jobs.",
        lifespan=lifespan,
    )
    errors.install(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body)
    app.include_router(health.router)
    app.include_router(jobs.router)
    app.include_router(runs.router)
    app.include_router(locks.router)
    return app
