"""``herder server``: the API, the engine and (later) the UI in one asyncio process."""

from __future__ import annotations

import logging

import uvicorn

from herder.api.app import create_app
from herder.settings import Settings


def serve(settings: Settings) -> None:
    """Serve until SIGINT or SIGTERM. Runs that are running keep running across a stop."""
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,
        loop="uvloop",
        http="httptools",
        timeout_graceful_shutdown=5,
    )
