"""``create_app``: the FastAPI application, whose lifespan opens the store and runs the engine."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from herder import __version__
from herder.api import errors
from herder.api.audit import AuditBuffer, AuditTrail
from herder.api.gate import Gate, describe_security
from herder.api.limits import BodyLimit
from herder.api.routes import (
    audit,
    bundles,
    health,
    jobs,
    locks,
    namespaces,
    overview,
    run_files,
    runs,
    session,
    tokens,
    variables,
    workflow_runs,
    workflows,
)
from herder.api.routes.bundles import bundle_limits, upload_limits
from herder.api.schemas import ERROR_RESPONSES
from herder.api.sessions import Sessions
from herder.engine.engine import Engine
from herder.model.policies import Retention
from herder.server_identity import server_id
from herder.settings import Settings
from herder.store.database import Database
from herder.store.migrate import upgrade
from herder.ui import serve as ui

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
            secret_keys=settings.secret_keys(),
            bundle_limits=bundle_limits(settings),
        )
        admin_token = settings.admin_token.get_secret_value() if settings.admin_token else None
        sessions = Sessions(lambda: engine.secret_keys.derive("session"))
        gate = Gate(db, admin_token=admin_token, clock=engine.clock, sessions=sessions)
        app.state.db, app.state.engine, app.state.gate = db, engine, gate
        app.state.audit = AuditBuffer(db)
        await gate.start(host=settings.host)
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
        responses=ERROR_RESPONSES,
    )
    errors.install(app)
    app.state.settings = settings
    describe_security(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body, larger=upload_limits(settings))
    app.add_middleware(AuditTrail)  # outside the body limit: refused bodies are recorded too
    app.include_router(health.router)
    app.include_router(jobs.router)
    app.include_router(runs.router)
    app.include_router(workflows.router)
    app.include_router(workflow_runs.router)
    app.include_router(variables.variables)
    app.include_router(variables.secrets)
    app.include_router(run_files.router)
    app.include_router(bundles.router)
    app.include_router(tokens.router)
    app.include_router(namespaces.router)
    app.include_router(audit.router)
    app.include_router(locks.router)
    app.include_router(session.router)
    app.include_router(overview.router)
    app.include_router(ui.router)
    return app
